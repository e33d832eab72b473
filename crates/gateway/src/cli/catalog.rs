//! What points buy: `reward add|list|remove` and the CRM's service list (`services sync|list|allow|deny`).

use loyalty_core::PartnerStore;
use loyalty_core::RewardStore;
use std::sync::Arc;

use loyalty_core::{ConnectionId, NewReward, PartnerId, Points, RewardId, RewardKind};
use loyalty_store::SqlStore;
use serde_json::{Value, json};

use crate::config::Config;

use super::{Usage, known_partner};

/// `reward add`: a certificate (`value_minor`) or a CRM service (`service_id` + `price_minor`).
#[derive(Debug, Clone)]
pub struct RewardAdd {
    pub partner: i64,
    pub title: String,
    pub points: i64,
    pub certificate_minor: Option<i64>,
    pub service_id: Option<String>,
    pub price_minor: Option<i64>,
}

pub async fn reward_add(store: &SqlStore, req: &RewardAdd, now_ms: i64) -> anyhow::Result<Value> {
    let partner = known_partner(store, req.partner).await?;
    let kind = match (&req.certificate_minor, &req.service_id, req.price_minor) {
        (Some(value), None, None) => RewardKind::Certificate {
            value_minor: *value,
        },
        (None, Some(service), price) => {
            let service_id = service.trim().to_owned();
            let price_minor = service_price(store, partner, &service_id, price).await?;
            RewardKind::Service {
                service_id,
                price_minor,
            }
        }
        _ => {
            return Err(Usage(
                "give either --certificate-minor, or --service-id (with --price-minor when the \
                 CRM gives the service no single price)"
                    .into(),
            )
            .into());
        }
    };
    let reward = NewReward {
        title: req.title.trim().to_owned(),
        cost: Points(req.points),
        kind,
    };
    reward
        .validate()
        .map_err(|e| Usage(format!("invalid reward: {e}")))?;
    let created = store.create_reward(partner, &reward, now_ms).await?;
    Ok(json!({ "id": created.id, "reward": created }))
}

/// What a service reward is worth. A service the catalog knows must be buyable, and its price
/// is the CRM's unless `--price-minor` says otherwise (required for a price range). One no sync
/// has seen (a CRM without a service list) needs `--price-minor`.
async fn service_price(
    store: &SqlStore,
    partner: PartnerId,
    service_id: &str,
    price: Option<i64>,
) -> anyhow::Result<i64> {
    let Some(known) = store.service_of(partner, service_id).await? else {
        return price.ok_or_else(|| {
            Usage(format!(
                "service {service_id:?} is not in the synced service list: run `services sync \
                 --connection ID` first, or give --price-minor"
            ))
            .into()
        });
    };
    if !known.in_crm {
        return Err(Usage(format!(
            "service {service_id:?} ({}) is no longer in the CRM's list",
            known.title
        ))
        .into());
    }
    if !known.redeemable {
        return Err(Usage(format!(
            "points may not buy service {service_id:?} ({}): `services allow` it first",
            known.title
        ))
        .into());
    }
    price.or(known.price_minor()).ok_or_else(|| {
        Usage(format!(
            "service {service_id:?} ({}) has no single price in the CRM ({}–{}): give --price-minor",
            known.title,
            known.price_min_minor.map_or("?".into(), |p| p.to_string()),
            known.price_max_minor.map_or("?".into(), |p| p.to_string()),
        ))
        .into()
    })
}

/// `services sync`: the connection's service list, read from its CRM into the catalog.
pub async fn services_sync(
    sql: Arc<SqlStore>,
    config: &Config,
    connection: i64,
) -> anyhow::Result<Value> {
    let metrics = Arc::new(crate::metrics::Metrics::new(None));
    let connections = crate::connections::Connections::new(Arc::clone(&sql), config, metrics)?;
    let id = ConnectionId(connection);
    let report = crate::services::sync(&connections, &sql, id).await?;
    Ok(json!({
        "connection": connection,
        "sync": report.services,
        "directories": report.directories,
        "errors": report.errors,
    }))
}

/// `services list`: the connection's services as last synced (with `all`, gone ones too).
pub async fn services_list(store: &SqlStore, connection: i64, all: bool) -> anyhow::Result<Value> {
    let id = ConnectionId(connection);
    if store.connection(id).await?.is_none() {
        return Err(Usage(format!("connection {id} does not exist")).into());
    }
    let services = store.services(id, all).await?;
    Ok(json!({ "connection": connection, "services": services }))
}

/// `services list --kind`: the connection's masters, service categories or goods as last
/// synced (with `all`, those gone from the CRM too).
pub async fn directory_list(
    store: &SqlStore,
    connection: i64,
    kind: &str,
    all: bool,
) -> anyhow::Result<Value> {
    let id = ConnectionId(connection);
    if store.connection(id).await?.is_none() {
        return Err(Usage(format!("connection {id} does not exist")).into());
    }
    let mut items = store.directory(id, kind).await?;
    items.retain(|d| all || d.in_crm);
    Ok(json!({ "connection": connection, "kind": kind, "items": items }))
}

/// `services allow|deny`: whether points may buy the partner's service.
pub async fn services_allow(
    store: &SqlStore,
    partner: i64,
    service_id: &str,
    allow: bool,
) -> anyhow::Result<Value> {
    let partner = known_partner(store, partner).await?;
    let Some(stopped) = store
        .set_service_redeemable(partner, service_id.trim(), allow)
        .await?
    else {
        return Err(Usage(format!(
            "partner {partner} has no service {service_id:?} in its synced service list"
        ))
        .into());
    };
    Ok(json!({
        "partner": partner,
        "service": service_id.trim(),
        "redeemable": allow,
        "rewards_stopped": stopped,
    }))
}

pub async fn reward_list(store: &SqlStore, partner: i64, all: bool) -> anyhow::Result<Value> {
    let partner = known_partner(store, partner).await?;
    Ok(json!({ "rewards": store.rewards(partner, all).await? }))
}

pub async fn reward_remove(store: &SqlStore, partner: i64, reward: i64) -> anyhow::Result<Value> {
    let partner = known_partner(store, partner).await?;
    let id = RewardId(reward);
    if !store.remove_reward(partner, id).await? {
        return Err(Usage(format!(
            "partner {partner} has no reward {id} in the catalog"
        ))
        .into());
    }
    Ok(json!({ "removed": id }))
}

pub fn reward_text(v: &Value) -> String {
    if let Some(id) = v.get("removed") {
        return format!("Reward {id} removed from the catalog.");
    }
    let one = v.get("reward").map(|r| vec![r.clone()]);
    let rewards = one.unwrap_or_else(|| v["rewards"].as_array().cloned().unwrap_or_default());
    if rewards.is_empty() {
        return "No rewards.".into();
    }
    rewards
        .iter()
        .map(|r| {
            format!(
                "{:>4}  {:>6} points  {}{}",
                r["id"].to_string(),
                r["cost"].to_string(),
                r["title"].as_str().unwrap_or_default(),
                if r["active"] == Value::Bool(false) {
                    "  (removed)"
                } else {
                    ""
                }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn services_text(v: &Value) -> String {
    if let Some(sync) = v.get("sync") {
        let mut out = format!(
            "Connection {}: {} services listed, {} new, {} changed, {} gone; {} rewards stopped.",
            v["connection"],
            sync["listed"],
            sync["added"],
            sync["changed"],
            sync["gone"],
            sync["rewards_stopped"]
        );
        for (kind, d) in v["directories"].as_object().into_iter().flatten() {
            out.push_str(&format!(
                "\n{kind}: {} listed, {} new, {} renamed, {} gone",
                d["listed"], d["added"], d["renamed"], d["gone"]
            ));
        }
        for e in v["errors"].as_array().into_iter().flatten() {
            out.push_str(&format!("\nnot synced: {}", e.as_str().unwrap_or_default()));
        }
        return out;
    }
    if let Some(allowed) = v.get("redeemable") {
        return format!(
            "Service {}: points {} buy it now{}.",
            v["service"],
            if allowed == &Value::Bool(true) {
                "may"
            } else {
                "may not"
            },
            match v["rewards_stopped"].as_u64() {
                Some(n) if n > 0 => format!("; {n} rewards left the catalog"),
                _ => String::new(),
            }
        );
    }
    if let Some(items) = v["items"].as_array() {
        if items.is_empty() {
            return format!(
                "No {} synced: run `services sync --connection ID`.",
                v["kind"].as_str().unwrap_or_default()
            );
        }
        return items
            .iter()
            .map(|d| {
                format!(
                    "{:>10}  {}{}",
                    d["item_id"].as_str().unwrap_or_default(),
                    d["name"].as_str().unwrap_or_default(),
                    if d["in_crm"] == Value::Bool(false) {
                        "  (gone from the CRM)"
                    } else {
                        ""
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
    }
    let services = v["services"].as_array().cloned().unwrap_or_default();
    if services.is_empty() {
        return "No services synced: run `services sync --connection ID`.".into();
    }
    services
        .iter()
        .map(|s| {
            let price = match (s["price_min_minor"].as_i64(), s["price_max_minor"].as_i64()) {
                (Some(a), Some(b)) if a != b => format!("{}–{}", a / 100, b / 100),
                (Some(p), _) | (None, Some(p)) => (p / 100).to_string(),
                (None, None) => "?".into(),
            };
            format!(
                "{:>10}  {:>12} ₽  {}{}{}",
                s["service_id"].as_str().unwrap_or_default(),
                price,
                s["title"].as_str().unwrap_or_default(),
                if s["redeemable"] == Value::Bool(false) {
                    "  (not for points)"
                } else {
                    ""
                },
                if s["in_crm"] == Value::Bool(false) {
                    "  (gone from the CRM)"
                } else {
                    ""
                },
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
