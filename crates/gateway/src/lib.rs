//! # loyalty-gateway
//!
//! The Loyalty Bridge service: wiring only. The rules live in `loyalty-core`, the SQL in
//! `loyalty-store`, Telegram in `loyalty-telegram`, each CRM in its `crm-*` crate.
//!
//! [`start`] runs the HTTP service ([`server`]), the outbox worker, the Telegram bot and the
//! reward write-back (CRM certificates and card top-ups) and the housekeeping task until [`Gateway::stop`]; the binary calls it for `serve` and `demo`.

mod bots;
pub mod cli;
pub mod config;
mod connections;
pub mod crms;
pub mod dbwatch;
pub mod demo;
pub mod engage;
pub mod health;
mod importer;
pub mod inspect;
pub mod metrics;
mod onboard;
pub mod partner_hooks;
pub mod poller;
pub mod quota;
pub mod sample;
pub mod server;
pub mod services;
pub mod sms;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use loyalty_core::engine::WriteBackPolicy;
use loyalty_core::inbox::{InboxPolicy, IntakeStore};
use loyalty_core::quota::Priority;
use loyalty_core::{Clock, LoyaltyEngine, Store, SystemClock};
use loyalty_store::SqlStore;
use loyalty_telegram::{
    ClientBot, OutboxWorker, ReminderSettings, ReminderWorker, Telegram, WorkerSettings,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::Config;
use crate::connections::Connections;
use crate::metrics::Metrics;
use crate::server::App;

/// How often the CRM inbox is looked at when nothing wakes its worker.
const INBOX_EVERY: Duration = Duration::from_secs(1);

/// Inbox passes that may run at once.
const INBOX_PASSES: usize = 4;

/// How often due rewards are written into the CRMs (each redemption also waits out its own
/// back-off).
const WRITE_BACK_EVERY: Duration = Duration::from_secs(30);

/// How often old delivery history is pruned, unused codes past their date expire and CRM
/// certificates are checked for use.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(600);

/// Opens (and, for the embedded SQLite default, creates) the configured database.
pub async fn open_store(config: &Config) -> anyhow::Result<SqlStore> {
    config.prepare_sqlite_dir()?;
    let backend = loyalty_store::Backend::of_url(&config.database_url)?;
    let mut settings = loyalty_store::PoolSettings::for_backend(backend);
    settings.acquire_timeout = Duration::from_secs(5);
    Ok(SqlStore::connect_with(&config.database_url, settings).await?)
}

/// Knobs the demo and tests turn; `serve` uses the defaults.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Pacing of the outbox worker.
    pub worker: Option<WorkerSettings>,
    /// Apply migrations before serving (the demo does; `serve` expects `migrate` to have run,
    /// and refuses to start otherwise).
    pub migrate: bool,
    /// How hard rewards are written into the CRMs.
    pub write_back: Option<WriteBackPolicy>,
    /// How often the write-back pass runs (every 30 s).
    pub write_back_every: Option<Duration>,
    /// How the CRM inbox is worked.
    pub inbox: Option<InboxPolicy>,
    /// Pacing of the reminders' worker.
    pub reminders: Option<ReminderSettings>,
    /// Pacing of the SMS worker.
    pub sms: Option<ReminderSettings>,
    /// How often connection incidents are looked for ([`health::HEALTH_EVERY`]).
    pub health_every: Option<Duration>,
    /// How often housekeeping runs: points and codes past their date expire, CRM certificates
    /// are checked, old delivery history is pruned (every 10 minutes).
    pub housekeeping_every: Option<Duration>,
    /// The dashboard's sessions and sign-in limits (its public URL is the config's).
    pub dashboard: Option<loyalty_web::Settings>,
    /// How partners' webhooks are sent (Svix's schedule; loopback per the config).
    pub hooks: Option<partner_hooks::HookPolicy>,
    /// How webhook endpoints' names are resolved (the system's resolver).
    pub hook_resolver: Option<Arc<dyn partner_hooks::HostResolver>>,
    /// How often the webhook sender looks for due deliveries (every second).
    pub hooks_every: Option<Duration>,
    /// The database probe's pace (PostgreSQL; `dbwatch::Probe::default()` when not set).
    pub db_probe: Option<dbwatch::Probe>,
}

/// A running gateway.
pub struct Gateway {
    pub addr: SocketAddr,
    pub store: Arc<SqlStore>,
    pub engine: LoyaltyEngine,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

impl Gateway {
    /// Stops accepting, lets in-flight requests and the message being sent finish, then
    /// returns.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        let served = self.server.await;
        for task in self.tasks {
            let _ = task.await;
        }
        self.store.close().await;
        served.context("HTTP server task")??;
        Ok(())
    }

    /// A receiver that turns true when the gateway is stopping.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}

/// Starts the gateway on `config.listen` (port 0 picks a free one).
pub async fn start(config: &Config, options: StartOptions) -> anyhow::Result<Gateway> {
    let sql = Arc::new(open_store(config).await?);
    if options.migrate {
        sql.migrate().await?;
    }
    if !sql.is_migrated().await {
        anyhow::bail!(
            "{} is not migrated: run `loyalty-gateway migrate` first",
            sql.redacted_url()
        );
    }
    let store: Arc<dyn Store> = sql.clone();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let engine = LoyaltyEngine::with_clock(Arc::clone(&store), Arc::clone(&clock));
    let (shutdown, stopping) = watch::channel(false);
    let mut tasks = Vec::new();

    let mut bot = None;
    let mut telegram_secret = None;
    let mut send_stats = None;
    let mut telegram_client = None;
    let mut salon_bots: Option<Arc<bots::SalonBotPool>> = None;
    match &config.telegram_bot_token {
        None => warn!(
            "TELEGRAM_BOT_TOKEN is not set: running without the Telegram bot; \
             notifications wait in the outbox until a token is configured"
        ),
        Some(token) => {
            let http = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(40))
                .build()
                .context("Telegram HTTP client")?;
            let telegram = Telegram::new(&config.telegram_api_url, token, http.clone());
            telegram_client = Some(telegram.clone());
            // Salons' own bots, wired like the deployment's and serving their salon alone.
            let make: bots::MakeBot = {
                let (engine, sql) = (engine.clone(), Arc::clone(&sql));
                Box::new(move |telegram, scope| wired_bot(&engine, &sql, telegram).for_salon(scope))
            };
            let pool = Arc::new(bots::SalonBotPool::new(
                Arc::clone(&sql),
                &config.telegram_api_url,
                http,
                make,
            ));
            tasks.push(tokio::spawn(
                Arc::clone(&pool).run(config.public_url.clone(), stopping.clone()),
            ));
            salon_bots = Some(Arc::clone(&pool));
            let worker = OutboxWorker::new(
                Arc::clone(&store),
                telegram.clone(),
                Arc::clone(&clock),
                options.worker.clone().unwrap_or_default(),
            )
            .with_staff_messages(sql.clone())
            .with_salon_bots(pool.clone());
            send_stats = Some(worker.stats());
            tasks.push(tokio::spawn(worker.run(stopping.clone())));
            // Marketing reminders: their own worker, pace and 429 pause.
            let reminders = ReminderWorker::new(
                Arc::clone(&store),
                sql.clone(),
                telegram.clone(),
                Arc::clone(&clock),
                options.reminders.clone().unwrap_or_default(),
            )
            .with_salon_bots(pool);
            tasks.push(tokio::spawn(reminders.run(stopping.clone())));
            let client_bot = Arc::new(
                wired_bot(&engine, &sql, telegram).with_sign_in(Arc::new(
                    loyalty_web::BotSignIn::new(
                        Arc::clone(&sql),
                        engine.clone(),
                        &config
                            .public_url
                            .clone()
                            .unwrap_or_else(|| format!("http://{}", config.listen)),
                    ),
                )),
            );
            match &config.public_url {
                Some(public) => {
                    let secret = match &config.telegram_webhook_secret {
                        Some(s) => s.clone(),
                        None => cli::new_secret()?,
                    };
                    let url = format!("{public}/telegram/{secret}");
                    match client_bot.set_webhook(&url, &secret).await {
                        Ok(()) => info!("Telegram updates come by webhook at {public}/telegram/…"),
                        Err(e) => warn!(error = %e, "could not register the Telegram webhook"),
                    }
                    telegram_secret = Some(secret);
                    bot = Some(client_bot);
                }
                None => {
                    let polling = Arc::clone(&client_bot);
                    let rx = stopping.clone();
                    tasks.push(tokio::spawn(async move { polling.poll(rx).await }));
                }
            }
        }
    }

    let metrics = Arc::new(Metrics::new(send_stats));
    let connections = Arc::new(Connections::new(
        Arc::clone(&sql),
        config,
        Arc::clone(&metrics),
    )?);
    let links = Arc::new(bots::JoinLinks::new(Arc::clone(&sql), telegram_client));
    // SMS for clients without Telegram, sent by the salons' CRMs.
    let sms = sms::SmsWorker::new(
        Arc::clone(&sql),
        Arc::clone(&connections),
        Arc::clone(&links),
        Arc::clone(&clock),
        options.sms.clone().unwrap_or_else(sms::default_settings),
    );
    tasks.push(tokio::spawn(sms.run(stopping.clone())));
    tasks.push(tokio::spawn(health::health_loop(
        Arc::clone(&sql),
        connections.health(),
        options.health_every.unwrap_or(health::HEALTH_EVERY),
        stopping.clone(),
    )));
    // Its first pass is the recovery pass: rewards a stopped gateway left half-written.
    tasks.push(tokio::spawn(write_backs(
        engine.clone(),
        Arc::clone(&sql),
        connections.at(Priority::WriteBack),
        options.write_back.unwrap_or_default(),
        options.write_back_every.unwrap_or(WRITE_BACK_EVERY),
        stopping.clone(),
    )));
    let inbox_wake = Arc::new(tokio::sync::Notify::new());
    tasks.push(tokio::spawn(inbox_worker(
        engine.clone(),
        Arc::clone(&sql),
        Arc::new(connections.at(Priority::Live)),
        Arc::clone(&inbox_wake),
        options.inbox.unwrap_or_default(),
        stopping.clone(),
    )));
    // This instance's name in the poller's leases.
    let owner = format!("gateway-{}", &cli::new_secret()?[..12]);
    let import_wake = Arc::new(tokio::sync::Notify::new());
    tasks.push(tokio::spawn(importer::import_loop(
        engine.clone(),
        Arc::clone(&sql),
        Arc::clone(&connections),
        owner.clone(),
        Arc::clone(&import_wake),
        stopping.clone(),
    )));
    tasks.push(tokio::spawn(engage::trigger_message_loop(
        Arc::clone(&sql),
        Arc::clone(&clock),
        options.hooks_every.unwrap_or(Duration::from_secs(5)),
        stopping.clone(),
    )));
    tasks.push(tokio::spawn(engage::engage_loop(
        Arc::clone(&sql),
        Arc::clone(&clock),
        Duration::from_secs(u64::from(config.engage_interval_s)),
        owner.clone(),
        stopping.clone(),
    )));
    tasks.push(tokio::spawn(poller::poll_loop(
        engine.clone(),
        Arc::clone(&sql),
        Arc::clone(&connections),
        config.poll_interval_s,
        owner,
        Arc::clone(&inbox_wake),
        stopping.clone(),
    )));
    let db = match sql.backend() {
        loyalty_store::Backend::Postgres => {
            let (watch, task) = dbwatch::spawn(
                config.database_url.clone(),
                options.db_probe.unwrap_or_default(),
                stopping.clone(),
            );
            tasks.push(task);
            watch
        }
        loyalty_store::Backend::Sqlite => dbwatch::DbWatch::always_up(),
    };
    let app = Arc::new(App {
        db,
        store: Arc::clone(&sql),
        engine: engine.clone(),
        connections,
        metrics,
        bot,
        telegram_secret,
        salon_bots,
        service_syncs: services::Pending::default(),
        inbox_wake,
    });

    tasks.push(tokio::spawn(services::sync_loop(
        Arc::clone(&sql),
        Arc::clone(&app.connections),
        stopping.clone(),
    )));
    tasks.push(tokio::spawn(housekeeping(
        Arc::clone(&sql),
        engine.clone(),
        Arc::clone(&app.connections),
        config.delivery_retention_days,
        options.housekeeping_every.unwrap_or(HOUSEKEEPING_EVERY),
        stopping.clone(),
    )));

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    // Answers are small and latency matters more than packet count: no Nagle delay.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            warn!(error = %e, "could not set TCP_NODELAY");
        }
    });
    let defaults = options.dashboard.clone().unwrap_or_default();
    let defaults_max_age = defaults.analytics_max_age;
    let connector = onboard::GatewayConnector::new(
        Arc::clone(&sql),
        Config {
            listen: addr,
            ..config.clone()
        },
        Arc::clone(&app.connections),
        links,
        import_wake,
    );
    let dashboard = loyalty_web::Dashboard::with_connector(
        Arc::clone(&sql),
        engine.clone(),
        loyalty_web::Settings {
            public_url: config.public_url.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
            webhooks_allow_loopback: config.webhooks_allow_loopback
                || defaults.webhooks_allow_loopback,
            // The embedder's own settings win; else the operator's rate.
            api_rate: if options.dashboard.is_some() {
                defaults.api_rate
            } else {
                loyalty_web::api::RateLimit {
                    per_second: config.api_rate,
                    burst: (config.api_rate * 2.0).max(1.0),
                }
            },
            signup: defaults
                .signup
                .or(config.signup.then_some(config.default_plan)),
            ..defaults
        },
        Some(Arc::new(connector)),
    );
    let hook_policy = options
        .hooks
        .clone()
        .unwrap_or_else(|| partner_hooks::HookPolicy {
            allow_loopback: config.webhooks_allow_loopback,
            ..Default::default()
        });
    let sender = partner_hooks::HookSender::new(
        Arc::clone(&sql),
        Arc::new(SystemClock),
        hook_policy,
        options
            .hook_resolver
            .clone()
            .unwrap_or_else(|| Arc::new(partner_hooks::SystemResolver)),
    )?;
    tasks.push(tokio::spawn(partner_hooks::run(
        sender,
        options.hooks_every.unwrap_or(Duration::from_secs(1)),
        stopping.clone(),
    )));
    tasks.push(tokio::spawn(analytics_loop(
        Arc::clone(&dashboard),
        defaults_max_age,
        stopping.clone(),
    )));
    let routes = server::router(app)
        .merge(loyalty_web::api::router(Arc::clone(&dashboard)))
        .merge(loyalty_web::router(dashboard))
        // The dashboard limits sign-ins per address: the peer's address on each request.
        .into_make_service_with_connect_info::<SocketAddr>();
    let mut rx = stopping.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, routes)
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|stop| *stop).await;
            })
            .await
    });
    info!(%addr, database = sql.redacted_url(), "gateway listening");
    Ok(Gateway {
        addr,
        store: sql,
        engine,
        shutdown,
        tasks,
        server,
    })
}

/// Waits `pause`; true when the gateway began stopping meanwhile.
async fn stopped_during(pause: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(pause) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}

/// Writes due rewards into the CRMs, every [`WRITE_BACK_EVERY`] and once at start.
async fn write_backs(
    engine: LoyaltyEngine,
    store: Arc<SqlStore>,
    connections: connections::At,
    policy: WriteBackPolicy,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match engine.create_cards(store.as_ref(), &connections).await {
            Ok(pass) if pass.created + pass.found + pass.failed > 0 => info!(
                created = pass.created,
                found = pass.found,
                failed = pass.failed,
                "people who joined through the bot, in the CRM"
            ),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "could not create clients in the CRM"),
        }
        match engine.write_back_due(&connections, &policy).await {
            Ok(pass) if pass.is_empty() => {}
            Ok(pass) => info!(
                issued = pass.issued,
                delivered = pass.delivered,
                failed = pass.failed,
                retried = pass.retried,
                needs_operator = pass.needs_operator,
                "wrote rewards into the CRM"
            ),
            Err(e) => warn!(error = %e, "could not write rewards into the CRM"),
        }
        if stopped_during(every, &mut stop).await {
            return;
        }
    }
}

/// Completes queued CRM events from the CRM and applies them: a pass starts when a webhook
/// queues one and every [`INBOX_EVERY`]. Passes overlap (up to [`INBOX_PASSES`]), so items
/// that arrive while a slow CRM call is under way are not held up by it; a claimed item is
/// leased to its pass, so no two passes take the same one. Stopping does not wait for a pass
/// in a CRM call: its items stay leased, and are tried again once the lease ends (a minute).
async fn inbox_worker(
    engine: LoyaltyEngine,
    store: Arc<SqlStore>,
    connections: Arc<connections::At>,
    wake: Arc<tokio::sync::Notify>,
    policy: InboxPolicy,
    mut stop: watch::Receiver<bool>,
) {
    let passes = Arc::new(tokio::sync::Semaphore::new(INBOX_PASSES));
    loop {
        if let Ok(slot) = Arc::clone(&passes).try_acquire_owned() {
            let (engine, store, connections, wake) = (
                engine.clone(),
                Arc::clone(&store),
                Arc::clone(&connections),
                Arc::clone(&wake),
            );
            tokio::spawn(async move {
                let result = inbox_pass(&engine, &store, &connections, &policy).await;
                drop(slot);
                match result {
                    Ok(pass) if pass.is_empty() => {}
                    Ok(pass) => {
                        info!(
                            applied = pass.applied,
                            retried = pass.retried,
                            dead = pass.dead,
                            "worked the CRM inbox"
                        );
                        // A full batch: there may be more waiting.
                        if pass.applied + pass.retried + pass.dead >= policy.batch as usize {
                            wake.notify_one();
                        }
                    }
                    Err(e) => warn!(error = %e, "could not work the CRM inbox"),
                }
            });
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(INBOX_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// One pass of the inbox worker: the claimed items' lease is renewed every third of it while
/// their tries are under way, so a slow CRM does not let another pass take them, and a killed
/// gateway's items are free again within one lease.
async fn inbox_pass(
    engine: &LoyaltyEngine,
    store: &Arc<SqlStore>,
    connections: &Arc<connections::At>,
    policy: &InboxPolicy,
) -> Result<loyalty_core::engine::InboxPass, loyalty_core::EngineError> {
    let items = engine.claim_inbox(store.as_ref(), policy).await?;
    if items.is_empty() {
        return Ok(Default::default());
    }
    let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
    tokio::select! {
        pass = engine.work_claimed(store.as_ref(), connections.as_ref(), policy, items) => pass,
        never = renew_inbox_lease(engine, store, &ids, policy.lease_ms) => match never {},
    }
}

/// A bot answering clients and staff over the gateway's store: exchanges through the
/// connections' reward setups, consent and reminders' buttons, desk visits.
fn wired_bot(engine: &LoyaltyEngine, sql: &Arc<SqlStore>, telegram: Telegram) -> ClientBot {
    ClientBot::new(engine.clone(), telegram)
        .with_exchange(
            Arc::new(connections::SqlTargets(Arc::clone(sql))),
            Arc::new(cli::random_code),
        )
        .with_reminders(sql.clone())
        .with_desk(sql.clone())
}

/// Keeps every salon's analytics fresh in the background, so the page reads kept figures: a
/// pass every quarter of their age, each salon computed again once past
/// half of it.
async fn analytics_loop(
    dashboard: Arc<loyalty_web::Dashboard>,
    max_age: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    let every = (max_age / 4).max(Duration::from_millis(250));
    loop {
        match dashboard.warm_analytics().await {
            Ok(0) => {}
            Ok(n) => info!(salons = n, "analytics computed ahead of their views"),
            Err(e) => warn!(error = %e, "analytics could not be computed ahead"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
    }
}
/// Renews the lease of `ids` every third of it, for as long as it is polled.
async fn renew_inbox_lease(
    engine: &LoyaltyEngine,
    store: &SqlStore,
    ids: &[i64],
    lease_ms: i64,
) -> std::convert::Infallible {
    let every = Duration::from_millis(u64::try_from(lease_ms / 3).unwrap_or(0).max(100));
    loop {
        tokio::time::sleep(every).await;
        let until = engine.now_ms().saturating_add(lease_ms);
        if let Err(e) = store.inbox_renew(ids, until).await {
            warn!(error = %e, "could not renew the lease of CRM inbox items");
        }
    }
}

async fn housekeeping(
    store: Arc<SqlStore>,
    engine: LoyaltyEngine,
    connections: Arc<Connections>,
    retention_days: u32,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let keep_ms = i64::from(retention_days) * 86_400_000;
    loop {
        // Before expiry: a lot that matured late and is past its date expires in this pass.
        match engine.mature_everywhere().await {
            Ok(pass) => {
                if pass.clients > 0 {
                    info!(
                        partners = pass.partners,
                        clients = pass.clients,
                        points = pass.points.value(),
                        "pending points past the refund window are spendable; their clients are told"
                    );
                }
                for (partner, error) in &pass.failed {
                    warn!(partner = partner.0, %error, "could not make pending points spendable");
                }
            }
            Err(e) => warn!(error = %e, "could not look for pending points due"),
        }
        match engine.expire_everywhere().await {
            Ok(pass) => {
                if pass.clients > 0 {
                    info!(
                        partners = pass.partners,
                        clients = pass.clients,
                        points = pass.points.value(),
                        "points past their date expired; their clients are told"
                    );
                }
                for (partner, error) in &pass.failed {
                    warn!(partner = partner.0, %error, "could not expire points");
                }
            }
            Err(e) => warn!(error = %e, "could not look for points past their date"),
        }
        match engine.grant_birthdays_everywhere().await {
            Ok(pass) => {
                if pass.granted > 0 {
                    info!(
                        granted = pass.granted,
                        "birthday points granted; their clients are told"
                    );
                }
                for (partner, error) in &pass.failed {
                    warn!(partner = partner.0, %error, "could not grant birthday points");
                }
            }
            Err(e) => warn!(error = %e, "could not look for birthdays"),
        }
        match engine.review_levels_everywhere().await {
            Ok(pass) => {
                if pass.reviewed > 0 {
                    info!(
                        reviewed = pass.reviewed,
                        fell = pass.fell,
                        "levels reviewed after their grace period; those who fell are told"
                    );
                }
                for (partner, error) in &pass.failed {
                    warn!(partner = partner.0, %error, "could not review a level");
                }
            }
            Err(e) => warn!(error = %e, "could not look for levels due a review"),
        }
        match engine.expire_codes().await {
            Ok(0) => {}
            Ok(n) => info!(codes = n, "expired unused codes; their points went back"),
            Err(e) => warn!(error = %e, "could not expire codes"),
        }
        match engine
            .close_spent_certificates(&connections.at(Priority::WriteBack))
            .await
        {
            Ok(check) if check.used > 0 || check.expired > 0 || check.unknown > 0 => info!(
                used = check.used,
                expired = check.expired,
                unknown = check.unknown,
                "checked CRM certificates: the spent ones are used, the unspent past their date expired"
            ),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "could not check CRM certificates"),
        }
        let cutoff = SystemClock.now_ms() - keep_ms;
        match store.prune_deliveries(cutoff).await {
            Ok(0) => {}
            Ok(n) => info!(rows = n, retention_days, "pruned old delivery history"),
            Err(e) => warn!(error = %e, "could not prune delivery history"),
        }
        // Answers kept for Idempotency-Key replays past their day.
        if let Err(e) = store.forget_api_requests(SystemClock.now_ms()).await {
            warn!(error = %e, "could not forget old partner API answers");
        }
        if stopped_during(every, &mut stop).await {
            return;
        }
    }
}

/// Structured logs on stderr; `RUST_LOG` (e.g. `info`, `warn,loyalty_gateway=debug`) filters.
pub fn init_logging() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .try_init();
}
