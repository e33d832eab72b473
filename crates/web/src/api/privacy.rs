//! A client's personal data on the partner's request (152-FZ): her copy as JSON
//! (`GET /clients/{id}/export`), or removed (`DELETE /clients/{id}`) — the ledger's amounts
//! and the books stay under her id, with an anonymous number. Both audited, naming the key.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use loyalty_core::{ClientId, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::auth::Caller;
use super::extract::Segment;
use super::id_of;
use super::problem::{Problem, ProblemDoc};
use crate::Dashboard;

/// Everything kept of one client.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ClientExport {
    exported_at_ms: i64,
    partner_id: i64,
    /// The card: phone, name, e-mail, birth date, chat, level.
    #[schema(value_type = Object)]
    client: Value,
    /// Her ids in the salon's CRMs (`connection_id`, `external_id`).
    #[schema(value_type = Vec<Object>)]
    crm_ids: Vec<Value>,
    /// Her Telegram chat (`chat_id`, `language`, `linked_at_ms`), when linked.
    #[schema(value_type = Option<Object>)]
    telegram: Option<Value>,
    balance: i64,
    /// Every ledger entry, newest first.
    #[schema(value_type = Vec<Object>)]
    ledger: Vec<Value>,
    /// Every visit, newest first.
    #[schema(value_type = Vec<Object>)]
    visits: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    redemptions: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    level_changes: Vec<Value>,
    /// The consents she gave or withdrew, with the text shown.
    #[schema(value_type = Vec<Object>)]
    consents: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    referrals: Vec<Value>,
}

/// What removing a client's personal data did.
#[derive(Serialize, ToSchema)]
pub struct ForgetOut {
    client_id: i64,
    /// The number her row keeps: `+999…`, which no real phone is.
    phone: String,
    /// Rows removed or scrubbed beside her card.
    rows: u64,
}

/// Gone already: what a second removal or export finds.
fn gone(e: StoreError) -> Problem {
    match e {
        StoreError::NotFound(_) => Problem::not_found("client"),
        other => other.into(),
    }
}

/// Export a client's data (152-FZ).
///
/// Everything the deployment keeps of her, for the client's own request. Audited.
#[utoipa::path(
    get,
    operation_id = "export_client",
    path = "/clients/{id}/export",
    tag = "clients",
    params(("id" = i64, Path, description = "The client's id")),
    responses(
        (status = 200, description = "Her data", body = ClientExport),
        (status = 404, description = "No such client at this salon (`not_found`)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn export(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    Segment(id): Segment,
) -> Result<Json<ClientExport>, Problem> {
    // Another salon's client is not found by the store's read (scoped by the salon): 404.
    let client = ClientId(id_of(&id, "client")?);
    let value = dash
        .store
        .export_client(caller.partner.id, client, &caller.actor(), dash.now_ms())
        .await
        .map_err(gone)?;
    serde_json::from_value(value)
        .map(Json)
        .map_err(|e| Problem::internal("an export did not take its shape", e))
}

/// Forget a client (152-FZ).
///
/// Removes her phone, name, e-mail, birth date, Telegram link and CRM ids, and the messages and
/// texts that name her; her points and visits stay in the books under her id, with an
/// anonymous number. A later visit for her phone starts a new client. Cannot be undone;
/// audited. Needs a write key.
#[utoipa::path(
    delete,
    operation_id = "forget_client",
    path = "/clients/{id}",
    tag = "clients",
    params(("id" = i64, Path, description = "The client's id")),
    responses(
        (status = 200, description = "Forgotten", body = ForgetOut),
        (status = 404, description = "No such client at this salon, or forgotten already (`not_found`)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn forget(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    Segment(id): Segment,
) -> Result<Json<ForgetOut>, Problem> {
    caller.write()?;
    let client = ClientId(id_of(&id, "client")?);
    let done = dash
        .store
        .forget_client(caller.partner.id, client, &caller.actor(), dash.now_ms())
        .await
        .map_err(gone)?;
    Ok(Json(ForgetOut {
        client_id: done.client_id,
        phone: done.phone,
        rows: done.rows,
    }))
}
