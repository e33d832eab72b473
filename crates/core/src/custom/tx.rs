//! What the store records of a custom trigger, in the transaction of its event.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::When;
use crate::audit::Plan;
use crate::engage::Texts;
use crate::model::{ClientId, ConnectionId, PartnerId};
use crate::money::Points;
use crate::store::StoreError;

/// A trigger that fired for an event, as the store records it (once per trigger and event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fired {
    pub trigger: String,
    pub when: When,
    /// What makes the event one: the record (`{connection}:{record}`), the birthday's year, the
    /// level reached, the referral.
    pub event_key: String,
    pub client_id: ClientId,
    /// Its points when it fired.
    pub points: Points,
    /// The message it queues for the delivery policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<TriggerMessage>,
    /// It owes the salon's endpoints a `trigger.fired` event.
    pub webhook: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
}

/// A trigger's message and what fills its placeholders besides the client's name and balance
/// (read when it is sent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerMessage {
    pub text: Texts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
}

/// Custom triggers in a transaction.
#[async_trait]
pub trait TriggerTx: Send {
    /// The partner's plan (read with the program in this transaction when it was).
    async fn plan(&mut self, partner: PartnerId) -> Result<Plan, StoreError>;

    /// When the client's last visit that came before `before_ms` was, other than the record
    /// `record_id` of `connection`; `None` when there is none.
    async fn came_before(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        before_ms: i64,
        connection: ConnectionId,
        record_id: &str,
    ) -> Result<Option<i64>, StoreError>;

    /// Records that a trigger fired for an event, with its message queued for the delivery
    /// policy and its `trigger.fired` event owed to the salon's endpoints; `false` (and nothing
    /// written) when it had fired for that event already.
    async fn fire_trigger(
        &mut self,
        partner: PartnerId,
        fired: &Fired,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
}
