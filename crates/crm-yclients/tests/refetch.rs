//! What a delivery needs from the CRM before the engine decides, and that it is asked by the
//! inbox worker, never in the webhook's own request: a partial record webhook (`{id, comment}`)
//! is fetched whole; a settled record's payments with certificates or points are read from its
//! visit only when the client holds credit of ours in the CRM. Wiremock as YCLIENTS, the real
//! engine, a real SQLite store.

use std::sync::Arc;

use async_trait::async_trait;
use crm_yclients::{Credentials, Flavor, RateLimiter, YclientsAdapter, YclientsConfig};
use loyalty_core::code::Code;
use loyalty_core::engine::AdapterSource;
use loyalty_core::inbox::{InboxPolicy, IntakeStore, Source};
use loyalty_core::model::{CrmConnection, NewConnection, NewPartner, PartnerId};
use loyalty_core::redemption::{Strategy, Target};
use loyalty_core::{
    Bps, ConnectionId, CrmAdapter, CrmKind, LoyaltyEngine, NewReward, Outcome, Phone, Points,
    Program, RewardKind, Store, StoreError,
};
use loyalty_store::SqlStore;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A salon (5 % cashback) on SQLite with a YCLIENTS connection for company 4564 whose API is
/// the mock server.
struct World {
    sql: Arc<SqlStore>,
    store: Arc<dyn Store>,
    engine: LoyaltyEngine,
    partner: PartnerId,
    connection: CrmConnection,
    adapter: Arc<YclientsAdapter>,
    /// Holds the SQLite file; a test must bind it (`dir: _dir`) so it lives as long as the store.
    dir: tempfile::TempDir,
}

/// The adapter of the one connection, as the gateway's connection cache would give it.
struct One(Arc<YclientsAdapter>, ConnectionId);

#[async_trait]
impl AdapterSource for One {
    async fn adapter(
        &self,
        connection: ConnectionId,
    ) -> Result<Option<Arc<dyn CrmAdapter>>, StoreError> {
        Ok((connection == self.1).then(|| self.0.clone() as Arc<dyn CrmAdapter>))
    }
}

async fn world(server: &MockServer) -> World {
    let dir = tempfile::tempdir().unwrap();
    let sql = SqlStore::connect(&format!("sqlite://{}/l.db", dir.path().display()))
        .await
        .unwrap();
    sql.migrate().await.unwrap();
    let sql = Arc::new(sql);
    let store: Arc<dyn Store> = sql.clone();
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
        engine: LoyaltyEngine::new(store.clone()),
        sql,
        store,
        partner,
        connection,
        adapter: Arc::new(adapter),
        dir,
    }
}

impl World {
    async fn accept(&self, body: &[u8]) -> Outcome {
        let events = self.adapter.parse_webhook(None, body).unwrap();
        self.engine
            .accept(
                self.sql.as_ref(),
                &self.connection,
                &events[0],
                Source::Webhook,
            )
            .await
            .unwrap()
    }

    /// One pass of the inbox worker, at once (no back-off wait in a test).
    async fn work(&self) -> loyalty_core::engine::InboxPass {
        let source = One(self.adapter.clone(), self.connection.id);
        let policy = InboxPolicy {
            first_pause_ms: 0,
            ..InboxPolicy::default()
        };
        self.engine
            .work_inbox(self.sql.as_ref(), &source, &policy)
            .await
            .unwrap()
    }

    async fn balance(&self, phone: &str) -> Points {
        let phone = Phone::parse_international(phone).unwrap();
        let client = self.store.client_by_phone(self.partner, &phone).await;
        let client = client.unwrap().expect("client");
        self.store.balance(self.partner, client.id).await.unwrap()
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

fn fixture(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/../../fixtures/yclients/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

const PARTIAL: &str = r#"{"company_id": 4564, "resource": "record", "resource_id": 2, "status": "update",
                          "data": {"id": 2, "comment": "перезвонить"}}"#;

#[tokio::test]
async fn a_partial_record_is_queued_then_refetched_and_accrued() {
    let server = MockServer::start().await;
    let record = fixture("api_record_came.json");
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
    let w = world(&server).await;
    let _dir = &w.dir;

    // The delivery is stored, not applied, and the CRM is not asked while it is taken in.
    let queued = w.accept(PARTIAL.as_bytes()).await;
    assert!(matches!(queued, Outcome::Queued { .. }), "{queued:?}");
    assert!(server.received_requests().await.unwrap().is_empty());
    assert_eq!(w.sql.inbox_stats().await.unwrap().queued, 1);
    // The worker fetches it: the record came, 100 ₽ at 5 %: 5 points.
    let pass = w.work().await;
    assert_eq!((pass.applied, pass.retried, pass.dead), (1, 0, 0));
    assert_eq!(w.balance("+79001234567").await, Points(5));
    assert_eq!(w.sql.inbox_stats().await.unwrap().queued, 0);

    // The CRM's own record lacks attendance too: nothing is guessed, the item waits.
    let partial = PARTIAL.replace("\"resource_id\": 2", "\"resource_id\": 3");
    w.accept(partial.as_bytes()).await;
    let pass = w.work().await;
    assert_eq!((pass.applied, pass.retried), (0, 1));
    let waiting = w.sql.inbox_items(false, 10).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert!(
        waiting[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("fetched"),
        "{waiting:?}"
    );
    assert_eq!(w.store.entry_count(w.partner).await.unwrap(), 1);
}

#[tokio::test]
async fn a_record_the_crm_no_longer_has_is_applied_as_deleted() {
    let server = MockServer::start().await;
    let came = fixture("api_record_came.json");
    Mock::given(method("GET"))
        .and(path("/record/4564/2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(came))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/record/4564/2"))
        .respond_with(ResponseTemplate::new(404).set_body_json(serde_json::json!(
            {"success": false, "data": null, "meta": {"message": "Запись не найдена"}}
        )))
        .mount(&server)
        .await;
    let w = world(&server).await;
    let _dir = &w.dir;
    w.accept(PARTIAL.as_bytes()).await;
    w.work().await;
    assert_eq!(w.balance("+79001234567").await, Points(5));
    // The next partial change finds the record gone: its points are taken back.
    w.accept(PARTIAL.as_bytes()).await;
    let pass = w.work().await;
    assert_eq!(pass.applied, 1);
    assert_eq!(w.balance("+79001234567").await, Points(0));
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
async fn a_settled_bill_is_asked_about_only_when_our_credit_can_have_paid_it() {
    let server = MockServer::start().await;
    // 4 000 ₽ paid 2 200 cash, 1 000 by certificate, 500 in points, 300 from a deposit.
    Mock::given(method("GET"))
        .and(path("/visit/details/4564/2/8263004"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("api_visit_details_loyalty.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let w = world(&server).await;
    let _dir = &w.dir;

    // The visit came, the bill is not settled yet: 5 % of all 4 000 ₽, and nothing is asked.
    assert_eq!(w.accept(&came(0, 1)).await.delta(), Points(200));
    // Settled, and the client holds nothing of ours in the CRM: paid in money, applied at once,
    // nothing asked (a duplicate of what was applied).
    assert_eq!(w.accept(&came(1, 2)).await.delta(), Points(0));
    assert!(server.received_requests().await.unwrap().is_empty());
    assert_eq!(w.balance("+79001234567").await, Points(200));

    // She exchanges 100 points for a certificate written into the CRM: from now on a bill of
    // hers may have been paid with it.
    let phone = Phone::parse_international("+79001234567").unwrap();
    let client = w.store.client_by_phone(w.partner, &phone).await.unwrap();
    let client = client.unwrap();
    let reward = w
        .store
        .create_reward(
            w.partner,
            &NewReward {
                title: "Сертификат 100 ₽".into(),
                cost: Points(100),
                kind: RewardKind::Certificate {
                    value_minor: 10_000,
                },
            },
            0,
        )
        .await
        .unwrap();
    w.engine
        .redeem(
            w.partner,
            client.id,
            &reward,
            "k1",
            Target::crm(Strategy::CrmCertificate, w.connection.id),
            &|| Code::from_entropy([1, 2, 3, 4, 5, 6, 7, 8]),
        )
        .await
        .unwrap();
    assert_eq!(w.balance("+79001234567").await, Points(100));

    // The next settled delivery is queued and asked about by the worker: 1 500 ₽ of 4 000
    // went on a certificate and points, so 2 500 earn 125 instead of 200.
    let queued = w.accept(&came(1, 3)).await;
    assert!(matches!(queued, Outcome::Queued { .. }), "{queued:?}");
    assert_eq!(w.work().await.applied, 1);
    assert_eq!(w.balance("+79001234567").await, Points(25));
    let asked = server.received_requests().await.unwrap();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].method.as_str(), "GET");
    assert_eq!(asked[0].url.query(), None);
    assert!(asked[0].body.is_empty());
    let sent = |name: &str| asked[0].headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(sent("authorization"), Some("Bearer p, User u"));
    assert_eq!(sent("accept"), Some("application/vnd.yclients.v2+json"));

    // A connection without API credentials cannot ask: its settled visit earns on all of it.
    let blind = w
        .store
        .create_connection(&connect(w.partner, "4565", "t"), 0)
        .await
        .unwrap();
    let mut other = fixture("record_came.json");
    other["company_id"] = 4565.into();
    other["data"]["id"] = 5.into();
    other["resource_id"] = 5.into();
    let without_api = Arc::new(YclientsAdapter::new(YclientsConfig::new(
        Flavor::YCLIENTS,
        "4565",
    )));
    let events = without_api
        .parse_webhook(None, &serde_json::to_vec(&other).unwrap())
        .unwrap();
    w.engine
        .accept(w.sql.as_ref(), &blind, &events[0], Source::Webhook)
        .await
        .unwrap();
    let pass = w
        .engine
        .work_inbox(
            w.sql.as_ref(),
            &One(without_api, blind.id),
            &InboxPolicy {
                first_pause_ms: 0,
                ..InboxPolicy::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(pass.applied, 1);
    assert_eq!(w.balance("+79001234567").await, Points(225));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_crm_that_fails_loses_nothing_and_is_asked_again() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/record/4564/2"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/record/4564/2"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(4)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/record/4564/2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("api_record_came.json")))
        .mount(&server)
        .await;
    let w = world(&server).await;
    let _dir = &w.dir;
    w.accept(PARTIAL.as_bytes()).await;
    // A 500, then 429s: each try fails after the client's own retries, nothing is posted, the
    // item waits with its error; once the CRM answers it is applied, once.
    let mut passes = Vec::new();
    loop {
        let pass = w.work().await;
        passes.push(pass);
        if pass.applied > 0 || passes.len() == 6 {
            break;
        }
        assert_eq!(pass.retried, 1, "{passes:?}");
        assert_eq!(w.store.entry_count(w.partner).await.unwrap(), 0);
        let waiting = w.sql.inbox_items(false, 10).await.unwrap();
        assert_eq!(waiting[0].attempts as usize, passes.len());
        assert!(waiting[0].last_error.is_some());
    }
    assert!(passes.len() >= 2, "the first try failed: {passes:?}");
    assert_eq!(passes.last().map(|p| p.applied), Some(1), "{passes:?}");
    let asked = server.received_requests().await.unwrap().len();
    assert_eq!(asked, 6, "a 500, four 429s, then the answer");
    assert_eq!(w.balance("+79001234567").await, Points(5));
    assert!(w.sql.inbox_items(false, 10).await.unwrap().is_empty());
    assert_eq!(w.sql.inbox_stats().await.unwrap().dead, 0);
}

#[tokio::test]
async fn a_crm_too_slow_to_answer_loses_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/record/4564/2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("api_record_came.json"))
                .set_delay(std::time::Duration::from_secs(3)),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/record/4564/2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("api_record_came.json")))
        .mount(&server)
        .await;
    let mut w = world(&server).await;
    let _dir = &w.dir;
    // Calls time out after 300 ms and are not retried inside the call.
    let transport = crm_yclients::Transport {
        timeout: std::time::Duration::from_millis(300),
        max_attempts: 1,
        ..crm_yclients::Transport::default()
    };
    w.adapter = Arc::new(w.adapter.as_ref().clone().with_transport(transport));
    w.accept(PARTIAL.as_bytes()).await;
    let slow = w.work().await;
    assert_eq!((slow.applied, slow.retried), (0, 1), "{slow:?}");
    let waiting = w.sql.inbox_items(false, 10).await.unwrap();
    assert!(
        waiting[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("timed out"),
        "{waiting:?}"
    );
    assert_eq!(w.store.entry_count(w.partner).await.unwrap(), 0);
    assert_eq!(w.work().await.applied, 1);
    assert_eq!(w.balance("+79001234567").await, Points(5));
}
