//! Connection health: what each connection's CRM answers and when its webhooks arrive are
//! noted in memory as they happen (no database write on the hot path), and a loop turns them
//! into incidents every minute — opened once, the salon's staff chats told once, closed when
//! it clears. See [`loyalty_core::health`].

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use loyalty_core::SystemClock;
use loyalty_core::health::{HealthStore, Incident, StaffNotice, WEBHOOKS_SILENT_MS};
use loyalty_core::sync::SyncStore;
use loyalty_core::{AdapterError, Clock, ConnectionId, CrmConnection, CrmKind, PartnerId};
use loyalty_store::SqlStore;
use tokio::sync::watch;
use tracing::{info, warn};

/// How often incidents are looked for.
pub const HEALTH_EVERY: Duration = Duration::from_secs(60);

/// What this instance saw since the last check.
#[derive(Debug, Default)]
pub struct Health {
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    /// Per connection, how its CRM last answered: `Some(why)` refused, `None` accepted;
    /// only changes not yet checked.
    answers: HashMap<ConnectionId, (PartnerId, CrmKind, Option<String>)>,
    /// The last state checked, so a steady state costs nothing.
    reported: HashMap<ConnectionId, bool>,
    /// The latest webhook per connection since the last check.
    webhooks: HashMap<ConnectionId, (PartnerId, i64)>,
}

impl Health {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When this instance last took a webhook of `connection` that is not in the database
    /// yet (it is written at the next check).
    pub fn unflushed_webhook(&self, connection: ConnectionId) -> Option<i64> {
        self.seen().webhooks.get(&connection).map(|(_, at)| *at)
    }

    /// A CRM call of `connection` ended with `outcome`. Credentials or licence refused opens
    /// the incident; any answer that shows the CRM took the credentials closes it; failures
    /// that say nothing of them (timeouts, 5xx, 429) change nothing.
    pub fn crm_answered<T>(&self, connection: &CrmConnection, outcome: &Result<T, AdapterError>) {
        let refused = match outcome {
            Err(AdapterError::Auth(why)) | Err(AdapterError::Forbidden(why)) => Some(why.clone()),
            Err(
                AdapterError::RateLimited { .. }
                | AdapterError::Transient(_)
                | AdapterError::Unsupported(_),
            ) => return,
            _ => None,
        };
        let mut seen = self.seen();
        if seen.reported.get(&connection.id) == Some(&refused.is_some()) {
            // Back to what was last checked: nothing to change.
            seen.answers.remove(&connection.id);
            return;
        }
        seen.answers.insert(
            connection.id,
            (connection.partner_id, connection.kind, refused),
        );
    }

    /// A webhook of `connection` arrived.
    pub fn webhook_arrived(&self, connection: &CrmConnection, at_ms: i64) {
        self.seen()
            .webhooks
            .insert(connection.id, (connection.partner_id, at_ms));
    }
}

/// The CRM's name as a salon knows it.
fn crm_name(kind: CrmKind) -> String {
    match kind {
        CrmKind::Yclients => "YCLIENTS".into(),
        CrmKind::Altegio => "Altegio".into(),
        CrmKind::Arnica => "Arnica".into(),
        CrmKind::Beautypro => "Beauty Pro".into(),
        CrmKind::Dikidi => "DIKIDI".into(),
        CrmKind::Desk => "the desk".into(),
    }
}

/// What one check changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Checked {
    pub opened: Vec<(ConnectionId, Incident)>,
    pub closed: Vec<(ConnectionId, Incident)>,
}

/// Looks at everything once: flushes the webhooks seen, opens and closes incidents.
pub async fn check(store: &SqlStore, health: &Health, now_ms: i64) -> anyhow::Result<Checked> {
    let (answers, webhooks) = {
        let mut seen = health.seen();
        let answers: Vec<_> = seen.answers.drain().collect();
        for (id, (_, _, refused)) in &answers {
            seen.reported.insert(*id, refused.is_some());
        }
        (answers, std::mem::take(&mut seen.webhooks))
    };
    for (id, (partner, at)) in webhooks {
        store.note_webhook(partner, id, at).await?;
    }
    let mut incidents = Incidents {
        store,
        now_ms,
        open: store
            .incidents(None, false)
            .await?
            .into_iter()
            .map(|i| (i.connection_id, i.incident))
            .collect(),
        done: Checked::default(),
    };
    let connections: HashMap<ConnectionId, CrmConnection> = store
        .connections()
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    for (id, (_, _, refused)) in answers {
        if let Some(c) = connections.get(&id) {
            incidents.set(c, Incident::CrmRefused, refused).await?;
        }
    }
    let dead: HashMap<ConnectionId, i64> = store.dead_letters().await?.into_iter().collect();
    let added: HashMap<ConnectionId, i64> = store.connections_added().await?.into_iter().collect();
    let cursors: HashMap<_, _> = store
        .sync_cursors(None)
        .await?
        .into_iter()
        .map(|k| (k.connection_id, k))
        .collect();
    for c in connections.values() {
        let letters = dead.get(&c.id).copied().unwrap_or(0);
        let detail = (letters > 0).then(|| {
            format!(
                "{letters} webhooks could not be completed from the CRM for days and wait for \
                 the operator (inbox list --dead, inbox replay)"
            )
        });
        incidents.set(c, Incident::DeadLetters, detail).await?;

        // Silent webhooks: the poller found records in the last day, and no webhook came for
        // a day (or ever, on a connection older than a day). Every CRM we connect sends each
        // webhook once (YCLIENTS, Altegio, Arnica) or has a subscription that can lapse (Beauty
        // Pro); DIKIDI sends none and the desk is no CRM: never this incident.
        let (Some(cursor), true) = (cursors.get(&c.id), c.kind.reports_visits()) else {
            continue;
        };
        let Some(since_webhook) = cursor.last_webhook_ms.or_else(|| added.get(&c.id).copied())
        else {
            continue;
        };
        let found_lately = cursor
            .last_found_ms
            .is_some_and(|at| now_ms - at < WEBHOOKS_SILENT_MS);
        let silent = now_ms - since_webhook >= WEBHOOKS_SILENT_MS;
        if silent && !found_lately {
            // Quiet, not broken (a salon closed for a day): left as it is.
            continue;
        }
        let detail = silent.then(|| match cursor.last_webhook_ms {
            Some(at) => format!(
                "no webhook for {} h while the reconciliation keeps finding visits",
                (now_ms - at) / 3_600_000
            ),
            None => {
                "no webhook has ever come while the reconciliation keeps finding visits".to_owned()
            }
        });
        incidents.set(c, Incident::WebhooksSilent, detail).await?;
    }
    Ok(incidents.done)
}

/// The open incidents as this check goes, and what it changed.
struct Incidents<'a> {
    store: &'a SqlStore,
    now_ms: i64,
    open: HashSet<(ConnectionId, Incident)>,
    done: Checked,
}

impl Incidents<'_> {
    /// Brings `incident` of `c` to `detail`: `Some` opens it (once), `None` closes it.
    async fn set(
        &mut self,
        c: &CrmConnection,
        incident: Incident,
        detail: Option<String>,
    ) -> anyhow::Result<()> {
        let key = (c.id, incident);
        let crm = crm_name(c.kind);
        match (detail, self.open.contains(&key)) {
            (Some(detail), false) => {
                let notice = StaffNotice::Opened {
                    connection_id: c.id,
                    crm,
                    incident,
                    detail: detail.clone(),
                };
                self.open.insert(key);
                let opened = self
                    .store
                    .open_incident(c.partner_id, c.id, incident, &detail, &notice, self.now_ms)
                    .await?;
                if opened {
                    warn!(connection = %c.id, incident = incident.as_str(), %detail,
                        "connection incident opened; the salon's staff are told");
                    self.done.opened.push(key);
                }
            }
            (None, true) => {
                let notice = StaffNotice::Closed {
                    connection_id: c.id,
                    crm,
                    incident,
                };
                self.open.remove(&key);
                if self
                    .store
                    .close_incident(c.id, incident, &notice, self.now_ms)
                    .await?
                {
                    info!(connection = %c.id, incident = incident.as_str(),
                        "connection incident closed; the salon's staff are told");
                    self.done.closed.push(key);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Runs [`check`] every [`HEALTH_EVERY`] until the gateway stops, and once more on the way
/// out (so the webhooks seen last are recorded).
pub(crate) async fn health_loop(
    store: std::sync::Arc<SqlStore>,
    health: std::sync::Arc<Health>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(every) => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        if let Err(e) = check(&store, &health, SystemClock.now_ms()).await {
            warn!(error = %e, "could not check the connections' health");
        }
        if stopping {
            return;
        }
    }
}
