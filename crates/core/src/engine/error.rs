//! The engine's errors.

use super::redemption::min_bill_text;
use crate::level::LevelError;
use crate::model::HoldId;
use crate::{
    AdapterError, Bps, ClientId, ConnectionId, Currency, MoneyError, PartnerId, PhoneError, Points,
    RewardId, StoreError,
};

/// Errors of the engine. Each says what was wrong with the request, or that the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error(transparent)]
    Level(#[from] LevelError),
    #[error("the program has no levels")]
    NoLevels,
    #[error(transparent)]
    Phone(#[from] PhoneError),
    #[error("CRM: {0}")]
    Crm(#[from] AdapterError),
    #[error("partner {0} does not exist")]
    UnknownPartner(PartnerId),
    #[error("client {0} does not exist for this partner")]
    UnknownClient(ClientId),
    #[error("hold {0} does not exist for this partner")]
    UnknownHold(HoldId),
    #[error("event is for company {got}, the connection is for {expected}")]
    WrongCompany { expected: String, got: String },
    #[error("event is in {event}, the program counts {program}")]
    CurrencyMismatch { program: Currency, event: Currency },
    #[error("record {record_id} must be fetched from the CRM before it can be applied")]
    NeedsRefetch { record_id: String },
    #[error(
        "record {record_id} is settled: how much of it was paid with certificates or points must be asked from the CRM first"
    )]
    PaymentsUnknown { record_id: String },
    #[error("the caller's seal refused the transaction: another request made this effect")]
    Sealed,
    #[error("idempotency key {key:?} was already used for a different request")]
    Conflict { key: String },
    #[error("connection {0} is not the partner's desk: visits are entered at the desk only there")]
    NotDesk(ConnectionId),
    #[error("visit {0} did not come from the desk: the CRM or the file it came from owns it")]
    NotDeskVisit(String),
    #[error("a desk key is 1 to 100 characters without spaces, got {0:?}")]
    BadDeskKey(String),
    #[error("a correction needs a reason")]
    ReasonNeeded,
    #[error(
        "partner {partner}'s visits come from {crm} (connection {connection}): entered here too, one visit would count twice; force it only for a visit that CRM does not have"
    )]
    CrmReportsVisits {
        partner: PartnerId,
        connection: ConnectionId,
        crm: crate::CrmKind,
    },
    #[error("not enough points: {available} available, {requested} requested")]
    InsufficientBalance {
        available: Points,
        requested: Points,
    },
    #[error("amount must be positive, got {0}")]
    NonPositiveAmount(i64),
    #[error("hold {hold} is already {status}")]
    HoldNotPending { hold: HoldId, status: &'static str },
    #[error("reward {0} is not in this partner's catalog")]
    RewardUnavailable(RewardId),
    #[error("no redemption has the code {0}")]
    UnknownCode(String),
    #[error("code {code} is {status}")]
    CodeNotUsable { code: String, status: &'static str },
    #[error("the {0} strategy writes to a CRM: name the connection")]
    NoConnection(&'static str),
    #[error("connection {0} does not exist")]
    UnknownConnection(ConnectionId),
    /// A money certificate used at the desk without the bill it pays.
    #[error(
        "code {code} is a certificate worth {value_minor} (minor units): give the bill it pays, points may pay only part of one"
    )]
    BillNeeded {
        code: String,
        value_minor: i64,
        /// The smallest bill it may pay; `None` when points may pay no part of a bill.
        min_bill_minor: Option<i64>,
    },
    /// A money certificate worth more than the program's share of the bill.
    #[error(
        "code {code} is a certificate worth {value_minor} (minor units); points may pay at most {share} of a bill, so a bill of {bill_minor} is too small: {}",
        min_bill_text(*.min_bill_minor)
    )]
    BillTooSmall {
        code: String,
        value_minor: i64,
        bill_minor: i64,
        share: Bps,
        min_bill_minor: Option<i64>,
    },
}

impl EngineError {
    /// The request itself was refused — unknown ids, bad amounts, a used key, a code that cannot
    /// be used, not enough points — rather than the store or a CRM failing: what a caller shows
    /// the person who asked (a CLI exits 2, an API answers 4xx).
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            EngineError::Store(_)
                | EngineError::Crm(_)
                | EngineError::NeedsRefetch { .. }
                | EngineError::PaymentsUnknown { .. }
        )
    }

    pub(super) fn is_retryable(&self) -> bool {
        matches!(
            self,
            EngineError::Store(StoreError::Retryable(_) | StoreError::Duplicate(_))
        )
    }
}
