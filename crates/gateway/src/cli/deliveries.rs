//! What came in from the CRMs and is not applied yet: `rejected` (refused at the door) and
//! `inbox list|replay` (waiting for the CRM's API, or given up on).

use loyalty_core::inbox::{InboxItem, IntakeStore};
use loyalty_core::{Clock, SystemClock};
use loyalty_store::SqlStore;
use serde_json::{Value, json};

use super::Usage;

/// `rejected`: the latest refused webhook deliveries.
pub async fn rejected(store: &SqlStore, limit: u32) -> anyhow::Result<Value> {
    let rows = store.rejected_deliveries(limit).await?;
    Ok(json!({ "rejected": rows }))
}

/// `inbox list`: events waiting for the CRM (or, with `dead`, given up on), oldest first.
pub async fn inbox_list(store: &SqlStore, dead: bool, limit: u32) -> anyhow::Result<Value> {
    let stats = store.inbox_stats().await?;
    let items: Vec<Value> = store
        .inbox_items(dead, limit)
        .await?
        .iter()
        .map(item_json)
        .collect();
    Ok(json!({
        "queued": stats.queued,
        "dead": stats.dead,
        "oldest_received_at_ms": stats.oldest_received_at_ms,
        "items": items,
    }))
}

fn item_json(i: &InboxItem) -> Value {
    json!({
        "id": i.id,
        "partner_id": i.partner_id,
        "connection_id": i.connection_id,
        "resource": i.event.resource(),
        "source": i.source,
        "attempts": i.attempts,
        "next_at_ms": i.next_at_ms,
        "received_at_ms": i.received_at_ms,
        "last_error": i.last_error,
        "dead": i.dead,
    })
}

/// `inbox replay ID`: the item is tried again now, its tries counted from zero.
pub async fn inbox_replay(store: &SqlStore, id: i64) -> anyhow::Result<Value> {
    if !store.inbox_replay(id, SystemClock.now_ms()).await? {
        return Err(Usage(format!("the inbox has no item {id}")).into());
    }
    Ok(json!({ "replayed": id }))
}

/// The text rendering of `inbox list` and `inbox replay`.
pub fn inbox_text(v: &Value) -> String {
    if let Some(id) = v.get("replayed") {
        return format!("Inbox item {id} is due again; a running gateway applies it shortly.");
    }
    let mut out = format!(
        "{} waiting for the CRM, {} given up on.",
        v["queued"], v["dead"]
    );
    for i in v["items"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n  {:>6}  connection {}  {}  {} tries  {}",
            i["id"],
            i["connection_id"],
            i["resource"].as_str().unwrap_or_default(),
            i["attempts"],
            i["last_error"].as_str().unwrap_or("-")
        ));
    }
    out
}
