//! The salon's visit history: one row per CRM record with its latest applied state, and a
//! summary per client.
//!
//! Reminders, offers, churn models and analytics read it. A record's row is written by the
//! engine in the transaction that applies the record's points, so points and history never
//! disagree; the client's summary (first and last visit, visits that came, what they paid) is
//! refreshed in that transaction too, so "who has not come for 30 days" reads one row per
//! client. A chain is one partner with one connection per location: a visit keeps its
//! location (`connection_id`), the client's summary spans all of them.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::event::{LoyaltyPaid, VisitEvent, VisitLine, VisitStatus};
use crate::inbox::Source;
use crate::model::{ClientId, ConnectionId, PartnerId};
use crate::store::StoreError;

/// One CRM record as last applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    pub partner_id: PartnerId,
    /// The location (connection) the record belongs to.
    pub connection_id: ConnectionId,
    pub record_id: String,
    /// Whose visit it is; `None` while no client is known.
    pub client_id: Option<ClientId>,
    /// When it is (or was) scheduled, Unix milliseconds.
    pub visit_at_ms: Option<i64>,
    pub status: VisitStatus,
    /// The master: the CRM's staff id and the name the CRM gave.
    pub staff_id: Option<String>,
    pub staff_name: Option<String>,
    /// The bill after discounts: the sum of the lines.
    pub paid_minor: i64,
    /// The part of it paid with certificates or loyalty points.
    pub loyalty_paid_minor: i64,
    pub lines: Vec<VisitLine>,
    /// What last set this state.
    pub source: Source,
    pub updated_at_ms: i64,
}

impl Visit {
    /// The history row of an applied record state.
    pub fn of(
        partner_id: PartnerId,
        connection_id: ConnectionId,
        event: &VisitEvent,
        client_id: Option<ClientId>,
        source: Source,
        now_ms: i64,
    ) -> Visit {
        let paid_minor = event.paid_minor();
        let loyalty_paid_minor = match event.loyalty_paid {
            LoyaltyPaid::Minor(m) => m.clamp(0, paid_minor.max(0)),
            _ => 0,
        };
        Visit {
            partner_id,
            connection_id,
            record_id: event.record_id.clone(),
            client_id,
            visit_at_ms: event.visit_at_ms,
            status: event.status,
            staff_id: event.staff_id.clone(),
            staff_name: event.staff_name.clone(),
            paid_minor,
            loyalty_paid_minor,
            lines: event.lines.clone(),
            source,
            updated_at_ms: now_ms,
        }
    }
}

impl Visit {
    /// The record's state as an event again (for a preview of what a rule would have done).
    pub fn as_event(&self, currency: crate::money::Currency) -> VisitEvent {
        VisitEvent {
            company_id: String::new(),
            record_id: self.record_id.clone(),
            version: None,
            status: self.status,
            client: None,
            currency,
            lines: self.lines.clone(),
            staff_id: self.staff_id.clone(),
            staff_name: self.staff_name.clone(),
            visit_at_ms: self.visit_at_ms,
            needs_refetch: false,
            loyalty_paid: LoyaltyPaid::Minor(self.loyalty_paid_minor),
        }
    }
}

/// A client's visits in short: what "has not come for 30 days" and the LTV read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSummary {
    pub first_visit_ms: Option<i64>,
    pub last_visit_ms: Option<i64>,
    /// Records that came.
    pub visits: i64,
    /// What those visits' bills came to (minor units), loyalty payments included.
    pub paid_minor: i64,
}

/// What the `categories` column of a record's row holds: the distinct service categories of its
/// lines, sorted, joined by `|`. The characters the summary's `recent` text separates with
/// (`,`, `:` and `|`) are replaced by `_` in an id, so a category keeps its identity and the
/// text stays readable. `None` when no service line has a category.
pub fn record_categories(lines: &[VisitLine]) -> Option<String> {
    let cats: std::collections::BTreeSet<String> = lines
        .iter()
        .filter(|l| l.kind == crate::event::LineKind::Service)
        .filter_map(|l| l.category_id.as_deref())
        .filter(|c| !c.is_empty())
        .map(|c| c.replace([',', ':', '|'], "_"))
        .collect();
    if cats.is_empty() {
        None
    } else {
        Some(cats.into_iter().collect::<Vec<_>>().join("|"))
    }
}

/// A client's latest visits that came, newest first: overall and per service category. The
/// personal cadence (`loyalty-engage`) reads it from the summary row, which keeps the
/// [`Rhythm::RECENT`] latest visits as text (`{ms}:{cat}|{cat},…`, written by the summary's
/// refresh in the visit's transaction). Visits on the same day count once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rhythm {
    /// Visit times (Unix ms), newest first.
    pub all: Vec<i64>,
    /// Per category id, its visits' times, newest first.
    pub categories: std::collections::BTreeMap<String, Vec<i64>>,
}

impl Rhythm {
    /// How many of the latest visits that came the summary keeps.
    pub const RECENT: usize = 30;

    /// Reads the summary's `recent` text; a malformed entry is skipped (it can only come from a
    /// hand-edited row), never a panic.
    pub fn parse(recent: &str) -> Rhythm {
        let visits = recent.split(',').count();
        let mut r = Rhythm {
            all: Vec::with_capacity(visits),
            categories: Default::default(),
        };
        for entry in recent.split(',') {
            let (ms, cats) = entry.split_once(':').unwrap_or((entry, ""));
            let Ok(ms) = ms.trim().parse::<i64>() else {
                continue;
            };
            push_visit(&mut r.all, ms);
            for c in cats.split('|').filter(|c| !c.is_empty()) {
                // A client's categories repeat visit after visit: a key is allocated once.
                match r.categories.get_mut(c) {
                    Some(series) => push_visit(series, ms),
                    None => {
                        let mut series = Vec::with_capacity(visits);
                        series.push(ms);
                        r.categories.insert(c.to_owned(), series);
                    }
                }
            }
        }
        r
    }
}

const DAY_MS: i64 = 86_400_000;

/// Appends an older visit unless it falls within a day of the one before (one visit).
fn push_visit(series: &mut Vec<i64>, ms: i64) {
    match series.last() {
        Some(&newer) if newer - ms < DAY_MS => {}
        _ => series.push(ms),
    }
}

/// Reading the history, beside [`crate::Store`]. Writing it belongs to the engine's
/// transaction ([`crate::StoreTx::save_visit`]).
#[async_trait]
pub trait HistoryStore: Send + Sync {
    /// The client's latest visits, newest first (by visit time, then record).
    async fn visits_of(
        &self,
        partner: PartnerId,
        client: ClientId,
        limit: u32,
    ) -> Result<Vec<Visit>, StoreError>;

    /// One record's row.
    async fn visit(
        &self,
        partner: PartnerId,
        connection: ConnectionId,
        record_id: &str,
    ) -> Result<Option<Visit>, StoreError>;

    /// The client's summary; `None` before their first applied record.
    async fn summary(
        &self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Option<ClientSummary>, StoreError>;
}
