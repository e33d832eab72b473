//! Events a salon's partners are told of by signed webhooks (issue 18, the Enterprise plan):
//! what each change of the books, a redemption or a level means to a partner's system, and the
//! JSON it gets. The store writes the event in the transaction that makes the change (the
//! outbox pattern), one delivery per endpoint that wants it; the gateway sends them, signed the
//! Standard Webhooks way.

use serde::Serialize;
use serde_json::{Value, json};

use crate::custom::Fired;
use crate::ledger::{Account, EntryKind, NewEntry};
use crate::model::EntryId;
use crate::redemption::{Redemption, RedemptionStatus};
use crate::store::LevelChange;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum EventType {
    /// Points earned: a visit, a bonus, points added by staff (spendable or pending).
    PointsAccrued,
    /// Points taken back: a visit reversed, points written off by staff.
    PointsReversed,
    /// Points past their date.
    PointsExpired,
    RedemptionCreated,
    RedemptionUsed,
    RedemptionCancelled,
    /// Unused past its date: the points came back.
    RedemptionExpired,
    /// The CRM refused the reward: the points came back.
    RedemptionFailed,
    ClientLevelChanged,
    /// A referral paid its bonus.
    ReferralRewarded,
    /// One of the salon's custom triggers with a webhook action fired.
    TriggerFired,
    /// A client linked Telegram: the salon can reach her there now.
    ClientLinked,
    /// A reminder or a custom trigger's message went out to a client.
    EngagementSent,
}

impl EventType {
    pub const ALL: [EventType; 13] = [
        EventType::PointsAccrued,
        EventType::PointsReversed,
        EventType::PointsExpired,
        EventType::RedemptionCreated,
        EventType::RedemptionUsed,
        EventType::RedemptionCancelled,
        EventType::RedemptionExpired,
        EventType::RedemptionFailed,
        EventType::ClientLevelChanged,
        EventType::ReferralRewarded,
        EventType::TriggerFired,
        EventType::ClientLinked,
        EventType::EngagementSent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PointsAccrued => "points.accrued",
            EventType::PointsReversed => "points.reversed",
            EventType::PointsExpired => "points.expired",
            EventType::RedemptionCreated => "redemption.created",
            EventType::RedemptionUsed => "redemption.used",
            EventType::RedemptionCancelled => "redemption.cancelled",
            EventType::RedemptionExpired => "redemption.expired",
            EventType::RedemptionFailed => "redemption.failed",
            EventType::ClientLevelChanged => "client.level_changed",
            EventType::ReferralRewarded => "referral.rewarded",
            EventType::TriggerFired => "trigger.fired",
            EventType::ClientLinked => "client.linked",
            EventType::EngagementSent => "engagement.sent",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// One event: its type and what a partner's system needs of it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartnerEvent {
    pub kind: EventType,
    pub data: Value,
}

impl PartnerEvent {
    /// The body sent: `{"type", "created_at_ms", "data"}`.
    pub fn body(&self, created_at_ms: i64) -> Value {
        json!({
            "type": self.kind.as_str(),
            "created_at_ms": created_at_ms,
            "data": self.data,
        })
    }

    /// What a ledger entry tells partners: points earned, taken back or expired (and a
    /// referral's bonus); holds and maturing are told as redemptions or not at all.
    pub fn of_entry(entry: &NewEntry, id: EntryId) -> Vec<PartnerEvent> {
        let client = entry.client_id;
        let delta = |own: Account| {
            if entry.credit == own {
                entry.amount.0
            } else if entry.debit == own {
                -entry.amount.0
            } else {
                0
            }
        };
        let points = delta(Account::Client(client));
        let pending = delta(Account::Pending(client));
        let kind = match entry.kind {
            EntryKind::Accrual
            | EntryKind::ManualAccrual
            | EntryKind::Welcome
            | EntryKind::Birthday
            | EntryKind::Referral
            | EntryKind::Offer
            | EntryKind::Trigger => EventType::PointsAccrued,
            EntryKind::Reversal | EntryKind::ManualDebit => EventType::PointsReversed,
            EntryKind::Expiry => EventType::PointsExpired,
            EntryKind::Matured | EntryKind::Hold | EntryKind::HoldPost | EntryKind::HoldVoid => {
                return Vec::new();
            }
        };
        let data = json!({
            "entry_id": id.0,
            "client_id": client.0,
            "kind": entry.kind.as_str(),
            "points": points,
            "pending": pending,
            "reason": entry.reason,
            "reverses": entry.reverses.map(|r| r.0),
        });
        let mut events = vec![PartnerEvent {
            kind,
            data: data.clone(),
        }];
        if entry.kind == EntryKind::Referral {
            events.push(PartnerEvent {
                kind: EventType::ReferralRewarded,
                data,
            });
        }
        events
    }

    /// A redemption made, or moved to `status`.
    pub fn of_redemption(r: &Redemption, status: RedemptionStatus) -> Option<PartnerEvent> {
        let kind = match status {
            RedemptionStatus::Pending | RedemptionStatus::Issued => EventType::RedemptionCreated,
            RedemptionStatus::Used => EventType::RedemptionUsed,
            RedemptionStatus::Cancelled => EventType::RedemptionCancelled,
            RedemptionStatus::Expired => EventType::RedemptionExpired,
            RedemptionStatus::Failed => EventType::RedemptionFailed,
        };
        Some(PartnerEvent {
            kind,
            data: json!({
                "redemption_id": r.id,
                "client_id": r.client_id.0,
                "reward_id": r.reward_id.0,
                "code": r.code.to_string(),
                "status": status.as_str(),
                "points": r.cost.0,
                "strategy": r.strategy.as_str(),
            }),
        })
    }

    /// A custom trigger fired: which, for what event and client, and its points then.
    pub fn of_fired(f: &Fired) -> PartnerEvent {
        PartnerEvent {
            kind: EventType::TriggerFired,
            data: json!({
                "trigger": f.trigger,
                "event": f.when.as_str(),
                "event_key": f.event_key,
                "client_id": f.client_id.0,
                "points": f.points.0,
                "record_id": f.record_id,
                "message": f.message.is_some(),
            }),
        }
    }

    /// A client linked a Telegram chat (through the deployment's bot or the salon's own).
    pub fn of_linked(client: crate::ClientId) -> PartnerEvent {
        PartnerEvent {
            kind: EventType::ClientLinked,
            data: json!({"client_id": client.0, "channel": "telegram"}),
        }
    }

    /// A marketing message went out: which trigger (`custom` for a custom trigger's), for
    /// which occurrence, by which channel, with a personal offer or not.
    pub fn of_engagement(
        client: crate::ClientId,
        trigger: &str,
        cycle: &str,
        channel: &str,
        offer: bool,
    ) -> PartnerEvent {
        PartnerEvent {
            kind: EventType::EngagementSent,
            data: json!({
                "client_id": client.0,
                "trigger": trigger,
                "cycle": cycle,
                "channel": channel,
                "offer": offer,
            }),
        }
    }

    /// A client's level moved.
    pub fn of_level(change: &LevelChange) -> PartnerEvent {
        PartnerEvent {
            kind: EventType::ClientLevelChanged,
            data: json!({
                "client_id": change.client_id.0,
                "from": change.from,
                "to": change.to,
                "measure": change.measure,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientId, Points};

    fn entry(kind: EntryKind, debit: Account, credit: Account) -> NewEntry {
        NewEntry {
            idempotency_key: "k".into(),
            kind,
            debit,
            credit,
            amount: Points(40),
            client_id: ClientId(7),
            reverses: None,
            reason: None,
        }
    }

    #[test]
    fn entries_tell_what_they_did_to_the_client() {
        let c = Account::Client(ClientId(7));
        let accrued =
            PartnerEvent::of_entry(&entry(EntryKind::Accrual, Account::Issued, c), EntryId(3));
        assert_eq!(accrued.len(), 1);
        assert_eq!(accrued[0].kind, EventType::PointsAccrued);
        assert_eq!(accrued[0].data["points"], 40);
        let pending = PartnerEvent::of_entry(
            &entry(
                EntryKind::Accrual,
                Account::Issued,
                Account::Pending(ClientId(7)),
            ),
            EntryId(4),
        );
        assert_eq!(
            (
                pending[0].data["points"].as_i64(),
                pending[0].data["pending"].as_i64()
            ),
            (Some(0), Some(40))
        );
        let reversed =
            PartnerEvent::of_entry(&entry(EntryKind::Reversal, c, Account::Issued), EntryId(5));
        assert_eq!(
            (reversed[0].kind, reversed[0].data["points"].as_i64()),
            (EventType::PointsReversed, Some(-40))
        );
        let referral =
            PartnerEvent::of_entry(&entry(EntryKind::Referral, Account::Issued, c), EntryId(6));
        assert_eq!(
            referral.iter().map(|e| e.kind).collect::<Vec<_>>(),
            [EventType::PointsAccrued, EventType::ReferralRewarded]
        );
        assert!(
            PartnerEvent::of_entry(&entry(EntryKind::Hold, c, Account::Issued), EntryId(8))
                .is_empty()
        );
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
    }
}
