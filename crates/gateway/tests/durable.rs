//! A webhook is never lost because the CRM's API is down, slow or rate-limited: what needs the
//! API is stored and answered 200 at once, and applied exactly once when the CRM answers again.
//! The gateway in process over real HTTP on a real PostgreSQL; YCLIENTS is first nothing at all
//! (a port nobody listens on), then a wiremock server on that same port answering 429, then
//! the records.

mod common;

use loyalty_core::ClientStore;
use loyalty_core::LedgerStore;
use std::time::{Duration, Instant};

use common::crm::{RecordById, unreachable_address};
use common::{PgSchema, add_lotos, connect_yclients, serve_with};
use loyalty_core::inbox::{InboxPolicy, IntakeStore};
use loyalty_core::{PartnerId, Phone, Points};
use loyalty_gateway::StartOptions;
use loyalty_gateway::config::Overrides;
use loyalty_gateway::sample::{Record, record_webhook};
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn record(id: u64, attendance: i32) -> Value {
    record_webhook(&Record {
        company_id: "4564",
        record_id: id,
        client_id: 1_000 + id,
        client_name: "Клиентка",
        phone: &format!("7916{:07}", id),
        cost: "2000",
        attendance,
        deleted: false,
        changed_at_s: 60,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_outlive_a_crm_that_is_down_then_rate_limited() {
    let (reserved, crm_addr) = unreachable_address();

    let schema = PgSchema::new().await;
    let options = StartOptions {
        inbox: Some(InboxPolicy {
            first_pause_ms: 1_000,
            max_pause_ms: 4_000,
            ..InboxPolicy::default()
        }),
        ..StartOptions::default()
    };
    let overrides = Overrides {
        yclients_api_url: Some(format!("http://{crm_addr}/api/v1")),
        ..Overrides::default()
    };
    let (gateway, config) = serve_with(&schema, overrides, options).await;
    let partner = PartnerId(add_lotos(&gateway.store).await);
    let conn = connect_yclients(&gateway.store, &config, partner.0, Some(("p", "u"))).await;
    let hook = conn["webhook_url"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();

    // 20 records that came, paid in full (nothing of ours in the CRM: applied at once), and
    // 5 partial ones (`{id, comment}`: the CRM must be asked).
    let mut queued = 0;
    for id in 1..=25u64 {
        let body = if id <= 20 {
            record(id, 1)
        } else {
            json!({"company_id": 4564, "resource": "record", "resource_id": id,
                   "status": "update", "data": {"id": id, "comment": "оплачено"}})
        };
        let started = Instant::now();
        let (status, answer) = post(&http, &hook, &body).await;
        let took = started.elapsed();
        assert_eq!(status, 200, "record {id}");
        assert!(took < Duration::from_secs(1), "record {id} took {took:?}");
        let outcome = answer["events"][0]["outcome"].as_str().unwrap().to_owned();
        if id <= 20 {
            assert_eq!(
                answer["events"][0],
                json!({"outcome": "applied", "points": 100})
            );
        } else {
            assert_eq!(outcome, "queued");
            queued += 1;
        }
    }
    assert_eq!(queued, 5);
    let store = gateway.store.clone();
    let balance = |id: u64| {
        let store = store.clone();
        async move {
            let phone = Phone::parse_international(&format!("7916{:07}", id)).unwrap();
            match store.client_by_phone(partner, &phone).await.unwrap() {
                Some(c) => store.balance(partner, c.id).await.unwrap(),
                None => Points::ZERO,
            }
        }
    };
    // While the CRM is unreachable the partial ones wait, each tried again and again, none
    // lost (a try of a refused call takes a few seconds of the client's own retries).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let waiting = store.inbox_items(false, 20).await.unwrap();
        assert_eq!(waiting.len(), 5);
        let tried = waiting.iter().all(|i| {
            let error = i.last_error.as_deref().unwrap_or_default();
            i.attempts >= 2 && error.contains("transient CRM failure")
        });
        if tried {
            break;
        }
        assert!(Instant::now() < deadline, "{waiting:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(store.inbox_stats().await.unwrap().dead, 0);
    let (_, metrics) = get(&http, gateway.addr, "/metrics").await;
    assert!(metrics.contains("loyalty_inbox_queued 5"), "{metrics}");
    assert_eq!(balance(25).await, Points::ZERO);

    // The CRM comes back on its address, rate-limiting everything at first.
    drop(reserved);
    let listener = std::net::TcpListener::bind(crm_addr).unwrap();
    let crm = MockServer::builder().listener(listener).start().await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/api/v1/record/4564/\d+$"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(6)
        .mount(&crm)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/api/v1/record/4564/\d+$"))
        .respond_with(RecordById(|id| record(id, 1)["data"].clone()))
        .mount(&crm)
        .await;

    // Every partial record is fetched and applied, each once, within the two minutes the
    // CRM's per-minute budget may hold them back after the outage used it up.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stats = store.inbox_stats().await.unwrap();
        if stats.queued == 0 {
            assert_eq!(stats.dead, 0);
            break;
        }
        if Instant::now() >= deadline {
            let now = loyalty_core::Clock::now_ms(&loyalty_core::SystemClock);
            let items = store.inbox_items(false, 20).await.unwrap();
            let calls = crm.received_requests().await.unwrap().len();
            let view: Vec<_> = items
                .iter()
                .map(|i| (i.attempts, i.next_at_ms - now, i.last_error.clone()))
                .collect();
            panic!("still waiting: {stats:?}, {calls} calls to the CRM; {view:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in 1..=25 {
        assert_eq!(balance(id).await, Points(100), "record {id}");
    }
    let totals = store.account_totals(partner).await.unwrap();
    assert!(totals.is_balanced(), "{totals:?}");
    assert_eq!(
        store.entry_count(partner).await.unwrap(),
        25,
        "each accrued once"
    );
    let asked = crm.received_requests().await.unwrap();
    assert!(asked.len() >= 6 + 5, "{} calls", asked.len());
    // A full webhook of a queued record arriving now changes nothing.
    let (_, answer) = post(&http, &hook, &record(25, 1)).await;
    assert_eq!(answer["events"][0]["points"], json!(0));

    gateway.stop().await.unwrap();
    schema.drop().await;
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn get(http: &reqwest::Client, addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let resp = http
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}
