//! Points exchanged for a reward: a redemption holds the points while its code is alive.
//!
//! The hold stays pending while the code can be used: using the code posts it (the points are
//! spent), cancelling or expiring voids it (the points come back), each exactly once.

use serde::{Deserialize, Serialize};

use crate::code::Code;
use crate::model::{ClientId, ConnectionId, HoldId, PartnerId, RewardId};
use crate::money::Points;

/// How the reward reaches the desk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The gateway's own code, checked and marked used by the salon's staff (CRMs without a
    /// write API).
    GatewayCode,
    /// A manual transaction on the client's loyalty card in the CRM.
    LoyaltyCard,
    /// A certificate sold to the client in the CRM.
    CrmCertificate,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::GatewayCode => "gateway_code",
            Strategy::LoyaltyCard => "loyalty_card",
            Strategy::CrmCertificate => "crm_certificate",
        }
    }

    pub fn parse(s: &str) -> Option<Strategy> {
        [
            Strategy::GatewayCode,
            Strategy::LoyaltyCard,
            Strategy::CrmCertificate,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Where a redemption's reward goes: the gateway's own code, or a CRM strategy on a
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub strategy: Strategy,
    /// The connection whose CRM gets the reward; needed by every strategy but the gateway's.
    pub connection: Option<ConnectionId>,
}

impl Target {
    /// A code the salon's staff check and mark used.
    pub const GATEWAY: Target = Target {
        strategy: Strategy::GatewayCode,
        connection: None,
    };

    /// The reward written into `connection`'s CRM.
    pub fn crm(strategy: Strategy, connection: ConnectionId) -> Target {
        Target {
            strategy,
            connection: Some(connection),
        }
    }
}

/// Where a redemption stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedemptionStatus {
    /// Points held; the reward is being written to the CRM.
    Pending,
    /// The code can be used.
    Issued,
    /// Used at the desk: the points are spent.
    Used,
    /// Cancelled before use: the points came back.
    Cancelled,
    /// Not used in time: the points came back.
    Expired,
    /// The CRM refused it: the points came back.
    Failed,
}

impl RedemptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RedemptionStatus::Pending => "pending",
            RedemptionStatus::Issued => "issued",
            RedemptionStatus::Used => "used",
            RedemptionStatus::Cancelled => "cancelled",
            RedemptionStatus::Expired => "expired",
            RedemptionStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<RedemptionStatus> {
        use RedemptionStatus::*;
        [Pending, Issued, Used, Cancelled, Expired, Failed]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// Whether the points are still held (the code may yet be used).
    pub fn is_open(self) -> bool {
        matches!(self, RedemptionStatus::Pending | RedemptionStatus::Issued)
    }
}

/// A redemption as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Redemption {
    pub id: i64,
    pub partner_id: PartnerId,
    pub client_id: ClientId,
    pub reward_id: RewardId,
    pub hold_id: HoldId,
    pub code: Code,
    pub strategy: Strategy,
    pub status: RedemptionStatus,
    pub cost: Points,
    pub idempotency_key: String,
    pub expires_at_ms: i64,
    pub created_at_ms: i64,
    /// How far writing the reward into the CRM got (CRM strategies only).
    pub write_back: WriteBack,
}

/// The CRM side of a redemption: where the reward is written and how far that got. It lets a
/// restarted gateway finish what a stopped one began without writing the reward twice.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct WriteBack {
    /// The connection whose CRM gets the reward.
    pub connection_id: Option<ConnectionId>,
    /// Calls tried so far.
    pub attempts: u32,
    /// When the next try is due; `None` once nothing more is scheduled (done, failed, or
    /// waiting for the operator).
    pub next_attempt_at_ms: Option<i64>,
    /// The certificate's or the loyalty card's id in the CRM.
    pub external_id: Option<String>,
    /// A card's balance (minor units) just before the top-up was first sent: after an
    /// answer that never came, the balance tells whether the top-up happened.
    pub witness_minor: Option<i64>,
    /// Why the last try did not finish.
    pub last_error: Option<String>,
}

/// A redemption to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRedemption {
    pub client_id: ClientId,
    pub reward_id: RewardId,
    pub hold_id: HoldId,
    pub code: Code,
    pub strategy: Strategy,
    pub status: RedemptionStatus,
    pub cost: Points,
    pub idempotency_key: String,
    pub expires_at_ms: i64,
    /// The connection whose CRM gets the reward (CRM strategies).
    pub connection_id: Option<ConnectionId>,
}
