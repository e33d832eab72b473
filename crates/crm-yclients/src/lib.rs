//! # crm-yclients
//!
//! The Loyalty Bridge adapter for **YCLIENTS** and **Altegio**, its international edition: one
//! platform, one code path, two [`Flavor`]s (base URL and `Accept` header differ; paths, fields
//! and webhooks are the same).
//!
//! [`parse_webhook`] turns deliveries into events; [`YclientsClient`] calls the REST API through
//! a tower stack (retry, a [`loyalty_core::quota::CallGate`] such as the gateway's shared budget
//! or a [`RateLimiter`], timeout). What the vendors document and
//! what is only assumed is in `docs/crm/yclients.md`.

mod api;
mod limit;
mod ops;
mod rewards;
mod webhook;

use std::sync::Arc;

use loyalty_core::adapter::{
    ClientDraft, ClientPage, CrmCard, CrmClient, CrmNamed, CrmService, CrmStaff, IssuedReward,
    Operation, RecordPage, RewardRequest,
};
use loyalty_core::quota::CallGate;
use loyalty_core::{
    AdapterError, Capabilities, CrmAdapter, CrmEvent, CrmKind, Currency, Phone, VisitEvent,
    WebhookError,
};

pub use api::{Credentials, YclientsClient};
pub use crm_http::{Transport, http_client, lenient};
pub use limit::RateLimiter;
pub use ops::{
    Bookform, CardType, Certificate, CertificateType, Company, Good, LoyaltyCard, ServiceCategory,
};
pub use rewards::RewardSetup;
pub use webhook::{ParseContext, parse as parse_webhook};

/// Which edition of the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flavor {
    pub kind: CrmKind,
    /// REST base, without a trailing slash.
    pub base_url: &'static str,
    /// The `Accept` header that selects the v2 response envelope.
    pub accept: &'static str,
    /// The currency most of its companies use, when the company's is not known yet.
    pub default_currency: Currency,
}

impl Flavor {
    pub const YCLIENTS: Flavor = Flavor {
        kind: CrmKind::Yclients,
        base_url: "https://api.yclients.com/api/v1",
        accept: "application/vnd.yclients.v2+json",
        default_currency: Currency::Rub,
    };

    pub const ALTEGIO: Flavor = Flavor {
        kind: CrmKind::Altegio,
        base_url: "https://api.alteg.io/api/v1",
        accept: "application/vnd.api.v2+json",
        default_currency: Currency::Usd,
    };

    /// The flavor of a CRM kind, if it is this platform.
    pub fn of(kind: CrmKind) -> Option<Flavor> {
        match kind {
            CrmKind::Yclients => Some(Flavor::YCLIENTS),
            CrmKind::Altegio => Some(Flavor::ALTEGIO),
            _ => None,
        }
    }
}

/// One connected company (location).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YclientsConfig {
    pub flavor: Flavor,
    pub company_id: String,
    pub context: ParseContext,
    /// Another REST base than the flavor's (a test server, a proxy).
    pub base_url: Option<String>,
    /// How rewards are written into the CRM; `None`: they are not (the gateway's own codes).
    pub rewards: Option<RewardSetup>,
}

impl YclientsConfig {
    /// A company of the given flavor in its default currency, timestamps without an offset read
    /// as UTC+3 (Moscow) on YCLIENTS and UTC on Altegio until the company's zone is known, and
    /// phones read as Russian ones until the company's country is set.
    pub fn new(flavor: Flavor, company_id: impl Into<String>) -> YclientsConfig {
        let utc_offset_minutes = if flavor.kind == CrmKind::Yclients {
            180
        } else {
            0
        };
        YclientsConfig {
            flavor,
            company_id: company_id.into(),
            context: ParseContext {
                currency: flavor.default_currency,
                utc_offset_minutes,
                country: loyalty_core::Country::RU,
            },
            base_url: None,
            rewards: None,
        }
    }
}

/// The adapter for one company.
#[derive(Debug, Clone)]
pub struct YclientsAdapter {
    config: YclientsConfig,
    api: Option<YclientsClient>,
}

impl YclientsAdapter {
    /// Webhook parsing only; API operations answer [`AdapterError::Auth`].
    pub fn new(config: YclientsConfig) -> YclientsAdapter {
        YclientsAdapter { config, api: None }
    }

    /// Webhooks and the API, through the process's HTTP client and a gate that paces the
    /// calls (a shared budget, or a [`RateLimiter`]).
    pub fn with_api(
        config: YclientsConfig,
        http: reqwest::Client,
        gate: Arc<dyn CallGate>,
        credentials: Credentials,
    ) -> YclientsAdapter {
        let api = YclientsClient::new(http, gate, &config, credentials);
        YclientsAdapter {
            config,
            api: Some(api),
        }
    }

    /// Other retry and timeout settings for the API calls.
    pub fn with_transport(mut self, transport: Transport) -> YclientsAdapter {
        self.api = self.api.map(|api| api.with_transport(transport));
        self
    }

    pub fn config(&self) -> &YclientsConfig {
        &self.config
    }

    pub fn api(&self) -> Result<&YclientsClient, AdapterError> {
        self.api
            .as_ref()
            .ok_or_else(|| AdapterError::Auth("this connection has no API credentials".into()))
    }

    /// The chain and card type of a loyalty-card setup; without one the card operations are
    /// not this connection's (`Unsupported`, as its capabilities say).
    fn card_setup(&self, op: Operation) -> Result<(&str, &str), AdapterError> {
        match &self.config.rewards {
            Some(RewardSetup::LoyaltyCard {
                chain_id,
                card_type_id,
            }) => Ok((chain_id, card_type_id)),
            _ => Err(AdapterError::Unsupported(op)),
        }
    }

    /// The good and storage of a certificate setup; without one the certificate operations
    /// are not this connection's.
    fn certificate_setup(&self, op: Operation) -> Result<(&str, &str), AdapterError> {
        match &self.config.rewards {
            Some(RewardSetup::CrmCertificate {
                good_id,
                storage_id,
            }) => Ok((good_id, storage_id)),
            _ => Err(AdapterError::Unsupported(op)),
        }
    }
}

use crm_http::is_json;

#[async_trait::async_trait]
impl CrmAdapter for YclientsAdapter {
    fn kind(&self) -> CrmKind {
        self.config.flavor.kind
    }

    fn capabilities(&self) -> Capabilities {
        let api = self.api.is_some();
        Capabilities {
            webhooks: true,
            poll_records: api,
            records: api,
            client_write: api,
            loyalty_cards: api
                && matches!(self.config.rewards, Some(RewardSetup::LoyaltyCard { .. })),
            certificates: api
                && matches!(
                    self.config.rewards,
                    Some(RewardSetup::CrmCertificate { .. })
                ),
            sms: api,
            ..Capabilities::default()
        }
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

    async fn get_record(&self, record_id: &str) -> Result<VisitEvent, AdapterError> {
        self.api()?.get_record(record_id).await
    }

    async fn send_sms(&self, external_id: &str, text: &str) -> Result<(), AdapterError> {
        self.api()?.send_sms(external_id, text).await
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

    /// Without API credentials the connection cannot ask, and says so (`Unsupported`): the
    /// engine then accrues on the whole bill.
    async fn loyalty_paid(&self, visit: &VisitEvent, reference: &str) -> Result<i64, AdapterError> {
        let Some(api) = &self.api else {
            return Err(AdapterError::Unsupported(Operation::LoyaltyPaid));
        };
        api.loyalty_paid(&visit.record_id, reference).await
    }

    async fn list_services(&self) -> Result<Vec<CrmService>, AdapterError> {
        self.api()?.list_services().await
    }

    async fn list_staff(&self) -> Result<Vec<CrmStaff>, AdapterError> {
        self.api()?.list_staff().await
    }

    async fn list_categories(&self) -> Result<Vec<CrmNamed>, AdapterError> {
        Ok(self
            .api()?
            .service_categories()
            .await?
            .into_iter()
            .map(|c| CrmNamed {
                external_id: c.id,
                name: c.title,
            })
            .collect())
    }

    async fn list_goods(&self, page: u32) -> Result<(Vec<CrmNamed>, Option<u32>), AdapterError> {
        let api = self.api()?;
        let goods = api.goods(page).await?;
        let next = (goods.len() >= api.page_size() as usize).then_some(page.max(1) + 1);
        Ok((
            goods
                .into_iter()
                .map(|g| CrmNamed {
                    external_id: g.id,
                    name: g.title,
                })
                .collect(),
            next,
        ))
    }

    async fn booking_link(&self) -> Result<String, AdapterError> {
        self.api()?.booking_link().await
    }

    async fn register_webhooks(&self, url: &str) -> Result<Vec<String>, AdapterError> {
        self.api()?.register_webhooks(url).await
    }

    async fn find_certificate(
        &self,
        req: &RewardRequest,
    ) -> Result<Option<IssuedReward>, AdapterError> {
        self.certificate_setup(Operation::FindCertificate)?;
        Ok(self
            .api()?
            .find_certificate_with_code(req)
            .await?
            .map(|c| IssuedReward {
                spent: c
                    .default_balance_minor
                    .is_some_and(|full| c.balance_minor < full),
                external_id: c.id,
                code: c.code,
            }))
    }

    async fn issue_certificate(&self, req: &RewardRequest) -> Result<IssuedReward, AdapterError> {
        let (good_id, storage_id) = self.certificate_setup(Operation::IssueCertificate)?;
        let now_ms = loyalty_core::Clock::now_ms(&loyalty_core::SystemClock);
        self.api()?
            .sell_certificate(req, good_id, storage_id, now_ms)
            .await
    }

    async fn find_card(&self, phone: &Phone) -> Result<Option<CrmCard>, AdapterError> {
        let (chain, card_type) = self.card_setup(Operation::FindCard)?;
        self.api()?.find_card_of_type(phone, chain, card_type).await
    }

    async fn issue_card(&self, phone: &Phone) -> Result<CrmCard, AdapterError> {
        let (_, card_type) = self.card_setup(Operation::IssueCard)?;
        self.api()?.issue_card_of_type(phone, card_type).await
    }

    async fn top_up_card(
        &self,
        card_id: &str,
        req: &RewardRequest,
    ) -> Result<CrmCard, AdapterError> {
        self.card_setup(Operation::TopUpCard)?;
        self.api()?.top_up(card_id, req).await
    }

    fn parse_webhook(
        &self,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<CrmEvent>, WebhookError> {
        if !is_json(content_type) {
            return Err(WebhookError::ContentType(
                content_type.unwrap_or_default().to_owned(),
            ));
        }
        parse_webhook(&self.config.context, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavors_differ_only_in_base_and_accept() {
        assert_eq!(Flavor::of(CrmKind::Altegio), Some(Flavor::ALTEGIO));
        assert_eq!(Flavor::of(CrmKind::Arnica), None);
        assert_eq!(Flavor::YCLIENTS.accept, "application/vnd.yclients.v2+json");
        assert_eq!(Flavor::ALTEGIO.accept, "application/vnd.api.v2+json");
    }
}
