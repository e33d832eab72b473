//! Reminders' settings, part of a partner's [`crate::Program`]: the triggers a salon turns on,
//! each with its parameters and its own text, and the delivery policy (the salon's time zone,
//! the hours messages may go out, caps per client, the control group).
//!
//! The rules that read them — the personal cadence, when a trigger is due, what the policy lets
//! through — are pure functions in the `loyalty-engage` crate; this module is only the data and
//! its validation, so that `program set` refuses a bad setting before anything runs.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::money::Points;

/// How a salon brings clients back. `None` in a program: no marketing message is ever sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Engagement {
    /// The salon's IANA time zone (`Europe/Moscow`, `Asia/Yekaterinburg`): the send window and
    /// the birthday are read in it. A zone the tz database does not know is refused.
    #[serde(default = "default_zone")]
    pub time_zone: String,
    /// The local hours marketing messages may go out, `[from, to)`; a message due outside them
    /// waits for the next window. Transactional messages (points, codes) are never held.
    #[serde(default)]
    pub send_window: SendWindow,
    /// At most this many marketing messages per client, across all triggers.
    #[serde(default)]
    pub caps: Caps,
    /// The share of clients (percent, 0–50) held out as the control group: they get no marketing
    /// message, and what they would have been sent is recorded.
    #[serde(default = "default_holdout")]
    pub holdout_percent: u8,
    /// The salon's online booking page, behind the "Book" button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_url: Option<String>,
    /// The booking page with a master chosen, where the salon's booking widget has such a
    /// link: `{staff_id}` is replaced by the CRM's id of the client's favourite master in an
    /// offer's "Book" button. Without it the offer names the master and links `booking_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_master_url: Option<String>,
    /// The triggers in order of precedence: when several are due for a client, the first wins.
    #[serde(default)]
    pub triggers: Vec<TriggerSetting>,
    /// Reaching clients who have no Telegram chat by SMS, sent by the salon's CRM (and paid
    /// from the salon's SMS balance there). `None`: nobody is sent an SMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<SmsReach>,
}

/// SMS for clients without Telegram, under the same consent (an SMS opt-in on record), send
/// window, caps and control group as the Telegram messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsReach {
    /// One SMS inviting the client to the salon's bot (once per client).
    #[serde(default = "yes")]
    pub invite: bool,
    /// The reminders themselves by SMS as well, after the invitation.
    #[serde(default)]
    pub reminders: bool,
    /// The invitation's own text; `{link}` (the bot's link, required), `{name}`, `{salon}` and
    /// `{points}` are filled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_text: Option<Texts>,
}

fn yes() -> bool {
    true
}

impl Default for SmsReach {
    fn default() -> SmsReach {
        SmsReach {
            invite: true,
            reminders: false,
            invite_text: None,
        }
    }
}

fn default_zone() -> String {
    "Europe/Moscow".into()
}

fn default_holdout() -> u8 {
    10
}

impl Default for Engagement {
    fn default() -> Engagement {
        Engagement {
            time_zone: default_zone(),
            send_window: SendWindow::default(),
            caps: Caps::default(),
            holdout_percent: default_holdout(),
            booking_url: None,
            booking_master_url: None,
            triggers: Vec::new(),
            sms: None,
        }
    }
}

/// Local hours `[from_hour, to_hour)` in the salon's zone; 10–21 by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendWindow {
    pub from_hour: u8,
    pub to_hour: u8,
}

impl Default for SendWindow {
    fn default() -> SendWindow {
        SendWindow {
            from_hour: 10,
            to_hour: 21,
        }
    }
}

/// Frequency caps per client across all triggers: at most `per_7_days` marketing messages in
/// any 7 days and `per_30_days` in any 30 (1 and 4 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caps {
    pub per_7_days: u32,
    pub per_30_days: u32,
}

impl Default for Caps {
    fn default() -> Caps {
        Caps {
            per_7_days: 1,
            per_30_days: 4,
        }
    }
}

/// One trigger: its rule and, optionally, the salon's own text for it (else the built-in one).
/// (An unknown key is refused by the rule's own `deny_unknown_fields`.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerSetting {
    #[serde(flatten)]
    pub rule: TriggerRule,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Texts>,
    /// A personal offer the message carries (issue 14): bonus points or extra cashback until a
    /// deadline, its variants tested against each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<crate::offer::OfferSetting>,
}

/// A message in Russian and English; `{name}`, `{points}`, `{days}` and `{date}` are filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Texts {
    pub ru: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub en: Option<String>,
}

/// When a trigger is due. Each fires once per absence (keyed by the client's last visit that
/// came); the birthday once a year.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TriggerRule {
    /// The seed's rule: no visit for `days` days and at least `min_balance` points.
    Inactive { days: u32, min_balance: Points },
    /// Due again by the client's own rhythm: overdue by `overdue_percent` of their typical gap.
    /// Where the salon has too little history for rhythms, `fallback_days` since the last visit.
    Due {
        #[serde(default = "default_overdue")]
        overdue_percent: u32,
        #[serde(default = "default_fallback")]
        fallback_days: u32,
    },
    /// Likely stopped coming, by the client's own rhythm: an absence this long would happen
    /// less than `below_percent` % of the time were she still coming (`loyalty_engage::lapse`).
    Lapsed {
        #[serde(default = "default_lapsed")]
        below_percent: u32,
    },
    /// At risk of being lost (issue 14): BG/NBD's chance that she is still a client below
    /// `below_percent` %, for a client whose 12-month value is in the salon's top
    /// `top_percent` %. Used only at a salon whose own backtest says BG/NBD beats the rules;
    /// elsewhere it stays silent and says why (`loyalty_engage::risk`).
    AtRisk {
        #[serde(default = "default_at_risk")]
        below_percent: u32,
        #[serde(default = "default_top")]
        top_percent: u32,
    },
    /// At least `min_points` points expire within `within_days` days.
    Expiring {
        within_days: u32,
        #[serde(default = "one_point")]
        min_points: Points,
    },
    /// A no-show or cancellation `after_days` ago, with no visit since and nothing booked.
    Missed {
        #[serde(default = "one_day")]
        after_days: u32,
    },
    /// `days` after a first visit, when the client has not come again.
    WelcomeBack { days: u32 },
    /// `days_before` the birthday (with the program's birthday points, when it has them).
    Birthday {
        #[serde(default)]
        days_before: u32,
    },
}

fn default_overdue() -> u32 {
    25
}
fn default_fallback() -> u32 {
    30
}
fn default_lapsed() -> u32 {
    5
}
fn default_at_risk() -> u32 {
    30
}
fn default_top() -> u32 {
    20
}
fn one_point() -> Points {
    Points(1)
}
fn one_day() -> u32 {
    1
}

impl TriggerRule {
    /// The trigger's name in keys, reports and the CLI.
    pub fn name(&self) -> &'static str {
        match self {
            TriggerRule::Inactive { .. } => "inactive",
            TriggerRule::Due { .. } => "due",
            TriggerRule::Lapsed { .. } => "lapsed",
            TriggerRule::AtRisk { .. } => "at_risk",
            TriggerRule::Expiring { .. } => "expiring",
            TriggerRule::Missed { .. } => "missed",
            TriggerRule::WelcomeBack { .. } => "welcome_back",
            TriggerRule::Birthday { .. } => "birthday",
        }
    }
}

/// Why a reminders' setting is refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EngageError {
    #[error("engage.time_zone: {0:?} is not a time zone the tz database knows")]
    UnknownZone(String),
    #[error("engage.send_window: hours must be 0–24 with from_hour < to_hour (got {0}–{1})")]
    Window(u8, u8),
    #[error("engage.caps: {0}")]
    Caps(&'static str),
    #[error("engage.holdout_percent: at most 50 (got {0})")]
    Holdout(u8),
    #[error("engage.triggers: {0}")]
    Trigger(String),
    #[error("engage.sms: {0}")]
    Sms(&'static str),
}

impl Engagement {
    /// The salon's zone, from the tz database compiled into the binary.
    pub fn zone(&self) -> Result<chrono_tz::Tz, EngageError> {
        self.time_zone
            .parse::<chrono_tz::Tz>()
            .map_err(|_| EngageError::UnknownZone(self.time_zone.clone()))
    }

    pub fn validate(&self) -> Result<(), EngageError> {
        self.zone()?;
        let w = self.send_window;
        if w.from_hour >= w.to_hour || w.to_hour > 24 {
            return Err(EngageError::Window(w.from_hour, w.to_hour));
        }
        if self.caps.per_7_days == 0 || self.caps.per_30_days == 0 {
            return Err(EngageError::Caps("at least 1 (turn a trigger off instead)"));
        }
        if self.caps.per_7_days > self.caps.per_30_days {
            return Err(EngageError::Caps("per_7_days cannot exceed per_30_days"));
        }
        if self.holdout_percent > 50 {
            return Err(EngageError::Holdout(self.holdout_percent));
        }
        let mut seen = BTreeSet::new();
        for t in &self.triggers {
            let name = t.rule.name();
            if !seen.insert(name) {
                return Err(EngageError::Trigger(format!("{name} is listed twice")));
            }
            let bad = |what: &str| Err(EngageError::Trigger(format!("{name}: {what}")));
            match &t.rule {
                TriggerRule::Inactive { days, min_balance } => {
                    if *days == 0 || *days > 3650 {
                        return bad("days must be 1–3650");
                    }
                    if min_balance.value() < 0 {
                        return bad("min_balance cannot be negative");
                    }
                }
                TriggerRule::Due {
                    overdue_percent,
                    fallback_days,
                } => {
                    if *overdue_percent > 500 {
                        return bad("overdue_percent must be 0–500");
                    }
                    if *fallback_days == 0 || *fallback_days > 3650 {
                        return bad("fallback_days must be 1–3650");
                    }
                }
                TriggerRule::Lapsed { below_percent } => {
                    if *below_percent == 0 || *below_percent > 50 {
                        return bad("below_percent must be 1–50");
                    }
                }
                TriggerRule::AtRisk {
                    below_percent,
                    top_percent,
                } => {
                    if *below_percent == 0 || *below_percent > 90 {
                        return bad("below_percent must be 1–90");
                    }
                    if *top_percent == 0 || *top_percent > 100 {
                        return bad("top_percent must be 1–100");
                    }
                }
                TriggerRule::Expiring {
                    within_days,
                    min_points,
                } => {
                    if *within_days == 0 || *within_days > 365 {
                        return bad("within_days must be 1–365");
                    }
                    if !min_points.is_positive() {
                        return bad("min_points must be at least 1");
                    }
                }
                TriggerRule::Missed { after_days } => {
                    if *after_days > 60 {
                        return bad("after_days must be 0–60");
                    }
                }
                TriggerRule::WelcomeBack { days } => {
                    if *days == 0 || *days > 365 {
                        return bad("days must be 1–365");
                    }
                }
                TriggerRule::Birthday { days_before } => {
                    if *days_before > 30 {
                        return bad("days_before must be 0–30");
                    }
                }
            }
            if let Some(text) = &t.text
                && (text.ru.trim().is_empty()
                    || text.en.as_ref().is_some_and(|e| e.trim().is_empty()))
            {
                return bad("a text cannot be empty");
            }
            if let Some(o) = &t.offer
                && let Err(why) = crate::offer::check(o)
            {
                return bad(&why);
            }
        }
        if let Some(url) = &self.booking_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(EngageError::Trigger(format!(
                "booking_url must be an http(s) URL (got {url:?})"
            )));
        }
        if let Some(url) = &self.booking_master_url
            && (!(url.starts_with("https://") || url.starts_with("http://"))
                || !url.contains("{staff_id}"))
        {
            return Err(EngageError::Trigger(format!(
                "booking_master_url must be an http(s) URL with {{staff_id}} (got {url:?})"
            )));
        }
        if let Some(t) = self.sms.as_ref().and_then(|s| s.invite_text.as_ref()) {
            let texts = std::iter::once(&t.ru).chain(t.en.as_ref());
            if texts.clone().any(|x| x.trim().is_empty()) {
                return Err(EngageError::Sms("invite_text cannot be empty"));
            }
            if texts.clone().any(|x| !x.contains("{link}")) {
                return Err(EngageError::Sms(
                    "invite_text must contain {link}, where the bot's link goes",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(t: TriggerRule) -> Engagement {
        Engagement {
            triggers: vec![TriggerSetting {
                rule: t,
                text: None,
                offer: None,
            }],
            ..Engagement::default()
        }
    }

    #[test]
    fn reads_the_documented_json() {
        let e: Engagement = serde_json::from_str(
            r#"{"time_zone": "Asia/Yekaterinburg", "triggers": [
                {"kind": "due"},
                {"kind": "inactive", "days": 30, "min_balance": 100,
                 "text": {"ru": "{name}, мы скучаем"}}]}"#,
        )
        .unwrap();
        assert_eq!(e.send_window, SendWindow::default());
        assert_eq!(e.caps, Caps::default());
        assert_eq!(e.holdout_percent, 10);
        assert_eq!(
            e.triggers[0].rule,
            TriggerRule::Due {
                overdue_percent: 25,
                fallback_days: 30
            }
        );
        assert_eq!(e.validate(), Ok(()));
        assert_eq!(e.zone().unwrap(), chrono_tz::Asia::Yekaterinburg);
    }

    #[test]
    fn refuses_what_cannot_run() {
        let zone = Engagement {
            time_zone: "Europe/Atlantis".into(),
            ..Engagement::default()
        };
        assert_eq!(
            zone.validate(),
            Err(EngageError::UnknownZone("Europe/Atlantis".into()))
        );
        let night = Engagement {
            send_window: SendWindow {
                from_hour: 21,
                to_hour: 10,
            },
            ..Engagement::default()
        };
        assert_eq!(night.validate(), Err(EngageError::Window(21, 10)));
        let twice = Engagement {
            triggers: [
                with(TriggerRule::WelcomeBack { days: 7 }).triggers,
                with(TriggerRule::WelcomeBack { days: 9 }).triggers,
            ]
            .concat(),
            ..Engagement::default()
        };
        assert!(matches!(twice.validate(), Err(EngageError::Trigger(m)) if m.contains("twice")));
        assert!(
            with(TriggerRule::Inactive {
                days: 0,
                min_balance: Points::ZERO
            })
            .validate()
            .is_err()
        );
        assert!(
            serde_json::from_str::<Engagement>(r#"{"triggers": [{"kind": "sometimes"}]}"#).is_err()
        );
        assert!(serde_json::from_str::<Engagement>(r#"{"holdout": 5}"#).is_err());
        let holdout = Engagement {
            holdout_percent: 60,
            ..Engagement::default()
        };
        assert_eq!(holdout.validate(), Err(EngageError::Holdout(60)));
        let no_link: Engagement =
            serde_json::from_str(r#"{"sms": {"invite_text": {"ru": "Приходите в бот"}}}"#).unwrap();
        assert!(matches!(no_link.validate(), Err(EngageError::Sms(m)) if m.contains("{link}")));
        let sms: Engagement = serde_json::from_str(r#"{"sms": {}}"#).unwrap();
        assert_eq!(sms.sms, Some(SmsReach::default()));
        assert_eq!(sms.validate(), Ok(()));
        assert!(serde_json::from_str::<Engagement>(r#"{"sms": {"invites": true}}"#).is_err());
        let risk: Engagement =
            serde_json::from_str(r#"{"triggers": [{"kind": "at_risk"}]}"#).unwrap();
        assert_eq!(
            risk.triggers[0].rule,
            TriggerRule::AtRisk {
                below_percent: 30,
                top_percent: 20
            }
        );
        assert!(
            with(TriggerRule::AtRisk {
                below_percent: 30,
                top_percent: 0
            })
            .validate()
            .is_err()
        );
    }
}
