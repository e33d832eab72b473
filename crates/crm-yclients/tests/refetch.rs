//! What the engine asks the CRM before it decides: a partial record webhook (`{id, comment}`) is
//! fetched whole, and a settled record's payments with certificates or points are read from its
//! visit. Wiremock as YCLIENTS, the real engine, a real SQLite store.

use std::sync::Arc;

use crm_yclients::{Credentials, Flavor, RateLimiter, YclientsAdapter, YclientsConfig};
use loyalty_core::model::{CrmConnection, NewConnection, NewPartner, PartnerId};
use loyalty_core::{
    Bps, CrmAdapter, CrmKind, EngineError, LoyaltyEngine, Outcome, Phone, Points, Program, Store,
};
use loyalty_store::SqlStore;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A salon (5 % cashback) on SQLite with a YCLIENTS connection for company 4564 whose API is
/// the mock server.
struct World {
    store: Arc<dyn Store>,
    partner: PartnerId,
    connection: CrmConnection,
    adapter: YclientsAdapter,
    /// Holds the SQLite file; a test must bind it (`dir: _dir`) so it lives as long as the store.
    dir: tempfile::TempDir,
}

async fn world(server: &MockServer) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::connect(&format!("sqlite://{}/l.db", dir.path().display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    let partner = store
        .create_partner(
            &NewPartner {
                name: "Салон".into(),
                program: Program::with_cashback(Bps::new(500).unwrap()),
            },
            0,
        )
        .await
        .unwrap()
        .id;
    let connection = store
        .create_connection(&connect(partner, "4564", "s"), 0)
        .await
        .unwrap();
    let mut config = YclientsConfig::new(Flavor::YCLIENTS, "4564");
    config.base_url = Some(server.uri());
    let adapter = YclientsAdapter::with_api(
        config,
        crm_yclients::http_client().unwrap(),
        Arc::new(RateLimiter::new(100, 1_000)),
        Credentials {
            partner_token: "p".into(),
            user_token: Some("u".into()),
            login: None,
        },
    );
    World {
        store,
        partner,
        connection,
        adapter,
        dir,
    }
}

fn connect(partner: PartnerId, company: &str, secret: &str) -> NewConnection {
    NewConnection {
        partner_id: partner,
        kind: CrmKind::Yclients,
        company_id: company.into(),
        credentials_ref: "test".into(),
        webhook_secret: secret.into(),
    }
}

#[tokio::test]
async fn a_partial_record_is_refetched_then_accrued() {
    let server = MockServer::start().await;
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!(
            "{}/../../fixtures/yclients/api_record_came.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    let mut undecidable = record.clone();
    if let Some(data) = undecidable["data"].as_object_mut() {
        data.remove("attendance");
        data.remove("visit_attendance");
        data.insert("id".into(), 3.into());
    }
    Mock::given(method("GET"))
        .and(path("/record/4564/2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(record))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/record/4564/3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(undecidable))
        .expect(1)
        .mount(&server)
        .await;

    let World {
        store,
        partner,
        connection,
        adapter,
        dir: _dir,
    } = world(&server).await;
    let partial = r#"{"company_id": 4564, "resource": "record", "resource_id": 2, "status": "update",
                      "data": {"id": 2, "comment": "перезвонить"}}"#;
    let events = adapter
        .parse_webhook(Some("application/json"), partial.as_bytes())
        .unwrap();
    let engine = LoyaltyEngine::new(store.clone());
    // Without the adapter the engine refuses to guess.
    assert!(engine.apply_event(&connection, &events[0]).await.is_err());
    let outcome = engine
        .apply_event_via(&adapter, &connection, &events[0])
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Applied { .. }), "{outcome:?}");
    // The record came, 100 ₽ at 5 %: 5 points for the client the CRM names.
    let phone = Phone::parse_international("+79001234567").unwrap();
    let client = store
        .client_by_phone(partner, &phone)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.balance(partner, client.id).await.unwrap(), Points(5));
    // The CRM's own record lacks attendance too: the engine refuses to guess, posts nothing.
    let partial = partial.replace("\"resource_id\": 2", "\"resource_id\": 3");
    let events = adapter.parse_webhook(None, partial.as_bytes()).unwrap();
    let err = engine
        .apply_event_via(&adapter, &connection, &events[0])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        EngineError::NeedsRefetch {
            record_id: "3".into()
        }
    );
    assert_eq!(store.entry_count(partner).await.unwrap(), 1);
}

fn fixture(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/../../fixtures/yclients/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The record of `record_came.json` (4 000 ₽, client +7 900 123-45-67) with `paid_full` and a
/// change time of its own.
fn came(paid_full: u8, minute: u8) -> Vec<u8> {
    let mut body = fixture("record_came.json");
    body["data"]["paid_full"] = paid_full.into();
    body["data"]["last_change_date"] = format!("2026-11-24T12:{minute:02}:00+03:00").into();
    serde_json::to_vec(&body).unwrap()
}

#[tokio::test]
async fn the_part_of_a_bill_paid_with_a_certificate_or_points_earns_nothing() {
    let server = MockServer::start().await;
    // 4 000 ₽ paid 2 200 cash, 1 000 by certificate, 500 in points, 300 from a deposit.
    Mock::given(method("GET"))
        .and(path("/visit/details/4564/2/8263004"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("api_visit_details_loyalty.json")),
        )
        .expect(2)
        .mount(&server)
        .await;

    let World {
        store,
        partner,
        connection,
        adapter,
        dir: _dir,
    } = world(&server).await;
    let engine = LoyaltyEngine::new(store.clone());
    let phone = Phone::parse_international("+79001234567").unwrap();
    let balance = || async {
        let client = store.client_by_phone(partner, &phone).await.unwrap();
        store.balance(partner, client.unwrap().id).await.unwrap()
    };

    // The visit came, the bill is not settled yet: 5 % of all 4 000 ₽, and nothing is asked.
    let events = adapter.parse_webhook(None, &came(0, 1)).unwrap();
    let outcome = engine
        .apply_event_via(&adapter, &connection, &events[0])
        .await
        .unwrap();
    assert_eq!(outcome.delta(), Points(200));
    assert!(server.received_requests().await.unwrap().is_empty());

    // Settled: the engine will not apply it without knowing how it was paid...
    let events = adapter.parse_webhook(None, &came(1, 2)).unwrap();
    assert_eq!(
        engine.apply_event(&connection, &events[0]).await,
        Err(EngineError::PaymentsUnknown {
            record_id: "2".into()
        })
    );
    assert_eq!(balance().await, Points(200));
    // ...and asks: 1 500 ₽ of 4 000 went on a certificate and points, so 2 500 earn: 125.
    let outcome = engine
        .apply_event_via(&adapter, &connection, &events[0])
        .await
        .unwrap();
    assert_eq!(outcome.delta(), Points(-75));
    assert_eq!(balance().await, Points(125));
    let asked = server.received_requests().await.unwrap();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].method.as_str(), "GET");
    assert_eq!(asked[0].url.query(), None);
    assert!(asked[0].body.is_empty());
    let sent = |name: &str| asked[0].headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(sent("authorization"), Some("Bearer p, User u"));
    assert_eq!(sent("accept"), Some("application/vnd.yclients.v2+json"));
    // The same settled delivery again: asked again (the answer is part of what is compared),
    // then a duplicate that changes nothing.
    let again = engine
        .apply_event_via(&adapter, &connection, &events[0])
        .await
        .unwrap();
    assert_eq!(again, Outcome::Duplicate);
    assert_eq!(balance().await, Points(125));

    // A connection without API credentials cannot ask: its settled visit earns on all of it.
    let blind = store
        .create_connection(&connect(partner, "4565", "t"), 0)
        .await
        .unwrap();
    let mut other = fixture("record_came.json");
    other["company_id"] = 4565.into();
    other["data"]["id"] = 5.into();
    other["resource_id"] = 5.into();
    let without_api = YclientsAdapter::new(YclientsConfig::new(Flavor::YCLIENTS, "4565"));
    let events = without_api
        .parse_webhook(None, &serde_json::to_vec(&other).unwrap())
        .unwrap();
    let outcome = engine
        .apply_event_via(&without_api, &blind, &events[0])
        .await
        .unwrap();
    assert_eq!(outcome.delta(), Points(200));
    assert_eq!(balance().await, Points(325));
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_failed_question_about_payments_applies_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/visit/details/4564/2/8263004"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let World {
        store,
        partner,
        connection,
        adapter,
        dir: _dir,
    } = world(&server).await;
    let engine = LoyaltyEngine::new(store.clone());
    let events = adapter.parse_webhook(None, &came(1, 3)).unwrap();
    let err = engine
        .apply_event_via(&adapter, &connection, &events[0])
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Crm(_)), "{err:?}");
    // Nothing was posted: the delivery can be applied again once the CRM answers.
    assert_eq!(store.entry_count(partner).await.unwrap(), 0);
}
