//! What the contract tests share: the fixtures, a client on a wiremock server, and matchers
//! for YCLIENTS' headers.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use crm_yclients::{Credentials, Flavor, RateLimiter, Transport, YclientsClient, YclientsConfig};
use loyalty_core::Phone;
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Match, Mock, MockServer, Request};

pub const YC_ACCEPT: &str = "application/vnd.yclients.v2+json";
pub const USER_AUTH: &str = "Bearer partner-token, User user-token";

pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../fixtures/yclients/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("JSON fixture")
}

pub fn fast() -> Transport {
    Transport {
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..Transport::default()
    }
}

pub fn client_on(server: &MockServer, flavor: Flavor, credentials: Credentials) -> YclientsClient {
    let mut config = YclientsConfig::new(flavor, "4564");
    config.base_url = Some(server.uri());
    let http = crm_yclients::http_client().expect("http client");
    YclientsClient::new(
        http,
        Arc::new(RateLimiter::new(1_000, 100_000)),
        &config,
        credentials,
    )
    .with_transport(fast())
}

pub fn creds() -> Credentials {
    Credentials {
        partner_token: "partner-token".into(),
        user_token: Some("user-token".into()),
        login: None,
    }
}

pub fn yclients(server: &MockServer) -> YclientsClient {
    client_on(server, Flavor::YCLIENTS, creds())
}

/// The header's raw value, exactly. (wiremock's `header` matcher splits values at commas, and
/// YCLIENTS' `Bearer <partner>, User <user>` is one value with a comma in it.)
pub struct Exactly(pub &'static str, pub &'static str);

impl Match for Exactly {
    fn matches(&self, request: &Request) -> bool {
        let values: Vec<_> = request.headers.get_all(self.0).iter().collect();
        values.len() == 1 && values[0].to_str().ok() == Some(self.1)
    }
}

pub fn phone(p: &str) -> Phone {
    Phone::parse(p, loyalty_core::Country::RU).expect("phone")
}

/// The user-scoped request as YCLIENTS wants it.
pub fn user_call(verb: &str, p: &str) -> wiremock::MockBuilder {
    Mock::given(method(verb))
        .and(path(p))
        .and(Exactly("authorization", USER_AUTH))
        .and(Exactly("accept", YC_ACCEPT))
}
