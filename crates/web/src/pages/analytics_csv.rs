//! The analytics' numbers as CSV, one file per chart or table: the same [`figures`] the page
//! shows.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use loyalty_core::audit::Capability;
use loyalty_store::models::VALUE_BINS_MINOR;

use super::analytics::figures;
use crate::i18n::Lang;
use crate::session::Staff;
use crate::{Dashboard, WebError};

/// The numbers behind a chart or table as CSV (`;`-separated for Russian spreadsheets when the
/// reader is Russian, `,` otherwise), named by what it holds.
pub async fn csv(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Path(name): Path<String>,
) -> Result<Response, WebError> {
    staff.plan(Capability::Analytics)?;
    let f = figures(&dash, &staff, false).await?;
    let sep = if staff.lang == Lang::Ru { ';' } else { ',' };
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        out.push_str(&cells.join(&sep.to_string()));
        out.push_str("\r\n");
    };
    match name.as_str() {
        "points.csv" => {
            line(&[
                "month".into(),
                "issued".into(),
                "spent".into(),
                "expired".into(),
            ]);
            for (m, p) in f.months.iter().zip(&f.by_month) {
                line(&[
                    m.clone(),
                    p.issued.to_string(),
                    p.spent.to_string(),
                    p.expired.to_string(),
                ]);
            }
        }
        "linked.csv" => {
            line(&[
                "group".into(),
                "clients_last_year".into(),
                "visits_60".into(),
                "returned_60".into(),
                "visits_90".into(),
                "returned_90".into(),
                "visits_last_year".into(),
                "paid_minor_last_year".into(),
            ]);
            for (name, g) in [
                ("linked", f.linked.linked),
                ("not_linked", f.linked.not_linked),
            ] {
                line(&[
                    name.into(),
                    g.year_clients.to_string(),
                    g.visits_60.to_string(),
                    g.returned_60.to_string(),
                    g.visits_90.to_string(),
                    g.returned_90.to_string(),
                    g.year_visits.to_string(),
                    g.year_paid_minor.to_string(),
                ]);
            }
        }
        "cohorts.csv" => {
            let mut head = vec!["first_visit_month".to_owned(), "clients".to_owned()];
            head.extend((0..f.months.len()).map(|k| format!("came_month_{k}")));
            line(&head);
            for (m, c) in f.months.iter().zip(&f.cohorts) {
                let mut row = vec![m.clone(), c.size.to_string()];
                row.extend(c.returned.iter().map(i64::to_string));
                line(&row);
            }
        }
        "reminders.csv" => {
            line(&[
                "trigger".into(),
                "sent".into(),
                "sent_returned".into(),
                "control".into(),
                "control_returned".into(),
                "difference_bps".into(),
                "low_bps".into(),
                "high_bps".into(),
            ]);
            for u in &f.uplift {
                let opt = |x: Option<i64>| x.map(|v| v.to_string()).unwrap_or_default();
                line(&[
                    u.trigger.clone(),
                    u.treated.n.to_string(),
                    u.treated.returned.to_string(),
                    u.control.n.to_string(),
                    u.control.returned.to_string(),
                    opt(u.difference_bps),
                    opt(u.interval_bps.map(|i| i.0)),
                    opt(u.interval_bps.map(|i| i.1)),
                ]);
            }
        }
        "locations.csv" => {
            line(&[
                "connection_id".into(),
                "clients_last_year".into(),
                "visits_last_year".into(),
                "paid_minor_last_year".into(),
                "points_last_year".into(),
                "visits_60".into(),
                "returned_60".into(),
            ]);
            let rows = f
                .locations
                .iter()
                .map(|l| (l.connection_id.to_string(), l.linked.everyone()))
                .chain([("all".to_owned(), f.linked.everyone())]);
            for (id, g) in rows {
                line(&[
                    id,
                    g.year_clients.to_string(),
                    g.year_visits.to_string(),
                    g.year_paid_minor.to_string(),
                    g.year_points.to_string(),
                    g.visits_60.to_string(),
                    g.returned_60.to_string(),
                ]);
            }
        }
        "values.csv" => {
            line(&["from_minor".into(), "to_minor".into(), "clients".into()]);
            if let Some(v) = &f.values {
                for (i, n) in v.bins.iter().enumerate() {
                    let hi = VALUE_BINS_MINOR.get(i + 1).map(i64::to_string);
                    line(&[
                        VALUE_BINS_MINOR[i].to_string(),
                        hi.unwrap_or_default(),
                        n.to_string(),
                    ]);
                }
            }
        }
        "at_risk.csv" => {
            line(&[
                "client_id".into(),
                "p_alive_bps".into(),
                "at_stake_minor".into(),
                "days_away".into(),
            ]);
            for r in f.values.iter().flat_map(|v| &v.at_risk) {
                line(&[
                    r.client.0.to_string(),
                    r.p_alive_bps.to_string(),
                    r.at_stake_minor.to_string(),
                    r.days_away.to_string(),
                ]);
            }
        }
        _ => return Err(WebError::NotFound),
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        out,
    )
        .into_response())
}
