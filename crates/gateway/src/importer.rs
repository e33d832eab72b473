//! History imports in the background of `serve`: a connection added with API tokens queues
//! one, and whichever instance leases it first runs it, a page at a time, at the import
//! priority of the CRM budget (after live work, write-backs and the poller).

use std::sync::Arc;
use std::time::Duration;

use loyalty_core::LoyaltyEngine;
use loyalty_core::engine::{ImportRun, Quiet};
use loyalty_core::import::ImportStore;
use loyalty_core::quota::Priority;
use loyalty_store::SqlStore;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::cli::IMPORT_LEASE_MS;
use crate::connections::Connections;

/// How often unfinished imports are looked for (a failed page is tried again then).
const EVERY: Duration = Duration::from_secs(30);

pub(crate) async fn import_loop(
    engine: LoyaltyEngine,
    store: Arc<SqlStore>,
    connections: Arc<Connections>,
    owner: String,
    wake: Arc<tokio::sync::Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = one_round(&engine, &store, &connections, &owner).await {
            warn!(error = %e, "could not look for history imports");
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            // A connection made in the dashboard: its import starts now.
            _ = wake.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn one_round(
    engine: &LoyaltyEngine,
    store: &SqlStore,
    connections: &Connections,
    owner: &str,
) -> anyhow::Result<()> {
    for job in store.imports(None).await? {
        if job.is_done() {
            continue;
        }
        let Some(found) = connections
            .by_id(job.connection_id, Priority::Import)
            .await?
        else {
            continue;
        };
        if job.is_fresh() {
            // The price list first: its service categories are what records are filed under.
            crate::services::sync_logged(connections, store, job.connection_id).await;
        }
        let run = engine
            .run_import(
                store,
                store,
                &found.connection,
                found.adapter.as_ref(),
                Some(job.id),
                owner,
                IMPORT_LEASE_MS,
                &Quiet,
            )
            .await;
        match run {
            Ok(ImportRun::Done(done)) => info!(
                connection = %done.connection_id,
                clients = done.clients_seen,
                records = done.records_seen,
                errors = done.errors,
                "history import done"
            ),
            Ok(_) => {}
            Err(e) => warn!(
                connection = %job.connection_id,
                error = %e,
                "history import stopped; it continues in the next round"
            ),
        }
    }
    Ok(())
}
