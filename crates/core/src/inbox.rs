//! The CRM inbox: deliveries that need the CRM's API before they can be applied.
//!
//! YCLIENTS, Altegio and Arnica send each webhook once and never retry. A delivery that can be
//! applied from its payload is applied in the request's own transaction; one that needs the
//! CRM first (a partial record to re-fetch, the loyalty part of a settled bill to ask) is
//! stored here in the same database and answered 2xx at once. A worker then asks the CRM under
//! its quota, retries with growing pauses until it answers, and applies the event through the
//! engine exactly once (the engine's deduplication makes a repeated application free). Nothing
//! is dropped: an item that keeps failing past [`InboxPolicy::give_up_after_ms`] becomes a dead
//! letter the operator sees and can replay.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::event::CrmEvent;
use crate::model::{ConnectionId, PartnerId};
use crate::phone::Phone;
use crate::store::StoreError;

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Webhook,
    Poll,
    Import,
    Desk,
    /// Pushed through the partner API (`POST /api/v1/visits`).
    Api,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Webhook => "webhook",
            Source::Poll => "poll",
            Source::Import => "import",
            Source::Desk => "desk",
            Source::Api => "api",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        [
            Source::Webhook,
            Source::Poll,
            Source::Import,
            Source::Desk,
            Source::Api,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// An event waiting for the CRM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboxItem {
    pub id: i64,
    pub partner_id: PartnerId,
    pub connection_id: ConnectionId,
    pub event: CrmEvent,
    pub source: Source,
    /// Tries so far (a claim counts as one).
    pub attempts: u32,
    pub next_at_ms: i64,
    pub last_error: Option<String>,
    pub received_at_ms: i64,
    /// Given up on: waits for the operator's replay.
    pub dead: bool,
}

/// The inbox's size, for metrics and `inbox list`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct InboxStats {
    /// Items waiting for a try.
    pub queued: i64,
    /// When the oldest waiting item arrived.
    pub oldest_received_at_ms: Option<i64>,
    pub dead: i64,
}

/// How the inbox is worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxPolicy {
    /// The pause after the first failed try; it doubles after each one.
    pub first_pause_ms: i64,
    pub max_pause_ms: i64,
    /// An item still failing this long after it arrived becomes a dead letter.
    pub give_up_after_ms: i64,
    /// Items claimed per pass.
    pub batch: u32,
    /// How long a claimed item is left to its worker before another may take it (a worker
    /// that died mid-call). A live worker renews the lease of the items it still holds (see
    /// [`IntakeStore::inbox_renew`]), so a try may take longer; a killed one's items are due
    /// again within this time.
    pub lease_ms: i64,
}

impl Default for InboxPolicy {
    /// 5 s, 10 s, 20 s … up to a minute apart, for 7 days. An item that gets through after
    /// failing makes its connection's other waiting items due at once.
    fn default() -> InboxPolicy {
        InboxPolicy {
            first_pause_ms: 5_000,
            max_pause_ms: 60_000,
            give_up_after_ms: 7 * 86_400_000,
            batch: 32,
            lease_ms: 60_000,
        }
    }
}

impl InboxPolicy {
    /// The pause after the `attempt`-th try (1-based).
    pub fn pause_ms(&self, attempt: u32) -> i64 {
        self.first_pause_ms
            .saturating_mul(1i64 << attempt.saturating_sub(1).min(30))
            .min(self.max_pause_ms)
            .max(0)
    }
}

/// What taking in CRM events needs of the store, beside [`crate::Store`].
#[async_trait]
pub trait IntakeStore: Send + Sync {
    /// Stores an event for the worker; due at once. Returns its id.
    async fn enqueue_inbox(
        &self,
        partner: PartnerId,
        connection: ConnectionId,
        event: &CrmEvent,
        source: Source,
        now_ms: i64,
    ) -> Result<i64, StoreError>;

    /// Claims up to `limit` due items, oldest due first: each claim counts as a try and leases
    /// the item until `lease_until_ms`, so no other worker takes it meanwhile (`SKIP LOCKED` on
    /// PostgreSQL) and an item whose worker died is tried again then.
    async fn claim_inbox(
        &self,
        now_ms: i64,
        limit: u32,
        lease_until_ms: i64,
    ) -> Result<Vec<InboxItem>, StoreError>;

    /// The item was applied: it leaves the inbox.
    async fn inbox_done(&self, id: i64) -> Result<(), StoreError>;

    /// The worker holding `ids` is alive: those of them still leased stay leased until
    /// `lease_until_ms` (the others were done or failed meanwhile and are left alone).
    async fn inbox_renew(&self, ids: &[i64], lease_until_ms: i64) -> Result<(), StoreError>;

    /// The connection's CRM answers again: its items waiting out a back-off are due now.
    async fn inbox_wake_connection(
        &self,
        connection: ConnectionId,
        now_ms: i64,
    ) -> Result<u64, StoreError>;

    /// The try failed: the error is kept and the item is due again at `retry_at_ms`, or, when
    /// that is `None`, it is a dead letter.
    async fn inbox_failed(
        &self,
        id: i64,
        error: &str,
        retry_at_ms: Option<i64>,
    ) -> Result<(), StoreError>;

    /// A dead letter (or a waiting item) is due again now, its tries counted from zero.
    /// `false` when there is no such item.
    async fn inbox_replay(&self, id: i64, now_ms: i64) -> Result<bool, StoreError>;

    /// Waiting items (or, with `dead`, the dead letters), oldest first.
    async fn inbox_items(&self, dead: bool, limit: u32) -> Result<Vec<InboxItem>, StoreError>;

    async fn inbox_stats(&self) -> Result<InboxStats, StoreError>;

    /// Whether the client a CRM reference names (by CRM id at this connection, or by phone)
    /// holds credit of ours in the CRM: a loyalty card we ever topped up, or a CRM certificate
    /// of ours that is not used, or was marked used at or after `used_since_ms` (a certificate
    /// spent in the very visit being applied may already show as used). Only then can a bill
    /// have been paid with our rewards, and only then is the CRM asked how it was paid.
    async fn holds_crm_credit(
        &self,
        partner: PartnerId,
        connection: ConnectionId,
        external_id: Option<&str>,
        phone: Option<&Phone>,
        used_since_ms: i64,
    ) -> Result<bool, StoreError>;
}
