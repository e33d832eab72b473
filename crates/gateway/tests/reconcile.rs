//! The reconciliation poller end to end: the real binary on PostgreSQL, wiremock as YCLIENTS and
//! as Telegram. 200 record changes of 100 records reach the gateway with 30 % of their webhooks
//! lost (YCLIENTS never sends one again); one poller pass later every balance and every
//! history row is exact, no visit was accrued twice, and each linked client got exactly one
//! message per change of their points.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::PgSchema;
use common::binary::{Env, TOKEN, free_port, mount_telegram_contacts, post};
use common::telegram::texts_to;
use loyalty_gateway::sample::{Record, record_webhook};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CLIENTS: u64 = 40;
const RECORDS: u64 = 100;

fn phone(client: u64) -> String {
    format!("7916555{client:04}")
}

fn chat(client: u64) -> i64 {
    5_000 + client as i64
}

/// Version `v` (1 or 2) of record `r`: it came at first; the second change edits the amount,
/// or (every seventh record) marks it a no-show.
fn version(r: u64, v: u32) -> (i32, u64) {
    let cost = 1_000 + (r * 137) % 4_000;
    match v {
        1 => (1, cost),
        _ if r.is_multiple_of(7) => (-1, cost),
        _ => (1, cost + 500),
    }
}

fn body(r: u64, v: u32) -> Value {
    let (attendance, cost) = version(r, v);
    let client = r % CLIENTS;
    record_webhook(&Record {
        company_id: "4564",
        record_id: 10_000 + r,
        client_id: 900 + client,
        client_name: "Клиентка",
        phone: &phone(client),
        cost: &cost.to_string(),
        attendance,
        deleted: false,
        changed_at_s: 60 * (r as u32) + 30 * v,
    })
}

/// Whether a change's webhook is lost: about 30 %, the same in every run.
fn lost(r: u64, v: u32) -> bool {
    (r * 31 + u64::from(v) * 17) % 10 < 3
}

/// 5 % of a visit that came, in points (roubles / 20, rounded down).
fn points(r: u64, v: u32) -> i64 {
    let (attendance, cost) = version(r, v);
    if attendance == 1 {
        (cost / 20) as i64
    } else {
        0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_poller_pass_makes_every_balance_and_history_row_exact() {
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
            ("LOYALTY_POLL_INTERVAL_S", "1".to_owned()),
        ],
    };
    let names: Vec<String> = (0..CLIENTS).map(|c| format!("Клиентка {c}")).collect();
    let phones: Vec<String> = (0..CLIENTS).map(phone).collect();
    let contacts: Vec<(i64, &str, &str)> = (0..CLIENTS as usize)
        .map(|c| (chat(c as u64), names[c].as_str(), phones[c].as_str()))
        .collect();
    mount_telegram_contacts(&telegram, &contacts).await;
    // YCLIENTS lists every record as it is now: one page.
    let now: Vec<Value> = (0..RECORDS).map(|r| body(r, 2)["data"].clone()).collect();
    Mock::given(method("GET"))
        .and(path("/api/v1/records/4564"))
        .and(query_param("with_deleted", "1"))
        .and(query_param("page", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "success": true, "data": now, "meta": { "page": 1, "total_count": RECORDS }
        })))
        .mount(&yclients)
        .await;

    env.cli(&["migrate"]);
    let (partner, conn) = env.lotos_on_yclients("p", "u");
    let partner_id = partner["id"].to_string();
    let conn_id = conn["id"].to_string();
    let hook = conn["webhook_url"].as_str().unwrap().to_owned();
    // No pass until the webhooks are in.
    env.sync_interval(&conn_id, 0);

    let _gateway = env.serve(true, &addr).await;
    wait_until("every client linked", Duration::from_secs(60), || async {
        let mut linked = 0;
        for c in 0..CLIENTS {
            if texts_to(&telegram, chat(c))
                .await
                .iter()
                .any(|t| t.contains("Номер привязан"))
            {
                linked += 1;
            }
        }
        linked == CLIENTS
    })
    .await;

    let http = reqwest::Client::new();
    let mut delivered = 0;
    for v in [1, 2] {
        for r in 0..RECORDS {
            if lost(r, v) {
                continue;
            }
            let answer = post(&http, &hook, &body(r, v)).await;
            assert_ne!(answer["events"][0]["outcome"], json!("queued"));
            delivered += 1;
        }
    }
    assert!(
        (130..=150).contains(&delivered),
        "{delivered} of 200 delivered"
    );

    // Now the poller: one pass reads every record as YCLIENTS has it.
    env.sync_interval(&conn_id, 1);
    wait_until("a poller pass", Duration::from_secs(30), || async {
        let status = env.cli(&["sync", "status", "--connection", &conn_id]);
        status["connections"][0]["cursor_ms"].is_i64()
    })
    .await;

    // Balances and history exact for every client.
    let mut expected: HashMap<u64, i64> = HashMap::new();
    for r in 0..RECORDS {
        *expected.entry(r % CLIENTS).or_default() += points(r, 2);
    }
    let mut ledger_entries = HashMap::new();
    for c in 0..CLIENTS {
        let shown = env.cli(&[
            "client",
            "show",
            "--partner",
            &partner_id,
            "--phone",
            &phone(c),
            "--limit",
            "100",
        ]);
        assert_eq!(shown["balance"], json!(expected[&c]), "client {c}");
        let mut visits: Vec<(String, String, i64)> = shown["visits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["record_id"].as_str().unwrap().to_owned(),
                    v["status"].as_str().unwrap().to_owned(),
                    v["paid_minor"].as_i64().unwrap(),
                )
            })
            .collect();
        visits.sort();
        let mut want: Vec<(String, String, i64)> = (0..RECORDS)
            .filter(|r| r % CLIENTS == c)
            .map(|r| {
                let (attendance, cost) = version(r, 2);
                let status = if attendance == 1 { "came" } else { "no_show" };
                (
                    (10_000 + r).to_string(),
                    status.to_owned(),
                    (cost * 100) as i64,
                )
            })
            .collect();
        want.sort();
        assert_eq!(visits, want, "client {c}");
        let came = want.iter().filter(|v| v.1 == "came").count();
        assert_eq!(shown["summary"]["visits"], json!(came), "client {c}");
        ledger_entries.insert(c, shown["history"].as_array().unwrap().len());
    }

    // One message per change of points, none twice: each client's messages about visits
    // match their ledger entries one to one.
    wait_until("every message sent", Duration::from_secs(60), || async {
        let mut all = true;
        for c in 0..CLIENTS {
            let about_visits = texts_to(&telegram, chat(c))
                .await
                .iter()
                .filter(|t| about_points(t))
                .count();
            all &= about_visits >= ledger_entries[&c];
        }
        all
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for c in 0..CLIENTS {
        let about_visits = texts_to(&telegram, chat(c))
            .await
            .iter()
            .filter(|t| about_points(t))
            .count();
        assert_eq!(
            about_visits,
            ledger_entries[&c],
            "client {c}: {:?}",
            texts_to(&telegram, chat(c)).await
        );
    }
    let status = env.cli(&["sync", "status", "--connection", &conn_id]);
    let row = &status["connections"][0];
    assert_eq!(row["seen"], json!(RECORDS));
    assert_eq!(row["errors"], json!(0));
    schema.drop().await;
}

/// A message about points for a visit: an accrual or a reversal.
fn about_points(text: &str) -> bool {
    text.starts_with('💎') || text.starts_with('↩')
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
