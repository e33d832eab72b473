//! The audit log (owners only): who changed what, when, newest first.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use loyalty_core::audit::AuditStore;

use super::{Chrome, html, when};
use crate::session::Staff;
use crate::{Dashboard, WebError};

pub struct Line {
    pub when: String,
    pub who: String,
    pub what: &'static str,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct Audit {
    c: Chrome,
    lines: Vec<Line>,
}

pub async fn page(State(dash): State<Arc<Dashboard>>, staff: Staff) -> Result<Response, WebError> {
    staff.owner()?;
    let offset = staff.partner.program.utc_offset_minutes;
    let lines = dash
        .store
        .audit_log(staff.partner.id, 200)
        .await?
        .into_iter()
        .map(|e| Line {
            when: when(e.at_ms, offset),
            who: format!("{} ({})", e.actor.name, e.actor.via),
            what: e.action.as_str(),
            detail: e.detail.to_string(),
        })
        .collect();
    html(&Audit {
        c: Chrome::new(&staff, "audit"),
        lines,
    })
}
