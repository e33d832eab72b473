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
//! - [`lenient`]: JSON readers for ids, amounts, flags and times sent in more than one shape.
//!
//! [`CallGate`]: loyalty_core::quota::CallGate

pub mod lenient;
mod transport;

pub use transport::{Reply, Transport, http_client, send};
