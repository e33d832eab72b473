//! Real databases for tests: SQLite in a temporary file, PostgreSQL in a fresh schema of the
//! database named by `TEST_DATABASE_URL` (default: the local server on 127.0.0.1:5432).
//! PostgreSQL being unreachable fails the test with a message; it is never skipped.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use loyalty_core::event::{ClientRef, LineKind, VisitLine};
use loyalty_core::model::{NewConnection, NewPartner};
use loyalty_core::{
    Bps, CrmConnection, CrmEvent, CrmKind, Currency, LoyaltyEngine, ManualClock, Partner, Phone,
    Program, Store, VisitEvent, VisitStatus,
};
use loyalty_store::{Backend, PoolSettings, SqlStore};
use sqlx::Connection;

pub const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// 2026-01-01T00:00:00Z: tests start their clocks here.
pub const T0: i64 = 1_767_225_600_000;

pub struct TestDb {
    pub store: Arc<SqlStore>,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, schema: String },
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn pg_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG.to_owned())
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("loyalty.db").display());
        let store = SqlStore::connect(&url).await.expect("open sqlite");
        store.migrate().await.expect("migrate sqlite");
        TestDb {
            store: Arc::new(store),
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    pub async fn postgres() -> TestDb {
        TestDb::postgres_with_pool(16).await
    }

    pub async fn postgres_with_pool(max_connections: u32) -> TestDb {
        sqlx::any::install_default_drivers();
        let admin_url = pg_admin_url();
        let mut admin = sqlx::AnyConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is required for these tests and {} does not answer: {e}. \
                     Run `cargo xtask test` (it finds or starts one) or set TEST_DATABASE_URL.",
                    loyalty_store::redact_url(&admin_url)
                )
            });
        let schema = format!(
            "lbt_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut admin)
            .await
            .expect("create schema");
        admin.close().await.ok();
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options[search_path]={schema}");
        let settings = PoolSettings {
            max_connections,
            ..PoolSettings::for_backend(Backend::Postgres)
        };
        let store = SqlStore::connect_with(&url, settings)
            .await
            .expect("open postgres");
        store.migrate().await.expect("migrate postgres");
        TestDb {
            store: Arc::new(store),
            cleanup: Cleanup::Postgres { admin_url, schema },
        }
    }

    /// Closes the pool and drops the test's schema.
    pub async fn finish(self) {
        self.store.close().await;
        if let Cleanup::Postgres { admin_url, schema } = self.cleanup
            && let Ok(mut admin) = sqlx::AnyConnection::connect(&admin_url).await
        {
            let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
            sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(&mut admin)
                .await
                .ok();
            admin.close().await.ok();
        }
    }

    pub fn dyn_store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// An engine on this database with a clock standing at [`T0`].
    pub fn engine(&self) -> (LoyaltyEngine, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(T0));
        (
            LoyaltyEngine::with_clock(self.dyn_store(), clock.clone()),
            clock,
        )
    }
}

static SALON: AtomicU32 = AtomicU32::new(0);

/// A partner with the given program and one YCLIENTS connection.
pub async fn salon(store: &dyn Store, program: Program) -> (Partner, CrmConnection) {
    let n = SALON.fetch_add(1, Ordering::SeqCst);
    let partner = store
        .create_partner(
            &NewPartner {
                name: format!("Salon {n}"),
                program,
            },
            T0,
        )
        .await
        .expect("partner");
    let connection = store
        .create_connection(
            &NewConnection {
                partner_id: partner.id,
                kind: CrmKind::Yclients,
                company_id: format!("{}", 100_000 + partner.id.0),
                credentials_ref: "test".into(),
                webhook_secret: format!("secret-{}-{n}-{}", partner.id, std::process::id()),
            },
            T0,
        )
        .await
        .expect("connection");
    (partner, connection)
}

/// 5 % cashback, RUB, no expiry.
pub fn five_percent() -> Program {
    Program::with_cashback(Bps::new(500).expect("bps"))
}

/// A record of `conn`'s company in the given state: one service line of `paid_minor` kopecks.
pub fn visit(
    conn: &CrmConnection,
    record: &str,
    version: i64,
    status: VisitStatus,
    paid_minor: i64,
    client: Option<ClientRef>,
) -> CrmEvent {
    CrmEvent::Visit(VisitEvent {
        company_id: conn.company_id.clone(),
        record_id: record.to_owned(),
        version: Some(version),
        status,
        client,
        currency: Currency::Rub,
        lines: vec![VisitLine {
            item_id: "svc-1".into(),
            category_id: None,
            kind: LineKind::Service,
            title: "Стрижка".into(),
            paid_minor,
        }],
        staff_id: None,
        staff_name: None,
        visit_at_ms: Some(T0),
        needs_refetch: false,
        loyalty_paid: Default::default(),
    })
}

/// A client known to the CRM by phone only.
pub fn by_phone(phone: &str) -> ClientRef {
    ClientRef {
        external_id: None,
        phone: Some(Phone::parse(phone, loyalty_core::Country::RU).expect("phone")),
        name: None,
    }
}

/// Declares one async test body for both backends: `both!(name);` makes `sqlite::name` and
/// `postgres::name`, each calling `name(TestDb)` on a fresh database.
#[macro_export]
macro_rules! both {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::common::TestDb::sqlite().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::common::TestDb::postgres().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )+
        }
    };
}

/// A runtime for property tests, which drive async cases from a synchronous runner.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// `cases` per property unless `PROPTEST_CASES` says otherwise; failures are not persisted.
pub fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(cases);
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}
