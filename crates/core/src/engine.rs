//! The loyalty engine: every business decision about points, each made in one database
//! transaction through [`Store`].

use std::sync::Arc;

use serde::Serialize;

use crate::audit::Actor;
use crate::ledger::LedgerEntry;
use crate::model::{Client, ClientId, EntryId, PartnerId, Program};
use crate::money::Points;
use crate::phone::Phone;
use crate::store::Store;

/// How many times a transaction that lost a race is run again before the error is returned.
pub(crate) const MAX_TX_ATTEMPTS: u32 = 8;
const DAY_MS: i64 = 86_400_000;

/// One change of one client's balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Posting {
    pub client_id: ClientId,
    pub entry_id: EntryId,
    /// Signed change of the balance.
    pub delta: Points,
    /// The balance after it.
    pub balance: Points,
    /// For a reversal: points taken back that had already been spent (now a debt).
    pub unbacked: Points,
}

/// A client's balance and latest entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    pub client: Client,
    pub balance: Points,
    /// Newest first.
    pub history: Vec<LedgerEntry>,
}

/// What applying one event did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Points were posted (two postings when the record moved to another client).
    Applied { postings: Vec<Posting> },
    /// The record's new state earns what it already earned, or there is no client to credit.
    NoChange { client_id: Option<ClientId> },
    /// The same delivery as the last one applied.
    Duplicate,
    /// Older than what was applied; ignored.
    Stale,
    /// A client card was synced.
    ClientSynced { client_id: ClientId, created: bool },
    /// An event the program does not act on.
    Ignored,
    /// Stored in the inbox: it needs the CRM's API before it can be applied.
    Queued { inbox_id: i64 },
}

impl Outcome {
    /// A short name of the outcome, for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Applied { .. } => "applied",
            Outcome::NoChange { .. } => "no_change",
            Outcome::Duplicate => "duplicate",
            Outcome::Stale => "stale",
            Outcome::ClientSynced { .. } => "client_synced",
            Outcome::Ignored => "ignored",
            Outcome::Queued { .. } => "queued",
        }
    }

    /// The net change of balances it made.
    pub fn delta(&self) -> Points {
        match self {
            Outcome::Applied { postings } => postings.iter().map(|p| p.delta).sum(),
            _ => Points::ZERO,
        }
    }
}

/// Runs `$body` (an expression awaiting work on `$tx`) in a transaction, committing on success
/// and starting over when the transaction lost a race with another one.
macro_rules! in_tx {
    ($engine:expr, |$tx:ident, $now:ident| $body:expr) => {{
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let $now = $engine.clock.now_ms();
            let mut boxed = $engine.store.begin().await?;
            let result = {
                let $tx: &mut dyn StoreTx = boxed.as_mut();
                $body.await
            };
            let result = match result {
                Ok(value) => boxed
                    .commit()
                    .await
                    .map(|()| value)
                    .map_err(EngineError::from),
                Err(e) => Err(e),
            };
            match result {
                Err(e) if e.is_retryable() && attempt < $crate::engine::MAX_TX_ATTEMPTS => continue,
                other => break other,
            }
        }
    }};
}

mod accrual;
mod birthday;
mod campaign;
mod cards;
mod clock;
mod custom;
mod desk;
mod error;
mod expiry;
mod import;
mod intake;
mod level;
mod manual;
mod offer;
mod pending;
mod poll;
mod posting;
mod redemption;
mod referral;
mod writeback;
pub use birthday::{BirthdayPass, birthdays_due};
pub use cards::{CardPass, CardStore};
pub use clock::{Clock, ManualClock, SystemClock};
pub use desk::{DESK_COMPANY, DeskChange, DeskVisit, MAX_DESK_KEY};
pub use error::EngineError;
pub use expiry::ExpiryPass;
pub use import::{ImportObserver, ImportRun, Quiet};
pub use intake::{InboxPass, Intake};
pub use level::{LevelView, ReviewPass};
pub use pending::MaturePass;
pub use redemption::BillTerms;
pub use writeback::{
    AdapterSource, CERTIFICATE_GRACE_MS, Resolution, WriteBackOutcome, WriteBackPass,
    WriteBackPolicy,
};

/// The points program's rules over a [`Store`].
#[derive(Clone)]
pub struct LoyaltyEngine {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Who the audit log records for what this handle does by hand.
    actor: Arc<Actor>,
}

impl LoyaltyEngine {
    pub fn new(store: Arc<dyn Store>) -> LoyaltyEngine {
        LoyaltyEngine::with_clock(store, Arc::new(SystemClock))
    }

    pub fn with_clock(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> LoyaltyEngine {
        LoyaltyEngine {
            store,
            clock,
            actor: Arc::new(Actor::system()),
        }
    }

    /// This engine acting for `actor`: the audit log names them for manual accruals and
    /// debits, codes used at the desk and levels set by hand.
    pub fn acting_as(&self, actor: Actor) -> LoyaltyEngine {
        LoyaltyEngine {
            actor: Arc::new(actor),
            ..self.clone()
        }
    }

    /// Who this handle acts for.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The client with this phone at this partner, with balance and the latest `limit`
    /// entries; `None` when the phone is not a client there.
    pub async fn statement(
        &self,
        partner: PartnerId,
        phone: &Phone,
        limit: u32,
    ) -> Result<Option<Statement>, EngineError> {
        let Some(client) = self.store.client_by_phone(partner, phone).await? else {
            return Ok(None);
        };
        let balance = self.store.balance(partner, client.id).await?;
        let history = self.store.history(partner, client.id, limit).await?;
        Ok(Some(Statement {
            client,
            balance,
            history,
        }))
    }

    /// The partner's program, read outside a transaction.
    async fn program(&self, partner: PartnerId) -> Result<Program, EngineError> {
        Ok(self
            .store
            .partner(partner)
            .await?
            .ok_or(EngineError::UnknownPartner(partner))?
            .program)
    }
}
