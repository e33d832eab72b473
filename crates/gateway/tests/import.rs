//! The history import end to end: the real binary's `import crm` against wiremock as YCLIENTS
//! (300 client cards, 1,000 records over two years, answers slowed down), killed with SIGKILL
//! three times and run again, ends with the same clients, history and points as an
//! uninterrupted import into another database; and a record imported then delivered by webhook
//! is not accrued twice.

mod common;

use loyalty_core::ClientStore;
use loyalty_core::LedgerStore;
use std::process::Stdio;
use std::time::Duration;

use common::PgSchema;
use common::binary::{Env, free_port, post};
use loyalty_core::history::HistoryStore;
use loyalty_core::{ConnectionId, PartnerId, Phone};
use loyalty_gateway::sample::{Record, record_webhook};
use loyalty_store::SqlStore;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const CLIENTS: u64 = 300;
const RECORDS: u64 = 1_000;
const DAY_S: i64 = 86_400;

fn phone(client: u64) -> String {
    format!("7916800{client:04}")
}

/// Record `r`: a visit `r × 17` hours back (about two years for the last one), 1 000 to 5 000 ₽.
fn record(r: u64, now_s: i64) -> Value {
    let client = r % CLIENTS;
    let mut body = record_webhook(&Record {
        company_id: "4564",
        record_id: 50_000 + r,
        client_id: 700 + client,
        client_name: "Клиентка",
        phone: &phone(client),
        cost: &(1_000 + (r * 37) % 4_000).to_string(),
        attendance: if r.is_multiple_of(9) { -1 } else { 1 },
        deleted: false,
        changed_at_s: 60,
    });
    let at = chrono::DateTime::from_timestamp(now_s - (r as i64) * 17 * 3_600, 0).unwrap();
    body["data"]["datetime"] = json!(at.format("%Y-%m-%dT%H:%M:%S+00:00").to_string());
    body["data"]["date"] = json!(at.format("%Y-%m-%d %H:%M:%S").to_string());
    body
}

/// YCLIENTS' answers, page by page, each slowed down so a page is worth killing during.
struct Yclients {
    now_s: i64,
}

impl Respond for Yclients {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let slow = |body: Value| {
            ResponseTemplate::new(200)
                .set_body_json(body)
                .set_delay(Duration::from_millis(300))
        };
        if request.url.path().ends_with("/clients/search") {
            let asked: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            let page = asked["page"].as_u64().unwrap_or(1);
            let size = asked["page_size"].as_u64().unwrap_or(200);
            let cards: Vec<Value> = (0..CLIENTS)
                .skip(((page - 1) * size) as usize)
                .take(size as usize)
                .map(|c| json!({"id": 700 + c, "name": format!("Клиентка {c}"), "phone": phone(c)}))
                .collect();
            return slow(json!({"success": true, "data": cards, "meta": {"total_count": CLIENTS}}));
        }
        let query = |k: &str| {
            request
                .url
                .query_pairs()
                .find(|(key, _)| key == k)
                .and_then(|(_, v)| v.parse::<u64>().ok())
        };
        let (page, count) = (query("page").unwrap_or(1), query("count").unwrap_or(200));
        let records: Vec<Value> = (0..RECORDS)
            .skip(((page - 1) * count) as usize)
            .take(count as usize)
            .map(|r| record(r, self.now_s)["data"].clone())
            .collect();
        slow(json!({"success": true, "data": records, "meta": {"total_count": RECORDS}}))
    }
}

async fn crm(now_s: i64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/company/4564/clients/search"))
        .respond_with(Yclients { now_s })
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/records/4564"))
        .respond_with(Yclients { now_s })
        .mount(&server)
        .await;
    server
}

/// A salon connected to `crm` on its own schema, and the CLI's environment.
fn salon(schema: &PgSchema, crm: &MockServer) -> (Env, String) {
    let env = Env {
        vars: vec![
            ("DATABASE_URL", schema.url.clone()),
            ("LOYALTY_LISTEN", free_port()),
            ("YCLIENTS_API_URL", format!("{}/api/v1", crm.uri())),
        ],
    };
    env.cli(&["migrate"]);
    let partner = env.cli(&["partner", "add", "--name", "Лотос", "--cashback-bps", "500"]);
    let conn = env.cli(&[
        "connection",
        "add",
        "--partner",
        &partner["id"].to_string(),
        "--crm",
        "yclients",
        "--company-id",
        "4564",
        "--partner-token",
        "p",
        "--user-token",
        "u",
    ]);
    assert!(conn["import"].is_i64(), "an import is queued: {conn}");
    (env, conn["id"].to_string())
}

/// Every client (phone, name, balance, summary) and every history row, in order.
async fn dump(schema: &PgSchema) -> Vec<String> {
    let store = SqlStore::connect(&schema.url).await.unwrap();
    let partner = PartnerId(1);
    let mut out = Vec::new();
    // Clients by their number here: internal ids are not comparable between runs (a killed
    // transaction leaves a gap in PostgreSQL's sequence).
    let mut number = std::collections::HashMap::new();
    for c in 0..CLIENTS {
        let p = Phone::parse_international(&phone(c)).unwrap();
        let client = store.client_by_phone(partner, &p).await.unwrap();
        let Some(client) = client else {
            out.push(format!("{c}: none"));
            continue;
        };
        number.insert(client.id, c);
        let balance = store.balance(partner, client.id).await.unwrap();
        let summary = store.summary(partner, client.id).await.unwrap();
        out.push(format!("{c}: {:?} {balance} {summary:?}", client.name));
    }
    for r in 0..RECORDS {
        let row = store
            .visit(partner, ConnectionId(1), &(50_000 + r).to_string())
            .await
            .unwrap();
        let row = row.map(|v| {
            (
                v.status,
                v.paid_minor,
                v.visit_at_ms,
                v.client_id.map(|c| number.get(&c).copied()),
            )
        });
        out.push(format!("{r}: {row:?}"));
    }
    let totals = store.account_totals(partner).await.unwrap();
    assert!(totals.is_balanced(), "{totals:?}");
    out.push(format!(
        "entries {}",
        store.entry_count(partner).await.unwrap()
    ));
    store.close().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_and_resumed_ends_as_an_uninterrupted_one() {
    let now_s = chrono::Utc::now().timestamp();
    let yclients = crm(now_s).await;
    // Points for the last 90 days; the rest of the two years is history only.
    let accrue = chrono::DateTime::from_timestamp(now_s - 90 * DAY_S, 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let import = |conn: &str| {
        vec![
            "import".to_owned(),
            "crm".to_owned(),
            "--connection".to_owned(),
            conn.to_owned(),
            "--accrue-since".to_owned(),
            accrue.clone(),
        ]
    };

    // The reference: one uninterrupted run.
    let whole = PgSchema::new().await;
    let (env, conn) = salon(&whole, &yclients);
    let done = env.cli(&import(&conn).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(done["done"], json!(true), "{done}");
    assert_eq!(
        (
            done["clients"].clone(),
            done["records"].clone(),
            done["errors"].clone()
        ),
        (json!(CLIENTS), json!(RECORDS), json!(0))
    );
    let want = dump(&whole).await;
    assert!(
        want.last().unwrap() != "entries 0",
        "the last 90 days earned points"
    );

    // Killed three times mid-way, then run to the end.
    let broken = PgSchema::new().await;
    let (env, conn) = salon(&broken, &yclients);
    let args = import(&conn);
    // Each run is killed once its job has moved on by a page of records, whatever the machine's
    // speed: three pages of the five, and at most one more before a kill lands, so the job is
    // never finished here.
    let store = SqlStore::connect(&broken.url).await.unwrap();
    let conn_id = ConnectionId(conn.parse().unwrap());
    let seen = async || {
        loyalty_core::import::ImportStore::imports(&store, Some(conn_id))
            .await
            .unwrap()
            .first()
            .map_or(0, |j| j.records_seen)
    };
    for _ in 0..3 {
        let before = seen().await;
        let mut child = env
            .command(false)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while seen().await <= before {
            assert!(std::time::Instant::now() < deadline, "no progress");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    store.close().await;
    let status = env.cli(&["import", "status", "--connection", &conn]);
    assert_eq!(status["imports"][0]["done"], json!(false), "{status}");
    // Run again, it takes over the killed run's job at once and continues from its last page.
    let finished = env.cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(finished["done"], json!(true), "{finished}");
    assert_eq!(dump(&broken).await, want);

    // A record of the last 90 days, imported and accrued, arrives by webhook: nothing more.
    let addr = env
        .vars
        .iter()
        .find(|(k, _)| *k == "LOYALTY_LISTEN")
        .unwrap()
        .1
        .clone();
    let _gateway = env.serve(false, &addr).await;
    let hook = format!(
        "http://{addr}/webhooks/yclients/{}",
        connection_secret(&broken).await
    );
    let answer = post(&reqwest::Client::new(), &hook, &record(1, now_s)).await;
    assert_eq!(answer["events"][0]["points"], json!(0), "{answer}");
    assert_eq!(dump(&broken).await, want);
    whole.drop().await;
    broken.drop().await;
}

async fn connection_secret(schema: &PgSchema) -> String {
    let store = SqlStore::connect(&schema.url).await.unwrap();
    let secret = store
        .connections()
        .await
        .unwrap()
        .first()
        .map(|c| c.webhook_secret.clone())
        .unwrap();
    store.close().await;
    secret
}
