//! Sign-in attempts limited per account and per address, in this instance's memory: a fixed
//! window of failures each. A success clears the account's count. Checked before the password
//! is hashed, so a flood costs no argon2 time.

use std::collections::HashMap;
use std::sync::Mutex;

/// Failures allowed within a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub per_account: u32,
    pub per_address: u32,
    pub window_ms: i64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            per_account: 5,
            per_address: 20,
            window_ms: 15 * 60 * 1000,
        }
    }
}

/// Keys kept before old windows are swept.
const SWEEP_AT: usize = 10_000;

pub struct LoginLimiter {
    limits: Limits,
    /// key → (window start, failures in it).
    failures: Mutex<HashMap<String, (i64, u32)>>,
}

impl LoginLimiter {
    pub fn new(limits: Limits) -> LoginLimiter {
        LoginLimiter {
            limits,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until the account or the address may try again; `None` when it may now.
    pub fn blocked(&self, account: &str, address: &str, now_ms: i64) -> Option<u64> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let wait = |key: String, max: u32| {
            map.get(&key).and_then(|(start, n)| {
                let ends = start + self.limits.window_ms;
                (*n >= max && now_ms < ends).then(|| ((ends - now_ms + 999) / 1000) as u64)
            })
        };
        let a = wait(format!("a:{account}"), self.limits.per_account);
        let b = wait(format!("i:{address}"), self.limits.per_address);
        a.max(b)
    }

    pub fn failed(&self, account: &str, address: &str, now_ms: i64) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= SWEEP_AT {
            let window = self.limits.window_ms;
            map.retain(|_, (start, _)| now_ms < *start + window);
        }
        for key in [format!("a:{account}"), format!("i:{address}")] {
            let entry = map.entry(key).or_insert((now_ms, 0));
            if now_ms >= entry.0 + self.limits.window_ms {
                *entry = (now_ms, 0);
            }
            entry.1 += 1;
        }
    }

    pub fn succeeded(&self, account: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&format!("a:{account}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_and_an_address_are_each_held_to_their_window() {
        let l = LoginLimiter::new(Limits {
            per_account: 2,
            per_address: 3,
            window_ms: 10_000,
        });
        l.failed("anna", "1.2.3.4", 0);
        assert_eq!(l.blocked("anna", "1.2.3.4", 1), None);
        l.failed("anna", "1.2.3.4", 1_000);
        assert_eq!(l.blocked("anna", "5.6.7.8", 2_000), Some(8), "the account");
        assert_eq!(l.blocked("olga", "1.2.3.4", 2_000), None);
        l.failed("olga", "1.2.3.4", 2_000);
        assert_eq!(l.blocked("olga", "1.2.3.4", 2_000), Some(8), "the address");
        assert_eq!(l.blocked("olga", "9.9.9.9", 2_000), None);
        assert_eq!(
            l.blocked("anna", "5.6.7.8", 10_000),
            None,
            "the window ended"
        );
        l.succeeded("olga");
        assert_eq!(l.blocked("olga", "9.9.9.9", 3_000), None);
    }
}
