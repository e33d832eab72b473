//! `/api/v1/levels`, a client's level and her referrals.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use loyalty_core::level::LevelMeasure;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::clients::own;
use super::extract::Segment;
use super::problem::{Problem, ProblemDoc};
use crate::Dashboard;

fn measure(m: LevelMeasure) -> &'static str {
    match m {
        LevelMeasure::Paid => "paid",
        LevelMeasure::Visits => "visits",
        LevelMeasure::Referrals => "referrals",
    }
}

/// One level of the program.
#[derive(Serialize, ToSchema)]
pub struct Tier {
    name: String,
    /// The measure from which it is reached (minor units for `paid`, a count otherwise).
    threshold: i64,
    /// Cashback in basis points (500 = 5 %).
    cashback_bps: i64,
    /// The largest share of a bill points may pay, basis points.
    max_redeem_share_bps: i64,
}

/// The program's levels.
#[derive(Serialize, ToSchema)]
pub struct LevelsOut {
    /// Whether the program has levels; without them `tiers` is empty.
    enabled: bool,
    /// What levels count: `paid`, `visits` or `referrals`.
    measure: Option<String>,
    /// The rolling window counted, in days (`null`: all time).
    window_days: Option<u32>,
    /// Days a level holds before it is reviewed for a fall.
    grace_days: Option<u32>,
    /// From the first.
    tiers: Vec<Tier>,
}

/// Read the program's levels.
#[utoipa::path(
    get,
    operation_id = "get_levels",
    path = "/levels",
    tag = "program",
    responses((status = 200, description = "The levels", body = LevelsOut))
)]
pub async fn levels(caller: Caller) -> Result<Json<LevelsOut>, Problem> {
    Ok(Json(match &caller.partner.program.levels {
        None => LevelsOut {
            enabled: false,
            measure: None,
            window_days: None,
            grace_days: None,
            tiers: Vec::new(),
        },
        Some(l) => LevelsOut {
            enabled: true,
            measure: Some(measure(l.measure).to_owned()),
            window_days: l.window_days,
            grace_days: Some(l.grace_days),
            tiers: l
                .tiers
                .iter()
                .map(|t| Tier {
                    name: t.name.clone(),
                    threshold: t.threshold,
                    cashback_bps: t.cashback.value(),
                    max_redeem_share_bps: t.max_redeem_share.value(),
                })
                .collect(),
        },
    }))
}

/// A client's level and how far the next one is.
#[derive(Serialize, ToSchema)]
pub struct ClientLevel {
    client_id: i64,
    /// Her level's name; `null` when the program has no levels.
    level: Option<String>,
    /// The measure now (minor units for `paid`, a count otherwise).
    value: Option<i64>,
    next_level: Option<String>,
    /// How much more of the measure reaches the next level.
    to_next: Option<i64>,
    /// A level staff set by hand: she never falls below it.
    floor: Option<String>,
    since_ms: Option<i64>,
    /// When the level is next reviewed for a fall.
    review_at_ms: Option<i64>,
}

/// Read a client's level.
#[utoipa::path(
    get,
    operation_id = "get_client_level",
    path = "/clients/{id}/level",
    tag = "program",
    params(("id" = i64, Path, description = "The client's id")),
    responses(
        (status = 200, description = "Her level (all `null` when the program has none)", body = ClientLevel),
        (status = 404, description = "No such client at this salon (`not_found`)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn client_level(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    Segment(id): Segment,
) -> Result<Json<ClientLevel>, Problem> {
    let c = own(&dash, &caller, &id).await?;
    let view = dash.engine.client_level(caller.partner.id, &c).await?;
    Ok(Json(match view {
        None => ClientLevel {
            client_id: c.id.0,
            level: None,
            value: None,
            next_level: None,
            to_next: None,
            floor: None,
            since_ms: None,
            review_at_ms: None,
        },
        Some(v) => ClientLevel {
            client_id: c.id.0,
            level: Some(v.progress.level.clone()),
            value: Some(v.progress.value),
            next_level: v.progress.next.as_ref().map(|(n, _)| n.clone()),
            to_next: v.progress.next.as_ref().map(|(_, more)| *more),
            floor: v.floor,
            since_ms: v.since_ms,
            review_at_ms: v.review_at_ms,
        },
    }))
}

/// What a client's referral link has brought.
#[derive(Serialize, ToSchema)]
pub struct Referrals {
    client_id: i64,
    /// Whether the program pays for referrals.
    enabled: bool,
    /// Friends who joined through her link.
    invited: i64,
    /// Of them, those whose first visit came (and paid the bonus).
    qualified: i64,
    /// Points her link earned her.
    earned: i64,
    /// Her link to the salon's bot, when a bot runs.
    link: Option<String>,
}

/// Read a client's referral state.
#[utoipa::path(
    get,
    operation_id = "get_client_referrals",
    path = "/clients/{id}/referrals",
    tag = "program",
    params(("id" = i64, Path, description = "The client's id")),
    responses(
        (status = 200, description = "Her referrals", body = Referrals),
        (status = 404, description = "No such client at this salon (`not_found`)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn client_referrals(
    State(dash): State<Arc<Dashboard>>,
    caller: Caller,
    Segment(id): Segment,
) -> Result<Json<Referrals>, Problem> {
    let c = own(&dash, &caller, &id).await?;
    let partner = caller.partner.id;
    let stats = dash.engine.referral_stats(partner, c.id).await?;
    let link = match &dash.connector {
        Some(connector) => connector.join_link(partner).await.and_then(|join| {
            let (bot, _) = join.split_once("?start=")?;
            Some(format!(
                "{bot}?start={}",
                loyalty_core::referral::link_payload(partner, c.id)
            ))
        }),
        None => None,
    };
    Ok(Json(Referrals {
        client_id: c.id.0,
        enabled: caller.partner.program.referral.is_some(),
        invited: stats.invited,
        qualified: stats.qualified,
        earned: stats.earned.0,
        link,
    }))
}
