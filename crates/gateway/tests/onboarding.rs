//! Onboarding over real HTTP on PostgreSQL, against wiremock as YCLIENTS and Telegram: a salon
//! signs up, chooses YCLIENTS, enters its tokens; "check connection" says what works and what
//! does not; the webhook is subscribed by reading, merging and writing `hooks_settings`; the
//! import runs by itself and its progress shows; the connection turns green only when a real
//! delivery arrives; the clients' link and its QR code show. Other salons get 404, other roles
//! 403, a Basic salon is refused the connection, and every change is in the audit log.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::web::{PASSWORD, Web, salons};
use common::{PgSchema, serve_with};
use loyalty_core::audit::{AuditAction, AuditStore, Plan};
use loyalty_core::{PartnerId, PartnerStore};
use loyalty_gateway::config::Overrides;
use loyalty_gateway::sample::{Record, record_webhook};
use loyalty_gateway::{Gateway, StartOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "777:onboarding";
const OTHER_APP: &str = "https://other-app.example/hooks";

fn record(r: u64, days_ago: i64) -> Value {
    let mut body = record_webhook(&Record {
        company_id: "4564",
        record_id: 9_000 + r,
        client_id: 300 + r,
        client_name: "Клиентка",
        phone: &format!("7916555{r:04}"),
        cost: "2000",
        attendance: 1,
        deleted: false,
        changed_at_s: 60,
    });
    let at = chrono::Utc::now() - chrono::Duration::days(days_ago);
    body["data"]["datetime"] = json!(at.format("%Y-%m-%dT%H:%M:%S+00:00").to_string());
    body["data"]["date"] = json!(at.format("%Y-%m-%d %H:%M:%S").to_string());
    body
}

/// The journal's three records and the client base's three cards, one page each.
struct Journal;

impl Respond for Journal {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if request.url.path().ends_with("/clients/search") {
            let cards: Vec<Value> = (0..3)
                .map(|r| json!({"id": 300 + r, "name": "Клиентка", "phone": format!("7916555{r:04}")}))
                .collect();
            return ResponseTemplate::new(200).set_body_json(
                json!({"success": true, "data": cards, "meta": {"total_count": 3}}),
            );
        }
        let records: Vec<Value> = (0..3)
            .map(|r| record(r, 10 + r as i64)["data"].clone())
            .collect();
        ResponseTemplate::new(200)
            .set_body_json(json!({"success": true, "data": records, "meta": {"total_count": 3}}))
    }
}

/// YCLIENTS for company 4564: the journal and clients answer; the price list is refused for a
/// missing right.
async fn yclients() -> MockServer {
    let crm = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/records/4564"))
        .respond_with(Journal)
        .mount(&crm)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/company/4564/clients/search"))
        .respond_with(Journal)
        .mount(&crm)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/company/4564/services"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "success": false, "data": null,
            "meta": {"message": "Нет прав на просмотр услуг"}
        })))
        .mount(&crm)
        .await;
    crm
}

/// The location's webhook settings hold another app's URL; written back once, merged with
/// `ours`.
async fn hooks(crm: &MockServer, ours: &str) {
    Mock::given(method("GET"))
        .and(path("/api/v1/hooks_settings/4564"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "success": true,
            "data": {"urls": [OTHER_APP], "active": 1, "record": 0, "client": 0, "salon": 1},
            "meta": []
        })))
        .mount(crm)
        .await;
    let written = json!({
        "urls": [OTHER_APP, ours], "active": 1, "salon": 1,
        "record": 1, "client": 1, "goods_operations_sale": 1,
    });
    Mock::given(method("POST"))
        .and(path("/api/v1/hooks_settings/4564"))
        .and(body_json(&written))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"success": true, "data": written, "meta": []})),
        )
        .expect(1)
        .mount(crm)
        .await;
}

async fn telegram() -> MockServer {
    let telegram = common::telegram::telegram(TOKEN).await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/getMe")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": {
            "id": 777, "is_bot": true, "first_name": "Лотос", "username": "lotos_loyalty_bot"}})),
        )
        .mount(&telegram)
        .await;
    telegram
}

/// Polls the live fragment until it says `what` (the import runs in `serve`'s background).
async fn until(web: &mut Web, path: &str, what: &str) -> String {
    for _ in 0..100 {
        let page = web.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        if page.body.contains(what) {
            return page.body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never said {what:?}");
}

/// A gateway with sign-up open, its bot and YCLIENTS on stand-ins.
async fn onboarding_gateway(schema: &PgSchema) -> (Gateway, MockServer, MockServer) {
    let telegram = telegram().await;
    let crm = yclients().await;
    let overrides = Overrides {
        public_url: Some("https://loyalty.example".into()),
        telegram_bot_token: Some(TOKEN.into()),
        telegram_api_url: Some(telegram.uri()),
        telegram_webhook_secret: Some("s3cret".into()),
        yclients_api_url: Some(format!("{}/api/v1", crm.uri())),
        ..Overrides::default()
    };
    let options = StartOptions {
        dashboard: Some(loyalty_web::Settings {
            signup: Some(Plan::Pro),
            ..Default::default()
        }),
        ..StartOptions::default()
    };
    let (gateway, _) = serve_with(schema, overrides, options).await;
    (gateway, crm, telegram)
}

/// A delivery of record `r` at the gateway's live address (the public URL is a proxy's).
async fn deliver(gateway: &Gateway, hook: &str, r: u64) {
    let live = hook.replace(
        "https://loyalty.example",
        &format!("http://{}", gateway.addr),
    );
    let answer = reqwest::Client::new()
        .post(live)
        .json(&record(r, 0))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salon_signs_up_connects_yclients_and_turns_green_on_its_first_delivery() {
    let schema = PgSchema::new().await;
    let (gateway, crm, _telegram) = onboarding_gateway(&schema).await;
    let mut web = Web::new(gateway.addr);

    // Sign-up: a salon, its owner, a session, straight to the setup.
    let page = web.get("/login").await;
    assert!(page.body.contains(r#"href="/signup""#), "{}", page.body);
    let short = [
        ("name", "Лотос"),
        ("email", "Owner@Lotos.ru"),
        ("password", "short"),
    ];
    let page = web.post("/signup", &short).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("Не короче 10 символов"), "{}", page.body);
    let good = [
        ("name", "Лотос"),
        ("email", "Owner@Lotos.ru"),
        ("password", PASSWORD),
    ];
    let page = web.post("/signup", &good).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), Some("/setup"));
    let partner = PartnerId(1);
    let salon = gateway.store.partner(partner).await.unwrap().unwrap();
    assert_eq!(salon.name, "Лотос");
    assert_eq!(salon.plan, Plan::Pro);
    assert_eq!(salon.program.cashback.value(), 500, "5 % to start with");
    assert_eq!(salon.program.points_ttl_days, Some(365));
    // The same e-mail cannot make a second salon.
    let copy = [
        ("name", "Копия"),
        ("email", "owner@lotos.ru"),
        ("password", PASSWORD),
    ];
    let page = Web::new(gateway.addr).post("/signup", &copy).await;
    assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.body);
    assert!(gateway.store.partner(PartnerId(2)).await.unwrap().is_none());
    let home = web.get("/").await;
    assert!(home.body.contains(r#"id="setup-call""#), "{}", home.body);

    // Choose the CRM: its own fields; a missing token is named before any call.
    let page = web.get("/setup?crm=yclients").await;
    assert!(page.body.contains(r#"name="user_token""#), "{}", page.body);
    assert!(!page.body.contains(r#"name="app_secret""#));
    let half = [
        ("crm", "yclients"),
        ("company_id", "4564"),
        ("partner_token", "p"),
    ];
    let page = web.post("/setup/connect", &half).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.body.contains("Заполните поле: Пользовательский токен"),
        "{}",
        page.body
    );
    assert!(crm.received_requests().await.unwrap().is_empty());

    // Connected: the import is queued and starts at once (the importer is woken).
    let connect = [
        ("crm", "yclients"),
        ("company_id", "4564"),
        ("partner_token", "p"),
        ("user_token", "u"),
    ];
    let page = web.post("/setup/connect", &connect).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), Some("/setup/1"));
    let page = web.post("/setup/connect", &connect).await;
    assert!(
        page.body.contains("Этот филиал уже подключён"),
        "{}",
        page.body
    );
    let connection = gateway
        .store
        .connections_of(partner)
        .await
        .unwrap()
        .remove(0);
    let ours = format!(
        "https://loyalty.example/webhooks/yclients/{}",
        connection.webhook_secret
    );
    // The first press meets a user without the webhook settings' right: the page says so,
    // nothing is written, and once the right is given the next press subscribes.
    Mock::given(method("GET"))
        .and(path("/api/v1/hooks_settings/4564"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "success": false, "data": null,
            "meta": {"message": "Нет прав на изменение настроек уведомлений"}
        })))
        .up_to_n_times(1)
        .mount(&crm)
        .await;
    hooks(&crm, &ours).await;
    let page = web.post("/setup/1/webhooks", &[]).await;
    assert!(
        page.body
            .contains("Нет права или лицензии: выдайте пользователю доступ к API в CRM. (Нет прав на изменение настроек уведомлений)"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(r#"id="register""#),
        "the button is there again"
    );

    // The connection's page: the address, not yet green; the clients' link and its QR code.
    let page = web.get("/setup/1").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(&ours), "{}", page.body);
    assert!(
        page.body
            .contains("https://t.me/lotos_loyalty_bot?start=s1")
    );
    assert!(
        page.body
            .contains(r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 37 37" class="qr""#)
    );
    assert!(
        page.body.contains(r#"id="first-cashback">5 %"#),
        "{}",
        page.body
    );

    // Check: the journal and the client base work, the price list needs a right.
    let page = web.post("/setup/1/check", &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("Журнал записей: работает, получено 3"),
        "{}",
        page.body
    );
    assert!(page.body.contains("База клиентов: работает, получено 3"));
    assert!(
        page.body.contains("Услуги: Нет права или лицензии: выдайте пользователю доступ к API в CRM. (Нет прав на просмотр услуг)"),
        "{}",
        page.body
    );

    // The webhook: read, merged with the other app's, written once (the mock asserts it).
    let page = web.post("/setup/1/webhooks", &[]).await;
    assert!(
        page.body
            .contains("Вебхук подписан на: record, client, goods_operations_sale"),
        "{}",
        page.body
    );

    // The import finishes by itself; until a delivery comes the connection is not green.
    let live = until(&mut web, "/setup/1/status", "готово").await;
    assert!(live.contains("3 / 3"), "{live}");
    assert!(live.contains("Подключение ещё не подтверждено"), "{live}");
    assert!(
        live.contains("hx-trigger=\"every 2s\""),
        "still polling: {live}"
    );
    // A real delivery.
    deliver(&gateway, &ours, 7).await;
    let live = until(&mut web, "/setup/1/status", "Подключение работает").await;
    assert!(
        !live.contains("hx-trigger"),
        "done: no more polling: {live}"
    );

    // Audited as the owner.
    let log = gateway.store.audit_log(partner, 20).await.unwrap();
    let mine = |a: AuditAction| {
        log.iter()
            .find(|e| e.action == a)
            .map(|e| e.actor.name.clone())
    };
    assert_eq!(
        mine(AuditAction::CrmConnected).as_deref(),
        Some("owner@lotos.ru")
    );
    assert_eq!(
        mine(AuditAction::WebhooksRegistered).as_deref(),
        Some("owner@lotos.ru")
    );
    assert_eq!(
        mine(AuditAction::UserAdded).as_deref(),
        Some("owner@lotos.ru")
    );
    gateway.stop().await.unwrap();
    schema.drop().await;
}

/// Sign-up is closed unless the operator opens it; the setup is the owner's, of their own
/// salon; a Basic salon is refused the connection by the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_is_the_owners_of_their_own_salon_on_a_plan_with_the_crm() {
    let s = salons(StartOptions::default()).await;
    let mut anyone = Web::new(s.gateway.addr);
    assert_eq!(anyone.get("/signup").await.status, StatusCode::NOT_FOUND);
    let form = [("name", "X"), ("email", "x@x.ru"), ("password", PASSWORD)];
    assert_eq!(
        anyone.post("/signup", &form).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(!anyone.get("/login").await.body.contains("/signup"));

    // Роза connects a DIKIDI company (no credentials, no webhooks).
    let mut roza = s.web("owner@roza.ru").await;
    let page = roza
        .post("/setup/connect", &[("crm", "dikidi"), ("company_id", "55")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let target = page.location().unwrap().to_owned();
    let page = roza.get(&target).await;
    assert!(
        page.body.contains("DIKIDI не отправляет вебхуки"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Бот не настроен"), "{}", page.body);

    // Лотос's people: the owner gets 404 on Роза's connection, the others 403 on the setup.
    let mut owner = s.web("owner@lotos.ru").await;
    for path in [target.clone(), format!("{target}/status")] {
        assert_eq!(
            owner.get(&path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    for path in [format!("{target}/check"), format!("{target}/webhooks")] {
        assert_eq!(
            owner.post(&path, &[]).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    for who in ["desk@lotos.ru", "eyes@lotos.ru"] {
        let mut web = s.web(who).await;
        assert_eq!(
            web.get("/setup").await.status,
            StatusCode::FORBIDDEN,
            "{who}"
        );
        let page = web
            .post("/setup/connect", &[("crm", "dikidi"), ("company_id", "56")])
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{who}");
    }

    // Basic: the page says what it needs, the server refuses.
    let store = &s.gateway.store;
    store
        .set_plan(
            PartnerId(s.a),
            Plan::Basic,
            &loyalty_core::audit::Actor::system(),
            0,
        )
        .await
        .unwrap();
    let page = owner
        .post("/setup/connect", &[("crm", "dikidi"), ("company_id", "57")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(
        page.body.contains("Это доступно на тарифе Pro"),
        "{}",
        page.body
    );
    assert!(
        store
            .connections_of(PartnerId(s.a))
            .await
            .unwrap()
            .iter()
            .all(|c| c.company_id != "57")
    );
    s.finish().await;
}

/// The same five minutes in headless Chromium: sign up, choose YCLIENTS, type the tokens,
/// connect, check, subscribe the webhook, watch the import finish and the connection turn
/// green as htmx polls; screenshots of each step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboarding_in_a_real_browser() {
    let schema = PgSchema::new().await;
    let (gateway, crm, _telegram) = onboarding_gateway(&schema).await;
    let base = format!("http://{}", gateway.addr);
    let b = Browser::start("onboarding", false).await;
    b.goto(&format!("{base}/login")).await;
    b.click("#signup-link").await;
    b.fill("#salon-name", "Лотос").await;
    b.fill("#email", "owner@lotos.ru").await;
    b.fill("#password", PASSWORD).await;
    b.shot("signup").await;
    b.click("#create-salon").await;
    b.click("#crm-yclients").await;
    b.fill("#company-id", "4564").await;
    b.fill("#partner-token", "p").await;
    b.fill("#user-token", "u").await;
    b.shot("setup").await;
    b.click("#connect-crm").await;
    b.find("#step-webhook").await;
    let connection = gateway
        .store
        .connections_of(PartnerId(1))
        .await
        .unwrap()
        .remove(0);
    let ours = format!(
        "https://loyalty.example/webhooks/yclients/{}",
        connection.webhook_secret
    );
    hooks(&crm, &ours).await;
    assert_eq!(b.text("#webhook-url").await, ours);
    b.click("#check").await;
    b.wait_text("#probes", "Журнал записей: работает, получено 3")
        .await;
    b.click("#register").await;
    b.wait_text("#registered", "record, client").await;
    b.wait_text("#import", "готово").await;
    b.wait_text("#delivery", "Подключение ещё не подтверждено")
        .await;
    deliver(&gateway, &ours, 8).await;
    // htmx polls the live part every 2 s: it turns green without a reload.
    b.wait_text("#delivery", "Подключение работает").await;
    assert!(b.exists("svg.qr").await);
    b.shot("connected").await;
    b.quit().await;
    gateway.stop().await.unwrap();
    schema.drop().await;
}

/// The CRM down while the owner sets up: "check connection" says so for every step instead of
/// failing the page, the connection and its queued import stay, and the webhook's subscription
/// is said to have failed with the address still there to paste.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crm_that_is_down_is_said_plainly_and_nothing_is_lost() {
    let schema = PgSchema::new().await;
    let (_reserved, down) = common::crm::unreachable_address();
    let overrides = Overrides {
        yclients_api_url: Some(format!("http://{down}/api/v1")),
        ..Overrides::default()
    };
    let options = StartOptions {
        dashboard: Some(loyalty_web::Settings {
            signup: Some(Plan::Pro),
            ..Default::default()
        }),
        ..StartOptions::default()
    };
    let (gateway, _) = serve_with(&schema, overrides, options).await;
    let mut web = Web::new(gateway.addr);
    let good = [
        ("name", "Лотос"),
        ("email", "owner@lotos.ru"),
        ("password", PASSWORD),
    ];
    assert_eq!(
        web.post("/signup", &good).await.status,
        StatusCode::SEE_OTHER
    );
    let connect = [
        ("crm", "yclients"),
        ("company_id", "4564"),
        ("partner_token", "p"),
        ("user_token", "u"),
    ];
    assert_eq!(
        web.post("/setup/connect", &connect).await.status,
        StatusCode::SEE_OTHER
    );
    let page = web.post("/setup/1/check", &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let probes = &page.body[page.body.find(r#"id="probes""#).expect("probes")..];
    assert_eq!(
        probes.matches("CRM сейчас не отвечает").count(),
        3,
        "journal, clients, services: {probes}"
    );
    let page = web.post("/setup/1/webhooks", &[]).await;
    assert!(
        page.body.contains(r#"id="register-error""#),
        "{}",
        page.body
    );
    assert!(page.body.contains("CRM сейчас не отвечает"));
    assert!(page.body.contains(r#"id="webhook-url""#));
    // Nothing lost: the connection and its import wait for the CRM.
    let partner = PartnerId(1);
    assert_eq!(
        gateway.store.connections_of(partner).await.unwrap().len(),
        1
    );
    let imports = loyalty_core::import::ImportStore::imports(gateway.store.as_ref(), None)
        .await
        .unwrap();
    assert_eq!(imports.len(), 1);
    assert!(!imports[0].is_done());
    gateway.stop().await.unwrap();
    schema.drop().await;
}
