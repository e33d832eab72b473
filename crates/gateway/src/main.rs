//! `loyalty-gateway`: the Loyalty Bridge service binary and the operator's CLI. The commands and
//! their options are in `args.rs`; this file runs them.

mod args;

use std::process::ExitCode;

use clap::Parser;
use loyalty_core::engine::DeskChange;
use loyalty_core::{Clock, LoyaltyEngine, PartnerId, SystemClock};
use loyalty_gateway::cli::{self, ConnectionAdd, PartnerAdd, Usage};
use loyalty_gateway::config::{Config, Overrides};
use loyalty_gateway::{StartOptions, demo, inspect, open_store};
use loyalty_store::SqlStore;
use serde_json::{Value, json};

use args::*;

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
    actor: loyalty_core::audit::Actor,
) -> anyhow::Result<ExitCode> {
    let store = std::sync::Arc::new(open_migrated(&Config::resolve(overrides)?).await?);
    let engine = LoyaltyEngine::new(store.clone()).acting_as(actor);
    let out = cli::client_manual(
        &engine, direction, m.partner, &m.phone, m.points, &m.reason, m.key,
    )
    .await;
    store.close().await;
    print(&out?, json, cli::manual_text);
    Ok(ExitCode::SUCCESS)
}

/// One line of standard input, without its line end.
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(Usage("--password-stdin: standard input had no password".into()).into());
    }
    Ok(password)
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
    let actor = cli::actor(cli.actor);
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
        Command::Demo { serve } => {
            demo::run(json, serve).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Partner(PartnerCmd::Add(a)) => {
            let config = Config::resolve(overrides)?;
            let store = open_migrated(&config).await?;
            let req = PartnerAdd {
                plan: a.plan.unwrap_or(config.default_plan),
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
            let out = cli::partner_add(&store, &req, &actor, now).await;
            store.close().await;
            print(&out?, json, |v| {
                format!("Partner {} added: {}", v["id"], v["name"])
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Partner(PartnerCmd::Set { partner, country }) => {
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let out = cli::partner_set(&store, PartnerId(partner), country, &actor).await;
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
        Command::Partner(PartnerCmd::Plan { partner, plan }) => {
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let out = cli::partner_plan(&store, partner, plan, &actor).await;
            store.close().await;
            print(&out?, json, |v| {
                format!(
                    "Partner {}: plan {} (was {})",
                    v["id"],
                    v["plan"].as_str().unwrap_or_default(),
                    v["was"].as_str().unwrap_or_default()
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::User(cmd) => {
            let config = Config::resolve(overrides)?;
            let store = open_migrated(&config).await?;
            let out = match cmd {
                UserCmd::Add {
                    partner,
                    email,
                    role,
                    password_stdin,
                } => {
                    let password = if password_stdin {
                        Some(read_password()?)
                    } else {
                        None
                    };
                    let public = config.public_url.as_deref();
                    cli::user_add(&store, partner, &email, role, password, public, &actor, now)
                        .await
                        .map(|v| (v, cli::user_text as fn(&Value) -> String))
                }
                UserCmd::Remove { partner, email } => {
                    cli::user_remove(&store, partner, &email, &actor, now)
                        .await
                        .map(|v| {
                            let text: fn(&Value) -> String = |v| {
                                format!(
                                    "{} removed from partner {}'s dashboard; their sessions ended",
                                    v["email"].as_str().unwrap_or_default(),
                                    v["partner"]
                                )
                            };
                            (v, text)
                        })
                }
                UserCmd::Chat {
                    partner,
                    email,
                    chat,
                    unlink: _,
                } => cli::user_chat(&store, partner, &email, chat)
                    .await
                    .map(|v| (v, cli::user_text as fn(&Value) -> String)),
                UserCmd::List { partner } => cli::user_list(&store, partner)
                    .await
                    .map(|v| (v, cli::users_text as fn(&Value) -> String)),
            };
            store.close().await;
            let (v, text) = out?;
            print(&v, json, text);
            Ok(ExitCode::SUCCESS)
        }
        Command::ApiKey(cmd) => {
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let out = match cmd {
                ApiKeyCmd::Add { partner, scope } => {
                    cli::api_key_add(&store, partner, &scope).await
                }
                ApiKeyCmd::Revoke { partner, prefix } => {
                    cli::api_key_revoke(&store, partner, &prefix).await
                }
                ApiKeyCmd::List { partner } => cli::api_key_list(&store, partner).await,
            };
            store.close().await;
            print(&out?, json, cli::api_key_text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Bot(cmd) => {
            let config = Config::resolve(overrides)?;
            let store = open_migrated(&config).await?;
            let out = match cmd {
                BotCmd::Set { partner } => match read_password() {
                    Ok(token) => cli::bot_set(&store, &config, partner, &token).await,
                    Err(_) => {
                        Err(Usage("bot set: give the bot's token on standard input".into()).into())
                    }
                },
                BotCmd::Remove { partner } => cli::bot_remove(&store, &config, partner).await,
                BotCmd::List => cli::bot_list(&store).await,
            };
            store.close().await;
            print(&out?, json, cli::bot_text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { partner, limit } => {
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let out = cli::audit(&store, partner, limit).await;
            store.close().await;
            print(&out?, json, cli::audit_text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Engage(cmd) => {
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let out = match cmd {
                EngageCmd::Preview { partner, trigger } => {
                    cli::engage_preview(&store, partner, trigger.as_deref()).await
                }
                EngageCmd::Run { partner } => cli::engage_run(&store, partner).await,
                EngageCmd::List { partner, limit } => {
                    cli::engage_list(&store, partner, limit).await
                }
                EngageCmd::Status { partner } => cli::engage_status(&store, partner).await,
                EngageCmd::Consent {
                    partner,
                    phone,
                    sms_grant,
                    sms_withdraw,
                } => {
                    let sms = match (sms_grant, sms_withdraw) {
                        (Some(text), _) => Some(cli::SmsConsent::Grant(text)),
                        (None, true) => Some(cli::SmsConsent::Withdraw),
                        (None, false) => None,
                    };
                    cli::engage_consent(&store, partner, &phone, sms, &actor.name).await
                }
            };
            store.close().await;
            print(&out?, json, cli::engage_text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Analytics(AnalyticsCmd::Uplift {
            partner,
            window_days,
        }) => {
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let out = cli::analytics_uplift(&store, partner, window_days).await;
            store.close().await;
            print(&out?, json, cli::uplift_text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Analytics(AnalyticsCmd::Fit {
            summary: Some(file),
            horizon,
            ..
        }) => {
            print(
                &cli::analytics_fit_file(&file, horizon)?,
                json,
                cli::fit_text,
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Analytics(AnalyticsCmd::Fit {
            partner, horizon, ..
        }) => {
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let partner = partner.ok_or_else(|| cli::Usage("--partner or --summary".into()))?;
            let out = cli::analytics_fit_partner(&store, partner, horizon, now).await;
            store.close().await;
            print(&out?, json, cli::fit_text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Analytics(AnalyticsCmd::Backtest {
            partner,
            horizon_days,
        }) => {
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let out = cli::analytics_backtest(&store, partner, horizon_days, now).await;
            store.close().await;
            print(&out?, json, cli::backtest_text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Analytics(AnalyticsCmd::Offers { partner }) => {
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let out = cli::analytics_offers(&store, partner, now).await;
            store.close().await;
            print(&out?, json, cli::offers_text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Analytics(AnalyticsCmd::Model {
            partner,
            refresh,
            top,
        }) => {
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let out = cli::analytics_model(&store, partner, refresh, top, now).await;
            store.close().await;
            print(&out?, json, cli::model_text);
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
            email,
            password,
            base_url,
            app_id,
            app_secret,
            api_url,
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
                login: cli::CrmLogin {
                    email,
                    password,
                    base_url,
                    app_id,
                    app_secret,
                    api_url,
                },
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
        Command::Connection(ConnectionCmd::Webhooks { connection }) => {
            let config = Config::resolve(overrides)?;
            let store = std::sync::Arc::new(open_migrated(&config).await?);
            let out = cli::connection_webhooks(store.clone(), &config, connection).await;
            store.close().await;
            print(&out?, json, |v| {
                format!(
                    "Connection {}: {} sends its changes to {}",
                    v["connection"],
                    v["tables"],
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
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let out = cli::connection_rewards(
                &store,
                connection,
                &strategy,
                cli::RewardFlags {
                    chain,
                    card_type,
                    good,
                    storage,
                },
            )
            .await;
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
        Command::Client(ClientCmd::Export { partner, phone }) => {
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let out = cli::client_export(&store, partner, &phone, &actor, now).await;
            store.close().await;
            print(&out?, json, |v| {
                serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Client(ClientCmd::Forget { partner, phone }) => {
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let out = cli::client_forget(&store, partner, &phone, &actor, now).await;
            store.close().await;
            print(&out?, json, cli::forget_text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Client(ClientCmd::Level {
            partner,
            phone,
            set,
            unset,
        }) => {
            let store = std::sync::Arc::new(open_migrated(&Config::resolve(overrides)?).await?);
            let engine = LoyaltyEngine::new(store.clone()).acting_as(actor);
            let change = match (set, unset) {
                (Some(level), _) => cli::LevelSet::Floor(level),
                (None, true) => cli::LevelSet::Unset,
                (None, false) => cli::LevelSet::Show,
            };
            let out = cli::client_level(&engine, partner, &phone, change).await;
            store.close().await;
            print(&out?, json, cli::level_text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Program(cmd) => {
            let store = open_migrated(&Config::resolve(overrides)?).await?;
            let out = match cmd {
                ProgramCmd::Show { partner, versions } => {
                    cli::program_show(&store, partner, versions)
                        .await
                        .map(|v| (v, cli::program_text as fn(&Value) -> String))
                }
                ProgramCmd::Set { partner, file } => {
                    cli::program_set(&store, partner, &file, &actor)
                        .await
                        .map(|v| (v, cli::program_set_text as fn(&Value) -> String))
                }
            };
            store.close().await;
            let (value, text) = out?;
            print(&value, json, text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Visit(cmd) => {
            let store = std::sync::Arc::new(open_migrated(&Config::resolve(overrides)?).await?);
            let engine = LoyaltyEngine::new(store.clone()).acting_as(actor);
            let out = match cmd {
                VisitCmd::Add {
                    partner,
                    phone,
                    paid_minor,
                    service,
                    master,
                    name,
                    key,
                    force,
                } => {
                    let req = cli::VisitAdd {
                        partner,
                        phone,
                        name,
                        paid_minor,
                        service,
                        master,
                        key,
                        force,
                    };
                    cli::visit_add(&engine, &req).await
                }
                VisitCmd::Correct {
                    partner,
                    key,
                    paid_minor,
                    reason,
                } => {
                    let change = DeskChange::Paid(paid_minor);
                    cli::visit_change(&engine, store.as_ref(), partner, &key, change, &reason).await
                }
                VisitCmd::Cancel {
                    partner,
                    key,
                    reason,
                } => {
                    let change = DeskChange::Cancel;
                    cli::visit_change(&engine, store.as_ref(), partner, &key, change, &reason).await
                }
            };
            store.close().await;
            print(&out?, json, cli::visit_text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Client(ClientCmd::Accrue { manual }) => {
            manual_cmd(overrides, json, cli::Manual::Accrue, manual, actor).await
        }
        Command::Client(ClientCmd::Debit { manual }) => {
            manual_cmd(overrides, json, cli::Manual::Debit, manual, actor).await
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
            let engine = LoyaltyEngine::new(store.clone()).acting_as(actor);
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
        Command::Import(ImportCmd::File(f)) => {
            let store = std::sync::Arc::new(open_migrated(&Config::resolve(overrides)?).await?);
            let engine = LoyaltyEngine::new(store.clone()).acting_as(actor);
            let req = cli::ImportFile {
                partner: f.partner,
                clients: f.clients,
                visits: f.visits,
                balances: f.balances,
                preset: f.preset,
                map: f.map,
                encoding: f.encoding,
                delimiter: f.delimiter,
                apply: f.apply,
                accrue: f.accrue,
                force: f.force,
                progress: !json,
            };
            let out = cli::import_file(&engine, &store, &req).await;
            store.close().await;
            print(&out?, json, cli::import_file_text);
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
                ImportCmd::File(_) => Err(Usage("import file is dispatched above".into()).into()),
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
                "engage_interval_s": config.engage_interval_s,
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
        println!("engage_interval_s   = {}", config.engage_interval_s);
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
