//! Reminders run by themselves: `serve` scans every salon that has reminders set, every
//! `engage_interval_s` (an hour by default), on any number of instances — each salon's scan
//! under a lease, so one instance scans it at a time. A scan outside the salon's send window
//! records nothing, so each salon's reminders go out in its own daytime; the reminders' worker
//! sends what a scan queued.

use std::sync::Arc;
use std::time::Duration;

use loyalty_core::{Clock, PartnerId, PartnerStore, StoreError};
use loyalty_engage::EngageStore;
use loyalty_engage::scan::{Report, Salon, ScanError, scan};
use loyalty_store::SqlStore;
use tokio::sync::watch;
use tracing::{info, warn};

/// A scan's lease: longer than any scan takes.
const LEASE_MS: i64 = 10 * 60_000;
/// Lines kept in a scheduled scan's stored report.
const REPORT_LINES: usize = 200;

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
    let salon = Salon {
        partner,
        name: Some(&p.name),
        settings,
        birthday_points: p.program.birthday.as_ref().map(|b| b.points.value()),
    };
    let report = scan(store, &salon, now_ms, true, None, REPORT_LINES).await;
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
                for partner in ids {
                    if *stopping.borrow() {
                        return;
                    }
                    match scan_partner(&store, partner, &owner, clock.now_ms()).await {
                        Ok(Some(r)) => info!(
                            partner = partner.0,
                            clients = r.clients,
                            recorded = r.recorded,
                            "reminders scan"
                        ),
                        Ok(None) => {}
                        Err(e) => warn!(partner = partner.0, error = %e, "reminders scan failed"),
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
