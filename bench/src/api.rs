//! The partner API section: visits pushed through `POST /api/v1/visits` against the same
//! visits as YCLIENTS record webhooks, in one run of one gateway on one database.
//!
//! Two salons with the same program (levels and a campaign, as the ingest section's): one
//! takes record webhooks on a YCLIENTS connection without API tokens (the webhook path: parse,
//! the credit question, the engine), the other, on the Enterprise plan, takes the same visits
//! as JSON with a write key and an `Idempotency-Key` each (auth, the replay table, the engine).
//! Both get the same deliveries (fresh records, one in ten a repeat byte for byte, which the
//! engine finds a duplicate on both paths; each push under its own Idempotency-Key, so every
//! request is answered by the engine rather than replayed), closed loop at concurrency 16 and
//! 64, the two interleaved, each figure the median of `BENCH_ROUNDS` runs. Printed: a table
//! and one JSON line with the ratio (the target: at least 0.9).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::json;

use loyalty_store::{PoolSettings, SqlStore};

use crate::{
    COMPANY_HTTP, Database, Delivery, Figures, Served, add_salon, figures, median, run_cli,
    salon_with_program, settle, with_db, workload,
};

/// The API salon's name (it has no CRM).
const COMPANY_API: &str = "4570";

/// One request: the body and its headers.
pub(crate) struct Request {
    pub(crate) body: Vec<u8>,
    pub(crate) headers: Vec<(&'static str, String)>,
}

/// The visit a webhook delivery describes, as a POS pushes it.
fn visit(d: &Delivery) -> Vec<u8> {
    json!({
        "id": format!("r{}", d.record_id),
        "status": "came",
        "client": {"phone": format!("+{}", d.phone()), "name": format!("Клиент {}", d.client)},
        "lines": [{"title": "Стрижка", "paid_minor": d.cost_rub * 100}],
        "master": "Анна",
        "at_ms": i64::from(d.changed_at_s) * 1000 + 1_700_000_000_000,
        "version": i64::from(d.changed_at_s),
    })
    .to_string()
    .into_bytes()
}

/// Closed loop: `concurrency` workers, each sending the next request when its last one is
/// answered 2xx (the ingest section's runs too).
pub(crate) async fn run(
    http: &reqwest::Client,
    url: &str,
    requests: Arc<Vec<Request>>,
    concurrency: usize,
) -> anyhow::Result<Figures> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (http, url, requests, next) = (
            http.clone(),
            url.to_owned(),
            Arc::clone(&requests),
            Arc::clone(&next),
        );
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(r) = requests.get(i) else { break };
                let t = Instant::now();
                let mut req = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(r.body.clone());
                for (k, v) in &r.headers {
                    req = req.header(*k, v);
                }
                let answer = req.send().await?;
                if !answer.status().is_success() {
                    bail!(
                        "{url} answered {}: {}",
                        answer.status(),
                        answer.text().await.unwrap_or_default()
                    );
                }
                answer.bytes().await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await??);
    }
    Ok(figures(all, started.elapsed()))
}

pub async fn run_section(admin: &str, gateway: &str, scale: usize) -> anyhow::Result<String> {
    let db = Database::create(admin, "api").await?;
    let result = measure(&db, gateway, scale).await;
    db.drop_now().await;
    result
}

async fn measure(db: &Database, gateway: &str, scale: usize) -> anyhow::Result<String> {
    let url = with_db(&db.admin, &db.name);
    run_cli(gateway, &url, &["migrate"])?;
    let (_, _, hook_url) = add_salon(gateway, &url, COMPANY_HTTP, false)?;
    // The API salon: the same program, no CRM, the Enterprise plan, a write key.
    let partner = salon_with_program(gateway, &url, COMPANY_API)?["id"].to_string();
    run_cli(
        gateway,
        &url,
        &[
            "partner",
            "plan",
            "--partner",
            &partner,
            "--plan",
            "enterprise",
        ],
    )?;
    let key = run_cli(
        gateway,
        &url,
        &["api-key", "add", "--partner", &partner, "--scope", "write"],
    )?["key"]
        .as_str()
        .context("api-key add printed no key")?
        .to_owned();
    // No CRM is asked: the webhook salon has no API tokens.
    let served = Served::start_with(
        gateway,
        &url,
        "http://127.0.0.1:9",
        "warn",
        &[("LOYALTY_API_RATE", "100000")],
    )?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()?;
    served.ready(&http).await?;
    let store = SqlStore::connect_with(
        &url,
        PoolSettings::for_backend(loyalty_store::Backend::Postgres),
    )
    .await?;
    let secret = hook_url.rsplit('/').next().unwrap_or_default();
    let hook = format!("http://{}/webhooks/yclients/{secret}", served.listen);
    let api = format!("http://{}/api/v1/visits", served.listen);
    let as_webhooks = |work: &[Delivery]| -> Arc<Vec<Request>> {
        Arc::new(
            work.iter()
                .map(|d| Request {
                    body: d.body(COMPANY_HTTP),
                    headers: Vec::new(),
                })
                .collect(),
        )
    };
    let batch = AtomicUsize::new(0);
    let as_pushes = |work: &[Delivery]| -> Arc<Vec<Request>> {
        let b = batch.fetch_add(1, Ordering::Relaxed);
        Arc::new(
            work.iter()
                .enumerate()
                .map(|(i, d)| Request {
                    body: visit(d),
                    headers: vec![
                        ("authorization", format!("Bearer {key}")),
                        ("idempotency-key", format!("b{b}-{i}")),
                    ],
                })
                .collect(),
        )
    };
    // Warm-up: every client exists in both salons.
    let warm = workload(0, 2_000, 7);
    run(&http, &hook, as_webhooks(&warm), 16).await?;
    run(&http, &api, as_pushes(&warm), 16).await?;

    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let mut out = String::new();
    out.push_str(&format!(
        "partner API: pushed visits against record webhooks, median of {rounds} rounds\n"
    ));
    out.push_str(
        "concurrency  webhook rps   p50 ms   p99 ms |  API rps   p50 ms   p99 ms | ratio\n",
    );
    let mut first = 10_000_000u64;
    let mut rows = Vec::new();
    for (i, concurrency) in [16usize, 64].into_iter().enumerate() {
        let (mut hooks, mut pushes) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let work = workload(first, scale, 31 + (i * rounds + round) as u64);
            first += scale as u64 + 1;
            settle(&store).await;
            hooks.push(run(&http, &hook, as_webhooks(&work), concurrency).await?);
            settle(&store).await;
            pushes.push(run(&http, &api, as_pushes(&work), concurrency).await?);
        }
        let (h, p) = (median(&hooks), median(&pushes));
        out.push_str(&format!(
            "{concurrency:>11}  {:>11.0} {:>8.2} {:>8.2} | {:>8.0} {:>8.2} {:>8.2} | {:>5.2}\n",
            h.rps,
            h.p50_ms,
            h.p99_ms,
            p.rps,
            p.p50_ms,
            p.p99_ms,
            p.rps / h.rps
        ));
        rows.push((concurrency, h, p));
    }
    store.close().await;
    let round2 = |v: f64| (v * 100.0).round() / 100.0;
    let worst = rows
        .iter()
        .map(|(_, h, p)| p.rps / h.rps)
        .fold(f64::INFINITY, f64::min);
    out.push_str(
        &json!({
            "api_visits_rps": rows.iter().map(|(c, _, p)| json!({"concurrency": c, "rps": round2(p.rps), "p99_ms": round2(p.p99_ms)})).collect::<Vec<_>>(),
            "webhook_rps": rows.iter().map(|(c, h, _)| json!({"concurrency": c, "rps": round2(h.rps), "p99_ms": round2(h.p99_ms)})).collect::<Vec<_>>(),
            "api_to_webhook_min_ratio": round2(worst),
        })
        .to_string(),
    );
    Ok(out)
}
