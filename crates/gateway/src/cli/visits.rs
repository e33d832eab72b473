//! Visits entered at the desk: `visit add`, `visit correct`, `visit cancel`.

use loyalty_core::engine::{DeskChange, DeskVisit};
use loyalty_core::history::HistoryStore;
use loyalty_core::{LoyaltyEngine, Outcome, PartnerId};
use serde_json::{Value, json};

use super::{Usage, desk_phone, new_secret, refused};

/// What `visit add` was given.
#[derive(Debug, Clone)]
pub struct VisitAdd {
    pub partner: i64,
    pub phone: String,
    pub name: Option<String>,
    pub paid_minor: i64,
    pub service: Option<String>,
    pub master: Option<String>,
    pub key: Option<String>,
    pub force: bool,
}

/// `visit add`: a visit that came, entered at the desk; the client is found or created by
/// phone, earns by the program and is told.
pub async fn visit_add(engine: &LoyaltyEngine, req: &VisitAdd) -> anyhow::Result<Value> {
    if req.paid_minor < 0 {
        return Err(Usage(format!(
            "--paid-minor must not be negative, got {}",
            req.paid_minor
        ))
        .into());
    }
    let store = engine.store();
    let (partner, phone) = desk_phone(store.as_ref(), req.partner, &req.phone).await?;
    let key = match &req.key {
        Some(k) => k.trim().to_owned(),
        // Short enough to type into `visit correct`; 48 random bits.
        None => new_secret()?.chars().take(12).collect(),
    };
    let desk = engine.desk(partner, req.force).await.map_err(refused)?;
    let visit = DeskVisit {
        phone: phone.clone(),
        name: req.name.clone(),
        paid_minor: req.paid_minor,
        service: req.service.clone(),
        master: req.master.clone(),
        key: key.clone(),
    };
    let outcome = engine.desk_visit(&desk, &visit).await.map_err(refused)?;
    let client = store.client_by_phone(partner, &phone).await?;
    let balance = match &client {
        Some(c) => Some(store.balance(partner, c.id).await?),
        None => None,
    };
    Ok(json!({
        "partner_id": partner,
        "connection_id": desk.id,
        "key": key,
        "record_id": DeskVisit::record_id(&key),
        "phone": phone.masked(),
        "client_id": client.map(|c| c.id),
        "paid_minor": req.paid_minor,
        "outcome": outcome.label(),
        "duplicate": outcome == Outcome::Duplicate,
        "points": outcome.delta(),
        "balance": balance,
    }))
}

/// `visit correct` / `visit cancel`: a desk visit's new state, the difference posted as a
/// reversal with the reason.
pub async fn visit_change(
    engine: &LoyaltyEngine,
    history: &dyn HistoryStore,
    partner: i64,
    key: &str,
    change: DeskChange,
    reason: &str,
) -> anyhow::Result<Value> {
    let partner = PartnerId(partner);
    let key = key.trim();
    let Some((previous, outcome)) = engine
        .desk_change_by_key(history, partner, key, change, reason)
        .await
        .map_err(refused)?
    else {
        return Err(Usage(format!(
            "partner {partner} has no desk visit with the key {key:?}"
        ))
        .into());
    };
    let (status, paid_minor) = match change {
        DeskChange::Cancel => ("deleted", previous.paid_minor),
        DeskChange::Paid(paid) => (previous.status.as_str(), paid),
    };
    let balance = match previous.client_id {
        Some(c) => Some(engine.store().balance(partner, c).await?),
        None => None,
    };
    Ok(json!({
        "partner_id": partner,
        "key": key,
        "record_id": previous.record_id,
        "status": status,
        "paid_minor_before": previous.paid_minor,
        "paid_minor": paid_minor,
        "reason": reason.trim(),
        "outcome": outcome.label(),
        "points": outcome.delta(),
        "client_id": previous.client_id,
        "balance": balance,
    }))
}

pub fn visit_text(v: &Value) -> String {
    let points = v["points"].as_i64().unwrap_or_default();
    let head = if v["duplicate"].as_bool() == Some(true) || v["outcome"] == "duplicate" {
        "already entered, nothing changed".to_owned()
    } else {
        format!("{points:+} points")
    };
    let balance = match v["balance"].as_i64() {
        Some(b) => format!(", balance {b}"),
        None => String::new(),
    };
    let who = v["phone"]
        .as_str()
        .map(|p| format!(" for {p}"))
        .unwrap_or_default();
    format!(
        "visit {} (key {}){who}: {head}{balance}",
        v["record_id"].as_str().unwrap_or_default(),
        v["key"].as_str().unwrap_or_default(),
    )
}
