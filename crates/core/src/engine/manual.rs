//! Manual work: points accrued or debited by hand, each under its idempotency key.

use super::posting::{client_of, credit, debit, enough, notify, positive, program_of, replayed};
use crate::audit::AuditAction;
use crate::ledger::{Account, EntryKind, NewEntry};
use crate::outbox::Notification;
use crate::{ClientId, EngineError, LoyaltyEngine, PartnerId, Points, Posting, StoreTx};

impl LoyaltyEngine {
    /// Points added by staff. Replaying the same `key` returns the first posting; the same key
    /// with other input is a [`EngineError::Conflict`].
    pub async fn manual_accrual(
        &self,
        partner: PartnerId,
        client: ClientId,
        points: Points,
        reason: &str,
        key: &str,
    ) -> Result<Posting, EngineError> {
        positive(points)?;
        in_tx!(self, |tx, now| self.manual_tx(
            tx,
            partner,
            client,
            points,
            reason,
            key,
            EntryKind::ManualAccrual,
            now
        ))
    }

    /// Points spent at the desk and written off by staff. Never below zero.
    pub async fn manual_debit(
        &self,
        partner: PartnerId,
        client: ClientId,
        points: Points,
        reason: &str,
        key: &str,
    ) -> Result<Posting, EngineError> {
        positive(points)?;
        in_tx!(self, |tx, now| self.manual_tx(
            tx,
            partner,
            client,
            points,
            reason,
            key,
            EntryKind::ManualDebit,
            now
        ))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn manual_tx(
        &self,
        tx: &mut dyn StoreTx,
        partner: PartnerId,
        client_id: ClientId,
        points: Points,
        reason: &str,
        key: &str,
        kind: EntryKind,
        now: i64,
    ) -> Result<Posting, EngineError> {
        let program = program_of(tx, partner).await?;
        let client = client_of(tx, partner, client_id).await?;
        let (debit_account, credit_account) = if kind == EntryKind::ManualAccrual {
            (Account::Issued, Account::Client(client_id))
        } else {
            (Account::Client(client_id), Account::Redeemed)
        };
        let entry = NewEntry {
            idempotency_key: format!("manual:{key}"),
            kind,
            debit: debit_account,
            credit: credit_account,
            amount: points,
            client_id,
            reverses: None,
            reason: Some(reason.to_owned()),
        };
        let balance = tx.lock_balance(partner, client_id).await?;
        if let Some(done) = replayed(tx, partner, &entry, balance).await? {
            return Ok(done);
        }
        let posting = if kind == EntryKind::ManualAccrual {
            credit(tx, partner, &program, &entry, balance, None, now).await?
        } else {
            enough(balance, points)?;
            debit(tx, partner, &entry, balance, None, now).await?
        };
        let note = Notification::Manual {
            points: posting.delta,
            balance: posting.balance,
            reason: reason.to_owned(),
        };
        notify(tx, partner, &client, note, now).await?;
        let action = if kind == EntryKind::ManualAccrual {
            AuditAction::ManualAccrual
        } else {
            AuditAction::ManualDebit
        };
        let detail = serde_json::json!({
            "client_id": client_id,
            "phone": client.phone.masked(),
            "points": points,
            "reason": reason,
            "entry_id": posting.entry_id,
            "balance": posting.balance,
        });
        tx.audit(partner, &self.actor, action, &detail, now).await?;
        Ok(posting)
    }
}
