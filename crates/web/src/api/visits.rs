//! `/api/v1/visits`: visits pushed by a POS or a CRM we do not connect to. A pushed visit is a
//! record of the salon's own connection (the desk's, made on first use), named by the
//! partner's id for it, and goes through the same engine path as a CRM's webhook: the
//! program's rules and levels, the client found or created by phone and told, a record pushed
//! again in another state (a no-show, a corrected bill, deleted) posting the difference, a
//! repeated or older state changing nothing.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use loyalty_core::event::{ClientRef, LineKind, LoyaltyPaid, VisitLine};
use loyalty_core::history::{HistoryStore, Visit};
use loyalty_core::inbox::Source;
use loyalty_core::{CrmEvent, LedgerStore, Outcome, PartnerStore, Phone, VisitEvent, VisitStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::extract::Segment;
use super::idem::{self, Begun, Sealed};
use super::problem::{Problem, ProblemDoc};
use super::{answer, body};
use crate::Dashboard;

/// The record id a pushed visit's id names (apart from the desk's `desk-…`).
fn record_id(id: &str) -> String {
    format!("api-{id}")
}

/// The longest id, title or name taken.
const MAX_TEXT: usize = 200;
/// The most lines one visit holds.
const MAX_LINES: usize = 100;

/// Where a visit stands. Only `came` earns points.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VisitState {
    Waiting,
    Confirmed,
    Came,
    NoShow,
    Deleted,
}

impl VisitState {
    fn status(self) -> VisitStatus {
        match self {
            VisitState::Waiting => VisitStatus::Waiting,
            VisitState::Confirmed => VisitStatus::Confirmed,
            VisitState::Came => VisitStatus::Came,
            VisitState::NoShow => VisitStatus::NoShow,
            VisitState::Deleted => VisitStatus::Deleted,
        }
    }
}

/// Whose visit it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitClient {
    /// Any usual spelling; read in the salon's country.
    phone: String,
    name: Option<String>,
}

/// One paid line: a service or a good.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineIn {
    /// The service's or good's name.
    title: String,
    /// Its id in the partner's system (default: the title, lowercased): what the program's
    /// item rules name.
    item_id: Option<String>,
    /// Its category's id, for category rules.
    category_id: Option<String>,
    /// `service` (default) or `good`.
    kind: Option<LineKindIn>,
    /// Paid after discounts, minor units, never negative.
    paid_minor: i64,
}

#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineKindIn {
    Service,
    Good,
}

/// A visit as the partner's system knows it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitIn {
    /// The visit's id in the partner's system (1–200 characters, no spaces): the same id
    /// again is the same visit in a new state.
    id: String,
    status: VisitState,
    client: VisitClient,
    lines: Vec<LineIn>,
    /// The master's name.
    master: Option<String>,
    /// When the visit is (or was), Unix milliseconds (default: now).
    at_ms: Option<i64>,
    /// A number that grows with every change of the visit (a version, a change time): a
    /// state older than one applied is ignored. Without it the latest push wins.
    version: Option<i64>,
    /// The part of the bill paid with certificates or loyalty points (minor units): it earns
    /// nothing.
    loyalty_paid_minor: Option<i64>,
}

/// A pushed visit, as applied.
#[derive(Serialize, ToSchema)]
pub struct VisitOut {
    id: String,
    status: VisitState,
    /// What this push did: `applied` (points moved), `no_change`, `duplicate` (this state
    /// was applied already), `stale` (an older state than one applied), `ignored`; `null`
    /// when read.
    outcome: Option<String>,
    /// What this push moved on balances (a reversal is negative).
    points: i64,
    client_id: Option<i64>,
    /// The client's balance after it.
    balance: Option<i64>,
    paid_minor: i64,
    at_ms: Option<i64>,
    master: Option<String>,
}

fn state_of(s: VisitStatus) -> VisitState {
    match s {
        VisitStatus::Waiting => VisitState::Waiting,
        VisitStatus::Confirmed => VisitState::Confirmed,
        VisitStatus::Came => VisitState::Came,
        VisitStatus::NoShow => VisitState::NoShow,
        VisitStatus::Deleted => VisitState::Deleted,
    }
}

fn text(field: &str, value: &str) -> Result<(), Problem> {
    if value.trim().is_empty() || value.chars().count() > MAX_TEXT {
        return Err(Problem::bad_request(
            "invalid_body",
            format!("{field}: 1–{MAX_TEXT} characters"),
        ));
    }
    Ok(())
}

/// The engine's event for a pushed visit, or the 400 naming the field that is wrong.
fn event(v: &VisitIn, caller: &Caller, company: &str, now: i64) -> Result<VisitEvent, Problem> {
    text("id", &v.id)?;
    if v.id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Problem::bad_request("invalid_body", "id: no spaces"));
    }
    if v.lines.len() > MAX_LINES {
        return Err(Problem::bad_request(
            "invalid_body",
            format!("lines: at most {MAX_LINES}"),
        ));
    }
    let phone = Phone::parse(&v.client.phone, caller.partner.program.country).map_err(|e| {
        Problem::bad_request(
            "invalid_phone",
            format!("client.phone {:?} is not a phone: {e}", v.client.phone),
        )
    })?;
    let mut lines = Vec::with_capacity(v.lines.len());
    for (i, l) in v.lines.iter().enumerate() {
        text(&format!("lines[{i}].title"), &l.title)?;
        if l.paid_minor < 0 {
            return Err(Problem::bad_request(
                "invalid_amount",
                format!("lines[{i}].paid_minor: never negative"),
            ));
        }
        for (field, value) in [("item_id", &l.item_id), ("category_id", &l.category_id)] {
            if let Some(value) = value {
                text(&format!("lines[{i}].{field}"), value)?;
            }
        }
        lines.push(VisitLine {
            item_id: l
                .item_id
                .clone()
                .unwrap_or_else(|| l.title.trim().to_lowercase()),
            category_id: l.category_id.clone(),
            kind: match l.kind {
                Some(LineKindIn::Good) => LineKind::Good,
                _ => LineKind::Service,
            },
            title: l.title.trim().to_owned(),
            paid_minor: l.paid_minor,
        });
    }
    let loyalty_paid = match v.loyalty_paid_minor {
        None => LoyaltyPaid::NotReported,
        Some(p) if p < 0 => {
            return Err(Problem::bad_request(
                "invalid_amount",
                "loyalty_paid_minor: never negative",
            ));
        }
        Some(p) => LoyaltyPaid::Minor(p),
    };
    if v.version.is_some_and(|n| n < 0) {
        return Err(Problem::bad_request(
            "invalid_body",
            "version: not negative",
        ));
    }
    if v.at_ms.is_some_and(|t| t < 0) {
        return Err(Problem::bad_request("invalid_body", "at_ms: not negative"));
    }
    let name = v
        .client
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    if let Some(n) = name {
        text("client.name", n)?;
    }
    let master = v.master.as_deref().map(str::trim).filter(|m| !m.is_empty());
    if let Some(m) = master {
        text("master", m)?;
    }
    Ok(VisitEvent {
        company_id: company.to_owned(),
        record_id: record_id(&v.id),
        version: v.version,
        status: v.status.status(),
        client: Some(ClientRef {
            external_id: None,
            phone: Some(phone),
            name: name.map(str::to_owned),
        }),
        currency: caller.partner.program.currency,
        lines,
        staff_id: None,
        staff_name: master.map(str::to_owned),
        visit_at_ms: Some(v.at_ms.unwrap_or(now)),
        needs_refetch: false,
        loyalty_paid,
    })
}

async fn out(
    dash: &Dashboard,
    id: &str,
    row: &Visit,
    outcome: Option<&str>,
    points: i64,
) -> Result<VisitOut, Problem> {
    let balance = match row.client_id {
        Some(c) => Some(dash.store.balance(row.partner_id, c).await?.0),
        None => None,
    };
    Ok(VisitOut {
        id: id.to_owned(),
        status: state_of(row.status),
        outcome: outcome.map(str::to_owned),
        points,
        client_id: row.client_id.map(|c| c.0),
        balance,
        paid_minor: row.paid_minor,
        at_ms: row.visit_at_ms,
        master: row.staff_name.clone(),
    })
}

/// Push a visit (the way in for a POS or an unsupported CRM).
///
/// Applied by the program's rules like a CRM's webhook: a visit that `came` earns points and
/// the client is told; the same `id` pushed again in another state posts the difference (a
/// `no_show` or `deleted` takes the points back, a corrected bill moves them). Refused when
/// one of the salon's CRMs reports its visits itself: one visit would count twice.
#[utoipa::path(
    post,
    operation_id = "push_visit",
    path = "/visits",
    tag = "visits",
    params(("Idempotency-Key" = String, Header, description = "1–200 characters; the same key and request within 24 hours get the first answer again")),
    request_body = VisitIn,
    responses(
        (status = 200, description = "Applied (see `outcome`)", body = VisitOut),
        (status = 400, description = "No Idempotency-Key, a body that does not read, a field out of bounds (named)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "The salon's CRM reports its visits itself (`crm_reports_visits`), or the visit was refused by the program", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn push(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, Problem> {
    caller.write()?;
    let idem = idem::key_of(&headers)?;
    let v: VisitIn = body(&bytes)?;
    let company = loyalty_core::engine::DESK_COMPANY;
    let event = event(&v, &caller, company, dash.now_ms())?;
    const WHAT: &str = "POST /api/v1/visits";
    let partner = caller.partner.id;
    // The claim and the answer go in the visit's own transaction; the rest of this is for the
    // rare request that meets its key held, or is refused.
    let seal = idem::InTx::new(&dash, &caller, idem.clone(), WHAT, &bytes, |o: &Outcome| {
        quick_answer(&v, &event, o).and_then(Result::ok)
    });
    let run = async {
        let conn = dash.desk_of(partner).await?;
        let sealed = dash
            .engine
            .apply_visit_sealed(&conn, &event, Source::Api, &seal)
            .await?;
        Ok::<_, Problem>((conn, sealed))
    };
    match run.await {
        Ok((conn, Some(outcome))) => match seal.sealed() {
            Sealed::Answered(r) => Ok(r),
            Sealed::Later(ticket) => {
                let answer = full_answer(&dash, &conn, &v, &event, &outcome).await;
                Ok(ticket.finish(answer).await)
            }
        },
        Ok((conn, None)) => match idem::begin(&dash, &caller, idem, WHAT, &bytes).await? {
            Begun::Answered(r) => Ok(r),
            // The request that held the key let it go since: this one runs after all.
            Begun::Run(ticket) => {
                let answer = async {
                    let outcome = dash
                        .engine
                        .apply_event_from(&conn, &CrmEvent::Visit(event.clone()), Source::Api)
                        .await?;
                    full_answer(&dash, &conn, &v, &event, &outcome).await
                };
                Ok(ticket.finish(answer.await).await)
            }
        },
        Err(p) if p.status.is_server_error() || p.status == StatusCode::TOO_MANY_REQUESTS => Err(p),
        // A refusal is this key's answer too, unless the key has another already.
        Err(p) => match idem::begin(&dash, &caller, idem, WHAT, &bytes).await? {
            Begun::Answered(r) => Ok(r),
            Begun::Run(ticket) => Ok(ticket.finish(Err(p)).await),
        },
    }
}

/// The answer to a push when the outcome holds it: points moved for one client.
fn quick_answer(
    v: &VisitIn,
    event: &VisitEvent,
    outcome: &Outcome,
) -> Option<Result<(StatusCode, String), Problem>> {
    let Outcome::Applied { postings } = outcome else {
        return None;
    };
    let last = postings.last()?;
    if postings.iter().any(|p| p.client_id != last.client_id) {
        return None;
    }
    Some(answer(
        StatusCode::OK,
        &VisitOut {
            id: v.id.clone(),
            status: v.status,
            outcome: Some(outcome.label().to_owned()),
            points: outcome.delta().0,
            client_id: Some(last.client_id.0),
            balance: Some(last.balance.0),
            paid_minor: event.paid_minor(),
            at_ms: event.visit_at_ms,
            master: event.staff_name.clone(),
        },
    ))
}

/// The answer to a push: from the outcome, or (nothing moved, or the record moved between
/// clients) from the record's row, which says whose it is now.
async fn full_answer(
    dash: &Dashboard,
    conn: &loyalty_core::CrmConnection,
    v: &VisitIn,
    event: &VisitEvent,
    outcome: &Outcome,
) -> Result<(StatusCode, String), Problem> {
    if let Some(quick) = quick_answer(v, event, outcome) {
        return quick;
    }
    let row = dash
        .store
        .visit(conn.partner_id, conn.id, &event.record_id)
        .await?
        .ok_or_else(|| Problem::not_found("visit"))?;
    answer(
        StatusCode::OK,
        &out(dash, &v.id, &row, Some(outcome.label()), outcome.delta().0).await?,
    )
}

/// Read a pushed visit as last applied.
#[utoipa::path(
    get,
    operation_id = "get_visit",
    path = "/visits/{id}",
    tag = "visits",
    params(("id" = String, Path, description = "The visit's id in the partner's system")),
    responses(
        (status = 200, description = "The visit (`outcome` null, `points` 0)", body = VisitOut),
        (status = 404, description = "No visit pushed with this id (`not_found`)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn one(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    Segment(id): Segment,
) -> Result<Json<VisitOut>, Problem> {
    let partner = caller.partner.id;
    let desk = dash
        .store
        .connections_of(partner)
        .await?
        .into_iter()
        .find(|c| c.kind == loyalty_core::CrmKind::Desk)
        .ok_or_else(|| Problem::not_found("visit"))?;
    let row = dash
        .store
        .visit(partner, desk.id, &record_id(&id))
        .await?
        .filter(|r| r.source == Source::Api)
        .ok_or_else(|| Problem::not_found("visit"))?;
    Ok(Json(out(&dash, &id, &row, None, 0).await?))
}
