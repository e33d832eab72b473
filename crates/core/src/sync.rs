//! The reconciliation poller's state: one cursor per connection.
//!
//! YCLIENTS, Altegio and Arnica send each webhook once. The poller is the safety net: every few
//! minutes it asks the CRM for records changed since its cursor and applies each through the
//! same engine path as a webhook, so a lost webhook costs minutes, not points. The cursor is
//! the *start* of the last pass that read every page, and each pass reads from a little before
//! it (deduplication makes the overlap free); a pass that could not read a page leaves the
//! cursor where it was. One instance at a time runs a connection's pass (a lease in the
//! database).

use async_trait::async_trait;
use serde::Serialize;

use crate::model::{ConnectionId, PartnerId};
use crate::store::StoreError;

/// How the poller works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollPolicy {
    /// How far before the cursor a pass starts reading.
    pub overlap_ms: i64,
    /// What a connection's first pass reads.
    pub first_window_ms: i64,
    /// How long a pass may hold the connection before another instance may take it.
    pub lease_ms: i64,
    /// Pages a pass reads at most (a CRM that never says "last page" cannot keep it forever).
    pub max_pages: u32,
}

impl Default for PollPolicy {
    /// 10 minutes of overlap, a day on the first pass, 10-minute leases, 500 pages.
    fn default() -> PollPolicy {
        PollPolicy {
            overlap_ms: 10 * 60_000,
            first_window_ms: 86_400_000,
            lease_ms: 10 * 60_000,
            max_pages: 500,
        }
    }
}

/// A connection's poller, as last left.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncCursor {
    pub connection_id: ConnectionId,
    pub partner_id: PartnerId,
    /// The start of the last pass that read every page: the next pass reads from before it.
    pub cursor_ms: Option<i64>,
    pub last_started_ms: Option<i64>,
    pub last_finished_ms: Option<i64>,
    /// Of the last pass: records read, applied (points or history changed), queued for the
    /// CRM, refused.
    pub seen: i64,
    pub applied: i64,
    pub queued: i64,
    pub errors: i64,
    pub last_error: Option<String>,
    /// This connection's own interval, when it has one.
    pub interval_s: Option<u32>,
    /// When the connection's last webhook arrived.
    pub last_webhook_ms: Option<i64>,
    /// When a pass last applied records (found what no webhook had brought).
    pub last_found_ms: Option<i64>,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PollReport {
    pub started_ms: i64,
    pub finished_ms: i64,
    /// Every page was read: the cursor moves to `started_ms`.
    pub complete: bool,
    pub pages: u32,
    pub seen: i64,
    pub applied: i64,
    pub queued: i64,
    /// Records (or pages) that could not be applied; each is logged.
    pub errors: i64,
    pub last_error: Option<String>,
}

/// The poller's rows, beside [`crate::Store`].
#[async_trait]
pub trait SyncStore: Send + Sync {
    /// Takes the connection's poller for a pass until `lease_until_ms`, unless another owner
    /// holds an unexpired lease (`None`). Creates the cursor on first use.
    async fn lease_poll(
        &self,
        partner: PartnerId,
        connection: ConnectionId,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Option<SyncCursor>, StoreError>;

    /// Records a pass and releases the lease; a complete pass moves the cursor to its start.
    async fn finish_poll(
        &self,
        connection: ConnectionId,
        owner: &str,
        report: &PollReport,
    ) -> Result<(), StoreError>;

    /// The cursors (of one connection, or all), by connection.
    async fn sync_cursors(
        &self,
        connection: Option<ConnectionId>,
    ) -> Result<Vec<SyncCursor>, StoreError>;

    /// The connection's own poll interval; `None` goes back to the deployment's.
    async fn set_poll_interval(
        &self,
        partner: PartnerId,
        connection: ConnectionId,
        interval_s: Option<u32>,
    ) -> Result<(), StoreError>;
}
