//! `dashboard`: how long the release gateway takes to answer the dashboard's heaviest pages for
//! a salon of 50,000 clients and 500,000 visits (`BENCH_DASHBOARD_CLIENTS`, ten visits each)
//! on PostgreSQL — the clients page (the list's first page, and a search by phone digits) and
//! the analytics page — signed in as the salon's owner over loopback HTTP, so each figure is the
//! server's render time plus one local round trip. The analytics' heavy figures are kept for ten
//! minutes, so its views read them; `POST /analytics/refresh` (computing them afresh, 7 times:
//! median and worst) is what a view past their age costs. The salon is written by SQL in bulk (a
//! visit's record, its accrual in the ledger, the balances and summaries that follow), after a
//! first visit through `visit add` made the desk connection; every page is asked for 3 times
//! to warm, then 20 times timed: median and p95.

use std::fmt;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use sqlx::Connection;

use crate::{Database, Served, run_cli, with_db};

const DAY_MS: i64 = 24 * 3600 * 1000;

pub struct Page {
    pub path: String,
    pub median_ms: f64,
    pub p95_ms: f64,
    pub bytes: usize,
}

pub struct Figures {
    pub clients: i64,
    pub visits: i64,
    pub fill_s: f64,
    pub pages: Vec<Page>,
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "dashboard: a salon of {} clients and {} visits on PostgreSQL (written in {:.0} s), \
             signed in as its owner",
            self.clients, self.visits, self.fill_s
        )?;
        for p in &self.pages {
            writeln!(
                f,
                "  {:<27} median {:>6.1} ms  p95 {:>6.1} ms  ({} KiB; target ≤ 200 ms)",
                p.path,
                p.median_ms,
                p.p95_ms,
                p.bytes / 1024
            )?;
        }
        Ok(())
    }
}

const PASSWORD: &str = "bench password 1";

pub async fn run(admin: &str, gateway: &str) -> anyhow::Result<Figures> {
    let clients: i64 = std::env::var("BENCH_DASHBOARD_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let db = Database::create(admin, "dashboard").await?;
    let result = measure(&db, gateway, clients).await;
    db.drop_now().await;
    result
}

async fn measure(db: &Database, gateway: &str, clients: i64) -> anyhow::Result<Figures> {
    let url = with_db(&db.admin, &db.name);
    run_cli(gateway, &url, &["migrate"])?;
    let p = run_cli(
        gateway,
        &url,
        &["partner", "add", "--name", "Лотос", "--cashback-bps", "500"],
    )?;
    let partner = p["id"].as_i64().unwrap_or_default().to_string();
    // The first visit makes the desk connection the bulk visits belong to.
    run_cli(
        gateway,
        &url,
        &[
            "visit",
            "add",
            "--partner",
            &partner,
            "--phone",
            "+79000000000",
            "--paid-minor",
            "100000",
        ],
    )?;
    let mut child = std::process::Command::new(gateway)
        .env("DATABASE_URL", &url)
        .args([
            "user",
            "add",
            "--partner",
            &partner,
            "--email",
            "owner@lotos.bench",
        ])
        .args(["--role", "owner", "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(format!("{PASSWORD}\n").as_bytes())?;
    ensure!(child.wait()?.success(), "user add failed");

    let started = Instant::now();
    let visits = fill(&url, &partner, clients).await?;
    let fill_s = started.elapsed().as_secs_f64();

    let served = Served::start(gateway, &url, "http://127.0.0.1:9", "warn")?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    served.ready(&http).await?;
    let base = format!("http://{}", served.listen);
    let signed = http
        .post(format!("{base}/login"))
        .form(&[("email", "owner@lotos.bench"), ("password", PASSWORD)])
        .send()
        .await?;
    let cookie = signed
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("no session cookie: sign-in failed")?
        .to_owned();
    let mut pages = Vec::new();
    for path in ["/clients", "/clients?q=9160001", "/analytics"] {
        let label = format!("GET {path}");
        let mut times = Vec::new();
        let mut bytes = 0;
        for i in 0..23 {
            let t = Instant::now();
            let r = http
                .get(format!("{base}{path}"))
                .header("cookie", &cookie)
                .send()
                .await?;
            ensure!(r.status().is_success(), "{path}: {}", r.status());
            bytes = r.bytes().await?.len();
            if i >= 3 {
                times.push(t.elapsed());
            }
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        pages.push(Page {
            path: label,
            median_ms: ms(times[times.len() / 2]),
            p95_ms: ms(times[times.len() * 95 / 100]),
            bytes,
        });
    }
    // The analytics' heavy figures computed afresh (what a view past their age costs).
    let mut times = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let r = http
            .post(format!("{base}/analytics/refresh"))
            .header("cookie", &cookie)
            .header("sec-fetch-site", "same-origin")
            .send()
            .await?;
        ensure!(r.status().is_redirection(), "refresh: {}", r.status());
        times.push(t.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    pages.push(Page {
        path: "POST /analytics/refresh".into(),
        median_ms: ms(times[times.len() / 2]),
        p95_ms: ms(times[times.len() - 1]),
        bytes: 0,
    });
    drop(served);
    Ok(Figures {
        clients,
        visits,
        fill_s,
        pages,
    })
}

/// `clients` clients with ten visits each over the last two years, their accruals, balances
/// and summaries; a third of them linked to the bot. Returns the visits written.
async fn fill(url: &str, partner: &str, clients: i64) -> anyhow::Result<i64> {
    let mut c = sqlx::AnyConnection::connect(url).await?;
    let partner: i64 = partner.parse()?;
    let now = chrono::Utc::now().timestamp_millis();
    let conn: i64 = sqlx::query_scalar(
        "SELECT id FROM crm_connections WHERE partner_id = $1 ORDER BY id LIMIT 1",
    )
    .bind(partner)
    .fetch_one(&mut c)
    .await?;
    let steps: [(&str, &str); 5] = [
        (
            "clients",
            "INSERT INTO clients (partner_id, phone, name, telegram_chat_id, created_at_ms) \
             SELECT $1, '+7916' || lpad(g::text, 7, '0'), 'Клиент ' || g, \
               CASE WHEN g % 3 = 0 THEN 5000000000 + g END, $2 - 800 * 86400000::bigint \
             FROM generate_series(1, $3::bigint) g WHERE $4 > 0",
        ),
        (
            "visits",
            "INSERT INTO crm_records (partner_id, connection_id, record_id, status, client_id, \
               accrued, postings, updated_at_ms, visit_at_ms, paid_minor, lines, source) \
             SELECT $1, $4, 'b-' || c.id || '-' || k, 'came', c.id, 150, 1, $2, \
               $2 - ((c.id * 7 + k * 73) % 730) * 86400000::bigint - k * 3600000, \
               300000, '[]', 'desk' \
             FROM clients c CROSS JOIN generate_series(1, 10) k \
             WHERE c.partner_id = $1 AND c.phone LIKE '+7916%' AND $3 > 0",
        ),
        (
            "ledger",
            "INSERT INTO ledger_entries (partner_id, idempotency_key, kind, debit_account, \
               credit_account, amount, client_id, reason, fingerprint, created_at_ms) \
             SELECT r.partner_id, 'bench:' || r.record_id, 'accrual', 'program:issued', \
               'client:' || r.client_id, 150, r.client_id, 'visit', 'bench', r.visit_at_ms \
             FROM crm_records r WHERE r.partner_id = $1 AND r.record_id LIKE 'b-%' \
               AND $2 > 0 AND $3 > 0 AND $4 > 0",
        ),
        (
            "balances",
            "INSERT INTO balances (partner_id, client_id, balance) \
             SELECT $1, client_id, SUM(amount) FROM ledger_entries \
             WHERE partner_id = $1 AND idempotency_key LIKE 'bench:%' AND $2 > 0 AND $3 > 0 \
               AND $4 > 0 GROUP BY client_id",
        ),
        (
            "summaries",
            "INSERT INTO client_summaries (partner_id, client_id, first_visit_ms, last_visit_ms, \
               visits, paid_minor) \
             SELECT $1, client_id, MIN(visit_at_ms), MAX(visit_at_ms), COUNT(*), SUM(paid_minor) \
             FROM crm_records WHERE partner_id = $1 AND record_id LIKE 'b-%' AND $2 > 0 \
               AND $3 > 0 AND $4 > 0 GROUP BY client_id",
        ),
    ];
    for (what, sql) in steps {
        sqlx::query(sql)
            .bind(partner)
            .bind(now - DAY_MS)
            .bind(clients)
            .bind(conn)
            .execute(&mut c)
            .await
            .with_context(|| format!("writing the bench salon's {what}"))?;
    }
    sqlx::query("ANALYZE").execute(&mut c).await?;
    let visits: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM crm_records WHERE partner_id = $1 AND status = 'came'",
    )
    .bind(partner)
    .fetch_one(&mut c)
    .await?;
    c.close().await?;
    Ok(visits)
}
