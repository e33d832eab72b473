//! What the Arnica tests share: fixtures, the adapter on a stand-in, the login.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use crm_arnica::{ArnicaAdapter, ArnicaConfig, Credentials};
use crm_http::Transport;
use serde_json::Value;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJvcmdJZCI6Nzc4MX0.c2lnbmF0dXJl";
pub const BEARER: &str = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJvcmdJZCI6Nzc4MX0.c2lnbmF0dXJl";

pub fn fixture(name: &str) -> Value {
    serde_json::from_slice(&raw(name)).expect("JSON fixture")
}

pub fn raw(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../fixtures/arnica/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).expect("fixture")
}

pub fn credentials() -> Credentials {
    Credentials {
        email: "integrator@salon.example".into(),
        password: "s3cret".into(),
    }
}

pub fn fast() -> Transport {
    Transport {
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..Transport::default()
    }
}

/// The adapter for organisation 7781 on the stand-in, its clock at `now_ms`.
pub fn adapter(server_uri: &str, transport: Transport, now_ms: i64) -> ArnicaAdapter {
    let mut config = ArnicaConfig::new("7781");
    config.base_url = server_uri.to_owned();
    ArnicaAdapter::with_api(
        config,
        crm_http::http_client().expect("http client"),
        Arc::new(crm_yclients::RateLimiter::new(1_000, 100_000)),
        credentials(),
    )
    .with_transport(transport)
    .with_clock(Arc::new(move || now_ms))
}

/// `POST /api/v2/auth` with the integrator's e-mail and password, answered with the JWT.
pub async fn mount_login(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/api/v2/auth"))
        .and(header("content-type", "application/json"))
        .and(body_json(serde_json::json!({
            "email": "integrator@salon.example",
            "password": "s3cret"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("auth.json")))
        .mount(server)
        .await;
}
