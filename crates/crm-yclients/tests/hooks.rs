//! Webhook registration through `hooks_settings`: the location's settings are read, merged and
//! written back, because the POST replaces every URL and flag of the location (other apps'
//! hooks included). Requests asserted exactly; answers from the official spec's example
//! (`fixtures/yclients/api_hooks_settings.json`).

mod common;

use common::*;
use crm_yclients::{Flavor, Transport};
use loyalty_core::AdapterError;
use serde_json::{Value, json};
use wiremock::matchers::body_json;
use wiremock::{MockServer, ResponseTemplate};

const OURS: &str = "https://loyalty.example.com/webhooks/yclients/0123abcd";

fn settings(data: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({ "success": true, "data": data, "meta": [] }))
}

#[tokio::test]
async fn another_apps_url_and_flags_stay_and_ours_are_added() {
    let server = MockServer::start().await;
    let example = fixture("api_hooks_settings.json");
    user_call("GET", "/hooks_settings/4564")
        .respond_with(ResponseTemplate::new(200).set_body_json(&example))
        .expect(1)
        .mount(&server)
        .await;
    // Every flag the example has keeps its value; ours (record, client, goods_operations_sale)
    // are on; the other app's URL is kept before ours; notifications are made active.
    let written = json!({
        "urls": ["https://dev.tools.test.com/test/Hooks", OURS],
        "active": 1,
        "salon": 1,
        "service_category": 0,
        "service": 1,
        "good": 1,
        "master": 1,
        "client": 1,
        "record": 1,
        "goods_operations_sale": 1,
        "goods_operations_receipt": 1,
        "goods_operations_consumable": 1,
        "goods_operations_stolen": 1,
        "goods_operations_move": 1,
        "finances_operation": 1,
    });
    user_call("POST", "/hooks_settings/4564")
        .and(Exactly("content-type", "application/json"))
        .and(body_json(&written))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({ "success": true, "data": written, "meta": [] })),
        )
        .expect(1)
        .mount(&server)
        .await;
    let tables = yclients(&server).register_webhooks(OURS).await.unwrap();
    assert_eq!(tables, ["record", "client", "goods_operations_sale"]);
}

#[tokio::test]
async fn a_second_registration_writes_nothing() {
    let server = MockServer::start().await;
    user_call("GET", "/hooks_settings/4564")
        .respond_with(settings(json!({
            "urls": [OURS, "https://other.example/hook"],
            "active": "1",
            "record": 1, "client": 1, "goods_operations_sale": 1, "salon": 0,
        })))
        .expect(1)
        .mount(&server)
        .await;
    user_call("POST", "/hooks_settings/4564")
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(&server)
        .await;
    let tables = yclients(&server).register_webhooks(OURS).await.unwrap();
    assert_eq!(tables.len(), 3);
}

#[tokio::test]
async fn a_location_with_ten_urls_is_refused_before_writing() {
    let server = MockServer::start().await;
    let urls: Vec<String> = (0..10)
        .map(|i| format!("https://app{i}.example/h"))
        .collect();
    user_call("GET", "/hooks_settings/4564")
        .respond_with(settings(json!({ "urls": urls, "active": 1, "record": 1 })))
        .mount(&server)
        .await;
    user_call("POST", "/hooks_settings/4564")
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(&server)
        .await;
    match yclients(&server).register_webhooks(OURS).await {
        Err(AdapterError::Validation(why)) => {
            assert!(why[0].contains("10 webhook URLs"), "{why:?}");
            assert!(why[0].contains("https://app9.example/h"), "{why:?}");
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_user_without_the_right_and_a_rate_limit_write_nothing() {
    let server = MockServer::start().await;
    user_call("GET", "/hooks_settings/4564")
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "success": false, "data": null,
            "meta": { "message": "Нет прав на управление настройками уведомлений" },
        })))
        .expect(1)
        .mount(&server)
        .await;
    user_call("POST", "/hooks_settings/4564")
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(&server)
        .await;
    match yclients(&server).register_webhooks(OURS).await {
        Err(AdapterError::Forbidden(why)) => assert!(why.contains("Нет прав"), "{why}"),
        other => panic!("expected Forbidden, got {other:?}"),
    }

    let limited = MockServer::start().await;
    user_call("GET", "/hooks_settings/4564")
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .mount(&limited)
        .await;
    user_call("POST", "/hooks_settings/4564")
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(&limited)
        .await;
    let once = Transport {
        max_attempts: 1,
        ..fast()
    };
    let api = client_on(&limited, Flavor::YCLIENTS, creds()).with_transport(once);
    assert!(matches!(
        api.register_webhooks(OURS).await,
        Err(AdapterError::RateLimited { .. })
    ));
}

#[tokio::test]
async fn altegio_keeps_its_loyalty_card_flag() {
    let server = MockServer::start().await;
    let alt = |p: &str, verb: &str| {
        wiremock::Mock::given(wiremock::matchers::method(verb))
            .and(wiremock::matchers::path(p.to_owned()))
            .and(Exactly("authorization", USER_AUTH))
            .and(Exactly("accept", "application/vnd.api.v2+json"))
    };
    alt("/hooks_settings/4564", "GET")
        .respond_with(settings(
            json!({ "urls": [], "active": 0, "loyalty_card": 1 }),
        ))
        .expect(1)
        .mount(&server)
        .await;
    alt("/hooks_settings/4564", "POST")
        .and(body_json(json!({
            "urls": [OURS], "active": 1, "loyalty_card": 1,
            "record": 1, "client": 1, "goods_operations_sale": 1,
        })))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({ "success": true, "data": {}, "meta": [] })),
        )
        .expect(1)
        .mount(&server)
        .await;
    let api = client_on(&server, Flavor::ALTEGIO, creds());
    api.register_webhooks(OURS).await.unwrap();
}
