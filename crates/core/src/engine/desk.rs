//! Visits entered at the desk, for salons whose CRM tells us nothing (DIKIDI, an unsupported
//! CRM, paper).
//!
//! A desk visit is a record of the partner's own connection ([`CrmKind::Desk`]) named by the
//! staff's key, applied through the same path as a CRM webhook ([`LoyaltyEngine::visit_tx`]):
//! the program's rules, the client found or created by phone and told, the history row. The
//! same key with the same visit is a duplicate (a double tap, a retried command); the same key
//! with another visit is refused. A correction or a cancellation is a new state of the record,
//! so the engine posts the difference as a reversal with the staff's reason — history is never
//! edited.

use super::posting::version_of;
use crate::audit::AuditAction;
use crate::event::{ClientRef, VisitEvent, VisitLine, VisitStatus};
use crate::history::{HistoryStore, Visit};
use crate::inbox::Source;
use crate::{
    CrmConnection, CrmKind, EngineError, LoyaltyEngine, Outcome, PartnerId, Phone, StoreTx,
};

/// The company id of every partner's desk connection.
pub const DESK_COMPANY: &str = "desk";

/// The longest key staff may give a desk visit.
pub const MAX_DESK_KEY: usize = 100;

/// A visit as staff enter it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskVisit {
    pub phone: Phone,
    pub name: Option<String>,
    /// The bill after discounts, minor units.
    pub paid_minor: i64,
    pub service: Option<String>,
    pub master: Option<String>,
    /// What makes a repeat a duplicate: staff's own, or drawn by the door (the bot's message).
    pub key: String,
}

/// What staff change in a desk visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeskChange {
    /// The bill was another amount (minor units).
    Paid(i64),
    /// The visit did not happen.
    Cancel,
}

impl DeskVisit {
    /// The record id a desk key names.
    pub fn record_id(key: &str) -> String {
        format!("desk-{key}")
    }

    fn event(&self, conn: &CrmConnection, currency: crate::Currency, now: i64) -> VisitEvent {
        VisitEvent {
            company_id: conn.company_id.clone(),
            record_id: DeskVisit::record_id(&self.key),
            version: Some(now),
            status: VisitStatus::Came,
            client: Some(ClientRef {
                external_id: None,
                phone: Some(self.phone.clone()),
                name: self.name.clone().filter(|n| !n.trim().is_empty()),
            }),
            currency,
            lines: vec![VisitLine::named(self.service.as_deref(), self.paid_minor)],
            staff_id: None,
            staff_name: self.master.clone().filter(|m| !m.trim().is_empty()),
            visit_at_ms: Some(now),
            needs_refetch: false,
            loyalty_paid: Default::default(),
        }
    }
}

fn check_desk(conn: &CrmConnection) -> Result<(), EngineError> {
    if conn.kind == CrmKind::Desk {
        Ok(())
    } else {
        Err(EngineError::NotDesk(conn.id))
    }
}

fn check_key(key: &str) -> Result<(), EngineError> {
    if key.is_empty()
        || key.len() > MAX_DESK_KEY
        || key.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(EngineError::BadDeskKey(
            key.chars().take(MAX_DESK_KEY).collect(),
        ));
    }
    Ok(())
}

impl LoyaltyEngine {
    /// The partner's desk connection, made on first use. Refused when one of the partner's CRMs
    /// reports visits itself (one visit would count twice) unless `force`: staff are sure this
    /// visit is not in that CRM.
    pub async fn desk(
        &self,
        partner: PartnerId,
        force: bool,
    ) -> Result<CrmConnection, EngineError> {
        let connections = self.store.connections_of(partner).await?;
        if let Some(live) = connections.iter().find(|c| c.kind.reports_visits())
            && !force
        {
            return Err(EngineError::CrmReportsVisits {
                partner,
                connection: live.id,
                crm: live.kind,
            });
        }
        if let Some(desk) = connections.into_iter().find(|c| c.kind == CrmKind::Desk) {
            return Ok(desk);
        }
        if self.store.partner(partner).await?.is_none() {
            return Err(EngineError::UnknownPartner(partner));
        }
        Ok(self.store.desk_connection(partner, self.now_ms()).await?)
    }

    /// Applies a visit entered at the desk on the partner's desk connection. The same key and
    /// visit again is [`Outcome::Duplicate`]; the same key with another visit is
    /// [`EngineError::Conflict`].
    pub async fn desk_visit(
        &self,
        conn: &CrmConnection,
        visit: &DeskVisit,
    ) -> Result<Outcome, EngineError> {
        check_desk(conn)?;
        check_key(&visit.key)?;
        if visit.paid_minor < 0 {
            return Err(crate::MoneyError::Negative(visit.paid_minor).into());
        }
        in_tx!(self, |tx, now| self.desk_tx(tx, conn, visit, now))
    }

    async fn desk_tx(
        &self,
        tx: &mut dyn StoreTx,
        conn: &CrmConnection,
        visit: &DeskVisit,
        now: i64,
    ) -> Result<Outcome, EngineError> {
        let partner = conn.partner_id;
        let currency = version_of(tx, partner).await?.program.currency;
        let event = visit.event(conn, currency, now);
        let state = tx.lock_record(partner, conn.id, &event.record_id).await?;
        if let Some(seen) = &state.fingerprint {
            // Equal when the same visit is entered again, whatever its time.
            return if *seen == event.fingerprint() {
                Ok(Outcome::Duplicate)
            } else {
                Err(EngineError::Conflict {
                    key: visit.key.clone(),
                })
            };
        }
        let outcome = self
            .visit_tx(tx, conn, &event, Source::Desk, None, now)
            .await?;
        let detail = serde_json::json!({
            "key": visit.key,
            "record_id": event.record_id,
            "phone": visit.phone.masked(),
            "paid_minor": visit.paid_minor,
            "service": visit.service,
            "master": visit.master,
            "points": outcome.delta(),
        });
        tx.audit(
            partner,
            &self.actor,
            AuditAction::VisitEntered,
            &detail,
            now,
        )
        .await?;
        Ok(outcome)
    }

    /// [`LoyaltyEngine::desk_change`] for the desk visit staff entered under `key`, read from
    /// `history`; `None` when the partner has no such desk visit.
    pub async fn desk_change_by_key(
        &self,
        history: &dyn HistoryStore,
        partner: PartnerId,
        key: &str,
        change: DeskChange,
        reason: &str,
    ) -> Result<Option<(Visit, Outcome)>, EngineError> {
        let record_id = DeskVisit::record_id(key.trim());
        let desk = self
            .store
            .connections_of(partner)
            .await?
            .into_iter()
            .find(|c| c.kind == CrmKind::Desk);
        let Some(desk) = desk else {
            return Ok(None);
        };
        let Some(previous) = history.visit(partner, desk.id, &record_id).await? else {
            return Ok(None);
        };
        let outcome = self.desk_change(&desk, &previous, change, reason).await?;
        Ok(Some((previous, outcome)))
    }

    /// Corrects or cancels a desk visit (`previous`, its history row as read): the record's new
    /// state is applied and the difference posted, the reversal carrying `reason`. Refused for a
    /// record that did not come from the desk, and when the visit changed since `previous`
    /// was read.
    pub async fn desk_change(
        &self,
        conn: &CrmConnection,
        previous: &Visit,
        change: DeskChange,
        reason: &str,
    ) -> Result<Outcome, EngineError> {
        check_desk(conn)?;
        if previous.source != Source::Desk || previous.connection_id != conn.id {
            return Err(EngineError::NotDeskVisit(previous.record_id.clone()));
        }
        if let DeskChange::Paid(paid) = change
            && paid < 0
        {
            return Err(crate::MoneyError::Negative(paid).into());
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(EngineError::ReasonNeeded);
        }
        in_tx!(self, |tx, now| self
            .desk_change_tx(tx, conn, previous, change, reason, now))
    }

    async fn desk_change_tx(
        &self,
        tx: &mut dyn StoreTx,
        conn: &CrmConnection,
        previous: &Visit,
        change: DeskChange,
        reason: &str,
        now: i64,
    ) -> Result<Outcome, EngineError> {
        let partner = conn.partner_id;
        let state = tx
            .lock_record(partner, conn.id, &previous.record_id)
            .await?;
        let client = match state.client_id {
            Some(id) => tx.client(partner, id).await?,
            None => None,
        };
        let currency = version_of(tx, partner).await?.program.currency;
        let was = VisitEvent {
            company_id: conn.company_id.clone(),
            record_id: previous.record_id.clone(),
            version: state.version,
            status: previous.status,
            client: client.as_ref().map(|c| ClientRef {
                external_id: None,
                phone: Some(c.phone.clone()),
                name: None,
            }),
            currency,
            lines: previous.lines.clone(),
            staff_id: previous.staff_id.clone(),
            staff_name: previous.staff_name.clone(),
            visit_at_ms: previous.visit_at_ms,
            needs_refetch: false,
            loyalty_paid: Default::default(),
        };
        if state.fingerprint.as_deref() != Some(was.fingerprint().as_str()) {
            // Changed by someone else since it was read: look again.
            return Err(EngineError::Conflict {
                key: previous.record_id.clone(),
            });
        }
        let mut now_is = was.clone();
        now_is.version = Some(state.version.map_or(now, |v| v.saturating_add(1).max(now)));
        match change {
            DeskChange::Cancel => now_is.status = VisitStatus::Deleted,
            DeskChange::Paid(paid) => {
                // A desk visit has one line; a bill spread over several keeps the first.
                now_is.lines.truncate(1);
                if let Some(line) = now_is.lines.first_mut() {
                    line.paid_minor = paid;
                }
            }
        }
        if now_is.fingerprint() == was.fingerprint() {
            return Ok(Outcome::Duplicate);
        }
        let outcome = self
            .visit_tx(tx, conn, &now_is, Source::Desk, Some(reason), now)
            .await?;
        let detail = serde_json::json!({
            "record_id": previous.record_id,
            "status": now_is.status,
            "paid_minor_before": previous.paid_minor,
            "paid_minor": now_is.paid_minor(),
            "reason": reason,
            "points": outcome.delta(),
        });
        tx.audit(
            partner,
            &self.actor,
            AuditAction::VisitCorrected,
            &detail,
            now,
        )
        .await?;
        Ok(outcome)
    }
}
