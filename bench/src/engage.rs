//! The engage section: the scheduled reminders' scan of a whole deployment — 1,000,000 clients
//! and 10,000,000 visits in 500 salons on PostgreSQL — as `serve` runs it by itself. Method and
//! figures: docs/benchmarks.md.
//!
//! 1. A fresh database. One salon through the CLI (`partner add`, its program with an `engage`
//!    section through `program set`); the other salons, their connections, the clients, ten
//!    visits each (per client a gap of 21–60 days, varied ±20 % visit to visit, two service
//!    categories), the summaries the visits' transactions would have left, balances, and
//!    Telegram chats for 30 % of clients (half of them opted in) are written in SQL — the
//!    fixture, not what is measured.
//!    The fixture ends with `VACUUM ANALYZE`.
//! 2. The release gateway `serve`s it with the reminders' interval at an hour: its first scan
//!    of every salon starts at once. The figure is the time until every salon's scan is
//!    recorded (`engage_scans.last_scan_ms`), and the gateway's peak RSS.
//! 3. The gateway is started again: the second scan finds most reminders already recorded.
//!
//! With the `at_risk` trigger (issue 14; `BENCH_ENGAGE_AT_RISK=0` leaves it out, for the
//! figures without it), every salon's model is written in the fixture as on and fresh, so the
//! scans score every client with it (P(alive) for each; value for those below the threshold)
//! rather than build it: the build is the models section's figure.
//!
//! `BENCH_ENGAGE_CLIENTS` (default 1,000,000) and `BENCH_ENGAGE_SALONS` (500) size it.
//! `BENCH_ENGAGE_KEEP=1` keeps the database (its name is printed); `BENCH_ENGAGE_DB=<name>`
//! scans such a kept database again, steady state only (`BENCH_ENGAGE_RUNS`, default 3,
//! times) — for working on the scan without writing the fixture each time.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Connection;

use crate::{Database, Served, rss_mib, run_cli, with_db};

const DAY_MS: i64 = 86_400_000;

pub struct Figures {
    pub clients: i64,
    pub visits: i64,
    pub salons: i64,
    pub fixture_s: f64,
    pub first_scan_s: f64,
    pub first_rss_mib: f64,
    pub recorded: i64,
    pub second_scan_s: f64,
    pub second_rss_mib: f64,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "engage: {} clients, {} visits, {} salons (fixture written in {:.0} s)",
            self.clients, self.visits, self.salons, self.fixture_s
        )?;
        writeln!(
            f,
            "  first scan of every salon: {:.1} s, gateway peak RSS {:.1} MiB, {} reminders recorded",
            self.first_scan_s, self.first_rss_mib, self.recorded
        )?;
        write!(
            f,
            "  second scan: {:.1} s, gateway peak RSS {:.1} MiB",
            self.second_scan_s, self.second_rss_mib
        )
    }
}

fn env_i64(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub async fn run(admin: &str, gateway: &str) -> anyhow::Result<Figures> {
    if let Ok(name) = std::env::var("BENCH_ENGAGE_DB") {
        return again(admin, &name, gateway).await;
    }
    let db = Database::create(admin, "engage").await?;
    let result = measure(&db, gateway).await;
    if env_i64("BENCH_ENGAGE_KEEP", 0) != 0 {
        println!("engage: the database {} is kept", db.name);
    } else {
        db.drop_now().await;
    }
    result
}

/// The steady-state scan of a kept fixture, `BENCH_ENGAGE_RUNS` times (each line printed; the
/// figures are the fastest run's).
async fn again(admin: &str, name: &str, gateway: &str) -> anyhow::Result<Figures> {
    sqlx::any::install_default_drivers();
    let url = with_db(admin, name);
    let mut c = sqlx::AnyConnection::connect(&url).await?;
    let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
    let clients = count("SELECT COUNT(*) FROM clients")
        .fetch_one(&mut c)
        .await?;
    let visits = count("SELECT COUNT(*) FROM crm_records")
        .fetch_one(&mut c)
        .await?;
    let salons = count("SELECT COUNT(*) FROM partners")
        .fetch_one(&mut c)
        .await?;
    let recorded = count("SELECT COUNT(*) FROM engage_sends")
        .fetch_one(&mut c)
        .await?;
    let mut best = (f64::MAX, 0.0);
    for run in 1..=env_i64("BENCH_ENGAGE_RUNS", 3).max(1) {
        let (s, rss) = scan_all(gateway, &url, &mut c, salons).await?;
        println!("engage: steady-state scan {run}: {s:.1} s, peak RSS {rss:.1} MiB");
        if s < best.0 {
            best = (s, rss);
        }
    }
    c.close().await?;
    Ok(Figures {
        clients,
        visits,
        salons,
        fixture_s: 0.0,
        first_scan_s: 0.0,
        first_rss_mib: 0.0,
        recorded,
        second_scan_s: best.0,
        second_rss_mib: best.1,
    })
}

async fn measure(db: &Database, gateway: &str) -> anyhow::Result<Figures> {
    let url = with_db(&db.admin, &db.name);
    let clients = env_i64("BENCH_ENGAGE_CLIENTS", 1_000_000).max(1);
    let salons = env_i64("BENCH_ENGAGE_SALONS", 500).clamp(1, clients);
    let per_salon = (clients + salons - 1) / salons;
    run_cli(gateway, &url, &["migrate"])?;
    let p = run_cli(
        gateway,
        &url,
        &[
            "partner",
            "add",
            "--name",
            "Salon 1",
            "--cashback-bps",
            "500",
        ],
    )?;
    let mut program = run_cli(
        gateway,
        &url,
        &["program", "show", "--partner", &p["id"].to_string()],
    )?["program"]
        .clone();
    program["points_ttl_days"] = json!(365);
    let at_risk = env_i64("BENCH_ENGAGE_AT_RISK", 1) != 0;
    let mut triggers = vec![
        json!({"kind": "missed", "after_days": 1}),
        json!({"kind": "due"}),
        json!({"kind": "expiring", "within_days": 14, "min_points": 50}),
        json!({"kind": "inactive", "days": 60, "min_balance": 100}),
        json!({"kind": "welcome_back", "days": 14}),
        json!({"kind": "birthday", "days_before": 3}),
    ];
    if at_risk {
        triggers.push(json!({"kind": "at_risk", "below_percent": 30, "top_percent": 20}));
    }
    program["engage"] = json!({
        "time_zone": "Europe/Moscow",
        "send_window": {"from_hour": 0, "to_hour": 24},
        "triggers": triggers,
    });
    let file = std::env::temp_dir().join("bench-engage-program.json");
    std::fs::write(&file, program.to_string())?;
    run_cli(
        gateway,
        &url,
        &[
            "program",
            "set",
            "--partner",
            &p["id"].to_string(),
            "--file",
            &file.to_string_lossy(),
        ],
    )?;

    let started = Instant::now();
    let now = chrono::Utc::now().timestamp_millis();
    let mut c = sqlx::AnyConnection::connect(&url).await?;
    let steps: Vec<String> = vec![
        // The other salons, with the first one's program (as version 1).
        format!(
            "INSERT INTO partners (name, program, created_at_ms, engage_salt) \
             SELECT 'Salon ' || s, p.program, p.created_at_ms, s * 7919 \
             FROM partners p, generate_series(2, {salons}) s WHERE p.id = 1"
        ),
        "INSERT INTO program_versions (partner_id, version, effective_from_ms, program, created_at_ms) \
         SELECT p.id, 1, 0, p.program, p.created_at_ms FROM partners p WHERE p.id > 1"
            .to_owned(),
        format!(
            "INSERT INTO crm_connections (partner_id, kind, company_id, credentials_ref, \
             webhook_secret, created_at_ms, points_since_ms) \
             SELECT id, 'yclients', (10000 + id)::TEXT, 'bench', 'bench-' || id, {now}, {now} \
             FROM partners"
        ),
        format!(
            "INSERT INTO clients (partner_id, phone, name, created_at_ms, birth_date) \
             SELECT 1 + (i - 1) / {per_salon}, '+7999' || lpad(i::TEXT, 7, '0'), 'Клиент ' || i, \
               {now}, CASE WHEN i % 3 = 0 THEN '--' || lpad((1 + i % 12)::TEXT, 2, '0') || '-' \
               || lpad((1 + i % 28)::TEXT, 2, '0') END \
             FROM generate_series(1, {clients}) i"
        ),
        // Ten visits each, newest about a fifth of a gap to two gaps ago.
        format!(
            "INSERT INTO crm_records (partner_id, connection_id, record_id, version, fingerprint, \
               status, client_id, accrued, postings, updated_at_ms, visit_at_ms, paid_minor, \
               loyalty_paid_minor, source, categories) \
             SELECT c.partner_id, k.id, c.id || '-' || v, 1, 'bench', \
               CASE WHEN v = 0 AND c.id % 17 = 0 THEN 'no_show' ELSE 'came' END, c.id, 0, 0, {now}, \
               {now} - ((21 + c.id % 40) * {DAY_MS} * (2 + (c.id % 9)) / 5) \
                 - (21 + c.id % 40) * {DAY_MS} * v * (80 + (c.id * 31 + v * 17) % 41) / 100, \
               250000, 0, 'import', CASE WHEN v % 3 = 0 THEN 'nails' ELSE 'hair|nails' END \
             FROM clients c JOIN crm_connections k ON k.partner_id = c.partner_id, \
               generate_series(0, 9) v"
        ),
        "INSERT INTO client_summaries (partner_id, client_id, first_visit_ms, last_visit_ms, \
           visits, paid_minor, level_visits, level_paid_minor, missed_ms, booked_ms, recent) \
         SELECT partner_id, client_id, \
           MIN(CASE WHEN status = 'came' THEN visit_at_ms END), \
           MAX(CASE WHEN status = 'came' THEN visit_at_ms END), \
           SUM(CASE WHEN status = 'came' THEN 1 ELSE 0 END), \
           SUM(CASE WHEN status = 'came' THEN paid_minor ELSE 0 END), 0, 0, \
           MAX(CASE WHEN status = 'no_show' THEN visit_at_ms END), NULL, \
           string_agg(CASE WHEN status = 'came' THEN visit_at_ms::TEXT || ':' || categories END, \
             ',' ORDER BY visit_at_ms DESC) \
         FROM crm_records GROUP BY partner_id, client_id"
            .to_owned(),
        "INSERT INTO balances (partner_id, client_id, balance) \
         SELECT partner_id, id, (id * 37) % 800 FROM clients"
            .to_owned(),
        format!(
            "INSERT INTO telegram_chats (chat_id, phone, language, active, updated_at_ms) \
             SELECT 1000000 + id, phone, 'ru', 1, {now} FROM clients WHERE id % 10 < 3"
        ),
        "UPDATE clients SET telegram_chat_id = 1000000 + id WHERE id % 10 < 3".to_owned(),
        format!(
            "INSERT INTO consent_log (partner_id, client_id, kind, granted, channel, text, at_ms) \
             SELECT partner_id, id, 'marketing', 1, 'bench', 'yes', {now} FROM clients \
             WHERE id % 10 < 3 AND id % 2 = 0"
        ),
        "INSERT INTO marketing_consents (partner_id, client_id, granted, log_id, at_ms) \
         SELECT partner_id, client_id, 1, id, at_ms FROM consent_log"
            .to_owned(),
        // Every salon's model, on and fresh (see the module's note).
        format!(
            "INSERT INTO engage_models (partner_id, fitted_at_ms, model) \
             SELECT id, {now}, '{}' FROM partners",
            bench_model(now)?.replace('\'', "''")
        ),
        // Vacuumed as well as analyzed: autovacuum waking on ten million fresh rows during the
        // scans would be measured instead of them.
        "VACUUM ANALYZE".to_owned(),
    ];
    for sql in &steps {
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut c)
            .await
            .map_err(|e| anyhow::anyhow!("{e}: {sql}"))?;
    }
    let visits: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM crm_records")
        .fetch_one(&mut c)
        .await?;
    let fixture_s = started.elapsed().as_secs_f64();

    let (first_scan_s, first_rss_mib) = scan_all(gateway, &url, &mut c, salons).await?;
    let recorded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM engage_sends")
        .fetch_one(&mut c)
        .await?;
    let (second_scan_s, second_rss_mib) = scan_all(gateway, &url, &mut c, salons).await?;
    c.close().await?;
    Ok(Figures {
        clients,
        visits,
        salons,
        fixture_s,
        first_scan_s,
        first_rss_mib,
        recorded,
        second_scan_s,
        second_rss_mib,
    })
}

/// A model as `risk::build` would leave it where BG/NBD won: parameters that put the fixture's
/// clients away two gaps near P(alive) 0.25 and those just seen near 0.8, values spread from
/// 0 to 4,000,000 minor units.
fn bench_model(now_ms: i64) -> anyhow::Result<String> {
    use loyalty_engage::risk::{BgNbdParams, SalonModel};
    let model = SalonModel {
        fitted_at_ms: now_ms,
        winner: Some("bgnbd".into()),
        backtest: Vec::new(),
        bgnbd: Some(BgNbdParams {
            r: 2.0,
            alpha: 60.0,
            a: 1.0,
            b: 5.0,
            log_likelihood: 0.0,
        }),
        gamma_gamma: None,
        clv_percentiles: (0..=100).map(|p| p * 40_000).collect(),
        mean_visit_minor: 250_000,
        clients: 0,
        off: None,
        suggest: Some(loyalty_engage::offers::Cooccurrence::default()),
    };
    Ok(serde_json::to_string(&model)?)
}

/// Starts `serve`; its first scans begin at once. Seconds until every salon's scan is recorded,
/// and the gateway's peak RSS.
async fn scan_all(
    gateway: &str,
    url: &str,
    c: &mut sqlx::AnyConnection,
    salons: i64,
) -> anyhow::Result<(f64, f64)> {
    let since = chrono::Utc::now().timestamp_millis();
    let started = Instant::now();
    let served = Served::start_with(
        gateway,
        url,
        "http://127.0.0.1:9",
        "warn",
        &[
            ("LOYALTY_ENGAGE_INTERVAL_S", "3600"),
            ("LOYALTY_POLL_INTERVAL_S", "0"),
        ],
    )?;
    loop {
        let done: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM engage_scans WHERE last_scan_ms >= {since}"
        )))
        .fetch_one(&mut *c)
        .await?;
        if done >= salons {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(900),
            "the scans did not finish in 15 minutes ({done} of {salons})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed().as_secs_f64();
    let rss = rss_mib(served.pid(), "VmHWM:");
    drop(served);
    Ok((took, rss))
}
