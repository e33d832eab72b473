//! Contract tests against a wiremock stand-in for Arnica's CRM Exchange API: each request's
//! method, path, query, `Authorization` and body asserted; answers from `fixtures/arnica`.
//! (Finding a client, reading a visit and the `modificate` poll are pinned by the conformance
//! story in `conformance.rs`.)

mod common;

use std::time::Duration;

use common::{BEARER, adapter, fast, fixture, mount_login};
use crm_http::Transport;
use loyalty_core::adapter::ClientDraft;
use loyalty_core::{AdapterError, CrmAdapter, Phone, VisitStatus};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// 2026-11-20 12:00 UTC.
const NOW: i64 = 1_795_176_000_000;

fn phone() -> Phone {
    Phone::parse_international("+79161234567").expect("phone")
}

#[tokio::test]
async fn logs_in_once_then_sends_the_jwt_and_logs_in_again_once_on_a_401() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/auth"))
        .and(body_json(
            json!({"email": "integrator@salon.example", "password": "s3cret"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("auth.json")))
        .expect(2)
        .mount(&server)
        .await;
    // The first answer says the token was revoked (as SQNS does when the key is withdrawn and
    // given again); the login after it works.
    Mock::given(method("GET"))
        .and(path("/api/v2/client/4471"))
        .and(header("authorization", BEARER))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "User token deactivated"})),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/client/4471"))
        .and(header("authorization", BEARER))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("api_client.json")))
        .expect(2)
        .mount(&server)
        .await;
    let a = adapter(&server.uri(), fast(), NOW);
    let c = a
        .get_client("4471")
        .await
        .expect("client after a new login");
    assert_eq!(c.phone, Some(phone()));
    assert_eq!(c.email.as_deref(), Some("anna@example.ru"));
    // The token is kept: the next call logs in no more.
    a.get_client("4471").await.expect("client");
}

#[tokio::test]
async fn a_401_after_a_fresh_login_is_an_auth_error_not_a_loop() {
    let server = MockServer::start().await;
    mount_login(&server).await;
    Mock::given(method("GET"))
        .and(path("/api/v2/client/4471"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "User token deactivated"})),
        )
        .expect(2)
        .mount(&server)
        .await;
    let err = adapter(&server.uri(), fast(), NOW)
        .get_client("4471")
        .await
        .unwrap_err();
    assert_eq!(err, AdapterError::Auth("User token deactivated".into()));
}

#[tokio::test]
async fn a_login_for_another_organisation_is_refused() {
    let server = MockServer::start().await;
    let mut other = fixture("auth.json");
    other["user"]["orgId"] = json!(1234);
    Mock::given(method("POST"))
        .and(path("/api/v2/auth"))
        .respond_with(ResponseTemplate::new(200).set_body_json(other))
        .mount(&server)
        .await;
    let err = adapter(&server.uri(), fast(), NOW)
        .get_client("4471")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AdapterError::Forbidden(why) if why.contains("1234")),
        "{err:?}"
    );
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "no data call with it"
    );
}

#[tokio::test]
async fn creates_once_and_updates_clients_with_the_phone_in_arnica_form() {
    let server = MockServer::start().await;
    mount_login(&server).await;
    let body = json!({"client": {"name": "Анна Смирнова", "phone": "+7(916)123-45-67", "email": "anna@example.ru"}});
    // A 503 to a create is not retried: a retry could make a second card.
    Mock::given(method("POST"))
        .and(path("/api/v2/client"))
        .and(header("authorization", BEARER))
        .and(body_json(&body))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    let draft = ClientDraft {
        phone: phone(),
        name: "Анна Смирнова".into(),
        email: Some("anna@example.ru".into()),
    };
    let a = adapter(&server.uri(), fast(), NOW);
    assert!(matches!(
        a.create_client(&draft).await,
        Err(AdapterError::Transient(_))
    ));
    server.reset().await;
    mount_login(&server).await;
    Mock::given(method("POST"))
        .and(path("/api/v2/client"))
        .and(body_json(&body))
        .respond_with(ResponseTemplate::new(201).set_body_json(fixture("api_client.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/api/v2/client/4471"))
        .and(header("authorization", BEARER))
        .and(body_json(&body))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 4471})))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(a.create_client(&draft).await.unwrap().external_id, "4471");
    let updated = a.update_client("4471", &draft).await.unwrap();
    assert_eq!(
        (updated.external_id.as_str(), updated.phone),
        ("4471", Some(phone()))
    );
}

#[tokio::test]
async fn services_with_their_price_range_and_staff_without_the_fired() {
    let server = MockServer::start().await;
    mount_login(&server).await;
    Mock::given(method("GET"))
        .and(path("/api/v2/service"))
        .and(query_param("page", "1"))
        .and(query_param("perPage", "100"))
        .and(header("authorization", BEARER))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("api_services.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/employee"))
        .and(query_param("isFired", "0"))
        .and(query_param("isDeleted", "0"))
        .and(query_param("page", "1"))
        .and(query_param("perPage", "100"))
        .and(header("authorization", BEARER))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("api_employees.json")))
        .expect(1)
        .mount(&server)
        .await;
    let a = adapter(&server.uri(), fast(), NOW);
    let services = a.list_services().await.unwrap();
    let styling = &services[1];
    assert_eq!(
        (styling.external_id.as_str(), styling.category_id.as_deref()),
        ("533", Some("3"))
    );
    assert_eq!(styling.price_min.map(|m| m.minor()), Some(100_000));
    assert_eq!(styling.price_max.map(|m| m.minor()), Some(150_000));
    let staff = a.list_staff().await.unwrap();
    assert_eq!(staff.len(), 1, "the fired stylist is left out");
    assert_eq!(staff[0].name, "Мария Котова");
}

/// A cursor older than Arnica's change window (a long outage) reads the visits dated since
/// that day, and says what such a read cannot see.
#[tokio::test]
async fn a_cursor_older_than_a_day_reads_a_date_window_and_says_what_it_misses() {
    let server = MockServer::start().await;
    mount_login(&server).await;
    Mock::given(method("GET"))
        .and(path("/api/v2/visit"))
        .and(query_param("dateFrom", "2026-11-17"))
        .and(query_param("dateTill", "2026-11-20"))
        .and(query_param_is_missing("modificate"))
        .and(query_param("page", "1"))
        .and(query_param("perPage", "100"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("api_visits_page1.json")))
        .expect(1)
        .mount(&server)
        .await;
    // Three days before 2026-11-20 12:00 UTC is 15:00 on the 17th in Moscow.
    let page = adapter(&server.uri(), fast(), NOW)
        .records_changed_since(NOW - 3 * 86_400_000, 1)
        .await
        .unwrap();
    assert_eq!(page.records.len(), 2);
    assert_eq!(page.next_page, Some(2));
    let caveat = page.caveat.expect("the pass is told");
    assert!(
        caveat.contains("2026-11-17") && caveat.contains("not seen"),
        "{caveat}"
    );
}

#[tokio::test]
async fn exactly_a_day_back_is_still_a_change_window() {
    let server = MockServer::start().await;
    mount_login(&server).await;
    Mock::given(method("GET"))
        .and(path("/api/v2/visit"))
        .and(query_param("modificate", "1440"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("api_visits_page2.json")))
        .expect(2)
        .mount(&server)
        .await;
    let page = adapter(&server.uri(), fast(), NOW)
        .records_changed_since(NOW - 1_439 * 60_000, 2)
        .await
        .unwrap();
    assert_eq!(page.caveat, None);
    // A first pass reads exactly a day back, a moment later: still the window.
    let first = adapter(&server.uri(), fast(), NOW + 200)
        .records_changed_since(NOW - 1_440 * 60_000, 2)
        .await
        .unwrap();
    assert_eq!(first.caveat, None);
    assert_eq!(page.next_page, None);
    assert_eq!(page.records[0].status, VisitStatus::NoShow);
}

#[tokio::test]
async fn the_history_import_reads_visits_by_organisation_day_and_every_client_page() {
    let server = MockServer::start().await;
    mount_login(&server).await;
    Mock::given(method("GET"))
        .and(path("/api/v2/visit"))
        .and(query_param("dateFrom", "2025-11-20"))
        .and(query_param("dateTill", "2026-11-20"))
        .and(query_param("page", "2"))
        .and(query_param("perPage", "100"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("api_visits_page2.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/client"))
        .and(query_param("page", "1"))
        .and(query_param("perPage", "100"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("api_clients_page1.json")))
        .expect(1)
        .mount(&server)
        .await;
    let a = adapter(&server.uri(), fast(), NOW);
    let page = a
        .records_between(NOW - 365 * 86_400_000, NOW, 2)
        .await
        .unwrap();
    assert_eq!(
        (page.records.len(), page.total, page.next_page),
        (1, Some(3), None)
    );
    let clients = a.list_clients(1).await.unwrap();
    assert_eq!(clients.clients.len(), 2);
    assert_eq!(clients.next_page, None);
    assert_eq!(
        clients.clients[1].birth_date, None,
        "an empty birth date is none"
    );
}

/// Over 15 requests a second or 900 a minute Arnica answers 444: waited out and tried again
/// like a 429, and the budget told.
#[tokio::test]
async fn a_444_is_a_rate_limit_waited_out_then_retried() {
    let server = MockServer::start().await;
    mount_login(&server).await;
    Mock::given(method("GET"))
        .and(path("/api/v2/visit/90817"))
        .respond_with(ResponseTemplate::new(444))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/visit/90817"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("api_visit.json")))
        .expect(1)
        .mount(&server)
        .await;
    let v = adapter(&server.uri(), fast(), NOW)
        .get_record("90817")
        .await
        .expect("after two 444s");
    assert_eq!(v.paid_minor(), 465_050);
}

#[tokio::test]
async fn a_444_asking_for_longer_than_a_minute_is_handed_back() {
    let server = MockServer::start().await;
    mount_login(&server).await;
    Mock::given(method("GET"))
        .and(path("/api/v2/visit/90817"))
        .respond_with(ResponseTemplate::new(444).insert_header("Retry-After", "120"))
        .expect(1)
        .mount(&server)
        .await;
    let err = adapter(&server.uri(), fast(), NOW)
        .get_record("90817")
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AdapterError::RateLimited {
            retry_after: Some(Duration::from_secs(120))
        }
    );
}

/// Whether a 444 is retried is the transport's: an embedder's own transport keeps Arnica's
/// rate-limit statuses.
#[tokio::test]
async fn another_transport_keeps_444_as_a_rate_limit() {
    let server = MockServer::start().await;
    mount_login(&server).await;
    Mock::given(method("GET"))
        .and(path("/api/v2/visit/90817"))
        .respond_with(ResponseTemplate::new(444))
        .expect(1)
        .mount(&server)
        .await;
    let one_try = Transport {
        max_attempts: 1,
        ..Transport::default()
    };
    let err = adapter(&server.uri(), one_try, NOW)
        .get_record("90817")
        .await
        .unwrap_err();
    assert_eq!(err, AdapterError::RateLimited { retry_after: None });
}

#[tokio::test]
async fn without_a_login_the_api_is_refused_and_rewards_are_not_declared() {
    let a = crm_arnica::ArnicaAdapter::new(crm_arnica::ArnicaConfig::new("7781"));
    assert!(matches!(
        a.get_record("1").await,
        Err(AdapterError::Auth(_))
    ));
    let caps = a.capabilities();
    assert!(caps.webhooks && !caps.poll_records && !caps.certificates && !caps.promo_codes);
    assert!(!caps.loyalty_cards);
}

/// The JWT is kept where the gateway keeps a connection's tokens: a new adapter (the gateway
/// builds one every 30 s) or another instance uses it without logging in again.
#[tokio::test]
async fn the_jwt_is_kept_for_the_next_adapter() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/auth"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("auth.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/client/4471"))
        .and(header("authorization", BEARER))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("api_client.json")))
        .expect(2)
        .mount(&server)
        .await;
    let kept: std::sync::Arc<dyn crm_http::TokenStore> =
        std::sync::Arc::new(crm_http::MemoryTokens::new());
    for _ in 0..2 {
        adapter(&server.uri(), fast(), NOW)
            .with_tokens(std::sync::Arc::clone(&kept))
            .get_client("4471")
            .await
            .unwrap();
    }
    assert_eq!(kept.load().await.unwrap().version, 1);
}

/// Webhooks are added with a PATCH (which appends), never the POST that replaces the list and
/// would delete other apps' hooks; an empty 200 is taken; a 5xx is not retried (an append).
#[tokio::test]
async fn webhooks_are_appended_with_a_patch_and_never_replaced() {
    let server = MockServer::start().await;
    mount_login(&server).await;
    let url = "https://loyalty.example.com/webhooks/arnica/0123abcd";
    Mock::given(method("PATCH"))
        .and(path("/api/v2/hook_settings"))
        .and(header("authorization", BEARER))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({ "urls": [url] })))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/hook_settings"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let tables = adapter(&server.uri(), fast(), NOW)
        .register_webhooks(url)
        .await
        .unwrap();
    assert_eq!(tables, ["visit", "client"]);

    let down = MockServer::start().await;
    mount_login(&down).await;
    Mock::given(method("PATCH"))
        .and(path("/api/v2/hook_settings"))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&down)
        .await;
    let failed = adapter(&down.uri(), fast(), NOW)
        .register_webhooks(url)
        .await;
    assert!(
        matches!(failed, Err(AdapterError::Transient(_))),
        "{failed:?}"
    );
}
