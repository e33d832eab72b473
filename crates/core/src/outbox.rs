//! Notifications enqueued in the same transaction as the points they announce.

use serde::{Deserialize, Serialize};

use crate::model::{ClientId, PartnerId};
use crate::money::{Bps, Currency, Points};
use crate::redemption::Strategy;

/// What a client is told. Rendered into a message by the Telegram crate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notification {
    /// Points for a visit (or more points after its amount went up).
    Accrued {
        points: Points,
        paid_minor: i64,
        currency: Currency,
        balance: Points,
        record_id: String,
        /// Pending until then (the program's refund window); `None`: spendable at once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pending_until_ms: Option<i64>,
    },
    /// A visit's points taken back. `unbacked` of them had already been spent: the client
    /// now owes them and future accruals repay the debt.
    Reversed {
        points: Points,
        unbacked: Points,
        balance: Points,
        record_id: String,
        reason: String,
    },
    /// Staff added or wrote off points.
    Manual {
        points: Points,
        balance: Points,
        reason: String,
    },
    Welcome {
        points: Points,
        balance: Points,
    },
    Expired {
        points: Points,
        balance: Points,
    },
    /// A referral's bonus (negative: taken back, the visit did not take place), to the friend
    /// (`friend`) or to the client who invited her.
    Referral {
        points: Points,
        balance: Points,
        friend: bool,
    },
    /// A personal offer's benefit for a visit (negative: taken back, the visit no longer meets
    /// it).
    Offer {
        points: Points,
        balance: Points,
    },
    /// Pending points past the refund window: spendable now.
    Matured {
        points: Points,
        balance: Points,
    },
    /// Birthday points, usable until `expires_at_ms`.
    Birthday {
        points: Points,
        balance: Points,
        expires_at_ms: i64,
    },
    /// A redemption's reward is in the CRM: a certificate with the code, or money on the
    /// client's loyalty card.
    RewardReady {
        title: String,
        code: String,
        strategy: Strategy,
        value_minor: i64,
        currency: Currency,
        expires_at_ms: i64,
    },
    /// The CRM did not take the reward: the points are back.
    RewardFailed {
        title: String,
        points: Points,
        balance: Points,
    },
    /// The client's level changed: risen on a visit or by hand, or lower after a review.
    LevelChanged {
        from: String,
        to: String,
        rose: bool,
        cashback: Bps,
        max_redeem_share: Bps,
    },
}

/// A message to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutbox {
    pub client_id: ClientId,
    /// Messages with one key go out in order, one at a time.
    pub partition_key: String,
    pub notification: Notification,
    pub run_at_ms: i64,
}

impl NewOutbox {
    /// A notification for one client, due now; the client's messages keep their order.
    pub fn for_client(client_id: ClientId, notification: Notification, now_ms: i64) -> NewOutbox {
        NewOutbox {
            client_id,
            partition_key: format!("client:{client_id}"),
            notification,
            run_at_ms: now_ms,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    Pending,
    Sent,
    Dead,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxStatus> {
        match s {
            "pending" => Some(OutboxStatus::Pending),
            "sent" => Some(OutboxStatus::Sent),
            "dead" => Some(OutboxStatus::Dead),
            _ => None,
        }
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxMessage {
    pub id: i64,
    pub partner_id: PartnerId,
    pub client_id: ClientId,
    pub partition_key: String,
    pub notification: Notification,
    pub status: OutboxStatus,
    /// Delivery attempts started so far (a claim counts as one).
    pub attempts: i32,
    pub run_at_ms: i64,
    pub last_error: Option<String>,
}

/// Waits between attempts: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; then dead letters.
pub const BACKOFF_MS: [i64; 7] = [
    5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000,
];

/// When to try a message again after its `attempts`-th attempt failed; `None`: give up.
pub fn retry_at(attempts: i32, now_ms: i64) -> Option<i64> {
    let idx = usize::try_from(attempts.max(1) - 1).ok()?;
    BACKOFF_MS.get(idx).map(|wait| now_ms + wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_schedule_then_dead_letter() {
        assert_eq!(retry_at(1, 0), Some(5_000));
        assert_eq!(retry_at(2, 0), Some(300_000));
        assert_eq!(retry_at(7, 1), Some(36_000_001));
        assert_eq!(retry_at(8, 0), None);
    }

    #[test]
    fn notification_json_is_tagged() {
        let n = Notification::Welcome {
            points: Points(100),
            balance: Points(100),
        };
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(json, r#"{"kind":"welcome","points":100,"balance":100}"#);
        assert_eq!(serde_json::from_str::<Notification>(&json).unwrap(), n);
    }
}
