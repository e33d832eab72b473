//! `/api/v1/clients`: a client found by phone, created, read by id; her balance, her history a
//! page at a time, and points added or written off with a reason.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use loyalty_core::{BirthDate, Client, ClientId, ClientStore, LedgerStore, Phone, Points};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::extract::{Params, Segment};
use super::idem::{self, Begun};
use super::problem::{Problem, ProblemDoc};
use super::{answer, body, id_of};
use crate::Dashboard;

/// A client of the salon.
#[derive(Serialize, ToSchema)]
pub struct ClientOut {
    id: i64,
    /// E.164, `+79161234567`.
    phone: String,
    name: Option<String>,
    email: Option<String>,
    /// `YYYY-MM-DD`, or `--MM-DD` when the year is not known.
    birth_date: Option<String>,
    /// Her level's name, when the program has levels (`null`: the first).
    level: Option<String>,
    /// Whether she linked Telegram (and so is told of her points).
    telegram_linked: bool,
}

impl From<&Client> for ClientOut {
    fn from(c: &Client) -> ClientOut {
        ClientOut {
            id: c.id.0,
            phone: c.phone.as_str().to_owned(),
            name: c.name.clone(),
            email: c.email.clone(),
            birth_date: c.birth_date.map(|b| b.to_iso()),
            level: c.level.clone(),
            telegram_linked: c.telegram_chat_id.is_some(),
        }
    }
}

/// The caller's salon's client with this id; another salon's is not found.
pub(super) async fn own(dash: &Dashboard, caller: &Caller, id: &str) -> Result<Client, Problem> {
    let id = id_of(id, "client")?;
    dash.store
        .client(caller.partner.id, ClientId(id))
        .await?
        .ok_or_else(|| Problem::not_found("client"))
}

/// A phone typed by the partner, read in the salon's country.
fn phone(caller: &Caller, typed: &str) -> Result<Phone, Problem> {
    Phone::parse(typed, caller.partner.program.country).map_err(|e| {
        Problem::bad_request("invalid_phone", format!("{typed:?} is not a phone: {e}"))
    })
}

/// Find a client by phone.
#[utoipa::path(
    get,
    operation_id = "find_client",
    path = "/clients",
    tag = "clients",
    params(("phone" = String, Query, description = "The phone in any usual spelling; read in the salon's country")),
    responses(
        (status = 200, description = "The client", body = ClientOut),
        (status = 400, description = "No phone, or not a phone (`phone_required`, `invalid_phone`)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No client with this phone (`not_found`)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn find(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    q: Params,
) -> Result<Json<ClientOut>, Problem> {
    let Some(typed) = q.one("phone")?.filter(|p| !p.trim().is_empty()) else {
        return Err(Problem::bad_request("phone_required", "give ?phone="));
    };
    let phone = phone(&caller, typed)?;
    let found = dash
        .store
        .client_by_phone(caller.partner.id, &phone)
        .await?
        .ok_or_else(|| Problem::not_found("client"))?;
    Ok(Json(ClientOut::from(&found)))
}

/// A client to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    /// The phone in any usual spelling; read in the salon's country.
    phone: String,
    name: Option<String>,
    /// `YYYY-MM-DD`, `DD.MM.YYYY` or `DD.MM`.
    birth_date: Option<String>,
}

/// Create a client (or find the one with this phone).
///
/// A client with this phone already is answered 200 as she is; a new one 201.
#[utoipa::path(
    post,
    operation_id = "create_client",
    path = "/clients",
    tag = "clients",
    params(("Idempotency-Key" = String, Header, description = "1–200 characters; the same key and request within 24 hours get the first answer again")),
    request_body = NewClient,
    responses(
        (status = 200, description = "A client with this phone already", body = ClientOut),
        (status = 201, description = "Created", body = ClientOut),
        (status = 400, description = "No Idempotency-Key, a body that does not read, not a phone, not a date", body = ProblemDoc, content_type = "application/problem+json"),
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
    let new: NewClient = body(&bytes)?;
    let phone = phone(&caller, &new.phone)?;
    let name = new.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
    if name.is_some_and(|n| n.chars().count() > 200) {
        return Err(Problem::bad_request(
            "invalid_name",
            "a name of at most 200 characters",
        ));
    }
    let birth = match new.birth_date.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(typed) => Some(BirthDate::parse(typed).ok_or_else(|| {
            Problem::bad_request("invalid_birth_date", format!("{typed:?} is not a date"))
        })?),
    };
    let ticket = match idem::begin(&dash, &caller, idem, "POST /api/v1/clients", &bytes).await? {
        Begun::Answered(r) => return Ok(r),
        Begun::Run(t) => t,
    };
    let partner = caller.partner.id;
    let run = async {
        let existed = dash.store.client_by_phone(partner, &phone).await?;
        let client = match &existed {
            Some(c) => c.clone(),
            None => dash.engine.enroll(partner, &phone, name).await?,
        };
        if let Some(b) = birth {
            dash.engine.set_birth_date(partner, client.id, b).await?;
        }
        let now = dash
            .store
            .client(partner, client.id)
            .await?
            .ok_or_else(|| Problem::not_found("client"))?;
        let status = if existed.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        answer(status, &ClientOut::from(&now))
    };
    Ok(ticket.finish(run.await).await)
}

/// Read a client.
#[utoipa::path(
    get,
    operation_id = "get_client",
    path = "/clients/{id}",
    tag = "clients",
    params(("id" = i64, Path, description = "The client's id")),
    responses(
        (status = 200, description = "The client", body = ClientOut),
        (status = 404, description = "No such client at this salon (`not_found`)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn one(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    Segment(id): Segment,
) -> Result<Json<ClientOut>, Problem> {
    Ok(Json(ClientOut::from(&own(&dash, &caller, &id).await?)))
}

/// A client's points.
#[derive(Serialize, ToSchema)]
pub struct Balance {
    client_id: i64,
    /// Spendable now.
    balance: i64,
    /// Earned, spendable once the program's refund window passes.
    pending: i64,
}

/// Read a client's balance.
#[utoipa::path(
    get,
    operation_id = "get_balance",
    path = "/clients/{id}/balance",
    tag = "clients",
    params(("id" = i64, Path, description = "The client's id")),
    responses(
        (status = 200, description = "Her points", body = Balance),
        (status = 404, description = "No such client at this salon (`not_found`)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn balance(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    Segment(id): Segment,
) -> Result<Json<Balance>, Problem> {
    let c = own(&dash, &caller, &id).await?;
    let partner = caller.partner.id;
    Ok(Json(Balance {
        client_id: c.id.0,
        balance: dash.store.balance(partner, c.id).await?.0,
        pending: dash.store.pending(partner, c.id).await?.0,
    }))
}

/// One entry of a client's history.
#[derive(Serialize, ToSchema)]
pub struct Entry {
    id: i64,
    /// `accrual`, `reversal`, `manual_accrual`, `manual_debit`, `welcome`, `birthday`,
    /// `referral`, `offer`, `expiry`, `matured`, `hold`, `hold_post`, `hold_void`.
    kind: String,
    /// The change of her spendable points.
    points: i64,
    /// The change of her pending points.
    pending: i64,
    reason: Option<String>,
    /// The entry this one takes back.
    reverses: Option<i64>,
    created_at_ms: i64,
}

/// A page of history.
#[derive(Serialize, ToSchema)]
pub struct HistoryPage {
    /// Newest first.
    items: Vec<Entry>,
    /// Give it as `cursor` for the next (older) page; `null` on the last page.
    next_cursor: Option<String>,
}

/// The most items one page holds.
const MAX_PAGE: u32 = 100;

/// A page's `cursor` (`<prefix><id>`: below that id) and `limit` (1–100, 20 without it).
pub(super) fn page_of(q: &Params, prefix: char) -> Result<(Option<i64>, u32), Problem> {
    let limit = match q.one("limit")? {
        None => 20,
        Some(t) => t
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| Problem::bad_request("invalid_limit", "limit is 1–100"))?,
    };
    let before = match q.one("cursor")? {
        None => None,
        Some(c) => Some(
            c.strip_prefix(prefix)
                .and_then(|n| n.parse::<i64>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    Problem::bad_request("invalid_cursor", "give the next_cursor of a page")
                })?,
        ),
    };
    Ok((before, limit))
}

/// Read a client's history, a page at a time.
///
/// Entries are only ever added, so a cursor stays valid: a page read again later holds the
/// same entries.
#[utoipa::path(
    get,
    operation_id = "get_history",
    path = "/clients/{id}/history",
    tag = "clients",
    params(
        ("id" = i64, Path, description = "The client's id"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the page before"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Entries per page, 1–100 (20)"),
    ),
    responses(
        (status = 200, description = "A page, newest first", body = HistoryPage),
        (status = 400, description = "A cursor or limit that does not read (`invalid_cursor`, `invalid_limit`)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such client at this salon (`not_found`)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn history(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    Segment(id): Segment,
    q: Params,
) -> Result<Json<HistoryPage>, Problem> {
    let (before, limit) = page_of(&q, 'e')?;
    let c = own(&dash, &caller, &id).await?;
    // One more than the page: whether another page follows.
    let mut entries = dash
        .store
        .entries_page(caller.partner.id, c.id, before, limit + 1)
        .await?;
    let more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    let next_cursor = entries
        .last()
        .filter(|_| more)
        .map(|e| format!("e{}", e.id.0));
    Ok(Json(HistoryPage {
        items: entries
            .iter()
            .map(|e| Entry {
                id: e.id.0,
                kind: e.kind.as_str().to_owned(),
                points: e.client_delta().0,
                pending: e.pending_delta().0,
                reason: e.reason.clone(),
                reverses: e.reverses.map(|r| r.0),
                created_at_ms: e.created_at_ms,
            })
            .collect(),
        next_cursor,
    }))
}

/// Points to add (positive) or write off (negative).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PointsIn {
    /// Positive adds, negative writes off; never 0.
    points: i64,
    /// Why, 1–500 characters: shown in her history and the audit log.
    reason: String,
}

/// Points moved.
#[derive(Serialize, ToSchema)]
pub struct PointsMoved {
    client_id: i64,
    /// The ledger entry.
    entry_id: i64,
    points: i64,
    /// Her balance after it.
    balance: i64,
}

/// Add or write off points, with a reason; she is told in Telegram.
#[utoipa::path(
    post,
    operation_id = "move_points",
    path = "/clients/{id}/points",
    tag = "clients",
    params(
        ("id" = i64, Path, description = "The client's id"),
        ("Idempotency-Key" = String, Header, description = "1–200 characters; the same key and request within 24 hours get the first answer again; past that the points still move once"),
    ),
    request_body = PointsIn,
    responses(
        (status = 200, description = "Moved", body = PointsMoved),
        (status = 400, description = "No Idempotency-Key, a body that does not read, 0 points, no reason", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such client at this salon (`not_found`)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "She has fewer points than written off (`insufficient_balance`)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn points(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    Segment(id): Segment,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, Problem> {
    caller.write()?;
    let idem = idem::key_of(&headers)?;
    let moved: PointsIn = body(&bytes)?;
    let reason = moved.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(Problem::bad_request(
            "reason_required",
            "a reason of 1–500 characters",
        ));
    }
    if moved.points == 0 {
        return Err(Problem::bad_request(
            "invalid_points",
            "points must not be 0",
        ));
    }
    let c = own(&dash, &caller, &id).await?;
    let path = format!("POST /api/v1/clients/{}/points", c.id.0);
    let ticket = match idem::begin(&dash, &caller, idem, &path, &bytes).await? {
        Begun::Answered(r) => return Ok(r),
        Begun::Run(t) => t,
    };
    let engine = dash.engine.acting_as(caller.actor());
    let key = ticket.effect_key();
    let partner = caller.partner.id;
    let run = async {
        let posting = if moved.points > 0 {
            engine
                .manual_accrual(partner, c.id, Points(moved.points), reason, &key)
                .await?
        } else {
            engine
                .manual_debit(
                    partner,
                    c.id,
                    Points(moved.points.saturating_neg()),
                    reason,
                    &key,
                )
                .await?
        };
        answer(
            StatusCode::OK,
            &PointsMoved {
                client_id: c.id.0,
                entry_id: posting.entry_id.0,
                points: posting.delta.0,
                balance: posting.balance.0,
            },
        )
    };
    Ok(ticket.finish(run.await).await)
}
