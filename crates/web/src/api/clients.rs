//! `/api/v1/clients`: a client found by phone, read by id, her balance, and points added or
//! written off with a reason.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use loyalty_core::{Client, ClientId, ClientStore, LedgerStore, Phone, Points};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::problem::Problem;
use crate::Dashboard;

fn client_json(c: &Client) -> Value {
    json!({
        "id": c.id.0,
        "phone": c.phone.as_str(),
        "name": c.name,
        "email": c.email,
        "level": c.level,
        "telegram_linked": c.telegram_chat_id.is_some(),
    })
}

/// The caller's salon's client with this id; another salon's is not found.
async fn own(dash: &Dashboard, caller: &Caller, id: &str) -> Result<Client, Problem> {
    let id: i64 = id.parse().map_err(|_| Problem::not_found("client"))?;
    dash.store
        .client(caller.partner.id, ClientId(id))
        .await?
        .ok_or_else(|| Problem::not_found("client"))
}

#[derive(Deserialize)]
pub struct ByPhone {
    phone: Option<String>,
}

/// `GET /api/v1/clients?phone=…`: the client with this phone, read in the salon's country.
pub async fn find(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    Query(q): Query<ByPhone>,
) -> Result<Json<Value>, Problem> {
    let Some(typed) = q.phone.filter(|p| !p.trim().is_empty()) else {
        return Err(Problem::bad_request("phone_required", "give ?phone="));
    };
    let phone = Phone::parse(&typed, caller.partner.program.country).map_err(|e| {
        Problem::bad_request("invalid_phone", format!("{typed:?} is not a phone: {e}"))
    })?;
    let found = dash
        .store
        .client_by_phone(caller.partner.id, &phone)
        .await?
        .ok_or_else(|| Problem::not_found("client"))?;
    Ok(Json(client_json(&found)))
}

/// `GET /api/v1/clients/{id}`.
pub async fn one(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    Ok(Json(client_json(&own(&dash, &caller, &id).await?)))
}

/// `GET /api/v1/clients/{id}/balance`: spendable and pending points.
pub async fn balance(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let c = own(&dash, &caller, &id).await?;
    let partner = caller.partner.id;
    Ok(Json(json!({
        "client_id": c.id.0,
        "balance": dash.store.balance(partner, c.id).await?.0,
        "pending": dash.store.pending(partner, c.id).await?.0,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointsBody {
    /// Positive adds, negative writes off.
    points: i64,
    reason: String,
}

/// `POST /api/v1/clients/{id}/points` (a write key, an `Idempotency-Key`): points added or
/// written off with a reason, the client told. The ledger's own key derives from the key's id
/// and the Idempotency-Key: the same request again is the same posting, another body under it
/// a 409.
pub async fn points(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, Problem> {
    caller.write()?;
    let Some(idem) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200)
    else {
        return Err(Problem::bad_request(
            "idempotency_key_required",
            "a POST that moves points needs an Idempotency-Key header (1–200 characters)",
        ));
    };
    let body: PointsBody = serde_json::from_slice(&body)
        .map_err(|e| Problem::bad_request("invalid_body", e.to_string()))?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(Problem::bad_request(
            "reason_required",
            "a reason of 1–500 characters",
        ));
    }
    if body.points == 0 {
        return Err(Problem::bad_request(
            "invalid_points",
            "points must not be 0",
        ));
    }
    let c = own(&dash, &caller, &id).await?;
    let engine = dash.engine.acting_as(loyalty_core::audit::Actor::new(
        format!("api key {}", caller.key.prefix),
        "api",
    ));
    let key = format!("api:{}:{idem}", caller.key.id);
    let posting = if body.points > 0 {
        engine
            .manual_accrual(caller.partner.id, c.id, Points(body.points), reason, &key)
            .await?
    } else {
        engine
            .manual_debit(
                caller.partner.id,
                c.id,
                Points(body.points.saturating_neg()),
                reason,
                &key,
            )
            .await?
    };
    Ok(Json(json!({
        "client_id": c.id.0,
        "entry_id": posting.entry_id.0,
        "points": posting.delta.0,
        "balance": posting.balance.0,
    })))
}
