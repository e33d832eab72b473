//! The connections a webhook URL can name, each with its CRM adapter, cached briefly so a
//! delivery costs no extra query.

use loyalty_core::PartnerStore;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use crm_arnica::{ArnicaAdapter, ArnicaConfig};
use crm_beautypro::{BeautyProAdapter, BeautyProConfig};
use crm_http::ParseContext;
use crm_yclients::{Credentials, Flavor, RewardSetup, YclientsAdapter, YclientsConfig};
use loyalty_core::adapter::{
    ClientDraft, ClientPage, CrmCard, CrmClient, CrmNamed, CrmService, CrmStaff, IssuedReward,
    RecordPage, RewardRequest,
};
use loyalty_core::audit::Plan;
use loyalty_core::engine::AdapterSource;
use loyalty_core::quota::{CallGate, Priority};
use loyalty_core::redemption::Target;
use loyalty_core::{
    AdapterError, Capabilities, ConnectionId, CrmAdapter, CrmConnection, CrmEvent, CrmKind,
    PartnerId, Phone, Program, StoreError, VisitEvent, WebhookError,
};
use loyalty_store::{ConnectionSettings, SqlStore};

use crate::crms::{ArnicaLogin, BeautyProApp, SqlTokens};

use crate::config::Config;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::quota::{Scheduler, budget_of};

/// How long a looked-up connection is reused.
const TTL: Duration = Duration::from_secs(30);

/// A connection and its adapter.
pub struct Connected {
    pub connection: CrmConnection,
    pub adapter: Arc<dyn CrmAdapter>,
    /// The partner's plan when the connection was looked up (cached like the rest: a change
    /// takes effect within 30 s).
    pub plan: Plan,
}

/// REST bases that replace the CRMs' own (proxies, test servers).
#[derive(Debug, Clone, Default)]
pub struct ApiUrls {
    pub yclients: Option<String>,
    pub altegio: Option<String>,
}

/// Looks up connections by webhook secret or id, each with an adapter whose calls count
/// against the deployment's shared CRM budget at the priority of the work asking.
pub struct Connections {
    store: Arc<SqlStore>,
    http: reqwest::Client,
    scheduler: Arc<Scheduler>,
    /// This deployment's egress address, naming its budgets.
    egress: String,
    metrics: Arc<Metrics>,
    api_urls: ApiUrls,
    health: Arc<Health>,
    cache: RwLock<HashMap<Key, (Instant, Arc<Connected>)>>,
}

/// How a connection was looked up, and for which work.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Secret(String),
    Id(ConnectionId, Priority),
}

impl Connections {
    /// The connections of the configured deployment: one HTTP client and one YCLIENTS rate
    /// limit for all of them, the configured API bases, calls counted in `metrics`.
    pub fn new(
        store: Arc<SqlStore>,
        config: &Config,
        metrics: Arc<Metrics>,
    ) -> Result<Connections, AdapterError> {
        Ok(Connections {
            scheduler: Scheduler::per_crm(Arc::clone(&store)),
            store,
            http: crm_yclients::http_client()?,
            egress: config.egress.clone(),
            metrics,
            api_urls: ApiUrls {
                yclients: config.yclients_api_url.clone(),
                altegio: config.altegio_api_url.clone(),
            },
            health: Arc::default(),
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// What the connections' CRMs answered and when their webhooks came, for the health
    /// check.
    pub fn health(&self) -> Arc<Health> {
        Arc::clone(&self.health)
    }

    /// The connection this secret names; `None` for an unknown secret (not cached, so a new
    /// connection works at once).
    pub async fn by_secret(&self, secret: &str) -> Result<Option<Arc<Connected>>, StoreError> {
        let key = Key::Secret(secret.to_owned());
        if let Some(found) = self.cached(&key) {
            return Ok(Some(found));
        }
        let connection = self.store.connection_by_secret(secret).await?;
        self.remember(key, connection, Priority::Live).await
    }

    /// The connection with this id and its adapter for work of this priority, cached like
    /// [`Connections::by_secret`].
    pub async fn by_id(
        &self,
        id: ConnectionId,
        priority: Priority,
    ) -> Result<Option<Arc<Connected>>, StoreError> {
        let key = Key::Id(id, priority);
        if let Some(found) = self.cached(&key) {
            return Ok(Some(found));
        }
        let connection = self.store.connection(id).await?;
        self.remember(key, connection, priority).await
    }

    /// The name of this deployment's egress address (its budgets' names).
    pub fn egress(&self) -> &str {
        &self.egress
    }

    /// The adapters of every connection for work of this priority.
    pub fn at(self: &Arc<Self>, priority: Priority) -> At {
        At {
            connections: Arc::clone(self),
            priority,
        }
    }

    fn cached(&self, key: &Key) -> Option<Arc<Connected>> {
        let cache = self.cache.read().ok()?;
        let (at, found) = cache.get(key)?;
        (at.elapsed() < TTL).then(|| Arc::clone(found))
    }

    /// Builds the adapter of a connection just looked up and caches both.
    async fn remember(
        &self,
        key: Key,
        connection: Option<CrmConnection>,
        priority: Priority,
    ) -> Result<Option<Arc<Connected>>, StoreError> {
        let Some(connection) = connection else {
            return Ok(None);
        };
        let partner = self
            .store
            .partner(connection.partner_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("partner {}", connection.partner_id)))?;
        let adapter = self
            .adapter_for(&connection, &partner.program, priority)
            .await?;
        let found = Arc::new(Connected {
            connection,
            adapter,
            plan: partner.plan,
        });
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() > 10_000 {
                cache.retain(|_, (at, _)| at.elapsed() < TTL);
            }
            cache.insert(key, (Instant::now(), Arc::clone(&found)));
        }
        Ok(Some(found))
    }

    async fn adapter_for(
        &self,
        connection: &CrmConnection,
        program: &Program,
        priority: Priority,
    ) -> Result<Arc<dyn CrmAdapter>, StoreError> {
        let settings = self.store.connection_settings(connection.id).await?;
        let gate = || {
            self.scheduler.gate(
                budget_of(connection.kind, &self.egress),
                Some(connection.id),
                priority,
            )
        };
        let adapter: Arc<dyn CrmAdapter> = match connection.kind {
            CrmKind::Yclients | CrmKind::Altegio => Arc::new(self.metered(
                self.yclients(connection, program, settings, gate),
                connection,
            )),
            CrmKind::Arnica => {
                Arc::new(self.metered(self.arnica(connection, program, settings, gate), connection))
            }
            CrmKind::Beautypro => Arc::new(self.metered(
                self.beautypro(connection, program, settings, gate),
                connection,
            )),
            CrmKind::Dikidi => Arc::new(self.metered(
                self.dikidi(connection, program, settings, gate()),
                connection,
            )),
            other => Arc::new(NoAdapter(other)),
        };
        Ok(adapter)
    }

    fn metered<A: CrmAdapter>(&self, inner: A, connection: &CrmConnection) -> Metered<A> {
        Metered {
            inner,
            metrics: Arc::clone(&self.metrics),
            health: Arc::clone(&self.health),
            connection: connection.clone(),
        }
    }

    fn yclients(
        &self,
        connection: &CrmConnection,
        program: &Program,
        settings: Option<ConnectionSettings>,
        gate: impl FnOnce() -> Arc<dyn CallGate>,
    ) -> YclientsAdapter {
        let flavor = Flavor::of(connection.kind).unwrap_or(Flavor::YCLIENTS);
        let mut config = YclientsConfig::new(flavor, connection.company_id.clone());
        config.context = context(config.context, program, settings.as_ref());
        config.base_url = match connection.kind {
            CrmKind::Altegio => self.api_urls.altegio.clone(),
            _ => self.api_urls.yclients.clone(),
        };
        if let Some(s) = &settings {
            config.rewards = s
                .reward_setup
                .as_deref()
                .and_then(|json| read_setup(connection.id, json));
        }
        match settings.and_then(|s| s.partner_token.map(|p| (p, s.user_token))) {
            Some((partner_token, user_token)) => YclientsAdapter::with_api(
                config,
                self.http.clone(),
                gate(),
                Credentials {
                    partner_token,
                    user_token,
                    login: None,
                },
            ),
            None => YclientsAdapter::new(config),
        }
    }

    fn arnica(
        &self,
        connection: &CrmConnection,
        program: &Program,
        settings: Option<ConnectionSettings>,
        gate: impl FnOnce() -> Arc<dyn CallGate>,
    ) -> ArnicaAdapter {
        let mut config = ArnicaConfig::new(connection.company_id.clone());
        config.context = context(config.context, program, settings.as_ref());
        let login = settings.and_then(|s| s.crm_credentials).and_then(|json| {
            serde_json::from_str::<ArnicaLogin>(&json)
                .inspect_err(|e| {
                    tracing::warn!(connection = connection.id.0, error = %e,
                            "the connection's Arnica login does not read; webhooks only")
                })
                .ok()
        });
        let Some(login) = login else {
            return ArnicaAdapter::new(config);
        };
        if let Some(base) = login.base_url {
            config.base_url = base;
        }
        ArnicaAdapter::with_api(
            config,
            self.http.clone(),
            gate(),
            crm_arnica::Credentials {
                email: login.email,
                password: login.password,
            },
        )
        .with_tokens(Arc::new(SqlTokens {
            store: Arc::clone(&self.store),
            connection: connection.id,
        }))
    }
}

impl Connections {
    fn dikidi(
        &self,
        connection: &CrmConnection,
        program: &Program,
        settings: Option<ConnectionSettings>,
        gate: Arc<dyn CallGate>,
    ) -> crm_dikidi::DikidiAdapter {
        let mut config = crm_dikidi::DikidiConfig::new(connection.company_id.clone());
        config.currency = program.currency;
        let widget = settings
            .and_then(|s| s.crm_credentials)
            .and_then(|json| serde_json::from_str::<crate::crms::DikidiWidget>(&json).ok())
            .unwrap_or_default();
        if let Some(base) = widget.base_url {
            config.base_url = base;
        }
        crm_dikidi::DikidiAdapter::new(config, self.http.clone(), gate)
    }

    fn beautypro(
        &self,
        connection: &CrmConnection,
        program: &Program,
        settings: Option<ConnectionSettings>,
        gate: impl FnOnce() -> Arc<dyn CallGate>,
    ) -> BeautyProAdapter {
        let mut config = BeautyProConfig::new(connection.company_id.clone());
        config.context = context(config.context, program, settings.as_ref());
        let app = settings.and_then(|s| s.crm_credentials).and_then(|json| {
            serde_json::from_str::<BeautyProApp>(&json)
                .inspect_err(|e| {
                    tracing::warn!(connection = connection.id.0, error = %e,
                        "the connection's Beauty Pro application does not read; webhooks only")
                })
                .ok()
        });
        let Some(app) = app else {
            return BeautyProAdapter::new(config);
        };
        if let Some(url) = app.api_url {
            config.auth_base = url.clone();
            config.api_base = Some(url);
        }
        BeautyProAdapter::with_api(
            config,
            self.http.clone(),
            gate(),
            crm_beautypro::Credentials {
                application_id: app.application_id,
                application_secret: app.application_secret,
            },
        )
        .with_tokens(Arc::new(SqlTokens {
            store: Arc::clone(&self.store),
            connection: connection.id,
        }))
    }
}

/// What reading a connection's payloads needs: the program's currency and country, the
/// connection's offset from UTC and its own country when it has one.
fn context(
    default: ParseContext,
    program: &Program,
    settings: Option<&ConnectionSettings>,
) -> ParseContext {
    let mut ctx = ParseContext {
        currency: program.currency,
        country: program.country,
        ..default
    };
    if let Some(s) = settings {
        ctx.utc_offset_minutes = s.utc_offset_minutes;
        if let Some(country) = s.country {
            ctx.country = country;
        }
    }
    ctx
}

/// The connections' adapters for work of one priority: what the inbox worker (live) and the
/// write-back pass (write-back) ask for.
pub struct At {
    connections: Arc<Connections>,
    priority: Priority,
}

#[async_trait]
impl AdapterSource for At {
    async fn adapter(
        &self,
        connection: ConnectionId,
    ) -> Result<Option<Arc<dyn CrmAdapter>>, StoreError> {
        Ok(self
            .connections
            .by_id(connection, self.priority)
            .await?
            .map(|c| Arc::clone(&c.adapter)))
    }
}

/// Where the partner's rewards go ([`SqlStore::reward_target`]).
pub async fn reward_target(sql: &SqlStore, partner: PartnerId) -> Result<Target, StoreError> {
    sql.reward_target(partner).await
}

/// A stored reward setup; one that does not read (written by hand) means gateway codes.
fn read_setup(connection: ConnectionId, json: &str) -> Option<RewardSetup> {
    serde_json::from_str(json)
        .inspect_err(|e| {
            tracing::warn!(connection = connection.0, error = %e,
                "the connection's reward setup does not read; rewards use gateway codes")
        })
        .ok()
}

/// The bot's view of [`reward_target`].
pub struct SqlTargets(pub Arc<SqlStore>);

#[async_trait]
impl loyalty_telegram::RewardTargets for SqlTargets {
    async fn target(&self, partner: PartnerId) -> Result<Target, StoreError> {
        reward_target(&self.0, partner).await
    }
}

/// A CRM this gateway has no adapter for yet: every operation is `Unsupported`.
struct NoAdapter(CrmKind);

#[async_trait]
impl CrmAdapter for NoAdapter {
    fn kind(&self) -> CrmKind {
        self.0
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    fn parse_webhook(&self, _: Option<&str>, _: &[u8]) -> Result<Vec<CrmEvent>, WebhookError> {
        Err(WebhookError::Shape(format!(
            "this gateway cannot read {} webhooks yet",
            self.0
        )))
    }
}

/// The adapter with each API call counted and timed.
struct Metered<A> {
    inner: A,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    connection: CrmConnection,
}

impl<A: CrmAdapter> Metered<A> {
    async fn timed<T>(
        &self,
        operation: &str,
        call: impl std::future::Future<Output = Result<T, AdapterError>>,
    ) -> Result<T, AdapterError> {
        let started = Instant::now();
        let result = call.await;
        let label = match &result {
            Ok(_) => "ok",
            Err(AdapterError::RateLimited { .. }) => "rate_limited",
            Err(AdapterError::Transient(_)) => "transient",
            Err(AdapterError::Auth(_)) => "auth",
            Err(AdapterError::Forbidden(_)) => "forbidden",
            Err(AdapterError::NotFound(_)) => "not_found",
            Err(AdapterError::Validation(_)) => "validation",
            Err(AdapterError::Unsupported(_)) => "unsupported",
            Err(_) => "error",
        };
        self.metrics.crm_call(
            self.inner.kind().as_str(),
            operation,
            label,
            started.elapsed(),
        );
        self.health.crm_answered(&self.connection, &result);
        result
    }
}

#[async_trait]
impl<A: CrmAdapter> CrmAdapter for Metered<A> {
    fn kind(&self) -> CrmKind {
        self.inner.kind()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn parse_webhook(
        &self,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<CrmEvent>, WebhookError> {
        self.inner.parse_webhook(content_type, body)
    }

    async fn register_webhooks(&self, url: &str) -> Result<Vec<String>, AdapterError> {
        self.timed("register_webhooks", self.inner.register_webhooks(url))
            .await
    }

    /// Not metered: mostly the adapter's own state, and no answer that says anything of the
    /// key (the calls it makes are its own, metered or not by the CRM crate).
    async fn webhook_received(&self, body: &[u8]) -> Result<(), AdapterError> {
        self.inner.webhook_received(body).await
    }

    async fn find_client_by_phone(&self, phone: &Phone) -> Result<Option<CrmClient>, AdapterError> {
        self.timed(
            "find_client_by_phone",
            self.inner.find_client_by_phone(phone),
        )
        .await
    }

    async fn get_client(&self, external_id: &str) -> Result<CrmClient, AdapterError> {
        self.timed("get_client", self.inner.get_client(external_id))
            .await
    }

    async fn create_client(&self, draft: &ClientDraft) -> Result<CrmClient, AdapterError> {
        self.timed("create_client", self.inner.create_client(draft))
            .await
    }

    async fn update_client(
        &self,
        external_id: &str,
        draft: &ClientDraft,
    ) -> Result<CrmClient, AdapterError> {
        self.timed(
            "update_client",
            self.inner.update_client(external_id, draft),
        )
        .await
    }

    async fn list_services(&self) -> Result<Vec<CrmService>, AdapterError> {
        self.timed("list_services", self.inner.list_services())
            .await
    }

    async fn list_staff(&self) -> Result<Vec<CrmStaff>, AdapterError> {
        self.timed("list_staff", self.inner.list_staff()).await
    }

    async fn list_categories(&self) -> Result<Vec<CrmNamed>, AdapterError> {
        self.timed("list_categories", self.inner.list_categories())
            .await
    }

    async fn list_goods(&self, page: u32) -> Result<(Vec<CrmNamed>, Option<u32>), AdapterError> {
        self.timed("list_goods", self.inner.list_goods(page)).await
    }

    async fn get_record(&self, record_id: &str) -> Result<VisitEvent, AdapterError> {
        self.timed("get_record", self.inner.get_record(record_id))
            .await
    }

    async fn loyalty_paid(&self, visit: &VisitEvent, reference: &str) -> Result<i64, AdapterError> {
        self.timed("loyalty_paid", self.inner.loyalty_paid(visit, reference))
            .await
    }

    async fn records_changed_since(
        &self,
        since_ms: i64,
        page: u32,
    ) -> Result<RecordPage, AdapterError> {
        self.timed(
            "records_changed_since",
            self.inner.records_changed_since(since_ms, page),
        )
        .await
    }

    async fn records_between(
        &self,
        from_ms: i64,
        to_ms: i64,
        page: u32,
    ) -> Result<RecordPage, AdapterError> {
        self.timed(
            "records_between",
            self.inner.records_between(from_ms, to_ms, page),
        )
        .await
    }

    async fn list_clients(&self, page: u32) -> Result<ClientPage, AdapterError> {
        self.timed("list_clients", self.inner.list_clients(page))
            .await
    }

    async fn booking_link(&self) -> Result<String, AdapterError> {
        self.timed("booking_link", self.inner.booking_link()).await
    }

    async fn issue_certificate(&self, req: &RewardRequest) -> Result<IssuedReward, AdapterError> {
        self.timed("issue_certificate", self.inner.issue_certificate(req))
            .await
    }

    async fn find_certificate(
        &self,
        req: &RewardRequest,
    ) -> Result<Option<IssuedReward>, AdapterError> {
        self.timed("find_certificate", self.inner.find_certificate(req))
            .await
    }

    async fn find_card(&self, phone: &Phone) -> Result<Option<CrmCard>, AdapterError> {
        self.timed("find_card", self.inner.find_card(phone)).await
    }

    async fn issue_card(&self, phone: &Phone) -> Result<CrmCard, AdapterError> {
        self.timed("issue_card", self.inner.issue_card(phone)).await
    }

    async fn top_up_card(
        &self,
        card_id: &str,
        req: &RewardRequest,
    ) -> Result<CrmCard, AdapterError> {
        self.timed("top_up_card", self.inner.top_up_card(card_id, req))
            .await
    }
    async fn send_sms(&self, external_id: &str, text: &str) -> Result<(), AdapterError> {
        self.timed("send_sms", self.inner.send_sms(external_id, text))
            .await
    }
}
