//! The ingestion bench (`cargo xtask bench` builds it in release and runs it). Method and
//! figures: docs/benchmarks.md.
//!
//! 1. Creates a database `loyalty_bench_<pid>` on the PostgreSQL at `BENCH_ADMIN_URL`, migrates
//!    it, adds two partners with a YCLIENTS connection each (one for the gateway, one for the
//!    SQL run), and starts the release gateway (`BENCH_GATEWAY`) on it.
//! 2. For each concurrency (1, 16, 64): posts realistic record webhooks (the YCLIENTS fixture,
//!    2,000 recurring clients, 10 % duplicates) through the gateway's HTTP door, closed loop;
//!    then runs the same work as the same SQL transactions straight through the store's sqlx
//!    transaction, with no HTTP, JSON or engine around it.
//!    Each figure is the median of `BENCH_ROUNDS` (default 3) interleaved runs.
//! 3. At half the best gateway rate, an open-loop run (requests started on a fixed schedule,
//!    latency measured from the scheduled start) gives the latency figures.
//! 4. Prints a table, then one JSON object, last.

mod api;
mod dashboard;
mod engage;
mod fake_crm;
mod import;
mod limit;
mod models;
mod sync;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use loyalty_core::event::{LineKind, VisitLine, VisitStatus};
use loyalty_core::history::Visit;
use loyalty_core::inbox::Source;
use loyalty_core::ledger::{Account, EntryKind, NewEntry, NewLot};
use loyalty_core::store::DeliveryRecord;
use loyalty_core::{ClientId, ConnectionId, PartnerId, Phone, Points, Store, StoreError, StoreTx};
use loyalty_gateway::sample::{Record, record_webhook};
use loyalty_store::{PoolSettings, SqlStore};
use serde_json::json;
use sqlx::Connection;

const CLIENTS: u64 = 2_000;
const COMPANY_HTTP: &str = "4564";
const COMPANY_SQL: &str = "4565";

/// One delivery of the workload: the same facts go over HTTP as JSON and to the SQL run as
/// values.
#[derive(Clone)]
struct Delivery {
    record_id: u64,
    client: u64,
    cost_rub: i64,
    changed_at_s: u32,
}

impl Delivery {
    fn phone(&self) -> String {
        format!("7916{:07}", self.client)
    }

    fn body(&self, company: &str) -> Vec<u8> {
        let phone = self.phone();
        let cost = self.cost_rub.to_string();
        let name = format!("Клиент {}", self.client);
        record_webhook(&Record {
            company_id: company,
            record_id: self.record_id,
            client_id: 1_000_000 + self.client,
            client_name: &name,
            phone: &phone,
            cost: &cost,
            attendance: 1,
            deleted: false,
            changed_at_s: self.changed_at_s,
        })
        .to_string()
        .into_bytes()
    }
}

/// `n` deliveries of fresh records starting at `first_record`; every tenth repeats an earlier
/// one of the batch byte for byte.
fn workload(first_record: u64, n: usize, seed: u64) -> Vec<Delivery> {
    let mut out: Vec<Delivery> = Vec::with_capacity(n);
    let mut x = seed | 1;
    let mut rand = move || {
        // xorshift64: a fixed, repeatable sequence.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut record = first_record;
    for i in 0..n {
        if i % 10 == 9 && i > 0 {
            let back = usize::try_from(rand() % 8).unwrap_or(0) + 1;
            out.push(out[i.saturating_sub(back)].clone());
            continue;
        }
        record += 1;
        out.push(Delivery {
            record_id: record,
            client: rand() % CLIENTS,
            cost_rub: 1_000 + i64::try_from(rand() % 9_000).unwrap_or(0),
            changed_at_s: u32::try_from(record % 30_000).unwrap_or(0),
        });
    }
    out
}

#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn figures(mut lat: Vec<Duration>, took: Duration) -> Figures {
    lat.sort();
    let pick = |q: f64| {
        if lat.is_empty() {
            return 0.0;
        }
        let idx = ((lat.len() as f64 - 1.0) * q).round() as usize;
        lat[idx.min(lat.len() - 1)].as_secs_f64() * 1e3
    };
    Figures {
        rps: lat.len() as f64 / took.as_secs_f64(),
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
    }
}

/// Flushes dirty pages (`CHECKPOINT`, as the bench's superuser) and refreshes statistics
/// before a run, so one run's writes do not land as another run's checkpoint stall.
async fn settle(store: &SqlStore) {
    for sql in ["CHECKPOINT", "ANALYZE"] {
        if let Err(e) = sqlx::query(sql).execute(store.pool()).await {
            eprintln!("bench: {sql} failed ({e}); figures may include its stalls");
        }
    }
}

/// The median of each figure over several runs.
fn median(runs: &[Figures]) -> Figures {
    let mid = |f: fn(&Figures) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    Figures {
        rps: mid(|f| f.rps),
        p50_ms: mid(|f| f.p50_ms),
        p99_ms: mid(|f| f.p99_ms),
    }
}

/// Closed loop over HTTP: `concurrency` workers, each posting the next delivery when its last
/// one is answered.
async fn http_run(
    http: &reqwest::Client,
    url: &str,
    bodies: Arc<Vec<Vec<u8>>>,
    concurrency: usize,
) -> anyhow::Result<Figures> {
    let requests = bodies
        .iter()
        .map(|b| api::Request {
            body: b.clone(),
            headers: Vec::new(),
        })
        .collect();
    api::run(http, url, Arc::new(requests), concurrency).await
}

async fn post(http: &reqwest::Client, url: &str, body: Vec<u8>) -> anyhow::Result<()> {
    let r = http
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    if !r.status().is_success() {
        bail!(
            "gateway answered {}: {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
    }
    r.bytes().await?;
    Ok(())
}

/// Open loop: request `i` starts at `i / rate` seconds whatever happened to the others;
/// latency counts from that scheduled start.
async fn open_loop(
    http: &reqwest::Client,
    url: &str,
    bodies: Vec<Vec<u8>>,
    rate: f64,
) -> anyhow::Result<Figures> {
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(bodies.len());
    for (i, body) in bodies.into_iter().enumerate() {
        let at = started + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(at).await;
        let (http, url) = (http.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            post(&http, &url, body).await?;
            anyhow::Ok(at.elapsed())
        }));
    }
    let mut lat = Vec::with_capacity(tasks.len());
    for t in tasks {
        lat.push(t.await??);
    }
    Ok(figures(lat, started.elapsed()))
}

/// The SQL the engine issues for one record delivery, through the store's transaction and
/// nothing else: lock the record, resolve the client by CRM id (creating it on first sight),
/// lock the balance, post the entry and its lot, save the record, log the delivery, commit.
async fn sql_delivery(
    store: &SqlStore,
    partner: PartnerId,
    conn: ConnectionId,
    d: &Delivery,
    now: i64,
) -> Result<(), StoreError> {
    loop {
        match sql_delivery_once(store, partner, conn, d, now).await {
            Err(StoreError::Retryable(_) | StoreError::Duplicate(_)) => continue,
            other => return other,
        }
    }
}

async fn sql_delivery_once(
    store: &SqlStore,
    partner: PartnerId,
    conn: ConnectionId,
    d: &Delivery,
    now: i64,
) -> Result<(), StoreError> {
    let mut tx: Box<dyn StoreTx> = store.begin().await?;
    let program = tx.program(partner).await?.program;
    let record_id = d.record_id.to_string();
    let mut state = tx.lock_record(partner, conn, &record_id).await?;
    let fingerprint = format!("{}:{}", d.record_id, d.cost_rub);
    let mut outcome = "duplicate";
    let mut delta = Points::ZERO;
    if state.fingerprint.as_deref() != Some(fingerprint.as_str()) {
        let external = (1_000_000 + d.client).to_string();
        let client = match tx.client_by_external_id(partner, conn, &external).await? {
            Some(c) => c,
            None => {
                let phone = Phone::parse_international(&d.phone())
                    .map_err(|e| StoreError::Backend(e.to_string()))?;
                let name = format!("Клиент {}", d.client);
                let (c, _) = tx.insert_client(partner, &phone, Some(&name), now).await?;
                tx.link_external_id(partner, conn, &external, c.id).await?;
                c
            }
        };
        let client_id: ClientId = client.id;
        let balance = tx.lock_balance(partner, client_id).await?;
        let amount = Points(d.cost_rub * program.cashback.value() / 10_000);
        state.postings += 1;
        let entry = NewEntry {
            idempotency_key: format!("visit:{conn}:{record_id}:{}", state.postings),
            kind: EntryKind::Accrual,
            debit: Account::Issued,
            credit: Account::Client(client_id),
            amount,
            client_id,
            reverses: None,
            reason: Some(format!("visit {record_id}")),
        };
        let entry_id = tx.insert_entry(partner, &entry, now).await?;
        let lot = NewLot {
            client_id,
            entry_id,
            source: Some(format!("{conn}:{record_id}")),
            amount,
            expires_at_ms: None,
        };
        tx.insert_lot(partner, &lot, now).await?;
        tx.set_balance(partner, client_id, balance + amount).await?;
        state.client_id = Some(client_id);
        state.accrued = amount;
        state.last_accrual = Some(entry_id);
        state.version = Some(i64::from(d.changed_at_s));
        state.fingerprint = Some(fingerprint);
        state.status = Some(VisitStatus::Came);
        // The history row goes with the record's state, and the client's summary with it.
        let visit = Visit {
            partner_id: partner,
            connection_id: conn,
            record_id: record_id.clone(),
            client_id: Some(client_id),
            visit_at_ms: Some(now),
            status: VisitStatus::Came,
            staff_id: Some("9".into()),
            staff_name: Some("Оксана".into()),
            paid_minor: d.cost_rub * 100,
            loyalty_paid_minor: 0,
            lines: vec![VisitLine {
                item_id: "1".into(),
                category_id: None,
                kind: LineKind::Service,
                title: "Окрашивание".into(),
                paid_minor: d.cost_rub * 100,
            }],
            source: Source::Webhook,
            updated_at_ms: now,
        };
        tx.save_record(&state, &visit).await?;
        tx.refresh_summary(partner, client_id, i64::MIN).await?;
        outcome = "applied";
        delta = amount;
    }
    let delivery = DeliveryRecord {
        connection_id: conn,
        resource: "record".into(),
        resource_id: Some(record_id),
        outcome: outcome.into(),
        delta,
        received_at_ms: now,
    };
    tx.record_delivery(partner, &delivery).await?;
    tx.commit().await
}

async fn sql_run(
    store: Arc<SqlStore>,
    partner: PartnerId,
    conn: ConnectionId,
    work: Arc<Vec<Delivery>>,
    concurrency: usize,
) -> anyhow::Result<Figures> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (store, work, next) = (Arc::clone(&store), Arc::clone(&work), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(d) = work.get(i) else { break };
                let t = Instant::now();
                sql_delivery(&store, partner, conn, d, 1_795_000_000_000).await?;
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

/// Calls the stand-in CRM served that a record delivery can cost (a re-fetch, a bill's
/// payments).
fn per_record_calls(crm: &fake_crm::FakeCrm) -> usize {
    crm.served()
        .iter()
        .filter(|s| {
            matches!(
                s.kind,
                fake_crm::Kind::Record | fake_crm::Kind::VisitDetails
            )
        })
        .count()
}

/// Records of the connection in the history (each applied record has one row).
async fn applied_records(store: &SqlStore, conn: ConnectionId) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM crm_records WHERE connection_id = $1")
            .bind(conn.0)
            .fetch_one(store.pool())
            .await?,
    )
}

/// Waits until the CRM inbox is empty; returns how long that took.
async fn drain_inbox(store: &SqlStore) -> anyhow::Result<Duration> {
    use loyalty_core::inbox::IntakeStore;
    let started = Instant::now();
    while store.inbox_stats().await?.queued > 0 {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the inbox did not empty in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(started.elapsed())
}

fn run_cli(gateway: &str, db: &str, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let out = std::process::Command::new(gateway)
        .env("DATABASE_URL", db)
        .arg("--json")
        .args(args)
        .output()
        .with_context(|| format!("running {gateway}"))?;
    if !out.status.success() {
        bail!("{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// A salon: partner `company` and its YCLIENTS connection to company `company`, with API tokens
/// when `tokens` (then `connection add` queues its history import). Its program has levels by
/// paid total (3 % from 0, 5 % from 5 000 ₽, 7 % from 20 000 ₽), so clients rise during a run,
/// and a campaign in force all the time (+50 % points, at most 5 000 points a visit), set
/// through `program set`. `BENCH_PROGRAM=flat`: a flat 5 %; `levels`: levels, no campaign.
fn add_salon(
    gateway: &str,
    db: &str,
    company: &str,
    tokens: bool,
) -> anyhow::Result<(PartnerId, ConnectionId, String)> {
    let p = salon_with_program(gateway, db, company)?;
    connect(gateway, db, company, tokens, p)
}

/// [`add_salon`]'s partner and program, without a connection: `partner add`'s JSON.
fn salon_with_program(gateway: &str, db: &str, company: &str) -> anyhow::Result<serde_json::Value> {
    let p = run_cli(
        gateway,
        db,
        &["partner", "add", "--name", company, "--cashback-bps", "500"],
    )?;
    let partner = p["id"].to_string();
    if std::env::var("BENCH_PROGRAM").as_deref() == Ok("flat") {
        return Ok(p);
    }
    let mut program = run_cli(gateway, db, &["program", "show", "--partner", &partner])?;
    program["program"]["levels"] = serde_json::json!({
        "measure": "paid",
        "window_days": 365,
        "grace_days": 90,
        "tiers": [
            {"name": "Base", "threshold": 0, "cashback": 300, "max_redeem_share": 1000},
            {"name": "Silver", "threshold": 500_000, "cashback": 500, "max_redeem_share": 2000},
            {"name": "Gold", "threshold": 2_000_000, "cashback": 700, "max_redeem_share": 3000},
        ]
    });
    if std::env::var("BENCH_PROGRAM").as_deref() != Ok("levels") {
        program["program"]["campaigns"] = serde_json::json!([{
            "name": "Полтора балла",
            "reward": {"kind": "multiplier", "percent": 150},
        }]);
        program["program"]["max_points_per_visit"] = serde_json::json!(5_000);
    }
    let file = std::env::temp_dir().join(format!("bench-program-{company}.json"));
    std::fs::write(&file, program["program"].to_string())?;
    let file = file.to_string_lossy().into_owned();
    run_cli(
        gateway,
        db,
        &["program", "set", "--partner", &partner, "--file", &file],
    )?;
    // Webhook visits are timed to the second: the next second's visits are under the new
    // version.
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    Ok(p)
}

/// `add_salon`'s YCLIENTS connection for partner `p`.
fn connect(
    gateway: &str,
    db: &str,
    company: &str,
    tokens: bool,
    p: serde_json::Value,
) -> anyhow::Result<(PartnerId, ConnectionId, String)> {
    let partner = p["id"].to_string();
    let mut args = vec![
        "connection",
        "add",
        "--partner",
        &partner,
        "--crm",
        "yclients",
        "--company-id",
        company,
    ];
    if tokens {
        args.extend([
            "--partner-token",
            "bench-partner",
            "--user-token",
            "bench-user",
        ]);
    }
    let c = run_cli(gateway, db, &args)?;
    Ok((
        PartnerId(p["id"].as_i64().unwrap_or_default()),
        ConnectionId(c["id"].as_i64().unwrap_or_default()),
        c["webhook_url"].as_str().unwrap_or_default().to_owned(),
    ))
}

/// The release gateway `serve`-ing `db` on a free local port, its YCLIENTS API at `crm_url`,
/// logs at `rust_log` thrown away; stopped with SIGTERM when dropped.
struct Served {
    child: std::process::Child,
    listen: String,
}

impl Served {
    fn start(gateway: &str, db: &str, crm_url: &str, rust_log: &str) -> anyhow::Result<Served> {
        Served::start_with(gateway, db, crm_url, rust_log, &[])
    }

    /// [`Served::start`] with more environment.
    fn start_with(
        gateway: &str,
        db: &str,
        crm_url: &str,
        rust_log: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Served> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let listen = format!("127.0.0.1:{port}");
        let child = std::process::Command::new(gateway)
            .env("DATABASE_URL", db)
            .env("LOYALTY_LISTEN", &listen)
            .env("YCLIENTS_API_URL", crm_url)
            .env("RUST_LOG", rust_log)
            .envs(env.iter().copied())
            .arg("serve")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting the gateway")?;
        Ok(Served { child, listen })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (up to 20 s) for `/readyz`.
    async fn ready(&self, http: &reqwest::Client) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while http
            .get(format!("http://{}/readyz", self.listen))
            .send()
            .await
            .map(|r| r.status().is_success())
            .ok()
            != Some(true)
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the gateway did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn rss_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn with_db(admin: &str, db: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin, None),
    };
    let head = base.rsplit_once('/').map_or(base, |(h, _)| h);
    match query {
        Some(q) => format!("{head}/{db}?{q}"),
        None => format!("{head}/{db}"),
    }
}

struct Database {
    admin: String,
    name: String,
}

impl Database {
    /// A fresh database `loyalty_{tag}_{pid}` on the server of `admin`.
    async fn create(admin: &str, tag: &str) -> anyhow::Result<Database> {
        sqlx::any::install_default_drivers();
        let name = format!("loyalty_{tag}_{}", std::process::id());
        let mut c = sqlx::AnyConnection::connect(admin)
            .await
            .context("connecting to BENCH_ADMIN_URL")?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await?;
        c.close().await?;
        Ok(Database {
            admin: admin.to_owned(),
            name,
        })
    }

    async fn drop_now(&self) {
        if let Ok(mut c) = sqlx::AnyConnection::connect(&self.admin).await {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut c).await;
            let _ = c.close().await;
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let admin = std::env::var("BENCH_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let gateway_bin =
        std::env::var("BENCH_GATEWAY").context("BENCH_GATEWAY (the release gateway binary)")?;
    let scale: usize = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6_000);
    let sections = std::env::var("BENCH_SECTIONS")
        .unwrap_or_else(|_| "ingest,sync,models,engage,import,dashboard,api".into());
    if sections.split(',').any(|s| s.trim() == "ingest") {
        let db = Database::create(&admin, "bench").await?;
        let result = bench(&db, &gateway_bin, scale).await;
        db.drop_now().await;
        result?;
    }
    if sections.split(',').any(|s| s.trim() == "sync") {
        let figures = sync::run(&admin, &gateway_bin).await?;
        println!("{figures}");
    }
    if sections.split(',').any(|s| s.trim() == "models") {
        println!("{}", models::run()?);
    }
    if sections.split(',').any(|s| s.trim() == "engage") {
        let figures = engage::run(&admin, &gateway_bin).await?;
        println!("{figures}");
    }
    if sections.split(',').any(|s| s.trim() == "dashboard") {
        let figures = dashboard::run(&admin, &gateway_bin).await?;
        println!("{figures}");
    }
    if sections.split(',').any(|s| s.trim() == "api") {
        println!("{}", api::run_section(&admin, &gateway_bin, scale).await?);
    }
    if sections.split(',').any(|s| s.trim() == "import") {
        let figures = import::run(&admin, &gateway_bin).await?;
        println!("{figures}");
    }
    Ok(())
}

async fn bench(db: &Database, gateway_bin: &str, scale: usize) -> anyhow::Result<()> {
    let url = with_db(&db.admin, &db.name);
    run_cli(gateway_bin, &url, &["migrate"])?;
    // The HTTP salon's connection has API tokens, and its CRM is the rate-limited stand-in:
    // whatever a record makes the gateway ask the CRM is counted.
    let crm = fake_crm::FakeCrm::start(
        [(COMPANY_HTTP.to_owned(), fake_crm::Company::default())]
            .into_iter()
            .collect(),
    )
    .await?;
    let conns = vec![
        add_salon(gateway_bin, &url, COMPANY_HTTP, true)?,
        add_salon(gateway_bin, &url, COMPANY_SQL, false)?,
    ];
    let served = Served::start(gateway_bin, &url, &crm.url(), "info")?;
    drive(&url, &served, &conns, scale, &crm).await
}

async fn drive(
    url: &str,
    served: &Served,
    conns: &[(PartnerId, ConnectionId, String)],
    scale: usize,
    crm: &fake_crm::FakeCrm,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()?;
    served.ready(&http).await?;
    let (listen, pid) = (served.listen.as_str(), served.pid());
    // The webhook URL names the configured listen address of the CLI run; use the live one.
    let secret = conns[0].2.rsplit('/').next().unwrap_or_default();
    let hook = format!("http://{listen}/webhooks/yclients/{secret}");
    let store = Arc::new(
        SqlStore::connect_with(
            url,
            PoolSettings::for_backend(loyalty_store::Backend::Postgres),
        )
        .await?,
    );
    let (sql_partner, sql_conn) = (conns[1].0, conns[1].1);

    // Warm-up: every client's card exists on both sides, caches and plans are warm.
    let warm = workload(0, usize::try_from(CLIENTS).unwrap_or(2_000), 7);
    let warm_bodies: Vec<Vec<u8>> = warm.iter().map(|d| d.body(COMPANY_HTTP)).collect();
    http_run(&http, &hook, Arc::new(warm_bodies), 16).await?;
    sql_run(
        Arc::clone(&store),
        sql_partner,
        sql_conn,
        Arc::new(warm),
        16,
    )
    .await?;

    // BENCH_OPEN_RATE=R: first, three open-loop runs at a fixed R requests/s (latency probes).
    if let Some(rate) = std::env::var("BENCH_OPEN_RATE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
    {
        for round in 0..3u64 {
            settle(&store).await;
            let work = workload(
                50_000_000 + round * 100_000,
                (rate * 10.0) as usize,
                500 + round,
            );
            let bodies: Vec<Vec<u8>> = work.iter().map(|d| d.body(COMPANY_HTTP)).collect();
            let f = open_loop(&http, &hook, bodies, rate).await?;
            println!(
                "open loop at {rate} req/s: p50 {:.2} ms, p99 {:.2} ms",
                f.p50_ms, f.p99_ms
            );
        }
    }
    // This machine shares its cores with neighbours (steal time shows in `top`): every figure
    // is the median of `rounds` runs, the HTTP and SQL runs interleaved.
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let limit = limit::Reference::prepare(url).await;
    if let Err(e) = &limit {
        println!("pgbench reference skipped: {e:#}");
    }
    let calls_before = per_record_calls(crm);
    let applied_before = applied_records(&store, conns[0].1).await?;
    println!("median of {rounds} rounds each");
    println!(
        "concurrency  gateway rps   p50 ms   p99 ms |  sql rps   p50 ms   p99 ms | ratio  rss MiB | limit_tx tps  ratio"
    );
    let mut rows = Vec::new();
    let mut first = 1_000_000u64;
    for (i, concurrency) in [1usize, 16, 64].into_iter().enumerate() {
        let n = if concurrency == 1 { scale / 4 } else { scale };
        let (mut gs, mut ss, mut rss) = (Vec::new(), Vec::new(), 0.0f64);
        for round in 0..rounds {
            settle(&store).await;
            let work = workload(first, n, 11 + (i * rounds + round) as u64);
            first += n as u64 + 1;
            let bodies: Vec<Vec<u8>> = work.iter().map(|d| d.body(COMPANY_HTTP)).collect();
            let mut run = http_run(&http, &hook, Arc::new(bodies), concurrency).await?;
            // A delivery counts once its points, history and outbox row are committed: what
            // waits in the inbox is finished first, and the wait is part of the run.
            let drained = drain_inbox(&store).await?;
            run.rps = n as f64 / (n as f64 / run.rps + drained.as_secs_f64());
            gs.push(run);
            rss = rss.max(rss_mib(pid, "VmRSS:"));
            ss.push(
                sql_run(
                    Arc::clone(&store),
                    sql_partner,
                    sql_conn,
                    Arc::new(work),
                    concurrency,
                )
                .await?,
            );
        }
        let (g, s) = (median(&gs), median(&ss));
        let tps = match &limit {
            Ok(reference) => reference.tps(concurrency)?,
            Err(_) => f64::NAN,
        };
        println!(
            "{concurrency:>11}  {:>11.0} {:>8.2} {:>8.2} | {:>8.0} {:>8.2} {:>8.2} | {:>5.2} {:>8.1} | {:>12.0} {:>6.2}",
            g.rps,
            g.p50_ms,
            g.p99_ms,
            s.rps,
            s.p50_ms,
            s.p99_ms,
            g.rps / s.rps,
            rss,
            tps,
            g.rps / tps
        );
        rows.push((concurrency, g, s, rss, tps));
    }
    let calls = per_record_calls(crm) - calls_before;
    let applied = applied_records(&store, conns[0].1).await? - applied_before;
    let per_record = calls as f64 / (applied.max(1)) as f64;
    println!(
        "CRM calls per applied paid \"came\" record: {calls} calls for {applied} records = {per_record:.3}; {} × 429",
        crm.rejected()
    );
    if let Ok(reference) = &limit {
        reference.drop_now().await;
    }
    let Some(&(best_c, best_g, best_s, _, best_tps)) =
        rows.iter().max_by(|a, b| a.1.rps.total_cmp(&b.1.rps))
    else {
        bail!("no runs");
    };
    let half = best_g.rps / 2.0;
    let n = ((half * 10.0) as usize).clamp(500, 20_000);
    let mut opens = Vec::new();
    for round in 0..rounds {
        settle(&store).await;
        let work = workload(first, n, 99 + round as u64);
        first += n as u64 + 1;
        let bodies: Vec<Vec<u8>> = work.iter().map(|d| d.body(COMPANY_HTTP)).collect();
        opens.push(open_loop(&http, &hook, bodies, half).await?);
    }
    let open = median(&opens);
    let peak_rss = rss_mib(pid, "VmHWM:");
    println!(
        "open loop at half the peak ({half:.0} req/s, {n} requests each): {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        open.rps, open.p50_ms, open.p99_ms
    );
    println!("gateway peak RSS: {peak_rss:.1} MiB");
    let round = |v: f64| (v * 100.0).round() / 100.0;
    println!(
        "{}",
        json!({
            "ingest_rps": round(best_g.rps),
            "sql_limit_rps": round(best_s.rps),
            "ratio": round(best_g.rps / best_s.rps),
            "limit_tx_tps": if best_tps.is_nan() { serde_json::Value::Null } else { json!(round(best_tps)) },
            "ratio_limit_tx": if best_tps.is_nan() { serde_json::Value::Null } else { json!(round(best_g.rps / best_tps)) },
            "crm_calls_per_record": (per_record * 1000.0).round() / 1000.0,
            "p50_ms": round(open.p50_ms),
            "p99_ms": round(open.p99_ms),
            "rss_mib": round(peak_rss),
            "concurrency": best_c,
        })
    );
    store.close().await;
    Ok(())
}
