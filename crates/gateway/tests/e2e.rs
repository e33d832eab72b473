//! End to end: the real `loyalty-gateway` binary on a real PostgreSQL, wiremock as YCLIENTS
//! and as Telegram. A visit closed in the CRM becomes points and exactly one message; replays
//! change nothing; "did not come" (a partial webhook, re-fetched from the CRM) reverses it;
//! and a gateway killed between commit and send delivers the message after restart.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::PgSchema;
use loyalty_gateway::sample::{Record, record_webhook};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BIN: &str = env!("CARGO_BIN_EXE_loyalty-gateway");
const TOKEN: &str = "4242:e2e-token";
const CHAT: i64 = 4242;

struct Env {
    vars: Vec<(&'static str, String)>,
}

impl Env {
    fn command(&self, with_bot: bool) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn");
        for (k, v) in &self.vars {
            if with_bot || *k != "TELEGRAM_BOT_TOKEN" {
                cmd.env(k, v);
            }
        }
        cmd
    }

    fn cli(&self, args: &[&str]) -> Value {
        let out = self
            .command(false)
            .arg("--json")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(stdout.lines().count(), 1, "one JSON object: {stdout}");
        serde_json::from_str(&stdout).unwrap()
    }

    async fn serve(&self, with_bot: bool, addr: &str) -> Running {
        let running = Running(Some(
            self.command(with_bot)
                .arg("serve")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        ));
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("http://{addr}/readyz")).send().await
                && r.status().is_success()
            {
                return running;
            }
            assert!(Instant::now() < deadline, "gateway did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn record(record_id: u64, cost: &str, attendance: i32, changed_at_s: u32) -> Value {
    record_webhook(&Record {
        company_id: "4564",
        record_id,
        client_id: 18_936_825,
        client_name: "Анна",
        phone: "79161234567",
        cost,
        attendance,
        deleted: false,
        changed_at_s,
    })
}

/// The texts Telegram was asked to send to the chat.
async fn sent_to_chat(telegram: &MockServer) -> Vec<String> {
    sent_to(telegram, CHAT).await
}

async fn sent_to(telegram: &MockServer, chat: i64) -> Vec<String> {
    telegram
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == format!("/bot{TOKEN}/sendMessage"))
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|b| b["chat_id"] == json!(chat))
        .filter_map(|b| b["text"].as_str().map(str::to_owned))
        .collect()
}

async fn wait_for_message(telegram: &MockServer, needle: &str) -> Vec<String> {
    wait_for(telegram, CHAT, needle).await
}

async fn wait_for(telegram: &MockServer, chat: i64, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sent = sent_to(telegram, chat).await;
        if sent.iter().any(|t| t.contains(needle)) {
            return sent;
        }
        assert!(
            Instant::now() < deadline,
            "no message with {needle:?}; sent: {sent:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Value {
    let r = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let answer: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(status, 200, "{answer}");
    answer
}

/// A gateway process, killed if the test fails before it ends it.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn kill_9(mut running: Running) {
    if let Some(mut child) = running.0.take() {
        child.kill().unwrap(); // SIGKILL: no shutdown, no flushing.
        child.wait().unwrap();
    }
}

/// Telegram as the bot sees it: one update (`chat` shares its own contact with this number, as
/// Telegram sends it), then nothing new; every message and webhook removal accepted.
async fn mount_telegram(telegram: &MockServer, chat: i64, name: &str, phone_number: &str) {
    let contact = json!({"ok": true, "result": [{"update_id": 1, "message": {
        "message_id": 1, "date": 1_795_000_000,
        "chat": {"id": chat, "type": "private", "first_name": name},
        "from": {"id": chat, "is_bot": false, "first_name": name, "language_code": "ru"},
        "contact": {"phone_number": phone_number, "first_name": name, "user_id": chat}}}]});
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/getUpdates")))
        .respond_with(ResponseTemplate::new(200).set_body_json(contact))
        .up_to_n_times(1)
        .mount(telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/getUpdates")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true, "result": []}))
                .set_delay(Duration::from_millis(300)),
        )
        .mount(telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/sendMessage")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": {
            "message_id": 7, "date": 1_795_000_000, "chat": {"id": chat, "type": "private"}}})),
        )
        .mount(telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/deleteWebhook")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": true})))
        .mount(telegram)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_visit_becomes_points_and_one_message_exactly_once_across_kills() {
    let schema = PgSchema::new().await;
    let telegram = MockServer::start().await;
    let yclients = MockServer::start().await;
    let addr = free_port();
    let env = Env {
        vars: vec![
            ("DATABASE_URL", schema.url.clone()),
            ("LOYALTY_LISTEN", addr.clone()),
            ("TELEGRAM_BOT_TOKEN", TOKEN.to_owned()),
            ("TELEGRAM_API_URL", telegram.uri()),
            ("YCLIENTS_API_URL", format!("{}/api/v1", yclients.uri())),
        ],
    };

    // Telegram: Anna shares her own contact once; then nothing new.
    mount_telegram(&telegram, CHAT, "Анна", "+79161234567").await;

    // YCLIENTS: how a settled visit was paid is never asked here: Anna holds no certificate
    // or card credit of ours in the CRM, so her bills are money.
    Mock::given(method("GET"))
        .and(path_regex(r"^/api/v1/visit/details/4564/\d+/8263004$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"success": true, "data": {"loyalty_transactions": [], "payment_transactions": []}, "meta": []}),
        ))
        .expect(0)
        .mount(&yclients)
        .await;
    // YCLIENTS: the full record behind a partial "did not come" webhook.
    let mut no_show = record(77, "4000", -1, 600);
    let data = no_show["data"].take();
    Mock::given(method("GET"))
        .and(path("/api/v1/record/4564/77"))
        // wiremock's `header` splits values on commas; this header has one.
        .and(|r: &wiremock::Request| {
            r.headers.get("authorization").map(|v| v.as_bytes())
                == Some(b"Bearer partner-secret, User user-secret".as_slice())
        })
        .and(header("accept", "application/vnd.yclients.v2+json"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"success": true, "data": data, "meta": []})),
        )
        .expect(1)
        .mount(&yclients)
        .await;

    assert!(env.cli(&["migrate"])["applied"].as_u64().unwrap() >= 1);
    assert_eq!(
        env.cli(&["migrate"])["applied"],
        json!(0),
        "migrating again applies nothing"
    );
    let partner = env.cli(&["partner", "add", "--name", "Лотос", "--cashback-bps", "500"]);
    let partner_id = partner["id"].to_string();
    let conn = env.cli(&[
        "connection",
        "add",
        "--partner",
        &partner_id,
        "--crm",
        "yclients",
        "--company-id",
        "4564",
        "--partner-token",
        "partner-secret",
        "--user-token",
        "user-secret",
    ]);
    let hook = conn["webhook_url"].as_str().unwrap().to_owned();
    assert!(
        hook.starts_with(&format!("http://{addr}/webhooks/yclients/")),
        "{hook}"
    );

    let gateway = env.serve(true, &addr).await;
    wait_for_message(&telegram, "Номер привязан").await;

    // The visit closes: one message with the right amount.
    let http = reqwest::Client::new();
    let came = record(77, "4000", 1, 0);
    let answer = post(&http, &hook, &came).await;
    assert_eq!(
        answer["events"][0],
        json!({"outcome": "applied", "points": 200})
    );
    wait_for_message(&telegram, "+200").await;
    let accrual = "💎 +200 баллов за визит на 4\u{202f}000 ₽ в «Лотос». Баланс: 200 баллов";
    let request = telegram
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| String::from_utf8_lossy(&r.body).contains("+200"))
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&request.body).unwrap(),
        json!({"chat_id": CHAT, "text": accrual})
    );

    // Five more deliveries of the same webhook change nothing.
    for _ in 0..5 {
        let answer = post(&http, &hook, &came).await;
        assert_eq!(answer["events"][0]["outcome"], json!("duplicate"));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent = sent_to_chat(&telegram).await;
    assert_eq!(
        sent.iter().filter(|t| t.contains("+200")).count(),
        1,
        "{sent:?}"
    );

    // "Did not come" arrives as a partial webhook: stored and answered at once; the inbox
    // worker fetches the record and reverses.
    let partial = json!({"company_id": 4564, "resource": "record", "resource_id": 77,
                         "status": "update", "data": {"id": 77, "comment": "не пришла"}});
    let answer = post(&http, &hook, &partial).await;
    assert_eq!(
        answer["events"][0],
        json!({"outcome": "queued", "points": 0})
    );
    let sent = wait_for_message(&telegram, "−200").await;
    assert!(
        sent.iter()
            .any(|t| t == "↩️ −200 баллов в «Лотос»: визит отменён или изменён. Баланс: 0 баллов"),
        "{sent:?}"
    );

    // Killed between commit and send: the visit is committed while no sender runs...
    kill_9(gateway);
    let no_bot = env.serve(false, &addr).await;
    let answer = post(&http, &hook, &record(78, "2000", 1, 900)).await;
    assert_eq!(
        answer["events"][0],
        json!({"outcome": "applied", "points": 100})
    );
    kill_9(no_bot);
    // ...and the message goes out after restart, once.
    let gateway = env.serve(true, &addr).await;
    wait_for_message(&telegram, "+100").await;
    let shown = env.cli(&[
        "client",
        "show",
        "--partner",
        &partner_id,
        "--phone",
        "+7 916 123-45-67",
    ]);
    assert_eq!(shown["balance"], json!(100));
    assert_eq!(shown["phone"], json!("+79161234567"));
    assert_eq!(shown["history"].as_array().unwrap().len(), 3);

    // SIGTERM: a graceful stop exits 0.
    let mut gateway = gateway;
    let mut child = gateway.0.take().unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let sent = sent_to_chat(&telegram).await;
    assert_eq!(
        sent.iter().filter(|t| t.contains("+100")).count(),
        1,
        "{sent:?}"
    );
    assert_eq!(
        sent.iter().filter(|t| t.contains("+200")).count(),
        1,
        "{sent:?}"
    );
    schema.drop().await;
}

/// One person typed three ways at a Kazakh salon — `8 701 234 56 78` in the CRM's card,
/// `77012345678` from Telegram (international digits without `+`), `+7 (701) 234-56-78` at
/// the desk — is one client with one balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kazakh_client_typed_three_ways_is_one_client() {
    const AIGUL: i64 = 7701;
    let schema = PgSchema::new().await;
    let telegram = MockServer::start().await;
    let addr = free_port();
    let env = Env {
        vars: vec![
            ("DATABASE_URL", schema.url.clone()),
            ("LOYALTY_LISTEN", addr.clone()),
            ("TELEGRAM_BOT_TOKEN", TOKEN.to_owned()),
            ("TELEGRAM_API_URL", telegram.uri()),
        ],
    };
    mount_telegram(&telegram, AIGUL, "Айгуль", "77012345678").await;
    env.cli(&["migrate"]);
    let partner = env.cli(&[
        "partner",
        "add",
        "--name",
        "Алма",
        "--cashback-bps",
        "500",
        "--currency",
        "KZT",
        "--country",
        "KZ",
    ]);
    assert_eq!(partner["program"]["country"], json!("KZ"));
    let partner_id = partner["id"].to_string();
    let conn = env.cli(&[
        "connection",
        "add",
        "--partner",
        &partner_id,
        "--crm",
        "yclients",
        "--company-id",
        "4565",
    ]);
    let hook = conn["webhook_url"].as_str().unwrap().to_owned();

    let _gateway = env.serve(true, &addr).await;
    wait_for(&telegram, AIGUL, "Номер привязан").await;

    // The salon's CRM card has the number as the administrator typed it.
    let came = record_webhook(&Record {
        company_id: "4565",
        record_id: 501,
        client_id: 31_337,
        client_name: "Айгуль",
        phone: "8 701 234 56 78",
        cost: "4000",
        attendance: 1,
        deleted: false,
        changed_at_s: 0,
    });
    let http = reqwest::Client::new();
    let answer = post(&http, &hook, &came).await;
    assert_eq!(
        answer["events"][0],
        json!({"outcome": "applied", "points": 200})
    );
    // The chat that shared `77012345678` is told: it is the same person.
    wait_for(&telegram, AIGUL, "+200").await;

    let shown = env.cli(&[
        "client",
        "show",
        "--partner",
        &partner_id,
        "--phone",
        "+7 (701) 234-56-78",
    ]);
    assert_eq!(shown["phone"], json!("+77012345678"));
    assert_eq!(shown["balance"], json!(200));
    assert_eq!(shown["telegram_linked"], json!(true));
    let domestic = env.cli(&[
        "client",
        "show",
        "--partner",
        &partner_id,
        "--phone",
        "8 701 234 56 78",
    ]);
    assert_eq!(domestic, shown);
    schema.drop().await;
}
