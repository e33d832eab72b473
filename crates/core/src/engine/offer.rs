//! Personal offers' benefits: posted once for the visit that meets an offer before its deadline,
//! brought to what the visit's current state earns on every later delivery (taken back when it
//! stops qualifying, the offer then live again until its deadline).

use super::posting::{credit, debit, notify};
use crate::ledger::{Account, EntryKind, NewEntry};
use crate::offer::Offer;
use crate::outbox::Notification;
use crate::{Client, EngineError, PartnerId, Points, Program, StoreTx, VisitEvent};

/// Settles `client`'s offers for her record `record_key` in its new state: the offer already
/// posted for it is brought to what the visit earns now; else the oldest live offer the visit
/// meets is posted for it. One offer per visit.
#[allow(clippy::too_many_arguments)]
pub(super) async fn settle_offers(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    program: &Program,
    client: &Client,
    record_key: &str,
    visit: &VisitEvent,
    tell: bool,
    now: i64,
) -> Result<(), EngineError> {
    let at = visit.visit_at_ms.unwrap_or(now);
    let offers = tx
        .lock_offers_for(partner, client.id, record_key, at)
        .await?;
    if let Some(mut o) = offers
        .iter()
        .find(|o| o.record_key.as_deref() == Some(record_key))
        .cloned()
    {
        let target = o.benefit_for(visit, program.point_value_minor, now)?;
        post(tx, partner, program, client, &mut o, target, tell, now).await?;
        if !target.is_positive() {
            // No longer met: the offer is free for another visit before its deadline.
            o.record_key = None;
        }
        tx.save_offer(&o).await?;
        return Ok(());
    }
    for o in offers.iter().filter(|o| o.record_key.is_none()) {
        let target = o.benefit_for(visit, program.point_value_minor, now)?;
        if target.is_positive() {
            let mut o = o.clone();
            o.record_key = Some(record_key.to_owned());
            post(tx, partner, program, client, &mut o, target, tell, now).await?;
            tx.save_offer(&o).await?;
            break;
        }
    }
    Ok(())
}

/// A record that moved to another client is no longer `client`'s visit: the offer posted for it
/// goes back and is free again.
pub(super) async fn release_offer(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    program: &Program,
    client: &Client,
    record_key: &str,
    tell: bool,
    now: i64,
) -> Result<(), EngineError> {
    // At i64::MIN no unattached offer is valid: only the one posted for this record is read.
    let offers = tx
        .lock_offers_for(partner, client.id, record_key, i64::MIN)
        .await?;
    if let Some(mut o) = offers
        .into_iter()
        .find(|o| o.record_key.as_deref() == Some(record_key))
    {
        post(
            tx,
            partner,
            program,
            client,
            &mut o,
            Points::ZERO,
            tell,
            now,
        )
        .await?;
        o.record_key = None;
        tx.save_offer(&o).await?;
    }
    Ok(())
}

/// Posts the difference between `target` and what the offer has posted, under the next
/// `offer:{id}:{n}` key; the client told.
#[allow(clippy::too_many_arguments)]
async fn post(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    program: &Program,
    client: &Client,
    o: &mut Offer,
    target: Points,
    tell: bool,
    now: i64,
) -> Result<(), EngineError> {
    let delta = target - o.posted;
    if delta == Points::ZERO {
        return Ok(());
    }
    o.postings += 1;
    let pay = delta.is_positive();
    let reason = match &o.record_key {
        Some(r) if pay => format!(
            "offer {} ({} via {}): visit {r}",
            o.id, o.terms.variant, o.trigger
        ),
        _ => format!("offer {}: the visit no longer meets it", o.id),
    };
    let entry = NewEntry {
        idempotency_key: format!("offer:{}:{}", o.id, o.postings),
        kind: if pay {
            EntryKind::Offer
        } else {
            EntryKind::Reversal
        },
        debit: if pay {
            Account::Issued
        } else {
            Account::Client(client.id)
        },
        credit: if pay {
            Account::Client(client.id)
        } else {
            Account::Issued
        },
        amount: if pay { delta } else { -delta },
        client_id: client.id,
        reverses: None,
        reason: Some(reason),
    };
    let balance = tx.lock_balance(partner, client.id).await?;
    let posting = if pay {
        credit(tx, partner, program, &entry, balance, None, now).await?
    } else {
        debit(tx, partner, &entry, balance, None, now).await?
    };
    o.posted = target;
    if tell {
        let note = Notification::Offer {
            points: posting.delta,
            balance: posting.balance,
        };
        notify(tx, partner, client, note, now).await?;
    }
    Ok(())
}
