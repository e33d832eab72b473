//! The reconciliation poller: every connection whose CRM can list records changed since a time
//! is read every `poll_interval_s` (the deployment's, or the connection's own), so a webhook
//! the CRM lost costs minutes, not points. Each pass runs under a lease in the database, so
//! several gateway instances never poll one connection at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use loyalty_core::audit::Capability;
use loyalty_core::quota::{Limits, Priority, QuotaStore};
use loyalty_core::sync::{PollPolicy, SyncCursor, SyncStore};
use loyalty_core::{Clock, LoyaltyEngine, SystemClock};
use loyalty_core::{ConnectionId, CrmConnection, CrmKind};
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

/// The interval a connection actually gets: its own (or the deployment's), stretched so that
/// the `polled` connections of one budget, one call a pass each, fit in the calls a minute
/// the budget has left (`spare_per_min`). A budget of 200 a minute with half of it spare
/// polls 500 salons every 5 minutes; 1,000 every 10.
pub fn effective_interval(interval_s: u32, polled: usize, spare_per_min: u32) -> u32 {
    if interval_s == 0 {
        return 0;
    }
    let spare = u64::from(spare_per_min.max(1));
    let needed = (polled as u64 * 60).div_ceil(spare);
    interval_s.max(u32::try_from(needed).unwrap_or(u32::MAX))
}

/// The calls a minute a budget has left for polling: its per-minute limit less what live
/// work and write-backs took in the last minute, never under a tenth of the limit.
pub fn spare_per_min(
    limits: &Limits,
    calls_last_minute: &[(i64, Option<ConnectionId>, i16)],
) -> u32 {
    let per_minute = limits.per_minute();
    let urgent = calls_last_minute
        .iter()
        .filter(|c| c.2 <= Priority::WriteBack.as_i16())
        .count() as u32;
    per_minute.saturating_sub(urgent).max(per_minute / 10)
}

/// Whether a connection is due for a pass at `now_ms`, at `interval_s`.
pub fn due(cursor: Option<&SyncCursor>, interval_s: u32, now_ms: i64) -> bool {
    let interval = interval_s;
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
    let all = store.connections().await?;
    let stretch = Stretch::read(store, connections.egress(), &all).await?;
    for connection in all {
        let cursor = cursors.get(&connection.id);
        let interval = stretch.interval(&connection, interval_of(cursor, default_interval_s));
        if !due(cursor, interval, SystemClock.now_ms()) {
            continue;
        }
        let Some(found) = connections.by_id(connection.id, Priority::Poll).await? else {
            continue;
        };
        // The poller is part of the CRM integration: not on a plan without it.
        if !found.adapter.capabilities().poll_records
            || !found.plan.allows(Capability::CrmIntegration)
        {
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

/// What stretches the intervals: per budget, how many connections are polled and how many
/// calls a minute are left.
pub struct Stretch {
    per_kind: HashMap<CrmKind, (usize, u32)>,
}

impl Stretch {
    /// Reads the last minute of each budget the connections use.
    pub async fn read(
        store: &SqlStore,
        egress: &str,
        connections: &[CrmConnection],
    ) -> anyhow::Result<Stretch> {
        let mut per_kind: HashMap<CrmKind, (usize, u32)> = HashMap::new();
        let since = SystemClock.now_ms() - 60_000;
        for c in connections {
            if let Some(entry) = per_kind.get_mut(&c.kind) {
                entry.0 += 1;
                continue;
            }
            let calls = store
                .budget_calls(&crate::quota::budget_of(c.kind, egress), since)
                .await?;
            per_kind.insert(c.kind, (1, spare_per_min(&Limits::of(c.kind), &calls)));
        }
        Ok(Stretch { per_kind })
    }

    /// The interval `connection` gets for a wanted `interval_s`.
    pub fn interval(&self, connection: &CrmConnection, interval_s: u32) -> u32 {
        let (polled, spare) = self
            .per_kind
            .get(&connection.kind)
            .copied()
            .unwrap_or((1, 200));
        effective_interval(interval_s, polled, spare)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_stretch_to_the_budget() {
        // 200 a minute, nothing urgent: 1,000 salons every 5 minutes.
        let limits = Limits::yclients();
        assert_eq!(spare_per_min(&limits, &[]), 200);
        assert_eq!(effective_interval(300, 1_000, 200), 300);
        // Half the minute went to live work: every 10 minutes.
        let live: Vec<_> = (0..100).map(|i| (i, None, 0)).collect();
        assert_eq!(spare_per_min(&limits, &live), 100);
        assert_eq!(effective_interval(300, 1_000, 100), 600);
        // Imports and polls do not count as urgent; a full minute of live work leaves a tenth.
        let polls: Vec<_> = (0..150).map(|i| (i, None, 2)).collect();
        assert_eq!(spare_per_min(&limits, &polls), 200);
        let flood: Vec<_> = (0..300).map(|i| (i, None, 0)).collect();
        assert_eq!(spare_per_min(&limits, &flood), 20);
        assert_eq!(effective_interval(300, 1_000, 20), 3_000);
        // Off stays off; few salons keep their own interval.
        assert_eq!(effective_interval(0, 1_000, 20), 0);
        assert_eq!(effective_interval(60, 3, 200), 60);
        // Arnica allows 900 a minute; Beauty Pro 100 a second, 6,000 a minute.
        assert_eq!(spare_per_min(&Limits::arnica(), &[]), 900);
        assert_eq!(spare_per_min(&Limits::beautypro(), &[]), 6_000);
    }
}
