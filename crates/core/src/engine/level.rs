//! Levels: a client rises on the visit that crosses a threshold, falls only at the review after
//! the grace period, never below a level set by hand. The rules are in [`crate::level`].

use serde::Serialize;

use super::custom::fire_event;
use super::posting::{client_of, notify, program_of};
use crate::audit::AuditAction;
use crate::custom::When;
use crate::level::{LevelReason, Measure, Progress};
use crate::outbox::Notification;
use crate::store::LevelChange;
use crate::{
    Client, ClientId, Currency, EngineError, LoyaltyEngine, PartnerId, Program, StoreError, StoreTx,
};

/// Reviews made in one pass.
const REVIEW_BATCH: u32 = 500;

/// What a client's level is and what the next needs: for the bot and the CLI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LevelView {
    pub progress: Progress,
    /// The program's currency, for a `paid` measure.
    pub currency: Currency,
    /// The level set by hand, below which she never falls.
    pub floor: Option<String>,
    /// Since when the level holds (reached or last confirmed).
    pub since_ms: Option<i64>,
    /// When it is next reviewed for a fall; `None` at the first level.
    pub review_at_ms: Option<i64>,
}

/// What one pass of reviews did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReviewPass {
    pub reviewed: usize,
    pub fell: usize,
    /// Reviews (or partners) that failed, with why; they are tried again on the next pass.
    pub failed: Vec<(PartnerId, String)>,
}

impl LoyaltyEngine {
    /// The client's level, measure and progress; `None` when the program has no levels. Its
    /// history is [`crate::LevelStore::level_changes`], read only where it is shown.
    pub async fn client_level(
        &self,
        partner: PartnerId,
        client: &Client,
    ) -> Result<Option<LevelView>, EngineError> {
        let program = self.program(partner).await?;
        let Some(levels) = &program.levels else {
            return Ok(None);
        };
        let now = self.clock.now_ms();
        let m = self
            .store
            .client_measure(partner, client.id, levels.window_from(now))
            .await?;
        let at = levels.standing(client.level.as_deref());
        Ok(Some(LevelView {
            progress: Progress::of(levels, at, m),
            currency: program.currency,
            floor: client.level_floor.clone(),
            since_ms: client.level_since_ms,
            review_at_ms: client
                .level
                .as_ref()
                .and(client.level_since_ms)
                .map(|s| s.saturating_add(levels.grace_ms())),
        }))
    }

    /// Sets a floor by hand (`Some(name)`): the client rises to it at once if below, and no
    /// review takes her under it. `None` removes the floor; her level stays until its review.
    /// The audit log and the level's log name this handle's actor.
    pub async fn set_client_level(
        &self,
        partner: PartnerId,
        client_id: ClientId,
        floor: Option<&str>,
    ) -> Result<Client, EngineError> {
        let actor = self.actor.name.as_str();
        in_tx!(self, |tx, now| async {
            let program = program_of(tx, partner).await?;
            let levels = program.levels.as_ref().ok_or(EngineError::NoLevels)?;
            let client = client_of(tx, partner, client_id).await?;
            if let Some(name) = floor {
                levels.find(name)?;
            }
            tx.set_level_floor(partner, client_id, floor).await?;
            let detail = serde_json::json!({
                "client_id": client_id,
                "phone": client.phone.masked(),
                "floor": floor,
            });
            tx.audit(partner, &self.actor, AuditAction::LevelSet, &detail, now)
                .await?;
            let Some(name) = floor else {
                return client_of(tx, partner, client_id).await;
            };
            let wanted = levels.find(name)?;
            let at = levels.standing(client.level.as_deref());
            if wanted > at {
                let m = tx
                    .measure(partner, client_id, levels.window_from(now))
                    .await?;
                let change = Change {
                    reason: LevelReason::Hand,
                    actor: Some(actor),
                    tell: true,
                };
                move_level(tx, partner, &program, &client, wanted, m, change, now).await?;
            }
            client_of(tx, partner, client_id).await
        })
    }

    /// Reviews every client of `partner` whose level has held for the grace period: each takes
    /// the level her measure now supports (never below her floor) and the grace period starts
    /// again. At most one batch per call; the housekeeping pass calls it again.
    pub async fn review_levels(&self, partner: PartnerId) -> Result<ReviewPass, EngineError> {
        let program = self.program(partner).await?;
        let Some(levels) = &program.levels else {
            return Ok(ReviewPass::default());
        };
        let cutoff = self.clock.now_ms().saturating_sub(levels.grace_ms());
        let due = self
            .store
            .level_reviews_due(partner, cutoff, REVIEW_BATCH)
            .await?;
        let mut pass = ReviewPass::default();
        for client in due {
            match self.review_client(partner, client).await {
                Ok(Some(fell)) => {
                    pass.reviewed += 1;
                    pass.fell += usize::from(fell);
                }
                Ok(None) => {}
                Err(e) => pass.failed.push((partner, format!("client {client}: {e}"))),
            }
        }
        Ok(pass)
    }

    /// [`LoyaltyEngine::review_levels`] for every partner with levels; one partner's failure
    /// does not stop the others.
    pub async fn review_levels_everywhere(&self) -> Result<ReviewPass, EngineError> {
        let mut total = ReviewPass::default();
        for partner in self.store.partner_ids().await? {
            match self.review_levels(partner).await {
                Ok(p) => {
                    total.reviewed += p.reviewed;
                    total.fell += p.fell;
                    total.failed.extend(p.failed);
                }
                Err(e) => total.failed.push((partner, e.to_string())),
            }
        }
        Ok(total)
    }

    /// One review; `Some(fell)` when it was due, `None` when another pass got there first.
    async fn review_client(
        &self,
        partner: PartnerId,
        client_id: ClientId,
    ) -> Result<Option<bool>, EngineError> {
        in_tx!(self, |tx, now| async {
            let program = program_of(tx, partner).await?;
            let Some(levels) = &program.levels else {
                return Ok(None);
            };
            let client = client_of(tx, partner, client_id).await?;
            let cutoff = now.saturating_sub(levels.grace_ms());
            if client.level.is_none() || client.level_since_ms.is_some_and(|s| s > cutoff) {
                return Ok(None);
            }
            let m = tx
                .measure(partner, client_id, levels.window_from(now))
                .await?;
            let floor = client
                .level_floor
                .as_deref()
                .and_then(|f| levels.index_of(f))
                .unwrap_or(0);
            let to = levels.supported(m).max(floor);
            let at = levels.standing(client.level.as_deref());
            let change = Change {
                reason: LevelReason::Review,
                actor: None,
                tell: true,
            };
            move_level(tx, partner, &program, &client, to, m, change, now).await?;
            Ok::<_, EngineError>(Some(to < at))
        })
    }
}

/// How a level move is recorded.
pub(super) struct Change<'a> {
    pub reason: LevelReason,
    pub actor: Option<&'a str>,
    /// Tell the client (not for an import of the past).
    pub tell: bool,
}

/// Rises the client to the level `m` supports when that is above hers: called after a visit
/// is applied and the summary refreshed.
pub(super) async fn rise(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    program: &Program,
    client: &Client,
    m: Measure,
    tell: bool,
    now: i64,
) -> Result<(), EngineError> {
    let Some(levels) = &program.levels else {
        return Ok(());
    };
    let to = levels.supported(m);
    if to <= levels.standing(client.level.as_deref()) {
        return Ok(());
    }
    let change = Change {
        reason: LevelReason::Rise,
        actor: None,
        tell,
    };
    move_level(tx, partner, program, client, to, m, change, now).await
}

/// Puts the client at level `to`, holding from `now`; records and tells a change of level and
/// fires the program's triggers on the level reached. A concurrent change is a lost race: the
/// transaction runs again on fresh rows.
#[allow(clippy::too_many_arguments)]
async fn move_level(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    program: &Program,
    client: &Client,
    to: usize,
    m: Measure,
    change: Change<'_>,
    now: i64,
) -> Result<(), EngineError> {
    let Some(levels) = &program.levels else {
        return Ok(());
    };
    let at = levels.standing(client.level.as_deref());
    let (Some(from), Some(tier)) = (levels.tiers.get(at), levels.tiers.get(to)) else {
        return Ok(());
    };
    let stored = (to > 0).then_some(tier.name.as_str());
    let current = client.level.as_deref();
    if !tx
        .set_level(partner, client.id, current, stored, now)
        .await?
    {
        return Err(StoreError::Retryable(format!("client {}'s level moved", client.id)).into());
    }
    if to == at {
        return Ok(());
    }
    let entry = LevelChange {
        client_id: client.id,
        from: current.map(str::to_owned),
        to: stored.map(str::to_owned),
        reason: change.reason,
        measure: levels.value(m),
        actor: change.actor.map(str::to_owned),
        at_ms: now,
    };
    tx.insert_level_change(partner, &entry).await?;
    if change.tell {
        let note = Notification::LevelChanged {
            from: from.name.clone(),
            to: tier.name.clone(),
            rose: to > at,
            cashback: tier.cashback,
            max_redeem_share: tier.max_redeem_share,
        };
        notify(tx, partner, client, note, now).await?;
    }
    if to > at {
        let key = format!("level:{}:{}:{now}", client.id, tier.name);
        let reached = Some(tier.name.as_str());
        let tell = change.tell;
        fire_event(
            tx,
            partner,
            program,
            When::LevelReached,
            client,
            reached,
            &key,
            tell,
            now,
        )
        .await?;
    }
    Ok(())
}
