//! The gateway's HTTP door, in process over real HTTP, on a real PostgreSQL: what bad input
//! gets back, and that it writes nothing but the rejected-delivery record.

mod common;

use loyalty_core::RewardStore;
use std::sync::Arc;

use common::{PgSchema, add_lotos, connect_yclients, serve_on};
use loyalty_core::{PartnerId, Store};
use loyalty_gateway::Gateway;
use loyalty_gateway::cli::{self, CodeAction};
use loyalty_gateway::config::Overrides;
use loyalty_gateway::sample::{Record, record_webhook};
use loyalty_store::SqlStore;
use serde_json::{Value, json};

struct Fixture {
    gateway: Gateway,
    schema: PgSchema,
    partner: PartnerId,
    hook: String,
    http: reqwest::Client,
}

/// A 150 ₽ certificate for 150 points in the partner's catalog, through the CLI.
async fn add_certificate_150(store: &SqlStore, partner: i64) -> Value {
    let req = cli::RewardAdd {
        partner,
        title: "Сертификат 150 ₽".into(),
        points: 150,
        certificate_minor: Some(15_000),
        service_id: None,
        price_minor: None,
    };
    cli::reward_add(store, &req, 0).await.unwrap()
}

async fn fixture() -> Fixture {
    let schema = PgSchema::new().await;
    let (gateway, config) = serve_on(&schema, Overrides::default()).await;
    let partner = PartnerId(add_lotos(&gateway.store).await);
    let conn = connect_yclients(&gateway.store, &config, partner.0, None).await;
    let hook = conn["webhook_url"].as_str().unwrap().to_owned();
    assert!(
        hook.starts_with(&format!("http://{}/webhooks/yclients/", gateway.addr)),
        "{hook}"
    );
    Fixture {
        gateway,
        schema,
        partner,
        hook,
        http: reqwest::Client::new(),
    }
}

impl Fixture {
    async fn post(&self, url: &str, content_type: Option<&str>, body: Vec<u8>) -> (u16, Value) {
        let mut req = self.http.post(url).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let resp = self
            .http
            .get(format!("http://{}{path}", self.gateway.addr))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn finish(self) {
        self.gateway.stop().await.unwrap();
        self.schema.drop().await;
    }
}

fn came() -> Value {
    record_webhook(&Record {
        company_id: "4564",
        record_id: 9,
        client_id: 1,
        client_name: "Анна",
        phone: "79161234567",
        cost: "4000",
        attendance: 1,
        deleted: false,
        changed_at_s: 0,
    })
}

/// What is sent, where, with which content type; the status and error code expected.
type Case<'a> = (&'a str, String, Option<&'a str>, Vec<u8>, u16, &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_specific_4xx_and_writes_only_the_rejection() {
    let f = fixture().await;
    let json_ct = Some("application/json");
    let secret = f.hook.rsplit('/').next().unwrap().to_owned();
    let base = format!("http://{}/webhooks", f.gateway.addr);

    let mut wrong_types = came();
    wrong_types["data"]["attendance"] = json!("came");
    // A secret-looking value in a refused body must not be kept as is.
    wrong_types["data"]["api_token"] = json!("tok-123-secret");
    let mut wrong_company = came();
    wrong_company["company_id"] = json!(1);
    wrong_company["data"]["company_id"] = json!(1);
    let huge = {
        let mut v = came();
        v["data"]["comment"] = json!("x".repeat(5 * 1024 * 1024));
        serde_json::to_vec(&v).unwrap()
    };

    let cases: Vec<Case> = vec![
        (
            "malformed JSON",
            f.hook.clone(),
            json_ct,
            b"{\"resource\": \"record\", ".to_vec(),
            400,
            "malformed_json",
        ),
        (
            "wrong types",
            f.hook.clone(),
            json_ct,
            serde_json::to_vec(&wrong_types).unwrap(),
            422,
            "unexpected_payload",
        ),
        (
            "empty body",
            f.hook.clone(),
            json_ct,
            Vec::new(),
            400,
            "empty_body",
        ),
        (
            "5 MiB body",
            f.hook.clone(),
            json_ct,
            huge,
            413,
            "body_too_large",
        ),
        (
            "unknown CRM name",
            format!("{base}/amocrm/{secret}"),
            json_ct,
            serde_json::to_vec(&came()).unwrap(),
            404,
            "unknown_crm",
        ),
        (
            "another CRM's URL",
            format!("{base}/altegio/{secret}"),
            json_ct,
            serde_json::to_vec(&came()).unwrap(),
            404,
            "unknown_crm",
        ),
        (
            "form body",
            f.hook.clone(),
            Some("application/x-www-form-urlencoded"),
            b"a=1".to_vec(),
            415,
            "unsupported_content_type",
        ),
        (
            "another company",
            f.hook.clone(),
            json_ct,
            serde_json::to_vec(&wrong_company).unwrap(),
            422,
            "wrong_company",
        ),
    ];
    for (what, url, ct, body, status, code) in &cases {
        let (got, answer) = f.post(url, *ct, body.clone()).await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (*status, Some(*code)),
            "{what}: {answer}"
        );
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {answer}"
        );
    }
    // An unknown secret touches nothing, not even the rejected deliveries.
    let (got, answer) = f
        .post(
            &format!("{base}/yclients/not-a-secret"),
            json_ct,
            serde_json::to_vec(&came()).unwrap(),
        )
        .await;
    assert_eq!(
        (got, answer["error"].as_str()),
        (404, Some("unknown_connection"))
    );

    let store: Arc<dyn Store> = f.gateway.store.clone();
    assert_eq!(store.entry_count(f.partner).await.unwrap(), 0);
    assert!(
        store
            .recent_deliveries(f.partner, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.outbox_of(f.partner).await.unwrap().is_empty());
    let rejected = f.gateway.store.rejected_deliveries(100).await.unwrap();
    assert_eq!(rejected.len(), cases.len());
    // Newest first: the last case is first.
    assert_eq!(rejected[0].http_status, 422);
    assert!(rejected[0].reason.starts_with("wrong_company"));
    let big = rejected.iter().find(|r| r.http_status == 413).unwrap();
    assert!(big.body_bytes > 5 * 1024 * 1024 && big.body_excerpt.is_empty());
    let typed = rejected
        .iter()
        .find(|r| r.reason.starts_with("unexpected_payload"))
        .unwrap();
    assert!(
        typed.body_excerpt.contains(r#""api_token":"***""#),
        "{}",
        typed.body_excerpt
    );
    assert!(
        !typed.body_excerpt.contains("tok-123"),
        "{}",
        typed.body_excerpt
    );
    assert!(
        typed.body_excerpt.contains(r#""attendance":"came""#),
        "the rest stays readable"
    );

    // The same delivery, well-formed, is applied.
    let (got, answer) = f
        .post(&f.hook, json_ct, serde_json::to_vec(&came()).unwrap())
        .await;
    assert_eq!(got, 200, "{answer}");
    assert_eq!(
        answer["events"][0],
        json!({"outcome": "applied", "points": 200})
    );
    let (got, answer) = f
        .post(&f.hook, json_ct, serde_json::to_vec(&came()).unwrap())
        .await;
    assert_eq!(
        (got, &answer["events"][0]["outcome"]),
        (200, &json!("duplicate"))
    );

    let (status, text) = f.get("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "loyalty_webhook_deliveries_total{crm=\"yclients\",result=\"rejected\"} 6",
        "loyalty_webhook_deliveries_total{crm=\"altegio\",result=\"rejected\"} 1",
        "loyalty_webhook_deliveries_total{crm=\"yclients\",result=\"accepted\"} 1",
        "loyalty_webhook_deliveries_total{crm=\"yclients\",result=\"duplicate\"} 1",
        "loyalty_webhook_deliveries_total{crm=\"unknown\",result=\"rejected\"} 2",
        "loyalty_points_accrued_total 200",
        "loyalty_outbox_pending 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_the_telegram_door() {
    let f = fixture().await;
    assert_eq!(
        f.get("/healthz").await,
        (200, r#"{"status":"ok"}"#.to_owned())
    );
    assert_eq!(
        f.get("/readyz").await,
        (200, r#"{"status":"ready"}"#.to_owned())
    );
    // No bot configured: the Telegram webhook does not exist.
    let (status, _) = f
        .post(
            &format!("http://{}/telegram/x", f.gateway.addr),
            Some("application/json"),
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(status, 404);
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_public_url_the_bot_takes_updates_by_webhook_checking_the_secret() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let schema = PgSchema::new().await;
    let telegram = MockServer::start().await;
    let token = "77:webhook-token";
    Mock::given(method("POST"))
        .and(path(format!("/bot{token}/setWebhook")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": true})))
        .expect(1)
        .mount(&telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{token}/sendMessage")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": {
            "message_id": 1, "date": 1_795_000_000, "chat": {"id": 5, "type": "private"}}})),
        )
        .mount(&telegram)
        .await;
    let overrides = Overrides {
        public_url: Some("https://loyalty.example".into()),
        telegram_bot_token: Some(token.into()),
        telegram_api_url: Some(telegram.uri()),
        telegram_webhook_secret: Some("s3cret".into()),
        ..Overrides::default()
    };
    let (gateway, _) = serve_on(&schema, overrides).await;
    let registered = telegram.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&registered[0].body).unwrap();
    assert_eq!(
        body["url"],
        json!("https://loyalty.example/telegram/s3cret")
    );
    assert_eq!(body["secret_token"], json!("s3cret"));

    let update = json!({"update_id": 1, "message": {"message_id": 1, "date": 1_795_000_000,
        "chat": {"id": 5, "type": "private"},
        "from": {"id": 5, "is_bot": false, "first_name": "Anna", "language_code": "en"},
        "text": "/start"}});
    let http = reqwest::Client::new();
    let url = format!("http://{}/telegram/s3cret", gateway.addr);
    let send = |secret: Option<&'static str>| {
        let mut req = http
            .post(&url)
            .header("content-type", "application/json")
            .body(update.to_string());
        if let Some(s) = secret {
            req = req.header("x-telegram-bot-api-secret-token", s);
        }
        req.send()
    };
    assert_eq!(send(None).await.unwrap().status(), 404, "no header");
    assert_eq!(
        send(Some("wrong")).await.unwrap().status(),
        404,
        "wrong header"
    );
    assert_eq!(send(Some("s3cret")).await.unwrap().status(), 200);
    let replies: Vec<Value> = telegram
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("/sendMessage"))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(
        replies.len(),
        1,
        "only the authenticated update is answered"
    );
    assert_eq!(replies[0]["chat_id"], json!(5));
    assert!(replies[0]["text"].as_str().unwrap().starts_with("Hello!"));
    gateway.stop().await.unwrap();
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_redeems_points_and_uses_the_code_once() {
    let f = fixture().await;
    let (status, _) = f
        .post(
            &f.hook,
            Some("application/json"),
            serde_json::to_vec(&came()).unwrap(),
        )
        .await;
    assert_eq!(status, 200);
    let reward = add_certificate_150(&f.gateway.store, f.partner.0).await;
    let reward_id = reward["id"].as_i64().unwrap();
    let engine = &f.gateway.engine;
    let phone = "8 (916) 123-45-67";
    let issued = cli::redeem(
        engine,
        &f.gateway.store,
        f.partner.0,
        phone,
        reward_id,
        Some("desk-1".into()),
    )
    .await
    .unwrap();
    assert_eq!(issued["status"], "issued");
    assert_eq!(issued["balance"], 50);
    assert_eq!(issued["reward"], "Сертификат 150 ₽");
    let code = issued["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 11, "{code}");
    // Retrying the same desk request gives the same code, not a second redemption.
    let retried = cli::redeem(
        engine,
        &f.gateway.store,
        f.partner.0,
        phone,
        reward_id,
        Some("desk-1".into()),
    )
    .await
    .unwrap();
    assert_eq!(retried["code"], issued["code"]);
    // Not enough points for another.
    let err = cli::redeem(
        engine,
        &f.gateway.store,
        f.partner.0,
        phone,
        reward_id,
        None,
    )
    .await
    .unwrap_err();
    assert!(err.downcast_ref::<cli::Usage>().is_some(), "{err:#}");

    let shown = cli::code(engine, &code.to_lowercase(), CodeAction::Show)
        .await
        .unwrap();
    assert_eq!(shown["status"], "issued");
    // Points pay at most half a bill here: the 150 ₽ certificate needs a bill of 300 ₽.
    assert_eq!(shown["value_minor"], 15_000);
    assert_eq!(shown["min_bill_minor"], 30_000);
    let on_bill = |bill_minor| CodeAction::Use { bill_minor };
    for (bill, says) in [
        (
            None,
            "add --bill-minor with the bill in minor units (at least 30000)",
        ),
        (
            Some(29_999),
            "a bill of 29999 is too small: it needs one of at least 30000",
        ),
        (Some(0), "must be positive"),
    ] {
        let err = cli::code(engine, &code, on_bill(bill)).await.unwrap_err();
        assert!(err.downcast_ref::<cli::Usage>().is_some(), "{err:#}");
        assert!(format!("{err:#}").contains(says), "{bill:?}: {err:#}");
    }
    // Refused, it is still there to use.
    let shown = cli::code(engine, &code, CodeAction::Show).await.unwrap();
    assert_eq!(shown["status"], "issued");
    let used = cli::code(engine, &code, on_bill(Some(30_000)))
        .await
        .unwrap();
    assert_eq!(used["status"], "used");
    let again = cli::code(engine, &code, on_bill(Some(30_000)))
        .await
        .unwrap_err();
    assert!(format!("{again:#}").contains("used"), "{again:#}");
    // One mistyped character is caught by the check character.
    let mut typo: Vec<char> = code.chars().collect();
    typo[0] = if typo[0] == 'A' { 'B' } else { 'A' };
    let typo: String = typo.into_iter().collect();
    let err = cli::code(engine, &typo, CodeAction::Show)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("mistyped"), "{err:#}");
    f.finish().await;
}

/// A card reward redeemed at the desk and left pending (the gateway stopped before writing
/// it) is written into YCLIENTS when the gateway starts again: the recovery pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_card_reward_is_written_into_the_crm_when_the_gateway_starts() {
    use wiremock::matchers::{body_json, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let crm = MockServer::start().await;
    let ok = |data: Value| {
        ResponseTemplate::new(200)
            .set_body_json(json!({ "success": true, "data": data, "meta": [] }))
    };
    Mock::given(method("GET"))
        .and(path("/loyalty/cards/79161234567/145071/4564"))
        .respond_with(ok(
            json!([{ "id": 9210520, "balance": 0, "type_id": 8230 }]),
        ))
        .mount(&crm)
        .await;
    // The visit that earns the points is settled, but the client holds nothing of ours in
    // the CRM yet: how it was paid is not asked.
    Mock::given(method("GET"))
        .and(path("/visit/details/4564/9/8263004"))
        .respond_with(ok(json!({ "loyalty_transactions": [] })))
        .expect(0)
        .mount(&crm)
        .await;
    let schema = PgSchema::new().await;
    let overrides = || Overrides {
        yclients_api_url: Some(crm.uri()),
        ..Overrides::default()
    };
    let (first, config) = serve_on(&schema, overrides()).await;
    let partner = add_lotos(&first.store).await;
    let conn = connect_yclients(
        &first.store,
        &config,
        partner,
        Some(("partner-token", "user-token")),
    )
    .await;
    let conn_id = conn["id"].as_i64().unwrap();
    // A setup missing its card type is refused; a full one names the strategy.
    let err =
        cli::reward_setup("loyalty-card", Some("145071".into()), None, None, None).unwrap_err();
    assert!(format!("{err:#}").contains("--card-type"), "{err:#}");
    let set = cli::connection_rewards(
        &first.store,
        conn_id,
        "loyalty-card",
        cli::RewardFlags {
            chain: Some("145071".into()),
            card_type: Some("8230".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(set["strategy"], "loyalty_card");
    let hook = conn["webhook_url"].as_str().unwrap();
    let resp = reqwest::Client::new()
        .post(hook)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&came()).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let reward = add_certificate_150(&first.store, partner).await;
    let issued = cli::redeem(
        &first.engine,
        &first.store,
        partner,
        "+79161234567",
        reward["id"].as_i64().unwrap(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (issued["status"].as_str(), issued["strategy"].as_str()),
        (Some("pending"), Some("loyalty_card"))
    );
    assert_eq!(issued["balance"], 50, "held at once");
    first.stop().await.unwrap();

    let code = issued["code"].as_str().unwrap().to_owned();
    Mock::given(method("POST"))
        .and(path(
            "/company/4564/loyalty/cards/9210520/manual_transaction",
        ))
        .and(body_json(json!({
            "amount": 150,
            "title": format!("Loyalty Bridge {code}: Сертификат 150 ₽"),
        })))
        .respond_with(ok(
            json!({ "id": 9210520, "balance": 150, "type_id": 8230 }),
        ))
        .expect(1)
        .mount(&crm)
        .await;
    let (second, _) = serve_on(&schema, overrides()).await;
    let mut status = Value::Null;
    for _ in 0..100 {
        status = cli::code(&second.engine, &code, CodeAction::Show)
            .await
            .unwrap()["status"]
            .clone();
        if status == "used" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        status, "used",
        "the card was topped up and the points spent"
    );
    let shown = cli::code(&second.engine, &code, CodeAction::Show)
        .await
        .unwrap();
    assert_eq!(shown["crm_id"], "9210520");
    let sent = crm.received_requests().await.unwrap();
    let top_up = sent
        .iter()
        .find(|r| r.url.path().ends_with("/manual_transaction"))
        .unwrap();
    assert_eq!(
        top_up.headers.get("authorization").unwrap(),
        "Bearer partner-token, User user-token"
    );
    second.stop().await.unwrap();
    schema.drop().await;
}

/// The CRM's service list feeds service rewards: synced on demand (the exact request), a
/// reward priced from it, a service the partner keeps out refused, and a service webhook that
/// refreshes the list and takes the reward of a service gone from the CRM off the catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_rewards_follow_the_crms_service_list() {
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let crm = MockServer::start().await;
    let list: Value = serde_json::from_slice(
        &std::fs::read(format!(
            "{}/../../fixtures/yclients/api_services.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    // The first answer is the whole list; later ones lack the haircut (83169).
    let mut shorter = list.clone();
    shorter["data"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["id"] != "83169");
    Mock::given(method("GET"))
        .and(path("/company/4564/services"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list))
        .up_to_n_times(1)
        .mount(&crm)
        .await;
    // Slow enough that a burst of webhooks arrives while one sync runs.
    Mock::given(method("GET"))
        .and(path("/company/4564/services"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(shorter)
                .set_delay(std::time::Duration::from_secs(1)),
        )
        .mount(&crm)
        .await;
    // The masters, categories and goods come with it; the second read of masters finds one
    // renamed and one gone, and the goods page fails.
    let envelope = |data: Value| json!({"success": true, "data": data, "meta": {"total_count": 0}});
    Mock::given(method("GET"))
        .and(path("/company/4564/staff"))
        .respond_with(ResponseTemplate::new(200).set_body_json(envelope(json!([
            {"id": 1001539, "name": "Анна", "fired": 0, "status": 0},
            {"id": 1001540, "name": "Мария", "fired": 0, "status": 0}
        ]))))
        .up_to_n_times(1)
        .mount(&crm)
        .await;
    Mock::given(method("GET"))
        .and(path("/company/4564/staff"))
        .respond_with(ResponseTemplate::new(200).set_body_json(envelope(json!([
            {"id": 1001539, "name": "Анна Петрова", "fired": 0, "status": 0},
            {"id": 1001540, "name": "Мария", "fired": 1, "status": 0}
        ]))))
        .mount(&crm)
        .await;
    Mock::given(method("GET"))
        .and(path("/company/4564/service_categories"))
        .respond_with(ResponseTemplate::new(200).set_body_json(envelope(json!([
            {"id": 345, "title": "Стрижки мужские", "weight": 10}
        ]))))
        .mount(&crm)
        .await;
    Mock::given(method("GET"))
        .and(path("/goods/4564"))
        .and(query_param("page", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(envelope(json!([
            {"title": "Шампунь", "good_id": "123456", "cost": "1500"}
        ]))))
        .up_to_n_times(1)
        .mount(&crm)
        .await;
    Mock::given(method("GET"))
        .and(path("/goods/4564"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&crm)
        .await;
    let schema = PgSchema::new().await;
    let (gw, config) = serve_on(
        &schema,
        Overrides {
            yclients_api_url: Some(crm.uri()),
            ..Overrides::default()
        },
    )
    .await;
    let partner = add_lotos(&gw.store).await;
    let conn = connect_yclients(
        &gw.store,
        &config,
        partner,
        Some(("partner-token", "user-token")),
    )
    .await;
    let conn_id = conn["id"].as_i64().unwrap();
    let service_lists = || async {
        crm.received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.url.path() == "/company/4564/services")
            .collect::<Vec<_>>()
    };
    let service_reward = |service: &str, price: Option<i64>| cli::RewardAdd {
        partner,
        title: format!("Услуга {service}"),
        points: 500,
        certificate_minor: None,
        service_id: Some(service.into()),
        price_minor: price,
    };

    // Before any sync a service needs its price spelled out.
    let err = cli::reward_add(&gw.store, &service_reward("83169", None), 0)
        .await
        .unwrap_err();
    assert!(format!("{err}").contains("services sync"), "{err}");

    let synced = cli::services_sync(Arc::clone(&gw.store), &config, conn_id)
        .await
        .unwrap();
    assert_eq!(
        synced["sync"],
        json!({"listed": 3, "added": 3, "changed": 0, "gone": 0, "rewards_stopped": 0})
    );
    assert_eq!(
        synced["directories"],
        json!({
            "category": {"listed": 1, "added": 1, "renamed": 0, "gone": 0},
            "good": {"listed": 1, "added": 1, "renamed": 0, "gone": 0},
            "staff": {"listed": 2, "added": 2, "renamed": 0, "gone": 0}
        })
    );
    assert_eq!(synced["errors"], json!([]));
    let asked = service_lists().await;
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].method.as_str(), "GET");
    assert_eq!(asked[0].url.query(), None);
    let sent = |name: &str| asked[0].headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(
        sent("authorization"),
        Some("Bearer partner-token, User user-token")
    );
    assert_eq!(sent("accept"), Some("application/vnd.yclients.v2+json"));
    let listed = cli::services_list(&gw.store, conn_id, false).await.unwrap();
    assert_eq!(listed["services"][1]["title"], "Мужская стрижка");
    assert_eq!(listed["services"][1]["price_min_minor"], 130_000);

    // The haircut's reward takes the CRM's price; the colouring has a range and needs one.
    let cut = cli::reward_add(&gw.store, &service_reward("83169", None), 0)
        .await
        .unwrap();
    assert_eq!(
        cut["reward"]["kind"],
        json!({"kind": "service", "service_id": "83169", "price_minor": 130_000})
    );
    let err = cli::reward_add(&gw.store, &service_reward("90001", None), 0)
        .await
        .unwrap_err();
    assert!(format!("{err}").contains("--price-minor"), "{err}");
    cli::reward_add(&gw.store, &service_reward("90001", Some(450_000)), 0)
        .await
        .unwrap();
    // The partner keeps the head shave out of rewards.
    let denied = cli::services_allow(&gw.store, partner, "79067", false)
        .await
        .unwrap();
    assert_eq!(denied["redeemable"], false);
    let err = cli::reward_add(&gw.store, &service_reward("79067", None), 0)
        .await
        .unwrap_err();
    assert!(format!("{err}").contains("services allow"), "{err}");
    let err = cli::services_allow(&gw.store, partner, "12345", true)
        .await
        .unwrap_err();
    assert!(format!("{err}").contains("no service"), "{err}");

    // YCLIENTS reports service changes, five in a burst (a price list edited): the gateway
    // answers each, then reads the list again, in which the haircut is gone; its reward leaves
    // the catalog, the colouring's stays.
    let body = std::fs::read(format!(
        "{}/../../fixtures/yclients/service_update.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let http = reqwest::Client::new();
    for _ in 0..5 {
        let resp = http
            .post(conn["webhook_url"].as_str().unwrap())
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let titles = loop {
        let rewards = gw.store.rewards(PartnerId(partner), false).await.unwrap();
        let titles: Vec<String> = rewards.into_iter().map(|r| r.title).collect();
        if titles.len() == 1 || std::time::Instant::now() > deadline {
            break titles;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(titles, ["Услуга 90001"]);
    // The burst cost the sync that ran and one more after it (which saw every change), not
    // five: three list reads in all, with the CLI's.
    let lists = || async { service_lists().await.len() };
    while lists().await < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(lists().await, 3);
    let gone = cli::services_list(&gw.store, conn_id, true).await.unwrap();
    assert_eq!(gone["services"][1]["in_crm"], false);

    // The syncs the burst set off read the masters again too: Анна renamed, Мария fired. One
    // more by hand finds nothing new, and the goods unreadable this time (what was known of
    // them stays).
    let again = cli::services_sync(Arc::clone(&gw.store), &config, conn_id)
        .await
        .unwrap();
    assert_eq!(
        again["directories"]["staff"],
        json!({"listed": 1, "added": 0, "renamed": 0, "gone": 0})
    );
    assert!(again["directories"].get("good").is_none(), "{again}");
    let errors = again["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].as_str().unwrap().starts_with("good: "), "{again}");
    let staff = cli::directory_list(&gw.store, conn_id, "staff", true)
        .await
        .unwrap();
    assert_eq!(
        staff["items"],
        json!([
            {"item_id": "1001539", "name": "Анна Петрова", "in_crm": true},
            {"item_id": "1001540", "name": "Мария", "in_crm": false}
        ])
    );
    let current = cli::directory_list(&gw.store, conn_id, "staff", false)
        .await
        .unwrap();
    assert_eq!(current["items"].as_array().unwrap().len(), 1);
    assert!(cli::services_text(&staff).contains("Мария  (gone from the CRM)"));
    let goods = cli::directory_list(&gw.store, conn_id, "good", false)
        .await
        .unwrap();
    assert_eq!(goods["items"][0]["name"], "Шампунь");
    gw.stop().await.unwrap();
    schema.drop().await;
}
