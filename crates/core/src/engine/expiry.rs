//! Expiry: lots past their date leave the balance for `program:expired`.

use super::posting::{client_of, notify};
use crate::ledger::{Account, EntryKind, NewEntry};
use crate::outbox::Notification;
use crate::{ClientId, EngineError, LoyaltyEngine, PartnerId, Points, Posting, StoreTx};
use serde::Serialize;

/// What one expiry pass over the deployment did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExpiryPass {
    /// Partners with lots past their date.
    pub partners: usize,
    /// Clients whose points expired (each told).
    pub clients: usize,
    pub points: Points,
    /// Partners whose expiry failed, with the error; they are tried again next pass.
    pub failed: Vec<(PartnerId, String)>,
}

impl LoyaltyEngine {
    /// Expires what is due at every partner (the running gateway calls it in its housekeeping,
    /// on every instance: each client's expiry runs under their balance lock and reads the lots
    /// afresh, so two instances never expire a lot twice). One partner's failure does not stop
    /// the others.
    pub async fn expire_everywhere(&self) -> Result<ExpiryPass, EngineError> {
        let partners = self.store.partners_with_due_lots(self.now_ms()).await?;
        let mut pass = ExpiryPass {
            partners: partners.len(),
            ..ExpiryPass::default()
        };
        for partner in partners {
            match self.expire_due(partner).await {
                Ok(postings) => {
                    pass.clients += postings.len();
                    pass.points += postings.iter().map(|p| -p.delta).sum::<Points>();
                }
                Err(e) => pass.failed.push((partner, e.to_string())),
            }
        }
        Ok(pass)
    }

    /// Expires every lot of the partner past its date: each unspent rest is posted to
    /// `program:expired` and the client is told. Returns one posting per client.
    pub async fn expire_due(&self, partner: PartnerId) -> Result<Vec<Posting>, EngineError> {
        let mut postings = Vec::new();
        loop {
            let due = in_tx!(self, |tx, now| async {
                Ok::<_, EngineError>(tx.due_lots(partner, now, 500).await?)
            })?;
            let mut clients: Vec<ClientId> = due.iter().map(|l| l.client_id).collect();
            clients.sort();
            clients.dedup();
            if clients.is_empty() {
                return Ok(postings);
            }
            for client in clients {
                let posting = in_tx!(self, |tx, now| self
                    .expire_client_tx(tx, partner, client, now))?;
                postings.extend(posting);
            }
        }
    }

    pub(super) async fn expire_client_tx(
        &self,
        tx: &mut dyn StoreTx,
        partner: PartnerId,
        client_id: ClientId,
        now: i64,
    ) -> Result<Option<Posting>, EngineError> {
        let client = client_of(tx, partner, client_id).await?;
        let mut balance = tx.lock_balance(partner, client_id).await?;
        let lots = tx.open_lots(partner, client_id).await?;
        let mut total = Points::ZERO;
        let mut last = None;
        for lot in lots
            .iter()
            .filter(|l| l.expires_at_ms.is_some_and(|at| at <= now))
        {
            // The balance lock makes a double expiry impossible (the lot is read fresh). A
            // voided hold can refill an expired lot, which then expires again, possibly within
            // the same millisecond: the key counts those expiries.
            let base = format!("expire:{}:{now}", lot.id);
            let mut key = base.clone();
            let mut n = 1;
            while tx.entry_by_key(partner, &key).await?.is_some() {
                n += 1;
                key = format!("{base}:{n}");
            }
            let entry = NewEntry {
                idempotency_key: key,
                kind: EntryKind::Expiry,
                debit: Account::Client(client_id),
                credit: Account::Expired,
                amount: lot.remaining,
                client_id,
                reverses: None,
                reason: None,
            };
            let id = tx.insert_entry(partner, &entry, now).await?;
            tx.draw_lots(partner, id, &[(lot.id, lot.remaining)])
                .await?;
            balance -= lot.remaining;
            total += lot.remaining;
            last = Some(id);
        }
        let Some(entry_id) = last else {
            return Ok(None);
        };
        tx.set_balance(partner, client_id, balance).await?;
        let note = Notification::Expired {
            points: total,
            balance,
        };
        notify(tx, partner, &client, note, now).await?;
        Ok(Some(Posting {
            client_id,
            entry_id,
            delta: -total,
            balance,
            unbacked: Points::ZERO,
        }))
    }
}
