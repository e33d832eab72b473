//! The reconciliation poller: every connection whose CRM can list records changed since a time
//! is read every `poll_interval_s` (the deployment's, or the connection's own), so a webhook
//! the CRM lost costs minutes, not points. Each pass runs under a lease in the database, so
//! several gateway instances never poll one connection at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use loyalty_core::sync::{PollPolicy, SyncCursor, SyncStore};
use loyalty_core::{Clock, LoyaltyEngine, SystemClock};
use loyalty_store::SqlStore;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use crate::connections::Connections;

/// How often the poller looks for connections that are due.
const TICK: Duration = Duration::from_secs(5);

/// A connection's interval: its own, else the deployment's; 0 means not polled.
pub fn interval_of(cursor: Option<&SyncCursor>, default_s: u32) -> u32 {
    cursor.and_then(|c| c.interval_s).unwrap_or(default_s)
}

/// Whether a connection is due for a pass at `now_ms`.
pub fn due(cursor: Option<&SyncCursor>, default_s: u32, now_ms: i64) -> bool {
    let interval = interval_of(cursor, default_s);
    if interval == 0 {
        return false;
    }
    match cursor.and_then(|c| c.last_started_ms) {
        Some(last) => now_ms - last >= i64::from(interval) * 1_000,
        None => true,
    }
}

/// Runs until the gateway stops. `owner` names this instance in the leases.
pub(crate) async fn poll_loop(
    engine: LoyaltyEngine,
    store: Arc<SqlStore>,
    connections: Arc<Connections>,
    default_interval_s: u32,
    owner: String,
    inbox_wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let policy = PollPolicy::default();
    loop {
        if let Err(e) = one_round(
            &engine,
            &store,
            &connections,
            default_interval_s,
            &owner,
            &inbox_wake,
            &policy,
        )
        .await
        {
            warn!(error = %e, "the reconciliation poller could not run");
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn one_round(
    engine: &LoyaltyEngine,
    store: &SqlStore,
    connections: &Connections,
    default_interval_s: u32,
    owner: &str,
    inbox_wake: &Notify,
    policy: &PollPolicy,
) -> anyhow::Result<()> {
    let cursors: HashMap<_, _> = store
        .sync_cursors(None)
        .await?
        .into_iter()
        .map(|c| (c.connection_id, c))
        .collect();
    for connection in store.connections().await? {
        let cursor = cursors.get(&connection.id);
        if !due(cursor, default_interval_s, SystemClock.now_ms()) {
            continue;
        }
        let Some(found) = connections.by_id(connection.id).await? else {
            continue;
        };
        if !found.adapter.capabilities().poll_records {
            continue;
        }
        match engine
            .poll_pass(
                store,
                store,
                &found.connection,
                found.adapter.as_ref(),
                owner,
                policy,
            )
            .await
        {
            Ok(Some(report)) => {
                if report.queued > 0 {
                    inbox_wake.notify_one();
                }
                if report.errors > 0 || !report.complete {
                    warn!(
                        connection = %connection.id,
                        seen = report.seen,
                        applied = report.applied,
                        errors = report.errors,
                        complete = report.complete,
                        last_error = report.last_error.as_deref().unwrap_or_default(),
                        "reconciliation pass with errors"
                    );
                } else if report.applied > 0 || report.queued > 0 {
                    info!(
                        connection = %connection.id,
                        seen = report.seen,
                        applied = report.applied,
                        queued = report.queued,
                        "reconciliation pass found changes"
                    );
                }
            }
            // Another instance is polling it.
            Ok(None) => {}
            Err(e) => warn!(connection = %connection.id, error = %e, "reconciliation pass failed"),
        }
    }
    Ok(())
}
