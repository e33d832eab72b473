//! `/api/v1/rewards`, `/api/v1/redemptions`, `/api/v1/codes`: the catalog, points exchanged
//! for a reward (a code, or a certificate or card top-up written into the salon's CRM), a
//! redemption read or cancelled (its points come back), a code checked and used at a POS.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use loyalty_core::code::Code;
use loyalty_core::redemption::Redemption;
use loyalty_core::{ClientId, ClientStore, LedgerStore, Reward, RewardId, RewardKind, RewardStore};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::extract::Segment;
use super::idem::{self, Begun};
use super::problem::{Problem, ProblemDoc};
use super::{answer, body, id_of};
use crate::Dashboard;

/// A reward of the catalog.
#[derive(Serialize, ToSchema)]
pub struct RewardOut {
    id: i64,
    title: String,
    /// What it costs in points.
    cost: i64,
    /// `certificate` (money to pay a bill with) or `service` (one service of the price list).
    kind: String,
    /// What it is worth, minor units.
    value_minor: i64,
    /// The service's id in the CRM, for a `service`.
    service_id: Option<String>,
}

impl From<&Reward> for RewardOut {
    fn from(r: &Reward) -> RewardOut {
        let (kind, service_id) = match &r.kind {
            RewardKind::Certificate { .. } => ("certificate", None),
            RewardKind::Service { service_id, .. } => ("service", Some(service_id.clone())),
        };
        RewardOut {
            id: r.id.0,
            title: r.title.clone(),
            cost: r.cost.0,
            kind: kind.to_owned(),
            value_minor: r.kind.value_minor(),
            service_id,
        }
    }
}

/// List the rewards clients can take now.
#[utoipa::path(
    get,
    operation_id = "list_rewards",
    path = "/rewards",
    tag = "rewards",
    responses((status = 200, description = "The catalog, by id", body = Vec<RewardOut>))
)]
pub async fn list(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
) -> Result<Json<Vec<RewardOut>>, Problem> {
    let rewards = dash.store.rewards(caller.partner.id, false).await?;
    Ok(Json(rewards.iter().map(RewardOut::from).collect()))
}

/// A redemption: points held or spent for a reward.
#[derive(Serialize, ToSchema)]
pub struct RedemptionOut {
    id: i64,
    /// The code the client shows (`ABCD-EFGHJ`).
    code: String,
    /// `pending` (being written into the CRM), `issued` (usable), `used`, `cancelled`,
    /// `expired`, `failed`.
    status: String,
    client_id: i64,
    reward_id: i64,
    /// Points it costs.
    points: i64,
    /// `gateway_code`, `crm_certificate` or `loyalty_card`.
    strategy: String,
    expires_at_ms: i64,
    created_at_ms: i64,
    /// The client's balance now.
    balance: i64,
    /// For a money certificate: what it is worth and the smallest bill it may pay.
    value_minor: Option<i64>,
    min_bill_minor: Option<i64>,
}

async fn redemption_out(dash: &Dashboard, r: &Redemption) -> Result<RedemptionOut, Problem> {
    let reward = dash.store.reward(r.partner_id, r.reward_id).await?;
    let terms = match &reward {
        Some(w) => dash.engine.bill_terms(r, w).await?,
        None => None,
    };
    Ok(RedemptionOut {
        id: r.id,
        code: r.code.to_string(),
        status: r.status.as_str().to_owned(),
        client_id: r.client_id.0,
        reward_id: r.reward_id.0,
        points: r.cost.0,
        strategy: r.strategy.as_str().to_owned(),
        expires_at_ms: r.expires_at_ms,
        created_at_ms: r.created_at_ms,
        balance: dash.store.balance(r.partner_id, r.client_id).await?.0,
        value_minor: terms.as_ref().map(|t| t.value_minor),
        min_bill_minor: terms.and_then(|t| t.min_bill_minor),
    })
}

/// A reward to take.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemIn {
    client_id: i64,
    reward_id: i64,
}

/// Exchange a client's points for a reward.
///
/// The points are held at once; the answer carries the code. Where the salon's CRM takes
/// rewards (a certificate, a card top-up) the redemption is `pending` until it is written
/// there, then `issued`.
#[utoipa::path(
    post,
    operation_id = "redeem_reward",
    path = "/redemptions",
    tag = "rewards",
    params(("Idempotency-Key" = String, Header, description = "1–200 characters; the same key and request within 24 hours get the first answer again; past that the same redemption is answered")),
    request_body = RedeemIn,
    responses(
        (status = 201, description = "Redeemed", body = RedemptionOut),
        (status = 400, description = "No Idempotency-Key, a body that does not read", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such client or reward at this salon (`not_found`)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "Not enough points (`insufficient_balance`), a reward taken off the catalog (`reward_unavailable`)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn redeem(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, Problem> {
    caller.write()?;
    let idem = idem::key_of(&headers)?;
    let wanted: RedeemIn = body(&bytes)?;
    let ticket = match idem::begin(&dash, &caller, idem, "POST /api/v1/redemptions", &bytes).await?
    {
        Begun::Answered(r) => return Ok(r),
        Begun::Run(t) => t,
    };
    let partner = caller.partner.id;
    let engine = dash.engine.acting_as(caller.actor());
    let key = ticket.effect_key();
    let run = async {
        let client = dash
            .store
            .client(partner, ClientId(wanted.client_id))
            .await?
            .ok_or_else(|| Problem::not_found("client"))?;
        let reward = dash
            .store
            .reward(partner, RewardId(wanted.reward_id))
            .await?
            .ok_or_else(|| Problem::not_found("reward"))?;
        let target = dash.store.reward_target(partner).await?;
        let r = engine
            .redeem(
                partner,
                client.id,
                &reward,
                &key,
                target,
                &loyalty_store::random_code,
            )
            .await?;
        answer(StatusCode::CREATED, &redemption_out(&dash, &r).await?)
    };
    Ok(ticket.finish(run.await).await)
}

async fn own_redemption(
    dash: &Dashboard,
    caller: &Caller,
    id: &str,
) -> Result<Redemption, Problem> {
    let id = id_of(id, "redemption")?;
    dash.store
        .redemption(caller.partner.id, id)
        .await?
        .ok_or_else(|| Problem::not_found("redemption"))
}

/// Read a redemption.
#[utoipa::path(
    get,
    operation_id = "get_redemption",
    path = "/redemptions/{id}",
    tag = "rewards",
    params(("id" = i64, Path, description = "The redemption's id")),
    responses(
        (status = 200, description = "The redemption", body = RedemptionOut),
        (status = 404, description = "No such redemption at this salon (`not_found`)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn redemption(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    Segment(id): Segment,
) -> Result<Json<RedemptionOut>, Problem> {
    let r = own_redemption(&dash, &caller, &id).await?;
    Ok(Json(redemption_out(&dash, &r).await?))
}

/// Cancel an unused redemption: its points come back.
#[utoipa::path(
    post,
    operation_id = "cancel_redemption",
    path = "/redemptions/{id}/cancel",
    tag = "rewards",
    params(
        ("id" = i64, Path, description = "The redemption's id"),
        ("Idempotency-Key" = String, Header, description = "1–200 characters; the same key and request within 24 hours get the first answer again"),
    ),
    responses(
        (status = 200, description = "Cancelled", body = RedemptionOut),
        (status = 400, description = "No Idempotency-Key", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such redemption at this salon (`not_found`)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "Used, expired or cancelled already (`code_not_usable`)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn cancel(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    Segment(id): Segment,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, Problem> {
    caller.write()?;
    let idem = idem::key_of(&headers)?;
    let r = own_redemption(&dash, &caller, &id).await?;
    let path = format!("POST /api/v1/redemptions/{}/cancel", r.id);
    let ticket = match idem::begin(&dash, &caller, idem, &path, &bytes).await? {
        Begun::Answered(r) => return Ok(r),
        Begun::Run(t) => t,
    };
    let engine = dash.engine.acting_as(caller.actor());
    let run = async {
        let done = engine.cancel_code(&r.code).await?;
        answer(StatusCode::OK, &redemption_out(&dash, &done).await?)
    };
    Ok(ticket.finish(run.await).await)
}

/// The caller's salon's redemption with this code; any other text or salon's code is 404.
async fn by_code(dash: &Dashboard, caller: &Caller, typed: &str) -> Result<Redemption, Problem> {
    let code = Code::parse(typed).map_err(|_| Problem::not_found("code"))?;
    dash.store
        .redemption_by_code(&code)
        .await?
        .filter(|r| r.partner_id == caller.partner.id)
        .ok_or_else(|| Problem::not_found("code"))
}

/// Check a code: what it is for, and whether it can be used.
#[utoipa::path(
    get,
    operation_id = "check_code",
    path = "/codes/{code}",
    tag = "rewards",
    params(("code" = String, Path, description = "The code as the client shows it; case, spaces and the dash do not matter")),
    responses(
        (status = 200, description = "The redemption the code belongs to (`status` `issued`: usable)", body = RedemptionOut),
        (status = 404, description = "No such code at this salon (`not_found`)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn check_code(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    Segment(code): Segment,
) -> Result<Json<RedemptionOut>, Problem> {
    let r = by_code(&dash, &caller, &code).await?;
    Ok(Json(redemption_out(&dash, &r).await?))
}

/// A code's use.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UseIn {
    /// The bill the code pays, minor units: needed for a money certificate, which may pay
    /// only the program's share of a bill.
    bill_minor: Option<i64>,
}

/// Use a code at the POS: its points are spent.
#[utoipa::path(
    post,
    operation_id = "use_code",
    path = "/codes/{code}/use",
    tag = "rewards",
    params(
        ("code" = String, Path, description = "The code as the client shows it"),
        ("Idempotency-Key" = String, Header, description = "1–200 characters; the same key and request within 24 hours get the first answer again"),
    ),
    request_body(content = UseIn, description = "Optional: `{}` or no body for a code that needs no bill"),
    responses(
        (status = 200, description = "Used", body = RedemptionOut),
        (status = 400, description = "No Idempotency-Key, a body that does not read", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such code at this salon (`not_found`)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "Used, expired or cancelled (`code_not_usable`), a certificate without its bill (`bill_needed`) or on too small a bill (`bill_too_small`), a bill not above 0 (`invalid_amount`)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn use_code(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    Segment(code): Segment,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, Problem> {
    caller.write()?;
    let idem = idem::key_of(&headers)?;
    let used: UseIn = if bytes.iter().all(u8::is_ascii_whitespace) {
        UseIn::default()
    } else {
        body(&bytes)?
    };
    let r = by_code(&dash, &caller, &code).await?;
    let path = format!("POST /api/v1/codes/{}/use", r.code);
    let ticket = match idem::begin(&dash, &caller, idem, &path, &bytes).await? {
        Begun::Answered(r) => return Ok(r),
        Begun::Run(t) => t,
    };
    let engine = dash.engine.acting_as(caller.actor());
    let run = async {
        let done = engine.use_code_at_desk(&r.code, used.bill_minor).await?;
        if done.status == loyalty_core::redemption::RedemptionStatus::Expired {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "code_not_usable",
                format!(
                    "code {} expired unused; its {} points went back to the client",
                    done.code, done.cost
                ),
            ));
        }
        answer(StatusCode::OK, &redemption_out(&dash, &done).await?)
    };
    Ok(ticket.finish(run.await).await)
}
