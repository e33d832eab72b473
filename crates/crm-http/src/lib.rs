//! # crm-http
//!
//! What the CRM crates' REST clients share, so each crate holds only its CRM's paths, fields
//! and error envelope:
//!
//! - [`send`]: one call through a tower stack — **retry** (idempotent calls only: on the CRM's
//!   rate-limit statuses, 502/503/504 and transport failures; `Retry-After` honoured, else
//!   exponential back-off with jitter) → the connection's [`CallGate`] (the gateway's shared
//!   budget, or a per-process limiter; every attempt counts, a rate-limit answer pauses it) →
//!   **timeout** → reqwest. A create is never retried blindly.
//! - [`Transport`]: those knobs, with the statuses that mean "rate limited" (429 for most
//!   CRMs; Arnica answers 444).
//! - [`TokenStore`]: where a connection's CRM tokens live, saved by compare-and-set so two
//!   instances never write an older token over a newer one.
//! - [`lenient`]: JSON readers for ids, amounts, flags and times sent in more than one shape.
//!
//! [`CallGate`]: loyalty_core::quota::CallGate

pub mod lenient;
mod tokens;
mod transport;

pub use tokens::{MemoryTokens, StoredTokens, TokenStore};
pub use transport::{Reply, Transport, http_client, json_request, send};

use loyalty_core::{Country, Currency};

/// What reading a CRM's payloads needs to know about the company (location, organisation):
/// the payloads carry none of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseContext {
    /// The company's currency: amounts carry none.
    pub currency: Currency,
    /// The company's offset from UTC, for times sent without one (company-local).
    pub utc_offset_minutes: i32,
    /// Where the company is: phones are read as typed there ([`loyalty_core::Phone::parse_crm`]).
    pub country: Country,
}

/// Now, in Unix milliseconds: what a client asks for the time (replaceable in tests).
pub type Clock = std::sync::Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system's clock.
pub fn system_clock() -> Clock {
    std::sync::Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    })
}

/// Whether a webhook's content type is JSON (`application/json`, `…+json`) or not said.
pub fn is_json(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return true };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_types() {
        use super::is_json;
        assert!(is_json(None));
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON; charset=utf-8")));
        assert!(is_json(Some("application/vnd.api.v2+json")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(Some("application/x-www-form-urlencoded")));
    }
}
