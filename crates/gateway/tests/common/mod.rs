//! A fresh PostgreSQL schema per test, like the store's tests: `TEST_DATABASE_URL`, else the
//! machine's 127.0.0.1:5432 (`cargo xtask test` finds or starts one).

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct PgSchema {
    /// A URL whose connections see only this schema.
    pub url: String,
    admin_url: String,
    schema: String,
}

impl PgSchema {
    pub async fn new() -> PgSchema {
        sqlx::any::install_default_drivers();
        let admin_url = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
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
            "lbg_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut admin)
            .await
            .expect("create schema");
        admin.close().await.ok();
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        PgSchema {
            url: format!("{admin_url}{sep}options[search_path]={schema}"),
            admin_url,
            schema,
        }
    }

    pub async fn drop(self) {
        if let Ok(mut admin) = sqlx::AnyConnection::connect(&self.admin_url).await {
            let sql = format!("DROP SCHEMA {} CASCADE", self.schema);
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut admin)
                .await
                .ok();
            admin.close().await.ok();
        }
    }
}
