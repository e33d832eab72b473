//! Referrals: recorded when a friend joins through a client's link, paid to both when the
//! friend's first visit that came is applied, reversed if that visit does not come after all.

use super::custom::fire_referral;
use super::level::rise;
use super::posting::{client_of, credit, debit, notify, program_of};
use crate::campaign::{Period, period_bounds};
use crate::event::VisitStatus;
use crate::ledger::{Account, EntryKind, NewEntry};
use crate::level::LevelMeasure;
use crate::outbox::Notification;
use crate::referral::{Referral, ReferralStats, Refusal};
use crate::{
    Client, ClientId, EngineError, LoyaltyEngine, PartnerId, Points, Program, StoreTx, VisitEvent,
};

impl LoyaltyEngine {
    /// Records that `referrer` invited `friend`, who joined the salon through her link from
    /// `chat` (the friend's chat). `Ok(Err(refusal))` says why nothing was recorded.
    pub async fn refer(
        &self,
        partner: PartnerId,
        referrer: ClientId,
        friend: ClientId,
        chat: Option<i64>,
    ) -> Result<Result<(), Refusal>, EngineError> {
        in_tx!(self, |tx, now| async {
            let program = program_of(tx, partner).await?;
            if program.referral.is_none() {
                return Ok(Err(Refusal::NoProgram));
            }
            let friend = client_of(tx, partner, friend).await?;
            let Some(referrer) = tx.client(partner, referrer).await? else {
                return Ok(Err(Refusal::UnknownReferrer));
            };
            if referrer.id == friend.id
                || referrer.phone == friend.phone
                || (chat.is_some() && referrer.telegram_chat_id == chat)
            {
                return Ok(Err(Refusal::SelfReferral));
            }
            if tx.measure(partner, referrer.id, i64::MIN).await?.visits == 0 {
                return Ok(Err(Refusal::ReferrerHasNoVisit));
            }
            if tx.measure(partner, friend.id, i64::MIN).await?.visits > 0 {
                return Ok(Err(Refusal::NotNew));
            }
            if !tx
                .insert_referral(partner, referrer.id, friend.id, now)
                .await?
            {
                return Ok(Err(Refusal::AlreadyReferred));
            }
            Ok::<_, EngineError>(Ok(()))
        })
    }

    /// What a client's link has brought her.
    pub async fn referral_stats(
        &self,
        partner: PartnerId,
        referrer: ClientId,
    ) -> Result<ReferralStats, EngineError> {
        Ok(self.store.referral_stats(partner, referrer).await?)
    }
}

/// Pays or reverses the referral of `friend` for her record `record_key` in its new state:
/// `program` is the record's (the version of the visit's time), `current` the one in force now.
#[allow(clippy::too_many_arguments)]
pub(super) async fn settle_referral(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    program: &Program,
    current: &Program,
    friend: &Client,
    record_key: &str,
    visit: &VisitEvent,
    tell: bool,
    now: i64,
) -> Result<(), EngineError> {
    let Some(mut r) = tx.lock_referral_of(partner, friend.id).await? else {
        return Ok(());
    };
    let came = visit.status == VisitStatus::Came;
    match r.record_key.as_deref() {
        None if came => {
            let Some(rules) = &program.referral else {
                return Ok(());
            };
            let at = visit.visit_at_ms.unwrap_or(now);
            if let Some(cap) = rules.monthly_cap {
                let (from, to) = period_bounds(at, Period::Month, program.utc_offset_minutes)
                    .unwrap_or((at, at));
                let paid = tx
                    .referrals_paid_in(partner, r.referrer_id, from, to)
                    .await?;
                if paid >= i64::from(cap) {
                    return Ok(());
                }
            }
            r.record_key = Some(record_key.to_owned());
            r.qualified_at_ms = Some(at);
            r.friend_points = rules.friend_points.max(Points::ZERO);
            let referrer = client_of(tx, partner, r.referrer_id).await?;
            // The salon's referral triggers add to the inviting client's bonus.
            let level = program.level_of(referrer.level.as_deref()).map(|(_, n)| n);
            let key = format!("referral:{}", r.id);
            let extra =
                fire_referral(tx, partner, program, &referrer, level, &key, tell, now).await?;
            r.referrer_points = rules.referrer_points.max(Points::ZERO) + extra;
            post_both(
                tx, partner, program, &mut r, friend, referrer, true, tell, now,
            )
            .await?;
        }
        Some(key) if key == record_key && !came => {
            let referrer = client_of(tx, partner, r.referrer_id).await?;
            post_both(
                tx, partner, program, &mut r, friend, referrer, false, tell, now,
            )
            .await?;
            r.record_key = None;
            r.qualified_at_ms = None;
            r.friend_points = Points::ZERO;
            r.referrer_points = Points::ZERO;
        }
        _ => return Ok(()),
    }
    tx.save_referral(partner, &r).await?;
    // A program with levels by referrals raises the referrer as soon as one pays (a reversal
    // waits for her review, like every fall).
    if let Some(levels) = &current.levels
        && levels.measure == LevelMeasure::Referrals
        && r.record_key.is_some()
    {
        let referrer = client_of(tx, partner, r.referrer_id).await?;
        let m = tx
            .measure(partner, referrer.id, levels.window_from(now))
            .await?;
        rise(tx, partner, current, &referrer, m, tell, now).await?;
    }
    Ok(())
}

/// Pays (`pay`) or takes back the referral's bonuses on both sides, lower client id first, each
/// under the next `referral:{id}:{n}` key, each side told.
#[allow(clippy::too_many_arguments)]
async fn post_both(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    program: &Program,
    r: &mut Referral,
    friend: &Client,
    referrer: Client,
    pay: bool,
    tell: bool,
    now: i64,
) -> Result<(), EngineError> {
    let mut both = [
        (friend.clone(), r.friend_points, true),
        (referrer, r.referrer_points, false),
    ];
    both.sort_by_key(|(c, _, _)| c.id);
    for (client, points, is_friend) in both {
        if !points.is_positive() {
            continue;
        }
        r.postings += 1;
        let (kind, debit_from, credit_to, reason) = if pay {
            let reason = format!("referral {}", r.id);
            (
                EntryKind::Referral,
                Account::Issued,
                Account::Client(client.id),
                reason,
            )
        } else {
            let reason = format!("referral {}: the visit did not take place", r.id);
            (
                EntryKind::Reversal,
                Account::Client(client.id),
                Account::Issued,
                reason,
            )
        };
        let entry = NewEntry {
            idempotency_key: format!("referral:{}:{}", r.id, r.postings),
            kind,
            debit: debit_from,
            credit: credit_to,
            amount: points,
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
        if tell {
            let note = Notification::Referral {
                points: posting.delta,
                balance: posting.balance,
                friend: is_friend,
            };
            notify(tx, partner, &client, note, now).await?;
        }
    }
    Ok(())
}

/// Whether a record's delivery may touch a referral: the record's program or the current one
/// runs referrals.
pub(super) fn concerns_referrals(record: &Program, current: &Program) -> bool {
    record.referral.is_some() || current.referral.is_some()
}
