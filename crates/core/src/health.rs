//! A connection's health, as the salon's staff hear of it.
//!
//! A connection can break in ways nobody at the salon would notice until clients complain: the
//! CRM refuses the API key or the integration's licence, webhooks that cannot be completed
//! pile up as dead letters, or the CRM stops sending webhooks while the reconciliation poller
//! keeps finding the visits they should have brought. Each is an [`Incident`]: opened once
//! (the salon's staff chats are told once), closed when it clears (told once more), shown by
//! `sync status`. Messages to staff chats go through their own queue ([`StaffMessage`]),
//! delivered by the Telegram worker beside the clients' outbox.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::{ConnectionId, PartnerId};
use crate::store::StoreError;

/// What is wrong with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Incident {
    /// The CRM refuses the credentials or the licence (401/403).
    CrmRefused,
    /// Webhooks that needed the CRM were given up on after days of trying.
    DeadLetters,
    /// No webhook for a day while the poller finds records they should have brought.
    WebhooksSilent,
}

impl Incident {
    pub const ALL: [Incident; 3] = [
        Incident::CrmRefused,
        Incident::DeadLetters,
        Incident::WebhooksSilent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Incident::CrmRefused => "crm_refused",
            Incident::DeadLetters => "dead_letters",
            Incident::WebhooksSilent => "webhooks_silent",
        }
    }

    pub fn parse(s: &str) -> Option<Incident> {
        Incident::ALL.into_iter().find(|i| i.as_str() == s)
    }
}

/// How long without a webhook, while the poller finds records, makes [`Incident::WebhooksSilent`].
pub const WEBHOOKS_SILENT_MS: i64 = 86_400_000;

/// An incident of one connection, open or closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentRow {
    pub id: i64,
    pub connection_id: ConnectionId,
    pub partner_id: PartnerId,
    pub incident: Incident,
    pub detail: String,
    pub opened_at_ms: i64,
    pub closed_at_ms: Option<i64>,
}

/// What staff chats are told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StaffNotice {
    Opened {
        connection_id: ConnectionId,
        /// The CRM's name as people know it ("YCLIENTS").
        crm: String,
        incident: Incident,
        detail: String,
    },
    Closed {
        connection_id: ConnectionId,
        crm: String,
        incident: Incident,
    },
}

/// One message to one staff chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffMessage {
    pub id: i64,
    pub partner_id: PartnerId,
    pub chat_id: i64,
    pub notice: StaffNotice,
    /// Delivery attempts started so far (a claim counts as one).
    pub attempts: i32,
}

/// The connection-health rows, beside [`crate::Store`].
#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Opens `incident` for the connection unless it is open already; when it opens, every
    /// staff chat of the partner gets `notice` in the same transaction. True when it opened.
    async fn open_incident(
        &self,
        partner: PartnerId,
        connection: ConnectionId,
        incident: Incident,
        detail: &str,
        notice: &StaffNotice,
        now_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Closes the open `incident`, if any, telling the staff chats `notice`. True when one
    /// closed.
    async fn close_incident(
        &self,
        connection: ConnectionId,
        incident: Incident,
        notice: &StaffNotice,
        now_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Incidents (of one connection, or all), open ones only unless `closed_too`; newest
    /// first.
    async fn incidents(
        &self,
        connection: Option<ConnectionId>,
        closed_too: bool,
    ) -> Result<Vec<IncidentRow>, StoreError>;

    /// Claims up to `limit` due staff messages, leasing them for `lease_ms`.
    async fn claim_staff_messages(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<StaffMessage>, StoreError>;

    async fn staff_message_sent(&self, id: i64, now_ms: i64) -> Result<(), StoreError>;

    /// Failed: try again at `retry_at_ms`, or with `None` give up.
    async fn staff_message_failed(
        &self,
        id: i64,
        retry_at_ms: Option<i64>,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Records that a webhook of the connection arrived at `at_ms` (the latest wins).
    async fn note_webhook(
        &self,
        partner: PartnerId,
        connection: ConnectionId,
        at_ms: i64,
    ) -> Result<(), StoreError>;

    /// Dead letters per connection (connections with none left out).
    async fn dead_letters(&self) -> Result<Vec<(ConnectionId, i64)>, StoreError>;
}
