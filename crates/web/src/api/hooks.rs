//! `/api/v1/webhooks`: the partner's endpoints (a secret shown when made and when rotated, the
//! old one signing beside the new for a day), and the deliveries — the dead ones listed and
//! sent again.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use loyalty_core::hook::EventType;
use loyalty_store::{Delivery, DeliveryState, Endpoint};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::extract::{Params, Segment};
use super::idem::{self, Begun};
use super::problem::{Problem, ProblemDoc};
use super::{answer, body, id_of};
use crate::Dashboard;

/// The old secret signs beside a new one this long after a rotation.
pub const ROTATION_MS: i64 = 24 * 3_600_000;

/// The most endpoints one salon keeps.
const MAX_ENDPOINTS: usize = 10;

/// An endpoint.
#[derive(Serialize, ToSchema)]
pub struct EndpointOut {
    id: i64,
    url: String,
    /// The event types it gets; empty: all of them.
    events: Vec<String>,
    created_at_ms: i64,
    /// Failing since then: no 2xx after it. Disabled after five days of it.
    failing_since_ms: Option<i64>,
    disabled_at_ms: Option<i64>,
    disabled_reason: Option<String>,
}

impl From<&Endpoint> for EndpointOut {
    fn from(e: &Endpoint) -> EndpointOut {
        EndpointOut {
            id: e.id,
            url: e.url.clone(),
            events: e.events.iter().map(|t| t.as_str().to_owned()).collect(),
            created_at_ms: e.created_at_ms,
            failing_since_ms: e.failing_since_ms,
            disabled_at_ms: e.disabled_at_ms,
            disabled_reason: e.disabled_reason.clone(),
        }
    }
}

/// An endpoint with its signing secret, shown when it is made or rotated.
#[derive(Serialize, ToSchema)]
pub struct EndpointSecret {
    #[serde(flatten)]
    endpoint: EndpointOut,
    /// `whsec_…`: verify `webhook-signature` with it (Standard Webhooks).
    secret: String,
}

/// An endpoint to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// Where events are POSTed: a public http(s) address.
    url: String,
    /// Event types to get (`points.accrued`, `points.reversed`, `points.expired`,
    /// `redemption.created`, `redemption.used`, `redemption.cancelled`,
    /// `redemption.expired`, `redemption.failed`, `client.level_changed`,
    /// `referral.rewarded`, `trigger.fired`, `client.linked`, `engagement.sent`); absent or
    /// empty: all.
    events: Option<Vec<String>>,
}

/// List the endpoints.
#[utoipa::path(
    get,
    path = "/webhooks/endpoints",
    operation_id = "list_endpoints",
    tag = "webhooks",
    responses((status = 200, description = "The salon's endpoints", body = Vec<EndpointOut>))
)]
pub async fn endpoints(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
) -> Result<Json<Vec<EndpointOut>>, Problem> {
    let all = dash.store.endpoints(caller.partner.id).await?;
    Ok(Json(all.iter().map(EndpointOut::from).collect()))
}

/// Add an endpoint: events from now on are POSTed to it, signed.
#[utoipa::path(
    post,
    path = "/webhooks/endpoints",
    operation_id = "create_endpoint",
    tag = "webhooks",
    params(("Idempotency-Key" = String, Header, description = "1–200 characters; the same key and request within 24 hours get the first answer again")),
    request_body = NewEndpoint,
    responses(
        (status = 201, description = "Added; its secret is shown this once", body = EndpointSecret),
        (status = 400, description = "No Idempotency-Key, a body that does not read, a URL that is not http(s) or points inside (`invalid_url`), an unknown event type (`invalid_event`)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "Ten endpoints already (`too_many_endpoints`)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, Problem> {
    caller.write()?;
    let idem = idem::key_of(&headers)?;
    let new: NewEndpoint = body(&bytes)?;
    let url = super::signing::check_url(&new.url, dash.settings.webhooks_allow_loopback)
        .map_err(|e| Problem::bad_request("invalid_url", e.to_string()))?;
    let mut events = Vec::new();
    for typed in new.events.unwrap_or_default() {
        let t = EventType::parse(typed.trim()).ok_or_else(|| {
            Problem::bad_request("invalid_event", format!("no event type {typed:?}"))
        })?;
        if !events.contains(&t) {
            events.push(t);
        }
    }
    let ticket = match idem::begin(
        &dash,
        &caller,
        idem,
        "POST /api/v1/webhooks/endpoints",
        &bytes,
    )
    .await?
    {
        Begun::Answered(r) => return Ok(r),
        Begun::Run(t) => t,
    };
    let partner = caller.partner.id;
    let run = async {
        let live = dash
            .store
            .endpoints(partner)
            .await?
            .iter()
            .filter(|e| e.disabled_at_ms.is_none())
            .count();
        if live >= MAX_ENDPOINTS {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "too_many_endpoints",
                format!("a salon keeps at most {MAX_ENDPOINTS} live endpoints"),
            ));
        }
        let secret = super::signing::new_secret()
            .map_err(|e| Problem::internal("no system randomness", e))?;
        let made = dash
            .store
            .create_endpoint(partner, url.as_str(), &events, &secret, dash.now_ms())
            .await?;
        answer(
            StatusCode::CREATED,
            &EndpointSecret {
                endpoint: EndpointOut::from(&made),
                secret,
            },
        )
    };
    Ok(ticket.finish(run.await).await)
}

/// What can be done to an endpoint.
#[derive(Clone, Copy)]
enum Change {
    Rotate,
    Disable,
    Enable,
}

async fn change(
    dash: &Dashboard,
    caller: &Caller,
    id: &str,
    headers: &HeaderMap,
    bytes: &[u8],
    what: Change,
) -> Result<Response, Problem> {
    caller.write()?;
    let idem = idem::key_of(headers)?;
    let partner = caller.partner.id;
    let id = id_of(id, "endpoint")?;
    dash.store
        .endpoint(partner, id)
        .await?
        .ok_or_else(|| Problem::not_found("endpoint"))?;
    let verb = match what {
        Change::Rotate => "rotate",
        Change::Disable => "disable",
        Change::Enable => "enable",
    };
    let path = format!("POST /api/v1/webhooks/endpoints/{id}/{verb}");
    let ticket = match idem::begin(dash, caller, idem, &path, bytes).await? {
        Begun::Answered(r) => return Ok(r),
        Begun::Run(t) => t,
    };
    let now = dash.now_ms();
    let run = async {
        match what {
            Change::Rotate => {
                let secret = super::signing::new_secret()
                    .map_err(|e| Problem::internal("no system randomness", e))?;
                let e = dash
                    .store
                    .rotate_secret(partner, id, &secret, now.saturating_add(ROTATION_MS))
                    .await?
                    .ok_or_else(|| Problem::not_found("endpoint"))?;
                answer(
                    StatusCode::OK,
                    &EndpointSecret {
                        endpoint: EndpointOut::from(&e),
                        secret,
                    },
                )
            }
            Change::Disable | Change::Enable => {
                let reason = matches!(what, Change::Disable).then_some("disabled by the partner");
                let e = dash
                    .store
                    .set_endpoint_disabled(partner, id, reason, now)
                    .await?
                    .ok_or_else(|| Problem::not_found("endpoint"))?;
                answer(StatusCode::OK, &EndpointOut::from(&e))
            }
        }
    };
    Ok(ticket.finish(run.await).await)
}

/// Rotate an endpoint's secret: the new one is shown this once; for a day messages carry a
/// signature by each.
#[utoipa::path(
    post,
    path = "/webhooks/endpoints/{id}/rotate",
    operation_id = "rotate_endpoint_secret",
    tag = "webhooks",
    params(
        ("id" = i64, Path, description = "The endpoint's id"),
        ("Idempotency-Key" = String, Header, description = "1–200 characters; the same key and request within 24 hours get the first answer again"),
    ),
    responses(
        (status = 200, description = "Rotated", body = EndpointSecret),
        (status = 400, description = "No Idempotency-Key", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint at this salon (`not_found`)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn rotate(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    Segment(id): Segment,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, Problem> {
    change(&dash, &caller, &id, &headers, &bytes, Change::Rotate).await
}

/// Disable an endpoint: nothing more is sent; what it was owed is dead (replayable once it is
/// enabled again).
#[utoipa::path(
    post,
    path = "/webhooks/endpoints/{id}/disable",
    operation_id = "disable_endpoint",
    tag = "webhooks",
    params(
        ("id" = i64, Path, description = "The endpoint's id"),
        ("Idempotency-Key" = String, Header, description = "1–200 characters; the same key and request within 24 hours get the first answer again"),
    ),
    responses(
        (status = 200, description = "Disabled", body = EndpointOut),
        (status = 400, description = "No Idempotency-Key", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint at this salon (`not_found`)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn disable(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    Segment(id): Segment,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, Problem> {
    change(&dash, &caller, &id, &headers, &bytes, Change::Disable).await
}

/// Enable an endpoint again (after it was disabled by the partner or after five days of
/// failures).
#[utoipa::path(
    post,
    path = "/webhooks/endpoints/{id}/enable",
    operation_id = "enable_endpoint",
    tag = "webhooks",
    params(
        ("id" = i64, Path, description = "The endpoint's id"),
        ("Idempotency-Key" = String, Header, description = "1–200 characters; the same key and request within 24 hours get the first answer again"),
    ),
    responses(
        (status = 200, description = "Enabled", body = EndpointOut),
        (status = 400, description = "No Idempotency-Key", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint at this salon (`not_found`)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn enable(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    Segment(id): Segment,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, Problem> {
    change(&dash, &caller, &id, &headers, &bytes, Change::Enable).await
}

/// One message owed to an endpoint.
#[derive(Serialize, ToSchema)]
pub struct DeliveryOut {
    id: i64,
    endpoint_id: i64,
    /// The `webhook-id` header: the same on every attempt and replay.
    message_id: String,
    event_type: String,
    /// `pending`, `delivered` or `dead`.
    state: String,
    attempts: i64,
    /// When it is due next (pending).
    next_at_ms: Option<i64>,
    /// The endpoint's last HTTP status.
    last_status: Option<i64>,
    last_error: Option<String>,
    created_at_ms: i64,
    done_at_ms: Option<i64>,
}

impl From<&Delivery> for DeliveryOut {
    fn from(d: &Delivery) -> DeliveryOut {
        DeliveryOut {
            id: d.id,
            endpoint_id: d.endpoint_id,
            message_id: d.message_id(),
            event_type: d.event_type.clone(),
            state: d.state.as_str().to_owned(),
            attempts: d.attempts,
            next_at_ms: d.next_at_ms,
            last_status: d.last_status,
            last_error: d.last_error.clone(),
            created_at_ms: d.created_at_ms,
            done_at_ms: d.done_at_ms,
        }
    }
}

/// A page of deliveries.
#[derive(Serialize, ToSchema)]
pub struct DeliveryPage {
    /// Newest first.
    items: Vec<DeliveryOut>,
    /// Give it as `cursor` for the next (older) page; `null` on the last page.
    next_cursor: Option<String>,
}

/// List deliveries: by default the dead ones (the schedule ran out), to replay.
#[utoipa::path(
    get,
    path = "/webhooks/deliveries",
    operation_id = "list_deliveries",
    tag = "webhooks",
    params(
        ("state" = Option<String>, Query, description = "`dead` (default), `pending` or `delivered`"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the page before"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Deliveries per page, 1–100 (20)"),
    ),
    responses(
        (status = 200, description = "A page, newest first", body = DeliveryPage),
        (status = 400, description = "A state, cursor or limit that does not read", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn deliveries(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    q: Params,
) -> Result<Json<DeliveryPage>, Problem> {
    let state = match q.one("state")? {
        None => DeliveryState::Dead,
        Some(s) => DeliveryState::parse(s).ok_or_else(|| {
            Problem::bad_request("invalid_state", "state is dead, pending or delivered")
        })?,
    };
    let (before, limit) = super::clients::page_of(&q, 'd')?;
    let mut items = dash
        .store
        .deliveries(caller.partner.id, state, before, limit + 1)
        .await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = items.last().filter(|_| more).map(|d| format!("d{}", d.id));
    Ok(Json(DeliveryPage {
        items: items.iter().map(DeliveryOut::from).collect(),
        next_cursor,
    }))
}

/// Send a dead delivery again, on a fresh schedule, with the same `webhook-id`.
#[utoipa::path(
    post,
    path = "/webhooks/deliveries/{id}/replay",
    operation_id = "replay_delivery",
    tag = "webhooks",
    params(
        ("id" = i64, Path, description = "The delivery's id"),
        ("Idempotency-Key" = String, Header, description = "1–200 characters; the same key and request within 24 hours get the first answer again"),
    ),
    responses(
        (status = 200, description = "Due again now", body = DeliveryOut),
        (status = 400, description = "No Idempotency-Key", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such delivery at this salon (`not_found`)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "Not dead (`not_dead`), its endpoint disabled (`endpoint_disabled`), or the Idempotency-Key was used with another request", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn replay(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    Segment(id): Segment,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, Problem> {
    caller.write()?;
    let idem = idem::key_of(&headers)?;
    let partner = caller.partner.id;
    let id = id_of(&id, "delivery")?;
    let d = dash
        .store
        .delivery(partner, id)
        .await?
        .ok_or_else(|| Problem::not_found("delivery"))?;
    let path = format!("POST /api/v1/webhooks/deliveries/{id}/replay");
    let ticket = match idem::begin(&dash, &caller, idem, &path, &bytes).await? {
        Begun::Answered(r) => return Ok(r),
        Begun::Run(t) => t,
    };
    let run = async {
        match dash
            .store
            .replay_delivery(partner, id, dash.now_ms())
            .await?
        {
            Some(again) => answer(StatusCode::OK, &DeliveryOut::from(&again)),
            None if d.state != DeliveryState::Dead => Err(Problem::new(
                StatusCode::CONFLICT,
                "not_dead",
                format!("delivery {id} is {}, not dead", d.state.as_str()),
            )),
            None => Err(Problem::new(
                StatusCode::CONFLICT,
                "endpoint_disabled",
                "its endpoint is disabled: enable it first",
            )),
        }
    };
    Ok(ticket.finish(run.await).await)
}
