//! The contract every CRM crate implements.
//!
//! The gateway holds one `Arc<dyn CrmAdapter>` per connection. What a CRM can do is stated by
//! [`Capabilities`]; an operation the CRM cannot do answers [`AdapterError::Unsupported`], so the
//! engine can fall back to "staff applies it by hand" instead of guessing.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::event::{CrmEvent, VisitEvent};
use crate::model::CrmKind;
use crate::money::Money;
use crate::phone::Phone;

/// What one CRM integration can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capabilities {
    /// The CRM pushes webhooks; otherwise the poller is the only source of events.
    pub webhooks: bool,
    /// Records changed since a cursor can be listed (reconciliation and polling).
    pub poll_records: bool,
    /// A record can be read by id and a client found by phone (the CRM's API reaches its
    /// journal and client base). DIKIDI's public widget does neither.
    #[serde(default)]
    pub records: bool,
    /// Clients can be created and updated through the API.
    pub client_write: bool,
    /// Money certificates can be issued in the CRM.
    pub certificates: bool,
    /// Promo codes can be issued in the CRM.
    pub promo_codes: bool,
    /// The CRM has loyalty cards that can be topped up.
    pub loyalty_cards: bool,
    /// The CRM sends SMS to its clients for the salon.
    #[serde(default)]
    pub sms: bool,
}

/// An operation of the adapter, named in [`AdapterError::Unsupported`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    FindClient,
    GetClient,
    CreateClient,
    UpdateClient,
    ListServices,
    ListStaff,
    GetRecord,
    LoyaltyPaid,
    RecordsChangedSince,
    RecordsBetween,
    ListClients,
    ListCategories,
    ListGoods,
    IssueCertificate,
    FindCertificate,
    IssuePromoCode,
    FindCard,
    IssueCard,
    TopUpCard,
    BookingLink,
    SendSms,
    RegisterWebhooks,
}

/// Errors of a CRM call. [`AdapterError::is_retryable`] says whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    #[error("the CRM cannot {0:?}")]
    Unsupported(Operation),
    #[error("the CRM rate-limited the call{}", retry_after.map(|d| format!("; retry after {d:?}")).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    #[error("transient CRM failure: {0}")]
    Transient(String),
    #[error("the CRM refused the credentials: {0}")]
    Auth(String),
    #[error("the CRM account cannot use the API (licence or access): {0}")]
    Forbidden(String),
    #[error("not found in the CRM: {0}")]
    NotFound(String),
    #[error("the CRM rejected the request: {}", .0.join("; "))]
    Validation(Vec<String>),
    #[error("unexpected CRM answer: {0}")]
    Unexpected(String),
}

impl AdapterError {
    /// Rate limits and transient failures (5xx, timeouts) may pass on a later try; auth,
    /// validation, not-found and unsupported calls will fail the same way again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            AdapterError::RateLimited { .. } | AdapterError::Transient(_)
        )
    }

    /// How long the CRM asked us to wait, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AdapterError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

/// A webhook the adapter could not turn into events. Answered with a 4xx and kept in the
/// rejected-deliveries inbox; never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("body is not valid JSON: {0}")]
    Malformed(String),
    #[error("payload does not have the expected shape: {0}")]
    Shape(String),
    #[error("payload is for company {got}, the connection is for {expected}")]
    WrongCompany { expected: String, got: String },
    #[error("unsupported content type {0:?}")]
    ContentType(String),
}

/// A client as the CRM knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmClient {
    pub external_id: String,
    pub phone: Option<Phone>,
    pub name: Option<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub birth_date: Option<crate::model::BirthDate>,
}

/// Fields for creating or updating a client in the CRM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientDraft {
    pub phone: Phone,
    pub name: String,
    pub email: Option<String>,
}

impl ClientDraft {
    /// The card a write made of this draft, under the id the CRM gave it (when the CRM answers
    /// only the id).
    pub fn client(&self, external_id: String) -> CrmClient {
        CrmClient {
            external_id,
            phone: Some(self.phone.clone()),
            name: Some(self.name.clone()),
            email: self.email.clone(),
            birth_date: None,
        }
    }
}

/// A service from the CRM's price list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmService {
    pub external_id: String,
    pub title: String,
    pub category_id: Option<String>,
    pub price_min: Option<Money>,
    pub price_max: Option<Money>,
}

/// A staff member (master).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmStaff {
    pub external_id: String,
    pub name: String,
}

/// Something the CRM lists by id and name: a service category, a good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmNamed {
    pub external_id: String,
    pub name: String,
}

/// One page of records changed since a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordPage {
    pub records: Vec<VisitEvent>,
    /// Why items of the page that could not be read were left out (a record without an id…);
    /// the rest of the page is still good.
    pub rejected: Vec<String>,
    /// How many records all pages hold, when the CRM says.
    pub total: Option<u64>,
    /// Where the next call continues; `None` when this was the last page.
    pub next_page: Option<u32>,
    /// What this read could not see although the pass asked for it (Arnica: a cursor older than
    /// its change window, read as a date window instead), reported with the pass.
    pub caveat: Option<String>,
}

/// One page of the CRM's client cards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPage {
    pub clients: Vec<CrmClient>,
    /// Why cards of the page that could not be read were left out.
    pub rejected: Vec<String>,
    /// Where the next call continues; `None` when this was the last page.
    pub next_page: Option<u32>,
    /// How many cards all pages hold, when the CRM says.
    pub total: Option<u64>,
}

/// A reward to write into the CRM: a certificate, a promo code or a card top-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardRequest {
    /// The client's id in this CRM, when known; otherwise the adapter finds them by phone.
    pub client_external_id: Option<String>,
    pub phone: Phone,
    pub value: Money,
    /// The gateway's code (`ABCD-EFGH-K`): written on the certificate, or into the card
    /// transaction's title, so the reward can be found again.
    pub code: String,
    /// The reward's title in the catalog.
    pub title: String,
    /// Unix milliseconds.
    pub expires_at_ms: Option<i64>,
    /// Unique per redemption.
    pub idempotency_key: String,
}

impl RewardRequest {
    /// The title the reward carries in the CRM (a card top-up's title, a certificate sale's
    /// comment): it names the code, so staff and the gateway can find it.
    pub fn crm_title(&self) -> String {
        format!("Loyalty Bridge {}: {}", self.code, self.title)
    }
}

/// What the CRM created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedReward {
    pub external_id: String,
    pub code: String,
    /// The CRM shows it (partly) spent: paid with at checkout.
    pub spent: bool,
}

/// A client's loyalty card in the CRM and the money on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmCard {
    pub external_id: String,
    pub balance: Money,
}

/// One CRM connection's API. Unsupported operations keep the default body, which answers
/// [`AdapterError::Unsupported`]; [`CrmAdapter::capabilities`] must agree with what is overridden.
#[async_trait]
pub trait CrmAdapter: Send + Sync {
    fn kind(&self) -> CrmKind;

    fn capabilities(&self) -> Capabilities;

    /// Turns one webhook delivery into events. Unknown fields are ignored; what cannot be
    /// understood is a [`WebhookError`].
    fn parse_webhook(
        &self,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<CrmEvent>, WebhookError>;

    /// Subscribes `url` to the CRM's changes through its API, where it can (Beauty Pro: every
    /// table the program reads). Not idempotent everywhere: callers say when.
    async fn register_webhooks(&self, _url: &str) -> Result<Vec<String>, AdapterError> {
        Err(AdapterError::Unsupported(Operation::RegisterWebhooks))
    }

    /// A webhook delivery was parsed and taken in: what the adapter keeps of it (Beauty Pro
    /// seeds its update replay's cursor from the first one). Nothing by default.
    async fn webhook_received(&self, _body: &[u8]) -> Result<(), AdapterError> {
        Ok(())
    }

    async fn find_client_by_phone(
        &self,
        _phone: &Phone,
    ) -> Result<Option<CrmClient>, AdapterError> {
        Err(AdapterError::Unsupported(Operation::FindClient))
    }

    async fn get_client(&self, _external_id: &str) -> Result<CrmClient, AdapterError> {
        Err(AdapterError::Unsupported(Operation::GetClient))
    }

    async fn create_client(&self, _draft: &ClientDraft) -> Result<CrmClient, AdapterError> {
        Err(AdapterError::Unsupported(Operation::CreateClient))
    }

    async fn update_client(
        &self,
        _external_id: &str,
        _draft: &ClientDraft,
    ) -> Result<CrmClient, AdapterError> {
        Err(AdapterError::Unsupported(Operation::UpdateClient))
    }

    async fn list_services(&self) -> Result<Vec<CrmService>, AdapterError> {
        Err(AdapterError::Unsupported(Operation::ListServices))
    }

    async fn list_staff(&self) -> Result<Vec<CrmStaff>, AdapterError> {
        Err(AdapterError::Unsupported(Operation::ListStaff))
    }

    /// The service categories.
    async fn list_categories(&self) -> Result<Vec<CrmNamed>, AdapterError> {
        Err(AdapterError::Unsupported(Operation::ListCategories))
    }

    /// One page of the goods; `None` after the last page.
    async fn list_goods(&self, _page: u32) -> Result<(Vec<CrmNamed>, Option<u32>), AdapterError> {
        Err(AdapterError::Unsupported(Operation::ListGoods))
    }

    async fn get_record(&self, _record_id: &str) -> Result<VisitEvent, AdapterError> {
        Err(AdapterError::Unsupported(Operation::GetRecord))
    }

    /// How much of a settled visit's bill was paid with certificates or loyalty points (minor
    /// units), asked with the reference the adapter put in
    /// [`crate::LoyaltyPaid::Ask`]. `Unsupported` when this connection cannot ask; the
    /// engine then accrues on the whole bill.
    async fn loyalty_paid(
        &self,
        _visit: &VisitEvent,
        _reference: &str,
    ) -> Result<i64, AdapterError> {
        Err(AdapterError::Unsupported(Operation::LoyaltyPaid))
    }

    /// Records changed at or after `since_ms` (Unix milliseconds), one page at a time.
    async fn records_changed_since(
        &self,
        _since_ms: i64,
        _page: u32,
    ) -> Result<RecordPage, AdapterError> {
        Err(AdapterError::Unsupported(Operation::RecordsChangedSince))
    }

    /// Records whose visit time is between `from_ms` and `to_ms` (Unix milliseconds, the CRM may
    /// round to days), one page at a time: the history import.
    async fn records_between(
        &self,
        _from_ms: i64,
        _to_ms: i64,
        _page: u32,
    ) -> Result<RecordPage, AdapterError> {
        Err(AdapterError::Unsupported(Operation::RecordsBetween))
    }

    /// The CRM's client cards, one page at a time: the history import.
    async fn list_clients(&self, _page: u32) -> Result<ClientPage, AdapterError> {
        Err(AdapterError::Unsupported(Operation::ListClients))
    }

    /// Creates a certificate carrying `req.code`. Not idempotent in the CRM: callers ask
    /// [`CrmAdapter::find_certificate`] first.
    async fn issue_certificate(&self, _req: &RewardRequest) -> Result<IssuedReward, AdapterError> {
        Err(AdapterError::Unsupported(Operation::IssueCertificate))
    }

    /// The client's certificate carrying `req.code`, if an earlier call created it.
    async fn find_certificate(
        &self,
        _req: &RewardRequest,
    ) -> Result<Option<IssuedReward>, AdapterError> {
        Err(AdapterError::Unsupported(Operation::FindCertificate))
    }

    /// The client's loyalty card of the connection's card type, if they have one.
    async fn find_card(&self, _phone: &Phone) -> Result<Option<CrmCard>, AdapterError> {
        Err(AdapterError::Unsupported(Operation::FindCard))
    }

    /// Issues the client a loyalty card of the connection's card type.
    async fn issue_card(&self, _phone: &Phone) -> Result<CrmCard, AdapterError> {
        Err(AdapterError::Unsupported(Operation::IssueCard))
    }

    /// Adds `req.value` to the card's balance. Not idempotent in the CRM: a second call adds
    /// again, so callers check the card's balance before retrying.
    async fn top_up_card(
        &self,
        _card_id: &str,
        _req: &RewardRequest,
    ) -> Result<CrmCard, AdapterError> {
        Err(AdapterError::Unsupported(Operation::TopUpCard))
    }

    async fn issue_promo_code(&self, _req: &RewardRequest) -> Result<IssuedReward, AdapterError> {
        Err(AdapterError::Unsupported(Operation::IssuePromoCode))
    }

    /// The link where clients book online.
    async fn booking_link(&self) -> Result<String, AdapterError> {
        Err(AdapterError::Unsupported(Operation::BookingLink))
    }

    /// Sends `text` by SMS to the client with this id in the CRM, from the salon's account
    /// there. Not idempotent: the CRM has no key to tell a retry from a second message.
    async fn send_sms(&self, _external_id: &str, _text: &str) -> Result<(), AdapterError> {
        Err(AdapterError::Unsupported(Operation::SendSms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct WebhookOnly;

    #[async_trait]
    impl CrmAdapter for WebhookOnly {
        fn kind(&self) -> CrmKind {
            CrmKind::Dikidi
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                webhooks: true,
                ..Capabilities::default()
            }
        }
        fn parse_webhook(&self, _: Option<&str>, _: &[u8]) -> Result<Vec<CrmEvent>, WebhookError> {
            Ok(Vec::new())
        }
    }

    #[test]
    fn retryability() {
        assert!(AdapterError::Transient("502".into()).is_retryable());
        let rl = AdapterError::RateLimited {
            retry_after: Some(Duration::from_secs(2)),
        };
        assert!(rl.is_retryable());
        assert_eq!(rl.retry_after(), Some(Duration::from_secs(2)));
        assert!(!AdapterError::Auth("bad token".into()).is_retryable());
        assert!(!AdapterError::Validation(vec!["phone".into()]).is_retryable());
        assert!(!AdapterError::Unsupported(Operation::IssueCertificate).is_retryable());
    }

    /// Polls a future that is ready at once (the default methods do no I/O).
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("default adapter methods must not wait"),
        }
    }

    #[test]
    fn unsupported_operations_are_typed_errors_through_dyn() {
        let adapter: std::sync::Arc<dyn CrmAdapter> = std::sync::Arc::new(WebhookOnly);
        let phone = Phone::parse_international("+79161234567").unwrap();
        let err = block_on(adapter.find_client_by_phone(&phone)).unwrap_err();
        assert_eq!(err, AdapterError::Unsupported(Operation::FindClient));
        let err = block_on(adapter.booking_link()).unwrap_err();
        assert_eq!(err, AdapterError::Unsupported(Operation::BookingLink));
        assert!(!adapter.capabilities().certificates);
    }
}
