//! # loyalty-core
//!
//! The domain of Loyalty Bridge, a points loyalty program for beauty salons that lives on top of
//! the CRM a salon already uses. No HTTP, SQL or Telegram here:
//!
//! * [`phone`], [`money`]: phones read in the salon's [`Country`] and kept as E.164, integer
//!   money, points and basis-point rates.
//! * [`model`], [`event`]: partners and their program, clients, CRM connections, and the
//!   normalized [`CrmEvent`]s every CRM adapter produces.
//! * [`adapter`]: the [`CrmAdapter`] trait each `crm-*` crate implements.
//! * [`ledger`], [`store`], [`outbox`]: the double-entry points ledger, the [`Store`] trait the
//!   `loyalty-store` crate implements, and the notifications enqueued with the points.
//! * [`engine`]: [`LoyaltyEngine`], which applies events and staff operations exactly once.

pub mod access;
pub mod adapter;
pub mod audit;
pub mod campaign;
pub mod code;
pub mod custom;
pub mod doctor;
pub mod engage;
pub mod engine;
pub mod event;
pub mod health;
pub mod history;
pub mod hook;
pub mod import;
pub mod inbox;
pub mod ledger;
pub mod level;
pub mod model;
pub mod money;
pub mod offer;
pub mod outbox;
pub mod phone;
pub mod quota;
pub mod redemption;
pub mod referral;
pub mod reward;
pub mod seal;
pub mod store;
pub mod sync;

pub use adapter::{AdapterError, Capabilities, CrmAdapter, WebhookError};
pub use custom::TriggerTx;
pub use engine::{
    BillTerms, Clock, EngineError, LoyaltyEngine, ManualClock, Outcome, Posting, Statement,
    SystemClock,
};
pub use event::{CrmEvent, LoyaltyPaid, VisitEvent, VisitStatus};
pub use model::{
    BirthDate, Client, ClientId, ConnectionId, CrmConnection, CrmKind, Partner, PartnerId, Program,
    ProgramError, ProgramVersion, RewardId,
};
pub use money::{Bps, Currency, Money, MoneyError, Points};
pub use phone::{Country, Phone, PhoneError, UnknownCountry};
pub use reward::{NewReward, Reward, RewardKind};
pub use store::{
    BirthdayStore, CampaignTx, ChatStore, ClientStore, ClientTx, HoldTx, LedgerStore, LedgerTx,
    LevelStore, LevelTx, OfferTx, OutboxStats, OutboxStore, OutboxTx, PartnerStore, PendingTx,
    RecordTx, RedemptionTx, ReferralStore, ReferralTx, RewardStore, Store, StoreError, StoreTx,
    TelegramChat,
};
