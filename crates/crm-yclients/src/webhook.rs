//! Webhook deliveries → normalized [`CrmEvent`]s.
//!
//! The envelope (confirmed, both vendors): `{company_id, resource, resource_id, status, data}`,
//! `status` ∈ `create | update | delete`. A body may also be a JSON array of envelopes (seen in a
//! defensive Altegio handler, undocumented). Marketplace lifecycle callbacks are
//! `{salon_id, application_id, event, partner_token}`.

use loyalty_core::event::{
    ClientEvent, ClientRef, CrmEvent, LineKind, LoyaltyPaid, OtherEvent, SaleEvent, VisitEvent,
    VisitLine, VisitStatus,
};
use loyalty_core::{Phone, WebhookError};
use serde_json::{Map, Value};

use crate::lenient::{self, FieldError};

pub use crm_http::ParseContext;

impl From<FieldError> for ParseError {
    fn from(e: FieldError) -> Self {
        ParseError(e.to_string())
    }
}

/// A payload whose shape is wrong; becomes [`WebhookError::Shape`].
#[derive(Debug)]
pub(crate) struct ParseError(pub(crate) String);

fn shape(msg: impl Into<String>) -> ParseError {
    ParseError(msg.into())
}

/// Parses one delivery body.
pub fn parse(ctx: &ParseContext, body: &[u8]) -> Result<Vec<CrmEvent>, WebhookError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(WebhookError::Malformed("the body is empty".to_owned()));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let envelopes: Vec<&Value> = match &value {
        Value::Array(items) if items.is_empty() => {
            return Err(WebhookError::Shape("an empty array of events".to_owned()));
        }
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    envelopes
        .into_iter()
        .enumerate()
        .map(|(i, envelope)| {
            event(ctx, envelope).map_err(|ParseError(msg)| {
                WebhookError::Shape(if value.is_array() {
                    format!("event {i}: {msg}")
                } else {
                    msg
                })
            })
        })
        .collect()
}

fn event(ctx: &ParseContext, envelope: &Value) -> Result<CrmEvent, ParseError> {
    let Value::Object(env) = envelope else {
        return Err(shape("an event must be a JSON object"));
    };
    if env.contains_key("event") && env.contains_key("salon_id") {
        return marketplace(env);
    }
    let company_id = lenient::id(env, "company_id")?.ok_or_else(|| shape("no company_id"))?;
    let resource = lenient::text(env, "resource").ok_or_else(|| shape("no resource"))?;
    let status = lenient::text(env, "status");
    let resource_id = lenient::id(env, "resource_id")?;
    let empty = Map::new();
    let data = lenient::object(env.get("data")).unwrap_or(&empty);
    let deleted = status.as_deref() == Some("delete");
    match resource.as_str() {
        "record" => record(ctx, company_id, resource_id, deleted, data).map(CrmEvent::Visit),
        "client" => {
            let external_id = resource_id
                .or(lenient::id(data, "id")?)
                .ok_or_else(|| shape("client event without an id"))?;
            Ok(CrmEvent::Client(ClientEvent {
                company_id,
                external_id,
                phone: phone(ctx, data),
                name: name(data),
                deleted: deleted || lenient::flag(data, "deleted")?.unwrap_or(false),
                email: lenient::text(data, "email"),
                birth_date: birth_date(data),
            }))
        }
        "goods_operations_sale" => goods_sale(ctx, company_id, resource_id, deleted, data),
        _ => Ok(CrmEvent::Other(OtherEvent {
            company_id,
            resource,
            resource_id,
            status,
        })),
    }
}

/// A record as the API returns it (`GET /record/…`, `GET /records/…`).
pub(crate) fn record_from_data(
    ctx: &ParseContext,
    company_id: String,
    resource_id: Option<String>,
    data: &Map<String, Value>,
) -> Result<VisitEvent, ParseError> {
    record(ctx, company_id, resource_id, false, data)
}

/// A record (appointment). Its `data` is the record as `GET /record/{company_id}/{id}` returns
/// it, or only the changed fields: without `attendance` (or `visit_attendance`) the decision
/// cannot be made and the event asks for a re-fetch.
fn record(
    ctx: &ParseContext,
    company_id: String,
    resource_id: Option<String>,
    deleted_by_status: bool,
    data: &Map<String, Value>,
) -> Result<VisitEvent, ParseError> {
    let record_id = resource_id
        .or(lenient::id(data, "id")?)
        .ok_or_else(|| shape("record event without an id"))?;
    let deleted = deleted_by_status || lenient::flag(data, "deleted")?.unwrap_or(false);
    let attendance = match lenient::int(data, "attendance")? {
        Some(a) => Some(a),
        None => lenient::int(data, "visit_attendance")?,
    };
    let status = match (deleted, attendance) {
        (true, _) => VisitStatus::Deleted,
        (false, Some(1)) => VisitStatus::Came,
        (false, Some(2)) => VisitStatus::Confirmed,
        (false, Some(-1)) => VisitStatus::NoShow,
        (false, Some(0) | None) => VisitStatus::Waiting,
        (false, Some(other)) => return Err(shape(format!("unknown attendance {other}"))),
    };
    let mut lines = Vec::new();
    for service in lenient::items(data.get("services")) {
        let Value::Object(s) = service else {
            return Err(shape("a service must be an object"));
        };
        lines.push(VisitLine {
            item_id: lenient::id(s, "id")?.unwrap_or_default(),
            category_id: lenient::id(s, "category_id")?,
            kind: LineKind::Service,
            title: lenient::text(s, "title").unwrap_or_default(),
            paid_minor: lenient::money_minor(s, "cost")?.unwrap_or(0),
        });
    }
    for good in lenient::items(data.get("goods_transactions")) {
        let Value::Object(g) = good else {
            return Err(shape("a goods transaction must be an object"));
        };
        lines.push(good_line(g)?);
    }
    let client = lenient::object(data.get("client"))
        .map(|c| client_ref(ctx, c))
        .transpose()?;
    Ok(VisitEvent {
        company_id,
        record_id,
        version: lenient::timestamp_ms(data, "last_change_date", ctx.utc_offset_minutes)?,
        status,
        client,
        currency: ctx.currency,
        lines,
        staff_id: lenient::id(data, "staff_id")?,
        staff_name: lenient::object(data.get("staff")).and_then(|s| lenient::text(s, "name")),
        visit_at_ms: match lenient::timestamp_ms(data, "datetime", ctx.utc_offset_minutes)? {
            Some(t) => Some(t),
            None => lenient::timestamp_ms(data, "date", ctx.utc_offset_minutes)?,
        },
        needs_refetch: !deleted && attendance.is_none(),
        loyalty_paid: settled_visit(status, data),
    })
}

/// A record that came and is paid in full (`paid_full`) names the visit whose payments say how
/// much of it certificates and loyalty points covered; the adapter asks before it is applied
/// ([`crate::api::YclientsClient::loyalty_paid`]). Until the bill is settled, the whole of it
/// earns. Neither field decides anything else, so an odd value in one is read as "not settled"
/// rather than refusing the record.
fn settled_visit(status: VisitStatus, data: &Map<String, Value>) -> LoyaltyPaid {
    let settled = matches!(lenient::flag(data, "paid_full"), Ok(Some(true)));
    match lenient::id(data, "visit_id") {
        Ok(Some(visit)) if status == VisitStatus::Came && settled && visit != "0" => {
            LoyaltyPaid::Ask(visit)
        }
        _ => LoyaltyPaid::NotReported,
    }
}

fn good_line(g: &Map<String, Value>) -> Result<VisitLine, ParseError> {
    let good = lenient::object(g.get("good"));
    let item_id = match lenient::id(g, "good_id")? {
        Some(id) => id,
        None => good
            .map(|good| lenient::id(good, "id"))
            .transpose()?
            .flatten()
            .unwrap_or_default(),
    };
    Ok(VisitLine {
        item_id,
        category_id: None,
        kind: LineKind::Good,
        title: good
            .and_then(|g| lenient::text(g, "title"))
            .unwrap_or_default(),
        paid_minor: lenient::money_minor(g, "cost")?.unwrap_or(0),
    })
}

/// Goods sold through the storage. A sale that belongs to a record is already counted in that
/// record's `goods_transactions`, and a sold certificate is not a purchase that earns points: both
/// are acknowledged only.
fn goods_sale(
    ctx: &ParseContext,
    company_id: String,
    resource_id: Option<String>,
    deleted: bool,
    data: &Map<String, Value>,
) -> Result<CrmEvent, ParseError> {
    let sale_id = resource_id
        .or(lenient::id(data, "id")?)
        .ok_or_else(|| shape("goods sale without an id"))?;
    let in_record = lenient::id(data, "record_id")?.is_some();
    let certificate = lenient::id(data, "loyalty_certificate_id")?.is_some()
        || lenient::id(data, "loyalty_abonement_id")?.is_some();
    if in_record || certificate {
        return Ok(CrmEvent::Other(OtherEvent {
            company_id,
            resource: "goods_operations_sale".to_owned(),
            resource_id: Some(sale_id),
            status: Some(
                if in_record {
                    "in_record"
                } else {
                    "certificate"
                }
                .to_owned(),
            ),
        }));
    }
    Ok(CrmEvent::Sale(SaleEvent {
        company_id,
        sale_id,
        version: lenient::timestamp_ms(data, "last_change_date", ctx.utc_offset_minutes)?,
        client: lenient::object(data.get("client"))
            .map(|c| client_ref(ctx, c))
            .transpose()?,
        currency: ctx.currency,
        lines: vec![good_line(data)?],
        cancelled: deleted || lenient::flag(data, "deleted")?.unwrap_or(false),
    }))
}

fn marketplace(env: &Map<String, Value>) -> Result<CrmEvent, ParseError> {
    Ok(CrmEvent::Other(OtherEvent {
        company_id: lenient::id(env, "salon_id")?.ok_or_else(|| shape("no salon_id"))?,
        resource: "marketplace".to_owned(),
        resource_id: lenient::id(env, "application_id")?,
        status: lenient::text(env, "event"),
    }))
}

fn client_ref(ctx: &ParseContext, c: &Map<String, Value>) -> Result<ClientRef, ParseError> {
    Ok(ClientRef {
        external_id: lenient::id(c, "id")?,
        phone: phone(ctx, c),
        name: name(c),
    })
}

/// The phone, if it is one in the company's country: empty or masked phones (users without the
/// right to see them) and numbers that cannot exist are treated as absent, not as an error, so
/// the visit is still applied to the client the CRM id names.
pub(crate) fn phone(ctx: &ParseContext, c: &Map<String, Value>) -> Option<Phone> {
    lenient::text(c, "phone").and_then(|raw| Phone::parse_crm(&raw, ctx.country).ok())
}

/// The birth date, if it is a real one (`0000-00-00` and empty mean none).
pub(crate) fn birth_date(c: &Map<String, Value>) -> Option<loyalty_core::BirthDate> {
    lenient::text(c, "birth_date").and_then(|b| loyalty_core::BirthDate::parse(&b))
}

fn name(c: &Map<String, Value>) -> Option<String> {
    lenient::text(c, "display_name").or_else(|| lenient::text(c, "name"))
}
