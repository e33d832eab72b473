//! Campaigns: what a visit is first applied with when it first earns — its ordinal among the
//! client's visits that came, the days since her visit before (for custom triggers), the
//! campaigns that apply and what each limited one reserves.

use super::DAY_MS;
use crate::campaign::{CampaignReward, CampaignUse, Earned, candidates, period_bounds};
use crate::event::VisitStatus;
use crate::{Client, ConnectionId, EngineError, PartnerId, Points, Program, StoreTx, VisitEvent};

/// Fixes a qualifying visit's [`Earned`]: `program` is the record's, at its level;
/// `counted` says whether the store already counts this record among those that came.
#[allow(clippy::too_many_arguments)]
pub(super) async fn first_earned(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    program: &Program,
    visit: &VisitEvent,
    client: &Client,
    level: Option<&str>,
    record_key: &str,
    record: (ConnectionId, &str),
    counted: bool,
    now: i64,
) -> Result<Earned, EngineError> {
    let at = visit.visit_at_ms.unwrap_or(now);
    let needs_ordinal = program
        .campaigns
        .iter()
        .any(|c| matches!(c.reward, CampaignReward::NthVisit { .. }))
        || program.custom_triggers.iter().any(|t| t.counts_visits());
    let ordinal = if needs_ordinal {
        let came = tx.measure(partner, client.id, i64::MIN).await?.visits;
        came + i64::from(!counted)
    } else {
        0
    };
    let since_last_days = if program.custom_triggers.iter().any(|t| t.reads_gap()) {
        let (connection, record_id) = record;
        tx.came_before(partner, client.id, at, connection, record_id)
            .await?
            .map(|before| (at - before).max(0) / DAY_MS)
    } else {
        None
    };
    let mut campaigns = Vec::new();
    for (c, extra) in candidates(program, visit, level, at, ordinal)? {
        let allowance = match &c.limit {
            None => None,
            Some(limit) => {
                let Some((from, to)) = period_bounds(at, limit.per, program.utc_offset_minutes)
                else {
                    continue;
                };
                let used = tx
                    .campaign_used(partner, client.id, &c.name, from, to)
                    .await?;
                let allowance = extra.min(limit.points - used).max(Points::ZERO);
                if !allowance.is_positive() {
                    continue;
                }
                tx.reserve_campaign(partner, client.id, &c.name, record_key, at, allowance)
                    .await?;
                Some(allowance)
            }
        };
        campaigns.push(CampaignUse {
            name: c.name.clone(),
            allowance,
        });
    }
    Ok(Earned {
        ordinal,
        since_last_days,
        campaigns,
    })
}

/// Whether a record in `status` before this delivery is counted among the visits that came.
pub(super) fn counted(status: Option<VisitStatus>) -> bool {
    status == Some(VisitStatus::Came)
}
