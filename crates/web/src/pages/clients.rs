//! Clients: the list searched by phone or name (htmx swaps the rows as one types), a client's
//! card with balance, level, visits and points history, and points added or written off by hand.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use loyalty_core::history::HistoryStore;
use loyalty_core::{Client, ClientId, ClientStore, LedgerStore, PartnerStore, Points, VisitStatus};
use loyalty_store::{ClientLine, ClientQuery};
use serde::Deserialize;

use super::{Chrome, day, html, htmx, money, number, when};
use crate::session::{Staff, new_token};
use crate::{Dashboard, WebError};

/// Rows per page of the list.
const PAGE: u32 = 50;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: u32,
}

pub struct Row {
    pub id: i64,
    pub phone: String,
    pub name: String,
    pub linked: bool,
    pub level: String,
    pub balance: String,
    pub visits: String,
    pub last_visit: String,
}

impl Row {
    fn of(l: &ClientLine, offset: i32) -> Row {
        Row {
            id: l.id.0,
            phone: l.phone.clone(),
            name: l.name.clone().unwrap_or_default(),
            linked: l.telegram_linked,
            level: l.level.clone().unwrap_or_default(),
            balance: number(l.balance),
            visits: number(l.visits),
            last_visit: l.last_visit_ms.map(|t| day(t, offset)).unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "clients.html")]
struct List {
    c: Chrome,
    q: String,
    rows: Vec<Row>,
    prev: Option<u32>,
    next: Option<u32>,
}

#[derive(Template)]
#[template(path = "client_rows.html")]
struct Rows {
    c: super::Words,
    q: String,
    rows: Vec<Row>,
    prev: Option<u32>,
    next: Option<u32>,
}

pub async fn list(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, WebError> {
    staff.desk()?;
    let page = query.page.min(10_000);
    let found = dash
        .store
        .search_clients(
            staff.partner.id,
            &ClientQuery::parse(&query.q),
            PAGE + 1,
            page * PAGE,
        )
        .await?;
    let offset = staff.partner.program.utc_offset_minutes;
    let more = found.len() > PAGE as usize;
    let rows: Vec<Row> = found
        .iter()
        .take(PAGE as usize)
        .map(|l| Row::of(l, offset))
        .collect();
    let prev = page.checked_sub(1);
    let next = more.then_some(page + 1);
    let q = query.q.trim().to_owned();
    if htmx(&headers) {
        return html(&Rows {
            c: super::Words {
                w: staff.lang.words(),
            },
            q,
            rows,
            prev,
            next,
        });
    }
    html(&List {
        c: Chrome::new(&staff, "clients"),
        q,
        rows,
        prev,
        next,
    })
}

pub struct Entry {
    pub when: String,
    pub what: String,
    pub points: String,
    pub plus: bool,
    pub reason: String,
}

pub struct VisitRow {
    /// A desk visit that came: the record staff may cancel from here.
    pub cancel: Option<String>,
    pub when: String,
    pub status: String,
    pub paid: String,
    pub services: String,
    pub master: String,
}

#[derive(Template)]
#[template(path = "client.html")]
struct Card {
    c: Chrome,
    id: i64,
    phone: String,
    name: String,
    linked: bool,
    balance: String,
    pending: String,
    level: String,
    visits_count: String,
    paid_total: String,
    last_visit: String,
    entries: Vec<Entry>,
    visits: Vec<VisitRow>,
    /// A fresh key for the form: a second press of the same form posts nothing more.
    key: String,
    posted: bool,
}

#[derive(Deserialize, Default)]
pub struct CardQuery {
    #[serde(default)]
    posted: Option<String>,
}

/// The partner's client by the id in the URL; any other salon's id is not found.
async fn own_client(dash: &Dashboard, staff: &Staff, id: &str) -> Result<Client, WebError> {
    let id: i64 = id.parse().map_err(|_| WebError::NotFound)?;
    ClientStore::client(dash.store.as_ref(), staff.partner.id, ClientId(id))
        .await?
        .ok_or(WebError::NotFound)
}

pub async fn show(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Path(id): Path<String>,
    Query(query): Query<CardQuery>,
) -> Result<Response, WebError> {
    staff.desk()?;
    let client = own_client(&dash, &staff, &id).await?;
    let partner = staff.partner.id;
    let lang = staff.lang;
    let w = lang.words();
    let offset = staff.partner.program.utc_offset_minutes;
    let currency = staff.partner.program.currency;
    let store = dash.store.as_ref();
    let balance = LedgerStore::balance(store, partner, client.id).await?;
    let pending = LedgerStore::pending(store, partner, client.id).await?;
    let summary = store.summary(partner, client.id).await?.unwrap_or_default();
    let level = dash
        .engine
        .client_level(partner, &client)
        .await?
        .map(|l| l.progress.level)
        .unwrap_or_default();
    let entries = LedgerStore::history(store, partner, client.id, 50)
        .await?
        .iter()
        .map(|e| {
            let d = e.shown_delta();
            Entry {
                when: when(e.created_at_ms, offset),
                what: lang.entry(e.kind).to_owned(),
                points: if d.0 > 0 {
                    format!("+{}", number(d.0))
                } else {
                    number(d.0)
                },
                plus: d.0 > 0,
                reason: e.reason.clone().unwrap_or_default(),
            }
        })
        .collect();
    let visits = store
        .visits_of(partner, client.id, 20)
        .await?
        .iter()
        .map(|v| VisitRow {
            cancel: (v.source == loyalty_core::inbox::Source::Desk
                && v.status == VisitStatus::Came)
                .then(|| v.record_id.clone()),
            when: v.visit_at_ms.map(|t| when(t, offset)).unwrap_or_default(),
            status: match v.status {
                VisitStatus::Came => w.came.to_owned(),
                _ => w.not_came.to_owned(),
            },
            paid: money(v.paid_minor, currency),
            services: v
                .lines
                .iter()
                .map(|l| l.title.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            master: v.staff_name.clone().unwrap_or_default(),
        })
        .collect();
    html(&Card {
        c: Chrome::new(&staff, "clients"),
        id: client.id.0,
        phone: client.phone.as_str().to_owned(),
        name: client.name.clone().unwrap_or_default(),
        linked: client.telegram_chat_id.is_some(),
        balance: number(balance.0),
        pending: number(pending.0),
        level,
        visits_count: number(summary.visits),
        paid_total: money(summary.paid_minor, currency),
        last_visit: summary
            .last_visit_ms
            .map(|t| day(t, offset))
            .unwrap_or_default(),
        entries,
        visits,
        key: new_token().map_err(|e| WebError::Internal(e.to_string()))?,
        posted: query.posted.is_some(),
    })
}

#[derive(Deserialize)]
pub struct PointsForm {
    direction: String,
    points: String,
    reason: String,
    key: String,
}

/// Points added or written off by hand, with a reason: the client is told, the audit log
/// names who did it. The form's key makes a second press the same posting.
pub async fn points(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Path(id): Path<String>,
    Form(f): Form<PointsForm>,
) -> Result<Response, WebError> {
    staff.desk()?;
    let client = own_client(&dash, &staff, &id).await?;
    let points: i64 = f
        .points
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| WebError::BadInput(format!("{:?}", f.points.trim())))?;
    let reason = f.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(WebError::BadInput(staff.lang.words().reason.to_owned()));
    }
    let key = f.key.trim();
    if key.is_empty() || key.len() > 100 {
        return Err(WebError::BadInput("key".into()));
    }
    let key = format!("dash:{key}");
    let engine = staff.engine(&dash);
    let partner = staff.partner.id;
    match f.direction.as_str() {
        "accrue" => {
            engine
                .manual_accrual(partner, client.id, Points(points), reason, &key)
                .await?
        }
        "debit" => {
            engine
                .manual_debit(partner, client.id, Points(points), reason, &key)
                .await?
        }
        other => return Err(WebError::BadInput(format!("{other:?}"))),
    };
    Ok(Redirect::to(&format!("/clients/{}?posted=1", client.id.0)).into_response())
}

#[derive(Deserialize)]
pub struct CancelForm {
    record: String,
    reason: String,
}

/// A visit entered at the desk cancelled from the client's card (typed twice, or never
/// happened): its points taken back with the staff's reason, the client told, audited. Only a
/// desk visit of this client is found.
pub async fn cancel_visit(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Path(id): Path<String>,
    Form(f): Form<CancelForm>,
) -> Result<Response, WebError> {
    staff.desk()?;
    let client = own_client(&dash, &staff, &id).await?;
    let reason = f.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(WebError::BadInput(staff.lang.words().reason.to_owned()));
    }
    let partner = staff.partner.id;
    let store = dash.store.as_ref();
    let desk = PartnerStore::connections_of(store, partner)
        .await?
        .into_iter()
        .find(|c| c.kind == loyalty_core::CrmKind::Desk)
        .ok_or(WebError::NotFound)?;
    let previous = store
        .visit(partner, desk.id, f.record.trim())
        .await?
        .filter(|v| v.client_id == Some(client.id))
        .ok_or(WebError::NotFound)?;
    staff
        .engine(&dash)
        .desk_change(
            &desk,
            &previous,
            loyalty_core::engine::DeskChange::Cancel,
            reason,
        )
        .await?;
    Ok(Redirect::to(&format!("/clients/{}?posted=1", client.id.0)).into_response())
}

/// Every client of the salon as CSV (phone, name, Telegram, level, balance, visits, last
/// visit): personal data, so the audit log records who took it.
pub async fn export(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
) -> Result<Response, WebError> {
    staff.desk()?;
    let partner = staff.partner.id;
    let offset = staff.partner.program.utc_offset_minutes;
    let mut out = String::from("phone,name,telegram,level,balance,visits,last_visit\r\n");
    // A name or level a spreadsheet would run as a formula is kept as text; phones are ours
    // (E.164) and stay as they are.
    let text = |s: &str| {
        let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{s}")
        } else {
            s.to_owned()
        };
        format!("\"{}\"", s.replace('"', "\"\""))
    };
    let mut offset_rows = 0u32;
    let mut rows = 0i64;
    loop {
        let page = dash
            .store
            .search_clients(partner, &ClientQuery::All, 5_000, offset_rows)
            .await?;
        for l in &page {
            out.push_str(&format!(
                "{},{},{},{},{},{},{}\r\n",
                l.phone,
                text(l.name.as_deref().unwrap_or("")),
                if l.telegram_linked { "yes" } else { "no" },
                text(l.level.as_deref().unwrap_or("")),
                l.balance,
                l.visits,
                l.last_visit_ms.map(|t| day(t, offset)).unwrap_or_default(),
            ));
        }
        rows += page.len() as i64;
        if page.len() < 5_000 {
            break;
        }
        offset_rows += 5_000;
    }
    dash.store
        .audit_now(
            partner,
            &staff.actor(),
            loyalty_core::audit::AuditAction::ClientsExported,
            &serde_json::json!({ "clients": rows }),
            dash.now_ms(),
        )
        .await?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"clients.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}
