//! The integration's health (owners and admins): per connection the last webhook, the poller's
//! last pass and how far behind it is, open incidents, the history import's progress; and the
//! latest deliveries refused, with why.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use loyalty_core::PartnerStore;
use loyalty_core::health::HealthStore;
use loyalty_core::import::{ImportJob, ImportPhase, ImportStore};
use loyalty_core::sync::SyncStore;

use super::{Chrome, html, number, when};
use crate::i18n::Words;
use crate::session::Staff;
use crate::{Dashboard, WebError};

pub struct ConnectionRow {
    pub id: i64,
    pub crm: &'static str,
    pub company: String,
    pub last_webhook: String,
    pub last_pass: String,
    pub lag: String,
    pub pass: String,
    pub last_error: String,
    pub incidents: Vec<String>,
    pub import: String,
}

pub struct RejectedRow {
    pub when: String,
    pub connection: i64,
    pub status: u16,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "health.html")]
struct Health {
    c: Chrome,
    connections: Vec<ConnectionRow>,
    rejected: Vec<RejectedRow>,
}

/// An import's phase and counts: `Visits: 1 200 / 5 000 clients, 300 visits`.
pub(crate) fn import_line(j: &ImportJob, w: &Words) -> String {
    let phase = match j.phase {
        ImportPhase::Clients => w.import_clients,
        ImportPhase::Records => w.import_records,
        ImportPhase::Done => w.import_done,
    };
    let of = |seen: i64, total: Option<u64>| match total {
        Some(t) => format!(
            "{} / {}",
            number(seen),
            number(i64::try_from(t).unwrap_or(i64::MAX))
        ),
        None => number(seen),
    };
    let mut line = format!(
        "{phase}: {} {}, {} {}",
        of(j.clients_seen, j.total_clients),
        w.import_clients_word,
        of(j.records_seen, j.total_records),
        w.import_records_word
    );
    if j.errors > 0 {
        line.push_str(&format!(", {} {}", number(j.errors), w.import_failed_word));
    }
    line
}

/// A duration in the largest whole unit: `45 s`, `12 min`, `3 h`, `2 d`.
fn ago(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

pub async fn page(State(dash): State<Arc<Dashboard>>, staff: Staff) -> Result<Response, WebError> {
    staff.desk()?;
    let partner = staff.partner.id;
    let offset = staff.partner.program.utc_offset_minutes;
    let w = staff.lang.words();
    let now = dash.now_ms();
    let store = dash.store.as_ref();
    let connections = store.connections_of(partner).await?;
    let mut rows = Vec::new();
    for c in &connections {
        let cursor = store.sync_cursors(Some(c.id)).await?.into_iter().next();
        let incidents = store.incidents(Some(c.id), false).await?;
        let import = store.imports(Some(c.id)).await?.into_iter().last();
        let at = |t: Option<i64>| t.map_or_else(|| "—".to_owned(), |t| when(t, offset));
        rows.push(ConnectionRow {
            id: c.id.0,
            crm: c.kind.as_str(),
            company: c.company_id.clone(),
            last_webhook: at(cursor.as_ref().and_then(|k| k.last_webhook_ms)),
            last_pass: at(cursor.as_ref().and_then(|k| k.last_finished_ms)),
            lag: cursor
                .as_ref()
                .and_then(|k| k.cursor_ms)
                .map_or_else(|| "—".into(), |t| ago(now - t)),
            pass: cursor.as_ref().map_or_else(String::new, |k| {
                format!(
                    "{} / {} / {} / {}",
                    number(k.seen),
                    number(k.applied),
                    number(k.queued),
                    number(k.errors)
                )
            }),
            last_error: cursor
                .as_ref()
                .and_then(|k| k.last_error.clone())
                .unwrap_or_default(),
            incidents: incidents
                .iter()
                .map(|i| {
                    format!(
                        "{} ({}) · {}",
                        i.incident.as_str(),
                        i.detail,
                        when(i.opened_at_ms, offset)
                    )
                })
                .collect(),
            import: import.map_or_else(|| "—".into(), |j| import_line(&j, w)),
        });
    }
    let rejected = store
        .rejected_of(Some(partner), 50)
        .await?
        .into_iter()
        .map(|r| RejectedRow {
            when: when(r.received_at_ms, offset),
            connection: r.connection_id.0,
            status: r.http_status,
            reason: r.reason,
        })
        .collect();
    html(&Health {
        c: Chrome::new(&staff, "health"),
        connections: rows,
        rejected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_their_largest_unit() {
        assert_eq!(ago(-5), "0 s");
        assert_eq!(ago(59_999), "59 s");
        assert_eq!(ago(60_000), "1 min");
        assert_eq!(ago(3 * 3_600_000), "3 h");
        assert_eq!(ago(2 * 86_400_000 + 5), "2 d");
    }
}
