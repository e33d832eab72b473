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
pub use transport::{Reply, Transport, http_client, send};

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
