//! Reminders run by themselves: `serve` scans every salon that has reminders set, every
//! `engage_interval_s` (an hour by default), on any number of instances — each salon's scan
//! under a lease, so one instance scans it at a time. A scan outside the salon's send window
//! records nothing, so each salon's reminders go out in its own daytime; the reminders' worker
//! sends what a scan queued.

use std::sync::Arc;
use std::time::Duration;

use loyalty_core::{Clock, PartnerId, PartnerStore, StoreError};
use loyalty_engage::EngageStore;
use loyalty_engage::custom::{MessageFate, decide_message};
use loyalty_engage::scan::{Report, Salon, ScanError, scan_with};
use loyalty_store::{QueuedTriggerMessage, SqlStore};
use tokio::sync::watch;
use tracing::{info, warn};

/// A scan's lease: longer than any scan takes.
const LEASE_MS: i64 = 10 * 60_000;
/// Lines kept in a scheduled scan's stored report.
const REPORT_LINES: usize = 200;
/// A salon's rhythm from its last scan serves the next one this long (the scan measures it
/// again as it goes); older, a scan measures it first.
const RHYTHM_FRESH_MS: i64 = 24 * 3_600_000;
/// Salons scanned at once: the database works some pages while the gateway decides others'.
/// Two left a core idle a third of the time on a 2-core host (each scan waits on the database
/// and then on the gateway in turn).
const CONCURRENT_SCANS: usize = 4;
pub use loyalty_store::models::MODEL_FRESH_MS;

/// Scans one salon now, under its lease; `None` when it has no reminders set or another
/// instance holds the lease.
pub async fn scan_partner(
    store: &SqlStore,
    partner: PartnerId,
    owner: &str,
    now_ms: i64,
) -> Result<Option<Report>, ScanError> {
    let Some(p) = store.partner(partner).await? else {
        return Err(StoreError::NotFound(format!("partner {partner}")).into());
    };
    let Some(settings) = &p.program.engage else {
        return Ok(None);
    };
    if !store.lease_scan(partner, owner, now_ms, LEASE_MS).await? {
        return Ok(None);
    }
    let model = store.model_for(partner, settings, now_ms).await?;
    let salon = Salon {
        partner,
        name: Some(&p.name),
        settings,
        birthday_points: p.program.birthday.as_ref().map(|b| b.points.value()),
        currency: p.program.currency,
        sms: settings.sms.is_some() && store.sends_sms(partner).await?,
        model: model.as_ref(),
    };
    let known = store
        .last_scan(partner)
        .await?
        .filter(|(at, _)| now_ms - at < RHYTHM_FRESH_MS)
        .and_then(|(_, text)| serde_json::from_str::<Report>(&text).ok())
        .map(|r| r.rhythm)
        .filter(|r| r.regulars > 0 || !r.categories.is_empty() || r.all.is_some());
    let report = scan_with(store, &salon, now_ms, true, None, REPORT_LINES, known).await;
    let text = match &report {
        Ok(r) => serde_json::to_string(r).unwrap_or_default(),
        Err(e) => serde_json::json!({ "error": e.to_string() }).to_string(),
    };
    store.finish_scan(partner, owner, now_ms, &text).await?;
    report.map(Some)
}

/// Every `every`, every salon with reminders; one salon's failure does not stop the others.
pub async fn engage_loop(
    store: Arc<SqlStore>,
    clock: Arc<dyn Clock>,
    every: Duration,
    owner: String,
    mut stopping: watch::Receiver<bool>,
) {
    if every.is_zero() {
        info!("reminders' scans are off (engage_interval_s = 0)");
        return;
    }
    loop {
        match store.partner_ids().await {
            Ok(ids) => {
                let mut queue = ids.into_iter();
                let mut running = tokio::task::JoinSet::new();
                loop {
                    while running.len() < CONCURRENT_SCANS && !*stopping.borrow() {
                        let Some(partner) = queue.next() else { break };
                        let (store, owner, now) =
                            (Arc::clone(&store), owner.clone(), clock.now_ms());
                        running.spawn(async move {
                            (partner, scan_partner(&store, partner, &owner, now).await)
                        });
                    }
                    let Some(done) = running.join_next().await else {
                        break;
                    };
                    match done {
                        Ok((partner, Ok(Some(r)))) => info!(
                            partner = partner.0,
                            clients = r.clients,
                            recorded = r.recorded,
                            "reminders scan"
                        ),
                        Ok((_, Ok(None))) => {}
                        Ok((partner, Err(e))) => {
                            warn!(partner = partner.0, error = %e, "reminders scan failed")
                        }
                        Err(e) => warn!(error = %e, "a reminders scan stopped"),
                    }
                }
            }
            Err(e) => warn!(error = %e, "reminders: cannot list partners"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopping.changed() => {}
        }
        if *stopping.borrow() {
            return;
        }
    }
}

/// A custom trigger's message waits for the policy (quiet hours, a full cap) at most this
/// long; older, it is dropped as expired: "thanks for your fifth visit" a week late is noise.
pub const TRIGGER_MESSAGE_TTL_MS: i64 = 3 * 24 * 3_600_000;
/// A claimed message is left alone by other instances this long.
const TRIGGER_LEASE_MS: i64 = 60_000;
/// Messages decided per pass.
const TRIGGER_BATCH: u32 = 200;

/// Puts the custom triggers' messages due now through the reminders' delivery policy: each is
/// recorded with the reminders (sent by their worker, or held out as the control group), waits
/// for the send window or the cap, or is dropped (no chat or consent, reminders off, too old).
/// Returns how many were decided; one salon's failure leaves its message for the next pass.
pub async fn trigger_messages(store: &SqlStore, now_ms: i64) -> Result<usize, ScanError> {
    let claimed = store
        .claim_trigger_messages(now_ms, TRIGGER_LEASE_MS, TRIGGER_BATCH)
        .await?;
    let mut decided = 0;
    for m in claimed {
        let fate = if now_ms - m.fired_at_ms > TRIGGER_MESSAGE_TTL_MS {
            Ok(MessageFate::Decided("expired"))
        } else {
            trigger_message(store, &m, now_ms).await
        };
        match fate {
            Ok(MessageFate::Decided(state)) => {
                store
                    .trigger_message_decided(m.id, Some(state), now_ms)
                    .await?;
                decided += 1;
            }
            Ok(MessageFate::Wait(until)) => {
                store.trigger_message_decided(m.id, None, until).await?;
            }
            // Its lease runs out and the next pass tries again.
            Err(e) => warn!(partner = m.partner.0, id = m.id, error = %e, "trigger message"),
        }
    }
    Ok(decided)
}

async fn trigger_message(
    store: &SqlStore,
    m: &QueuedTriggerMessage,
    now_ms: i64,
) -> Result<MessageFate, ScanError> {
    let Some(p) = store.partner(m.partner).await? else {
        return Ok(MessageFate::Decided("off"));
    };
    let Some(settings) = &p.program.engage else {
        return Ok(MessageFate::Decided("off"));
    };
    let salon = Salon {
        partner: m.partner,
        name: Some(&p.name),
        settings,
        birthday_points: None,
        currency: p.program.currency,
        sms: settings.sms.is_some() && store.sends_sms(m.partner).await?,
        model: None,
    };
    decide_message(
        store,
        &salon,
        m.client,
        &m.trigger,
        &m.event_key,
        &m.message,
        now_ms,
    )
    .await
}

/// Every `every`, the custom triggers' messages due.
pub async fn trigger_message_loop(
    store: Arc<SqlStore>,
    clock: Arc<dyn Clock>,
    every: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = trigger_messages(&store, clock.now_ms()).await {
            warn!(error = %e, "custom triggers' messages");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopping.changed() => {}
        }
        if *stopping.borrow() {
            return;
        }
    }
}
