//! # crm-beautypro
//!
//! The Loyalty Bridge adapter for **Beauty Pro** through the AI Helps API (`api.aihelps.com`;
//! Beauty Pro, Fitness Pro and Denta Pro share it).
//!
//! - Auth: our application's id and secret and the salon's database code → a 24-hour access
//!   token and a refresh token that rotate together ([`auth`]); access not granted yet is a
//!   clear `Forbidden`, not a loop. The tokens live in a [`crm_http::TokenStore`] so every
//!   gateway instance uses the newest pair.
//! - Data calls go to the database's own server (`server` in the token's answer); every GET
//!   names its `fields`; ids are GUIDs; a client is always found again by phone (ids change
//!   when cards are merged).
//! - A visit came when a sale linked to its appointment exists and is not cancelled; it paid
//!   Σ `sum`; certificates' sales and payments with certificates earn nothing ([`rows`]).
//! - Updates come by webhook per table; missed ones are replayed from the last update id
//!   (`/updates/webhooks/batch`): this CRM's poller ([`BeautyProClient::records_changed_since`]).
//! - Rewards: certificates created in the CRM and given to the client (find-before-create by
//!   the number the code is written as).
//! - Rate limit: 100 requests a second from one IP, 429 beyond; auth endpoints answer
//!   `BLOCKED` with `unblockAfter` (read as a rate limit).
//!
//! What is confirmed and what is assumed: `docs/crm/beautypro.md`.

mod api;
pub mod auth;
mod ops;
pub mod rows;
mod webhook;

use std::sync::Arc;

use async_trait::async_trait;
use crm_http::ParseContext;
use loyalty_core::adapter::{
    ClientDraft, ClientPage, CrmClient, CrmService, CrmStaff, IssuedReward, RecordPage,
    RewardRequest,
};
use loyalty_core::quota::CallGate;
use loyalty_core::{
    AdapterError, Capabilities, Country, CrmAdapter, CrmEvent, CrmKind, Currency, Phone,
    VisitEvent, WebhookError,
};

pub use api::{BeautyProClient, Clock, Credentials, server_base};
pub use ops::{TABLES, certificate_number};
pub use webhook::{Update, parse as parse_updates};

/// Where tokens are asked for: server 1, as the docs advise.
pub const AUTH_BASE: &str = "https://api.aihelps.com/v1";

/// One salon database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeautyProConfig {
    /// The salon's database code (six digits): the connection's company id.
    pub database_code: String,
    /// The auth endpoints' root.
    pub auth_base: String,
    /// A fixed root for data calls (a test server, a proxy); `None`: the database's server.
    pub api_base: Option<String>,
    pub context: ParseContext,
}

impl BeautyProConfig {
    /// A database in roubles, in Russia; the API's times are UTC.
    pub fn new(database_code: impl Into<String>) -> BeautyProConfig {
        BeautyProConfig {
            database_code: database_code.into(),
            auth_base: AUTH_BASE.to_owned(),
            api_base: None,
            context: ParseContext {
                currency: Currency::Rub,
                utc_offset_minutes: 0,
                country: Country::RU,
            },
        }
    }
}

/// The adapter for one salon database.
#[derive(Debug, Clone)]
pub struct BeautyProAdapter {
    config: BeautyProConfig,
    api: Option<BeautyProClient>,
}

impl BeautyProAdapter {
    /// Webhook parsing only; API operations answer [`AdapterError::Auth`].
    pub fn new(config: BeautyProConfig) -> BeautyProAdapter {
        BeautyProAdapter { config, api: None }
    }

    pub fn with_api(
        config: BeautyProConfig,
        http: reqwest::Client,
        gate: Arc<dyn CallGate>,
        credentials: Credentials,
    ) -> BeautyProAdapter {
        let api = BeautyProClient::new(http, gate, &config, credentials);
        BeautyProAdapter {
            config,
            api: Some(api),
        }
    }

    /// Keeps the tokens and the replay's cursor in `tokens`, shared by every instance.
    pub fn with_tokens(mut self, tokens: Arc<dyn crm_http::TokenStore>) -> BeautyProAdapter {
        self.api = self.api.map(|api| api.with_tokens(tokens));
        self
    }

    pub fn with_transport(mut self, transport: crm_http::Transport) -> BeautyProAdapter {
        self.api = self.api.map(|api| api.with_transport(transport));
        self
    }

    pub fn with_clock(mut self, clock: Clock) -> BeautyProAdapter {
        self.api = self.api.map(|api| api.with_clock(clock));
        self
    }

    pub fn config(&self) -> &BeautyProConfig {
        &self.config
    }

    pub fn api(&self) -> Result<&BeautyProClient, AdapterError> {
        self.api.as_ref().ok_or_else(|| {
            AdapterError::Auth(
                "the connection has no Beauty Pro application id, secret and database code".into(),
            )
        })
    }
}

#[async_trait]
impl CrmAdapter for BeautyProAdapter {
    fn kind(&self) -> CrmKind {
        CrmKind::Beautypro
    }

    /// Webhooks always; with the application's credentials, the replay, client writes and
    /// certificates.
    fn capabilities(&self) -> Capabilities {
        let api = self.api.is_some();
        Capabilities {
            webhooks: true,
            poll_records: api,
            records: api,
            client_write: api,
            certificates: api,
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
        Ok(
            webhook::parse(&self.config.context, &self.config.database_code, body)?
                .into_iter()
                .map(|u| u.event)
                .collect(),
        )
    }

    async fn webhook_received(&self, body: &[u8]) -> Result<(), AdapterError> {
        match &self.api {
            Some(api) => api.webhook_received(body).await,
            None => Ok(()),
        }
    }

    async fn register_webhooks(&self, url: &str) -> Result<Vec<String>, AdapterError> {
        self.api()?.register_webhooks(url).await
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

    async fn find_certificate(
        &self,
        req: &RewardRequest,
    ) -> Result<Option<IssuedReward>, AdapterError> {
        self.api()?.find_certificate(req).await
    }

    async fn issue_certificate(&self, req: &RewardRequest) -> Result<IssuedReward, AdapterError> {
        self.api()?.issue_certificate(req).await
    }
}
