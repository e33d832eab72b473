//! The overview: the salon's figures at a glance.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use loyalty_core::{CrmKind, PartnerStore};

use super::{Chrome, html, number};
use crate::session::Staff;
use crate::{Dashboard, WebError};

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    c: Chrome,
    clients: String,
    linked: String,
    outstanding: String,
    visits_30: String,
    /// An owner of a salon with no CRM connected yet: the setup's call.
    setup: bool,
}

const DAY_MS: i64 = 24 * 3600 * 1000;

pub async fn page(State(dash): State<Arc<Dashboard>>, staff: Staff) -> Result<Response, WebError> {
    let o = dash
        .store
        .overview(staff.partner.id, dash.now_ms() - 30 * DAY_MS)
        .await?;
    let setup = staff.user.role.runs_salon()
        && dash.connector.is_some()
        && !dash
            .store
            .connections_of(staff.partner.id)
            .await?
            .iter()
            .any(|c| c.kind != CrmKind::Desk);
    html(&Home {
        c: Chrome::new(&staff, "home"),
        clients: number(o.clients),
        linked: number(o.linked),
        outstanding: number(o.outstanding),
        visits_30: number(o.visits_since),
        setup,
    })
}
