//! # loyalty-store
//!
//! The [`loyalty_core::Store`] trait on sqlx, for **PostgreSQL** (production: many gateway
//! instances share one database) and **SQLite** (the embedded default: one file, no set-up).
//!
//! Both backends run the same SQL through sqlx's `Any` driver; the few places where the
//! dialects differ are chosen by [`Backend`]: row locks (`FOR UPDATE`, and `FOR UPDATE SKIP
//! LOCKED` for the outbox claim) exist only on PostgreSQL, while SQLite serializes writers by
//! starting every write transaction with `BEGIN IMMEDIATE`. Migrations live in one folder per
//! backend and are embedded with `sqlx::migrate!`.
//!
//! ```no_run
//! # async fn run() -> Result<(), loyalty_store::ConnectError> {
//! let store = loyalty_store::SqlStore::connect("sqlite://loyalty.db").await?;
//! store.migrate().await?;
//! # Ok(()) }
//! ```

mod access;
mod analytics;
mod api;
mod api_keys;
mod api_requests;
mod audit;
mod bots;
mod dashboard;
mod desk;
mod doctor;
mod engage;
mod gateway;
mod health;
mod history;
mod hooks;
mod import;
mod inbox;
mod levels;
pub mod models;
mod offers;
mod privacy;
mod probe;
mod program;
mod quota;
mod referrals;
mod rows;
mod scan_pages;
mod services;
mod store;
mod sync;
mod triggers;
mod tx;

use std::time::Duration;

use loyalty_core::StoreError;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

pub use analytics::{Books, Cohort, Group, Linked, Location, PointsFlow, Snapshot, share_bps};
pub use api::random_code;
pub use api_keys::{ApiKey, KeyScope};
pub use api_requests::{ABANDONED_MS, Claim, REPLAY_MS};
pub use bots::SalonBot;
pub use dashboard::{ClientLine, ClientQuery, Overview};
pub use gateway::{ConnectionSettings, CrmTokens, REJECTED_KEPT, RejectedDelivery};
pub use hooks::{Delivery, DeliveryState, Endpoint};
pub use privacy::Forgotten;
pub use probe::Prober;
pub use services::{CatalogService, DirectoryEntry, DirectorySync, ServiceSync};
pub use triggers::{FireRow, QueuedTriggerMessage};
pub use tx::SqlTx;

/// Which database a [`SqlStore`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    /// The backend a `DATABASE_URL` names.
    pub fn of_url(url: &str) -> Result<Backend, ConnectError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else {
            Err(ConnectError::UnsupportedUrl(redact_url(url)))
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// Errors while opening or migrating a database. Messages never include a password.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("DATABASE_URL {0:?} is neither postgres://… nor sqlite:…")]
    UnsupportedUrl(String),
    #[error("cannot open {url}: {message}")]
    Open { url: String, message: String },
    #[error("migrations failed on {url}: {message}")]
    Migrate { url: String, message: String },
}

/// Pool settings for [`SqlStore::connect_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long to wait for a connection (also how long an unreachable server is retried).
    pub acquire_timeout: Duration,
}

impl PoolSettings {
    /// 16 connections for PostgreSQL, 8 for SQLite; 30 s to get one.
    pub fn for_backend(backend: Backend) -> PoolSettings {
        PoolSettings {
            max_connections: match backend {
                Backend::Postgres => 16,
                Backend::Sqlite => 8,
            },
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

/// Native PostgreSQL connections for the reminders' scan pages (opened when first needed).
const SCAN_CONNECTIONS: u32 = 4;

/// Connections of the relaxed pool (see [`SqlStore::relaxed`]).
const RELAXED_CONNECTIONS: u32 = 4;

/// The sqlx-backed store.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    /// On PostgreSQL, a few native connections for the reminders' scan pages: sqlx's `Any` rows
    /// copy every value and its type (about a quarter of the scan's CPU at a million clients).
    scan_pool: Option<sqlx::PgPool>,
    /// On PostgreSQL, a few connections whose commits do not wait for the disk
    /// (`synchronous_commit = off`), for bookkeeping whose loss in a crash costs nothing but a
    /// retry: the partner API's replay table (the effect's own key keeps a second effect out).
    relaxed_pool: Option<AnyPool>,
    backend: Backend,
    url: String,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .field("url", &self.url)
            .finish()
    }
}

static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqlStore {
    /// Opens a pool on `url` (`postgres://…` or `sqlite:PATH`; a missing SQLite file is
    /// created). Does not migrate: call [`SqlStore::migrate`].
    pub async fn connect(url: &str) -> Result<SqlStore, ConnectError> {
        let backend = Backend::of_url(url)?;
        SqlStore::connect_with(url, PoolSettings::for_backend(backend)).await
    }

    /// Like [`SqlStore::connect`] with chosen pool settings.
    pub async fn connect_with(url: &str, settings: PoolSettings) -> Result<SqlStore, ConnectError> {
        install_default_drivers();
        let backend = Backend::of_url(url)?;
        let redacted = redact_url(url);
        let (url, max_connections) = match backend {
            Backend::Postgres => (url.to_owned(), settings.max_connections),
            Backend::Sqlite => sqlite_url(url, settings.max_connections),
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(settings.acquire_timeout);
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers work while one writer commits; the busy timeout makes
                    // writers queue for the file lock instead of failing.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA busy_timeout = 30000").await?;
                    Ok(())
                })
            });
        }
        let pool = options
            .connect(&url)
            .await
            .map_err(|e| ConnectError::Open {
                url: redacted.clone(),
                message: e.to_string(),
            })?;
        let scan_pool = match backend {
            Backend::Postgres => Some(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(SCAN_CONNECTIONS)
                    .acquire_timeout(settings.acquire_timeout)
                    .connect_lazy(&url)
                    .map_err(|e| ConnectError::Open {
                        url: redacted.clone(),
                        message: e.to_string(),
                    })?,
            ),
            Backend::Sqlite => None,
        };
        let relaxed_pool = match backend {
            Backend::Postgres => Some(
                AnyPoolOptions::new()
                    .max_connections(RELAXED_CONNECTIONS)
                    .acquire_timeout(settings.acquire_timeout)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("SET synchronous_commit = off").await?;
                            Ok(())
                        })
                    })
                    .connect_lazy(&url)
                    .map_err(|e| ConnectError::Open {
                        url: redacted.clone(),
                        message: e.to_string(),
                    })?,
            ),
            Backend::Sqlite => None,
        };
        Ok(SqlStore {
            pool,
            scan_pool,
            relaxed_pool,
            backend,
            url: redacted,
        })
    }

    /// Applies the embedded migrations of this backend; returns how many were new.
    pub async fn migrate(&self) -> Result<usize, ConnectError> {
        let migrator = self.migrator();
        let before = self.applied_migrations().await;
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| ConnectError::Migrate {
                url: self.url.clone(),
                message: e.to_string(),
            })?;
        let after = self.applied_migrations().await;
        Ok(after.saturating_sub(before))
    }

    /// Whether every embedded migration has been applied (for readiness checks).
    pub async fn is_migrated(&self) -> bool {
        self.applied_migrations().await >= self.migrator().iter().count()
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.backend {
            Backend::Postgres => &POSTGRES_MIGRATIONS,
            Backend::Sqlite => &SQLITE_MIGRATIONS,
        }
    }

    async fn applied_migrations(&self) -> usize {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_one(&self.pool)
            .await
            .map(|n| usize::try_from(n).unwrap_or(0))
            .unwrap_or(0)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL with its password hidden, for logs.
    pub fn redacted_url(&self) -> &str {
        &self.url
    }

    /// Where bookkeeping goes that a crash may lose at no cost but a retry: the relaxed pool on
    /// PostgreSQL, the pool on SQLite.
    pub(crate) fn relaxed(&self) -> &AnyPool {
        self.relaxed_pool.as_ref().unwrap_or(&self.pool)
    }

    /// The pool, for embedders that keep their own tables next to ours.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        if let Some(relaxed) = &self.relaxed_pool {
            relaxed.close().await;
        }
        if let Some(scan) = &self.scan_pool {
            scan.close().await;
        }
        self.pool.close().await;
    }

    /// Picks the SQL text for this backend.
    pub(crate) fn sql(&self, postgres: &'static str, sqlite: &'static str) -> &'static str {
        pick(self.backend, postgres, sqlite)
    }
}

pub(crate) fn pick(backend: Backend, postgres: &'static str, sqlite: &'static str) -> &'static str {
    match backend {
        Backend::Postgres => postgres,
        Backend::Sqlite => sqlite,
    }
}

/// Makes the SQLite URL create a missing file; an in-memory database must stay on one
/// connection (each connection would otherwise see its own empty database).
fn sqlite_url(url: &str, max_connections: u32) -> (String, u32) {
    let memory = url.contains(":memory:") || url.contains("mode=memory");
    let url = if url.contains("mode=") || memory {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    };
    (url, if memory { 1 } else { max_connections })
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => url.to_owned(),
    }
}

/// Maps a sqlx error to the store's error: lost races are retryable, a taken unique key is
/// [`StoreError::Duplicate`], a broken connection is [`StoreError::Unavailable`].
/// `NotFound` naming `what` when a statement touched no row.
pub(crate) fn found(rows: u64, what: impl FnOnce() -> String) -> Result<(), StoreError> {
    if rows == 0 {
        Err(StoreError::NotFound(what()))
    } else {
        Ok(())
    }
}

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // PostgreSQL: serialization failure, deadlock. SQLite: BUSY, LOCKED and their
            // extended codes (the low byte is the primary code).
            let sqlite_busy = code
                .parse::<i32>()
                .map(|c| matches!(c & 0xff, 5 | 6))
                .unwrap_or(false);
            // The database takes no writes: read-only (PostgreSQL 25006, SQLite READONLY), or
            // its disk is full (53100, SQLite FULL). Said so: an operator must act.
            let sqlite_primary = code.parse::<i32>().map(|c| c & 0xff).unwrap_or(0);
            if code == "25006" || sqlite_primary == 8 {
                StoreError::Unavailable(format!("the database is read-only: {}", db.message()))
            } else if code == "53100" || sqlite_primary == 13 {
                StoreError::Unavailable(format!("the database's disk is full: {}", db.message()))
            } else if code == "40001" || code == "40P01" || sqlite_busy {
                StoreError::Retryable(db.message().to_owned())
            } else if db.is_unique_violation() {
                StoreError::Duplicate(db.message().to_owned())
            } else {
                StoreError::Backend(format!("{} ({code})", db.message()))
            }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::RowNotFound => StoreError::NotFound("row".to_owned()),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::ColumnNotFound(_) => {
            StoreError::Corrupt(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db.example:5432/loyalty?sslmode=require"),
            "postgres://app:***@db.example:5432/loyalty?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(redact_url("sqlite://data/l.db"), "sqlite://data/l.db");
    }

    #[test]
    fn backend_from_url() {
        assert_eq!(
            Backend::of_url("postgres://x/y").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::of_url("postgresql://x/y").unwrap(),
            Backend::Postgres
        );
        assert_eq!(Backend::of_url("sqlite://a.db").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::of_url("sqlite::memory:").unwrap(), Backend::Sqlite);
        let err = Backend::of_url("mysql://root:pw@h/db").unwrap_err();
        assert!(!err.to_string().contains("pw"), "{err}");
    }

    #[test]
    fn sqlite_urls_create_files_and_memory_stays_on_one_connection() {
        assert_eq!(
            sqlite_url("sqlite://a.db", 8),
            ("sqlite://a.db?mode=rwc".into(), 8)
        );
        assert_eq!(
            sqlite_url("sqlite://a.db?cache=shared", 8),
            ("sqlite://a.db?cache=shared&mode=rwc".into(), 8)
        );
        assert_eq!(
            sqlite_url("sqlite::memory:", 8),
            ("sqlite::memory:".into(), 1)
        );
    }
}
