//! A caller's last word in the transaction of an event it applies: the partner API keeps the
//! claim of an `Idempotency-Key` and its answer in the same commit as the visit it answers, so a
//! pushed visit costs one transaction, not three.

use async_trait::async_trait;

use crate::engine::Outcome;
use crate::{StoreError, StoreTx};

/// Written after the event's own work, before its commit.
#[async_trait]
pub trait Seal: Send + Sync {
    /// Writes what the caller keeps of `outcome`; `false` rolls the whole transaction back (the
    /// effect was another request's to make), and the engine then answers `None`.
    async fn seal(&self, tx: &mut dyn StoreTx, outcome: &Outcome) -> Result<bool, StoreError>;
}

/// An answer kept under an API key's `Idempotency-Key`.
#[derive(Debug, Clone, Copy)]
pub struct KeptAnswer<'a> {
    pub key_id: i64,
    pub idem: &'a str,
    /// What makes two requests the same (the method, the path, the body).
    pub fingerprint: &'a str,
    pub now_ms: i64,
    /// The status and body; `None` while the answer is still being made (after the commit).
    pub answer: Option<(u16, &'a str)>,
}

/// The partner API's kept answers in a transaction.
#[async_trait]
pub trait AnswerTx: Send {
    /// Keeps `kept` unless another request holds its key — answered within a day, or begun
    /// less than a minute ago and not answered — and whether this request holds it now. A
    /// transaction holding the same key uncommitted is waited for.
    async fn keep_answer(&mut self, kept: &KeptAnswer<'_>) -> Result<bool, StoreError>;
}
