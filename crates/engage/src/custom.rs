//! A custom trigger's message (issue 18) through the reminders' delivery policy: due by an
//! event rather than found by a scan, it passes the same steps — the send window, the caps,
//! reach and consent, the control group — and is recorded with the reminders under
//! `(client, "custom", "{trigger}:{event key}")`, so it counts against the caps like any
//! reminder and goes out by the reminders' worker.

use loyalty_core::ClientId;
use loyalty_core::custom::TriggerMessage;

use crate::cadence::SalonRhythm;
use crate::policy::{Scan, Verdict, judge};
use crate::scan::{Salon, ScanError};
use crate::store::{EngageStore, NewSend, Page, Reminder};
use crate::trigger::{Context, Due, Why};

/// The name custom triggers' messages are recorded under.
pub const CUSTOM: &str = "custom";

/// What became of a message: decided (`send`, `control`, `unreachable`, `no_consent`), or
/// waiting until a time (quiet hours, a full cap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageFate {
    Decided(&'static str),
    Wait(i64),
}

/// One custom trigger's message for `client`, as fired for `event_key`: decided by the policy
/// now and, when sent or held out, recorded.
pub async fn decide_message(
    store: &dyn EngageStore,
    salon: &Salon<'_>,
    client: ClientId,
    trigger: &str,
    event_key: &str,
    message: &TriggerMessage,
    now_ms: i64,
) -> Result<MessageFate, ScanError> {
    let tz = salon.settings.zone()?;
    let salt = store.engage_salt(salon.partner).await?;
    let page = Page {
        after: ClientId(client.0.saturating_sub(1)),
        limit: 1,
    };
    let with_sms = salon.sms && salon.settings.sms.is_some();
    let batch = store
        .snapshots(salon.partner, now_ms, now_ms, page, with_sms)
        .await?;
    let Some((s, name)) = batch.clients.into_iter().find(|(s, _)| s.client == client) else {
        return Ok(MessageFate::Decided("unreachable"));
    };
    let rhythm = SalonRhythm::default();
    let scan = Scan {
        settings: salon.settings,
        tz,
        salt,
        context: Context {
            now_ms,
            tz,
            salon: &rhythm,
            model: None,
        },
        sms: salon.sms,
    };
    let due = Due {
        trigger: CUSTOM,
        rank: 0,
        cycle: format!("{trigger}:{event_key}"),
        why: Why::Custom {
            name: trigger.to_owned(),
        },
    };
    let Some(d) = judge(&s, &scan, due) else {
        return Ok(MessageFate::Decided("unreachable"));
    };
    match d.verdict {
        Verdict::Wait { until_ms, .. } => return Ok(MessageFate::Wait(until_ms)),
        Verdict::Unreachable | Verdict::NoConsent => {
            return Ok(MessageFate::Decided(d.verdict.name()));
        }
        Verdict::Send | Verdict::Control => {}
    }
    let send = NewSend {
        client,
        trigger: CUSTOM.to_owned(),
        cycle: d.due.cycle.clone(),
        control: d.verdict == Verdict::Control,
        channel: d.channel,
        why: d.due.why.to_string(),
        reminder: Reminder {
            trigger: CUSTOM.to_owned(),
            salon: salon.name.map(str::to_owned),
            name,
            points: s.balance.value(),
            days: 0,
            date: None,
            birthday_points: None,
            text: Some(message.text.clone()),
            booking_url: salon.settings.booking_url.clone(),
            offer: None,
            level: message.level.clone(),
            master: message.master.clone(),
        },
        decided_at_ms: now_ms,
    };
    store.record_sends(salon.partner, &[send]).await?;
    Ok(MessageFate::Decided(d.verdict.name()))
}
