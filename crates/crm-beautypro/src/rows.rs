//! AI Helps rows → our events: clients, appointments and the sales that settle them.
//!
//! There is no "completed" state on an appointment (`reserved`, `planned`, `confirmed`,
//! `cancelled`): a visit came when a sale linked to it (`appointment`) exists and is not
//! cancelled. What it paid is Σ `sum` of those sales; a certificate's sale earns nothing, and
//! neither does the part of a sale paid with a certificate.

use crm_http::{ParseContext, lenient};
use loyalty_core::Phone;
use loyalty_core::adapter::CrmClient;
use loyalty_core::event::{ClientRef, LineKind, LoyaltyPaid, VisitEvent, VisitLine, VisitStatus};
use serde_json::{Map, Value};

/// The fields asked of each resource (every GET must name them).
pub const CLIENT_FIELDS: &str = "name,firstname,lastname,phone,email";
pub const APPOINTMENT_FIELDS: &str = "date,client,state,services(service,professional,start)";
pub const SALE_FIELDS: &str =
    "sale_date,type,client,appointment,sum,cancel,payments(account,sum,certificate)";
pub const SERVICE_FIELDS: &str = "name,category,location_prices,archive";
pub const EMPLOYEE_FIELDS: &str = "name,archive";
pub const CERTIFICATE_FIELDS: &str = "number,client,status,total_sum";

/// A row that does not mean what it must.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl From<lenient::FieldError> for Malformed {
    fn from(e: lenient::FieldError) -> Self {
        Malformed(e.to_string())
    }
}

/// An id: a GUID; the empty one (all zeros) is none.
pub fn guid(m: &Map<String, Value>, field: &str) -> Result<Option<String>, Malformed> {
    Ok(lenient::id(m, field)?.filter(|id| id.chars().any(|c| c != '0' && c != '-')))
}

/// Text or the first text of an array (`phone`, `email` are arrays of strings).
fn texts(m: &Map<String, Value>, field: &str) -> Vec<String> {
    match m.get(field) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| match v {
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        _ => lenient::text(m, field).into_iter().collect(),
    }
}

/// A client card: the first phone that reads, the first e-mail, `name` or the parts.
pub fn client(ctx: &ParseContext, m: &Map<String, Value>) -> Result<CrmClient, Malformed> {
    let external_id = guid(m, "id")?.ok_or_else(|| Malformed("a client without an id".into()))?;
    Ok(CrmClient {
        external_id,
        phone: phones(ctx, m).into_iter().next(),
        name: lenient::text(m, "name").or_else(|| {
            let parts: Vec<String> = ["firstname", "lastname"]
                .iter()
                .filter_map(|f| lenient::text(m, f))
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        }),
        email: texts(m, "email").into_iter().next(),
        birth_date: None,
    })
}

/// Every phone of a card that reads (`"+1 800 555 12 34"`, digits…).
pub fn phones(ctx: &ParseContext, m: &Map<String, Value>) -> Vec<Phone> {
    texts(m, "phone")
        .iter()
        .filter_map(|raw| Phone::parse_crm(raw, ctx.country).ok())
        .collect()
}

/// The parts of an appointment the program reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appointment {
    pub id: String,
    pub client: Option<String>,
    pub state: Option<String>,
    pub at_ms: Option<i64>,
    pub professional: Option<String>,
}

pub fn appointment(m: &Map<String, Value>) -> Result<Appointment, Malformed> {
    let first = lenient::items(m.get("services"))
        .first()
        .and_then(Value::as_object);
    Ok(Appointment {
        id: guid(m, "id")?.ok_or_else(|| Malformed("an appointment without an id".into()))?,
        client: guid(m, "client")?,
        state: lenient::text(m, "state"),
        at_ms: lenient::timestamp_ms(m, "date", 0)?.or(first
            .map(|s| lenient::timestamp_ms(s, "start", 0))
            .transpose()?
            .flatten()),
        professional: first
            .map(|s| guid(s, "professional"))
            .transpose()?
            .flatten(),
    })
}

/// The parts of a sale the program reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sale {
    pub id: String,
    pub appointment: Option<String>,
    pub client: Option<String>,
    /// `service`, `product`, `card`, `certificate`, `client_deposit`…
    pub kind: String,
    pub sum_minor: i64,
    pub cancelled: bool,
    /// Paid with a certificate (assumed: a payment naming one in `certificate`).
    pub by_certificate_minor: i64,
    pub at_ms: Option<i64>,
}

pub fn sale(m: &Map<String, Value>) -> Result<Sale, Malformed> {
    let mut by_certificate_minor = 0i64;
    for p in lenient::items(m.get("payments"))
        .iter()
        .filter_map(Value::as_object)
    {
        if guid(p, "certificate")?.is_some() {
            by_certificate_minor =
                by_certificate_minor.saturating_add(lenient::money_minor(p, "sum")?.unwrap_or(0));
        }
    }
    Ok(Sale {
        id: guid(m, "id")?.ok_or_else(|| Malformed("a sale without an id".into()))?,
        appointment: guid(m, "appointment")?,
        client: guid(m, "client")?,
        kind: lenient::text(m, "type").unwrap_or_default(),
        sum_minor: lenient::money_minor(m, "sum")?.unwrap_or(0),
        cancelled: lenient::flag(m, "cancel")?.unwrap_or(false),
        by_certificate_minor,
        at_ms: lenient::timestamp_ms(m, "sale_date", 0)?,
    })
}

impl Sale {
    /// The sale as a paid line: a product is a good, anything else a service.
    pub fn line(&self) -> VisitLine {
        VisitLine {
            item_id: self.id.clone(),
            category_id: None,
            kind: if self.kind == "product" {
                LineKind::Good
            } else {
                LineKind::Service
            },
            title: self.kind.clone(),
            paid_minor: self.sum_minor,
        }
    }

    /// Whether the sale is money for a visit or goods: not cancelled, not a certificate (or a
    /// card, or a deposit: money that earns when it is spent, not when it is paid in).
    pub fn earns(&self) -> bool {
        !self.cancelled && matches!(self.kind.as_str(), "service" | "product")
    }
}

/// An appointment and its sales as one visit. `client` is who the appointment's client card
/// is now (re-read by the caller: ids change when cards are merged).
pub fn visit(
    ctx: &ParseContext,
    database: &str,
    appt: &Appointment,
    client: Option<ClientRef>,
    sales: &[Sale],
) -> VisitEvent {
    let linked: Vec<&Sale> = sales
        .iter()
        .filter(|s| s.appointment.as_deref() == Some(appt.id.as_str()) && s.earns())
        .collect();
    let status = match appt.state.as_deref() {
        Some("cancelled") => VisitStatus::NoShow,
        _ if !linked.is_empty() => VisitStatus::Came,
        Some("confirmed") => VisitStatus::Confirmed,
        _ => VisitStatus::Waiting,
    };
    let lines = linked.iter().map(|s| s.line()).collect();
    let by_certificate: i64 = linked.iter().map(|s| s.by_certificate_minor).sum();
    VisitEvent {
        company_id: database.to_owned(),
        record_id: appt.id.clone(),
        version: None,
        status,
        client,
        currency: ctx.currency,
        lines,
        staff_id: appt.professional.clone(),
        staff_name: None,
        visit_at_ms: appt.at_ms,
        needs_refetch: false,
        loyalty_paid: if by_certificate > 0 {
            LoyaltyPaid::Minor(by_certificate)
        } else {
            LoyaltyPaid::NotReported
        },
    }
}

/// A sale without an appointment (goods bought at the desk) as a visit of its own.
pub fn sale_visit(
    ctx: &ParseContext,
    database: &str,
    s: &Sale,
    client: Option<ClientRef>,
) -> VisitEvent {
    loyalty_core::event::SaleEvent {
        company_id: database.to_owned(),
        sale_id: s.id.clone(),
        version: None,
        client,
        currency: ctx.currency,
        lines: vec![s.line()],
        cancelled: !s.earns(),
    }
    .as_visit()
}
