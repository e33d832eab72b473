//! An Arnica salon end to end: the real binary on PostgreSQL, wiremock as Arnica's CRM Exchange
//! API and as Telegram. A visit that came accrues once and the client is told; a repeated hook,
//! an older one after a newer, and a partial one change nothing wrong; a visit whose hook was
//! never sent (Arnica sends each once) comes with the poller's `modificate` pass; a reward is
//! the gateway's code, used once at the desk.

mod common;

use std::time::Duration;

use common::PgSchema;
use common::binary::{Env, TOKEN, free_port, mount_telegram, post, refused, wait_for, wait_until};
use common::telegram::texts_to;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CHAT: i64 = 7_001;
const PHONE: &str = "79161234567";

/// A fixture, its visit moved to an hour ago in Moscow: a visit before the connection was made
/// is history and earns nothing.
fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../fixtures/arnica/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let moscow = chrono::Utc::now() + chrono::Duration::hours(2);
    if let Some(visit) = v.get_mut("visit").filter(|v| v.get("datetime").is_some()) {
        visit["datetime"] = json!(moscow.format("%Y-%m-%d %H:%M:%S").to_string());
    }
    v
}

/// Arnica's API: the login, the visit now, a visit list for the poller, and empty lists for
/// the history import and the directory.
async fn mount_arnica(arnica: &MockServer, polled: Vec<Value>) {
    Mock::given(method("POST"))
        .and(path("/api/v2/auth"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("auth.json")))
        .mount(arnica)
        .await;
    // The visit now: changed again after the edit (back to the first bill).
    let mut now = fixture("api_visit.json");
    now["visit"]["update_date"] = json!("2026-11-20 16:30:00");
    Mock::given(method("GET"))
        .and(path("/api/v2/visit/90817"))
        .respond_with(ResponseTemplate::new(200).set_body_json(now))
        .mount(arnica)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/visit"))
        .and(query_param_is_missing("dateFrom"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": polled, "meta": {"page": 1, "lastPage": 1, "maxPerPage": 100}
        })))
        .mount(arnica)
        .await;
    let empty = json!({"data": [], "meta": {"page": 1, "lastPage": 1, "maxPerPage": 100}});
    Mock::given(method("GET"))
        .and(path_regex("^/api/v2/(visit|client|service|employee)$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(empty))
        .mount(arnica)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arnica_visit_accrues_once_the_lost_one_comes_by_poll_and_the_reward_is_a_code() {
    let schema = PgSchema::new().await;
    let telegram = MockServer::start().await;
    let arnica = MockServer::start().await;
    // What the poller finds: the visit whose hook was lost, a second one that came.
    let mut lost = fixture("api_visit.json")["visit"].clone();
    lost["id"] = json!(90900);
    lost["services"] = json!([{"id": 519, "name": "Стрижка", "paySum": "2000", "price": "2000", "discount": "0", "amount": 1}]);
    lost["commodities"] = json!([]);
    mount_arnica(&arnica, vec![lost]).await;
    mount_telegram(&telegram, CHAT, "Анна", PHONE).await;
    let addr = free_port();
    let env = Env {
        vars: vec![
            ("DATABASE_URL", schema.url.clone()),
            ("LOYALTY_LISTEN", addr.clone()),
            ("TELEGRAM_BOT_TOKEN", TOKEN.to_owned()),
            ("TELEGRAM_API_URL", telegram.uri()),
            ("LOYALTY_POLL_INTERVAL_S", "1".to_owned()),
        ],
    };
    env.cli(&["migrate"]);
    let partner = env.cli(&[
        "partner",
        "add",
        "--name",
        "Арника",
        "--cashback-bps",
        "500",
    ]);
    let p = partner["id"].to_string();
    let conn = env.cli(&[
        "connection",
        "add",
        "--partner",
        &p,
        "--crm",
        "arnica",
        "--company-id",
        "7781",
        "--email",
        "integrator@salon.example",
        "--password",
        "s3cret",
        "--base-url",
        &arnica.uri(),
    ]);
    assert_eq!(conn["api"], json!(true));
    let conn_id = conn["id"].to_string();
    let hook = conn["webhook_url"].as_str().unwrap().to_owned();
    assert!(hook.contains("/webhooks/arnica/"), "{hook}");
    // No poller pass until the hooks are in.
    env.sync_interval(&conn_id, 0);
    let _gateway = env.serve(true, &addr).await;
    wait_for(&telegram, CHAT, "Номер привязан").await;

    let http = reqwest::Client::new();
    // The visit came: 2,500 + 1,200 + 950.50 ₽ at 5 % is 232 points, told once.
    let came = post(&http, &hook, &fixture("webhook_visit_came.json")).await;
    assert_eq!(came["events"][0]["points"], json!(232));
    wait_for(&telegram, CHAT, "232").await;
    // The same hook again, then the edited visit (−500 ₽), then the first one late: the
    // older body is stale.
    post(&http, &hook, &fixture("webhook_visit_came.json")).await;
    let edited = post(&http, &hook, &fixture("webhook_visit_edited.json")).await;
    assert_eq!(edited["events"][0]["points"], json!(-25));
    let late = post(&http, &hook, &fixture("webhook_visit_came.json")).await;
    assert_eq!(late["events"][0]["outcome"], json!("stale"));
    // A partial hook (the support's own sample) is not guessed: the inbox fetches the visit,
    // which Arnica has changed once more, back to the first bill (232 again, from 207).
    let partial = post(&http, &hook, &fixture("webhook_visit_partial.json")).await;
    assert_eq!(partial["events"][0]["outcome"], json!("queued"));
    let balance = || {
        env.cli(&["client", "show", "--partner", &p, "--phone", PHONE])["balance"]
            .as_i64()
            .unwrap_or(-1)
    };
    wait_until(
        "the partial visit fetched",
        Duration::from_secs(20),
        async || balance() == 232,
    )
    .await;

    // What Arnica cannot have meant is refused with why, and kept for the operator.
    let mut other_org = fixture("webhook_visit_came.json");
    other_org["orgId"] = json!(9999);
    let unknown =
        json!({"object": "invoice", "type": "create", "orgId": 7781, "invoice": {"id": 1}});
    for (body, status, code) in [
        (other_org.to_string(), 422, "wrong_company"),
        (unknown.to_string(), 422, "unexpected_payload"),
        (
            "{\"object\": \"visit\", \"type\"".to_owned(),
            400,
            "malformed_json",
        ),
    ] {
        assert_eq!(refused(&http, &hook, body).await, (status, json!(code)));
    }
    let kept = env.cli(&["rejected"]);
    assert_eq!(kept["rejected"].as_array().unwrap().len(), 3, "{kept}");
    assert_eq!(kept["rejected"][0]["crm"], json!("arnica"));
    assert_eq!(balance(), 232);

    // The lost visit: the poller's pass asks for the last day's changes and accrues it.
    env.sync_interval(&conn_id, 1);
    wait_until("the poller's pass", Duration::from_secs(30), async || {
        balance() == 332
    })
    .await;
    let status = env.cli(&["sync", "status", "--connection", &conn_id]);
    assert_eq!(status["connections"][0]["errors"], json!(0), "{status}");
    let asked: Vec<String> = arnica
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/api/v2/visit")
        .filter_map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "modificate")
                .map(|(_, v)| v.into_owned())
        })
        .collect();
    assert!(
        !asked.is_empty()
            && asked
                .iter()
                .all(|m| m.parse::<i64>().is_ok_and(|m| (1..=1_440).contains(&m))),
        "{asked:?}"
    );

    // Rewards on Arnica are the gateway's codes: redeemed, used once at the desk.
    let reward = env.cli(&[
        "reward",
        "add",
        "--partner",
        &p,
        "--title",
        "Маска",
        "--points",
        "100",
        "--certificate-minor",
        "10000",
    ]);
    let code = env.cli(&[
        "redeem",
        "--partner",
        &p,
        "--phone",
        PHONE,
        "--reward",
        &reward["id"].to_string(),
    ]);
    assert_eq!(code["strategy"], json!("gateway_code"), "{code}");
    let code = code["code"].as_str().unwrap().to_owned();
    env.cli(&["code", "use", &code, "--bill-minor", "50000"]);
    let again = env
        .command(false)
        .args(["--json", "code", "use", &code, "--bill-minor", "50000"])
        .output()
        .unwrap();
    assert!(!again.status.success(), "a code is used once");
    assert_eq!(balance(), 232);
    // One message per change of points, in order, none twice. The poller's visit is told by
    // the outbox worker, which may still be sending when the balance shows it.
    wait_for(&telegram, CHAT, "+100").await;
    let sent = texts_to(&telegram, CHAT).await;
    let about_visits: Vec<&str> = sent
        .iter()
        .filter(|t| t.contains("визит") && !t.contains("Номер привязан"))
        .filter_map(|t| t.split(' ').nth(1))
        .collect();
    assert_eq!(about_visits, ["+232", "−25", "+25", "+100"], "{sent:?}");
    schema.drop().await;
}
