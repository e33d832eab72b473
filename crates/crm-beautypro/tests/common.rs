//! What the Beauty Pro tests share: fixtures, the adapter on a stand-in with its tokens kept
//! in memory (as the gateway keeps them in the database).
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use crm_beautypro::{BeautyProAdapter, BeautyProConfig, Credentials};
use crm_http::{MemoryTokens, TokenStore, Transport};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const APP_ID: &str = "a47cbc05-5ce6-4551-9456-2855b52a17f0";
pub const APP_SECRET: &str = "a3db644a-907a-4da2-bcdd-bc9f7068237d";
pub const ACCESS: &str = "a71923bd-84c5-49a3-a7fb-a0825e26bbe4";
pub const REFRESH: &str = "f9e96585-856f-4b48-95ca-9511c0ba5576";
pub const NEW_ACCESS: &str = "d075dde6-7c91-4fc0-b1dd-b75b9c99a2f5";
pub const NEW_REFRESH: &str = "13baeeb8-ebe7-4751-86a6-5c960bfe1776";
pub const APPT: &str = "3f6a2c1e-8b4d-4e2a-9c7f-1d2e3f4a5b6c";
pub const CLIENT: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
/// 2026-12-03 10:00 UTC: the fixtures' first token lives until the 4th, 10:00.
pub const NOW: i64 = 1_796_292_000_000;

pub fn fixture(name: &str) -> Value {
    serde_json::from_slice(&raw(name)).expect("JSON fixture")
}

pub fn raw(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../fixtures/beautypro/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).expect("fixture")
}

pub fn fast() -> Transport {
    Transport {
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..Transport::default()
    }
}

/// Tokens as the gateway stores them: this access and refresh pair, valid until `expires_at_ms`,
/// and the replay's cursor.
pub async fn tokens(
    access: &str,
    refresh: &str,
    expires_at_ms: i64,
    update_id: Option<i64>,
) -> Arc<dyn TokenStore> {
    let store: Arc<dyn TokenStore> = Arc::new(MemoryTokens::new());
    let json = json!({
        "access_token": access, "refresh_token": refresh, "expires_at_ms": expires_at_ms,
        "server": 1, "update_id": update_id,
    });
    assert!(store.swap(0, &json.to_string()).await.unwrap());
    store
}

/// The adapter for database 123456 on the stand-in, its clock at `now_ms`.
pub fn adapter(
    server_uri: &str,
    transport: Transport,
    now_ms: i64,
    store: Arc<dyn TokenStore>,
) -> BeautyProAdapter {
    let mut config = BeautyProConfig::new("123456");
    config.auth_base = server_uri.to_owned();
    config.api_base = Some(server_uri.to_owned());
    BeautyProAdapter::with_api(
        config,
        crm_http::http_client().expect("http client"),
        Arc::new(crm_yclients::RateLimiter::new(1_000, 100_000)),
        Credentials {
            application_id: APP_ID.into(),
            application_secret: APP_SECRET.into(),
        },
    )
    .with_transport(transport)
    .with_tokens(store)
    .with_clock(Arc::new(move || now_ms))
}

/// `GET /auth/database` with the application and the database, answered with a pair.
pub async fn mount_database_token(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/auth/database"))
        .and(query_param("application_id", APP_ID))
        .and(query_param("application_secret", APP_SECRET))
        .and(query_param("database_code", "123456"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("auth_database.json")))
        .mount(server)
        .await;
}

/// `GET /auth/refresh` with the application and this refresh token, answered with the next pair.
pub async fn mount_refresh(server: &MockServer, refresh: &str) {
    Mock::given(method("GET"))
        .and(path("/auth/refresh"))
        .and(query_param("application_id", APP_ID))
        .and(query_param("refresh_token", refresh))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("auth_refresh.json")))
        .mount(server)
        .await;
}
