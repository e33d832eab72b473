//! The history import: a salon that connects today brings its CRM's clients and visits of the
//! last two years (by default) into the history, so reminders and analytics work on day one.
//!
//! No points are accrued for the past: queuing an import sets the connection's points boundary
//! ([`crate::CrmConnection::points_since_ms`]: a day before the connection was made, so visits
//! being closed as the salon connects still earn, unless the salon asks for retroactive points
//! with `--accrue-since`), and a record whose visit is before it earns
//! nothing, whatever brings it: the import, a webhook or the poller. Records after it are
//! accrued exactly once, like any other. Imported records and clients tell nobody.
//!
//! A job goes page by page and commits its place after each page, so an import killed at any
//! point and started again continues where it was, and (deduplication making a repeated page
//! free) ends with the same history, clients and points as an uninterrupted one.

use async_trait::async_trait;
use serde::Serialize;

use crate::model::{ConnectionId, PartnerId};
use crate::store::StoreError;

/// What an import job is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportPhase {
    /// Reading the CRM's client cards.
    Clients,
    /// Reading the records (visits).
    Records,
    /// Finished.
    Done,
}

impl ImportPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportPhase::Clients => "clients",
            ImportPhase::Records => "records",
            ImportPhase::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<ImportPhase> {
        [
            ImportPhase::Clients,
            ImportPhase::Records,
            ImportPhase::Done,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// One import of one connection's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportJob {
    pub id: i64,
    pub partner_id: PartnerId,
    pub connection_id: ConnectionId,
    pub phase: ImportPhase,
    /// The next page of the current phase.
    pub next_page: u32,
    /// Visits from this time on are imported.
    pub since_ms: i64,
    /// …up to this time (the job's start).
    pub until_ms: i64,
    /// Visits from this time on earn points; earlier ones only history.
    pub accrue_since_ms: i64,
    pub clients_seen: i64,
    pub records_seen: i64,
    /// Records whose history (or points) changed.
    pub records_applied: i64,
    /// Records queued for the CRM's API (a partial one, a bill to ask about).
    pub records_queued: i64,
    pub errors: i64,
    pub last_error: Option<String>,
    /// What the CRM says the phases hold, when it says.
    pub total_clients: Option<u64>,
    pub total_records: Option<u64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

impl ImportJob {
    /// Nothing read yet: the job has not started.
    pub fn is_fresh(&self) -> bool {
        self.phase == ImportPhase::Clients
            && self.next_page <= 1
            && self.clients_seen == 0
            && self.records_seen == 0
    }

    pub fn is_done(&self) -> bool {
        self.phase == ImportPhase::Done
    }
}

/// What starts an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImport {
    pub partner_id: PartnerId,
    pub connection_id: ConnectionId,
    pub since_ms: i64,
    pub until_ms: i64,
    /// `None`: a day before the connection was made (no points for the past).
    pub accrue_since_ms: Option<i64>,
}

/// The import jobs, beside [`crate::Store`].
#[async_trait]
pub trait ImportStore: Send + Sync {
    /// Queues an import of the connection and puts its points boundary in force, unless an
    /// import is unfinished: that one is returned.
    async fn queue_import(&self, job: &NewImport, now_ms: i64) -> Result<ImportJob, StoreError>;

    /// Takes an unfinished job (`job`, or the oldest whose lease is free) for `owner` until
    /// `lease_until_ms`; `None` when there is none or another owner holds it.
    async fn lease_import(
        &self,
        job: Option<i64>,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Option<ImportJob>, StoreError>;

    /// Saves the job's place and counts, and extends the lease; `false` when `owner` no longer
    /// holds it (another instance took it over: stop).
    async fn save_import(
        &self,
        job: &ImportJob,
        owner: &str,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Frees the job for another owner (a page failed; it is tried again later).
    async fn release_import(&self, job: i64, owner: &str) -> Result<(), StoreError>;

    /// The connection's jobs (or every connection's), newest first.
    async fn imports(&self, connection: Option<ConnectionId>)
    -> Result<Vec<ImportJob>, StoreError>;

    /// Sets the connection's points boundary: visits before it earn nothing.
    async fn set_points_since(
        &self,
        connection: ConnectionId,
        points_since_ms: i64,
    ) -> Result<(), StoreError>;
}
