//! A partial record webhook (`{id, comment}`) is fetched whole from the CRM before the engine
//! decides: wiremock as YCLIENTS, the real engine, a real SQLite store.

use std::sync::Arc;

use crm_yclients::{Credentials, Flavor, RateLimiter, YclientsAdapter, YclientsConfig};
use loyalty_core::model::{NewConnection, NewPartner};
use loyalty_core::{
    Bps, CrmAdapter, CrmKind, EngineError, LoyaltyEngine, Outcome, Phone, Points, Program, Store,
};
use loyalty_store::SqlStore;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

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
        .unwrap();
    let connection = store
        .create_connection(
            &NewConnection {
                partner_id: partner.id,
                kind: CrmKind::Yclients,
                company_id: "4564".into(),
                credentials_ref: "test".into(),
                webhook_secret: "s".into(),
            },
            0,
        )
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
    let phone = Phone::parse("+70001234567").unwrap();
    let client = store
        .client_by_phone(partner.id, &phone)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.balance(partner.id, client.id).await.unwrap(),
        Points(5)
    );
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
    assert_eq!(store.entry_count(partner.id).await.unwrap(), 1);
}
