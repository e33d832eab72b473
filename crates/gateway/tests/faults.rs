//! The database unreachable (issue 19): with the network to PostgreSQL gone — a TCP proxy in
//! the test that stops passing bytes, so queries neither fail nor answer — a CRM's webhook is
//! answered 503 within a second (the one already waiting on the database too), never left to
//! the CRM's timeout; `/readyz` fails; when the network comes back the gateway recovers by
//! itself and takes webhooks again, points once. A database switched read-only is the same,
//! the answer and `/readyz` naming the cause.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{PgSchema, connect_yclients, live_hook};
use loyalty_core::{ClientStore, LedgerStore, PartnerId, Phone, Points};
use loyalty_gateway::config::{Config, Overrides};
use loyalty_gateway::sample::{Record, record_webhook};
use loyalty_gateway::{StartOptions, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PHONE: &str = "79165550101";

/// Passes bytes to PostgreSQL until cut; then holds every byte (an unreachable network), and
/// when restored closes the connections of before (as a network that comes back resets them).
#[derive(Clone)]
struct Proxy {
    addr: std::net::SocketAddr,
    cut: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(upstream: std::net::SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            addr: listener.local_addr().unwrap(),
            cut: Arc::new(AtomicBool::new(false)),
            generation: Arc::new(AtomicU64::new(0)),
        };
        let p = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let p = p.clone();
                tokio::spawn(async move {
                    let generation = p.generation.load(Ordering::SeqCst);
                    if !p.held(generation).await {
                        return;
                    }
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(p.clone().pipe(cr, sw, generation));
                    tokio::spawn(p.pipe(sr, cw, generation));
                });
            }
        });
        proxy
    }

    /// Waits out a cut; false when the connection is to be reset.
    async fn held(&self, generation: u64) -> bool {
        loop {
            if self.generation.load(Ordering::SeqCst) != generation {
                return false;
            }
            if !self.cut.load(Ordering::SeqCst) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn pipe(
        self,
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        generation: u64,
    ) {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if !self.held(generation).await || to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    fn restore(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn record(record_id: u64) -> String {
    record_webhook(&Record {
        company_id: "4564",
        record_id,
        client_id: 7_000,
        client_name: "Алла",
        phone: PHONE,
        cost: "2000",
        attendance: 1,
        deleted: false,
        changed_at_s: 60,
    })
    .to_string()
}

async fn deliver(http: &reqwest::Client, hook: &str, record_id: u64) -> (u16, Duration) {
    let started = Instant::now();
    let r = http
        .post(hook)
        .header("content-type", "application/json")
        .body(record(record_id))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), started.elapsed())
}

async fn ready(http: &reqwest::Client, base: &str) -> (u16, Duration) {
    let started = Instant::now();
    let r = http.get(format!("{base}/readyz")).send().await.unwrap();
    (r.status().as_u16(), started.elapsed())
}

/// Sends `record_id` until the gateway takes it (200), for up to 20 s.
async fn taken_again(http: &reqwest::Client, hook: &str, record_id: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = deliver(http, hook, record_id).await;
        if status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "webhooks never taken again: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The points of the client the records name.
async fn her_points(gateway: &loyalty_gateway::Gateway, partner: i64) -> Points {
    let store = &gateway.store;
    let phone = Phone::parse_international(PHONE).unwrap();
    let client = store
        .client_by_phone(PartnerId(partner), &phone)
        .await
        .unwrap()
        .unwrap();
    store.balance(PartnerId(partner), client.id).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_unreachable_is_a_quick_503_and_the_gateway_recovers_by_itself() {
    let schema = PgSchema::new().await;
    let upstream = {
        let url = reqwest::Url::parse(&schema.url).unwrap();
        let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
        tokio::net::lookup_host((host, url.port().unwrap_or(5432)))
            .await
            .unwrap()
            .next()
            .unwrap()
    };
    let proxy = Proxy::start(upstream).await;
    let through_proxy = schema.url.replacen(
        &format!("{}:{}", upstream.ip(), upstream.port()),
        &proxy.addr.to_string(),
        1,
    );
    assert_ne!(through_proxy, schema.url, "the URL names {upstream}");
    let (gateway, partner, hook, base) = gateway_on(through_proxy).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    assert_eq!(deliver(&http, &hook, 1).await.0, 200);
    assert_eq!(ready(&http, &base).await.0, 200);

    // The network to the database goes. The first webhook meets it waiting on the database,
    // the next ones after it is known: each answered 503 within a second.
    proxy.cut();
    for record_id in [2, 3, 4] {
        let (status, took) = deliver(&http, &hook, record_id).await;
        assert_eq!(status, 503, "record {record_id}");
        assert!(
            took < Duration::from_secs(1),
            "record {record_id}: {took:?}"
        );
    }
    let (status, took) = ready(&http, &base).await;
    assert_eq!(status, 503);
    assert!(took < Duration::from_secs(1), "{took:?}");
    // Alive all the same.
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    // It comes back: ready again by itself, webhooks taken, points once.
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ready(&http, &base).await.0 != 200 {
        assert!(Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    taken_again(&http, &hook, 5).await;
    assert_eq!(deliver(&http, &hook, 1).await.0, 200, "a repeat");
    // Records 1 and 5 (100 points each); 2–4 were refused, for the poller to bring.
    assert_eq!(her_points(&gateway, partner).await, Points(200));
    gateway.stop().await.unwrap();
    schema.drop().await;
}

/// The gateway on `url`, migrated, with Лотос on YCLIENTS: its webhook URL and its base URL.
async fn gateway_on(url: String) -> (loyalty_gateway::Gateway, i64, String, String) {
    let mut config = Config::resolve(Overrides {
        database_url: Some(url),
        listen: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    })
    .unwrap();
    let gateway = start(
        &config,
        StartOptions {
            migrate: true,
            ..StartOptions::default()
        },
    )
    .await
    .unwrap();
    config.listen = gateway.addr;
    let partner = common::add_lotos(&gateway.store).await;
    let conn = connect_yclients(&gateway.store, &config, partner, None).await;
    let hook = live_hook(&gateway, &conn);
    let base = format!("http://{}", gateway.addr);
    (gateway, partner, hook, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_is_a_503_that_names_it() {
    use sqlx::Connection;
    let schema = PgSchema::new().await;
    // A role of the test's own: switching it read-only touches no other test's sessions.
    let role = format!("lb_ro_{}", std::process::id());
    let admin_url = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let mut admin = sqlx::AnyConnection::connect(&admin_url).await.unwrap();
    let run = |sql: String| sqlx::query(sqlx::AssertSqlSafe(sql));
    run(format!("DROP ROLE IF EXISTS {role}"))
        .execute(&mut admin)
        .await
        .ok();
    run(format!("CREATE ROLE {role} LOGIN SUPERUSER"))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = schema
        .url
        .replacen("://postgres@", &format!("://{role}@"), 1);
    assert_ne!(url, schema.url);
    let (gateway, partner, hook, base) = gateway_on(url).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    assert_eq!(deliver(&http, &hook, 1).await.0, 200);

    // Switched read-only (new sessions read-only, the old ones ended).
    let switch = |on: bool| {
        let setting = if on {
            "SET default_transaction_read_only = on"
        } else {
            "RESET default_transaction_read_only"
        };
        (
            format!("ALTER ROLE {role} {setting}"),
            format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = '{role}'"
            ),
        )
    };
    let (alter, end) = switch(true);
    run(alter).execute(&mut admin).await.unwrap();
    run(end).execute(&mut admin).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = http.get(format!("{base}/readyz")).send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        // (Its sessions ended, it may first be found not answering.)
        if status == 503 && body.contains("read-only") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never found read-only: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let r = http
        .post(&hook)
        .header("content-type", "application/json")
        .body(record(2))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.text().await.unwrap().contains("read-only"));
    assert!(started.elapsed() < Duration::from_secs(1));

    // Writable again: taken again by itself.
    let (alter, end) = switch(false);
    run(alter).execute(&mut admin).await.unwrap();
    run(end).execute(&mut admin).await.unwrap();
    taken_again(&http, &hook, 3).await;
    assert_eq!(her_points(&gateway, partner).await, Points(200));
    gateway.stop().await.unwrap();
    schema.drop().await;
    run(format!("DROP ROLE IF EXISTS {role}"))
        .execute(&mut admin)
        .await
        .ok();
}
