//! # crm-altegio
//!
//! Altegio (alteg.io) is the international edition of the YCLIENTS platform: the same paths,
//! fields and webhooks, with its own base URL (`https://api.alteg.io/api/v1`) and `Accept`
//! header (`application/vnd.api.v2+json`), and locations in many currencies and time zones. This
//! crate is that configuration of `crm-yclients`; no code is copied.

use std::sync::Arc;

pub use crm_yclients::{
    Credentials, Flavor, ParseContext, RateLimiter, YclientsAdapter as AltegioAdapter,
    YclientsClient as AltegioClient, YclientsConfig as AltegioConfig, http_client,
};
use loyalty_core::Currency;

/// An Altegio location: its id, currency and offset from UTC (Altegio payloads carry neither).
pub fn config(
    location_id: impl Into<String>,
    currency: Currency,
    utc_offset_minutes: i32,
) -> AltegioConfig {
    let mut config = AltegioConfig::new(Flavor::ALTEGIO, location_id);
    config.context = ParseContext {
        currency,
        utc_offset_minutes,
        country: config.context.country,
    };
    config
}

/// The adapter for one location, with API access.
pub fn adapter(
    config: AltegioConfig,
    http: reqwest::Client,
    gate: Arc<dyn loyalty_core::quota::CallGate>,
    credentials: Credentials,
) -> AltegioAdapter {
    AltegioAdapter::with_api(config, http, gate, credentials)
}
