//! `loyalty-gateway`: the Loyalty Bridge service binary. Wiring only; the rules live in
//! `loyalty-core`, the SQL in `loyalty-store`.

mod config;
mod inspect;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use loyalty_core::{CrmKind, Currency};
use loyalty_store::{PoolSettings, SqlStore};
use serde_json::json;

use crate::config::{Config, Overrides};

/// Loyalty Bridge gateway: a points loyalty program for beauty salons, on top of the CRM the
/// salon already uses.
///
/// The database is PostgreSQL (production; many gateway instances can share it) or SQLite (the
/// embedded default: a file in the data directory, no set-up). Settings come from flags, then
/// environment variables, then the optional TOML file given by --config, then defaults.
#[derive(Debug, Parser)]
#[command(name = "loyalty-gateway", version, about, long_about)]
struct Cli {
    /// TOML file with `database_url` and `data_dir` keys (every key optional).
    #[arg(long, global = true, env = "LOYALTY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// `postgres://user:password@host/db` or `sqlite:PATH`.
    /// Default: a SQLite file `loyalty.db` in the data directory.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    database_url: Option<String>,

    /// Where the embedded database lives. Default: $XDG_DATA_HOME/loyalty-bridge or
    /// ~/.local/share/loyalty-bridge.
    #[arg(long, global = true, env = "LOYALTY_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Print exactly one JSON object on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply the database migrations (safe to run again: applied ones are skipped).
    Migrate,
    /// Show the effective configuration, passwords hidden.
    Config,
    /// Print what a CRM webhook body means, one JSON object per event; no database needed.
    /// Exit status 2 when the body cannot be understood.
    InspectWebhook {
        /// Which CRM sent it.
        #[arg(long, value_name = "yclients|altegio")]
        crm: CrmKind,
        /// The company's currency (default: RUB for YCLIENTS, USD for Altegio).
        #[arg(long, value_name = "CODE")]
        currency: Option<Currency>,
        /// The company's offset from UTC in minutes, for times sent without one
        /// (default: 180 for YCLIENTS, 0 for Altegio).
        #[arg(long, value_name = "MINUTES", allow_hyphen_values = true)]
        utc_offset_minutes: Option<i32>,
        /// The body, or `-` for standard input.
        file: PathBuf,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            if json {
                println!("{}", json!({ "error": format!("{e:#}") }));
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Runs one command. `inspect-webhook` needs no configuration and answers bad input with exit
/// status 2; the others resolve the configuration first.
async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        config_file: cli.config,
        database_url: cli.database_url,
        data_dir: cli.data_dir,
    };
    match cli.command {
        Command::InspectWebhook {
            crm,
            currency,
            utc_offset_minutes,
            file,
        } => Ok(inspect_webhook(inspect::Request {
            crm,
            file,
            currency,
            utc_offset_minutes,
        })),
        Command::Migrate => {
            migrate(&Config::resolve(overrides)?, cli.json).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config => {
            show_config(&Config::resolve(overrides)?, cli.json);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn show_config(config: &Config, json: bool) {
    let database = loyalty_store::redact_url(&config.database_url);
    if json {
        println!(
            "{}",
            json!({
                "database_url": database,
                "database_url_source": config.database_url_source,
                "data_dir": config.data_dir,
            })
        );
    } else {
        println!(
            "database_url = {database}   # from {}",
            config.database_url_source
        );
        println!("data_dir     = {}", config.data_dir.display());
    }
}

fn inspect_webhook(req: inspect::Request) -> ExitCode {
    match inspect::inspect(&req) {
        Ok(events) => {
            for event in events {
                println!("{event}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn migrate(config: &Config, json: bool) -> anyhow::Result<()> {
    config.prepare_sqlite_dir()?;
    let settings = PoolSettings {
        max_connections: 2,
        acquire_timeout: Duration::from_secs(5),
    };
    let store = SqlStore::connect_with(&config.database_url, settings).await?;
    let applied = store.migrate().await?;
    if json {
        println!(
            "{}",
            json!({
                "applied": applied,
                "backend": store.backend().name(),
                "database": store.redacted_url(),
            })
        );
    } else if applied == 0 {
        println!("{} is up to date.", store.redacted_url());
    } else {
        println!(
            "Applied {applied} migration(s) to {} ({}).",
            store.redacted_url(),
            store.backend().name()
        );
    }
    store.close().await;
    Ok(())
}
