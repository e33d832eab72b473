//! The salon's dashboard: server-rendered pages (askama, checked at compile time), htmx for
//! the parts that update in place, every form usable without JavaScript.
//!
//! [`router`] is mounted by the gateway's `serve` beside its webhooks, on the same listener. An
//! embedder mounts it the same way over its own [`SqlStore`] and [`LoyaltyEngine`].
//!
//! Boundaries (docs/ARCHITECTURE.md):
//! - every route takes the salon from the session ([`session::Staff`]), never from the URL:
//!   another salon's ids are answered 404;
//! - every request that changes something passes the origin check ([`csrf`]) and its role's
//!   check, and its change is written to the audit log by the engine acting as the person;
//! - sessions and one-time links are random tokens whose SHA-256 alone is stored.

pub mod api;
mod assets;
mod csrf;
mod error;
mod i18n;
mod limit;
pub mod onboard;
mod pages;
pub mod password;
mod session;
mod signin;
mod svg;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use loyalty_core::{LoyaltyEngine, PartnerId};
use loyalty_store::SqlStore;

pub use error::WebError;
pub use i18n::Lang;
pub use limit::Limits;
pub use session::{SESSION_COOKIE, Staff, new_token, token_hash};
pub use signin::BotSignIn;

/// How the dashboard runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The address people open (`https://loyalty.example.com`): cookies are `Secure` under
    /// https, and its origin is accepted by the origin check.
    pub public_url: Option<String>,
    /// How long a session lasts from sign-in.
    pub session_ttl: Duration,
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// Failed sign-ins allowed per account and per address.
    pub login_limits: Limits,
    /// Reverse proxies whose `X-Forwarded-For` names the address sign-ins are counted by.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The analytics' heavy figures are kept this long before a view computes them again
    /// (the page says when they were computed, and "Refresh" computes them now).
    pub analytics_max_age: Duration,
    /// Whether anyone may create a salon at `/signup`, and on which plan (`None`: closed —
    /// the operator adds salons and owners).
    pub signup: Option<loyalty_core::audit::Plan>,
    /// Requests per partner-API key.
    pub api_rate: api::RateLimit,
    /// Partners' webhook endpoints may be on loopback (local receivers, tests); private and
    /// link-local addresses stay refused.
    pub webhooks_allow_loopback: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            public_url: None,
            session_ttl: Duration::from_secs(14 * 24 * 3600),
            idle_timeout: Duration::from_secs(24 * 3600),
            login_limits: Limits::default(),
            trusted_proxies: Vec::new(),
            analytics_max_age: Duration::from_secs(10 * 60),
            signup: None,
            api_rate: api::RateLimit::default(),
            webhooks_allow_loopback: false,
        }
    }
}

impl Settings {
    pub(crate) fn secure_cookies(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }
}

/// What the pages need: the store, the engine, the settings and the sign-in limiter.
pub struct Dashboard {
    pub(crate) store: Arc<SqlStore>,
    pub(crate) engine: LoyaltyEngine,
    pub(crate) settings: Settings,
    pub(crate) limiter: limit::LoginLimiter,
    /// The way to the CRMs onboarding uses; without one the setup pages are 404.
    pub(crate) connector: Option<Arc<dyn onboard::Connector>>,
    /// The partner API's keys' request buckets.
    pub(crate) api_buckets: api::Buckets,
    /// Each salon's desk connection for pushed visits, kept 30 s (as the webhook path keeps
    /// its connections): a CRM connected meanwhile refuses pushes within that time.
    desks: std::sync::Mutex<
        std::collections::HashMap<PartnerId, (loyalty_core::CrmConnection, std::time::Instant)>,
    >,
}

impl Dashboard {
    pub fn new(store: Arc<SqlStore>, engine: LoyaltyEngine, settings: Settings) -> Arc<Dashboard> {
        Dashboard::with_connector(store, engine, settings, None)
    }

    /// The dashboard with onboarding: `connector` reaches the CRMs.
    pub fn with_connector(
        store: Arc<SqlStore>,
        engine: LoyaltyEngine,
        settings: Settings,
        connector: Option<Arc<dyn onboard::Connector>>,
    ) -> Arc<Dashboard> {
        let limiter = limit::LoginLimiter::new(settings.login_limits);
        let api_buckets = api::Buckets::new(settings.api_rate);
        Arc::new(Dashboard {
            api_buckets,
            desks: Default::default(),
            store,
            engine,
            settings,
            limiter,
            connector,
        })
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.engine.now_ms()
    }

    /// The salon's desk connection for pushed visits ([`LoyaltyEngine::desk`], refused where a
    /// CRM reports visits), kept 30 s.
    pub(crate) async fn desk_of(
        &self,
        partner: PartnerId,
    ) -> Result<loyalty_core::CrmConnection, loyalty_core::EngineError> {
        const KEPT: std::time::Duration = std::time::Duration::from_secs(30);
        let kept = self
            .desks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&partner)
            .filter(|(_, at)| at.elapsed() < KEPT)
            .map(|(c, _)| c.clone());
        if let Some(conn) = kept {
            return Ok(conn);
        }
        let conn = self.engine.desk(partner, false).await?;
        self.desks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(partner, (conn.clone(), std::time::Instant::now()));
        Ok(conn)
    }

    /// Keeps the analytics' heavy figures of every salon with dashboard users fresh, so page
    /// views read kept figures (`serve` runs it every quarter of `analytics_max_age`); how
    /// many salons' figures were computed.
    pub async fn warm_analytics(&self) -> Result<usize, WebError> {
        use loyalty_core::PartnerStore;
        use loyalty_core::access::AccessStore;
        let mut warmed = 0;
        for id in self.store.partner_ids().await? {
            if self.store.users_of(id).await?.is_empty() {
                continue;
            }
            let Some(partner) = PartnerStore::partner(self.store.as_ref(), id).await? else {
                continue;
            };
            if pages::analytics::warm(self, &partner).await? {
                warmed += 1;
            }
        }
        Ok(warmed)
    }
}

/// The dashboard's routes. Requests that change something pass the origin check; errors are
/// rendered as pages in the reader's language.
pub fn router(dashboard: Arc<Dashboard>) -> Router {
    use pages::{
        analytics, analytics_csv, api_keys, audit, clients, desk, health, home, login, program,
        reminders, rewards, setup, team,
    };
    let pages = Router::new()
        .route("/", get(home::page))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route(
            "/login/tg/{token}",
            get(signin::confirm).post(signin::use_link),
        )
        .route("/lang/{lang}", post(login::switch_lang))
        .route(
            "/invite/{token}",
            get(team::invite_form).post(team::invite_accept),
        )
        .route("/clients", get(clients::list))
        .route("/clients/export.csv", get(clients::export))
        .route("/clients/{id}", get(clients::show))
        .route("/clients/{id}/points", post(clients::points))
        .route("/clients/{id}/visits/cancel", post(clients::cancel_visit))
        .route("/desk", get(desk::page))
        .route("/desk/use", post(desk::use_code))
        .route("/desk/visit", post(desk::visit))
        .route("/analytics", get(analytics::page))
        .route("/analytics/{file}", get(analytics_csv::csv))
        .route("/analytics/refresh", post(analytics::refresh))
        .route("/analytics/model", post(analytics::build_model))
        .route("/health", get(health::page))
        .route("/program", get(program::page))
        .route("/program/settings", post(program::settings))
        .route("/program/json", post(program::whole))
        .route("/reminders", get(reminders::page))
        .route("/reminders/settings", post(reminders::settings))
        .route("/reminders/preview", post(reminders::preview))
        .route("/rewards", get(rewards::page))
        .route("/rewards/add", post(rewards::add))
        .route("/rewards/remove", post(rewards::remove))
        .route("/team", get(team::page))
        .route("/team/invite", post(team::invite))
        .route("/team/remove", post(team::remove))
        .route("/audit", get(audit::page))
        .route("/api-keys", get(api_keys::page))
        .route("/api-keys/add", post(api_keys::add))
        .route("/api-keys/revoke", post(api_keys::revoke))
        .route("/signup", get(setup::signup_form).post(setup::signup))
        .route("/setup", get(setup::page))
        .route("/setup/connect", post(setup::connect))
        .route("/setup/{id}", get(setup::connection))
        .route("/setup/{id}/check", post(setup::check))
        .route("/setup/{id}/webhooks", post(setup::webhooks))
        .route("/setup/{id}/status", get(setup::live))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&dashboard),
            csrf::check,
        ))
        .layer(axum::middleware::from_fn(error::render))
        .with_state(dashboard);
    pages.route("/assets/{name}", get(assets::serve))
}
