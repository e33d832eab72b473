//! `loyalty-gateway`: the Loyalty Bridge service binary and the operator's CLI.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use loyalty_core::{Clock, Country, CrmKind, Currency, LoyaltyEngine, PartnerId, SystemClock};
use loyalty_gateway::cli::{self, ConnectionAdd, PartnerAdd, Usage};
use loyalty_gateway::config::{Config, Overrides};
use loyalty_gateway::{StartOptions, demo, inspect, open_store};
use loyalty_store::SqlStore;
use serde_json::{Value, json};

/// Loyalty Bridge gateway: a points loyalty program for beauty salons, on top of the CRM the
/// salon already uses.
///
/// The database is PostgreSQL (production; many gateway instances can share it) or SQLite (the
/// embedded default: a file in the data directory, no set-up). Settings come from flags, then
/// environment variables, then the optional TOML file given by --config, then defaults.
#[derive(Debug, Parser)]
#[command(name = "loyalty-gateway", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    settings: Overrides,

    /// Print exactly one JSON object on stdout instead of text.
    #[arg(long, global = true, help_heading = "Output")]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service, the outbox worker and the Telegram bot until SIGTERM or Ctrl-C.
    Serve,
    /// A day of a small salon, end to end, on a throwaway embedded database: a simulated
    /// YCLIENTS sends webhooks to the real gateway and a Telegram stand-in prints each message.
    Demo,
    /// Apply the database migrations (safe to run again: applied ones are skipped).
    Migrate,
    /// Show the effective configuration, secrets hidden.
    Config,
    /// Partners (salons or chains) and their points program.
    #[command(subcommand)]
    Partner(PartnerCmd),
    /// Connections of partners to their CRM.
    #[command(subcommand)]
    Connection(ConnectionCmd),
    /// A client's balance and history.
    #[command(subcommand)]
    Client(ClientCmd),
    /// The partner's rewards catalog: what points buy.
    #[command(subcommand)]
    Reward(RewardCmd),
    /// The CRM's service list (for service rewards) and which services points may buy.
    #[command(subcommand)]
    Services(ServicesCmd),
    /// A client at the desk exchanges points for a reward; prints the code to use.
    Redeem {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        phone: String,
        #[arg(long)]
        reward: i64,
        /// The same key twice gives the same code (safe to retry).
        #[arg(long)]
        key: Option<String>,
    },
    /// Redemption codes at the desk.
    #[command(subcommand)]
    Code(CodeCmd),
    /// Let a staff member's Telegram chat check and use the partner's codes in the bot
    /// (`/check CODE`, `/use CODE [BILL]`; a money certificate needs the bill it pays). The chat
    /// id is what the bot replies to; @userinfobot shows it.
    StaffAdd {
        #[arg(long)]
        partner: i64,
        #[arg(long, allow_hyphen_values = true)]
        chat: i64,
    },
    /// The history import: a connection's clients and visits of the past, no points for them.
    #[command(subcommand)]
    Import(ImportCmd),
    /// The reconciliation poller: what it read last per connection, and how often.
    #[command(subcommand)]
    Sync(SyncCmd),
    /// Checks and repairs of stored data.
    #[command(subcommand)]
    Doctor(DoctorCmd),
    /// CRM events waiting for the CRM's API before they are applied (a partial record to
    /// re-fetch, how a bill was paid), and those given up on.
    #[command(subcommand)]
    Inbox(InboxCmd),
    /// The latest webhook deliveries the gateway refused, with why.
    Rejected {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
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
        /// The company's country, for phones typed without a country code.
        #[arg(long, value_name = "CC", default_value = "RU")]
        country: Country,
        /// The body, or `-` for standard input.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum PartnerCmd {
    /// Add a partner; prints its id.
    Add(PartnerArgs),
    /// Change a partner's program settings.
    Set {
        #[arg(long)]
        partner: i64,
        /// Where the salon is (ISO 3166 alpha-2): phones typed without a country code are read
        /// as this country's from now on (`doctor phones` re-reads the stored ones).
        #[arg(long, value_name = "CC")]
        country: Option<Country>,
    },
}

#[derive(Debug, Subcommand)]
enum ImportCmd {
    /// Import the connection's CRM clients and visits since --since (default: 24 months back)
    /// into the history, here and now; no points for visits before the connection was made
    /// (or before --accrue-since). Killed, it continues where it was when run again.
    Crm {
        #[arg(long)]
        connection: i64,
        /// YYYY-MM-DD: the first day imported.
        #[arg(long)]
        since: Option<String>,
        /// YYYY-MM-DD: visits from this day on earn points (once; never again).
        #[arg(long)]
        accrue_since: Option<String>,
    },
    /// The imports and how far they got.
    Status {
        #[arg(long)]
        connection: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
enum SyncCmd {
    /// Per connection: the last pass, the cursor and how far behind it is, what it found,
    /// the last error, the interval in force.
    Status {
        #[arg(long)]
        connection: Option<i64>,
    },
    /// Poll this connection every --seconds (0: not at all), or at the deployment's interval
    /// again (--default).
    Interval {
        #[arg(long)]
        connection: i64,
        #[arg(long, conflicts_with = "default", required_unless_present = "default")]
        seconds: Option<u32>,
        #[arg(long)]
        default: bool,
    },
}

#[derive(Debug, Subcommand)]
enum InboxCmd {
    /// What waits (with --dead: what was given up on after days of failing), oldest first.
    List {
        #[arg(long)]
        dead: bool,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Try an item again now (a dead letter too), its tries counted from zero.
    Replay { id: i64 },
}

#[derive(Debug, Subcommand)]
enum DoctorCmd {
    /// Re-read every stored client phone in its partner's country and list those that would
    /// change or cannot exist; --apply moves a client to the corrected number when no other
    /// client holds it (collisions are listed, never merged).
    Phones {
        #[arg(long)]
        partner: Option<i64>,
        #[arg(long)]
        apply: bool,
    },
}

#[derive(Debug, Args)]
struct PartnerArgs {
    #[arg(long)]
    name: String,
    /// Cashback in basis points: 500 = 5 % of the paid amount.
    #[arg(long)]
    cashback_bps: u32,
    #[arg(long, default_value = "RUB")]
    currency: Currency,
    /// Where the salon is (ISO 3166 alpha-2: RU, KZ, BY, UA, UZ, …): phones typed without a
    /// country code are read as this country's.
    #[arg(long, value_name = "CC", default_value = "RU")]
    country: Country,
    /// Visits paid below this (minor units: kopecks) earn nothing.
    #[arg(long, default_value_t = 0)]
    min_paid_minor: i64,
    /// Points expire this many days after they were earned (default: never).
    #[arg(long)]
    points_ttl_days: Option<u32>,
    /// Points granted once when a client links Telegram.
    #[arg(long, default_value_t = 0)]
    welcome_bonus: i64,
    /// What one point is worth in minor units (100 = 1 ₽).
    #[arg(long, default_value_t = 100)]
    point_value_minor: i64,
    /// The largest share of a bill points may pay, in basis points: a gateway code for a money
    /// certificate is used only on a bill at least its value / share (`code use --bill-minor`).
    #[arg(long, default_value_t = 5000)]
    max_redeem_share_bps: u32,
    /// Days a redemption code stays usable.
    #[arg(long, default_value_t = 90)]
    code_ttl_days: u32,
}

#[derive(Debug, Subcommand)]
enum ConnectionCmd {
    /// Connect a partner to a CRM company; prints the webhook URL to paste into the CRM.
    Add {
        #[arg(long)]
        partner: i64,
        #[arg(long, value_name = "yclients|altegio")]
        crm: CrmKind,
        /// The company (location) id in the CRM.
        #[arg(long)]
        company_id: String,
        /// The developer partner token (lets the gateway re-fetch partial records).
        #[arg(long, env = "CRM_PARTNER_TOKEN", hide_env_values = true)]
        partner_token: Option<String>,
        /// The salon's user token.
        #[arg(long, env = "CRM_USER_TOKEN", hide_env_values = true)]
        user_token: Option<String>,
        /// The company's offset from UTC (default: 180 for YCLIENTS, 0 for Altegio).
        #[arg(long, allow_hyphen_values = true)]
        utc_offset_minutes: Option<i32>,
        /// The location's country when it is not the partner's (ISO 3166 alpha-2).
        #[arg(long, value_name = "CC")]
        country: Option<Country>,
    },
    /// Change a connection's settings.
    Set {
        connection: i64,
        /// Create people who join through the bot (by the salon's link) and whom the CRM does
        /// not know in the CRM, with their name and phone.
        #[arg(long, value_name = "on|off", value_parser = on_off)]
        create_clients: Option<bool>,
    },
    /// How the connection writes rewards into its CRM: top up the client's loyalty card,
    /// sell a certificate, or (the default) the gateway's own codes checked by staff.
    Rewards {
        connection: i64,
        #[arg(long, value_name = "loyalty-card|certificate|gateway-code")]
        strategy: String,
        /// loyalty-card: the chain (network) id the card type belongs to.
        #[arg(long)]
        chain: Option<String>,
        /// loyalty-card: the card type to top up (issued to clients who have none).
        #[arg(long)]
        card_type: Option<String>,
        /// certificate: the good linked to a certificate type.
        #[arg(long)]
        good: Option<String>,
        /// certificate: the storage the good is sold from.
        #[arg(long)]
        storage: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum CodeCmd {
    /// What a code is for and whether it can be used.
    Show { code: String },
    /// Mark a code used: its points are spent. A code is used once.
    Use {
        code: String,
        /// The bill it pays, in minor units (kopecks). Needed for a gateway code worth money:
        /// points pay at most the program's share of a bill (`--max-redeem-share-bps`).
        #[arg(long)]
        bill_minor: Option<i64>,
    },
    /// Settle a reward the gateway could not confirm in the CRM (see `crm_error`): --written
    /// when it is there, --not-written to give the points back.
    Resolve {
        code: String,
        #[arg(
            long,
            conflicts_with = "not_written",
            required_unless_present = "not_written"
        )]
        written: bool,
        #[arg(long)]
        not_written: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ServicesCmd {
    /// Read the connection's service list from its CRM now (the gateway also does it every
    /// 6 hours and when the CRM reports a service change).
    Sync {
        #[arg(long)]
        connection: i64,
    },
    /// The connection's services as last synced (with --all, those gone from the CRM too);
    /// with --kind staff|category|good, its masters, service categories or goods instead.
    List {
        #[arg(long)]
        connection: i64,
        #[arg(long)]
        all: bool,
        #[arg(long, value_parser = ["staff", "category", "good"])]
        kind: Option<String>,
    },
    /// Let points buy this service (the default for a synced service).
    Allow {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        service: String,
    },
    /// Keep this service out of rewards; its rewards leave the catalog.
    Deny {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        service: String,
    },
}

#[derive(Debug, Subcommand)]
enum RewardCmd {
    /// Add a money certificate (--certificate-minor) or a CRM service (--service-id; its
    /// synced price unless --price-minor is given) bought for --points.
    Add {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        title: String,
        /// What it costs in points.
        #[arg(long)]
        points: i64,
        /// A certificate of this value in minor units (50000 = 500 ₽).
        #[arg(long)]
        certificate_minor: Option<i64>,
        /// The service's id in the CRM.
        #[arg(long)]
        service_id: Option<String>,
        /// The service's price in minor units (default: its price in the synced list).
        #[arg(long)]
        price_minor: Option<i64>,
    },
    /// The rewards clients can buy now (with --all, removed ones too).
    List {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        all: bool,
    },
    /// Take a reward off the catalog.
    Remove {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        reward: i64,
    },
}

#[derive(Debug, Subcommand)]
enum ClientCmd {
    /// Balance and latest history of the client with this phone.
    Show {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        phone: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Add points by hand (a desk without a CRM, a goodwill gesture); the client is told.
    Accrue {
        #[command(flatten)]
        manual: ManualArgs,
    },
    /// Write points off by hand (spent at the desk); never below zero; the client is told.
    Debit {
        #[command(flatten)]
        manual: ManualArgs,
    },
}

#[derive(Debug, clap::Args)]
struct ManualArgs {
    #[arg(long)]
    partner: i64,
    /// The client's phone, as typed in the partner's country.
    #[arg(long)]
    phone: String,
    /// How many points (more than zero).
    #[arg(long)]
    points: i64,
    /// Why: the client's message and the history show it.
    #[arg(long)]
    reason: String,
    /// Makes a retry safe: the same key again is the same posting, with other input an error.
    #[arg(long)]
    key: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let usage = e.downcast_ref::<Usage>().is_some();
            if json {
                println!("{}", json!({ "error": format!("{e:#}") }));
            } else {
                eprintln!("error: {e:#}");
            }
            if usage {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `client accrue` / `client debit`.
async fn manual_cmd(
    overrides: Overrides,
    json: bool,
    direction: cli::Manual,
    m: ManualArgs,
) -> anyhow::Result<ExitCode> {
    let store = std::sync::Arc::new(open_migrated(&Config::resolve(overrides)?).await?);
    let engine = LoyaltyEngine::new(store.clone());
    let out = cli::client_manual(
        &engine, direction, m.partner, &m.phone, m.points, &m.reason, m.key,
    )
    .await;
    store.close().await;
    print(&out?, json, cli::manual_text);
    Ok(ExitCode::SUCCESS)
}

fn print(value: &Value, json: bool, text: impl FnOnce(&Value) -> String) {
    if json {
        println!("{value}");
    } else {
        println!("{}", text(value));
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let overrides = cli.settings;
    let json = cli.json;
    let now = SystemClock.now_ms();
    match cli.command {
        Command::InspectWebhook {
            crm,
            currency,
            utc_offset_minutes,
            country,
            file,
        } => Ok(inspect_webhook(inspect::Request {
            crm,
            file,
            currency,
            utc_offset_minutes,
            country,
        })),
        Command::Migrate => {
            migrate(&Config::resolve(overrides)?, json).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config => {
            show_config(&Config::resolve(overrides)?, json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve => {
            loyalty_gateway::init_logging();
            serve(&Config::resolve(overrides)?).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo => {
            demo::run(json).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Partner(PartnerCmd::Add(a)) => {
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let req = PartnerAdd {
                name: a.name,
                cashback_bps: a.cashback_bps,
                currency: a.currency,
                min_paid_minor: a.min_paid_minor,
                points_ttl_days: a.points_ttl_days,
                welcome_bonus: a.welcome_bonus,
                point_value_minor: a.point_value_minor,
                max_redeem_share_bps: a.max_redeem_share_bps,
                code_ttl_days: a.code_ttl_days,
                country: a.country,
            };
            let out = cli::partner_add(&store, &req, now).await;
            store.close().await;
            print(&out?, json, |v| {
                format!("Partner {} added: {}", v["id"], v["name"])
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Partner(PartnerCmd::Set { partner, country }) => {
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let out = cli::partner_set(&store, PartnerId(partner), country).await;
            store.close().await;
            print(&out?, json, |v| {
                format!(
                    "Partner {}: country {}",
                    v["id"],
                    v["program"]["country"].as_str().unwrap_or_default()
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor(DoctorCmd::Phones { partner, apply }) => {
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let out = cli::doctor_phones(&store, partner.map(PartnerId), apply).await;
            store.close().await;
            print(&out?, json, cli::doctor_text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Connection(ConnectionCmd::Add {
            partner,
            crm,
            company_id,
            partner_token,
            user_token,
            utc_offset_minutes,
            country,
        }) => {
            let config = Config::resolve(overrides)?;
            let store = open_migrated(&config).await?;
            let req = ConnectionAdd {
                partner,
                crm,
                company_id,
                partner_token,
                user_token,
                utc_offset_minutes,
                country,
            };
            let out = cli::connection_add(&store, &config, &req, now).await;
            store.close().await;
            print(&out?, json, |v| {
                format!(
                    "Connection {} added. Paste this URL into the CRM's webhook settings:\n{}",
                    v["id"],
                    v["webhook_url"].as_str().unwrap_or_default()
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Connection(ConnectionCmd::Set {
            connection,
            create_clients,
        }) => {
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let out = cli::connection_set(&store, connection, create_clients).await;
            store.close().await;
            print(&out?, json, |v| {
                format!(
                    "Connection {}: people who join through the bot are {}created in the CRM",
                    v["connection"],
                    if v["create_clients"] == json!(true) {
                        ""
                    } else {
                        "not "
                    }
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Connection(ConnectionCmd::Rewards {
            connection,
            strategy,
            chain,
            card_type,
            good,
            storage,
        }) => {
            let setup = cli::reward_setup(&strategy, chain, card_type, good, storage)?;
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let out = cli::connection_rewards(&store, connection, setup).await;
            store.close().await;
            print(&out?, json, |v| {
                format!(
                    "Connection {} writes rewards as {}",
                    v["connection"], v["strategy"]
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Client(ClientCmd::Show {
            partner,
            phone,
            limit,
        }) => {
            let store = std::sync::Arc::new(open_migrated(&Config::resolve(overrides)?).await?);
            let engine = LoyaltyEngine::new(store.clone());
            let out = cli::client_show(&engine, store.as_ref(), partner, &phone, limit).await;
            store.close().await;
            print(&out?, json, cli::client_text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Client(ClientCmd::Accrue { manual }) => {
            manual_cmd(overrides, json, cli::Manual::Accrue, manual).await
        }
        Command::Client(ClientCmd::Debit { manual }) => {
            manual_cmd(overrides, json, cli::Manual::Debit, manual).await
        }
        Command::Reward(cmd) => {
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let out = match cmd {
                RewardCmd::Add {
                    partner,
                    title,
                    points,
                    certificate_minor,
                    service_id,
                    price_minor,
                } => {
                    let req = cli::RewardAdd {
                        partner,
                        title,
                        points,
                        certificate_minor,
                        service_id,
                        price_minor,
                    };
                    cli::reward_add(&store, &req, now).await
                }
                RewardCmd::List { partner, all } => cli::reward_list(&store, partner, all).await,
                RewardCmd::Remove { partner, reward } => {
                    cli::reward_remove(&store, partner, reward).await
                }
            };
            store.close().await;
            print(&out?, json, cli::reward_text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Services(cmd) => {
            let config = Config::resolve(overrides)?;
            let store = std::sync::Arc::new(open_migrated(&config).await?);
            let out = match &cmd {
                ServicesCmd::Sync { connection } => {
                    cli::services_sync(store.clone(), &config, *connection).await
                }
                ServicesCmd::List {
                    connection,
                    all,
                    kind: None,
                } => cli::services_list(&store, *connection, *all).await,
                ServicesCmd::List {
                    connection,
                    all,
                    kind: Some(kind),
                } => cli::directory_list(&store, *connection, kind, *all).await,
                ServicesCmd::Allow { partner, service } => {
                    cli::services_allow(&store, *partner, service, true).await
                }
                ServicesCmd::Deny { partner, service } => {
                    cli::services_allow(&store, *partner, service, false).await
                }
            };
            store.close().await;
            print(&out?, json, cli::services_text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Redeem {
            partner,
            phone,
            reward,
            key,
        } => {
            let store = std::sync::Arc::new(open_migrated(&Config::resolve(overrides)?).await?);
            let engine = LoyaltyEngine::new(store.clone());
            let out = cli::redeem(&engine, &store, partner, &phone, reward, key).await;
            store.close().await;
            print(&out?, json, cli::code_text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Code(cmd) => {
            let store = std::sync::Arc::new(open_migrated(&Config::resolve(overrides)?).await?);
            let engine = LoyaltyEngine::new(store.clone());
            let out = match &cmd {
                CodeCmd::Show { code } => cli::code(&engine, code, cli::CodeAction::Show).await,
                CodeCmd::Use { code, bill_minor } => {
                    let action = cli::CodeAction::Use {
                        bill_minor: *bill_minor,
                    };
                    cli::code(&engine, code, action).await
                }
                CodeCmd::Resolve { code, written, .. } => {
                    cli::code_resolve(&engine, code, *written).await
                }
            };
            store.close().await;
            print(&out?, json, cli::code_text);
            Ok(ExitCode::SUCCESS)
        }
        Command::StaffAdd { partner, chat } => {
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let out = cli::staff_add(&store, partner, chat, now).await;
            store.close().await;
            print(&out?, json, |v| {
                format!(
                    "Chat {} may now /check CODE and /use CODE [BILL] with partner {}'s codes in the bot \
                     (a money certificate needs the bill, e.g. /use ABCD-EFGH-K 3500).",
                    v["chat"], v["partner"]
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Import(cmd) => {
            let config = Config::resolve(overrides)?;
            let store = std::sync::Arc::new(open_migrated(&config).await?);
            let out = match cmd {
                ImportCmd::Crm {
                    connection,
                    since,
                    accrue_since,
                } => {
                    let req = cli::ImportCrm {
                        connection,
                        since,
                        accrue_since,
                        progress: !json,
                    };
                    cli::import_crm(store.clone(), &config, &req).await
                }
                ImportCmd::Status { connection } => cli::import_status(&store, connection).await,
            };
            store.close().await;
            print(&out?, json, cli::import_text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync(cmd) => {
            let config = Config::resolve(overrides)?;
            let store = open_migrated(&config).await?;
            let out = match cmd {
                SyncCmd::Status { connection } => {
                    cli::sync_status(&store, &config, connection).await
                }
                SyncCmd::Interval {
                    connection,
                    seconds,
                    ..
                } => cli::sync_interval(&store, connection, seconds).await,
            };
            store.close().await;
            print(&out?, json, cli::sync_text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Inbox(cmd) => {
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let out = match cmd {
                InboxCmd::List { dead, limit } => cli::inbox_list(&store, dead, limit).await,
                InboxCmd::Replay { id } => cli::inbox_replay(&store, id).await,
            };
            store.close().await;
            print(&out?, json, cli::inbox_text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Rejected { limit } => {
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let out = cli::rejected(&store, limit).await;
            store.close().await;
            print(&out?, json, |v| {
                let rows = v["rejected"].as_array().cloned().unwrap_or_default();
                if rows.is_empty() {
                    return "No rejected deliveries.".into();
                }
                rows.iter()
                    .map(|r| {
                        format!(
                            "{} connection {} [{}] {}",
                            r["received_at_ms"], r["connection_id"], r["http_status"], r["reason"]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("expected on or off, got {other:?}")),
    }
}

async fn open_migrated(config: &Config) -> anyhow::Result<SqlStore> {
    let store = open_store(config).await?;
    if !store.is_migrated().await {
        store.close().await;
        return Err(Usage(format!(
            "{} is not migrated: run `loyalty-gateway migrate` first",
            loyalty_store::redact_url(&config.database_url)
        ))
        .into());
    }
    Ok(store)
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    let gateway = loyalty_gateway::start(config, StartOptions::default()).await?;
    tracing::info!(
        "webhook URLs look like {}/webhooks/yclients/<secret> (see `connection add`)",
        config.base_url()
    );
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests and sends");
    gateway.stop().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

fn show_config(config: &Config, json: bool) {
    let database = loyalty_store::redact_url(&config.database_url);
    let token = config.telegram_bot_token.as_ref().map(|_| "***");
    if json {
        println!(
            "{}",
            json!({
                "database_url": database,
                "database_url_source": config.database_url_source,
                "data_dir": config.data_dir,
                "listen": config.listen.to_string(),
                "public_url": config.public_url,
                "telegram_bot_token": token,
                "telegram_api_url": config.telegram_api_url,
                "delivery_retention_days": config.delivery_retention_days,
                "poll_interval_s": config.poll_interval_s,
            })
        );
    } else {
        println!(
            "database_url        = {database}   # from {}",
            config.database_url_source
        );
        println!("data_dir            = {}", config.data_dir.display());
        println!("listen              = {}", config.listen);
        println!(
            "public_url          = {}",
            config.public_url.as_deref().unwrap_or("(not set)")
        );
        println!(
            "telegram_bot_token  = {}",
            token.unwrap_or("(not set: no bot)")
        );
        println!("telegram_api_url    = {}", config.telegram_api_url);
        println!(
            "delivery_retention  = {} days",
            config.delivery_retention_days
        );
        println!("poll_interval_s     = {}", config.poll_interval_s);
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
    let store = open_store(config).await?;
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
