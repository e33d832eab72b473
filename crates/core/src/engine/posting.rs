//! What every capability posts with: the program and client of a transaction, the checks on an
//! amount, credits and debits over lots, replays of a key, the client's notification.

use super::DAY_MS;
use crate::ledger::{Account, LotId, NewEntry, NewLot, NewPendingLot, PendingLot, plan_draw};
use crate::model::EntryId;
use crate::outbox::{NewOutbox, Notification};
use crate::{
    Client, ClientId, EngineError, PartnerId, Points, Posting, Program, ProgramVersion, StoreError,
    StoreTx,
};

pub(super) async fn program_of(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
) -> Result<Program, EngineError> {
    Ok(version_of(tx, partner).await?.program)
}

/// The partner's newest program version.
pub(super) async fn version_of(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
) -> Result<ProgramVersion, EngineError> {
    tx.program(partner).await.map_err(|e| match e {
        StoreError::NotFound(_) => EngineError::UnknownPartner(partner),
        other => other.into(),
    })
}

/// The program as it applies to the client now: at their level's cashback and redemption cap.
pub(super) async fn program_for_client(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    client: ClientId,
) -> Result<Program, EngineError> {
    let program = program_of(tx, partner).await?;
    let client = client_of(tx, partner, client).await?;
    Ok(program.at_level(client.level.as_deref()))
}

pub(super) async fn client_of(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    client: ClientId,
) -> Result<Client, EngineError> {
    tx.client(partner, client)
        .await?
        .ok_or(EngineError::UnknownClient(client))
}

pub(super) fn positive(points: Points) -> Result<(), EngineError> {
    if points.is_positive() {
        Ok(())
    } else {
        Err(EngineError::NonPositiveAmount(points.value()))
    }
}

pub(super) fn enough(balance: Points, wanted: Points) -> Result<(), EngineError> {
    if balance < wanted {
        return Err(EngineError::InsufficientBalance {
            available: balance.max(Points::ZERO),
            requested: wanted,
        });
    }
    Ok(())
}

/// The earlier posting when `entry`'s key was used before with the same input.
pub(super) async fn replayed(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    entry: &NewEntry,
    balance: Points,
) -> Result<Option<Posting>, EngineError> {
    match tx.entry_by_key(partner, &entry.idempotency_key).await? {
        None => Ok(None),
        Some(done) if done.fingerprint == entry.fingerprint() => Ok(Some(Posting {
            client_id: done.client_id,
            entry_id: done.id,
            delta: done.client_delta(),
            balance,
            unbacked: Points::ZERO,
        })),
        Some(_) => Err(EngineError::Conflict {
            key: entry.idempotency_key.clone(),
        }),
    }
}

/// Posts an entry that credits the client: first repays any debt, the rest becomes a lot with
/// the program's expiry. `balance` is the client's locked balance.
pub(super) async fn credit(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    program: &Program,
    entry: &NewEntry,
    balance: Points,
    source: Option<&str>,
    now: i64,
) -> Result<Posting, EngineError> {
    let expires = program
        .points_ttl_days
        .map(|days| now.saturating_add(i64::from(days) * DAY_MS));
    credit_until(tx, partner, entry, balance, source, expires, now).await
}

/// [`credit`] with the lot's own expiry (`None`: never).
pub(super) async fn credit_until(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    entry: &NewEntry,
    balance: Points,
    source: Option<&str>,
    expires_at_ms: Option<i64>,
    now: i64,
) -> Result<Posting, EngineError> {
    let entry_id = tx.insert_entry(partner, entry, now).await?;
    let debt = (-balance).max(Points::ZERO);
    let lot_amount = entry.amount - entry.amount.min(debt);
    if lot_amount.is_positive() {
        let lot = NewLot {
            client_id: entry.client_id,
            entry_id,
            source: source.map(str::to_owned),
            amount: lot_amount,
            expires_at_ms,
        };
        tx.insert_lot(partner, &lot, now).await?;
    }
    let new_balance = balance + entry.amount;
    tx.set_balance(partner, entry.client_id, new_balance)
        .await?;
    Ok(Posting {
        client_id: entry.client_id,
        entry_id,
        delta: entry.amount,
        balance: new_balance,
        unbacked: Points::ZERO,
    })
}

/// Posts an entry that credits the client's pending points (`entry.credit` is
/// [`Account::Pending`]): a pending lot that matures in the program's refund window, keeping the
/// expiry it would have had from now. The spendable balance does not move.
pub(super) async fn credit_pending(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    program: &Program,
    entry: &NewEntry,
    source: Option<&str>,
    now: i64,
) -> Result<(EntryId, i64), EngineError> {
    let client = entry.client_id;
    let entry_id = tx.insert_entry(partner, entry, now).await?;
    let matures_at_ms = now.saturating_add(i64::from(program.pending_days) * DAY_MS);
    let lot = NewPendingLot {
        client_id: client,
        entry_id,
        source: source.map(str::to_owned),
        amount: entry.amount,
        matures_at_ms,
        expires_at_ms: program
            .points_ttl_days
            .map(|days| now.saturating_add(i64::from(days) * DAY_MS)),
    };
    tx.insert_pending_lot(partner, &lot, now).await?;
    let pending = tx.pending_points(partner, client).await?;
    tx.set_pending_points(partner, client, pending + entry.amount)
        .await?;
    Ok((entry_id, matures_at_ms))
}

/// Takes back up to `amount` of what `source`'s accruals still hold pending, under `entry`
/// (a reversal debiting [`Account::Pending`], its amount set here). Returns what was taken and
/// the entry; nothing is posted when nothing is pending.
pub(super) async fn take_pending(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    mut entry: NewEntry,
    source: &str,
    now: i64,
) -> Result<Option<(EntryId, Points)>, EngineError> {
    let client = entry.client_id;
    let lots: Vec<PendingLot> = tx
        .open_pending_lots(partner, client)
        .await?
        .into_iter()
        .filter(|l| l.source.as_deref() == Some(source))
        .collect();
    let mut left = entry.amount;
    let mut draws = Vec::new();
    for lot in &lots {
        if !left.is_positive() {
            break;
        }
        let take = left.min(lot.remaining);
        draws.push((lot.id, take));
        left -= take;
    }
    let taken = entry.amount - left;
    if !taken.is_positive() {
        return Ok(None);
    }
    entry.amount = taken;
    entry.debit = Account::Pending(client);
    let entry_id = tx.insert_entry(partner, &entry, now).await?;
    tx.draw_pending_lots(partner, &draws).await?;
    let pending = tx.pending_points(partner, client).await?;
    tx.set_pending_points(partner, client, pending - taken)
        .await?;
    Ok(Some((entry_id, taken)))
}

/// Posts an entry that debits the client, drawing from lots (`prefer_source`'s first, then the
/// oldest). What the lots cannot cover is reported as `unbacked`; only reversals get there,
/// every other caller checks the balance first.
pub(super) async fn debit(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    entry: &NewEntry,
    balance: Points,
    prefer_source: Option<&str>,
    now: i64,
) -> Result<Posting, EngineError> {
    let lots = tx.open_lots(partner, entry.client_id).await?;
    let plan = plan_draw(&lots, entry.amount, prefer_source);
    let entry_id = tx.insert_entry(partner, entry, now).await?;
    tx.draw_lots(partner, entry_id, &plan.draws).await?;
    let new_balance = balance - entry.amount;
    tx.set_balance(partner, entry.client_id, new_balance)
        .await?;
    Ok(Posting {
        client_id: entry.client_id,
        entry_id,
        delta: -entry.amount,
        balance: new_balance,
        unbacked: plan.shortfall,
    })
}

/// `draws` without their first `skip` points.
pub(super) fn skip_points(draws: &[(LotId, Points)], skip: Points) -> Vec<(LotId, Points)> {
    let mut left = skip;
    let mut out = Vec::with_capacity(draws.len());
    for &(lot, amount) in draws {
        let skipped = left.min(amount);
        left -= skipped;
        if amount > skipped {
            out.push((lot, amount - skipped));
        }
    }
    out
}

/// Enqueues a notification for a client who linked Telegram and did not opt out.
pub(super) async fn notify(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    client: &Client,
    notification: Notification,
    now: i64,
) -> Result<(), EngineError> {
    if client.telegram_chat_id.is_none() || client.notifications_off {
        return Ok(());
    }
    let msg = NewOutbox::for_client(client.id, notification, now);
    tx.enqueue(partner, &msg).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_points_drops_the_first_points_across_lots() {
        let draws = [(1, Points(30)), (2, Points(50))];
        assert_eq!(skip_points(&draws, Points(0)), draws.to_vec());
        assert_eq!(skip_points(&draws, Points(40)), vec![(2, Points(40))]);
        assert_eq!(skip_points(&draws, Points(30)), vec![(2, Points(50))]);
        assert!(skip_points(&draws, Points(80)).is_empty());
    }
}
