//! A fresh PostgreSQL schema per test, like the store's tests: `TEST_DATABASE_URL`, else the
//! machine's 127.0.0.1:5432 (`cargo xtask test` finds or starts one).

#![allow(dead_code)]

pub mod api;
pub mod binary;
pub mod browser;
pub mod crm;
pub mod telegram;
pub mod web;

use std::sync::atomic::{AtomicU32, Ordering};

use loyalty_core::{CrmKind, Currency};
use loyalty_gateway::cli::{self, ConnectionAdd, PartnerAdd};
use loyalty_gateway::config::{Config, Overrides};
use loyalty_gateway::{Gateway, StartOptions, start};
use loyalty_store::SqlStore;
use serde_json::Value;
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

/// The gateway on its own schema, listening on a free port; `config.listen` is the live address.
pub async fn serve_on(schema: &PgSchema, overrides: Overrides) -> (Gateway, Config) {
    serve_with(schema, overrides, StartOptions::default()).await
}

/// [`serve_on`] with other start options (migrations are always applied).
pub async fn serve_with(
    schema: &PgSchema,
    overrides: Overrides,
    options: StartOptions,
) -> (Gateway, Config) {
    let mut config = Config::resolve(Overrides {
        database_url: Some(schema.url.clone()),
        listen: Some("127.0.0.1:0".into()),
        ..overrides
    })
    .unwrap();
    let options = StartOptions {
        migrate: true,
        ..options
    };
    let gateway = start(&config, options).await.unwrap();
    config.listen = gateway.addr;
    (gateway, config)
}

/// The public URL the bot tests' gateways are given.
pub const PUBLIC_URL: &str = "https://loyalty.example";

/// The gateway with its bot (token `token`) against the Telegram stand-in at `telegram_url`,
/// housekeeping every 200 ms: what the tests of work `serve` does by itself run on.
pub async fn serve_with_bot(
    schema: &PgSchema,
    token: &str,
    telegram_url: String,
) -> (Gateway, Config) {
    let overrides = Overrides {
        public_url: Some(PUBLIC_URL.into()),
        telegram_bot_token: Some(token.into()),
        telegram_api_url: Some(telegram_url),
        telegram_webhook_secret: Some("s3cret".into()),
        ..Overrides::default()
    };
    let options = StartOptions {
        housekeeping_every: Some(std::time::Duration::from_millis(200)),
        ..StartOptions::default()
    };
    serve_with(schema, overrides, options).await
}

/// A connection's webhook URL (`connection add`'s answer) on the gateway's live address.
pub fn live_hook(gateway: &Gateway, connection: &Value) -> String {
    connection["webhook_url"]
        .as_str()
        .unwrap_or_default()
        .replace(PUBLIC_URL, &format!("http://{}", gateway.addr))
}

/// Partner "Лотос": 5 % cashback in roubles, codes valid 90 days. Returns its id.
pub async fn add_lotos(store: &SqlStore) -> i64 {
    let partner = cli::partner_add(
        store,
        &PartnerAdd {
            name: "Лотос".into(),
            cashback_bps: 500,
            currency: Currency::Rub,
            min_paid_minor: 0,
            points_ttl_days: None,
            welcome_bonus: 0,
            point_value_minor: 100,
            max_redeem_share_bps: 5000,
            code_ttl_days: 90,
            country: loyalty_core::Country::RU,
            plan: loyalty_core::audit::Plan::Pro,
        },
        &loyalty_core::audit::Actor::system(),
        0,
    )
    .await
    .unwrap();
    partner["id"].as_i64().unwrap()
}

/// The partner's connection to YCLIENTS company 4564, with (partner, user) tokens if given.
pub async fn connect_yclients(
    store: &SqlStore,
    config: &Config,
    partner: i64,
    tokens: Option<(&str, &str)>,
) -> Value {
    cli::connection_add(
        store,
        config,
        &ConnectionAdd {
            partner,
            crm: CrmKind::Yclients,
            company_id: "4564".into(),
            partner_token: tokens.map(|t| t.0.to_owned()),
            user_token: tokens.map(|t| t.1.to_owned()),
            login: Default::default(),
            utc_offset_minutes: None,
            country: None,
        },
        0,
    )
    .await
    .unwrap()
}
