//! Who calls: the API key in `Authorization: Bearer <key>`, its salon and scope, and the key's
//! rate limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use loyalty_core::Partner;
use loyalty_core::audit::Capability;
use loyalty_store::{ApiKey, KeyScope};

use super::problem::Problem;
use crate::Dashboard;
use crate::session::token_hash;

/// Every key starts so: a key is told from a password or a token at a glance (and by secret
/// scanners).
pub const KEY_PREFIX: &str = "lb_live_";

/// A new key and its visible prefix (the key's first 16 characters): 32 random bytes as hex
/// after [`KEY_PREFIX`].
pub fn new_key() -> Result<(String, String), getrandom::Error> {
    let key = format!("{KEY_PREFIX}{}", crate::session::new_token()?);
    let prefix = key.chars().take(KEY_PREFIX.len() + 8).collect();
    Ok((key, prefix))
}

/// Why a key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no system randomness: {0}")]
    Randomness(getrandom::Error),
    #[error(transparent)]
    Store(#[from] loyalty_core::StoreError),
}

/// Makes a key of `scope` for the salon, kept by its hash, the audit log naming `actor`:
/// the key itself (shown once) and what is kept of it.
pub async fn issue_key(
    store: &loyalty_store::SqlStore,
    partner: loyalty_core::PartnerId,
    scope: KeyScope,
    actor: &loyalty_core::audit::Actor,
    now_ms: i64,
) -> Result<(String, ApiKey), KeyError> {
    let (key, prefix) = new_key().map_err(KeyError::Randomness)?;
    let made = store
        .create_api_key(partner, &prefix, &token_hash(&key), scope, actor, now_ms)
        .await?;
    Ok((key, made))
}

/// Requests per key: a bucket of `burst` refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

impl Default for RateLimit {
    fn default() -> RateLimit {
        RateLimit {
            per_second: 10.0,
            burst: 20.0,
        }
    }
}

/// The keys' buckets, in this instance's memory.
pub(crate) struct Buckets {
    limit: RateLimit,
    /// key id → (tokens, last refill in ms).
    buckets: Mutex<HashMap<i64, (f64, i64)>>,
}

impl Buckets {
    pub(crate) fn new(limit: RateLimit) -> Buckets {
        Buckets {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from the key's bucket; the seconds to wait when it is empty.
    fn take(&self, key: i64, now_ms: i64) -> Result<(), u64> {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, at) = map.entry(key).or_insert((self.limit.burst, now_ms));
        let elapsed = (now_ms - *at).max(0) as f64 / 1000.0;
        *tokens = (*tokens + elapsed * self.limit.per_second).min(self.limit.burst);
        *at = now_ms;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - *tokens) / self.limit.per_second.max(0.001);
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

/// The caller of a request: a live key, its salon (on a plan with the API), within its rate.
pub struct Caller {
    pub key: ApiKey,
    pub partner: Partner,
}

impl Caller {
    /// Who the audit log names for this key's changes.
    pub fn actor(&self) -> loyalty_core::audit::Actor {
        loyalty_core::audit::Actor::new(format!("api key {}", self.key.prefix), "api")
    }

    /// Refused unless the key may change things.
    pub fn write(&self) -> Result<(), Problem> {
        match self.key.scope {
            KeyScope::Write => Ok(()),
            KeyScope::Read => Err(Problem::new(
                StatusCode::FORBIDDEN,
                "read_only_key",
                "this key may only read; make a write key for changes",
            )),
        }
    }
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
}

impl FromRequestParts<Arc<Dashboard>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        dash: &Arc<Dashboard>,
    ) -> Result<Caller, Problem> {
        let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(unauthorized("send the key as Authorization: Bearer <key>"));
        };
        let Some(key) = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
        else {
            return Err(unauthorized("send the key as Authorization: Bearer <key>"));
        };
        let Some((found, partner)) = dash.store.api_caller(&token_hash(key)).await? else {
            return Err(unauthorized("unknown or revoked key"));
        };
        if !partner.plan.allows(Capability::Api) {
            let plan = Capability::Api.least_plan();
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "plan",
                format!(
                    "the API needs the {} plan; this salon is on {}",
                    plan.as_str(),
                    partner.plan.as_str()
                ),
            ));
        }
        if let Err(wait) = dash.api_buckets.take(found.id, dash.now_ms()) {
            let mut p = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests with this key; retry in {wait} s"),
            );
            p.retry_after = Some(wait);
            return Err(p);
        }
        Ok(Caller {
            key: found,
            partner,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refills_at_its_rate() {
        let b = Buckets::new(RateLimit {
            per_second: 2.0,
            burst: 2.0,
        });
        assert_eq!(b.take(1, 0), Ok(()));
        assert_eq!(b.take(1, 0), Ok(()));
        assert_eq!(b.take(1, 0), Err(1));
        // Another key has its own bucket.
        assert_eq!(b.take(2, 0), Ok(()));
        // Half a second later one more.
        assert_eq!(b.take(1, 500), Ok(()));
        assert_eq!(b.take(1, 500), Err(1));
    }

    #[test]
    fn keys_carry_their_prefix() {
        let (key, prefix) = new_key().unwrap();
        assert!(key.starts_with("lb_live_") && key.len() == 8 + 64);
        assert_eq!(prefix.len(), 16);
        assert!(key.starts_with(&prefix));
    }
}
