//! The platform's request limit within one process: a [`CallGate`] for an embedder or a test
//! without the gateway's shared budget (`loyalty_core::quota`).
//!
//! YCLIENTS allows "200 requests per minute, or 5 requests per second, per IP address". A token
//! bucket would let a burst plus its refill through inside one second (9 requests in some
//! 1-second windows at 5/s), so this is a sliding log: a request may start only when fewer than
//! `limit` requests started within the last `window` (plus a margin of 100 ms for the time between
//! our request leaving and the vendor counting it, late on a loaded machine), for every window.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use loyalty_core::StoreError;
use loyalty_core::quota::CallGate;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// A per-process limiter; clone the `Arc` into every connection's client.
#[derive(Debug)]
pub struct RateLimiter {
    windows: Vec<(Duration, usize)>,
    margin: Duration,
    started: Mutex<VecDeque<Instant>>,
}

impl RateLimiter {
    /// `per_second` requests in any second and `per_minute` in any minute.
    pub fn new(per_second: usize, per_minute: usize) -> RateLimiter {
        RateLimiter {
            windows: vec![
                (Duration::from_secs(1), per_second.max(1)),
                (Duration::from_secs(60), per_minute.max(1)),
            ],
            margin: Duration::from_millis(100),
            started: Mutex::new(VecDeque::new()),
        }
    }

    /// The published YCLIENTS limit: 5 per second, 200 per minute.
    pub fn yclients() -> RateLimiter {
        RateLimiter::new(5, 200)
    }

    /// Waits until a request may start, and counts it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut started = self.started.lock().await;
                let now = Instant::now();
                let longest = self
                    .windows
                    .iter()
                    .map(|(w, _)| *w + self.margin)
                    .max()
                    .unwrap_or_default();
                while started
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= longest)
                {
                    started.pop_front();
                }
                let mut wait = Duration::ZERO;
                for (window, limit) in &self.windows {
                    let window = *window + self.margin;
                    let inside = started
                        .iter()
                        .rev()
                        .take_while(|t| now.duration_since(**t) < window)
                        .count();
                    if inside >= *limit {
                        // The request that must leave the window before another may start.
                        let blocking = started[started.len() - limit];
                        wait = wait.max((blocking + window).saturating_duration_since(now));
                    }
                }
                if wait.is_zero() {
                    started.push_back(now);
                    return;
                }
                wait
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[async_trait]
impl CallGate for RateLimiter {
    async fn acquire(&self) -> Result<(), StoreError> {
        RateLimiter::acquire(self).await;
        Ok(())
    }

    /// One process has nothing to share a pause with: the caller's retry waits it out.
    async fn rate_limited(&self, _retry_after: Option<Duration>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_limit_in_any_window() {
        let limiter = RateLimiter::new(5, 12);
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..30 {
            limiter.acquire().await;
            times.push(start.elapsed());
        }
        for (i, t) in times.iter().enumerate() {
            let in_second = times[i..]
                .iter()
                .take_while(|u| **u - *t < Duration::from_secs(1));
            assert!(in_second.count() <= 5, "{times:?}");
            let in_minute = times[i..]
                .iter()
                .take_while(|u| **u - *t < Duration::from_secs(60));
            assert!(in_minute.count() <= 12, "{times:?}");
        }
        // 12 per minute: the 13th waits for the first to leave the minute window.
        assert!(times[12] >= Duration::from_secs(60));
        assert!(times[12] < Duration::from_millis(60_200));
    }
}
