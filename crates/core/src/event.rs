//! Normalized events: what every CRM adapter turns its webhooks and polled records into.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::BirthDate;
use crate::money::Currency;
use crate::phone::Phone;

/// One thing that happened in a CRM, as far as the loyalty program cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CrmEvent {
    /// A record (appointment) was created, updated or deleted.
    Visit(VisitEvent),
    /// A client card was created or changed in the CRM.
    Client(ClientEvent),
    /// Goods sold outside a visit. Accrues like a visit that came.
    Sale(SaleEvent),
    /// A change the program does not act on (a service, staff member or good was edited, the
    /// integration was frozen…), kept so the delivery is acknowledged and logged, not rejected.
    Other(OtherEvent),
}

impl CrmEvent {
    pub fn company_id(&self) -> &str {
        match self {
            CrmEvent::Visit(v) => &v.company_id,
            CrmEvent::Client(c) => &c.company_id,
            CrmEvent::Sale(s) => &s.company_id,
            CrmEvent::Other(o) => &o.company_id,
        }
    }

    /// What kind of thing changed, for logs: `record`, `client`, `sale`, or the CRM's name.
    pub fn resource(&self) -> &str {
        match self {
            CrmEvent::Visit(_) => "record",
            CrmEvent::Client(_) => "client",
            CrmEvent::Sale(_) => "sale",
            CrmEvent::Other(o) => &o.resource,
        }
    }
}

/// The state of a visit record in the CRM at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitEvent {
    pub company_id: String,
    pub record_id: String,
    /// A number that grows with every change of the record in the CRM (its change time in
    /// milliseconds, or a version counter). An event older than what was applied is stale.
    /// `None` when the CRM gives nothing: then the last delivery wins.
    pub version: Option<i64>,
    pub status: VisitStatus,
    pub client: Option<ClientRef>,
    pub currency: Currency,
    /// What was paid, per service or good, after discounts.
    pub lines: Vec<VisitLine>,
    pub staff_id: Option<String>,
    /// The master's name as the CRM shows it, when the payload carries it.
    #[serde(default)]
    pub staff_name: Option<String>,
    /// When the visit is (or was) scheduled, Unix milliseconds.
    pub visit_at_ms: Option<i64>,
    /// The payload lacked what the decision needs (the CRM sent only changed fields): the
    /// record must be fetched from the CRM's API before it is applied.
    pub needs_refetch: bool,
    /// How much of the bill was paid with loyalty money (a certificate, points on the CRM's
    /// loyalty card). That part earns nothing.
    #[serde(default)]
    pub loyalty_paid: LoyaltyPaid,
}

/// The part of a bill paid with certificates or loyalty points, as far as the CRM has told.
///
/// The whole bill is what [`VisitEvent::lines`] add up to; paying part of it with a certificate
/// or with points does not lower the lines, so it has to be known separately. Points are accrued
/// only on the rest (see [`crate::Program::target_accrual`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum LoyaltyPaid {
    /// The CRM does not report such payments, or the bill is not settled yet: the whole paid
    /// amount earns points.
    #[default]
    NotReported,
    /// The bill is settled and the CRM can say how it was paid: the adapter asks it, with this
    /// reference (YCLIENTS: the visit id), before the visit is applied
    /// ([`crate::CrmAdapter::loyalty_paid`]).
    Ask(String),
    /// This much (minor units) was paid with certificates or loyalty points.
    Minor(i64),
}

impl VisitEvent {
    /// The paid total in minor units (saturating; amounts are validated non-negative).
    pub fn paid_minor(&self) -> i64 {
        self.lines
            .iter()
            .fold(0i64, |acc, l| acc.saturating_add(l.paid_minor))
    }

    /// A canonical description of what decides the accrual: two events with equal fingerprints
    /// and versions are the same delivery.
    pub fn fingerprint(&self) -> String {
        let mut out = format!("{}|{}", self.status, self.currency.code());
        for l in &self.lines {
            out.push_str(&format!(
                "|{}:{}:{}",
                l.item_id,
                l.category_id.as_deref().unwrap_or(""),
                l.paid_minor
            ));
        }
        match &self.loyalty_paid {
            LoyaltyPaid::NotReported => {}
            LoyaltyPaid::Ask(reference) => out.push_str(&format!("|l?{reference}")),
            LoyaltyPaid::Minor(paid) => out.push_str(&format!("|l:{paid}")),
        }
        if let Some(c) = &self.client {
            out.push_str(&format!(
                "|c:{}:{}",
                c.external_id.as_deref().unwrap_or(""),
                c.phone.as_ref().map(Phone::as_str).unwrap_or("")
            ));
        }
        out
    }
}

/// Where a visit stands. Only [`VisitStatus::Came`] earns points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitStatus {
    Waiting,
    Confirmed,
    Came,
    NoShow,
    Deleted,
}

impl VisitStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VisitStatus::Waiting => "waiting",
            VisitStatus::Confirmed => "confirmed",
            VisitStatus::Came => "came",
            VisitStatus::NoShow => "no_show",
            VisitStatus::Deleted => "deleted",
        }
    }

    /// The status [`VisitStatus::as_str`] names.
    pub fn parse(s: &str) -> Option<VisitStatus> {
        [
            VisitStatus::Waiting,
            VisitStatus::Confirmed,
            VisitStatus::Came,
            VisitStatus::NoShow,
            VisitStatus::Deleted,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

impl fmt::Display for VisitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a record or sale belongs to, as the CRM describes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRef {
    /// The client's id in the CRM.
    pub external_id: Option<String>,
    pub phone: Option<Phone>,
    pub name: Option<String>,
}

/// One paid line of a visit or sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitLine {
    /// The service's or good's id in the CRM.
    pub item_id: String,
    pub category_id: Option<String>,
    pub kind: LineKind,
    pub title: String,
    /// Paid after discounts, minor units, never negative.
    pub paid_minor: i64,
}

impl VisitLine {
    /// The one line of a visit that comes without CRM ids (entered at the desk, read from a
    /// file): a service known by its name (lowercased as its id), or a plain `visit`.
    pub fn named(service: Option<&str>, paid_minor: i64) -> VisitLine {
        let service = service.map(str::trim).filter(|s| !s.is_empty());
        VisitLine {
            item_id: service.map_or_else(|| "visit".to_owned(), str::to_lowercase),
            category_id: None,
            kind: LineKind::Service,
            title: service.unwrap_or("").to_owned(),
            paid_minor,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Service,
    Good,
}

/// A client card created or changed in the CRM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientEvent {
    pub company_id: String,
    pub external_id: String,
    pub phone: Option<Phone>,
    pub name: Option<String>,
    pub deleted: bool,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub birth_date: Option<BirthDate>,
}

/// Goods sold without a visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleEvent {
    pub company_id: String,
    pub sale_id: String,
    pub version: Option<i64>,
    pub client: Option<ClientRef>,
    pub currency: Currency,
    pub lines: Vec<VisitLine>,
    /// The sale was cancelled or deleted: whatever it earned is reversed.
    pub cancelled: bool,
}

impl SaleEvent {
    /// A sale accrues exactly like a visit that came (or, once cancelled, like a deleted one);
    /// its record key is prefixed so it never collides with a visit's id.
    pub fn as_visit(&self) -> VisitEvent {
        VisitEvent {
            company_id: self.company_id.clone(),
            record_id: format!("sale:{}", self.sale_id),
            version: self.version,
            status: if self.cancelled {
                VisitStatus::Deleted
            } else {
                VisitStatus::Came
            },
            client: self.client.clone(),
            currency: self.currency,
            lines: self.lines.clone(),
            staff_id: None,
            staff_name: None,
            visit_at_ms: None,
            needs_refetch: false,
            loyalty_paid: LoyaltyPaid::NotReported,
        }
    }
}

/// A change the program only acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtherEvent {
    pub company_id: String,
    pub resource: String,
    pub resource_id: Option<String>,
    pub status: Option<String>,
}
