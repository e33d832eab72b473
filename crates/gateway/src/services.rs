//! Keeping each connection's service list fresh for the rewards catalog: on demand
//! (`services sync`), on a CRM's service webhook, and every [`SYNC_EVERY`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loyalty_core::CrmAdapter;
use loyalty_core::adapter::CrmNamed;
use loyalty_core::quota::Priority;
use loyalty_core::{AdapterError, Clock, ConnectionId, SystemClock};
use loyalty_store::{DirectorySync, ServiceSync, SqlStore};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::cli::Usage;
use crate::connections::Connections;
use crate::server::App;

/// How often every connection's service list is read again.
pub const SYNC_EVERY: Duration = Duration::from_secs(6 * 3600);

/// What a sync of one connection found: its services, and its other lists (masters, service
/// categories, goods) where the CRM gives them.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Synced {
    pub services: ServiceSync,
    pub directories: std::collections::BTreeMap<&'static str, DirectorySync>,
    /// Lists the CRM could not give this time (the services were synced all the same).
    pub errors: Vec<String>,
}

/// Reads the connection's service list from its CRM into the catalog, then its masters,
/// service categories and goods.
pub(crate) async fn sync(
    connections: &Connections,
    sql: &SqlStore,
    id: ConnectionId,
) -> anyhow::Result<Synced> {
    // A service list is a bulk read: it goes after live work, like a poll.
    let Some(found) = connections.by_id(id, Priority::Poll).await? else {
        return Err(Usage(format!("connection {id} does not exist")).into());
    };
    let services = found.adapter.list_services().await.map_err(|e| match e {
        AdapterError::Unsupported(_) => anyhow::Error::new(Usage(format!(
            "{} cannot list its services through an API",
            found.connection.kind
        ))),
        AdapterError::Auth(why) => anyhow::Error::new(Usage(format!(
            "connection {id} cannot read the CRM's services: {why} \
             (connection add with --partner-token and --user-token)"
        ))),
        other => anyhow::Error::new(other).context("the CRM did not give its services"),
    })?;
    let now = SystemClock.now_ms();
    let mut synced = Synced {
        services: sql.sync_services(&found.connection, &services, now).await?,
        ..Synced::default()
    };
    let adapter = found.adapter.as_ref();
    let staff = adapter.list_staff().await.map(|all| {
        all.into_iter()
            .map(|s| CrmNamed {
                external_id: s.external_id,
                name: s.name,
            })
            .collect::<Vec<_>>()
    });
    let lists = [
        ("staff", staff),
        ("category", adapter.list_categories().await),
        ("good", goods(adapter).await),
    ];
    for (kind, listed) in lists {
        match listed {
            Ok(items) => {
                let report = sql
                    .sync_directory(&found.connection, kind, &items, now)
                    .await?;
                synced.directories.insert(kind, report);
            }
            Err(AdapterError::Unsupported(_)) => {}
            Err(e) => synced.errors.push(format!("{kind}: {e}")),
        }
    }
    Ok(synced)
}

/// Every page of the CRM's goods (at most 50 pages).
async fn goods(adapter: &dyn CrmAdapter) -> Result<Vec<CrmNamed>, AdapterError> {
    let mut all = Vec::new();
    let mut page = 1;
    for _ in 0..50 {
        let (items, next) = adapter.list_goods(page).await?;
        all.extend(items);
        match next {
            Some(n) if n > page => page = n,
            _ => break,
        }
    }
    Ok(all)
}

/// Syncs one connection and logs how it went (for the loops and the webhook trigger).
pub(crate) async fn sync_logged(connections: &Connections, sql: &SqlStore, id: ConnectionId) {
    match sync(connections, sql, id).await {
        Ok(r) => info!(
            connection = %id,
            listed = r.services.listed,
            added = r.services.added,
            changed = r.services.changed,
            gone = r.services.gone,
            rewards_stopped = r.services.rewards_stopped,
            staff = r.directories.get("staff").map_or(0, |d| d.listed),
            errors = r.errors.len(),
            "synced the CRM's services and lists"
        ),
        // A CRM without a service list, or a connection without API tokens: nothing to do.
        Err(e) if e.downcast_ref::<Usage>().is_some() => {
            debug!(connection = %id, reason = %e, "services not synced")
        }
        Err(e) => warn!(connection = %id, error = format!("{e:#}"), "could not sync services"),
    }
}

/// Every [`SYNC_EVERY`] (the first one after that pause: a restart does not call every CRM),
/// each connection's service list.
pub(crate) async fn sync_loop(
    sql: Arc<SqlStore>,
    connections: Arc<Connections>,
    mut stop: watch::Receiver<bool>,
) {
    while !crate::stopped_during(SYNC_EVERY, &mut stop).await {
        match sql.connections().await {
            Ok(all) => {
                for c in all {
                    sync_logged(&connections, &sql, c.id).await;
                }
            }
            Err(e) => warn!(error = %e, "could not list connections to sync services"),
        }
    }
}

/// Whether a webhook's resource is about the lists a sync reads (services, their categories,
/// masters, goods).
pub fn touches_services(resource: &str) -> bool {
    matches!(resource, "service" | "service_category" | "staff" | "good")
}

/// Syncs asked for by webhooks, at most one running per connection. Editing a price list in
/// the CRM sends one webhook per service; a burst costs the sync that is running and one more
/// after it (which sees every change), not one full list per webhook.
#[derive(Debug, Default)]
pub struct Pending(Mutex<HashMap<ConnectionId, bool>>);

impl Pending {
    /// True when the caller should run a sync now; otherwise the running one will run again.
    fn start(&self, id: ConnectionId) -> bool {
        let mut running = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match running.get_mut(&id) {
            Some(again) => {
                *again = true;
                false
            }
            None => {
                running.insert(id, false);
                true
            }
        }
    }

    /// After a sync: true when another was asked for meanwhile and should run now.
    fn again(&self, id: ConnectionId) -> bool {
        let mut running = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match running.get_mut(&id) {
            Some(again) if *again => {
                *again = false;
                true
            }
            _ => {
                running.remove(&id);
                false
            }
        }
    }
}

/// Asks for a sync of the connection's services in the background (after a service webhook).
pub(crate) fn request(app: &Arc<App>, id: ConnectionId) {
    if !app.service_syncs.start(id) {
        return;
    }
    let app = Arc::clone(app);
    tokio::spawn(async move {
        loop {
            sync_logged(&app.connections, &app.store, id).await;
            if !app.service_syncs.again(id) {
                break;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_requests_is_one_sync_and_one_more() {
        let pending = Pending::default();
        let (a, b) = (ConnectionId(1), ConnectionId(2));
        assert!(pending.start(a), "nothing runs: run it");
        assert!(!pending.start(a), "one runs: it will run again");
        assert!(!pending.start(a));
        assert!(pending.start(b), "another connection is its own");
        assert!(pending.again(a), "asked meanwhile: once more");
        assert!(!pending.again(a), "nothing asked since: done");
        assert!(pending.start(a), "done, so a new request runs");
        assert!(!pending.again(a));
        assert!(!pending.again(b));
    }
}
