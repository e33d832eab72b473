//! Custom triggers in the engine's transactions (the rules are in [`crate::custom`]): a visit's
//! triggers add to its points through its target and fire their side effects once per record;
//! a birthday's and a level's post their bonus under a key of the trigger and the event; a
//! referral's add to the inviting client's bonus, so a referral reversed takes them back too.

use super::posting::{credit, notify};
use crate::audit::{Capability, Plan};
use crate::custom::{CustomTrigger, Fired, TriggerMessage, VisitContext, When};
use crate::ledger::{Account, EntryKind, NewEntry};
use crate::outbox::Notification;
use crate::{Client, EngineError, PartnerId, Points, Program, StoreTx, VisitEvent};

/// Whether the salon's plan serves custom triggers; read only for a program that has some.
pub(super) async fn triggers_allowed(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    program: &Program,
) -> Result<bool, EngineError> {
    if program.custom_triggers.is_empty() {
        return Ok(false);
    }
    let plan: Plan = tx.plan(partner).await?;
    Ok(plan.allows(Capability::CustomTriggers))
}

/// Whether the program has triggers on visits (the record's [`crate::campaign::Earned`] is
/// then fixed when it first earns).
pub(super) fn on_visits(program: &Program) -> bool {
    program
        .custom_triggers
        .iter()
        .any(|t| t.when == When::Visit)
}

/// Records each visit trigger that holds for the visit's current state, once per record: its
/// message goes to the delivery policy and its webhook is owed, when `tell` (never for an
/// import of the past, which records it as fired and sends nothing).
#[allow(clippy::too_many_arguments)]
pub(super) async fn fire_visit(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    program: &Program,
    visit: &VisitEvent,
    client: &Client,
    record_key: &str,
    cx: VisitContext<'_>,
    tell: bool,
    now: i64,
) -> Result<(), EngineError> {
    for t in program
        .custom_triggers
        .iter()
        .filter(|t| t.when == When::Visit)
    {
        if !t.holds_for_visit(program, visit, cx)? {
            continue;
        }
        let fired = Fired {
            trigger: t.name.clone(),
            when: When::Visit,
            event_key: record_key.to_owned(),
            client_id: client.id,
            points: t.visit_points(program, visit, cx)?,
            message: message(t, tell, cx.level, visit.staff_name.as_deref()),
            webhook: tell && t.webhook(),
            record_id: Some(visit.record_id.clone()),
        };
        tx.fire_trigger(partner, &fired, now).await?;
    }
    Ok(())
}

/// Fires the triggers on `when` (a birthday, a level reached) that hold for the client at
/// `level` (for a level reached: the level), each once for `event_key`: a bonus credited under
/// `trigger:{name}:{event_key}` and told, a message queued, a webhook owed.
#[allow(clippy::too_many_arguments)]
pub(super) async fn fire_event(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    program: &Program,
    when: When,
    client: &Client,
    level: Option<&str>,
    event_key: &str,
    tell: bool,
    now: i64,
) -> Result<(), EngineError> {
    if !triggers_allowed(tx, partner, program).await? {
        return Ok(());
    }
    for t in &program.custom_triggers {
        if !t.holds_for(when, level) {
            continue;
        }
        let bonus = t.bonus();
        let fired = Fired {
            trigger: t.name.clone(),
            when,
            event_key: event_key.to_owned(),
            client_id: client.id,
            points: bonus,
            message: message(t, tell, level, None),
            webhook: tell && t.webhook(),
            record_id: None,
        };
        if !tx.fire_trigger(partner, &fired, now).await? || !bonus.is_positive() {
            continue;
        }
        let balance = tx.lock_balance(partner, client.id).await?;
        let entry = NewEntry {
            idempotency_key: format!("trigger:{}:{event_key}", t.name),
            kind: EntryKind::Trigger,
            debit: Account::Issued,
            credit: Account::Client(client.id),
            amount: bonus,
            client_id: client.id,
            reverses: None,
            reason: Some(t.name.clone()),
        };
        let posting = credit(tx, partner, program, &entry, balance, None, now).await?;
        if tell {
            let note = Notification::Manual {
                points: posting.delta,
                balance: posting.balance,
                reason: t.name.clone(),
            };
            notify(tx, partner, client, note, now).await?;
        }
    }
    Ok(())
}

/// The referral triggers that hold for the inviting client at `level`: their bonus, added to
/// hers (paid and taken back with it), and each recorded as fired for `event_key`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn fire_referral(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    program: &Program,
    referrer: &Client,
    level: Option<&str>,
    event_key: &str,
    tell: bool,
    now: i64,
) -> Result<Points, EngineError> {
    if !triggers_allowed(tx, partner, program).await? {
        return Ok(Points::ZERO);
    }
    let mut total = Points::ZERO;
    for t in &program.custom_triggers {
        if !t.holds_for(When::ReferralRewarded, level) {
            continue;
        }
        let fired = Fired {
            trigger: t.name.clone(),
            when: When::ReferralRewarded,
            event_key: event_key.to_owned(),
            client_id: referrer.id,
            points: t.bonus(),
            message: message(t, tell, level, None),
            webhook: tell && t.webhook(),
            record_id: None,
        };
        // A referral paid again after a reversal earns the bonus again (it was taken back);
        // its message and webhook went out the first time.
        tx.fire_trigger(partner, &fired, now).await?;
        total += t.bonus();
    }
    Ok(total)
}

fn message(
    t: &CustomTrigger,
    tell: bool,
    level: Option<&str>,
    master: Option<&str>,
) -> Option<TriggerMessage> {
    let text = t.message().filter(|_| tell)?;
    Some(TriggerMessage {
        text: text.clone(),
        level: level.map(str::to_owned),
        master: master.map(str::to_owned),
    })
}
