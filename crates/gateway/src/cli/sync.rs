//! `sync status` and `sync interval`: the reconciliation poller per connection.

use loyalty_core::PartnerStore;
use loyalty_core::health::HealthStore;
use loyalty_core::sync::SyncStore;
use loyalty_core::{Clock, ConnectionId, SystemClock};
use loyalty_store::SqlStore;
use serde_json::{Value, json};

use super::Usage;
use crate::config::Config;
use crate::poller::{Stretch, interval_of};

/// `sync status [--connection ID]`: per connection, the last pass, the cursor and how far
/// behind now it is, the counts, the last error and the interval in force.
pub async fn sync_status(
    store: &SqlStore,
    config: &Config,
    connection: Option<i64>,
) -> anyhow::Result<Value> {
    let now = SystemClock.now_ms();
    let all = store.connections().await?;
    let stretch = Stretch::read(store, &config.egress, &all).await?;
    let connections = match connection {
        Some(id) => {
            let Some(c) = store.connection(ConnectionId(id)).await? else {
                return Err(Usage(format!("connection {id} does not exist")).into());
            };
            vec![c]
        }
        None => all.clone(),
    };
    let cursors = store.sync_cursors(connection.map(ConnectionId)).await?;
    let incidents = store.incidents(connection.map(ConnectionId), false).await?;
    let rows: Vec<Value> = connections
        .iter()
        .map(|c| {
            let cursor = cursors.iter().find(|k| k.connection_id == c.id);
            let interval = interval_of(cursor, config.poll_interval_s);
            json!({
                "connection": c.id,
                "partner": c.partner_id,
                "crm": c.kind,
                "company_id": c.company_id,
                "interval_s": interval,
                "effective_interval_s": stretch.interval(c, interval),
                "own_interval": cursor.and_then(|k| k.interval_s).is_some(),
                "cursor_ms": cursor.and_then(|k| k.cursor_ms),
                "lag_s": cursor.and_then(|k| k.cursor_ms).map(|at| (now - at).max(0) / 1000),
                "last_started_ms": cursor.and_then(|k| k.last_started_ms),
                "last_finished_ms": cursor.and_then(|k| k.last_finished_ms),
                "seen": cursor.map_or(0, |k| k.seen),
                "applied": cursor.map_or(0, |k| k.applied),
                "queued": cursor.map_or(0, |k| k.queued),
                "errors": cursor.map_or(0, |k| k.errors),
                "last_error": cursor.and_then(|k| k.last_error.clone()),
                "last_webhook_ms": cursor.and_then(|k| k.last_webhook_ms),
                "incidents": incidents
                    .iter()
                    .filter(|i| i.connection_id == c.id)
                    .map(|i| json!({
                        "incident": i.incident,
                        "detail": i.detail,
                        "since_ms": i.opened_at_ms,
                    }))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(json!({ "connections": rows }))
}

/// `sync interval --connection ID --seconds N` (0: this connection is not polled) or
/// `--default` (the deployment's interval again).
pub async fn sync_interval(
    store: &SqlStore,
    connection: i64,
    seconds: Option<u32>,
) -> anyhow::Result<Value> {
    let Some(c) = store.connection(ConnectionId(connection)).await? else {
        return Err(Usage(format!("connection {connection} does not exist")).into());
    };
    store.set_poll_interval(c.partner_id, c.id, seconds).await?;
    Ok(json!({ "connection": c.id, "interval_s": seconds }))
}

fn now_ms() -> i64 {
    SystemClock.now_ms()
}

/// The text rendering of `sync status` and `sync interval`.
pub fn sync_text(v: &Value) -> String {
    if let Some(c) = v.get("connection") {
        return match v["interval_s"].as_u64() {
            Some(0) => format!("Connection {c} is not polled."),
            Some(s) => format!("Connection {c} is polled every {s} s."),
            None => format!("Connection {c} is polled at the deployment's interval."),
        };
    }
    let rows = v["connections"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "No connections.".into();
    }
    rows.iter()
        .map(|r| {
            let last = match (r["last_finished_ms"].as_i64(), r["lag_s"].as_i64()) {
                (Some(_), Some(lag)) => format!("cursor {lag} s behind"),
                (Some(_), None) => "no complete pass yet".to_owned(),
                _ => "never polled".to_owned(),
            };
            let mut line = format!(
                "connection {} ({} {}): every {} s, {last}; last pass {} seen, {} applied, {} queued, {} errors",
                r["connection"],
                r["crm"].as_str().unwrap_or_default(),
                r["company_id"].as_str().unwrap_or_default(),
                r["effective_interval_s"],
                r["seen"],
                r["applied"],
                r["queued"],
                r["errors"]
            );
            if let Some(e) = r["last_error"].as_str() {
                line.push_str(&format!("\n    last error: {e}"));
            }
            for i in r["incidents"].as_array().into_iter().flatten() {
                let since = i["since_ms"].as_i64().map_or(0, |at| (now_ms() - at).max(0) / 60_000);
                line.push_str(&format!(
                    "\n    ⚠ {} for {since} min: {}",
                    i["incident"].as_str().unwrap_or_default(),
                    i["detail"].as_str().unwrap_or_default()
                ));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}
