//! The partner API's keys (owners; the Enterprise plan): the salon's keys by prefix and scope,
//! a new key shown once, a key revoked; a link to the API's reference.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use loyalty_core::audit::Capability;
use loyalty_store::KeyScope;
use serde::Deserialize;

use super::{Chrome, html, when};
use crate::session::Staff;
use crate::{Dashboard, WebError};

pub struct KeyRow {
    pub prefix: String,
    pub scope: &'static str,
    pub created: String,
    pub revoked: Option<String>,
}

#[derive(Template)]
#[template(path = "api_keys.html")]
struct Keys {
    c: Chrome,
    /// The salon's plan includes the API.
    allowed: bool,
    /// The plan that does, when this one does not.
    needs: &'static str,
    keys: Vec<KeyRow>,
    /// A key just made, shown this once.
    made: Option<String>,
    endpoints: Vec<EndpointRow>,
}

/// A partner's webhook endpoint, and why it stopped if it did.
pub struct EndpointRow {
    pub url: String,
    pub events: String,
    pub failing_since: Option<String>,
    pub disabled: Option<String>,
}

async fn keys(dash: &Dashboard, staff: &Staff, made: Option<String>) -> Result<Response, WebError> {
    let lang = staff.lang;
    let w = lang.words();
    let offset = staff.partner.program.utc_offset_minutes;
    let keys = dash
        .store
        .api_keys(staff.partner.id)
        .await?
        .into_iter()
        .map(|k| KeyRow {
            prefix: k.prefix,
            scope: match k.scope {
                KeyScope::Read => w.api_scope_read,
                KeyScope::Write => w.api_scope_write,
            },
            created: when(k.created_at_ms, offset),
            revoked: k.revoked_at_ms.map(|t| when(t, offset)),
        })
        .collect();
    let endpoints = dash
        .store
        .endpoints(staff.partner.id)
        .await?
        .into_iter()
        .map(|e| EndpointRow {
            events: if e.events.is_empty() {
                "*".to_owned()
            } else {
                e.events
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            failing_since: e.failing_since_ms.map(|t| when(t, offset)),
            disabled: e.disabled_at_ms.map(|t| {
                format!(
                    "{} — {}",
                    when(t, offset),
                    e.disabled_reason.unwrap_or_default()
                )
            }),
            url: e.url,
        })
        .collect();
    html(&Keys {
        c: Chrome::new(staff, "api"),
        endpoints,
        allowed: staff.partner.plan.allows(Capability::Api),
        needs: lang.plan(Capability::Api.least_plan()),
        keys,
        made,
    })
}

pub async fn page(State(dash): State<Arc<Dashboard>>, staff: Staff) -> Result<Response, WebError> {
    staff.owner()?;
    keys(&dash, &staff, None).await
}

#[derive(Deserialize)]
pub struct AddForm {
    scope: String,
}

/// A new key: shown on the page this once.
pub async fn add(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Form(f): Form<AddForm>,
) -> Result<Response, WebError> {
    staff.owner()?;
    staff.plan(Capability::Api)?;
    let scope = KeyScope::parse(f.scope.trim())
        .ok_or_else(|| WebError::BadInput(format!("{:?}", f.scope)))?;
    let (key, _) = crate::api::issue_key(
        &dash.store,
        staff.partner.id,
        scope,
        &staff.actor(),
        dash.now_ms(),
    )
    .await
    .map_err(|e| match e {
        crate::api::KeyError::Store(s) => WebError::Store(s),
        other => WebError::Internal(other.to_string()),
    })?;
    keys(&dash, &staff, Some(key)).await
}

#[derive(Deserialize)]
pub struct RevokeForm {
    prefix: String,
}

pub async fn revoke(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Form(f): Form<RevokeForm>,
) -> Result<Response, WebError> {
    staff.owner()?;
    dash.store
        .revoke_api_key(
            staff.partner.id,
            f.prefix.trim(),
            &staff.actor(),
            dash.now_ms(),
        )
        .await?
        .ok_or(WebError::NotFound)?;
    Ok(Redirect::to("/api-keys").into_response())
}
