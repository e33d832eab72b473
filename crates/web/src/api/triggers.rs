//! `/api/v1/custom-triggers`: the salon's own rules (written with the program: `program set`
//! or the dashboard's program page), what they fired, and what a rule would have done on a
//! past visit — before the salon saves it.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use loyalty_core::custom::{CustomTrigger, PreviewError, preview};
use loyalty_core::history::HistoryStore;
use loyalty_core::{ClientStore, CrmKind, PartnerStore};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::auth::Caller;
use super::body;
use super::clients::page_of;
use super::extract::Params;
use super::problem::{Problem, ProblemDoc};
use crate::Dashboard;

/// The client's visits a preview reads for her ordinal and the days since her visit before.
const HISTORY: u32 = 1_000;

/// The program's custom triggers.
#[derive(Serialize, ToSchema)]
pub struct TriggersOut {
    /// Each as the program holds it: `name`, `when` (`visit`, `birthday`, `level_reached`,
    /// `referral_rewarded`), `conditions`, `then` (actions: `bonus`, `extra_rate`, `message`,
    /// `webhook`).
    #[schema(value_type = Vec<Object>)]
    triggers: Vec<Value>,
}

/// Read the program's custom triggers.
#[utoipa::path(
    get,
    operation_id = "list_custom_triggers",
    path = "/custom-triggers",
    tag = "program",
    responses((status = 200, description = "The triggers in force", body = TriggersOut))
)]
pub async fn list(caller: Caller) -> Result<Json<TriggersOut>, Problem> {
    let triggers = caller
        .partner
        .program
        .custom_triggers
        .iter()
        .map(|t| serde_json::to_value(t).map_err(|e| Problem::internal("a trigger", e)))
        .collect::<Result<_, _>>()?;
    Ok(Json(TriggersOut { triggers }))
}

/// One time a trigger fired.
#[derive(Serialize, ToSchema)]
pub struct FireOut {
    id: i64,
    trigger: String,
    /// `visit`, `birthday`, `level_reached` or `referral_rewarded`.
    event: String,
    /// What made the event one (a record, a birthday's year, a level, a referral).
    event_key: String,
    client_id: i64,
    /// Its points when it fired (a visit's follow the visit after).
    points: i64,
    record_id: Option<String>,
    fired_at_ms: i64,
    /// Its message: `pending`, `send`, `control`, `unreachable`, `no_consent`, `off`,
    /// `expired`; `null` when it sends none.
    message: Option<String>,
    webhook: bool,
}

/// A page of firings.
#[derive(Serialize, ToSchema)]
pub struct FiresPage {
    items: Vec<FireOut>,
    /// Give it as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// Read what the triggers fired, newest first.
#[utoipa::path(
    get,
    operation_id = "list_trigger_fires",
    path = "/custom-triggers/fires",
    tag = "program",
    params(
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the page before"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Firings per page, 1–100 (20)"),
    ),
    responses(
        (status = 200, description = "A page, newest first", body = FiresPage),
        (status = 400, description = "A cursor or limit that does not read (`invalid_cursor`, `invalid_limit`)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn fires(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    q: Params,
) -> Result<Json<FiresPage>, Problem> {
    let (before, limit) = page_of(&q, 'f')?;
    let mut rows = dash
        .store
        .trigger_fires(caller.partner.id, before, limit + 1)
        .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = rows.last().filter(|_| more).map(|r| format!("f{}", r.id));
    Ok(Json(FiresPage {
        items: rows
            .into_iter()
            .map(|r| FireOut {
                id: r.id,
                trigger: r.trigger,
                event: r.event,
                event_key: r.event_key,
                client_id: r.client_id.0,
                points: r.points.0,
                record_id: r.record_id,
                fired_at_ms: r.fired_at_ms,
                message: r.message,
                webhook: r.webhook,
            })
            .collect(),
        next_cursor,
    }))
}

/// A rule to try on a past visit: a pushed visit by its id, or any record by its id (and its
/// connection, where two of the salon's connections have one with that id).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewIn {
    /// A custom trigger as `program set` takes it (`when` must be `visit`).
    #[schema(value_type = Object)]
    trigger: Value,
    /// The id of a visit pushed through `POST /visits`.
    #[serde(default)]
    visit_id: Option<String>,
    /// A CRM record's id, as the visit history shows it.
    #[serde(default)]
    record_id: Option<String>,
    #[serde(default)]
    connection_id: Option<i64>,
}

/// One condition and whether it held.
#[derive(Serialize, ToSchema)]
pub struct CheckOut {
    /// `earns`, `min_paid_minor`, `items`, `weekdays`, `hours`, `levels`, `visit_number`,
    /// `min_visits`, `min_days_since_last_visit`.
    condition: String,
    holds: bool,
    detail: String,
}

/// What the rule would have done.
#[derive(Serialize, ToSchema)]
pub struct PreviewOut {
    /// Every condition held.
    fires: bool,
    checks: Vec<CheckOut>,
    /// The points it would have added to the visit's.
    points: i64,
    /// Its message, `{level}` and `{master}` filled in; `null` when it would send none.
    message: Option<String>,
    webhook: bool,
    /// The visit's number among the client's visits that came.
    visit_number: i64,
    since_last_visit_days: Option<i64>,
    level: Option<String>,
    record_id: String,
    client_id: Option<i64>,
}

/// What a rule would have done on a past visit.
#[utoipa::path(
    post,
    operation_id = "preview_custom_trigger",
    path = "/custom-triggers/preview",
    tag = "program",
    request_body = PreviewIn,
    responses(
        (status = 200, description = "What it would have done", body = PreviewOut),
        (status = 400, description = "A body that does not read (`invalid_body`)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such visit at this salon (`not_found`)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "A rule the program would refuse, the field named (`invalid_trigger`)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn try_on(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> Result<Json<PreviewOut>, Problem> {
    let input: PreviewIn = body(&bytes)?;
    let trigger: CustomTrigger =
        serde_json::from_value(input.trigger).map_err(|e| invalid(format!("the trigger: {e}")))?;
    let partner = caller.partner.id;
    // Where the record may be: a pushed visit on the salon's own connection; a record on the
    // connection named, else on any of the salon's.
    let (record_id, desk_only) = match (&input.visit_id, &input.record_id) {
        (Some(v), None) if input.connection_id.is_none() => (format!("api-{v}"), true),
        (None, Some(r)) => (r.clone(), false),
        _ => {
            return Err(Problem::bad_request(
                "invalid_body",
                "give visit_id, or record_id (with connection_id where needed)",
            ));
        }
    };
    let mut found = None;
    for c in dash.store.connections_of(partner).await? {
        let here = if desk_only {
            c.kind == CrmKind::Desk
        } else {
            input.connection_id.is_none_or(|id| c.id.0 == id)
        };
        if !here {
            continue;
        }
        if let Some(v) = dash.store.visit(partner, c.id, &record_id).await? {
            found = Some(v);
            break;
        }
    }
    let visit = found.ok_or_else(|| Problem::not_found("visit"))?;
    let (history, level) = match visit.client_id {
        Some(client) => {
            let history = dash.store.visits_of(partner, client, HISTORY).await?;
            let level = dash
                .store
                .client(partner, client)
                .await?
                .and_then(|c| c.level);
            (history, level)
        }
        None => (Vec::new(), None),
    };
    let program = &caller.partner.program;
    let p =
        preview(program, &trigger, &visit, &history, level.as_deref()).map_err(|e| match e {
            PreviewError::Money(m) => Problem::internal("a preview", m),
            other => invalid(other.to_string()),
        })?;
    Ok(Json(PreviewOut {
        fires: p.fires,
        checks: p
            .checks
            .into_iter()
            .map(|c| CheckOut {
                condition: c.condition.to_owned(),
                holds: c.holds,
                detail: c.detail,
            })
            .collect(),
        points: p.points.0,
        message: p.message,
        webhook: p.webhook,
        visit_number: p.ordinal,
        since_last_visit_days: p.since_last_days,
        level: p.level,
        record_id: visit.record_id,
        client_id: visit.client_id.map(|c| c.0),
    }))
}

fn invalid(detail: String) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_trigger", detail)
}
