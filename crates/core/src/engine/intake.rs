//! Taking in CRM events without ever losing one to a slow, absent or rate-limited CRM API.
//!
//! [`LoyaltyEngine::accept`] applies an event whose payload says enough, in its own
//! transaction, as a webhook request needs; an event that needs the CRM first goes to the
//! [`crate::inbox`] and is answered [`Outcome::Queued`]. A settled bill is asked about only
//! when it can matter: when the client holds credit of ours in the CRM (a card we topped up, a
//! certificate of ours not long used). A salon's own certificates and cards bought with money
//! are money: points are earned on what they paid.
//!
//! [`LoyaltyEngine::work_inbox`] is the worker: it claims due items, asks the CRM, and applies
//! them exactly once. A re-fetch that answers "not found" means the record was deleted, and is
//! applied that way.

use super::{EngineError, LoyaltyEngine, Outcome};
use crate::adapter::{AdapterError, CrmAdapter};
use crate::event::{CrmEvent, LoyaltyPaid, VisitEvent, VisitStatus};
use crate::inbox::{InboxItem, InboxPolicy, IntakeStore, Source};
use crate::model::CrmConnection;

use super::writeback::AdapterSource;

/// A certificate marked used this recently may have paid for the visit being applied.
const RECENT_USE_MS: i64 = 7 * 86_400_000;

/// What one pass over the inbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxPass {
    pub applied: usize,
    /// Failed this time; tried again later.
    pub retried: usize,
    /// Given up on: dead letters now.
    pub dead: usize,
}

impl InboxPass {
    pub fn is_empty(&self) -> bool {
        *self == InboxPass::default()
    }
}

/// What an event needs before it can be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intake {
    /// Apply it now.
    Apply(Box<CrmEvent>),
    /// It needs the CRM's API first.
    Queue,
}

impl LoyaltyEngine {
    /// Applies `event` now when its payload is enough, else stores it in the inbox for
    /// [`LoyaltyEngine::work_inbox`] ([`Outcome::Queued`]). Never calls the CRM.
    pub async fn accept(
        &self,
        intake: &dyn IntakeStore,
        connection: &CrmConnection,
        event: &CrmEvent,
        source: Source,
    ) -> Result<Outcome, EngineError> {
        if event.company_id() != connection.company_id {
            return Err(EngineError::WrongCompany {
                expected: connection.company_id.clone(),
                got: event.company_id().to_owned(),
            });
        }
        match self.intake(intake, connection, event).await? {
            Intake::Apply(ready) => {
                self.apply_event_from(connection, ready.as_ref(), source)
                    .await
            }
            Intake::Queue => {
                let id = intake
                    .enqueue_inbox(
                        connection.partner_id,
                        connection.id,
                        event,
                        source,
                        self.now_ms(),
                    )
                    .await?;
                Ok(Outcome::Queued { inbox_id: id })
            }
        }
    }

    /// Whether `event` can be applied from what it says. A settled visit whose client holds no
    /// credit of ours in the CRM is applied as paid in money, without asking.
    pub async fn intake(
        &self,
        intake: &dyn IntakeStore,
        connection: &CrmConnection,
        event: &CrmEvent,
    ) -> Result<Intake, EngineError> {
        let CrmEvent::Visit(visit) = event else {
            return Ok(Intake::Apply(Box::new(event.clone())));
        };
        if visit.needs_refetch {
            return Ok(Intake::Queue);
        }
        if !matches!(visit.loyalty_paid, LoyaltyPaid::Ask(_)) {
            return Ok(Intake::Apply(Box::new(event.clone())));
        }
        let client = visit.client.as_ref();
        let credit = match client {
            Some(c) => {
                intake
                    .holds_crm_credit(
                        connection.partner_id,
                        connection.id,
                        c.external_id.as_deref(),
                        c.phone.as_ref(),
                        self.now_ms() - RECENT_USE_MS,
                    )
                    .await?
            }
            None => false,
        };
        if credit {
            return Ok(Intake::Queue);
        }
        let mut paid_in_money = visit.clone();
        paid_in_money.loyalty_paid = LoyaltyPaid::NotReported;
        Ok(Intake::Apply(Box::new(CrmEvent::Visit(paid_in_money))))
    }

    /// One pass over the due inbox items: each is completed from the CRM and applied, or
    /// scheduled again, or (past the policy's give-up time, or refused for good by the
    /// engine) left as a dead letter.
    pub async fn work_inbox(
        &self,
        intake: &dyn IntakeStore,
        adapters: &dyn AdapterSource,
        policy: &InboxPolicy,
    ) -> Result<InboxPass, EngineError> {
        let items = self.claim_inbox(intake, policy).await?;
        self.work_claimed(intake, adapters, policy, items).await
    }

    /// Claims a batch of due items for this worker, leased for the policy's `lease_ms`. The
    /// caller works them with [`LoyaltyEngine::work_claimed`], renewing the lease meanwhile
    /// when a try may outlast it.
    pub async fn claim_inbox(
        &self,
        intake: &dyn IntakeStore,
        policy: &InboxPolicy,
    ) -> Result<Vec<InboxItem>, EngineError> {
        let now = self.now_ms();
        let lease_until = now.saturating_add(policy.lease_ms);
        Ok(intake.claim_inbox(now, policy.batch, lease_until).await?)
    }

    /// Works claimed items: see [`LoyaltyEngine::work_inbox`].
    pub async fn work_claimed(
        &self,
        intake: &dyn IntakeStore,
        adapters: &dyn AdapterSource,
        policy: &InboxPolicy,
        items: Vec<InboxItem>,
    ) -> Result<InboxPass, EngineError> {
        // The claimed items at once: one slow or refused call does not hold up the others
        // (the CRM's quota, not this loop, paces the calls).
        let results = futures_util::future::join_all(
            items.iter().map(|i| self.work_item(intake, adapters, i)),
        )
        .await;
        let mut pass = InboxPass::default();
        for (item, result) in items.into_iter().zip(results) {
            match result {
                Ok(_) => {
                    intake.inbox_done(item.id).await?;
                    pass.applied += 1;
                    // It had failed before: the CRM is back, the rest need not wait.
                    if item.attempts > 1 {
                        intake
                            .inbox_wake_connection(item.connection_id, self.now_ms())
                            .await?;
                    }
                }
                Err(e) => {
                    let failed_at = self.now_ms();
                    let expired = failed_at - item.received_at_ms >= policy.give_up_after_ms;
                    let retry_at = (!expired && worth_retrying(&e))
                        .then(|| failed_at.saturating_add(policy.pause_ms(item.attempts)));
                    intake
                        .inbox_failed(item.id, &e.to_string(), retry_at)
                        .await?;
                    if retry_at.is_some() {
                        pass.retried += 1;
                    } else {
                        pass.dead += 1;
                    }
                }
            }
        }
        Ok(pass)
    }

    async fn work_item(
        &self,
        intake: &dyn IntakeStore,
        adapters: &dyn AdapterSource,
        item: &InboxItem,
    ) -> Result<Outcome, EngineError> {
        let gone = || EngineError::UnknownConnection(item.connection_id);
        let connection = self
            .store
            .connection(item.connection_id)
            .await?
            .ok_or_else(gone)?;
        let adapter = adapters
            .adapter(item.connection_id)
            .await?
            .ok_or_else(gone)?;
        let CrmEvent::Visit(queued) = &item.event else {
            return self
                .apply_event_from(&connection, &item.event, item.source)
                .await;
        };
        let mut visit = fetched(adapter.as_ref(), queued).await?;
        if let LoyaltyPaid::Ask(reference) = &visit.loyalty_paid {
            // The fetched record may be settled: asked about only when it can matter.
            let check = CrmEvent::Visit(visit.clone());
            visit.loyalty_paid = match self.intake(intake, &connection, &check).await? {
                Intake::Apply(_) => LoyaltyPaid::NotReported,
                Intake::Queue => match adapter.loyalty_paid(&visit, reference).await {
                    Ok(minor) => LoyaltyPaid::Minor(minor),
                    Err(AdapterError::Unsupported(_)) => LoyaltyPaid::NotReported,
                    Err(e) => return Err(e.into()),
                },
            };
        }
        self.apply_event_from(&connection, &CrmEvent::Visit(visit), item.source)
            .await
    }
}

/// The visit as the CRM has it now, when the queued one was partial.
async fn fetched(adapter: &dyn CrmAdapter, v: &VisitEvent) -> Result<VisitEvent, EngineError> {
    if !v.needs_refetch {
        return Ok(v.clone());
    }
    match adapter.get_record(&v.record_id).await {
        Ok(fresh) if fresh.needs_refetch || fresh.record_id != v.record_id => {
            Err(EngineError::NeedsRefetch {
                record_id: v.record_id.clone(),
            })
        }
        Ok(fresh) => Ok(fresh),
        // The record is gone from the CRM: whatever it earned is taken back.
        Err(AdapterError::NotFound(_)) => Ok(deleted(v)),
        Err(e) => Err(e.into()),
    }
}

/// A record the CRM no longer has.
fn deleted(v: &VisitEvent) -> VisitEvent {
    VisitEvent {
        status: VisitStatus::Deleted,
        lines: Vec::new(),
        needs_refetch: false,
        loyalty_paid: LoyaltyPaid::NotReported,
        // No version: the CRM's last word wins over whatever came before.
        version: None,
        ..v.clone()
    }
}

/// Whether a later try can succeed: the CRM or the store failing can pass; the engine
/// refusing what the CRM said (another company, another currency, negative amounts) cannot.
fn worth_retrying(e: &EngineError) -> bool {
    match e {
        EngineError::Store(_)
        | EngineError::Crm(_)
        | EngineError::NeedsRefetch { .. }
        | EngineError::PaymentsUnknown { .. } => true,
        other => other.is_retryable(),
    }
}

impl Source {
    /// Whether events from this source tell the client (imports of the past do not).
    pub fn notifies(self) -> bool {
        !matches!(self, Source::Import)
    }
}
