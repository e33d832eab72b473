//! Update deliveries → events.
//!
//! **Assumed** (the envelope was not seen in the docs, which say each update carries the
//! table, the operation, the row id, the row's new state and a global incremental update id):
//! `{"update_id": 1012, "database": "123456", "table": "sales", "operation":
//! "insert"|"update"|"delete", "id": "<guid>", "row": {…}}`, one object or an array of them;
//! the replay (`/updates/webhooks/batch`) answers the same objects. Tests that rest on it are
//! named `assumed_*`.
//!
//! A sale or an appointment is never applied from one row: a visit is its appointment and all
//! its sales, so the row only says *which* visit to fetch (`needs_refetch`) — except a deleted
//! appointment, and a sale without an appointment, which are whole as they come.

use crm_http::{ParseContext, lenient};
use loyalty_core::event::{ClientEvent, ClientRef, CrmEvent, OtherEvent, VisitEvent, VisitStatus};
use loyalty_core::{LoyaltyPaid, WebhookError};
use serde_json::{Map, Value};

use crate::rows::{self, Malformed};

/// One update, read.
pub struct Update {
    pub update_id: Option<i64>,
    pub event: CrmEvent,
}

/// Parses a delivery (one update or an array of them).
pub fn parse(ctx: &ParseContext, database: &str, body: &[u8]) -> Result<Vec<Update>, WebhookError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(WebhookError::Malformed("the body is empty".to_owned()));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    updates(ctx, database, &value).map_err(|Malformed(why)| WebhookError::Shape(why))
}

/// The updates of a parsed body.
pub fn updates(
    ctx: &ParseContext,
    database: &str,
    value: &Value,
) -> Result<Vec<Update>, Malformed> {
    let items: Vec<&Value> = match value {
        Value::Array(items) if items.is_empty() => {
            return Err(Malformed("an empty array of updates".into()));
        }
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let m = item
                .as_object()
                .ok_or_else(|| Malformed(format!("update {i} is not an object")))?;
            update(ctx, database, m)
                .map_err(|Malformed(why)| Malformed(format!("update {i}: {why}")))
        })
        .collect()
}

fn update(ctx: &ParseContext, database: &str, m: &Map<String, Value>) -> Result<Update, Malformed> {
    let table = lenient::text(m, "table").ok_or_else(|| Malformed("no table".into()))?;
    let operation =
        lenient::text(m, "operation").ok_or_else(|| Malformed("no operation".into()))?;
    if !matches!(operation.as_str(), "insert" | "update" | "delete") {
        return Err(Malformed(format!(
            "operation {operation:?} is not insert, update or delete"
        )));
    }
    let deleted = operation == "delete";
    let update_id = lenient::int(m, "update_id")?;
    let company = lenient::text(m, "database").unwrap_or_else(|| database.to_owned());
    let row = lenient::object(m.get("row"));
    let id = rows::guid(m, "id")?
        .or(row.map(|r| rows::guid(r, "id")).transpose()?.flatten())
        .ok_or_else(|| Malformed("no row id".into()))?;
    let fetch = |record_id: String| CrmEvent::Visit(stub(ctx, &company, record_id));
    let event = match table.as_str() {
        "appointments" if deleted => CrmEvent::Visit(VisitEvent {
            status: VisitStatus::Deleted,
            needs_refetch: false,
            ..stub(ctx, &company, id)
        }),
        "appointments" => fetch(id),
        "sales" => {
            let mut with_id = row.cloned().unwrap_or_default();
            with_id.insert("id".into(), Value::String(id.clone()));
            let sale = rows::sale(&with_id)?;
            match sale.appointment.clone() {
                Some(appointment) => fetch(appointment),
                None if matches!(sale.kind.as_str(), "service" | "product") => {
                    let client = sale.client.clone().map(|c| ClientRef {
                        external_id: Some(c),
                        phone: None,
                        name: None,
                    });
                    let mut s = sale;
                    s.cancelled |= deleted;
                    CrmEvent::Visit(rows::sale_visit(ctx, &company, &s, client))
                }
                None => CrmEvent::Other(OtherEvent {
                    company_id: company,
                    resource: "sale".into(),
                    resource_id: Some(id),
                    status: Some(operation),
                }),
            }
        }
        "clients" => {
            let mut with_id = row.cloned().unwrap_or_default();
            with_id.insert("id".into(), Value::String(id));
            let c = rows::client(ctx, &with_id)?;
            CrmEvent::Client(ClientEvent {
                company_id: company,
                external_id: c.external_id,
                phone: c.phone,
                name: c.name,
                deleted,
                email: c.email,
                birth_date: None,
            })
        }
        "services" | "employees" => CrmEvent::Other(OtherEvent {
            company_id: company,
            resource: if table == "services" {
                "service"
            } else {
                "staff"
            }
            .into(),
            resource_id: Some(id),
            status: Some(operation),
        }),
        other => {
            return Err(Malformed(format!(
                "table {other:?} is not appointments, sales, clients, services or employees"
            )));
        }
    };
    Ok(Update { update_id, event })
}

/// A visit known only by its appointment: to be fetched.
pub fn stub(ctx: &ParseContext, company: &str, record_id: String) -> VisitEvent {
    VisitEvent {
        company_id: company.to_owned(),
        record_id,
        version: None,
        status: VisitStatus::Waiting,
        client: None,
        currency: ctx.currency,
        lines: Vec::new(),
        staff_id: None,
        staff_name: None,
        visit_at_ms: None,
        needs_refetch: true,
        loyalty_paid: LoyaltyPaid::NotReported,
    }
}
