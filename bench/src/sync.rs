//! The sync section: a salon's two-year history imported by the running gateway from a local
//! YCLIENTS stand-in that enforces the vendor's limits ([`crate::fake_crm`]), while a second
//! salon's webhooks need the CRM. Method and figures: docs/benchmarks.md.
//!
//! 1. A fresh database; salon A (company 7001: 5,000 cards, 20,000 records over two years) and
//!    salon B (company 7002), both with API tokens, so adding them queues their imports.
//! 2. The release gateway `serve`s with the stand-in as its YCLIENTS API.
//! 3. Until A's import is done, every 2 s salon B's CRM sends a partial record webhook; each
//!    needs a re-fetch at the live priority, and its latency is from the webhook's answer to
//!    the record being in B's history.
//! 4. Figures: the calls a minute the stand-in served over each whole minute of the import, as a
//!    share of 200; the import's own calls a minute; the 429s it answered; the gateway's peak RSS;
//!    the re-fetch latencies.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loyalty_core::{ConnectionId, PartnerId};
use loyalty_gateway::sample::{Record, record_webhook};
use loyalty_store::SqlStore;
use serde_json::{Value, json};

use crate::fake_crm::{Company, FakeCrm, Kind};
use crate::{Database, Served, add_salon, rss_mib, run_cli, with_db};

const HISTORY: &str = "7001";
const LIVE: &str = "7002";
const CARDS: u64 = 5_000;
const RECORDS: u64 = 20_000;
const DAY_S: i64 = 86_400;

fn phone(client: u64) -> String {
    format!("7926{client:07}")
}

/// Record `r` of the history: every 52 minutes back from now (two years for the last), one of
/// 5,000 cards, 1,000 to 5,000 ₽, one in nine a no-show.
fn history_record(r: u64, now_s: i64) -> Value {
    let client = r % CARDS;
    let cost = (1_000 + (r * 37) % 4_000).to_string();
    let mut body = record_webhook(&Record {
        company_id: HISTORY,
        record_id: 100_000 + r,
        client_id: 500_000 + client,
        client_name: "Клиентка",
        phone: &phone(client),
        cost: &cost,
        attendance: if r.is_multiple_of(9) { -1 } else { 1 },
        deleted: false,
        changed_at_s: 60,
    });
    let span = 2 * 365 * DAY_S - DAY_S;
    let back = i64::try_from(r).unwrap_or(0) * span / i64::try_from(RECORDS).unwrap_or(1);
    if let Some(at) = chrono::DateTime::from_timestamp(now_s - back, 0) {
        body["data"]["datetime"] = json!(at.format("%Y-%m-%dT%H:%M:%S+00:00").to_string());
        body["data"]["date"] = json!(at.format("%Y-%m-%d %H:%M:%S").to_string());
    }
    body["data"].take()
}

/// A record of salon B as its CRM has it: came, 2 000 ₽.
fn live_record(company: &str, id: u64) -> Value {
    record_webhook(&Record {
        company_id: company,
        record_id: id,
        client_id: 900_000 + id % 300,
        client_name: "Гостья",
        phone: &format!("7927{:07}", id % 300),
        cost: "2000",
        attendance: 1,
        deleted: false,
        changed_at_s: 60,
    })["data"]
        .take()
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub async fn run(admin: &str, gateway_bin: &str) -> anyhow::Result<Value> {
    let db = Database::create(admin, "sync").await?;
    let result = measure(&db, gateway_bin).await;
    db.drop_now().await;
    result
}

async fn measure(db: &Database, gateway_bin: &str) -> anyhow::Result<Value> {
    let url = with_db(&db.admin, &db.name);
    let now_s = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    )?;
    let mut companies = HashMap::new();
    companies.insert(
        HISTORY.to_owned(),
        Company {
            clients: (0..CARDS)
                .map(|c| {
                    json!({"id": 500_000 + c, "name": "Клиентка", "phone": phone(c),
                           "email": "", "birth_date": ""})
                })
                .collect(),
            records: (1..=RECORDS).map(|r| history_record(r, now_s)).collect(),
            record_by_id: None,
        },
    );
    companies.insert(
        LIVE.to_owned(),
        Company {
            record_by_id: Some(live_record),
            ..Company::default()
        },
    );
    let crm = FakeCrm::start(companies).await?;

    run_cli(gateway_bin, &url, &["migrate"])?;
    let salons = vec![
        add_salon(gateway_bin, &url, HISTORY, true)?,
        add_salon(gateway_bin, &url, LIVE, true)?,
    ];
    let served = Served::start(gateway_bin, &url, &crm.url(), "warn")?;
    drive(&url, &served, &salons, &crm).await
}

async fn drive(
    url: &str,
    served: &Served,
    salons: &[(PartnerId, ConnectionId, String)],
    crm: &FakeCrm,
) -> anyhow::Result<Value> {
    let store = Arc::new(SqlStore::connect(url).await?);
    let http = reqwest::Client::new();
    served.ready(&http).await?;
    let (listen, pid) = (served.listen.as_str(), served.pid());
    let started = Instant::now();
    let (history_conn, (live_partner, live_conn)) = (salons[0].1, (salons[1].0, salons[1].1));
    let secret = salons[1].2.rsplit('/').next().unwrap_or_default();
    let hook = format!("http://{listen}/webhooks/yclients/{secret}");

    let done = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM import_jobs WHERE connection_id = $1 AND phase = 'done'",
        )
        .bind(history_conn.0)
        .fetch_one(store.pool())
        .await
        .map(|n| n > 0)
        .unwrap_or(false)
    };
    let mut waiters = Vec::new();
    let mut next_record = 1u64;
    let mut ready = false;
    while !done().await {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(20 * 60),
            "the import did not finish in 20 minutes"
        );
        let answered = http
            .post(&hook)
            .header("content-type", "application/json")
            .body(
                json!({"company_id": LIVE.parse::<u64>().unwrap_or(0), "resource": "record",
                       "resource_id": next_record, "status": "update",
                       "data": {"id": next_record, "comment": "оплачено"}})
                .to_string(),
            )
            .send()
            .await;
        match answered {
            Ok(r) if r.status().is_success() => {
                ready = true;
                let (store, record) = (Arc::clone(&store), next_record.to_string());
                let asked = Instant::now();
                waiters.push(tokio::spawn(async move {
                    let deadline = asked + Duration::from_secs(120);
                    loop {
                        if let Ok(Some(_)) = loyalty_core::history::HistoryStore::visit(
                            store.as_ref(),
                            live_partner,
                            live_conn,
                            &record,
                        )
                        .await
                        {
                            return Some(asked.elapsed());
                        }
                        if Instant::now() > deadline {
                            return None;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }));
                next_record += 1;
            }
            Ok(r) => anyhow::bail!("the gateway answered {} to a webhook", r.status()),
            // Not listening yet.
            Err(_) if !ready => {}
            Err(e) => return Err(e.into()),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let import_s = started.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    let mut lost = 0;
    for w in waiters {
        match w.await? {
            Some(d) => latencies.push(d.as_secs_f64() * 1e3),
            None => lost += 1,
        }
    }
    latencies.sort_by(f64::total_cmp);
    let peak_rss = rss_mib(pid, "VmHWM:");

    let served = crm.served();
    let history: Vec<Instant> = served
        .iter()
        .filter(|s| s.company == HISTORY && matches!(s.kind, Kind::Clients | Kind::Records))
        .map(|s| s.at)
        .collect();
    let (Some(&first), Some(&last)) = (history.first(), history.last()) else {
        anyhow::bail!("the import made no calls");
    };
    // Every call the stand-in served in each whole minute of the import, and the import's own.
    let mut minutes = Vec::new();
    let mut from = first;
    while from + Duration::from_secs(60) <= last {
        let to = from + Duration::from_secs(60);
        let all = served.iter().filter(|s| s.at >= from && s.at < to).count();
        let import = history.iter().filter(|t| **t >= from && **t < to).count();
        minutes.push((all, import));
        from = to;
    }
    let share = if minutes.is_empty() {
        0.0
    } else {
        minutes.iter().map(|m| m.0 as f64).sum::<f64>() / minutes.len() as f64 / 200.0
    };
    let import_per_min = history.len() as f64 / last.duration_since(first).as_secs_f64() * 60.0;
    let per_record: usize = served
        .iter()
        .filter(|s| s.company == LIVE && s.kind == Kind::Record)
        .count();
    let count = |sql: &'static str, id: i64| {
        let pool = store.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap_or(-1)
        }
    };
    let records = count(
        "SELECT COUNT(*) FROM crm_records WHERE connection_id = $1",
        history_conn.0,
    )
    .await;
    let cards = count(
        "SELECT COUNT(*) FROM client_external_ids WHERE connection_id = $1",
        history_conn.0,
    )
    .await;
    let round = |v: f64| (v * 100.0).round() / 100.0;
    println!(
        "sync: imported {records} records and {cards} cards in {import_s:.0} s ({} calls, {:.0} a minute); \
         {} whole minutes at {:.1} % of 200 calls/min (all calls); {} × 429",
        history.len(),
        import_per_min,
        minutes.len(),
        share * 100.0,
        crm.rejected()
    );
    println!(
        "sync: {} live re-fetches of a second salon during the import: p50 {:.0} ms, p99 {:.0} ms, {lost} not applied in 2 min; gateway peak RSS {peak_rss:.1} MiB",
        latencies.len(),
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
    );
    store.close().await;
    Ok(json!({
        "section": "sync",
        "import_records": records,
        "import_cards": cards,
        "import_s": round(import_s),
        "import_calls": history.len(),
        "import_calls_per_min": round(import_per_min),
        "calls_per_min_share": round(share),
        "minutes": minutes.len(),
        "crm_429": crm.rejected(),
        "rss_mib": round(peak_rss),
        "live_refetches": latencies.len(),
        "live_refetch_calls": per_record,
        "live_p50_ms": round(quantile(&latencies, 0.5)),
        "live_p99_ms": round(quantile(&latencies, 0.99)),
        "live_lost": lost,
    }))
}
