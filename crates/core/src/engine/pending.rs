//! Pending points: accruals held for the program's refund window mature into the balance.

use super::posting::{client_of, credit_until, notify};
use crate::ledger::{Account, EntryKind, NewEntry};
use crate::outbox::Notification;
use crate::{ClientId, EngineError, LoyaltyEngine, PartnerId, Points, Posting, StoreTx};
use serde::Serialize;

/// What one maturing pass over the deployment did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MaturePass {
    /// Partners with pending points due.
    pub partners: usize,
    /// Clients whose pending points became spendable (each told).
    pub clients: usize,
    pub points: Points,
    /// Partners whose pass failed, with the error; they are tried again next pass.
    pub failed: Vec<(PartnerId, String)>,
}

impl LoyaltyEngine {
    /// Makes spendable what is due at every partner (the running gateway calls it in its
    /// housekeeping, on every instance: each client's pass runs under their balance lock and
    /// reads the pending lots afresh, so a lot never matures twice).
    pub async fn mature_everywhere(&self) -> Result<MaturePass, EngineError> {
        let partners = self.store.partners_with_due_pending(self.now_ms()).await?;
        let mut pass = MaturePass {
            partners: partners.len(),
            ..MaturePass::default()
        };
        for partner in partners {
            match self.mature_due(partner).await {
                Ok(postings) => {
                    pass.clients += postings.len();
                    pass.points += postings.iter().map(|p| p.delta).sum::<Points>();
                }
                Err(e) => pass.failed.push((partner, e.to_string())),
            }
        }
        Ok(pass)
    }

    /// Moves every pending lot of the partner past its refund window into the client's
    /// balance (a lot keeping its expiry) and tells the client. One posting per client.
    pub async fn mature_due(&self, partner: PartnerId) -> Result<Vec<Posting>, EngineError> {
        let mut postings = Vec::new();
        loop {
            let due = in_tx!(self, |tx, now| async {
                Ok::<_, EngineError>(tx.due_pending_lots(partner, now, 500).await?)
            })?;
            let mut clients: Vec<ClientId> = due.iter().map(|l| l.client_id).collect();
            clients.sort();
            clients.dedup();
            if clients.is_empty() {
                return Ok(postings);
            }
            for client in clients {
                let posting = in_tx!(self, |tx, now| self
                    .mature_client_tx(tx, partner, client, now))?;
                postings.extend(posting);
            }
        }
    }

    async fn mature_client_tx(
        &self,
        tx: &mut dyn StoreTx,
        partner: PartnerId,
        client_id: ClientId,
        now: i64,
    ) -> Result<Option<Posting>, EngineError> {
        let client = client_of(tx, partner, client_id).await?;
        let mut balance = tx.lock_balance(partner, client_id).await?;
        let pending = tx.pending_points(partner, client_id).await?;
        let lots = tx.open_pending_lots(partner, client_id).await?;
        let mut total = Points::ZERO;
        let mut last = None;
        for lot in lots.iter().filter(|l| l.matures_at_ms <= now) {
            // Read under the balance lock: a lot drawn to zero is not read again, so its key is
            // used once.
            let entry = NewEntry {
                idempotency_key: format!("mature:{}", lot.id),
                kind: EntryKind::Matured,
                debit: Account::Pending(client_id),
                credit: Account::Client(client_id),
                amount: lot.remaining,
                client_id,
                reverses: None,
                reason: None,
            };
            tx.draw_pending_lots(partner, &[(lot.id, lot.remaining)])
                .await?;
            let source = lot.source.as_deref();
            let posting =
                credit_until(tx, partner, &entry, balance, source, lot.expires_at_ms, now).await?;
            balance = posting.balance;
            total += lot.remaining;
            last = Some(posting.entry_id);
        }
        let Some(entry_id) = last else {
            return Ok(None);
        };
        tx.set_pending_points(partner, client_id, pending - total)
            .await?;
        let note = Notification::Matured {
            points: total,
            balance,
        };
        notify(tx, partner, &client, note, now).await?;
        Ok(Some(Posting {
            client_id,
            entry_id,
            delta: total,
            balance,
            unbacked: Points::ZERO,
        }))
    }
}
