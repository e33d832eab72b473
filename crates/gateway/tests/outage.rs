//! A busy evening with YCLIENTS' API gone, through the real binary on PostgreSQL: 500 "came"
//! record webhooks — 450 paid in full with their `visit_id`, as YCLIENTS sends them, and 50
//! partial ones that need the record fetched — while the API is first unreachable, then
//! answering 429 to everything, with the gateway killed (SIGKILL) half-way and started again.
//! Every webhook is answered 2xx within a second, none is lost, and once the API answers, every
//! visit is accrued exactly once within two minutes, the CRM budget at YCLIENTS' real limits
//! (5 a second, 200 a minute).

mod common;

use loyalty_core::ClientStore;
use loyalty_core::LedgerStore;
use std::time::{Duration, Instant};

use common::PgSchema;
use common::binary::{Env, free_port, kill_9};
use common::crm::{RecordById, unreachable_address};
use loyalty_core::inbox::IntakeStore;
use loyalty_core::quota::QuotaStore;
use loyalty_core::{PartnerId, Phone, Points};
use loyalty_gateway::sample::{Record, record_webhook};
use loyalty_store::SqlStore;
use serde_json::{Value, json};
use wiremock::matchers::{any, method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const WEBHOOKS: u64 = 500;
/// How long each phase of the outage lasts (unreachable, then 429s): three minutes in all, the
/// gateway killed at the start. Longer outages only keep the inbox in the same states longer:
/// its pause between tries stops growing at a minute, and a killed gateway's leases end after
/// one.
const PHASE: Duration = Duration::from_secs(90);

fn phone(id: u64) -> String {
    format!("7917{id:07}")
}

/// Record `id` as YCLIENTS has it: came, paid in full (the fixture's `paid_full` and
/// `visit_id`), 2 000 ₽.
fn came(id: u64) -> Value {
    record_webhook(&Record {
        company_id: "4564",
        record_id: id,
        client_id: 10_000 + id,
        client_name: "Гостья",
        phone: &phone(id),
        cost: "2000",
        attendance: 1,
        deleted: false,
        changed_at_s: 60,
    })
}

/// Every tenth webhook is partial (`{id, comment}` only): the record must be fetched.
fn webhook(id: u64) -> Value {
    if id.is_multiple_of(10) {
        json!({"company_id": 4564, "resource": "record", "resource_id": id, "status": "update",
               "data": {"id": id, "comment": "оплачено"}})
    } else {
        came(id)
    }
}

/// Posts webhooks `ids`, eight at a time; each must be answered 2xx within a second.
async fn deliver(http: &reqwest::Client, hook: &str, ids: std::ops::RangeInclusive<u64>) {
    let ids: Vec<u64> = ids.collect();
    for chunk in ids.chunks(8) {
        let mut sent = Vec::new();
        for &id in chunk {
            let (http, hook) = (http.clone(), hook.to_owned());
            sent.push(tokio::spawn(async move {
                let started = Instant::now();
                let r = http
                    .post(&hook)
                    .header("content-type", "application/json")
                    .body(webhook(id).to_string())
                    .send()
                    .await
                    .unwrap();
                let took = started.elapsed();
                assert!(r.status().is_success(), "webhook {id}: {}", r.status());
                assert!(took < Duration::from_secs(1), "webhook {id} took {took:?}");
            }));
        }
        for s in sent {
            s.await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_visits_outlive_an_absent_then_rate_limiting_crm_and_a_kill() {
    let (reserved, crm_addr) = unreachable_address();

    let schema = PgSchema::new().await;
    let addr = free_port();
    let env = Env {
        vars: vec![
            ("DATABASE_URL", schema.url.clone()),
            ("LOYALTY_LISTEN", addr.clone()),
            ("YCLIENTS_API_URL", format!("http://{crm_addr}/api/v1")),
        ],
    };
    env.cli(&["migrate"]);
    let (partner, conn) = env.lotos_on_yclients("p", "u");
    let secret = conn["webhook_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let hook = format!("http://{addr}/webhooks/yclients/{secret}");
    let http = reqwest::Client::new();
    let outage = Instant::now();

    // Half the evening, then the gateway is killed and started again; the other half.
    let gateway = env.serve(false, &addr).await;
    deliver(&http, &hook, 1..=WEBHOOKS / 2).await;
    kill_9(gateway);
    let gateway = env.serve(false, &addr).await;
    deliver(&http, &hook, WEBHOOKS / 2 + 1..=WEBHOOKS).await;

    let store = SqlStore::connect(&schema.url).await.unwrap();
    let stats = store.inbox_stats().await.unwrap();
    assert_eq!(
        stats.queued as u64,
        WEBHOOKS / 10,
        "the partial ones wait: {stats:?}"
    );
    assert_eq!(stats.dead, 0);

    // The API stays unreachable, then comes back answering 429 to everything…
    tokio::time::sleep(PHASE.saturating_sub(outage.elapsed())).await;
    drop(reserved);
    let listener = std::net::TcpListener::bind(crm_addr).unwrap();
    let crm = MockServer::builder().listener(listener).start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "2"))
        .mount(&crm)
        .await;
    tokio::time::sleep(PHASE).await;
    assert_eq!(
        store.inbox_stats().await.unwrap().queued as u64,
        WEBHOOKS / 10
    );

    // …and then answers: records by id, and empty lists for everything else (the import, the
    // poller, the service list).
    crm.reset().await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/api/v1/record/4564/\d+$"))
        .respond_with(RecordById(|id| came(id)["data"].clone()))
        .mount(&crm)
        .await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"success": true, "data": [], "meta": {"total_count": 0}})),
        )
        .mount(&crm)
        .await;
    let back = Instant::now();
    let back_ms = loyalty_core::Clock::now_ms(&loyalty_core::SystemClock);
    loop {
        let stats = store.inbox_stats().await.unwrap();
        if stats.queued == 0 {
            assert_eq!(stats.dead, 0);
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(120),
            "still waiting two minutes after the API came back: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every visit accrued once: 100 points each, one entry each, the books balanced.
    let partner = PartnerId(partner["id"].as_i64().unwrap());
    for id in 1..=WEBHOOKS {
        let p = Phone::parse_international(&phone(id)).unwrap();
        let client = store.client_by_phone(partner, &p).await.unwrap();
        let client = client.unwrap_or_else(|| panic!("visit {id} lost"));
        assert_eq!(
            store.balance(partner, client.id).await.unwrap(),
            Points(100),
            "visit {id}"
        );
    }
    assert_eq!(store.entry_count(partner).await.unwrap(), WEBHOOKS as i64);
    assert!(store.account_totals(partner).await.unwrap().is_balanced());

    // The budget held YCLIENTS' real limits once the API answered (within 100 ms of margin
    // per window, which the scheduler adds).
    let calls: Vec<i64> = store
        .budget_calls("yclients:default", back_ms - 1_000)
        .await
        .unwrap()
        .iter()
        .map(|c| c.0)
        .collect();
    assert!(
        calls.len() >= (WEBHOOKS / 10) as usize,
        "{} calls",
        calls.len()
    );
    for (window, limit) in [(1_000, 5), (60_000, 200)] {
        for (i, t) in calls.iter().enumerate() {
            let inside = calls[i..].iter().take_while(|u| **u - t < window).count();
            assert!(
                inside <= limit,
                "{inside} calls within {window} ms from {t}"
            );
        }
    }
    let refetched: Vec<String> = crm
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().starts_with("/api/v1/record/"))
        .map(|r| r.url.path().to_owned())
        .collect();
    assert!(
        refetched.len() >= (WEBHOOKS / 10) as usize,
        "{} re-fetches",
        refetched.len()
    );
    kill_9(gateway);
    store.close().await;
    schema.drop().await;
}
