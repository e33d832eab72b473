//! The middle of the redemption saga: writing the reward into the CRM.
//!
//! A redemption for a CRM strategy starts `Pending` with its points held. Each pass claims the
//! due ones (the next try is scheduled before the CRM is called, so a gateway that dies
//! mid-call is simply retried later, and a second instance skips what the first is doing),
//! then:
//!
//! * **certificate**: asks the CRM for a certificate carrying the code and creates one only
//!   when there is none, so a call whose answer was lost is never repeated blindly;
//! * **loyalty card**: finds (or issues) the client's card and notes its balance before the
//!   first top-up is sent; a later try re-reads the card: the old balance means the top-up
//!   never happened (send it again), old balance plus the value means it did, anything else is
//!   left to the operator (`code resolve`).
//!
//! A refusal that will not change (validation, not found, unsupported) fails the redemption
//! at once; anything else is retried with growing pauses until [`WriteBackPolicy::max_attempts`].
//! Failing voids the hold and tells the client their points are back; success issues the code
//! (certificate) or spends the points (the money is on the card now) and tells the client.

use std::sync::Arc;

use async_trait::async_trait;

use super::posting::{client_of, notify, program_of};
use super::{EngineError, LoyaltyEngine};
use crate::adapter::{AdapterError, CrmAdapter, RewardRequest};
use crate::code::Code;
use crate::model::ConnectionId;
use crate::money::Money;
use crate::outbox::Notification;
use crate::redemption::{Redemption, RedemptionStatus, Strategy, WriteBack};
use crate::store::{HoldStatus, StoreError, StoreTx};

/// How hard to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteBackPolicy {
    /// Tries before the redemption fails and the points go back.
    pub max_attempts: u32,
    /// The pause after the first failed try; it doubles after each one.
    pub first_pause_ms: i64,
    pub max_pause_ms: i64,
}

impl Default for WriteBackPolicy {
    /// 8 tries over about two hours: 1, 2, 4, 8, 16, 32 and 60 minutes apart.
    fn default() -> WriteBackPolicy {
        WriteBackPolicy {
            max_attempts: 8,
            first_pause_ms: 60_000,
            max_pause_ms: 3_600_000,
        }
    }
}

impl WriteBackPolicy {
    /// The pause after the `attempt`-th try (1-based).
    fn pause_ms(&self, attempt: u32) -> i64 {
        let doubled = self
            .first_pause_ms
            .saturating_mul(1i64 << attempt.saturating_sub(1).min(30));
        doubled.min(self.max_pause_ms).max(0)
    }
}

/// Where the adapters of connections come from (the gateway's connection cache).
#[async_trait]
pub trait AdapterSource: Send + Sync {
    /// The adapter of this connection; `None` when the connection does not exist.
    async fn adapter(
        &self,
        connection: ConnectionId,
    ) -> Result<Option<Arc<dyn CrmAdapter>>, StoreError>;
}

/// What one look at the issued CRM certificates found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CertificateCheck {
    /// Spent in the CRM: marked used now.
    pub used: usize,
    /// Not spent yet (or not found).
    pub unspent: usize,
    /// Past its date and not spent in the CRM: expired now, its points back.
    pub expired: usize,
    /// The CRM could not be asked.
    pub unknown: usize,
}

/// How long after its date a CRM certificate is left before it expires here: the CRM may
/// count its last day to midnight in the salon's time zone.
pub const CERTIFICATE_GRACE_MS: i64 = 86_400_000;

/// What one try did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteBackOutcome {
    /// The certificate exists in the CRM: the code can be used.
    Issued(Redemption),
    /// The card was topped up: the points are spent.
    Delivered(Redemption),
    /// Refused for good, or out of tries: the points are back and the client was told.
    Failed(Redemption),
    /// Not done yet; tried again at `next_attempt_at_ms`.
    Retry { code: Code, next_attempt_at_ms: i64 },
    /// The CRM's state does not say whether the reward was written: the operator decides.
    NeedsOperator { code: Code, reason: String },
    /// Not due, no longer pending, or another worker has it.
    Skipped,
}

/// Counts of one pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteBackPass {
    pub issued: usize,
    pub delivered: usize,
    pub failed: usize,
    pub retried: usize,
    pub needs_operator: usize,
}

impl WriteBackPass {
    pub fn is_empty(&self) -> bool {
        *self == WriteBackPass::default()
    }
}

/// What the CRM step found.
enum Step {
    /// The certificate exists (its CRM id).
    Issued(String),
    /// The card holds the value (its CRM id).
    Delivered(String),
    /// The CRM's state does not say: the operator decides.
    Operator(String),
}

/// How a pending redemption ends.
enum End {
    Issued(String),
    Delivered(String),
    Failed(String),
}

/// How the operator settles a redemption the gateway could not decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The reward is in the CRM.
    Written,
    /// It is not: give the points back.
    NotWritten,
}

impl LoyaltyEngine {
    /// Runs every due write-back once (at start, this is the recovery pass: whatever a stopped
    /// gateway left pending is finished or failed). Errors of one redemption do not stop the
    /// others; a store failure does.
    pub async fn write_back_due(
        &self,
        adapters: &dyn AdapterSource,
        policy: &WriteBackPolicy,
    ) -> Result<WriteBackPass, EngineError> {
        let mut pass = WriteBackPass::default();
        let due = self.store.due_write_backs(self.now_ms(), 100).await?;
        for r in due {
            let adapter = match r.write_back.connection_id {
                Some(c) => adapters.adapter(c).await?,
                None => None,
            };
            let outcome = match adapter {
                Some(adapter) => self.write_back(&r, adapter.as_ref(), policy).await?,
                None => {
                    self.finish(&r.code, End::Failed("the connection is gone".into()))
                        .await?
                }
            };
            match outcome {
                WriteBackOutcome::Issued(_) => pass.issued += 1,
                WriteBackOutcome::Delivered(_) => pass.delivered += 1,
                WriteBackOutcome::Failed(_) => pass.failed += 1,
                WriteBackOutcome::Retry { .. } => pass.retried += 1,
                WriteBackOutcome::NeedsOperator { .. } => pass.needs_operator += 1,
                WriteBackOutcome::Skipped => {}
            }
        }
        Ok(pass)
    }

    /// Closes the loop for CRM certificates: each issued one the CRM shows spent (its balance
    /// below what it was sold with) is marked used, and its points are spent; one past its date
    /// that the CRM shows unspent (or no longer has) expires, and its points come back. A CRM
    /// that cannot be asked is skipped until the next pass: nothing expires unasked.
    pub async fn close_spent_certificates(
        &self,
        adapters: &dyn AdapterSource,
    ) -> Result<CertificateCheck, EngineError> {
        let mut check = CertificateCheck::default();
        let mut after = 0;
        loop {
            let page = self.store.issued_certificates(after, 100).await?;
            let Some(last) = page.last() else {
                return Ok(check);
            };
            after = last.id;
            for r in page {
                let Some(connection) = r.write_back.connection_id else {
                    continue;
                };
                let Some(adapter) = adapters.adapter(connection).await? else {
                    continue;
                };
                let request = self.request_for(&r).await?;
                // Past its date (with a day for the CRM's own day boundary), an unspent
                // certificate expires and its points come back — only once the CRM has said
                // it is unspent: a lost "used" webhook must not refund a spent certificate.
                let past_date =
                    self.now_ms() > r.expires_at_ms.saturating_add(CERTIFICATE_GRACE_MS);
                match adapter.find_certificate(&request).await {
                    Ok(Some(found)) if found.spent => match self.use_code(&r.code).await {
                        Ok(_) => check.used += 1,
                        // Used at the desk meanwhile.
                        Err(EngineError::CodeNotUsable { .. }) => {}
                        Err(e) => return Err(e),
                    },
                    Ok(_) if past_date => {
                        match self
                            .settle_redemption(
                                &r.code,
                                crate::redemption::RedemptionStatus::Expired,
                                super::redemption::UsedAt::Elsewhere,
                            )
                            .await
                        {
                            Ok(_) => check.expired += 1,
                            Err(EngineError::CodeNotUsable { .. }) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(_) => check.unspent += 1,
                    Err(_) => check.unknown += 1,
                }
            }
        }
    }

    /// One try at writing `r`'s reward into the CRM through `adapter`.
    pub async fn write_back(
        &self,
        r: &Redemption,
        adapter: &dyn CrmAdapter,
        policy: &WriteBackPolicy,
    ) -> Result<WriteBackOutcome, EngineError> {
        let Some(claimed) = self.claim(&r.code, policy).await? else {
            return Ok(WriteBackOutcome::Skipped);
        };
        // What this try learns is kept here and saved with how it ended.
        let mut wb = claimed.write_back.clone();
        let request = self.request_for(&claimed).await?;
        let step = match claimed.strategy {
            Strategy::CrmCertificate => certificate(adapter, &request).await,
            Strategy::LoyaltyCard => self.card(&claimed, &mut wb, adapter, &request).await?,
            Strategy::GatewayCode => Err(AdapterError::Validation(vec![
                "a gateway code is not written to the CRM".into(),
            ])),
        };
        let code = claimed.code.clone();
        match step {
            Ok(Step::Issued(id)) => self.finish(&code, End::Issued(id)).await,
            Ok(Step::Delivered(id)) => self.finish(&code, End::Delivered(id)).await,
            Ok(Step::Operator(reason)) => {
                wb.next_attempt_at_ms = None;
                wb.last_error = Some(reason.clone());
                self.save_write_back(&claimed, &wb).await?;
                Ok(WriteBackOutcome::NeedsOperator { code, reason })
            }
            Err(e) => {
                let permanent = matches!(
                    e,
                    AdapterError::Validation(_)
                        | AdapterError::NotFound(_)
                        | AdapterError::Unsupported(_)
                );
                if permanent || wb.attempts >= policy.max_attempts {
                    return self.finish(&code, End::Failed(e.to_string())).await;
                }
                wb.last_error = Some(e.to_string());
                self.save_write_back(&claimed, &wb).await?;
                Ok(WriteBackOutcome::Retry {
                    code,
                    next_attempt_at_ms: wb.next_attempt_at_ms.unwrap_or_default(),
                })
            }
        }
    }

    /// The operator's answer for a redemption the gateway could not decide (or any pending
    /// one): written means issued (certificate) or spent (card); not written gives the points
    /// back.
    pub async fn resolve_write_back(
        &self,
        code: &Code,
        resolution: Resolution,
    ) -> Result<Redemption, EngineError> {
        let r = self
            .store
            .redemption_by_code(code)
            .await?
            .ok_or_else(|| EngineError::UnknownCode(code.to_string()))?;
        if r.status != RedemptionStatus::Pending {
            return Err(EngineError::CodeNotUsable {
                code: code.to_string(),
                status: r.status.as_str(),
            });
        }
        let external = r.write_back.external_id.clone().unwrap_or_default();
        let end = match (resolution, r.strategy) {
            (Resolution::Written, Strategy::LoyaltyCard) => End::Delivered(external),
            (Resolution::Written, _) => End::Issued(external),
            (Resolution::NotWritten, _) => {
                End::Failed("the operator says it was not written".into())
            }
        };
        match self.finish(code, end).await? {
            WriteBackOutcome::Issued(r)
            | WriteBackOutcome::Delivered(r)
            | WriteBackOutcome::Failed(r) => Ok(r),
            _ => Err(EngineError::CodeNotUsable {
                code: code.to_string(),
                status: r.status.as_str(),
            }),
        }
    }

    /// Takes the redemption for one try if it is still pending and due: counts the try and
    /// schedules the next one, in one transaction.
    async fn claim(
        &self,
        code: &Code,
        policy: &WriteBackPolicy,
    ) -> Result<Option<Redemption>, EngineError> {
        in_tx!(self, |tx, now| async {
            let Some(mut r) = tx.lock_redemption(code).await? else {
                return Err(EngineError::UnknownCode(code.to_string()));
            };
            let due = r.write_back.next_attempt_at_ms.is_some_and(|at| at <= now);
            if r.status != RedemptionStatus::Pending || !due {
                return Ok(None);
            }
            r.write_back.attempts = r.write_back.attempts.saturating_add(1);
            r.write_back.next_attempt_at_ms =
                Some(now.saturating_add(policy.pause_ms(r.write_back.attempts)));
            tx.set_write_back(r.partner_id, r.id, &r.write_back, now)
                .await?;
            Ok::<_, EngineError>(Some(r))
        })
    }

    async fn request_for(&self, r: &Redemption) -> Result<RewardRequest, EngineError> {
        let program = self.program(r.partner_id).await?;
        let client = self
            .store
            .client(r.partner_id, r.client_id)
            .await?
            .ok_or(EngineError::UnknownClient(r.client_id))?;
        let reward = self
            .store
            .reward(r.partner_id, r.reward_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("reward {} is gone", r.reward_id)))?;
        let minor = reward.kind.value_minor();
        Ok(RewardRequest {
            client_external_id: None,
            phone: client.phone,
            value: Money::new(minor, program.currency)?,
            code: r.code.to_string(),
            title: reward.title,
            expires_at_ms: Some(r.expires_at_ms),
            idempotency_key: r.idempotency_key.clone(),
        })
    }

    /// The card step: find (or issue) the card, then top it up unless the balance noted
    /// before an earlier send says it happened already. Store failures are the outer error;
    /// the CRM's, the inner one.
    async fn card(
        &self,
        r: &Redemption,
        wb: &mut WriteBack,
        adapter: &dyn CrmAdapter,
        request: &RewardRequest,
    ) -> Result<Result<Step, AdapterError>, EngineError> {
        let card = match adapter.find_card(&request.phone).await {
            Ok(Some(card)) => card,
            Ok(None) => match adapter.issue_card(&request.phone).await {
                Ok(card) => card,
                Err(e) => return Ok(Err(e)),
            },
            Err(e) => return Ok(Err(e)),
        };
        let now = card.balance.minor();
        match wb.witness_minor {
            Some(before) if now == before => {}
            Some(before) if now == before.saturating_add(request.value.minor()) => {
                return Ok(Ok(Step::Delivered(card.external_id)));
            }
            Some(before) => {
                return Ok(Ok(Step::Operator(format!(
                    "card {} held {before} (minor units) before the top-up and holds {now} now: \
                     check its history for \"{}\"",
                    card.external_id,
                    request.crm_title()
                ))));
            }
            None => {
                // Noted before sending, so a lost answer can be told from a lost request.
                wb.witness_minor = Some(now);
                wb.external_id = Some(card.external_id.clone());
                self.save_write_back(r, wb).await?;
            }
        }
        Ok(adapter
            .top_up_card(&card.external_id, request)
            .await
            .map(|card| Step::Delivered(card.external_id)))
    }

    async fn save_write_back(&self, r: &Redemption, wb: &WriteBack) -> Result<(), EngineError> {
        in_tx!(self, |tx, now| async {
            tx.set_write_back(r.partner_id, r.id, wb, now).await?;
            Ok::<_, EngineError>(())
        })
    }

    /// Ends a pending redemption: issued, delivered (points spent) or failed (points back),
    /// telling the client, in one transaction. A redemption no longer pending is left as it is.
    async fn finish(&self, code: &Code, end: End) -> Result<WriteBackOutcome, EngineError> {
        // The reward as the catalog has it (its title and value do not change).
        let Some(seen) = self.store.redemption_by_code(code).await? else {
            return Err(EngineError::UnknownCode(code.to_string()));
        };
        let (title, value_minor) = match self.store.reward(seen.partner_id, seen.reward_id).await? {
            Some(w) => (w.title, w.kind.value_minor()),
            None => (String::new(), 0),
        };
        in_tx!(self, |tx, now| async {
            let Some(mut r) = tx.lock_redemption(code).await? else {
                return Err(EngineError::UnknownCode(code.to_string()));
            };
            if r.status != RedemptionStatus::Pending {
                return Ok(WriteBackOutcome::Skipped);
            }
            let (partner, title) = (r.partner_id, title.clone());
            r.write_back.next_attempt_at_ms = None;
            let (status, hold) = match &end {
                End::Issued(_) => (RedemptionStatus::Issued, None),
                End::Delivered(_) => (RedemptionStatus::Used, Some(HoldStatus::Posted)),
                End::Failed(_) => (RedemptionStatus::Failed, Some(HoldStatus::Voided)),
            };
            match &end {
                End::Issued(id) | End::Delivered(id) => {
                    if !id.is_empty() {
                        r.write_back.external_id = Some(id.clone());
                    }
                    r.write_back.last_error = None;
                }
                End::Failed(reason) => r.write_back.last_error = Some(reason.clone()),
            }
            if let Some(to) = hold {
                self.settle_hold_tx(tx, partner, r.hold_id, to, now).await?;
            }
            let note = match status {
                RedemptionStatus::Failed => Notification::RewardFailed {
                    title,
                    points: r.cost,
                    balance: tx.lock_balance(partner, r.client_id).await?,
                },
                _ => Notification::RewardReady {
                    title,
                    code: r.code.to_string(),
                    strategy: r.strategy,
                    value_minor,
                    currency: program_of(tx, partner).await?.currency,
                    expires_at_ms: r.expires_at_ms,
                },
            };
            tx.set_redemption_status(partner, r.id, status, now).await?;
            tx.set_write_back(partner, r.id, &r.write_back, now).await?;
            let client = client_of(tx, partner, r.client_id).await?;
            notify(tx, partner, &client, note, now).await?;
            r.status = status;
            Ok::<_, EngineError>(match status {
                RedemptionStatus::Issued => WriteBackOutcome::Issued(r),
                RedemptionStatus::Used => WriteBackOutcome::Delivered(r),
                _ => WriteBackOutcome::Failed(r),
            })
        })
    }
}

/// The certificate step: find, then create only when there is none.
async fn certificate(
    adapter: &dyn CrmAdapter,
    request: &RewardRequest,
) -> Result<Step, AdapterError> {
    if let Some(found) = adapter.find_certificate(request).await? {
        return Ok(Step::Issued(found.external_id));
    }
    let created = adapter.issue_certificate(request).await?;
    Ok(Step::Issued(created.external_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap() {
        let p = WriteBackPolicy::default();
        let minutes: Vec<i64> = (1..=8).map(|a| p.pause_ms(a) / 60_000).collect();
        assert_eq!(minutes, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(p.pause_ms(u32::MAX), 3_600_000);
    }
}
