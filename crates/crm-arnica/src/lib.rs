//! # crm-arnica
//!
//! The Loyalty Bridge adapter for **Arnica**, one brand of the SQNS platform (beauty and
//! medical clinics), through its "CRM Exchange API" v2.
//!
//! - Auth: the integrator's e-mail and password → a JWT that does not expire (SQNS support
//!   enables the API for that login); obtained again once on a 401.
//! - Visits: webhooks (sent once, unsigned, in no order — [`parse_webhook`]) and, for what they
//!   miss, the poller: `GET /api/v2/visit?modificate=N` (changed within the last N minutes, at
//!   most 1,440), a date window past that, with a caveat. Completed = `attendance == 1` and not
//!   deleted; paid = Σ `paySum` of the services and goods, exact.
//! - Clients by phone (`+7(777)777-77-77` on the way out, any form on the way in), by id, create
//!   and update; services; employees (fired and deleted left out).
//! - Rewards: the API has no write path for certificates, discounts or promo codes, so the
//!   capabilities declare none and the engine issues the gateway's own codes.
//! - Rate limit: 15 requests a second and 900 a minute; over it Arnica answers **444**, read as
//!   "rate limited" (and 429 too).
//!
//! What is confirmed and what is assumed: `docs/crm/arnica.md`.

mod api;
mod visit;
mod webhook;

use std::sync::Arc;

use async_trait::async_trait;
use loyalty_core::adapter::{ClientDraft, ClientPage, CrmClient, CrmService, CrmStaff, RecordPage};
use loyalty_core::quota::CallGate;
use loyalty_core::{
    AdapterError, Capabilities, Country, CrmAdapter, CrmEvent, CrmKind, Currency, Phone,
    VisitEvent, WebhookError,
};

pub use api::{ArnicaClient, Clock, Credentials, MAX_MODIFICATE_MINUTES, transport};
pub use visit::{ParseContext, arnica_phone};
pub use webhook::parse as parse_webhook;

/// The base URL SQNS support named as "the production base URL, the same for all
/// organisations" (asked for a `denta` account; confirm it for a beauty one).
pub const DEFAULT_BASE_URL: &str = "https://crmexchange.1denta.ru";

/// One connected organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArnicaConfig {
    /// The organisation's id (`orgId` in webhooks and in the login's answer).
    pub org_id: String,
    /// The API's base, without a trailing slash.
    pub base_url: String,
    pub context: ParseContext,
}

impl ArnicaConfig {
    /// An organisation in roubles, on Moscow time, in Russia, at [`DEFAULT_BASE_URL`].
    pub fn new(org_id: impl Into<String>) -> ArnicaConfig {
        ArnicaConfig {
            org_id: org_id.into(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            context: ParseContext {
                currency: Currency::Rub,
                utc_offset_minutes: 180,
                country: Country::RU,
            },
        }
    }
}

/// The adapter for one organisation.
#[derive(Debug, Clone)]
pub struct ArnicaAdapter {
    config: ArnicaConfig,
    api: Option<ArnicaClient>,
}

impl ArnicaAdapter {
    /// Webhook parsing only; API operations answer [`AdapterError::Auth`].
    pub fn new(config: ArnicaConfig) -> ArnicaAdapter {
        ArnicaAdapter { config, api: None }
    }

    /// Webhooks and the API, through the process's HTTP client and a gate pacing the calls.
    pub fn with_api(
        config: ArnicaConfig,
        http: reqwest::Client,
        gate: Arc<dyn CallGate>,
        credentials: Credentials,
    ) -> ArnicaAdapter {
        let api = ArnicaClient::new(http, gate, &config, credentials);
        ArnicaAdapter {
            config,
            api: Some(api),
        }
    }

    /// Other retry and timeout settings for the API calls.
    pub fn with_transport(mut self, transport: crm_http::Transport) -> ArnicaAdapter {
        self.api = self.api.map(|api| api.with_transport(transport));
        self
    }

    /// Keeps the JWT in `tokens` ([`ArnicaClient::with_tokens`]).
    pub fn with_tokens(mut self, tokens: Arc<dyn crm_http::TokenStore>) -> ArnicaAdapter {
        self.api = self.api.map(|api| api.with_tokens(tokens));
        self
    }

    /// Another clock for `modificate` (tests).
    pub fn with_clock(mut self, clock: Clock) -> ArnicaAdapter {
        self.api = self.api.map(|api| api.with_clock(clock));
        self
    }

    pub fn config(&self) -> &ArnicaConfig {
        &self.config
    }

    /// The API client, or an error when the connection has no login.
    pub fn api(&self) -> Result<&ArnicaClient, AdapterError> {
        self.api.as_ref().ok_or_else(|| {
            AdapterError::Auth("the connection has no Arnica login (e-mail and password)".into())
        })
    }
}

#[async_trait]
impl CrmAdapter for ArnicaAdapter {
    fn kind(&self) -> CrmKind {
        CrmKind::Arnica
    }

    /// Webhooks always; with a login, polling and client writes. No certificates, promo codes
    /// or cards: the API cannot write them.
    fn capabilities(&self) -> Capabilities {
        let api = self.api.is_some();
        Capabilities {
            webhooks: true,
            poll_records: api,
            records: api,
            client_write: api,
            ..Capabilities::default()
        }
    }

    fn parse_webhook(
        &self,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<CrmEvent>, WebhookError> {
        if !crm_http::is_json(content_type) {
            return Err(WebhookError::ContentType(
                content_type.unwrap_or_default().to_owned(),
            ));
        }
        webhook::parse(&self.config.context, body)
    }

    async fn find_client_by_phone(&self, phone: &Phone) -> Result<Option<CrmClient>, AdapterError> {
        self.api()?.find_client_by_phone(phone).await
    }

    async fn get_client(&self, external_id: &str) -> Result<CrmClient, AdapterError> {
        self.api()?.get_client(external_id).await
    }

    async fn create_client(&self, draft: &ClientDraft) -> Result<CrmClient, AdapterError> {
        self.api()?.create_client(draft).await
    }

    async fn update_client(
        &self,
        external_id: &str,
        draft: &ClientDraft,
    ) -> Result<CrmClient, AdapterError> {
        self.api()?.update_client(external_id, draft).await
    }

    async fn list_services(&self) -> Result<Vec<CrmService>, AdapterError> {
        self.api()?.list_services().await
    }

    async fn list_staff(&self) -> Result<Vec<CrmStaff>, AdapterError> {
        self.api()?.list_staff().await
    }

    async fn register_webhooks(&self, url: &str) -> Result<Vec<String>, AdapterError> {
        self.api()?.register_webhooks(url).await
    }

    async fn get_record(&self, record_id: &str) -> Result<VisitEvent, AdapterError> {
        self.api()?.get_record(record_id).await
    }

    async fn records_changed_since(
        &self,
        since_ms: i64,
        page: u32,
    ) -> Result<RecordPage, AdapterError> {
        self.api()?.records_changed_since(since_ms, page).await
    }

    async fn records_between(
        &self,
        from_ms: i64,
        to_ms: i64,
        page: u32,
    ) -> Result<RecordPage, AdapterError> {
        self.api()?.records_between(from_ms, to_ms, page).await
    }

    async fn list_clients(&self, page: u32) -> Result<ClientPage, AdapterError> {
        self.api()?.list_clients(page).await
    }
}
