//! DIKIDI's public widget through the adapter: the exact requests (path, query, headers), the
//! services, categories and masters read from fixtures/dikidi, the widget's own refusal; the
//! conformance story (webhooks refused, records and lookups `Unsupported` without a request,
//! errors mapped on the widget's call); and everything undeclared is `Unsupported`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crm_conformance::{Hook, Lookup, Subject};
use crm_dikidi::{DikidiAdapter, DikidiConfig};
use loyalty_core::adapter::Operation;
use loyalty_core::quota::CallGate;
use loyalty_core::{AdapterError, CrmAdapter, Currency, Money, Phone, StoreError};
use serde_json::Value;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

const COMPANY: &str = "591511";

struct Open;

#[async_trait]
impl CallGate for Open {
    async fn acquire(&self) -> Result<(), StoreError> {
        Ok(())
    }
    async fn rate_limited(&self, _: Option<Duration>) {}
}

fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/dikidi")
        .join(name);
    serde_json::from_slice(&std::fs::read(p).expect("fixture")).expect("JSON")
}

fn adapter(base_url: &str, timeout: Duration) -> DikidiAdapter {
    let mut config = DikidiConfig::new(COMPANY);
    config.base_url = base_url.to_owned();
    DikidiAdapter::new(
        config,
        crm_http::http_client().expect("http client"),
        Arc::new(Open),
    )
    .with_transport(crm_http::Transport {
        timeout,
        max_attempts: 1,
        ..crm_http::Transport::default()
    })
}

fn services_request() -> MockBuilder {
    Mock::given(method("GET"))
        .and(path("/mobile/ajax/newrecord/company_services/"))
        .and(query_param("lang", "ru"))
        .and(query_param("array", "1"))
        .and(query_param("company", COMPANY))
        .and(query_param("master", ""))
        .and(query_param("share", ""))
        .and(header("x-requested-with", "XMLHttpRequest"))
}

fn masters_request() -> MockBuilder {
    Mock::given(method("GET"))
        .and(path("/ru/ajax/newrecord/to_master_get_masters/"))
        .and(query_param("company_id", COMPANY))
        .and(header("x-requested-with", "XMLHttpRequest"))
}

fn rub(minor: i64) -> Option<Money> {
    Money::new(minor, Currency::Rub).ok()
}

/// A service as listed: id, title, category, lowest and highest price.
type Listed<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<Money>,
    Option<Money>,
);

#[tokio::test]
async fn services_categories_and_masters_from_the_widget() {
    let server = MockServer::start().await;
    services_request()
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("company_services.json")))
        .expect(2)
        .mount(&server)
        .await;
    masters_request()
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("masters.json")))
        .expect(1)
        .mount(&server)
        .await;
    let a = adapter(&server.uri(), Duration::from_secs(5));

    let services = a.list_services().await.unwrap();
    let got: Vec<Listed> = services
        .iter()
        .map(|s| {
            (
                s.external_id.as_str(),
                s.title.as_str(),
                s.category_id.as_deref(),
                s.price_min,
                s.price_max,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "2519731",
                "Стрижка женская",
                Some("318204"),
                rub(250_000),
                rub(250_000)
            ),
            (
                "2519732",
                "Окрашивание в один тон",
                Some("318204"),
                rub(400_000),
                rub(650_000)
            ),
            (
                "2519801",
                "Маникюр с покрытием",
                Some("318210"),
                rub(180_000),
                rub(180_000)
            ),
            (
                "2519802",
                "Снятие покрытия",
                Some("318210"),
                rub(30_000),
                rub(30_000)
            ),
        ]
    );
    let categories = a.list_categories().await.unwrap();
    let names: Vec<(&str, &str)> = categories
        .iter()
        .map(|c| (c.external_id.as_str(), c.name.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("318204", "Парикмахерские услуги"),
            ("318210", "Ногтевой сервис"),
            ("318215", "Пустая категория"),
        ]
    );
    let masters = a.list_staff().await.unwrap();
    let names: Vec<(&str, &str)> = masters
        .iter()
        .map(|m| (m.external_id.as_str(), m.name.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("84411", "Ольга Петрова"),
            ("84412", "Ирина Соколова"),
            ("84419", "Анна (стажёр)"),
        ]
    );
    assert_eq!(a.booking_link().await.unwrap(), "https://dikidi.net/591511");
}

#[tokio::test]
async fn the_widget_refusing_a_company_is_a_validation_error() {
    let server = MockServer::start().await;
    services_request()
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("widget_refused.json")))
        .mount(&server)
        .await;
    let a = adapter(&server.uri(), Duration::from_secs(5));
    match a.list_services().await {
        Err(AdapterError::Validation(why)) => {
            assert_eq!(
                why,
                vec!["DIKIDI's widget: Компания не найдена (code 1)".to_owned()]
            )
        }
        other => panic!("{other:?}"),
    }
}

struct Dikidi;

#[async_trait]
impl Subject for Dikidi {
    fn name(&self) -> String {
        "DIKIDI".into()
    }

    fn adapter(&self, base_url: &str, timeout: Duration) -> Arc<dyn CrmAdapter> {
        Arc::new(adapter(base_url, timeout))
    }

    /// DIKIDI sends none: whatever arrives as one (here its own widget answer) is refused.
    fn webhook(&self, _hook: Hook) -> (Option<&'static str>, Vec<u8>) {
        let body = serde_json::to_vec(&fixture("company_services.json")).unwrap_or_default();
        (Some("application/json"), body)
    }

    fn record_id(&self) -> String {
        "1".into()
    }

    fn phone(&self) -> Phone {
        Phone::parse_international("+79161234567").expect("phone")
    }

    // No lookups and no records: the story checks they are `Unsupported` without a request,
    // so these requests are never mounted.
    fn find_client(&self) -> MockBuilder {
        Mock::given(method("GET")).and(path("/none"))
    }

    fn find_client_answer(&self, _lookup: Lookup) -> ResponseTemplate {
        ResponseTemplate::new(500)
    }

    fn expected_client(&self, _lookup: Lookup) -> String {
        String::new()
    }

    fn get_record(&self) -> MockBuilder {
        Mock::given(method("GET")).and(path("/none"))
    }

    fn get_record_answer(&self) -> ResponseTemplate {
        ResponseTemplate::new(500)
    }

    fn changes(&self) -> Vec<(MockBuilder, ResponseTemplate)> {
        Vec::new()
    }

    fn list_services(&self) -> Option<MockBuilder> {
        Some(services_request())
    }
}

#[tokio::test]
async fn dikidi_passes_the_conformance_story() {
    crm_conformance::run(&Dikidi).await;
}

#[tokio::test]
async fn everything_but_the_widget_is_unsupported() {
    let server = MockServer::start().await;
    let a = adapter(&server.uri(), Duration::from_secs(1));
    let caps = a.capabilities();
    assert!(!caps.webhooks && !caps.poll_records && !caps.records && !caps.client_write);
    assert!(!caps.certificates && !caps.promo_codes && !caps.loyalty_cards && !caps.sms);
    assert_eq!(
        a.get_client("1").await.unwrap_err(),
        AdapterError::Unsupported(Operation::GetClient)
    );
    assert_eq!(
        a.list_clients(1).await.unwrap_err(),
        AdapterError::Unsupported(Operation::ListClients)
    );
    assert_eq!(
        a.records_between(0, 1, 1).await.unwrap_err(),
        AdapterError::Unsupported(Operation::RecordsBetween)
    );
    assert!(
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
}
