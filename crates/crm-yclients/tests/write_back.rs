//! The redemption saga against a wiremock YCLIENTS: the real engine on a real SQLite store
//! writes rewards into the CRM through the real adapter. Every CRM request is asserted, and
//! the faults the saga must survive are played: a timeout after the CRM created the
//! certificate, 5xx every time, a gateway stopped mid-call, a card top-up whose answer was lost,
//! a card whose balance moved, two workers on one redemption.

use std::sync::Arc;
use std::time::Duration;

use crm_yclients::{
    Credentials, Flavor, RateLimiter, RewardSetup, Transport, YclientsAdapter, YclientsConfig,
};
use loyalty_core::code::Code;
use loyalty_core::engine::{
    AdapterSource, CERTIFICATE_GRACE_MS, Resolution, WriteBackOutcome, WriteBackPolicy,
};
use loyalty_core::model::{NewConnection, NewPartner};
use loyalty_core::outbox::Notification;
use loyalty_core::redemption::{Redemption, RedemptionStatus, Strategy, Target};
use loyalty_core::store::HoldStatus;
use loyalty_core::{
    Bps, ClientId, ConnectionId, CrmAdapter, CrmConnection, CrmKind, LoyaltyEngine, ManualClock,
    NewReward, PartnerId, Phone, Points, Program, Reward, RewardKind, Store, StoreError,
};
use loyalty_store::SqlStore;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PHONE: &str = "+79001234567";
const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn ok(data: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({ "success": true, "data": data, "meta": [] }))
}

fn slow() -> ResponseTemplate {
    ok(json!({ "id": 1 })).set_delay(Duration::from_secs(3))
}

struct Salon {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    engine: LoyaltyEngine,
    clock: Arc<ManualClock>,
    partner: PartnerId,
    connection: CrmConnection,
    client: ClientId,
    reward: Reward,
    adapter: Arc<dyn CrmAdapter>,
}

/// A salon on YCLIENTS company 4564 whose client (linked to chat 4242) has 1 000 points, a
/// reward of a 1 000 ₽ certificate for 500 points, and the adapter set up with `setup`.
async fn salon(server: &MockServer, setup: RewardSetup) -> Salon {
    let dir = tempfile::tempdir().unwrap();
    let sql = SqlStore::connect(&format!("sqlite://{}/l.db", dir.path().display()))
        .await
        .unwrap();
    sql.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(sql);
    let partner = store
        .create_partner(
            &NewPartner {
                name: "Лотос".into(),
                program: Program::with_cashback(Bps::new(500).unwrap()),
            },
            T0,
        )
        .await
        .unwrap()
        .id;
    let connection = store
        .create_connection(
            &NewConnection {
                partner_id: partner,
                kind: CrmKind::Yclients,
                company_id: "4564".into(),
                credentials_ref: "test".into(),
                webhook_secret: "s".into(),
            },
            T0,
        )
        .await
        .unwrap();
    let mut config = YclientsConfig::new(Flavor::YCLIENTS, "4564");
    config.base_url = Some(server.uri());
    config.rewards = Some(setup);
    let adapter = YclientsAdapter::with_api(
        config,
        crm_yclients::http_client().unwrap(),
        Arc::new(RateLimiter::new(1_000, 100_000)),
        Credentials {
            partner_token: "partner-token".into(),
            user_token: Some("user-token".into()),
            login: None,
        },
    )
    .with_transport(Transport {
        timeout: Duration::from_millis(400),
        base_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        ..Transport::default()
    });
    let clock = Arc::new(ManualClock::new(T0));
    let engine = LoyaltyEngine::with_clock(store.clone(), clock.clone());
    // The client comes from a closed visit (its bill not settled yet, so nothing is asked
    // about how it was paid), then gets points up to 1 000.
    let body = std::fs::read_to_string(format!(
        "{}/../../fixtures/yclients/record_came.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replace("\"paid_full\": 1", "\"paid_full\": 0");
    assert!(body.contains("\"paid_full\": 0"));
    let events = adapter
        .parse_webhook(Some("application/json"), body.as_bytes())
        .unwrap();
    engine.apply_event(&connection, &events[0]).await.unwrap();
    let phone = Phone::parse_international(PHONE).unwrap();
    let client = store
        .client_by_phone(partner, &phone)
        .await
        .unwrap()
        .unwrap()
        .id;
    let balance = store.balance(partner, client).await.unwrap();
    engine
        .manual_accrual(partner, client, Points(1_000) - balance, "top", "top")
        .await
        .unwrap();
    store.link_chat(&phone, 4242).await.unwrap();
    let reward = store
        .create_reward(
            partner,
            &NewReward {
                title: "Сертификат 1 000 ₽".into(),
                cost: Points(500),
                kind: RewardKind::Certificate {
                    value_minor: 100_000,
                },
            },
            T0,
        )
        .await
        .unwrap();
    Salon {
        _dir: dir,
        store,
        engine,
        clock,
        partner,
        connection,
        client,
        reward,
        adapter: Arc::new(adapter),
    }
}

fn certificate_setup() -> RewardSetup {
    RewardSetup::CrmCertificate {
        good_id: "777".into(),
        storage_id: "55".into(),
    }
}

fn card_setup() -> RewardSetup {
    RewardSetup::LoyaltyCard {
        chain_id: "145071".into(),
        card_type_id: "8230".into(),
    }
}

fn the_code() -> Code {
    Code::from_entropy([7; 8])
}

/// Few tries with short pauses, so a test can run them all.
fn policy() -> WriteBackPolicy {
    WriteBackPolicy {
        max_attempts: 3,
        first_pause_ms: 60_000,
        max_pause_ms: 60_000,
    }
}

impl Salon {
    async fn redeem(&self, strategy: Strategy) -> Redemption {
        self.engine
            .redeem(
                self.partner,
                self.client,
                &self.reward,
                "tg:1",
                Target::crm(strategy, self.connection.id),
                &the_code,
            )
            .await
            .unwrap()
    }

    async fn now(&self, code: &Code) -> Redemption {
        self.store.redemption_by_code(code).await.unwrap().unwrap()
    }

    async fn balance(&self) -> Points {
        self.store.balance(self.partner, self.client).await.unwrap()
    }

    async fn hold(&self, r: &Redemption) -> HoldStatus {
        self.store
            .hold(self.partner, r.hold_id)
            .await
            .unwrap()
            .unwrap()
            .status
    }

    async fn last_note(&self) -> Notification {
        let outbox = self.store.outbox_of(self.partner).await.unwrap();
        outbox.last().unwrap().notification.clone()
    }

    async fn pass(&self) -> WriteBackOutcome {
        let r = self.now(&the_code()).await;
        self.engine
            .write_back(&r, self.adapter.as_ref(), &policy())
            .await
            .unwrap()
    }
}

/// The client's certificates: none, then (once `created` is mounted) the one with our code.
async fn certificates(server: &MockServer, before: u64) {
    Mock::given(method("GET"))
        .and(path("/loyalty/certificates/"))
        .and(query_param("company_id", "4564"))
        .and(query_param("phone", "79001234567"))
        .respond_with(ok(json!([])))
        .up_to_n_times(before)
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/loyalty/certificates/"))
        .respond_with(ok(json!([
            { "id": 409726, "number": "888", "balance": 500, "type_id": 27841, "status_id": 2 },
            { "id": 409901, "number": the_code().to_string(), "balance": 1000,
              "default_balance": 1000, "type_id": 27841, "status_id": 1 }
        ])))
        .with_priority(2)
        .mount(server)
        .await;
}

/// The CRM's side of one certificate sale: the client is found, one document is opened and
/// one sale of the exact body is answered with `sale`.
async fn crm_sells(server: &MockServer, sale: ResponseTemplate) {
    client_search(server).await;
    document(server).await;
    Mock::given(method("POST"))
        .and(path("/storage_operations/goods_transactions/4564"))
        .and(body_json(sale_body()))
        .respond_with(sale)
        .expect(1)
        .mount(server)
        .await;
}

async fn client_search(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/company/4564/clients/search"))
        .respond_with(ok(json!([
            { "id": 18936825, "name": "Иванов", "phone": "+7 900 123-45-67" }
        ])))
        .mount(server)
        .await;
}

async fn document(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/storage_operations/documents/4564"))
        .respond_with(ok(json!({ "id": 5010, "type_id": 1, "storage_id": 55 })))
        .expect(1)
        .mount(server)
        .await;
}

fn sale_body() -> Value {
    let comment = format!("Loyalty Bridge {}: Сертификат 1 000 ₽", the_code());
    json!({
        "document_id": 5010, "good_id": 777, "amount": -1, "cost_per_unit": 1000,
        "discount": 100, "cost": 0, "operation_unit_type": 1,
        "good_special_number": the_code().to_string(), "client_id": 18936825,
        "comment": comment,
    })
}

async fn requests_to(server: &MockServer, p: &str) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == p)
        .collect()
}

#[tokio::test]
async fn certificate_sale_follows_the_documented_assumption() {
    let server = MockServer::start().await;
    certificates(&server, 1).await;
    crm_sells(
        &server,
        ok(json!({ "id": 88001, "document_id": 5010, "good_id": 777 })),
    )
    .await;
    let s = salon(&server, certificate_setup()).await;
    let r = s.redeem(Strategy::CrmCertificate).await;
    assert_eq!(r.status, RedemptionStatus::Pending);
    assert_eq!(s.balance().await, Points(500), "held at once");

    let outcome = s.pass().await;
    let WriteBackOutcome::Issued(done) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(done.status, RedemptionStatus::Issued);
    assert_eq!(done.write_back.external_id.as_deref(), Some("409901"));
    assert_eq!(done.write_back.next_attempt_at_ms, None);
    assert_eq!(s.hold(&done).await, HoldStatus::Pending, "spent when used");
    assert_eq!(s.balance().await, Points(500));
    assert!(matches!(
        s.last_note().await,
        Notification::RewardReady { strategy: Strategy::CrmCertificate, value_minor: 100_000, ref code, .. }
            if *code == the_code().to_string()
    ));

    // The exact document: a sale from storage 55, stamped in the company's time (UTC+3).
    let docs = requests_to(&server, "/storage_operations/documents/4564").await;
    let doc: Value = serde_json::from_slice(&docs[0].body).unwrap();
    assert_eq!(doc["type_id"], 1);
    assert_eq!(doc["storage_id"], 55);
    assert_eq!(
        doc["comment"],
        format!("Loyalty Bridge {}: Сертификат 1 000 ₽", the_code())
    );
    let stamp = doc["create_date"].as_str().unwrap();
    assert!(stamp.ends_with("+03:00") && stamp.len() == 25, "{stamp}");
    assert_eq!(doc.as_object().unwrap().len(), 4);
    for req in docs.iter().chain(
        requests_to(&server, "/storage_operations/goods_transactions/4564")
            .await
            .iter(),
    ) {
        assert_eq!(
            req.headers.get("authorization").unwrap(),
            "Bearer partner-token, User user-token"
        );
        assert_eq!(
            req.headers.get("accept").unwrap(),
            "application/vnd.yclients.v2+json"
        );
    }
    // Looked for before creating, and read back after.
    assert_eq!(
        requests_to(&server, "/loyalty/certificates/").await.len(),
        2
    );
    // A second pass has nothing to do.
    assert_eq!(s.pass().await, WriteBackOutcome::Skipped);
}

#[tokio::test]
async fn a_certificate_created_before_a_timeout_is_found_not_created_again() {
    let server = MockServer::start().await;
    certificates(&server, 1).await;
    // The CRM creates the certificate but the answer never arrives in time.
    crm_sells(&server, slow()).await;
    let s = salon(&server, certificate_setup()).await;
    s.redeem(Strategy::CrmCertificate).await;

    let first = s.pass().await;
    assert_eq!(
        first,
        WriteBackOutcome::Retry {
            code: the_code(),
            next_attempt_at_ms: T0 + 60_000
        }
    );
    let r = s.now(&the_code()).await;
    assert_eq!(r.status, RedemptionStatus::Pending);
    assert_eq!(r.write_back.attempts, 1);
    assert!(r.write_back.last_error.unwrap().contains("timed out"));
    // Not due before the pause is over.
    assert_eq!(s.pass().await, WriteBackOutcome::Skipped);

    s.clock.advance_ms(60_000);
    let second = s.pass().await;
    let WriteBackOutcome::Issued(done) = second else {
        panic!("{second:?}");
    };
    assert_eq!(done.write_back.external_id.as_deref(), Some("409901"));
    assert_eq!(done.write_back.attempts, 2);
    // `expect(1)` on the sale and the document (`crm_sells`): verified when the server drops.
}

#[tokio::test]
async fn five_hundreds_every_time_release_the_hold_and_tell_the_client() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/loyalty/certificates/"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let s = salon(&server, certificate_setup()).await;
    let r = s.redeem(Strategy::CrmCertificate).await;
    assert_eq!(s.balance().await, Points(500));

    for attempt in 1..=2 {
        let outcome = s.pass().await;
        assert!(
            matches!(outcome, WriteBackOutcome::Retry { .. }),
            "try {attempt}: {outcome:?}"
        );
        s.clock.advance_ms(60_000);
    }
    let last = s.pass().await;
    let WriteBackOutcome::Failed(failed) = last else {
        panic!("{last:?}");
    };
    assert_eq!(failed.status, RedemptionStatus::Failed);
    assert!(failed.write_back.last_error.unwrap().contains("503"));
    assert_eq!(s.hold(&r).await, HoldStatus::Voided);
    assert_eq!(s.balance().await, Points(1_000), "every point is back");
    assert_eq!(
        s.last_note().await,
        Notification::RewardFailed {
            title: "Сертификат 1 000 ₽".into(),
            points: Points(500),
            balance: Points(1_000),
        }
    );
    // Nothing was created, and nothing is due any more.
    assert!(
        requests_to(&server, "/storage_operations/documents/4564")
            .await
            .is_empty()
    );
    s.clock.advance_ms(3_600_000);
    assert!(
        s.store
            .due_write_backs(s.engine.now_ms(), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The gateway's connections, for the recovery pass.
struct OneConnection(ConnectionId, Arc<dyn CrmAdapter>);

#[async_trait::async_trait]
impl AdapterSource for OneConnection {
    async fn adapter(&self, c: ConnectionId) -> Result<Option<Arc<dyn CrmAdapter>>, StoreError> {
        Ok((c == self.0).then(|| self.1.clone()))
    }
}

#[tokio::test]
async fn a_gateway_stopped_mid_call_is_recovered_on_start() {
    let server = MockServer::start().await;
    certificates(&server, 1).await;
    crm_sells(&server, slow()).await;
    let s = salon(&server, certificate_setup()).await;
    s.redeem(Strategy::CrmCertificate).await;
    let source = OneConnection(s.connection.id, s.adapter.clone());

    // The gateway dies while the sale is in flight: its future is dropped mid-call.
    let killed = tokio::time::timeout(
        Duration::from_millis(250),
        s.engine.write_back_due(&source, &policy()),
    )
    .await;
    assert!(killed.is_err(), "the pass was cut off");
    assert_eq!(
        requests_to(&server, "/storage_operations/goods_transactions/4564")
            .await
            .len(),
        1
    );
    let r = s.now(&the_code()).await;
    assert_eq!(
        (r.status, r.write_back.attempts),
        (RedemptionStatus::Pending, 1)
    );

    // A new engine on the same database (the restarted gateway). Right away the claim still
    // stands (another instance could be mid-call); after the pause it finishes the job.
    let restarted = LoyaltyEngine::with_clock(s.store.clone(), s.clock.clone());
    let pass = restarted.write_back_due(&source, &policy()).await.unwrap();
    assert!(pass.is_empty(), "{pass:?}");
    s.clock.advance_ms(60_000);
    let pass = restarted.write_back_due(&source, &policy()).await.unwrap();
    assert_eq!(pass.issued, 1, "{pass:?}");
    let r = s.now(&the_code()).await;
    assert_eq!(r.status, RedemptionStatus::Issued);
    assert_eq!(r.write_back.external_id.as_deref(), Some("409901"));
}

#[tokio::test]
async fn two_workers_on_one_redemption_write_it_once() {
    let server = MockServer::start().await;
    certificates(&server, 1).await;
    crm_sells(&server, ok(json!({ "id": 88001 }))).await;
    let s = salon(&server, certificate_setup()).await;
    s.redeem(Strategy::CrmCertificate).await;
    let source = OneConnection(s.connection.id, s.adapter.clone());
    let other = LoyaltyEngine::with_clock(s.store.clone(), s.clock.clone());
    let policy = policy();
    let (a, b) = tokio::join!(
        s.engine.write_back_due(&source, &policy),
        other.write_back_due(&source, &policy)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.issued + b.issued, 1, "{a:?} {b:?}");
    assert_eq!(s.now(&the_code()).await.status, RedemptionStatus::Issued);
}

fn card(balance: i64) -> Value {
    json!([{ "id": 9210520, "balance": balance, "points": 0, "number": "79001234567",
             "type_id": 8230, "salon_group_id": 145071 },
           { "id": 9210521, "balance": 7, "type_id": 10992, "salon_group_id": 145071 }])
}

async fn cards(server: &MockServer, first: Value, later: Value) {
    let p = "/loyalty/cards/79001234567/145071/4564";
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(ok(first))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(ok(later))
        .with_priority(2)
        .mount(server)
        .await;
}

fn top_up_body() -> Value {
    json!({ "amount": 1000, "title": format!("Loyalty Bridge {}: Сертификат 1 000 ₽", the_code()) })
}

#[tokio::test]
async fn a_missing_card_is_issued_then_topped_up_and_the_points_are_spent() {
    let server = MockServer::start().await;
    cards(&server, json!([]), json!([])).await;
    Mock::given(method("POST"))
        .and(path("/loyalty/cards/4564"))
        .and(body_json(json!({ "loyalty_card_number": "79001234567",
                                "loyalty_card_type_id": "8230", "phone": 79001234567u64 })))
        .respond_with(ok(json!({ "id": 9250498, "balance": 0, "type_id": 8230 })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(
            "/company/4564/loyalty/cards/9250498/manual_transaction",
        ))
        .and(body_json(top_up_body()))
        .respond_with(ok(
            json!({ "id": 9250498, "balance": 1000, "type_id": 8230 }),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let s = salon(&server, card_setup()).await;
    let r = s.redeem(Strategy::LoyaltyCard).await;
    let outcome = s.pass().await;
    let WriteBackOutcome::Delivered(done) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(done.status, RedemptionStatus::Used);
    assert_eq!(done.write_back.external_id.as_deref(), Some("9250498"));
    assert_eq!(done.write_back.witness_minor, Some(0));
    assert_eq!(s.hold(&r).await, HoldStatus::Posted);
    assert_eq!(s.balance().await, Points(500));
    assert!(matches!(
        s.last_note().await,
        Notification::RewardReady {
            strategy: Strategy::LoyaltyCard,
            ..
        }
    ));
    // Spent means spent: the code is not for the desk.
    assert!(s.engine.use_code(&the_code()).await.is_err());
}

#[tokio::test]
async fn a_card_top_up_whose_answer_was_lost_is_not_sent_twice() {
    let server = MockServer::start().await;
    // 100 ₽ on the card before; 1 100 ₽ after the top-up that timed out.
    cards(&server, card(100), card(1_100)).await;
    Mock::given(method("POST"))
        .and(path(
            "/company/4564/loyalty/cards/9210520/manual_transaction",
        ))
        .and(body_json(top_up_body()))
        .respond_with(slow())
        .expect(1)
        .mount(&server)
        .await;
    let s = salon(&server, card_setup()).await;
    s.redeem(Strategy::LoyaltyCard).await;
    assert!(matches!(s.pass().await, WriteBackOutcome::Retry { .. }));
    let r = s.now(&the_code()).await;
    assert_eq!(r.write_back.witness_minor, Some(10_000));
    assert_eq!(r.write_back.external_id.as_deref(), Some("9210520"));
    s.clock.advance_ms(60_000);
    let outcome = s.pass().await;
    assert!(
        matches!(outcome, WriteBackOutcome::Delivered(ref d) if d.status == RedemptionStatus::Used),
        "{outcome:?}"
    );
    assert_eq!(s.balance().await, Points(500));
}

#[tokio::test]
async fn a_card_whose_balance_moved_is_left_to_the_operator() {
    let server = MockServer::start().await;
    cards(&server, card(100), card(50)).await;
    Mock::given(method("POST"))
        .and(path(
            "/company/4564/loyalty/cards/9210520/manual_transaction",
        ))
        .respond_with(ResponseTemplate::new(504))
        .expect(1)
        .mount(&server)
        .await;
    let s = salon(&server, card_setup()).await;
    s.redeem(Strategy::LoyaltyCard).await;
    assert!(matches!(s.pass().await, WriteBackOutcome::Retry { .. }));
    s.clock.advance_ms(60_000);
    let outcome = s.pass().await;
    let WriteBackOutcome::NeedsOperator { reason, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(reason.contains("9210520") && reason.contains("10000") && reason.contains("5000"));
    let r = s.now(&the_code()).await;
    assert_eq!(r.status, RedemptionStatus::Pending);
    assert_eq!(r.write_back.next_attempt_at_ms, None);
    assert_eq!(r.write_back.last_error.as_deref(), Some(reason.as_str()));
    s.clock.advance_ms(86_400_000);
    assert!(
        s.store
            .due_write_backs(s.engine.now_ms(), 10)
            .await
            .unwrap()
            .is_empty(),
        "the gateway does not guess"
    );
    // The operator checked the card: it was not topped up.
    let r = s
        .engine
        .resolve_write_back(&the_code(), Resolution::NotWritten)
        .await
        .unwrap();
    assert_eq!(r.status, RedemptionStatus::Failed);
    assert_eq!(s.balance().await, Points(1_000));
}

#[tokio::test]
async fn a_certificate_the_crm_shows_spent_is_marked_used() {
    let server = MockServer::start().await;
    let p = "/loyalty/certificates/";
    let cert = |balance: i64| {
        ok(
            json!([{ "id": 409901, "number": the_code().to_string(), "balance": balance,
                    "default_balance": 1000, "type_id": 27841, "status_id": 1 }]),
        )
    };
    // Not there before the sale; whole after it and at the first check; then 400 ₽ paid with it.
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(ok(json!([])))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(cert(1000))
        .up_to_n_times(2)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(cert(600))
        .with_priority(3)
        .mount(&server)
        .await;
    crm_sells(&server, ok(json!({ "id": 88001 }))).await;
    let s = salon(&server, certificate_setup()).await;
    let r = s.redeem(Strategy::CrmCertificate).await;
    let source = OneConnection(s.connection.id, s.adapter.clone());
    assert!(matches!(s.pass().await, WriteBackOutcome::Issued(_)));

    let first = s.engine.close_spent_certificates(&source).await.unwrap();
    assert_eq!((first.used, first.unspent, first.unknown), (0, 1, 0));
    assert_eq!(first.expired, 0);
    assert_eq!(s.now(&the_code()).await.status, RedemptionStatus::Issued);
    let second = s.engine.close_spent_certificates(&source).await.unwrap();
    assert_eq!(second.used, 1);
    assert_eq!(s.now(&the_code()).await.status, RedemptionStatus::Used);
    assert_eq!(s.hold(&r).await, HoldStatus::Posted);
    assert_eq!(s.balance().await, Points(500));
    // Used is final: nothing left to check.
    let third = s.engine.close_spent_certificates(&source).await.unwrap();
    assert_eq!((third.used, third.unspent, third.unknown), (0, 0, 0));
}

/// A CRM certificate past its date: the CRM is asked first. Down, it stays issued (its points
/// held); then spent in the CRM (the "used" webhook lost), it is used, not refunded.
#[tokio::test]
async fn a_certificate_past_its_date_is_asked_about_before_its_points_come_back() {
    let server = MockServer::start().await;
    let p = "/loyalty/certificates/";
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(ok(json!([])))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    // Whole right after the sale; then the CRM is down; then it shows it spent.
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(ok(json!([{ "id": 409901, "number": the_code().to_string(),
            "balance": 1000, "default_balance": 1000, "type_id": 27841, "status_id": 1 }])))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(ResponseTemplate::new(503))
        .with_priority(3)
        .mount(&server)
        .await;
    crm_sells(&server, ok(json!({ "id": 88001 }))).await;
    let s = salon(&server, certificate_setup()).await;
    let r = s.redeem(Strategy::CrmCertificate).await;
    let source = OneConnection(s.connection.id, s.adapter.clone());
    assert!(matches!(s.pass().await, WriteBackOutcome::Issued(_)));
    s.clock
        .advance_ms(r.expires_at_ms - s.engine.now_ms() + CERTIFICATE_GRACE_MS + 1);

    let down = s.engine.close_spent_certificates(&source).await.unwrap();
    assert_eq!((down.used, down.expired, down.unknown), (0, 0, 1));
    assert_eq!(s.now(&the_code()).await.status, RedemptionStatus::Issued);
    assert_eq!(s.hold(&r).await, HoldStatus::Pending);
    assert_eq!(s.balance().await, Points(500));
    server.reset().await;
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(ok(json!([{ "id": 409901, "number": the_code().to_string(),
            "balance": 0, "default_balance": 1000, "type_id": 27841, "status_id": 2 }])))
        .mount(&server)
        .await;
    let spent = s.engine.close_spent_certificates(&source).await.unwrap();
    assert_eq!((spent.used, spent.expired), (1, 0));
    assert_eq!(s.now(&the_code()).await.status, RedemptionStatus::Used);
    assert_eq!(s.hold(&r).await, HoldStatus::Posted);
    assert_eq!(s.balance().await, Points(500));
}

/// Past its date and whole in the CRM: it expires and the points come back; a day before the
/// grace ends it is left alone.
#[tokio::test]
async fn an_unspent_certificate_past_its_date_expires_and_gives_the_points_back() {
    let server = MockServer::start().await;
    let p = "/loyalty/certificates/";
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(ok(json!([])))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(ok(json!([{ "id": 409901, "number": the_code().to_string(),
            "balance": 1000, "default_balance": 1000, "type_id": 27841, "status_id": 1 }])))
        .with_priority(2)
        .mount(&server)
        .await;
    crm_sells(&server, ok(json!({ "id": 88001 }))).await;
    let s = salon(&server, certificate_setup()).await;
    let r = s.redeem(Strategy::CrmCertificate).await;
    let source = OneConnection(s.connection.id, s.adapter.clone());
    assert!(matches!(s.pass().await, WriteBackOutcome::Issued(_)));
    s.clock.advance_ms(r.expires_at_ms - s.engine.now_ms() + 1);
    let in_grace = s.engine.close_spent_certificates(&source).await.unwrap();
    assert_eq!((in_grace.unspent, in_grace.expired), (1, 0));
    s.clock.advance_ms(CERTIFICATE_GRACE_MS);
    let past = s.engine.close_spent_certificates(&source).await.unwrap();
    assert_eq!((past.unspent, past.expired), (0, 1));
    assert_eq!(s.now(&the_code()).await.status, RedemptionStatus::Expired);
    assert_eq!(s.hold(&r).await, HoldStatus::Voided);
    assert_eq!(s.balance().await, Points(1_000));
}
