//! Spending points: two-phase holds, rewards redeemed for codes or CRM certificates, codes used
//! at the desk or in the CRM, cancelled or expired.

use super::DAY_MS;
use super::posting::{
    client_of, debit, enough, positive, program_for_client, program_of, skip_points,
};
use crate::audit::AuditAction;
use crate::code::Code;
use crate::ledger::{Account, EntryKind, NewEntry};
use crate::model::HoldId;
use crate::redemption::{NewRedemption, Redemption, RedemptionStatus, Strategy, Target};
use crate::store::{Hold, HoldStatus};
use crate::{
    Bps, ClientId, Currency, EngineError, LoyaltyEngine, PartnerId, Points, Program, Reward,
    RewardKind, StoreError, StoreTx,
};
use serde::Serialize;

/// The terms a money certificate from a gateway code is used on: points pay at most the
/// program's `max_redeem_share` of a bill, so it pays only a bill of `min_bill_minor` or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BillTerms {
    /// What it is worth (minor units).
    pub value_minor: i64,
    /// The smallest bill it may pay; `None` when points may pay no part of a bill.
    pub min_bill_minor: Option<i64>,
    /// The largest share of a bill points may pay.
    pub share: Bps,
    pub currency: Currency,
}

impl BillTerms {
    /// What a redemption of `reward` is worth, when it has terms: only a gateway code for a
    /// money certificate. A service reward is the service itself, whatever the bill; a reward
    /// written into a CRM is spent at the CRM's checkout, by the CRM's rules.
    pub fn certificate_value(r: &Redemption, reward: &Reward) -> Option<i64> {
        match (r.strategy, &reward.kind) {
            (Strategy::GatewayCode, RewardKind::Certificate { value_minor }) => Some(*value_minor),
            _ => None,
        }
    }

    /// The terms of a certificate worth `value_minor` under `program`.
    pub fn new(value_minor: i64, program: &Program) -> BillTerms {
        BillTerms {
            value_minor,
            min_bill_minor: program.min_bill_for(value_minor),
            share: program.max_redeem_share,
            currency: program.currency,
        }
    }

    /// Whether the code may pay a bill of `bill_minor`; the desk's error otherwise.
    fn check(&self, code: &Code, bill_minor: Option<i64>) -> Result<(), EngineError> {
        match bill_minor {
            None => Err(EngineError::BillNeeded {
                code: code.to_string(),
                value_minor: self.value_minor,
                min_bill_minor: self.min_bill_minor,
            }),
            Some(bill) if self.min_bill_minor.is_none_or(|min| bill < min) => {
                Err(EngineError::BillTooSmall {
                    code: code.to_string(),
                    value_minor: self.value_minor,
                    bill_minor: bill,
                    share: self.share,
                    min_bill_minor: self.min_bill_minor,
                })
            }
            Some(_) => Ok(()),
        }
    }
}

/// Where a code is used: at the desk, a code with [`BillTerms`] needs the bill it pays;
/// a use reported from elsewhere (the CRM) is taken as made.
#[derive(Debug, Clone, Copy)]
pub(super) enum UsedAt {
    Desk { bill_minor: Option<i64> },
    Elsewhere,
}

pub(super) fn min_bill_text(min_bill_minor: Option<i64>) -> String {
    match min_bill_minor {
        Some(m) => format!("it needs one of at least {m}"),
        None => "it cannot be used".to_owned(),
    }
}

impl LoyaltyEngine {
    /// Holds points for a redemption: they leave the balance at once. The same `key` returns
    /// the same hold.
    pub async fn hold(
        &self,
        partner: PartnerId,
        client_id: ClientId,
        points: Points,
        key: &str,
    ) -> Result<Hold, EngineError> {
        positive(points)?;
        in_tx!(self, |tx, now| self
            .hold_tx(tx, partner, client_id, points, key, now))
    }

    pub(super) async fn hold_tx(
        &self,
        tx: &mut dyn StoreTx,
        partner: PartnerId,
        client_id: ClientId,
        points: Points,
        key: &str,
        now: i64,
    ) -> Result<Hold, EngineError> {
        program_of(tx, partner).await?;
        client_of(tx, partner, client_id).await?;
        let balance = tx.lock_balance(partner, client_id).await?;
        if let Some(h) = tx.hold_by_key(partner, key).await? {
            return if h.client_id == client_id && h.amount == points {
                Ok(h)
            } else {
                Err(EngineError::Conflict {
                    key: key.to_owned(),
                })
            };
        }
        enough(balance, points)?;
        let hold = tx.insert_hold(partner, client_id, points, key, now).await?;
        let entry = NewEntry {
            idempotency_key: format!("hold:{key}"),
            kind: EntryKind::Hold,
            debit: Account::Client(client_id),
            credit: Account::Hold(hold.id),
            amount: points,
            client_id,
            reverses: None,
            reason: None,
        };
        debit(tx, partner, &entry, balance, None, now).await?;
        Ok(hold)
    }

    /// Completes a pending hold: the points are spent. Posting twice is a no-op; posting a
    /// voided hold is an error.
    pub async fn post_hold(&self, partner: PartnerId, hold: HoldId) -> Result<Hold, EngineError> {
        self.settle_hold(partner, hold, HoldStatus::Posted).await
    }

    /// Cancels a pending hold: the points go back to the lots they came from.
    pub async fn void_hold(&self, partner: PartnerId, hold: HoldId) -> Result<Hold, EngineError> {
        self.settle_hold(partner, hold, HoldStatus::Voided).await
    }

    pub(super) async fn settle_hold(
        &self,
        partner: PartnerId,
        hold_id: HoldId,
        to: HoldStatus,
    ) -> Result<Hold, EngineError> {
        in_tx!(self, |tx, now| self
            .settle_hold_tx(tx, partner, hold_id, to, now))
    }

    pub(super) async fn settle_hold_tx(
        &self,
        tx: &mut dyn StoreTx,
        partner: PartnerId,
        hold_id: HoldId,
        to: HoldStatus,
        now: i64,
    ) -> Result<Hold, EngineError> {
        let mut hold = tx
            .lock_hold(partner, hold_id)
            .await?
            .ok_or(EngineError::UnknownHold(hold_id))?;
        if hold.status == to {
            return Ok(hold);
        }
        if hold.status != HoldStatus::Pending {
            return Err(EngineError::HoldNotPending {
                hold: hold_id,
                status: hold.status.as_str(),
            });
        }
        let client = hold.client_id;
        let (credit_account, kind, suffix) = match to {
            HoldStatus::Voided => (Account::Client(client), EntryKind::HoldVoid, "void"),
            _ => (Account::Redeemed, EntryKind::HoldPost, "post"),
        };
        let entry = NewEntry {
            idempotency_key: format!("hold:{}:{suffix}", hold.idempotency_key),
            kind,
            debit: Account::Hold(hold_id),
            credit: credit_account,
            amount: hold.amount,
            client_id: client,
            reverses: None,
            reason: None,
        };
        if to == HoldStatus::Voided {
            let balance = tx.lock_balance(partner, client).await?;
            let held = tx
                .entry_by_key(partner, &format!("hold:{}", hold.idempotency_key))
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("hold {hold_id} has no entry")))?;
            // Like any credit, returned points repay a debt first (a reversal may have
            // overdrawn the client while the hold was pending); only the rest refills the
            // lots they were drawn from.
            let draws = tx.draws_of(partner, held.id).await?;
            let debt = (-balance).max(Points::ZERO);
            let restore = skip_points(&draws, debt.min(hold.amount));
            tx.insert_entry(partner, &entry, now).await?;
            tx.restore_lots(partner, &restore).await?;
            tx.set_balance(partner, client, balance + hold.amount)
                .await?;
        } else {
            tx.insert_entry(partner, &entry, now).await?;
        }
        tx.set_hold_status(partner, hold_id, to, now).await?;
        hold.status = to;
        Ok(hold)
    }

    /// Exchanges `reward.cost` points of the client for `reward`: the points are held at once
    /// and a code is issued, in one transaction. With [`Strategy::GatewayCode`] the code is
    /// usable at once; the CRM strategies start `Pending`, due for
    /// [`LoyaltyEngine::write_back_due`] to write the reward into `connection`'s CRM. The same
    /// `key` returns the same redemption.
    /// `new_code` draws a code (from the OS's randomness in the gateway); a collision draws
    /// again.
    pub async fn redeem(
        &self,
        partner: PartnerId,
        client_id: ClientId,
        reward: &Reward,
        key: &str,
        target: Target,
        new_code: &(dyn Fn() -> Code + Send + Sync),
    ) -> Result<Redemption, EngineError> {
        if reward.partner_id != partner || !reward.active {
            return Err(EngineError::RewardUnavailable(reward.id));
        }
        let Target {
            strategy,
            connection,
        } = target;
        if strategy != Strategy::GatewayCode && connection.is_none() {
            return Err(EngineError::NoConnection(strategy.as_str()));
        }
        in_tx!(self, |tx, now| async {
            let program = program_of(tx, partner).await?;
            if let Some(r) = tx.redemption_by_key(partner, key).await? {
                return if r.client_id == client_id && r.reward_id == reward.id {
                    Ok(r)
                } else {
                    Err(EngineError::Conflict {
                        key: key.to_owned(),
                    })
                };
            }
            let hold = self
                .hold_tx(
                    tx,
                    partner,
                    client_id,
                    reward.cost,
                    &format!("redeem:{key}"),
                    now,
                )
                .await?;
            let status = match strategy {
                Strategy::GatewayCode => RedemptionStatus::Issued,
                _ => RedemptionStatus::Pending,
            };
            let ttl = i64::from(program.code_ttl_days).saturating_mul(DAY_MS);
            let new = NewRedemption {
                client_id,
                reward_id: reward.id,
                hold_id: hold.id,
                code: new_code(),
                strategy,
                status,
                cost: reward.cost,
                idempotency_key: key.to_owned(),
                expires_at_ms: now.saturating_add(ttl),
                connection_id: connection.filter(|_| strategy != Strategy::GatewayCode),
            };
            Ok::<_, EngineError>(tx.insert_redemption(partner, &new, now).await?)
        })
    }

    /// The code was used: its points are spent. Using it twice is an error; a code past its
    /// date is expired instead (its points come back) and returned so. Nothing about the bill
    /// is checked: the desk goes through [`LoyaltyEngine::use_code_at_desk`]; this is for a
    /// use already made elsewhere (a CRM certificate the CRM reports spent).
    pub async fn use_code(&self, code: &Code) -> Result<Redemption, EngineError> {
        self.settle_redemption(code, RedemptionStatus::Used, UsedAt::Elsewhere)
            .await
    }

    /// A code used at the desk on a bill of `bill_minor` (minor units). A code with
    /// [`BillTerms`] needs the bill, checked in the same transaction that uses it
    /// ([`EngineError::BillNeeded`], [`EngineError::BillTooSmall`]); any other code needs
    /// none, and one that cannot be used says so whatever the bill. Otherwise as
    /// [`LoyaltyEngine::use_code`].
    pub async fn use_code_at_desk(
        &self,
        code: &Code,
        bill_minor: Option<i64>,
    ) -> Result<Redemption, EngineError> {
        if let Some(b) = bill_minor.filter(|b| *b <= 0) {
            return Err(EngineError::NonPositiveAmount(b));
        }
        self.settle_redemption(code, RedemptionStatus::Used, UsedAt::Desk { bill_minor })
            .await
    }

    /// The [`BillTerms`] of a redemption of `reward`, if it has any (the program is read only
    /// then).
    pub async fn bill_terms(
        &self,
        r: &Redemption,
        reward: &Reward,
    ) -> Result<Option<BillTerms>, EngineError> {
        let Some(value_minor) = BillTerms::certificate_value(r, reward) else {
            return Ok(None);
        };
        let program = self.program(r.partner_id).await?;
        let client = self.store.client(r.partner_id, r.client_id).await?;
        let level = client.and_then(|c| c.level);
        Ok(Some(BillTerms::new(
            value_minor,
            &program.at_level(level.as_deref()),
        )))
    }

    /// Cancels an unused code: its points come back.
    pub async fn cancel_code(&self, code: &Code) -> Result<Redemption, EngineError> {
        self.settle_redemption(code, RedemptionStatus::Cancelled, UsedAt::Elsewhere)
            .await
    }

    /// Expires every issued code past its date, at every partner: its points come back.
    /// Returns how many expired.
    pub async fn expire_codes(&self) -> Result<usize, EngineError> {
        let mut expired = 0;
        loop {
            let due = self.store.due_codes(self.clock.now_ms(), 200).await?;
            if due.is_empty() {
                return Ok(expired);
            }
            for code in &due {
                match self
                    .settle_redemption(code, RedemptionStatus::Expired, UsedAt::Elsewhere)
                    .await
                {
                    Ok(_) => expired += 1,
                    // Used or cancelled meanwhile: nothing to expire.
                    Err(EngineError::CodeNotUsable { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    pub(super) async fn settle_redemption(
        &self,
        code: &Code,
        to: RedemptionStatus,
        at: UsedAt,
    ) -> Result<Redemption, EngineError> {
        in_tx!(self, |tx, now| async {
            let mut r = tx
                .lock_redemption(code)
                .await?
                .ok_or_else(|| EngineError::UnknownCode(code.to_string()))?;
            // Settling twice the same way is a no-op, except using: a code is used once.
            if r.status == to && to != RedemptionStatus::Used {
                return Ok(r);
            }
            let mut target = to;
            let allowed = match (r.status, to) {
                // The gateway's own codes live by the program's date; a CRM certificate by the
                // CRM's.
                (RedemptionStatus::Issued, RedemptionStatus::Used) => {
                    if now > r.expires_at_ms && r.strategy == Strategy::GatewayCode {
                        target = RedemptionStatus::Expired;
                    }
                    true
                }
                // A CRM certificate is expired only by `close_spent_certificates`, after the
                // CRM said it was not spent.
                (RedemptionStatus::Issued, RedemptionStatus::Expired) => {
                    now > r.expires_at_ms && r.strategy != Strategy::LoyaltyCard
                }
                (from, RedemptionStatus::Cancelled | RedemptionStatus::Failed) => from.is_open(),
                _ => false,
            };
            if !allowed {
                return Err(EngineError::CodeNotUsable {
                    code: code.to_string(),
                    status: r.status.as_str(),
                });
            }
            if let (RedemptionStatus::Used, UsedAt::Desk { bill_minor }) = (target, at) {
                let reward = tx.reward(r.partner_id, r.reward_id).await?;
                if let Some(value_minor) = reward
                    .as_ref()
                    .and_then(|w| BillTerms::certificate_value(&r, w))
                {
                    let program = program_for_client(tx, r.partner_id, r.client_id).await?;
                    BillTerms::new(value_minor, &program).check(code, bill_minor)?;
                }
            }
            match target {
                RedemptionStatus::Used => {
                    self.settle_hold_tx(tx, r.partner_id, r.hold_id, HoldStatus::Posted, now)
                        .await?;
                }
                _ => {
                    self.settle_hold_tx(tx, r.partner_id, r.hold_id, HoldStatus::Voided, now)
                        .await?;
                }
            }
            tx.set_redemption_status(r.partner_id, r.id, target, now)
                .await?;
            if let (RedemptionStatus::Used, UsedAt::Desk { bill_minor }) = (target, at) {
                let detail = serde_json::json!({
                    "code": code.to_string(),
                    "client_id": r.client_id,
                    "points": r.cost,
                    "bill_minor": bill_minor,
                });
                tx.audit(
                    r.partner_id,
                    &self.actor,
                    AuditAction::CodeUsed,
                    &detail,
                    now,
                )
                .await?;
            }
            r.status = target;
            Ok::<_, EngineError>(r)
        })
    }
}
