//! The adapter conformance story (`crm-conformance`) against Beauty Pro's fixtures.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{ACCESS, APPT, CLIENT, REFRESH, adapter, fast, fixture, raw};
use crm_beautypro::rows;
use crm_conformance::{Hook, Lookup, NOW_MS, Subject};
use loyalty_core::{CrmAdapter, Phone};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

struct BeautyPro;

const BEARER: &str = "Bearer a71923bd-84c5-49a3-a7fb-a0825e26bbe4";

#[async_trait]
impl Subject for BeautyPro {
    fn name(&self) -> String {
        "Beauty Pro".into()
    }

    fn adapter(&self, base_url: &str, timeout: Duration) -> Arc<dyn CrmAdapter> {
        let transport = crm_http::Transport {
            timeout,
            max_attempts: 1,
            ..fast()
        };
        // Valid tokens and a replay cursor, as a connection has them once running.
        let store: Arc<dyn crm_http::TokenStore> = Arc::new(crm_http::MemoryTokens::new());
        let seeded = json!({
            "access_token": ACCESS, "refresh_token": REFRESH,
            "expires_at_ms": NOW_MS + 86_400_000, "server": 1, "update_id": 1020,
        });
        assert!(futures_lite(store.swap(0, &seeded.to_string())).unwrap_or(false));
        Arc::new(adapter(base_url, transport, NOW_MS, store))
    }

    async fn prepare(&self, server: &MockServer) {
        // A renewal answers the pair the story's mocks expect, so a 401 the story sends is
        // still a 401 after it (and becomes `Auth`), not a request no mock matches.
        Mock::given(method("GET"))
            .and(path("/auth/refresh"))
            .and(query_param("refresh_token", REFRESH))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": ACCESS, "refresh_token": REFRESH,
                "expires_at": "2026-12-05T10:00:00.000Z",
            })))
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/clients/{CLIENT}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(fixture("client.json")))
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path("/sales"))
            .respond_with(ResponseTemplate::new(200).set_body_json(fixture("sales.json")))
            .mount(server)
            .await;
    }

    fn webhook(&self, hook: Hook) -> (Option<&'static str>, Vec<u8>) {
        let file = match hook {
            Hook::Came => "webhook_sale_insert.json",
            Hook::NoShow => "webhook_appointment_cancelled.json",
            Hook::Edited => "webhook_sale_update.json",
            Hook::Deleted => "webhook_appointment_deleted.json",
        };
        (Some("application/json"), raw(file))
    }

    fn record_id(&self) -> String {
        APPT.into()
    }

    fn phone(&self) -> Phone {
        Phone::parse_international("+79161234567").expect("phone")
    }

    fn find_client(&self) -> MockBuilder {
        Mock::given(method("GET"))
            .and(path("/clients"))
            .and(query_param("phone", "79161234567"))
            .and(query_param("fields", rows::CLIENT_FIELDS))
            .and(header("authorization", BEARER))
    }

    fn find_client_answer(&self, lookup: Lookup) -> ResponseTemplate {
        match lookup {
            Lookup::Found => {
                ResponseTemplate::new(200).set_body_json(fixture("clients_by_phone.json"))
            }
            Lookup::NotFound => ResponseTemplate::new(200).set_body_json(json!([])),
            Lookup::TwoCards => {
                ResponseTemplate::new(200).set_body_json(fixture("clients_two_cards.json"))
            }
        }
    }

    fn expected_client(&self, _lookup: Lookup) -> String {
        // Of two cards with the phone, the first the API lists (the guide: "take any").
        CLIENT.into()
    }

    fn get_record(&self) -> MockBuilder {
        Mock::given(method("GET"))
            .and(path(format!("/appointments/{APPT}")))
            .and(query_param("fields", rows::APPOINTMENT_FIELDS))
            .and(header("authorization", BEARER))
    }

    fn get_record_answer(&self) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(fixture("appointment.json"))
    }

    fn changes(&self) -> Vec<(MockBuilder, ResponseTemplate)> {
        // ASSUMED: the replay answers the updates after the cursor.
        vec![(
            Mock::given(method("PUT"))
                .and(path("/updates/webhooks/batch"))
                .and(body_json(json!({"from_update": 1020})))
                .and(header("authorization", BEARER)),
            ResponseTemplate::new(200).set_body_json(fixture("batch.json")),
        )]
    }

    fn whole_webhooks(&self) -> bool {
        false
    }
}

/// The subject's adapter is built in a sync function: the memory store answers at once.
fn futures_lite<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the memory token store does not wait"),
    }
}

#[tokio::test]
async fn beautypro_passes_the_conformance_story() {
    crm_conformance::run(&BeautyPro).await;
}
