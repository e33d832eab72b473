//! One fair budget per CRM egress.
//!
//! YCLIENTS limits requests per IP address (5 a second and 200 a minute), not per token, so
//! every connection of a deployment, and every gateway instance behind that address, shares
//! one budget. The budget is kept in the database ([`QuotaStore`]): each call taken is a row,
//! a call may start only while every window has room, and who goes next is decided there
//! among the waiters of all instances: the most urgent [`Priority`] first, and within one, the
//! connection served longest ago (round robin), so one salon importing two years of history
//! does not starve another's live webhooks. A 429 pauses the whole budget for its
//! `Retry-After`.
//!
//! An adapter's HTTP client asks its [`CallGate`] before each attempt; the gateway's gates are
//! bound to a budget, a connection and a priority.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::model::ConnectionId;
use crate::store::StoreError;

/// How urgent a CRM call is; lower goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// A webhook's delivery waiting in the inbox: a client's points.
    Live = 0,
    /// A reward being written into the CRM.
    WriteBack = 1,
    /// The reconciliation poller.
    Poll = 2,
    /// History import and other bulk reads.
    Import = 3,
}

impl Priority {
    pub fn as_i16(self) -> i16 {
        self as i16
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Live => "live",
            Priority::WriteBack => "write_back",
            Priority::Poll => "poll",
            Priority::Import => "import",
        }
    }
}

/// What an adapter's HTTP client asks before each request it sends.
#[async_trait]
pub trait CallGate: Send + Sync {
    /// Waits until a request may start; the request is then counted.
    async fn acquire(&self) -> Result<(), StoreError>;

    /// The CRM answered 429: the whole budget waits `retry_after` (or a second).
    async fn rate_limited(&self, retry_after: Option<Duration>);
}

/// A vendor's limits: at most `count` requests start within any `window_ms`, for every window,
/// counted with `margin_ms` more per window (our request and the vendor's count of it are not
/// at the same instant).
///
/// `reserve` calls of the longest window are kept for urgent work ([`Priority::Live`] and
/// [`Priority::WriteBack`]): the poller and imports stop short of them, so a webhook waiting
/// for the CRM never waits for a whole window an import filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub windows: Vec<(i64, u32)>,
    pub margin_ms: i64,
    pub reserve: u32,
}

impl Limits {
    /// YCLIENTS' published limit: 5 a second, 200 a minute (Altegio publishes none; assumed
    /// the same).
    pub fn yclients() -> Limits {
        Limits {
            windows: vec![(1_000, 5), (60_000, 200)],
            margin_ms: 100,
            // 4 % of the minute: imports and the poller get 192 calls a minute at most.
            reserve: 8,
        }
    }

    /// Arnica's (SQNS support, 2026-06): 15 a second and 900 a minute; over it HTTP 444.
    pub fn arnica() -> Limits {
        Limits {
            windows: vec![(1_000, 15), (60_000, 900)],
            margin_ms: 100,
            // 4 % of the minute, as for YCLIENTS.
            reserve: 36,
        }
    }

    /// Beauty Pro's (the AI Helps API): "up to 100 requests per second from one IP"; no
    /// longer window is published. A tenth of a second's margin, a few calls kept urgent.
    pub fn beautypro() -> Limits {
        Limits {
            windows: vec![(1_000, 100)],
            margin_ms: 100,
            reserve: 4,
        }
    }

    /// The published limits of a CRM's API (YCLIENTS' for the CRMs without one).
    pub fn of(kind: crate::CrmKind) -> Limits {
        match kind {
            crate::CrmKind::Arnica => Limits::arnica(),
            crate::CrmKind::Beautypro => Limits::beautypro(),
            _ => Limits::yclients(),
        }
    }

    /// Calls a minute the limits allow: the tightest window, scaled to a minute.
    pub fn per_minute(&self) -> u32 {
        self.windows
            .iter()
            .filter(|(w, _)| *w > 0)
            .map(|(w, c)| u64::from(*c) * 60_000 / u64::try_from(*w).unwrap_or(1))
            .min()
            .map_or(u32::MAX, |m| u32::try_from(m).unwrap_or(u32::MAX))
    }

    /// The shortest even spacing of calls the limits allow (200 ms for 5 a second).
    pub fn spacing_ms(&self) -> i64 {
        self.windows
            .iter()
            .map(|(w, c)| w / i64::from((*c).max(1)))
            .max()
            .unwrap_or(0)
            .max(1)
    }

    /// The longest window, margin included: older calls never matter.
    pub fn horizon_ms(&self) -> i64 {
        self.windows.iter().map(|(w, _)| *w).max().unwrap_or(0) + self.margin_ms
    }

    /// When an urgent call may start, given the start times of the calls within the horizon
    /// (any order): `now` when every window has room, else the earliest time one does.
    pub fn next_start(&self, calls: &[i64], now_ms: i64) -> i64 {
        self.next_start_for(Priority::Live, calls, now_ms)
    }

    /// [`Limits::next_start`] for a call of `priority`: below write-backs, the longest
    /// window's reserve is not theirs.
    pub fn next_start_for(&self, priority: Priority, calls: &[i64], now_ms: i64) -> i64 {
        let mut sorted: Vec<i64> = calls.to_vec();
        sorted.sort_unstable();
        let longest = self.windows.iter().map(|(w, _)| *w).max().unwrap_or(0);
        let mut at = now_ms;
        for &(window, count) in &self.windows {
            let count = if window == longest && priority > Priority::WriteBack {
                count.saturating_sub(self.reserve)
            } else {
                count
            };
            let window = window + self.margin_ms;
            let count = count.max(1) as usize;
            let inside: Vec<i64> = sorted
                .iter()
                .copied()
                .filter(|t| now_ms - *t < window)
                .collect();
            if inside.len() >= count {
                // The call that must leave the window before another may start.
                let blocking = inside[inside.len() - count];
                at = at.max(blocking + window);
            }
        }
        at
    }
}

/// What the budget says to a waiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// The call is counted; go.
    Go,
    /// Not yet: ask again in this many milliseconds (or sooner).
    Wait { ms: i64 },
}

/// The shared budget's rows, beside [`crate::Store`].
#[async_trait]
pub trait QuotaStore: Send + Sync {
    /// Queues a waiter for `budget`; returns its id.
    async fn join_budget(
        &self,
        budget: &str,
        priority: Priority,
        connection: Option<ConnectionId>,
        now_ms: i64,
    ) -> Result<i64, StoreError>;

    /// Whether the waiter may start its call now. Decided in one serialized transaction per
    /// budget: a paused budget waits; a full window waits until room; otherwise the first
    /// waiter by priority, then by the time its connection was last served, then by arrival,
    /// goes (its call is recorded and it leaves the queue). Waiters not heard from for
    /// `stale_ms` (an instance that died) are dropped; asking again keeps a waiter alive.
    async fn try_grant(
        &self,
        budget: &str,
        waiter: i64,
        limits: &Limits,
        now_ms: i64,
        stale_ms: i64,
    ) -> Result<Grant, StoreError>;

    /// Leaves the queue without a call (the caller gave up).
    async fn leave_budget(&self, waiter: i64) -> Result<(), StoreError>;

    /// Pauses the whole budget until `until_ms` (a 429).
    async fn pause_budget(&self, budget: &str, until_ms: i64) -> Result<(), StoreError>;

    /// The calls started within the last `window_ms`, as (start, connection, priority): what
    /// `sync status` and the tests read.
    async fn budget_calls(
        &self,
        budget: &str,
        since_ms: i64,
    ) -> Result<Vec<(i64, Option<ConnectionId>, i16)>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_start_honours_every_window() {
        let limits = Limits {
            windows: vec![(1_000, 2), (10_000, 3)],
            margin_ms: 0,
            reserve: 1,
        };
        assert_eq!(limits.next_start(&[], 5_000), 5_000);
        // Two in the last second: the older must leave it.
        assert_eq!(limits.next_start(&[4_500, 4_800], 5_000), 5_500);
        // Three in the last ten seconds: the first of them must leave.
        assert_eq!(limits.next_start(&[1_000, 2_000, 3_000], 5_000), 11_000);
        // Old calls do not count.
        assert_eq!(limits.next_start(&[-20_000, 1_000], 5_000), 5_000);
        let margin = Limits {
            margin_ms: 100,
            ..limits
        };
        assert_eq!(margin.next_start(&[4_500, 4_800], 5_000), 5_600);
        // Two in the last ten seconds: an urgent call may start, an import must wait for the
        // first to leave (one of the three is kept for urgent work).
        let two = [1_000, 3_000];
        assert_eq!(
            margin.next_start_for(Priority::WriteBack, &two, 5_000),
            5_000
        );
        assert_eq!(margin.next_start_for(Priority::Poll, &two, 5_000), 11_100);
        assert_eq!(margin.next_start_for(Priority::Import, &two, 5_000), 11_100);
        assert_eq!(Limits::yclients().horizon_ms(), 60_100);
    }
}
