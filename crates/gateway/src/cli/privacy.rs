//! A client's personal data on request (152-FZ): `client export` and `client forget`.

use loyalty_core::audit::Actor;
use loyalty_store::SqlStore;
use serde_json::{Value, json};

use super::desk_client;

/// Everything kept of the client with this phone.
pub async fn client_export(
    store: &SqlStore,
    partner: i64,
    phone: &str,
    actor: &Actor,
    now_ms: i64,
) -> anyhow::Result<Value> {
    let (partner, _, client) = desk_client(store, partner, phone).await?;
    Ok(store
        .export_client(partner, client.id, actor, now_ms)
        .await?)
}

/// Removes the personal data of the client with this phone.
pub async fn client_forget(
    store: &SqlStore,
    partner: i64,
    phone: &str,
    actor: &Actor,
    now_ms: i64,
) -> anyhow::Result<Value> {
    let (partner, phone, client) = desk_client(store, partner, phone).await?;
    let done = store
        .forget_client(partner, client.id, actor, now_ms)
        .await?;
    Ok(json!({
        "partner_id": partner.0,
        "client_id": done.client_id,
        "masked_phone": phone.masked(),
        "anonymous_phone": done.phone,
        "rows": done.rows,
    }))
}

pub fn forget_text(v: &Value) -> String {
    format!(
        "Client {} ({}) forgotten: personal data removed ({} rows beside her card); her points \
         and visits stay in the books under the anonymous number {}.",
        v["client_id"],
        v["masked_phone"].as_str().unwrap_or(""),
        v["rows"],
        v["anonymous_phone"].as_str().unwrap_or("")
    )
}
