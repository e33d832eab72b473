//! What onboarding needs of the process that runs the CRMs: making a connection, calling the
//! CRM to check it, subscribing the webhook, the bot's join link. The gateway implements
//! [`Connector`] over its adapters; an embedder without one gets no setup pages (404).

use async_trait::async_trait;
use loyalty_core::audit::Actor;
use loyalty_core::{AdapterError, ConnectionId, CrmConnection, CrmKind, PartnerId};

/// A CRM connection as the owner typed it. Which fields a CRM needs: YCLIENTS and Altegio the
/// partner and user tokens; Arnica the integrator's e-mail and password (and an API base);
/// Beauty Pro the application's id and secret; DIKIDI the company id alone. `Debug` hides the
/// secrets.
#[derive(Clone)]
pub struct NewCrm {
    pub crm: CrmKind,
    pub company_id: String,
    pub partner_token: Option<String>,
    pub user_token: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub base_url: Option<String>,
    pub app_id: Option<String>,
    pub app_secret: Option<String>,
}

impl std::fmt::Debug for NewCrm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("NewCrm")
            .field("crm", &self.crm)
            .field("company_id", &self.company_id)
            .field("partner_token", &hidden(&self.partner_token))
            .field("user_token", &hidden(&self.user_token))
            .field("email", &self.email)
            .field("password", &hidden(&self.password))
            .field("base_url", &self.base_url)
            .field("app_id", &self.app_id)
            .field("app_secret", &hidden(&self.app_secret))
            .finish()
    }
}

/// Why a connection was not made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The salon already has this CRM company.
    #[error("already connected")]
    AlreadyConnected,
    /// The form does not make a connection: what is wrong, in the connector's words.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Internal(String),
}

/// One thing "check connection" asks the CRM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The journal: the last day's visits.
    Records,
    /// The client base (the history import reads it).
    Clients,
    /// The price list (rules and rewards name services).
    Services,
}

/// What the CRM answered to one step: how many it listed, or why not.
#[derive(Debug)]
pub struct Probe {
    pub step: Step,
    pub answer: Result<usize, AdapterError>,
}

/// How the connection's webhook gets its address.
#[derive(Debug)]
pub enum Hooks {
    /// Subscribed through the CRM's API, to these resources.
    Registered(Vec<String>),
    /// The CRM has no API for it: the owner pastes the address in the CRM's settings.
    Paste,
    /// The CRM sends no webhooks at all (DIKIDI): visits come from imports and the desk.
    None,
}

/// Onboarding's way to the CRMs (see the module documentation).
#[async_trait]
pub trait Connector: Send + Sync {
    /// Makes the connection (and queues the history import when it has API access), acting
    /// as `actor`.
    async fn connect(
        &self,
        partner: PartnerId,
        crm: &NewCrm,
        actor: &Actor,
    ) -> Result<ConnectionId, ConnectError>;

    /// Calls the CRM once per [`Step`] the connection's API can answer (none without API
    /// access).
    async fn check(&self, connection: ConnectionId) -> Result<Vec<Probe>, ConnectError>;

    /// Subscribes the connection's webhook address where the CRM's API can, acting as
    /// `actor`.
    async fn register_webhooks(
        &self,
        connection: ConnectionId,
        actor: &Actor,
    ) -> Result<Hooks, AdapterError>;

    /// A webhook of the connection this process took and has not written down yet (the
    /// store has the rest): the setup turns green at once, not at the next flush.
    fn recent_delivery(&self, _connection: ConnectionId) -> Option<i64> {
        None
    }

    /// The address the CRM delivers this connection's webhooks to.
    fn webhook_url(&self, connection: &CrmConnection) -> String;

    /// The bot's link that joins the salon (`https://t.me/<bot>?start=s<partner>`), when a
    /// bot runs.
    async fn join_link(&self, partner: PartnerId) -> Option<String>;
}
