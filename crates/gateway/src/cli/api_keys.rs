//! `api-key add|revoke|list`: the partner API's keys (issue 18). A key is shown once, when it
//! is made; the database keeps its SHA-256 and its prefix.

use loyalty_core::{Clock, SystemClock};
use loyalty_store::{KeyScope, SqlStore};
use serde_json::{Value, json};

use super::{Usage, known_partner};

/// `api-key add --partner ID --scope read|write`.
pub async fn api_key_add(store: &SqlStore, partner: i64, scope: &str) -> anyhow::Result<Value> {
    let partner = known_partner(store, partner).await?;
    let Some(scope) = KeyScope::parse(scope) else {
        return Err(Usage(format!("--scope must be read or write, got {scope:?}")).into());
    };
    let (key, made) = loyalty_web::api::issue_key(
        store,
        partner,
        scope,
        &super::actor(None),
        SystemClock.now_ms(),
    )
    .await?;
    Ok(json!({
        "key": key,
        "prefix": made.prefix,
        "partner": partner,
        "scope": scope,
        "created_at_ms": made.created_at_ms,
    }))
}

/// `api-key revoke --partner ID --prefix P`: the key stops working at once.
pub async fn api_key_revoke(store: &SqlStore, partner: i64, prefix: &str) -> anyhow::Result<Value> {
    let partner = known_partner(store, partner).await?;
    match store
        .revoke_api_key(
            partner,
            prefix.trim(),
            &super::actor(None),
            SystemClock.now_ms(),
        )
        .await?
    {
        Some(k) => Ok(json!({ "partner": partner, "revoked": k.prefix })),
        None => Err(Usage(format!("partner {partner} has no live key {prefix:?}")).into()),
    }
}

/// `api-key list --partner ID`: prefixes, scopes, when made and revoked (never the keys).
pub async fn api_key_list(store: &SqlStore, partner: i64) -> anyhow::Result<Value> {
    let partner = known_partner(store, partner).await?;
    Ok(json!({ "partner": partner, "keys": store.api_keys(partner).await? }))
}

pub fn api_key_text(v: &Value) -> String {
    if let Some(key) = v["key"].as_str() {
        return format!(
            "{key}\n(a {} key of partner {}; shown once — keep it now. Its prefix {} names it.)",
            v["scope"].as_str().unwrap_or_default(),
            v["partner"],
            v["prefix"].as_str().unwrap_or_default()
        );
    }
    if let Some(p) = v["revoked"].as_str() {
        return format!("{p} revoked");
    }
    let keys: Vec<String> = v["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            format!(
                "{}  {}{}",
                k["prefix"].as_str().unwrap_or_default(),
                k["scope"].as_str().unwrap_or_default(),
                if k["revoked_at_ms"].is_null() {
                    ""
                } else {
                    "  (revoked)"
                }
            )
        })
        .collect();
    if keys.is_empty() {
        format!("partner {} has no API keys", v["partner"])
    } else {
        keys.join("\n")
    }
}
