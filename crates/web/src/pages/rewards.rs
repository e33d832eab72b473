//! Rewards (owners): what points buy — money certificates, and services from the CRM's synced
//! list that points may buy, at the CRM's price. Added and taken off the catalog, audited.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use loyalty_core::audit::AuditAction;
use loyalty_core::{NewReward, PartnerStore, Points, RewardId, RewardKind, RewardStore};
use loyalty_store::CatalogService;
use serde::Deserialize;
use serde_json::json;

use super::{Chrome, html, money, number, parse_money};
use crate::session::Staff;
use crate::{Dashboard, WebError};

pub struct RewardRow {
    pub id: i64,
    pub title: String,
    pub what: String,
    pub points: String,
}

pub struct ServiceOption {
    pub id: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "rewards.html")]
struct Rewards {
    c: Chrome,
    rewards: Vec<RewardRow>,
    services: Vec<ServiceOption>,
    currency: &'static str,
}

/// The services points may buy at one price, over the salon's connections.
async fn buyable(dash: &Dashboard, staff: &Staff) -> Result<Vec<CatalogService>, WebError> {
    let mut out = Vec::new();
    for c in dash.store.connections_of(staff.partner.id).await? {
        out.extend(
            dash.store
                .services(c.id, false)
                .await?
                .into_iter()
                .filter(|s| s.buyable() && s.price_minor().is_some()),
        );
    }
    Ok(out)
}

pub async fn page(State(dash): State<Arc<Dashboard>>, staff: Staff) -> Result<Response, WebError> {
    staff.owner()?;
    let currency = staff.partner.program.currency;
    let services = buyable(&dash, &staff).await?;
    let title_of = |id: &str| {
        services
            .iter()
            .find(|s| s.service_id == id)
            .map_or_else(|| id.to_owned(), |s| s.title.clone())
    };
    let rewards = dash
        .store
        .rewards(staff.partner.id, false)
        .await?
        .into_iter()
        .map(|r| RewardRow {
            id: r.id.0,
            what: match &r.kind {
                RewardKind::Certificate { value_minor } => money(*value_minor, currency),
                RewardKind::Service {
                    service_id,
                    price_minor,
                } => format!(
                    "{} · {}",
                    title_of(service_id),
                    money(*price_minor, currency)
                ),
            },
            title: r.title,
            points: number(r.cost.0),
        })
        .collect();
    html(&Rewards {
        c: Chrome::new(&staff, "rewards"),
        rewards,
        services: services
            .iter()
            .map(|s| ServiceOption {
                id: s.service_id.clone(),
                label: format!(
                    "{} · {}",
                    s.title,
                    money(s.price_minor().unwrap_or_default(), currency)
                ),
            })
            .collect(),
        currency: currency.symbol(),
    })
}

#[derive(Deserialize)]
pub struct AddForm {
    title: String,
    points: String,
    /// A certificate's worth, or empty for a service.
    #[serde(default)]
    value: String,
    #[serde(default)]
    service: String,
}

pub async fn add(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Form(f): Form<AddForm>,
) -> Result<Response, WebError> {
    staff.owner()?;
    let currency = staff.partner.program.currency;
    let points: i64 = f
        .points
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| WebError::BadInput(format!("points: {:?}", f.points.trim())))?;
    let kind = match (f.value.trim(), f.service.trim()) {
        (value, "") if !value.is_empty() => RewardKind::Certificate {
            value_minor: parse_money(value, currency)
                .ok_or_else(|| WebError::BadInput(format!("value: {value:?}")))?,
        },
        ("", service) if !service.is_empty() => {
            let found = buyable(&dash, &staff)
                .await?
                .into_iter()
                .find(|s| s.service_id == service)
                .ok_or(WebError::NotFound)?;
            RewardKind::Service {
                service_id: found.service_id.clone(),
                price_minor: found.price_minor().unwrap_or_default(),
            }
        }
        _ => return Err(WebError::BadInput("value or service".into())),
    };
    let reward = NewReward {
        title: f.title.trim().to_owned(),
        cost: Points(points),
        kind,
    };
    reward
        .validate()
        .map_err(|e| WebError::BadInput(e.to_string()))?;
    let now = dash.now_ms();
    let created = dash
        .store
        .create_reward(staff.partner.id, &reward, now)
        .await?;
    dash.store
        .audit_now(
            staff.partner.id,
            &staff.actor(),
            AuditAction::RewardAdded,
            &json!({"reward": created.id, "title": created.title, "points": points}),
            now,
        )
        .await?;
    Ok(Redirect::to("/rewards").into_response())
}

#[derive(Deserialize)]
pub struct RemoveForm {
    id: String,
}

pub async fn remove(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Form(f): Form<RemoveForm>,
) -> Result<Response, WebError> {
    staff.owner()?;
    let id: i64 = f.id.trim().parse().map_err(|_| WebError::NotFound)?;
    if !dash
        .store
        .remove_reward(staff.partner.id, RewardId(id))
        .await?
    {
        return Err(WebError::NotFound);
    }
    dash.store
        .audit_now(
            staff.partner.id,
            &staff.actor(),
            AuditAction::RewardRemoved,
            &json!({"reward": id}),
            dash.now_ms(),
        )
        .await?;
    Ok(Redirect::to("/rewards").into_response())
}
