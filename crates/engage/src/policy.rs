//! The delivery policy: what turns a due trigger into a message, a held-out record, or nothing
//! yet — the difference between a loyalty program and spam.
//!
//! For each client, the first due trigger (in the program's order) that was not already
//! recorded for its cycle, nor snoozed ("Not now") for this absence, is considered; then, in
//! order:
//! 1. outside the send window it waits ([`Verdict::Wait`]) for the next scan in the window;
//! 2. over a cap (messages recorded as sent *or held out* in the last 7 and 30 days — so the
//!    control group's timing matches the treated group's) it waits until the cap frees;
//! 3. a client no message can reach (no linked Telegram chat taking messages, and no SMS the
//!    salon sends to a client who opted in to SMS) or who has not opted in to marketing, or has
//!    withdrawn, gets nothing and nothing is recorded;
//! 4. a client in the control group is recorded as held out ([`Verdict::Control`]);
//! 5. anyone else is sent the message ([`Verdict::Send`]).
//!
//! Only `Send` and `Control` are recorded, each under `(client, trigger, cycle)` once.
//!
//! **Channels.** A client with a linked chat is reached in Telegram, and only there. One without
//! a chat, where the salon has SMS set up and its CRM sends SMS, and who gave an SMS opt-in, is
//! reached by SMS: first the invitation to the bot (once), then — when the salon sends reminders
//! by SMS too — the program's triggers. Caps count every channel together.

use chrono_tz::Tz;
use loyalty_core::engage::Engagement;

use crate::cadence::DAY_MS;
use crate::trigger::{Context, Due, INVITE, due, invite};
use crate::uplift::in_control;
use crate::window::{current_or_next, open_at};
use crate::{Recorded, Snapshot};

/// How a message reaches a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    #[default]
    Telegram,
    /// An SMS the salon's CRM sends.
    Sms,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Telegram => "telegram",
            Channel::Sms => "sms",
        }
    }
}

/// What the policy makes of a client's first due trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Send,
    Control,
    /// Nothing now; the next scan after `until_ms` looks again.
    Wait {
        reason: WaitReason,
        until_ms: i64,
    },
    /// No Telegram chat takes messages: nothing is sent or recorded.
    Unreachable,
    /// No marketing consent (never given, or withdrawn): nothing is sent or recorded.
    NoConsent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// Outside the send window in the salon's zone.
    Quiet,
    /// Over the 7- or 30-day cap.
    Cap,
}

impl Verdict {
    /// Whether the decision is recorded under the trigger's once key.
    pub fn recorded(&self) -> bool {
        matches!(self, Verdict::Send | Verdict::Control)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Send => "send",
            Verdict::Control => "control",
            Verdict::Wait {
                reason: WaitReason::Quiet,
                ..
            } => "quiet_hours",
            Verdict::Wait {
                reason: WaitReason::Cap,
                ..
            } => "capped",
            Verdict::Unreachable => "unreachable",
            Verdict::NoConsent => "no_consent",
        }
    }
}

/// A client's decision in one scan.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub due: Due,
    pub verdict: Verdict,
    /// Where a `Send` goes (and a `Control` would have gone).
    pub channel: Channel,
    /// While it is `Send`: the end of the window it must go out in (the outbox holds it past
    /// that to `next_window_ms`).
    pub window_end_ms: i64,
    /// The opening of the window after this one.
    pub next_window_ms: i64,
}

/// The salon-wide inputs of a scan.
pub struct Scan<'a> {
    pub settings: &'a Engagement,
    pub tz: Tz,
    pub salt: u64,
    pub context: Context<'a>,
    /// The salon's CRM sends SMS (with `settings.sms` set, SMS may go out).
    pub sms: bool,
}

/// The decision for one client, `None` when nothing is due (or all of it already recorded).
pub fn decide(s: &Snapshot, scan: &Scan<'_>) -> Option<Decision> {
    let sms = scan
        .settings
        .sms
        .as_ref()
        .filter(|_| scan.sms && s.sms && !s.telegram);
    // By SMS, the invitation comes first.
    let mut candidates = Vec::new();
    if sms.is_some_and(|x| x.invite) {
        candidates.push(invite());
    }
    candidates.extend(due(s, scan.settings, &scan.context));
    let first = candidates.into_iter().find(|d| !already(s, d))?;
    judge(s, scan, first)
}

/// What the policy makes of `first`, due for the client now (not recorded for its cycle yet):
/// the steps above from the send window on. A scan calls it with the first due trigger; a
/// custom trigger's message, due by an event, goes through it alone.
pub fn judge(s: &Snapshot, scan: &Scan<'_>, first: Due) -> Option<Decision> {
    let now = scan.context.now_ms;
    let sms = scan
        .settings
        .sms
        .as_ref()
        .filter(|_| scan.sms && s.sms && !s.telegram);
    // The triggers go by SMS only when the salon sends reminders by SMS.
    let channel = if first.trigger == INVITE || sms.is_some_and(|x| x.reminders) {
        Some(Channel::Sms)
    } else {
        s.telegram.then_some(Channel::Telegram)
    };
    let w = scan.settings.send_window;
    let (start, end) = current_or_next(scan.tz, w, now)?;
    let next = current_or_next(scan.tz, w, end)?.0;
    let decision = |verdict| {
        Some(Decision {
            due: first.clone(),
            verdict,
            channel: channel.unwrap_or_default(),
            window_end_ms: end,
            next_window_ms: next,
        })
    };
    if !open_at(scan.tz, w, now) {
        return decision(Verdict::Wait {
            reason: WaitReason::Quiet,
            until_ms: start,
        });
    }
    if let Some(until) = capped(&s.recorded, scan.settings, now) {
        return decision(Verdict::Wait {
            reason: WaitReason::Cap,
            until_ms: until,
        });
    }
    match channel {
        None => return decision(Verdict::Unreachable),
        Some(Channel::Telegram) if !s.consent => return decision(Verdict::NoConsent),
        Some(_) => {}
    }
    if in_control(scan.salt, s.client, scan.settings.holdout_percent) {
        return decision(Verdict::Control);
    }
    decision(Verdict::Send)
}

/// Whether `d` was already recorded for its cycle, or its trigger snoozed this absence.
pub fn already(s: &Snapshot, d: &Due) -> bool {
    s.recorded.iter().any(|r| {
        r.trigger == d.trigger
            && (r.cycle == d.cycle
                || (r.snoozed
                    && s.last_visit_ms.is_some_and(|last| {
                        // A cycle's key starts with the absence's last visit.
                        let a = last.to_string();
                        r.cycle == a || r.cycle.split_once(':').is_some_and(|(x, _)| x == a)
                    })))
    })
}

/// When a cap that is full now frees, `None` when none is full.
pub fn capped(recorded: &[Recorded], settings: &Engagement, now: i64) -> Option<i64> {
    let mut until: Option<i64> = None;
    for (days, cap) in [
        (7, settings.caps.per_7_days),
        (30, settings.caps.per_30_days),
    ] {
        let span = days * DAY_MS;
        if cap == 0 {
            until = Some(i64::MAX);
            continue;
        }
        let mut inside: Vec<i64> = recorded
            .iter()
            .filter(|r| r.counts)
            .map(|r| r.at_ms)
            .filter(|&at| at > now - span && at <= now)
            .collect();
        if inside.len() >= cap as usize {
            // The cap frees when enough of them leave the window: the (len − cap + 1)-th oldest.
            inside.sort_unstable();
            let leaving = inside[inside.len() - cap as usize] + span;
            until = Some(until.map_or(leaving, |u| u.max(leaving)));
        }
    }
    until
}
