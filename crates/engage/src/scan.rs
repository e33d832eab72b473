//! One scan of a salon: its rhythm measured over every client, then every client decided and the
//! decisions recorded (or, for a preview, only reported). Pages of clients keep memory flat; the
//! store answers each page in two set-based queries.

use std::collections::BTreeMap;

use loyalty_core::engage::{EngageError, Engagement};
use loyalty_core::offer::OfferTerms;
use loyalty_core::{ClientId, PartnerId, StoreError};
use serde::{Deserialize, Serialize};

use crate::cadence::{DAY_MS, SalonRhythm, SalonRhythmBuilder};
use crate::policy::{Scan, Verdict, decide};
use crate::store::{EngageStore, NewSend, Page, Reminder};
use crate::trigger::{Context, Due, Why};

/// Clients per page.
pub const PAGE: u32 = 2_000;
/// An offer's return counts within this many days of it (for the variants' learning).
pub const OFFER_WINDOW_DAYS: i64 = 30;
/// A client's profile for offers reads her visits of this many days.
pub const PROFILE_DAYS: i64 = 365;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Settings(#[from] EngageError),
}

/// What the caller knows of the salon.
pub struct Salon<'a> {
    pub partner: PartnerId,
    pub name: Option<&'a str>,
    pub settings: &'a Engagement,
    /// The program's birthday points, for the birthday message.
    pub birthday_points: Option<i64>,
    /// One of the salon's CRMs sends SMS.
    pub sms: bool,
    /// The program's currency (an offer's least bill is told in it).
    pub currency: loyalty_core::Currency,
    /// The salon's churn and value model, as last built (`at_risk` needs it).
    pub model: Option<&'a crate::risk::SalonModel>,
}

/// A decision in words: who, which trigger, what became of it, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub client_id: ClientId,
    pub name: Option<String>,
    pub trigger: String,
    pub verdict: String,
    pub why: String,
}

/// What a scan found and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub at_ms: i64,
    pub clients: u64,
    /// Clients a message can reach in Telegram, and those of them who opted in.
    pub reachable: u64,
    pub opted_in: u64,
    /// Clients without a chat who opted in to SMS (reached by SMS where the salon set it up).
    #[serde(default)]
    pub sms_opted_in: u64,
    /// Clients with three visits or more, the salon's regularity, and why rhythms fall back to
    /// the fixed rules when they do.
    pub regulars: u64,
    pub k: Option<f64>,
    pub fallback: Option<String>,
    /// Per trigger, how many decisions of each kind (`send`, `control`, `quiet_hours`,
    /// `capped`, `unreachable`, `no_consent`).
    pub counts: BTreeMap<String, BTreeMap<String, u64>>,
    /// Decisions recorded by this scan (sent or held out), new under their once keys.
    pub recorded: u64,
    /// The decisions, up to the caller's limit.
    pub lines: Vec<Line>,
    /// The salon's rhythm as this scan's clients showed it: the next scan's starting point.
    #[serde(default)]
    pub rhythm: SalonRhythm,
}

/// Scans the salon at `now_ms`. With `record`, sent and held-out decisions are recorded (the
/// sent ones queued for the reminders' worker); without, nothing is written: a preview.
/// `only` limits it to one trigger; `keep_lines` bounds the report's lines.
///
/// The salon's rhythm is `known` (the last scan's, carried in its report: the scan reads every
/// client once) or, without it, measured first in a pass over every client's rhythm.
pub async fn scan(
    store: &dyn EngageStore,
    salon: &Salon<'_>,
    now_ms: i64,
    record: bool,
    only: Option<&str>,
    keep_lines: usize,
) -> Result<Report, ScanError> {
    scan_with(store, salon, now_ms, record, only, keep_lines, None).await
}

/// [`scan`] with the salon's rhythm already known.
#[allow(clippy::too_many_arguments)]
pub async fn scan_with(
    store: &dyn EngageStore,
    salon: &Salon<'_>,
    now_ms: i64,
    record: bool,
    only: Option<&str>,
    keep_lines: usize,
    known: Option<SalonRhythm>,
) -> Result<Report, ScanError> {
    let tz = salon.settings.zone()?;
    let salt = store.engage_salt(salon.partner).await?;
    let rhythm = match known {
        Some(r) => r,
        None => measure(store, salon.partner).await?,
    };
    // This scan measures the rhythm again, for the next one.
    let mut next = SalonRhythmBuilder::default();
    let mut settings = salon.settings.clone();
    if let Some(t) = only {
        settings.triggers.retain(|s| s.rule.name() == t);
    }
    let horizon = settings
        .triggers
        .iter()
        .filter_map(|t| match t.rule {
            loyalty_core::engage::TriggerRule::Expiring { within_days, .. } => Some(within_days),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let mut report = Report {
        at_ms: now_ms,
        regulars: rhythm.regulars as u64,
        k: rhythm.k,
        fallback: rhythm.too_little(),
        ..Report::default()
    };
    let policy = Scan {
        settings: &settings,
        tz,
        salt,
        context: Context {
            now_ms,
            tz,
            salon: &rhythm,
            model: salon.model,
        },
        sms: salon.sms,
    };
    // The offers' variants learn from the offers whose 30 days are over.
    let arms = if settings.triggers.iter().any(|t| t.offer.is_some()) {
        store
            .offer_arms(salon.partner, now_ms, OFFER_WINDOW_DAYS * DAY_MS)
            .await?
    } else {
        Vec::new()
    };
    let mut page = Page {
        after: ClientId(0),
        limit: PAGE,
    };
    loop {
        let batch = store
            .snapshots(
                salon.partner,
                now_ms,
                now_ms + i64::from(horizon) * DAY_MS,
                page,
                salon.sms && settings.sms.is_some(),
            )
            .await?;
        let rows = &batch.clients;
        let mut sends = Vec::new();
        for (s, name) in rows {
            next.add(&s.rhythm);
            report.clients += 1;
            report.reachable += u64::from(s.telegram);
            report.opted_in += u64::from(s.telegram && s.consent);
            report.sms_opted_in += u64::from(!s.telegram && s.sms);
            let Some(d) = decide(s, &policy) else {
                continue;
            };
            *report
                .counts
                .entry(d.due.trigger.to_owned())
                .or_default()
                .entry(d.verdict.name().to_owned())
                .or_default() += 1;
            if report.lines.len() < keep_lines {
                report.lines.push(Line {
                    client_id: s.client,
                    name: name.clone(),
                    trigger: d.due.trigger.to_owned(),
                    verdict: d.verdict.name().to_owned(),
                    why: d.due.why.to_string(),
                });
            }
            if d.verdict.recorded() {
                sends.push(NewSend {
                    client: s.client,
                    trigger: d.due.trigger.to_owned(),
                    cycle: d.due.cycle.clone(),
                    control: d.verdict == Verdict::Control,
                    channel: d.channel,
                    why: d.due.why.to_string(),
                    reminder: reminder(salon, &settings, &d.due, name.as_deref(), s),
                    decided_at_ms: now_ms,
                });
            }
        }
        attach_offers(store, salon, &settings, salt, &arms, now_ms, &mut sends).await?;
        if record && !sends.is_empty() {
            report.recorded += store.record_sends(salon.partner, &sends).await?;
        }
        match rows.last() {
            Some((s, _)) if !batch.last => page.after = s.client,
            _ => break,
        }
    }
    report.rhythm = next.finish();
    Ok(report)
}

/// The personal offers of a page's sends: each send (not the control group) under a trigger
/// with an offer gets the variant Thompson sampling picks for her, made of her profile (her
/// favourite master preselected in the booking link where the salon's widget has one).
async fn attach_offers(
    store: &dyn EngageStore,
    salon: &Salon<'_>,
    settings: &Engagement,
    salt: u64,
    arms: &[crate::offers::VariantArm],
    now_ms: i64,
    sends: &mut [NewSend],
) -> Result<(), ScanError> {
    let setting_of = |trigger: &str| {
        settings
            .triggers
            .iter()
            .find(|t| t.rule.name() == trigger)
            .and_then(|t| t.offer.as_ref())
    };
    let mut wanted: Vec<ClientId> = sends
        .iter()
        .filter(|s| !s.control && setting_of(&s.trigger).is_some())
        .map(|s| s.client)
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    wanted.sort_unstable();
    let profiles = store
        .offer_profiles(salon.partner, &wanted, now_ms - PROFILE_DAYS * DAY_MS)
        .await?;
    let suggestions = salon.model.and_then(|m| m.suggest.as_ref());
    let empty = crate::offers::Profile::default();
    for send in sends.iter_mut().filter(|s| !s.control) {
        let Some(setting) = setting_of(&send.trigger) else {
            continue;
        };
        let profile = profiles.get(&send.client).unwrap_or(&empty);
        let seed = crate::offers::seed(salt, send.client.0, &send.trigger, &send.cycle);
        let terms =
            crate::offers::terms_for(setting, &send.trigger, profile, suggestions, arms, seed);
        if let (Some(t), Some(url)) = (&terms, &settings.booking_master_url)
            && let Some((staff, _)) = &t.master
        {
            send.reminder.booking_url = Some(url.replace("{staff_id}", staff));
        }
        send.reminder.offer = terms.map(|t| OfferTerms {
            currency: salon.currency,
            ..t
        });
    }
    Ok(())
}

/// The salon's rhythm over every client's, a page at a time.
pub async fn measure(
    store: &dyn EngageStore,
    partner: loyalty_core::PartnerId,
) -> Result<SalonRhythm, ScanError> {
    let mut builder = SalonRhythmBuilder::default();
    let mut page = Page {
        after: ClientId(0),
        limit: PAGE,
    };
    loop {
        let rows = store.rhythms(partner, page).await?;
        for (_, r) in &rows {
            builder.add(r);
        }
        match rows.last() {
            Some((id, _)) if rows.len() == PAGE as usize => page.after = *id,
            _ => break,
        }
    }
    Ok(builder.finish())
}

/// What the message of a due trigger will say.
fn reminder(
    salon: &Salon<'_>,
    settings: &Engagement,
    due: &Due,
    name: Option<&str>,
    s: &crate::Snapshot,
) -> Reminder {
    let (points, days, date) = match &due.why {
        Why::Inactive { days, balance } => (balance.value(), *days, None),
        Why::Rhythm { overdue_days, .. } => (s.balance.value(), *overdue_days, None),
        Why::Fallback { days, .. } | Why::Lapsed { days, .. } | Why::AtRisk { days, .. } => {
            (s.balance.value(), *days, None)
        }
        Why::Expiring { points, on } => (points.value(), 0, Some(on.to_string())),
        Why::Missed { days } | Why::WelcomeBack { days } => (s.balance.value(), *days, None),
        Why::Birthday { on } => (s.balance.value(), 0, Some(on.to_string())),
        Why::Invite | Why::Custom { .. } => (s.balance.value(), 0, None),
    };
    let text = match &due.why {
        Why::Invite => settings.sms.as_ref().and_then(|x| x.invite_text.clone()),
        _ => settings
            .triggers
            .iter()
            .find(|t| t.rule.name() == due.trigger)
            .and_then(|t| t.text.clone()),
    };
    Reminder {
        trigger: due.trigger.to_owned(),
        salon: salon.name.map(str::to_owned),
        name: name.map(str::to_owned),
        points,
        days,
        date,
        birthday_points: (due.trigger == "birthday")
            .then_some(salon.birthday_points)
            .flatten(),
        text,
        booking_url: settings.booking_url.clone(),
        offer: None,
        level: None,
        master: None,
    }
}
