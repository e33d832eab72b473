//! The adapter conformance story (`crm-conformance`) against Arnica's fixtures, and a wrong
//! adapter failing it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{BEARER, fixture, raw};
use crm_conformance::{Hook, Lookup, NOW_MS, Subject};
use loyalty_core::adapter::CrmClient;
use loyalty_core::{
    AdapterError, Capabilities, CrmAdapter, CrmEvent, CrmKind, Phone, WebhookError,
};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{MockBuilder, MockServer, ResponseTemplate};

struct Arnica;

#[async_trait]
impl Subject for Arnica {
    fn name(&self) -> String {
        "Arnica".into()
    }

    fn adapter(&self, base_url: &str, timeout: Duration) -> Arc<dyn CrmAdapter> {
        let transport = crm_http::Transport {
            timeout,
            max_attempts: 1,
            ..common::fast()
        };
        Arc::new(common::adapter(base_url, transport, NOW_MS))
    }

    async fn prepare(&self, server: &MockServer) {
        common::mount_login(server).await;
    }

    fn webhook(&self, hook: Hook) -> (Option<&'static str>, Vec<u8>) {
        let file = match hook {
            Hook::Came => "webhook_visit_came.json",
            Hook::NoShow => "webhook_visit_no_show.json",
            Hook::Edited => "webhook_visit_edited.json",
            Hook::Deleted => "webhook_visit_deleted.json",
        };
        (Some("application/json"), raw(file))
    }

    fn record_id(&self) -> String {
        "90817".into()
    }

    fn phone(&self) -> Phone {
        Phone::parse_international("+79161234567").expect("phone")
    }

    fn find_client(&self) -> MockBuilder {
        wiremock::Mock::given(method("GET"))
            .and(path("/api/v2/client/phone/%2B7%28916%29123-45-67"))
            .and(header("authorization", BEARER))
    }

    fn find_client_answer(&self, lookup: Lookup) -> ResponseTemplate {
        match lookup {
            Lookup::Found => ResponseTemplate::new(200).set_body_json(fixture("api_client.json")),
            Lookup::NotFound => ResponseTemplate::new(404)
                .set_body_json(serde_json::json!({"message": "Client not found"})),
            Lookup::TwoCards => {
                ResponseTemplate::new(200).set_body_json(fixture("api_clients_two_cards.json"))
            }
        }
    }

    fn expected_client(&self, lookup: Lookup) -> String {
        match lookup {
            // Of two cards with the phone, the oldest.
            Lookup::TwoCards => "3020".into(),
            _ => "4471".into(),
        }
    }

    fn get_record(&self) -> MockBuilder {
        wiremock::Mock::given(method("GET"))
            .and(path("/api/v2/visit/90817"))
            .and(header("authorization", BEARER))
    }

    fn get_record_answer(&self) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(fixture("api_visit.json"))
    }

    fn changes(&self) -> Vec<(MockBuilder, ResponseTemplate)> {
        // Thirty minutes back, rounded up, plus one for the clocks' difference.
        [1, 2]
            .into_iter()
            .map(|page| {
                (
                    wiremock::Mock::given(method("GET"))
                        .and(path("/api/v2/visit"))
                        .and(query_param("modificate", "31"))
                        .and(query_param("page", page.to_string()))
                        .and(query_param("perPage", "100"))
                        .and(header("authorization", BEARER)),
                    ResponseTemplate::new(200)
                        .set_body_json(fixture(&format!("api_visits_page{page}.json"))),
                )
            })
            .collect()
    }

    fn rate_limit_status(&self) -> u16 {
        444
    }
}

#[tokio::test]
async fn arnica_passes_the_conformance_story() {
    crm_conformance::run(&Arnica).await;
}

/// Arnica's adapter, except that a rate-limited lookup says "no such client" — the bug that
/// makes a second card for a client who has one.
struct SwallowsRateLimits(Arc<dyn CrmAdapter>);

#[async_trait]
impl CrmAdapter for SwallowsRateLimits {
    fn kind(&self) -> CrmKind {
        self.0.kind()
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    fn parse_webhook(&self, ct: Option<&str>, body: &[u8]) -> Result<Vec<CrmEvent>, WebhookError> {
        self.0.parse_webhook(ct, body)
    }
    async fn find_client_by_phone(&self, phone: &Phone) -> Result<Option<CrmClient>, AdapterError> {
        match self.0.find_client_by_phone(phone).await {
            Err(AdapterError::RateLimited { .. }) => Ok(None),
            other => other,
        }
    }
    async fn get_record(&self, id: &str) -> Result<loyalty_core::VisitEvent, AdapterError> {
        self.0.get_record(id).await
    }
    async fn records_changed_since(
        &self,
        since_ms: i64,
        page: u32,
    ) -> Result<loyalty_core::adapter::RecordPage, AdapterError> {
        self.0.records_changed_since(since_ms, page).await
    }
}

struct Wrong;

#[async_trait]
impl Subject for Wrong {
    fn name(&self) -> String {
        "Arnica swallowing rate limits".into()
    }
    fn adapter(&self, base_url: &str, timeout: Duration) -> Arc<dyn CrmAdapter> {
        Arc::new(SwallowsRateLimits(Arnica.adapter(base_url, timeout)))
    }
    async fn prepare(&self, server: &MockServer) {
        Arnica.prepare(server).await
    }
    fn webhook(&self, hook: Hook) -> (Option<&'static str>, Vec<u8>) {
        Arnica.webhook(hook)
    }
    fn record_id(&self) -> String {
        Arnica.record_id()
    }
    fn phone(&self) -> Phone {
        Arnica.phone()
    }
    fn find_client(&self) -> MockBuilder {
        Arnica.find_client()
    }
    fn find_client_answer(&self, lookup: Lookup) -> ResponseTemplate {
        Arnica.find_client_answer(lookup)
    }
    fn expected_client(&self, lookup: Lookup) -> String {
        Arnica.expected_client(lookup)
    }
    fn get_record(&self) -> MockBuilder {
        Arnica.get_record()
    }
    fn get_record_answer(&self) -> ResponseTemplate {
        Arnica.get_record_answer()
    }
    fn changes(&self) -> Vec<(MockBuilder, ResponseTemplate)> {
        Arnica.changes()
    }
    fn rate_limit_status(&self) -> u16 {
        444
    }
}

#[tokio::test]
async fn an_adapter_that_swallows_a_rate_limit_fails_the_story() {
    let failures = crm_conformance::check(&Wrong).await;
    assert_eq!(
        failures,
        vec![
            "find client answered rate limited with Retry-After: 7: Ok(None)".to_owned(),
            "find client answered rate limited without Retry-After: Ok(None)".to_owned(),
        ],
    );
}
