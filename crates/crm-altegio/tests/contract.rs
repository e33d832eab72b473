//! What differs on Altegio: base path, `Accept` header, English error messages, other
//! currencies and time zones, the booking host. Everything else is crm-yclients' contract.

use std::sync::Arc;

use crm_altegio::{Credentials, RateLimiter};
use loyalty_core::{AdapterError, CrmAdapter, CrmEvent, CrmKind, Currency, VisitStatus};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

struct Exactly(&'static str, &'static str);

impl Match for Exactly {
    fn matches(&self, request: &Request) -> bool {
        let values: Vec<_> = request.headers.get_all(self.0).iter().collect();
        values.len() == 1 && values[0].to_str().ok() == Some(self.1)
    }
}

fn adapter(server: &MockServer) -> crm_altegio::AltegioAdapter {
    let mut config = crm_altegio::config("778899", Currency::Kzt, 300);
    // Altegio's REST base ends in /api/v1, as YCLIENTS' does.
    config.base_url = Some(format!("{}/api/v1", server.uri()));
    crm_altegio::adapter(
        config,
        crm_altegio::http_client().unwrap(),
        Arc::new(RateLimiter::new(1_000, 100_000)),
        Credentials {
            partner_token: "p".into(),
            user_token: Some("u".into()),
            login: None,
        },
    )
}

#[test]
fn the_flavor_is_altegio() {
    assert_eq!(
        crm_altegio::Flavor::ALTEGIO.base_url,
        "https://api.alteg.io/api/v1"
    );
    let config = crm_altegio::config("1", Currency::Eur, 60);
    assert_eq!(config.flavor.kind, CrmKind::Altegio);
    assert_eq!(config.flavor.accept, "application/vnd.api.v2+json");
}

#[tokio::test]
async fn records_in_tenge_with_altegio_headers() {
    let server = MockServer::start().await;
    let record = json!({
        "success": true,
        "data": {
            "id": 2, "company_id": 778899, "staff_id": 9, "attendance": 1, "deleted": false,
            "services": [{ "id": 44, "title": "Manicure", "cost": 12000, "first_cost": 12000, "discount": 0 }],
            "client": { "id": 5511, "name": "Айгерим", "phone": "+77770220606" },
            "datetime": "2025-07-13T12:10:00+05:00", "last_change_date": "2025-07-13 13:30:00"
        },
        "meta": []
    });
    Mock::given(method("GET"))
        .and(path("/api/v1/record/778899/2"))
        .and(Exactly("accept", "application/vnd.api.v2+json"))
        .and(Exactly("authorization", "Bearer p, User u"))
        .respond_with(ResponseTemplate::new(200).set_body_json(record))
        .expect(1)
        .mount(&server)
        .await;
    let visit = adapter(&server).get_record("2").await.unwrap();
    assert_eq!(visit.status, VisitStatus::Came);
    assert_eq!(
        (visit.currency, visit.paid_minor()),
        (Currency::Kzt, 1_200_000)
    );
    // A local time without offset is read in the location's zone (UTC+5 here).
    assert_eq!(visit.version, Some(1_752_395_400_000));
}

#[tokio::test]
async fn english_errors_map_like_russian_ones() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/client/778899/1"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "success": false, "data": null, "meta": { "message": "Authentication needed." }
        })))
        .expect(1)
        .mount(&server)
        .await;
    let err = adapter(&server).get_client("1").await.unwrap_err();
    assert_eq!(err, AdapterError::Auth("Authentication needed.".into()));
}

#[tokio::test]
async fn booking_links_point_at_alteg_io() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/company/778899/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "success": true, "data": { "id": 778899, "title": "Studio", "bookforms": [{ "id": 4242, "is_default": 1 }] },
            "meta": []
        })))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(
        adapter(&server).booking_link().await.unwrap(),
        "https://n4242.alteg.io/"
    );
}

#[test]
fn loyalty_card_webhooks_are_acknowledged() {
    let body = br#"{"company_id": 778899, "resource": "loyalty_card", "resource_id": 7001, "status": "update",
                    "data": {"id": 7001, "balance": 250, "number": "100200300", "phone": "+77770220606"}}"#;
    let config = crm_altegio::config("778899", Currency::Kzt, 300);
    let events = crm_altegio::AltegioAdapter::new(config)
        .parse_webhook(None, body)
        .unwrap();
    assert!(matches!(&events[..], [CrmEvent::Other(o)] if o.resource == "loyalty_card"));
}
