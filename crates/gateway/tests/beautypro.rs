//! A Beauty Pro salon end to end, on PostgreSQL with wiremock as the AI Helps API and as
//! Telegram. The real binary: the webhook subscription, a sale's update that makes a visit
//! (fetched, accrued once, told once), the same update again, and a visit whose update never
//! came, brought by the replay. The gateway in process: a certificate issued in the CRM once
//! although the answer to its creation was lost.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::PgSchema;
use common::binary::{Env, TOKEN, free_port, mount_telegram, post, refused, wait_for, wait_until};
use common::telegram::texts_to;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const CHAT: i64 = 7_002;
const PHONE: &str = "79161234567";
const APPT: &str = "3f6a2c1e-8b4d-4e2a-9c7f-1d2e3f4a5b6c";
/// The appointment whose update was lost.
const LOST: &str = "11111111-2222-4333-8444-555555555555";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../fixtures/beautypro/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The AI Helps API: tokens valid a day from now, the appointments an hour ago, the client, the
/// sales, the webhook subscription, the replay, and empty lists for the import and directory.
async fn mount_aihelps(api: &MockServer) {
    let now = chrono::Utc::now();
    let mut token = fixture("auth_database.json");
    token["expires_at"] = json!(iso(now + chrono::Duration::hours(24)));
    Mock::given(method("GET"))
        .and(path("/auth/database"))
        .and(query_param("database_code", "123456"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token))
        .mount(api)
        .await;
    for id in [APPT, LOST] {
        let mut appt = fixture("appointment.json");
        appt["id"] = json!(id);
        appt["date"] = json!(iso(now - chrono::Duration::hours(1)));
        Mock::given(method("GET"))
            .and(path(format!("/appointments/{id}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(appt))
            .mount(api)
            .await;
    }
    Mock::given(method("GET"))
        .and(path_regex("^/clients/[0-9a-f-]+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("client.json")))
        .mount(api)
        .await;
    Mock::given(method("GET"))
        .and(path("/clients"))
        .and(query_param("phone", PHONE))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("clients_by_phone.json")))
        .mount(api)
        .await;
    Mock::given(method("GET"))
        .and(path("/sales"))
        .and(query_param(
            "client",
            "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("sales.json")))
        .mount(api)
        .await;
    Mock::given(method("PUT"))
        .and(path("/updates/webhooks/register"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(api)
        .await;
    // What the replay brings: the update delivered already, and the lost one.
    Mock::given(method("PUT"))
        .and(path("/updates/webhooks/batch"))
        .and(body_json(json!({"from_update": 1011})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            fixture("webhook_sale_insert.json"),
            {"update_id": 1013, "database": "123456", "table": "sales", "operation": "insert",
             "id": "0b1e7c2a-0000-4000-8000-000000000005",
             "row": {"appointment": LOST, "client": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "type": "service", "sum": 700, "cancel": false}},
        ])))
        .mount(api)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(
            "^/(appointments|sales|clients|services|employees)$",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .with_priority(10)
        .mount(api)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_beautypro_visit_is_fetched_accrued_once_and_a_lost_one_comes_by_the_replay() {
    let schema = PgSchema::new().await;
    let telegram = MockServer::start().await;
    let api = MockServer::start().await;
    mount_aihelps(&api).await;
    mount_telegram(&telegram, CHAT, "Анна", PHONE).await;
    let addr = free_port();
    let env = Env {
        vars: vec![
            ("DATABASE_URL", schema.url.clone()),
            ("LOYALTY_LISTEN", addr.clone()),
            ("TELEGRAM_BOT_TOKEN", TOKEN.to_owned()),
            ("TELEGRAM_API_URL", telegram.uri()),
            ("LOYALTY_POLL_INTERVAL_S", "1".to_owned()),
            (
                "CRM_APP_SECRET",
                "a3db644a-907a-4da2-bcdd-bc9f7068237d".to_owned(),
            ),
        ],
    };
    env.cli(&["migrate"]);
    let partner = env.cli(&["partner", "add", "--name", "Бьюти", "--cashback-bps", "500"]);
    let p = partner["id"].to_string();
    let conn = env.cli(&[
        "connection",
        "add",
        "--partner",
        &p,
        "--crm",
        "beautypro",
        "--company-id",
        "123456",
        "--app-id",
        "a47cbc05-5ce6-4551-9456-2855b52a17f0",
        "--api-url",
        &api.uri(),
    ]);
    assert_eq!(conn["api"], json!(true));
    let conn_id = conn["id"].to_string();
    let hook = conn["webhook_url"].as_str().unwrap().to_owned();
    // The webhook URL subscribed to every table the program reads.
    let subscribed = env.cli(&["connection", "webhooks", &conn_id]);
    assert_eq!(
        subscribed["tables"],
        json!(["appointments", "sales", "clients", "services"])
    );
    let registered: Vec<Value> = api
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/updates/webhooks/register")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(registered.len(), 4);
    assert!(registered.iter().all(|b| b["url"] == json!(hook)));
    env.sync_interval(&conn_id, 0);
    let _gateway = env.serve(true, &addr).await;
    wait_for(&telegram, CHAT, "Номер привязан").await;

    let http = reqwest::Client::new();
    let balance = || {
        env.cli(&["client", "show", "--partner", &p, "--phone", PHONE])["balance"]
            .as_i64()
            .unwrap_or(-1)
    };
    // The sale names the visit; it is fetched: 2,500 + 950.50 ₽ paid, 500 ₽ of it with a
    // certificate, so 5 % of 2,950.50 ₽: 147 points.
    let first = post(&http, &hook, &fixture("webhook_sale_insert.json")).await;
    assert_eq!(first["events"][0]["outcome"], json!("queued"));
    wait_for(&telegram, CHAT, "+147").await;
    assert_eq!(balance(), 147);
    // The same update again: fetched again, changes nothing.
    post(&http, &hook, &fixture("webhook_sale_insert.json")).await;
    wait_until(
        "the repeat worked off",
        Duration::from_secs(20),
        async || env.cli(&["inbox", "list"])["queued"] == json!(0),
    )
    .await;
    assert_eq!(balance(), 147);

    // What Beauty Pro cannot have meant is refused with why, and kept for the operator.
    let mut other_db = fixture("webhook_sale_insert.json");
    other_db["database"] = json!("654321");
    let unknown = json!({"update_id": 2000, "database": "123456", "table": "halls",
        "operation": "insert", "id": APPT});
    for (body, status, code) in [
        (other_db.to_string(), 422, "wrong_company"),
        (unknown.to_string(), 422, "unexpected_payload"),
        ("[{\"table\": \"sales\", ".to_owned(), 400, "malformed_json"),
    ] {
        assert_eq!(refused(&http, &hook, body).await, (status, json!(code)));
    }
    let kept = env.cli(&["rejected"]);
    assert_eq!(kept["rejected"].as_array().unwrap().len(), 3, "{kept}");
    assert_eq!(kept["rejected"][0]["crm"], json!("beautypro"));

    // The replay, from just before the first update, brings the visit whose update was lost.
    env.sync_interval(&conn_id, 1);
    wait_until("the replay's visit", Duration::from_secs(30), async || {
        balance() == 182
    })
    .await;
    let status = env.cli(&["sync", "status", "--connection", &conn_id]);
    assert_eq!(status["connections"][0]["errors"], json!(0), "{status}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = texts_to(&telegram, CHAT).await;
    let points: Vec<&str> = sent
        .iter()
        .filter(|t| t.starts_with('💎') || t.starts_with('↩'))
        .filter_map(|t| t.split(' ').nth(1))
        .collect();
    assert_eq!(points, ["+147", "+35"], "{sent:?}");
    schema.drop().await;
}

/// The API as a certificate's creation sees it: the first create is made but its answer is an
/// error (the answer lost); the certificates made can be listed by number.
struct Certificates {
    made: Mutex<Vec<Value>>,
}

impl Respond for Certificates {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut made = self.made.lock().unwrap();
        if request.method.as_str() == "POST" {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            made.push(json!({
                "id": "74e85faf-de73-4fe6-9530-3af1dd7c1b34",
                "number": body["number"], "client": null, "status": "new",
                "total_sum": body["total_sum"],
            }));
            return ResponseTemplate::new(502);
        }
        let number = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "number")
            .map(|(_, v)| v.into_owned());
        let found: Vec<Value> = made
            .iter()
            .filter(|c| Some(c["number"].to_string()) == number)
            .cloned()
            .collect();
        ResponseTemplate::new(200).set_body_json(found)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_beautypro_certificate_is_issued_once_although_its_creation_answer_was_lost() {
    use loyalty_core::engine::WriteBackPolicy;
    use loyalty_gateway::StartOptions;
    use loyalty_gateway::cli::{self, CodeAction};
    use loyalty_gateway::config::Overrides;

    let schema = PgSchema::new().await;
    let api = MockServer::start().await;
    mount_aihelps(&api).await;
    let certificates = Arc::new(Certificates {
        made: Mutex::new(Vec::new()),
    });
    struct Shared(Arc<Certificates>);
    impl Respond for Shared {
        fn respond(&self, r: &Request) -> ResponseTemplate {
            self.0.respond(r)
        }
    }
    Mock::given(path("/certificates"))
        .respond_with(Shared(Arc::clone(&certificates)))
        .mount(&api)
        .await;
    Mock::given(method("PUT"))
        .and(path("/certificates/74e85faf-de73-4fe6-9530-3af1dd7c1b34"))
        .and(body_json(
            json!({"client": "7c9e6679-7425-40de-944b-e07fc1f90ae7"}),
        ))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&api)
        .await;
    let (gateway, config) = common::serve_with(
        &schema,
        Overrides::default(),
        StartOptions {
            write_back: Some(WriteBackPolicy {
                max_attempts: 5,
                first_pause_ms: 50,
                max_pause_ms: 200,
            }),
            write_back_every: Some(Duration::from_millis(200)),
            ..StartOptions::default()
        },
    )
    .await;
    let partner = common::add_lotos(&gateway.store).await;
    let conn = cli::connection_add(
        &gateway.store,
        &config,
        &cli::ConnectionAdd {
            partner,
            crm: loyalty_core::CrmKind::Beautypro,
            company_id: "123456".into(),
            partner_token: None,
            user_token: None,
            login: cli::CrmLogin {
                app_id: Some("a47cbc05-5ce6-4551-9456-2855b52a17f0".into()),
                app_secret: Some("a3db644a-907a-4da2-bcdd-bc9f7068237d".into()),
                api_url: Some(api.uri()),
                ..Default::default()
            },
            utc_offset_minutes: None,
            country: None,
        },
        0,
    )
    .await
    .unwrap();
    let set = cli::connection_rewards(
        &gateway.store,
        conn["id"].as_i64().unwrap(),
        "certificate",
        cli::RewardFlags::default(),
    )
    .await
    .unwrap();
    assert_eq!(set["strategy"], "crm_certificate");
    // Points to spend: the visit of the sale's update, fetched and accrued (147).
    let http = reqwest::Client::new();
    post(
        &http,
        &common::live_hook(&gateway, &conn),
        &fixture("webhook_sale_insert.json"),
    )
    .await;
    wait_until("the visit's points", Duration::from_secs(20), async || {
        cli::client_show(
            &gateway.engine,
            gateway.store.as_ref(),
            partner,
            "+79161234567",
            10,
        )
        .await
        .is_ok_and(|c| c["balance"] == json!(147))
    })
    .await;
    let reward = cli::reward_add(
        &gateway.store,
        &cli::RewardAdd {
            partner,
            title: "Сертификат 1000 ₽".into(),
            points: 100,
            certificate_minor: Some(100_000),
            service_id: None,
            price_minor: None,
        },
        0,
    )
    .await
    .unwrap();
    let issued = cli::redeem(
        &gateway.engine,
        &gateway.store,
        partner,
        "+79161234567",
        reward["id"].as_i64().unwrap(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(issued["strategy"], "crm_certificate");
    let code = issued["code"].as_str().unwrap().to_owned();
    wait_until(
        "the certificate issued",
        Duration::from_secs(20),
        async || {
            cli::code(&gateway.engine, &code, CodeAction::Show)
                .await
                .is_ok_and(|c| c["crm_id"] == json!("74e85faf-de73-4fe6-9530-3af1dd7c1b34"))
        },
    )
    .await;
    assert_eq!(certificates.made.lock().unwrap().len(), 1, "created once");
    let posts = api
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/certificates")
        .count();
    assert_eq!(posts, 1, "never created again after the lost answer");
    gateway.stop().await.unwrap();
    schema.drop().await;
}

/// Before the salon grants access, `connection webhooks` says what to do instead of failing
/// vaguely, and the access request is asked for once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salon_that_has_not_granted_access_is_told_where_to_grant_it() {
    use loyalty_gateway::cli;
    use loyalty_gateway::config::Overrides;

    let schema = PgSchema::new().await;
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/auth/database"))
        .and(query_param("database_code", "123456"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("auth_pending.json")))
        .expect(1)
        .mount(&api)
        .await;
    // The gateway only migrates the schema: its background import would ask for access too.
    let (gateway, config) = common::serve_on(&schema, Overrides::default()).await;
    gateway.stop().await.unwrap();
    let store = Arc::new(loyalty_store::SqlStore::connect(&schema.url).await.unwrap());
    let partner = common::add_lotos(&store).await;
    let conn = cli::connection_add(
        &store,
        &config,
        &cli::ConnectionAdd {
            partner,
            crm: loyalty_core::CrmKind::Beautypro,
            company_id: "123456".into(),
            partner_token: None,
            user_token: None,
            login: cli::CrmLogin {
                app_id: Some("a47cbc05-5ce6-4551-9456-2855b52a17f0".into()),
                app_secret: Some("a3db644a-907a-4da2-bcdd-bc9f7068237d".into()),
                api_url: Some(api.uri()),
                ..Default::default()
            },
            utc_offset_minutes: None,
            country: None,
        },
        0,
    )
    .await
    .unwrap();
    let err = cli::connection_webhooks(Arc::clone(&store), &config, conn["id"].as_i64().unwrap())
        .await
        .unwrap_err();
    let said = format!("{err:#}");
    assert!(
        said.contains("pending") && said.contains("Grant access"),
        "{said}"
    );
    assert!(
        err.downcast_ref::<cli::Usage>().is_some(),
        "a usage error: {said}"
    );
    schema.drop().await;
}
