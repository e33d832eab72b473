//! The loyalty engine: every business decision about points, each made in one database
//! transaction through [`Store`].

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::Serialize;

use crate::adapter::AdapterError;
use crate::code::Code;
use crate::event::{ClientEvent, ClientRef, CrmEvent, LoyaltyPaid, VisitEvent};
use crate::history::Visit;
use crate::inbox::Source;
use crate::ledger::{Account, EntryKind, LedgerEntry, LotId, NewEntry, NewLot, plan_draw};
use crate::model::{
    Client, ClientId, ConnectionId, CrmConnection, EntryId, HoldId, PartnerId, Program, RewardId,
};
use crate::money::{Bps, Currency, MoneyError, Points};
use crate::outbox::{NewOutbox, Notification};
use crate::phone::{Phone, PhoneError};
use crate::redemption::{NewRedemption, Redemption, RedemptionStatus, Strategy, Target};
use crate::reward::{Reward, RewardKind};
use crate::store::{
    CardUpdate, DeliveryRecord, Hold, HoldStatus, RecordState, Store, StoreError, StoreTx,
};

/// How many times a transaction that lost a race is run again before the error is returned.
pub(crate) const MAX_TX_ATTEMPTS: u32 = 8;
const DAY_MS: i64 = 86_400_000;

/// Errors of the engine. Each says what was wrong with the request, or that the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Money(#[from] MoneyError),
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
    #[error("idempotency key {key:?} was already used for a different request")]
    Conflict { key: String },
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

/// The terms a money certificate from a gateway code is used on: points pay at most the
/// program's `max_redeem_share` of a bill, so it pays only a bill of `min_bill_minor` or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BillTerms {
    /// What it is worth (minor units).
    pub value_minor: i64,
    /// The smallest bill it may pay; `None` when points may pay no part of a bill.
    pub min_bill_minor: Option<i64>,
    /// The largest share of a bill points may pay.
    pub share: Bps,
    pub currency: Currency,
}

impl BillTerms {
    /// What a redemption of `reward` is worth, when it has terms: only a gateway code for a
    /// money certificate. A service reward is the service itself, whatever the bill; a reward
    /// written into a CRM is spent at the CRM's checkout, by the CRM's rules.
    pub fn certificate_value(r: &Redemption, reward: &Reward) -> Option<i64> {
        match (r.strategy, &reward.kind) {
            (Strategy::GatewayCode, RewardKind::Certificate { value_minor }) => Some(*value_minor),
            _ => None,
        }
    }

    /// The terms of a certificate worth `value_minor` under `program`.
    pub fn new(value_minor: i64, program: &Program) -> BillTerms {
        BillTerms {
            value_minor,
            min_bill_minor: program.min_bill_for(value_minor),
            share: program.max_redeem_share,
            currency: program.currency,
        }
    }

    /// Whether the code may pay a bill of `bill_minor`; the desk's error otherwise.
    fn check(&self, code: &Code, bill_minor: Option<i64>) -> Result<(), EngineError> {
        match bill_minor {
            None => Err(EngineError::BillNeeded {
                code: code.to_string(),
                value_minor: self.value_minor,
                min_bill_minor: self.min_bill_minor,
            }),
            Some(bill) if self.min_bill_minor.is_none_or(|min| bill < min) => {
                Err(EngineError::BillTooSmall {
                    code: code.to_string(),
                    value_minor: self.value_minor,
                    bill_minor: bill,
                    share: self.share,
                    min_bill_minor: self.min_bill_minor,
                })
            }
            Some(_) => Ok(()),
        }
    }
}

/// Where a code is used: at the desk, a code with [`BillTerms`] needs the bill it pays;
/// a use reported from elsewhere (the CRM) is taken as made.
#[derive(Debug, Clone, Copy)]
enum UsedAt {
    Desk { bill_minor: Option<i64> },
    Elsewhere,
}

fn min_bill_text(min_bill_minor: Option<i64>) -> String {
    match min_bill_minor {
        Some(m) => format!("it needs one of at least {m}"),
        None => "it cannot be used".to_owned(),
    }
}

impl EngineError {
    fn is_retryable(&self) -> bool {
        matches!(
            self,
            EngineError::Store(StoreError::Retryable(_) | StoreError::Duplicate(_))
        )
    }
}

/// The time source; tests move it by hand.
pub trait Clock: Send + Sync {
    /// Unix milliseconds.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that stands still until told to move.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now_ms: i64) -> ManualClock {
        ManualClock(AtomicI64::new(now_ms))
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

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

mod cards;
mod import;
mod intake;
mod poll;
mod writeback;
pub use cards::{CardPass, CardStore};
pub use import::{ImportObserver, ImportRun, Quiet};
pub use intake::{InboxPass, Intake};
pub use writeback::{
    AdapterSource, CERTIFICATE_GRACE_MS, Resolution, WriteBackOutcome, WriteBackPass,
    WriteBackPolicy,
};

/// The points program's rules over a [`Store`].
#[derive(Clone)]
pub struct LoyaltyEngine {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl LoyaltyEngine {
    pub fn new(store: Arc<dyn Store>) -> LoyaltyEngine {
        LoyaltyEngine::with_clock(store, Arc::new(SystemClock))
    }

    pub fn with_clock(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> LoyaltyEngine {
        LoyaltyEngine { store, clock }
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

    /// Applies one normalized CRM event for a connection, exactly once whatever the order and
    /// number of deliveries.
    pub async fn apply_event(
        &self,
        connection: &CrmConnection,
        event: &CrmEvent,
    ) -> Result<Outcome, EngineError> {
        self.apply_event_from(connection, event, Source::Webhook)
            .await
    }

    /// [`LoyaltyEngine::apply_event`] for an event from `source`: the history row says where
    /// its state came from, and an import of the past tells no client.
    pub async fn apply_event_from(
        &self,
        connection: &CrmConnection,
        event: &CrmEvent,
        source: Source,
    ) -> Result<Outcome, EngineError> {
        if event.company_id() != connection.company_id {
            return Err(EngineError::WrongCompany {
                expected: connection.company_id.clone(),
                got: event.company_id().to_owned(),
            });
        }
        match event {
            CrmEvent::Visit(v) => self.apply_visit(connection, v, source).await,
            CrmEvent::Sale(s) => self.apply_visit(connection, &s.as_visit(), source).await,
            CrmEvent::Client(c) => {
                in_tx!(self, |tx, now| self.client_tx(tx, connection, c, now))
            }
            CrmEvent::Other(o) => {
                in_tx!(self, |tx, now| async {
                    let outcome = Outcome::Ignored;
                    let id = o.resource_id.clone();
                    let d = delivery(connection, &o.resource, id, &outcome, now);
                    tx.record_delivery(connection.partner_id, &d).await?;
                    Ok::<_, EngineError>(outcome)
                })
            }
        }
    }

    /// Applies the current state of a visit record: posts the difference between what the
    /// record should have earned and what it already earned.
    pub async fn apply_visit(
        &self,
        connection: &CrmConnection,
        visit: &VisitEvent,
        source: Source,
    ) -> Result<Outcome, EngineError> {
        if visit.needs_refetch {
            return Err(EngineError::NeedsRefetch {
                record_id: visit.record_id.clone(),
            });
        }
        if let LoyaltyPaid::Ask(_) = visit.loyalty_paid {
            return Err(EngineError::PaymentsUnknown {
                record_id: visit.record_id.clone(),
            });
        }
        if let Some(bad) = visit.lines.iter().find(|l| l.paid_minor < 0) {
            return Err(MoneyError::Negative(bad.paid_minor).into());
        }
        in_tx!(self, |tx, now| self
            .visit_tx(tx, connection, visit, source, now))
    }

    async fn visit_tx(
        &self,
        tx: &mut dyn StoreTx,
        conn: &CrmConnection,
        visit: &VisitEvent,
        source: Source,
        now: i64,
    ) -> Result<Outcome, EngineError> {
        let partner = conn.partner_id;
        let program = program_of(tx, partner).await?;
        if visit.currency != program.currency {
            return Err(EngineError::CurrencyMismatch {
                program: program.currency,
                event: visit.currency,
            });
        }
        // A visit before the connection's points boundary (the imported past) is history only.
        let target = if conn.before_points(visit.visit_at_ms) {
            Points::ZERO
        } else {
            program.target_accrual(visit)?
        };
        let mut state = tx.lock_record(partner, conn.id, &visit.record_id).await?;
        let fingerprint = visit.fingerprint();

        let outcome = if matches!((visit.version, state.version), (Some(new), Some(old)) if new < old)
        {
            Outcome::Stale
        } else if state.fingerprint.as_deref() == Some(fingerprint.as_str())
            && (visit.version.is_none() || visit.version == state.version)
        {
            Outcome::Duplicate
        } else {
            let resolved = match &visit.client {
                Some(r) => resolve_client(tx, conn, r, &CardUpdate::default(), now)
                    .await?
                    .map(|(c, _)| c),
                None => None,
            };
            let before = state.client_id;
            let postings = self
                .settle_record(
                    tx,
                    conn,
                    &program,
                    visit,
                    &mut state,
                    resolved,
                    target,
                    source.notifies(),
                    now,
                )
                .await?;
            state.version = state.version.max(visit.version);
            state.fingerprint = Some(fingerprint);
            state.status = Some(visit.status);
            // The history row is the record's row: points and history change together.
            let row = Visit::of(partner, conn.id, visit, state.client_id, source, now);
            tx.save_record(&state, &row).await?;
            if let Some(client) = state.client_id {
                tx.refresh_summary(partner, client).await?;
            }
            if let Some(moved_from) = before.filter(|b| Some(*b) != state.client_id) {
                tx.refresh_summary(partner, moved_from).await?;
            }
            if postings.is_empty() {
                Outcome::NoChange {
                    client_id: state.client_id,
                }
            } else {
                Outcome::Applied { postings }
            }
        };
        let id = Some(visit.record_id.clone());
        tx.record_delivery(partner, &delivery(conn, "record", id, &outcome, now))
            .await?;
        Ok(outcome)
    }

    /// Brings the record's accrued points to `target`, moving them when the record changed
    /// client. Balances are locked in ascending client id order.
    #[allow(clippy::too_many_arguments)]
    async fn settle_record(
        &self,
        tx: &mut dyn StoreTx,
        conn: &CrmConnection,
        program: &Program,
        visit: &VisitEvent,
        state: &mut RecordState,
        resolved: Option<Client>,
        target: Points,
        tell_client: bool,
        now: i64,
    ) -> Result<Vec<Posting>, EngineError> {
        let partner = conn.partner_id;
        let new_client = match resolved {
            Some(c) => Some(c),
            None => match state.client_id {
                Some(id) => tx.client(partner, id).await?,
                None => None,
            },
        };
        let Some(new_client) = new_client else {
            // Nobody to credit yet; a later delivery naming the client will settle it.
            return Ok(Vec::new());
        };
        let mut steps: Vec<(Client, Points)> = Vec::with_capacity(2);
        match state.client_id {
            Some(old) if old != new_client.id && state.accrued != Points::ZERO => {
                let old_client = tx
                    .client(partner, old)
                    .await?
                    .ok_or(EngineError::UnknownClient(old))?;
                steps.push((old_client, -state.accrued));
                if target != Points::ZERO {
                    steps.push((new_client.clone(), target));
                }
                steps.sort_by_key(|(c, _)| c.id);
            }
            _ => {
                let delta = target - state.accrued;
                if delta != Points::ZERO {
                    steps.push((new_client.clone(), delta));
                }
            }
        }
        state.client_id = Some(new_client.id);

        let record_key = format!("{}:{}", conn.id, visit.record_id);
        let mut postings = Vec::with_capacity(steps.len());
        for (client, delta) in steps {
            state.postings += 1;
            let key = format!("visit:{record_key}:{}", state.postings);
            let balance = tx.lock_balance(partner, client.id).await?;
            let (posting, notification) = if delta.is_positive() {
                let entry = NewEntry {
                    idempotency_key: key,
                    kind: EntryKind::Accrual,
                    debit: Account::Issued,
                    credit: Account::Client(client.id),
                    amount: delta,
                    client_id: client.id,
                    reverses: None,
                    reason: Some(format!("visit {}", visit.record_id)),
                };
                let posting = credit(
                    tx,
                    partner,
                    program,
                    &entry,
                    balance,
                    Some(&record_key),
                    now,
                )
                .await?;
                state.last_accrual = Some(posting.entry_id);
                let note = Notification::Accrued {
                    points: delta,
                    paid_minor: visit.paid_minor(),
                    currency: visit.currency,
                    balance: posting.balance,
                    record_id: visit.record_id.clone(),
                };
                (posting, note)
            } else {
                let amount = -delta;
                let reason = format!("visit {} is {}", visit.record_id, visit.status);
                let entry = NewEntry {
                    idempotency_key: key,
                    kind: EntryKind::Reversal,
                    debit: Account::Client(client.id),
                    credit: Account::Issued,
                    amount,
                    client_id: client.id,
                    reverses: state.last_accrual,
                    reason: Some(reason.clone()),
                };
                let posting = debit(tx, partner, &entry, balance, Some(&record_key), now).await?;
                let note = Notification::Reversed {
                    points: amount,
                    unbacked: posting.unbacked,
                    balance: posting.balance,
                    record_id: visit.record_id.clone(),
                    reason,
                };
                (posting, note)
            };
            state.accrued += delta;
            if tell_client {
                notify(tx, partner, &client, notification, now).await?;
            }
            postings.push(posting);
        }
        Ok(postings)
    }

    async fn client_tx(
        &self,
        tx: &mut dyn StoreTx,
        conn: &CrmConnection,
        event: &ClientEvent,
        now: i64,
    ) -> Result<Outcome, EngineError> {
        program_of(tx, conn.partner_id).await?;
        let r = ClientRef {
            external_id: Some(event.external_id.clone()),
            phone: event.phone.clone(),
            name: event.name.clone(),
        };
        let card = CardUpdate {
            name: None,
            email: event.email.clone().filter(|e| !e.trim().is_empty()),
            birth_date: event.birth_date,
        };
        // A card deleted in the CRM creates nobody; an existing client keeps points and history.
        let resolved = if event.deleted {
            None
        } else {
            resolve_client(tx, conn, &r, &card, now).await?
        };
        let outcome = match resolved {
            Some((client, created)) => Outcome::ClientSynced {
                client_id: client.id,
                created,
            },
            None => Outcome::Ignored,
        };
        let id = Some(event.external_id.clone());
        tx.record_delivery(
            conn.partner_id,
            &delivery(conn, "client", id, &outcome, now),
        )
        .await?;
        Ok(outcome)
    }

    /// Points added by staff. Replaying the same `key` returns the first posting; the same key
    /// with other input is a [`EngineError::Conflict`].
    pub async fn manual_accrual(
        &self,
        partner: PartnerId,
        client: ClientId,
        points: Points,
        reason: &str,
        key: &str,
    ) -> Result<Posting, EngineError> {
        positive(points)?;
        in_tx!(self, |tx, now| self.manual_tx(
            tx,
            partner,
            client,
            points,
            reason,
            key,
            EntryKind::ManualAccrual,
            now
        ))
    }

    /// Points spent at the desk and written off by staff. Never below zero.
    pub async fn manual_debit(
        &self,
        partner: PartnerId,
        client: ClientId,
        points: Points,
        reason: &str,
        key: &str,
    ) -> Result<Posting, EngineError> {
        positive(points)?;
        in_tx!(self, |tx, now| self.manual_tx(
            tx,
            partner,
            client,
            points,
            reason,
            key,
            EntryKind::ManualDebit,
            now
        ))
    }

    #[allow(clippy::too_many_arguments)]
    async fn manual_tx(
        &self,
        tx: &mut dyn StoreTx,
        partner: PartnerId,
        client_id: ClientId,
        points: Points,
        reason: &str,
        key: &str,
        kind: EntryKind,
        now: i64,
    ) -> Result<Posting, EngineError> {
        let program = program_of(tx, partner).await?;
        let client = client_of(tx, partner, client_id).await?;
        let (debit_account, credit_account) = if kind == EntryKind::ManualAccrual {
            (Account::Issued, Account::Client(client_id))
        } else {
            (Account::Client(client_id), Account::Redeemed)
        };
        let entry = NewEntry {
            idempotency_key: format!("manual:{key}"),
            kind,
            debit: debit_account,
            credit: credit_account,
            amount: points,
            client_id,
            reverses: None,
            reason: Some(reason.to_owned()),
        };
        let balance = tx.lock_balance(partner, client_id).await?;
        if let Some(done) = replayed(tx, partner, &entry, balance).await? {
            return Ok(done);
        }
        let posting = if kind == EntryKind::ManualAccrual {
            credit(tx, partner, &program, &entry, balance, None, now).await?
        } else {
            enough(balance, points)?;
            debit(tx, partner, &entry, balance, None, now).await?
        };
        let note = Notification::Manual {
            points: posting.delta,
            balance: posting.balance,
            reason: reason.to_owned(),
        };
        notify(tx, partner, &client, note, now).await?;
        Ok(posting)
    }

    /// Grants the program's welcome bonus once per client; `None` when the program has none
    /// or it was granted already.
    pub async fn grant_welcome_bonus(
        &self,
        partner: PartnerId,
        client_id: ClientId,
    ) -> Result<Option<Posting>, EngineError> {
        in_tx!(self, |tx, now| async {
            let program = program_of(tx, partner).await?;
            let client = client_of(tx, partner, client_id).await?;
            if !program.welcome_bonus.is_positive() {
                return Ok(None);
            }
            let key = format!("welcome:{client_id}");
            let balance = tx.lock_balance(partner, client_id).await?;
            if tx.entry_by_key(partner, &key).await?.is_some() {
                return Ok(None);
            }
            let entry = NewEntry {
                idempotency_key: key,
                kind: EntryKind::Welcome,
                debit: Account::Issued,
                credit: Account::Client(client_id),
                amount: program.welcome_bonus,
                client_id,
                reverses: None,
                reason: Some("welcome bonus".to_owned()),
            };
            let posting = credit(tx, partner, &program, &entry, balance, None, now).await?;
            let note = Notification::Welcome {
                points: posting.delta,
                balance: posting.balance,
            };
            notify(tx, partner, &client, note, now).await?;
            Ok::<_, EngineError>(Some(posting))
        })
    }

    /// Holds points for a redemption: they leave the balance at once. The same `key` returns
    /// the same hold.
    pub async fn hold(
        &self,
        partner: PartnerId,
        client_id: ClientId,
        points: Points,
        key: &str,
    ) -> Result<Hold, EngineError> {
        positive(points)?;
        in_tx!(self, |tx, now| self
            .hold_tx(tx, partner, client_id, points, key, now))
    }

    async fn hold_tx(
        &self,
        tx: &mut dyn StoreTx,
        partner: PartnerId,
        client_id: ClientId,
        points: Points,
        key: &str,
        now: i64,
    ) -> Result<Hold, EngineError> {
        program_of(tx, partner).await?;
        client_of(tx, partner, client_id).await?;
        let balance = tx.lock_balance(partner, client_id).await?;
        if let Some(h) = tx.hold_by_key(partner, key).await? {
            return if h.client_id == client_id && h.amount == points {
                Ok(h)
            } else {
                Err(EngineError::Conflict {
                    key: key.to_owned(),
                })
            };
        }
        enough(balance, points)?;
        let hold = tx.insert_hold(partner, client_id, points, key, now).await?;
        let entry = NewEntry {
            idempotency_key: format!("hold:{key}"),
            kind: EntryKind::Hold,
            debit: Account::Client(client_id),
            credit: Account::Hold(hold.id),
            amount: points,
            client_id,
            reverses: None,
            reason: None,
        };
        debit(tx, partner, &entry, balance, None, now).await?;
        Ok(hold)
    }

    /// Completes a pending hold: the points are spent. Posting twice is a no-op; posting a
    /// voided hold is an error.
    pub async fn post_hold(&self, partner: PartnerId, hold: HoldId) -> Result<Hold, EngineError> {
        self.settle_hold(partner, hold, HoldStatus::Posted).await
    }

    /// Cancels a pending hold: the points go back to the lots they came from.
    pub async fn void_hold(&self, partner: PartnerId, hold: HoldId) -> Result<Hold, EngineError> {
        self.settle_hold(partner, hold, HoldStatus::Voided).await
    }

    async fn settle_hold(
        &self,
        partner: PartnerId,
        hold_id: HoldId,
        to: HoldStatus,
    ) -> Result<Hold, EngineError> {
        in_tx!(self, |tx, now| self
            .settle_hold_tx(tx, partner, hold_id, to, now))
    }

    async fn settle_hold_tx(
        &self,
        tx: &mut dyn StoreTx,
        partner: PartnerId,
        hold_id: HoldId,
        to: HoldStatus,
        now: i64,
    ) -> Result<Hold, EngineError> {
        let mut hold = tx
            .lock_hold(partner, hold_id)
            .await?
            .ok_or(EngineError::UnknownHold(hold_id))?;
        if hold.status == to {
            return Ok(hold);
        }
        if hold.status != HoldStatus::Pending {
            return Err(EngineError::HoldNotPending {
                hold: hold_id,
                status: hold.status.as_str(),
            });
        }
        let client = hold.client_id;
        let (credit_account, kind, suffix) = match to {
            HoldStatus::Voided => (Account::Client(client), EntryKind::HoldVoid, "void"),
            _ => (Account::Redeemed, EntryKind::HoldPost, "post"),
        };
        let entry = NewEntry {
            idempotency_key: format!("hold:{}:{suffix}", hold.idempotency_key),
            kind,
            debit: Account::Hold(hold_id),
            credit: credit_account,
            amount: hold.amount,
            client_id: client,
            reverses: None,
            reason: None,
        };
        if to == HoldStatus::Voided {
            let balance = tx.lock_balance(partner, client).await?;
            let held = tx
                .entry_by_key(partner, &format!("hold:{}", hold.idempotency_key))
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("hold {hold_id} has no entry")))?;
            // Like any credit, returned points repay a debt first (a reversal may have
            // overdrawn the client while the hold was pending); only the rest refills the
            // lots they were drawn from.
            let draws = tx.draws_of(partner, held.id).await?;
            let debt = (-balance).max(Points::ZERO);
            let restore = skip_points(&draws, debt.min(hold.amount));
            tx.insert_entry(partner, &entry, now).await?;
            tx.restore_lots(partner, &restore).await?;
            tx.set_balance(partner, client, balance + hold.amount)
                .await?;
        } else {
            tx.insert_entry(partner, &entry, now).await?;
        }
        tx.set_hold_status(partner, hold_id, to, now).await?;
        hold.status = to;
        Ok(hold)
    }

    /// Exchanges `reward.cost` points of the client for `reward`: the points are held at once
    /// and a code is issued, in one transaction. With [`Strategy::GatewayCode`] the code is
    /// usable at once; the CRM strategies start `Pending`, due for
    /// [`LoyaltyEngine::write_back_due`] to write the reward into `connection`'s CRM. The same
    /// `key` returns the same redemption.
    /// `new_code` draws a code (from the OS's randomness in the gateway); a collision draws
    /// again.
    pub async fn redeem(
        &self,
        partner: PartnerId,
        client_id: ClientId,
        reward: &Reward,
        key: &str,
        target: Target,
        new_code: &(dyn Fn() -> Code + Send + Sync),
    ) -> Result<Redemption, EngineError> {
        if reward.partner_id != partner || !reward.active {
            return Err(EngineError::RewardUnavailable(reward.id));
        }
        let Target {
            strategy,
            connection,
        } = target;
        if strategy != Strategy::GatewayCode && connection.is_none() {
            return Err(EngineError::NoConnection(strategy.as_str()));
        }
        in_tx!(self, |tx, now| async {
            let program = program_of(tx, partner).await?;
            if let Some(r) = tx.redemption_by_key(partner, key).await? {
                return if r.client_id == client_id && r.reward_id == reward.id {
                    Ok(r)
                } else {
                    Err(EngineError::Conflict {
                        key: key.to_owned(),
                    })
                };
            }
            let hold = self
                .hold_tx(
                    tx,
                    partner,
                    client_id,
                    reward.cost,
                    &format!("redeem:{key}"),
                    now,
                )
                .await?;
            let status = match strategy {
                Strategy::GatewayCode => RedemptionStatus::Issued,
                _ => RedemptionStatus::Pending,
            };
            let ttl = i64::from(program.code_ttl_days).saturating_mul(DAY_MS);
            let new = NewRedemption {
                client_id,
                reward_id: reward.id,
                hold_id: hold.id,
                code: new_code(),
                strategy,
                status,
                cost: reward.cost,
                idempotency_key: key.to_owned(),
                expires_at_ms: now.saturating_add(ttl),
                connection_id: connection.filter(|_| strategy != Strategy::GatewayCode),
            };
            Ok::<_, EngineError>(tx.insert_redemption(partner, &new, now).await?)
        })
    }

    /// The code was used: its points are spent. Using it twice is an error; a code past its
    /// date is expired instead (its points come back) and returned so. Nothing about the bill
    /// is checked: the desk goes through [`LoyaltyEngine::use_code_at_desk`]; this is for a
    /// use already made elsewhere (a CRM certificate the CRM reports spent).
    pub async fn use_code(&self, code: &Code) -> Result<Redemption, EngineError> {
        self.settle_redemption(code, RedemptionStatus::Used, UsedAt::Elsewhere)
            .await
    }

    /// A code used at the desk on a bill of `bill_minor` (minor units). A code with
    /// [`BillTerms`] needs the bill, checked in the same transaction that uses it
    /// ([`EngineError::BillNeeded`], [`EngineError::BillTooSmall`]); any other code needs
    /// none, and one that cannot be used says so whatever the bill. Otherwise as
    /// [`LoyaltyEngine::use_code`].
    pub async fn use_code_at_desk(
        &self,
        code: &Code,
        bill_minor: Option<i64>,
    ) -> Result<Redemption, EngineError> {
        if let Some(b) = bill_minor.filter(|b| *b <= 0) {
            return Err(EngineError::NonPositiveAmount(b));
        }
        self.settle_redemption(code, RedemptionStatus::Used, UsedAt::Desk { bill_minor })
            .await
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

    /// The [`BillTerms`] of a redemption of `reward`, if it has any (the program is read only
    /// then).
    pub async fn bill_terms(
        &self,
        r: &Redemption,
        reward: &Reward,
    ) -> Result<Option<BillTerms>, EngineError> {
        let Some(value_minor) = BillTerms::certificate_value(r, reward) else {
            return Ok(None);
        };
        let program = self.program(r.partner_id).await?;
        Ok(Some(BillTerms::new(value_minor, &program)))
    }

    /// Cancels an unused code: its points come back.
    pub async fn cancel_code(&self, code: &Code) -> Result<Redemption, EngineError> {
        self.settle_redemption(code, RedemptionStatus::Cancelled, UsedAt::Elsewhere)
            .await
    }

    /// Expires every issued code past its date, at every partner: its points come back.
    /// Returns how many expired.
    pub async fn expire_codes(&self) -> Result<usize, EngineError> {
        let mut expired = 0;
        loop {
            let due = self.store.due_codes(self.clock.now_ms(), 200).await?;
            if due.is_empty() {
                return Ok(expired);
            }
            for code in &due {
                match self
                    .settle_redemption(code, RedemptionStatus::Expired, UsedAt::Elsewhere)
                    .await
                {
                    Ok(_) => expired += 1,
                    // Used or cancelled meanwhile: nothing to expire.
                    Err(EngineError::CodeNotUsable { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    async fn settle_redemption(
        &self,
        code: &Code,
        to: RedemptionStatus,
        at: UsedAt,
    ) -> Result<Redemption, EngineError> {
        in_tx!(self, |tx, now| async {
            let mut r = tx
                .lock_redemption(code)
                .await?
                .ok_or_else(|| EngineError::UnknownCode(code.to_string()))?;
            // Settling twice the same way is a no-op, except using: a code is used once.
            if r.status == to && to != RedemptionStatus::Used {
                return Ok(r);
            }
            let mut target = to;
            let allowed = match (r.status, to) {
                // The gateway's own codes live by the program's date; a CRM certificate by the
                // CRM's.
                (RedemptionStatus::Issued, RedemptionStatus::Used) => {
                    if now > r.expires_at_ms && r.strategy == Strategy::GatewayCode {
                        target = RedemptionStatus::Expired;
                    }
                    true
                }
                // A CRM certificate is expired only by `close_spent_certificates`, after the
                // CRM said it was not spent.
                (RedemptionStatus::Issued, RedemptionStatus::Expired) => {
                    now > r.expires_at_ms && r.strategy != Strategy::LoyaltyCard
                }
                (from, RedemptionStatus::Cancelled | RedemptionStatus::Failed) => from.is_open(),
                _ => false,
            };
            if !allowed {
                return Err(EngineError::CodeNotUsable {
                    code: code.to_string(),
                    status: r.status.as_str(),
                });
            }
            if let (RedemptionStatus::Used, UsedAt::Desk { bill_minor }) = (target, at) {
                let reward = tx.reward(r.partner_id, r.reward_id).await?;
                if let Some(value_minor) = reward
                    .as_ref()
                    .and_then(|w| BillTerms::certificate_value(&r, w))
                {
                    let program = program_of(tx, r.partner_id).await?;
                    BillTerms::new(value_minor, &program).check(code, bill_minor)?;
                }
            }
            match target {
                RedemptionStatus::Used => {
                    self.settle_hold_tx(tx, r.partner_id, r.hold_id, HoldStatus::Posted, now)
                        .await?;
                }
                _ => {
                    self.settle_hold_tx(tx, r.partner_id, r.hold_id, HoldStatus::Voided, now)
                        .await?;
                }
            }
            tx.set_redemption_status(r.partner_id, r.id, target, now)
                .await?;
            r.status = target;
            Ok::<_, EngineError>(r)
        })
    }

    /// Expires every lot of the partner past its date: each unspent rest is posted to
    /// `program:expired` and the client is told. Returns one posting per client.
    pub async fn expire_due(&self, partner: PartnerId) -> Result<Vec<Posting>, EngineError> {
        let mut postings = Vec::new();
        loop {
            let due = in_tx!(self, |tx, now| async {
                Ok::<_, EngineError>(tx.due_lots(partner, now, 500).await?)
            })?;
            let mut clients: Vec<ClientId> = due.iter().map(|l| l.client_id).collect();
            clients.sort();
            clients.dedup();
            if clients.is_empty() {
                return Ok(postings);
            }
            for client in clients {
                let posting = in_tx!(self, |tx, now| self
                    .expire_client_tx(tx, partner, client, now))?;
                postings.extend(posting);
            }
        }
    }

    async fn expire_client_tx(
        &self,
        tx: &mut dyn StoreTx,
        partner: PartnerId,
        client_id: ClientId,
        now: i64,
    ) -> Result<Option<Posting>, EngineError> {
        let client = client_of(tx, partner, client_id).await?;
        let mut balance = tx.lock_balance(partner, client_id).await?;
        let lots = tx.open_lots(partner, client_id).await?;
        let mut total = Points::ZERO;
        let mut last = None;
        for lot in lots
            .iter()
            .filter(|l| l.expires_at_ms.is_some_and(|at| at <= now))
        {
            // The balance lock makes a double expiry impossible (the lot is read fresh). A
            // voided hold can refill an expired lot, which then expires again, possibly within
            // the same millisecond: the key counts those expiries.
            let base = format!("expire:{}:{now}", lot.id);
            let mut key = base.clone();
            let mut n = 1;
            while tx.entry_by_key(partner, &key).await?.is_some() {
                n += 1;
                key = format!("{base}:{n}");
            }
            let entry = NewEntry {
                idempotency_key: key,
                kind: EntryKind::Expiry,
                debit: Account::Client(client_id),
                credit: Account::Expired,
                amount: lot.remaining,
                client_id,
                reverses: None,
                reason: None,
            };
            let id = tx.insert_entry(partner, &entry, now).await?;
            tx.draw_lots(partner, id, &[(lot.id, lot.remaining)])
                .await?;
            balance -= lot.remaining;
            total += lot.remaining;
            last = Some(id);
        }
        let Some(entry_id) = last else {
            return Ok(None);
        };
        tx.set_balance(partner, client_id, balance).await?;
        let note = Notification::Expired {
            points: total,
            balance,
        };
        notify(tx, partner, &client, note, now).await?;
        Ok(Some(Posting {
            client_id,
            entry_id,
            delta: -total,
            balance,
            unbacked: Points::ZERO,
        }))
    }
}

fn delivery(
    conn: &CrmConnection,
    resource: &str,
    resource_id: Option<String>,
    outcome: &Outcome,
    now: i64,
) -> DeliveryRecord {
    DeliveryRecord {
        connection_id: conn.id,
        resource: resource.to_owned(),
        resource_id,
        outcome: outcome.label().to_owned(),
        delta: outcome.delta(),
        received_at_ms: now,
    }
}

async fn program_of(tx: &mut dyn StoreTx, partner: PartnerId) -> Result<Program, EngineError> {
    tx.program(partner).await.map_err(|e| match e {
        StoreError::NotFound(_) => EngineError::UnknownPartner(partner),
        other => other.into(),
    })
}

async fn client_of(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    client: ClientId,
) -> Result<Client, EngineError> {
    tx.client(partner, client)
        .await?
        .ok_or(EngineError::UnknownClient(client))
}

fn positive(points: Points) -> Result<(), EngineError> {
    if points.is_positive() {
        Ok(())
    } else {
        Err(EngineError::NonPositiveAmount(points.value()))
    }
}

fn enough(balance: Points, wanted: Points) -> Result<(), EngineError> {
    if balance < wanted {
        return Err(EngineError::InsufficientBalance {
            available: balance.max(Points::ZERO),
            requested: wanted,
        });
    }
    Ok(())
}

/// The client a CRM reference names: by its CRM id, else by phone (created when new — a
/// "virtual" client until they link Telegram). `None` when neither identifies anyone.
///
/// The CRM owns the card: a known CRM id whose card now has another phone moves our client to
/// that phone, balance and history with it; when another client of ours already has that phone,
/// the CRM id is pointed at them instead (two cards with one phone are one client here). The
/// name, and from a client's own card the e-mail and birth date, follow the CRM.
async fn resolve_client(
    tx: &mut dyn StoreTx,
    conn: &CrmConnection,
    r: &ClientRef,
    card: &CardUpdate,
    now: i64,
) -> Result<Option<(Client, bool)>, EngineError> {
    let partner = conn.partner_id;
    let known = match &r.external_id {
        Some(ext) => tx.client_by_external_id(partner, conn.id, ext).await?,
        None => None,
    };
    let (mut client, created) = match (known, &r.phone) {
        (Some(c), Some(phone)) if *phone != c.phone => {
            match tx.client_by_phone(partner, phone).await? {
                None => {
                    tx.set_client_phone(partner, c.id, phone).await?;
                    let moved = tx.client(partner, c.id).await?;
                    (moved.ok_or(EngineError::UnknownClient(c.id))?, false)
                }
                Some(holder) => {
                    if let Some(ext) = &r.external_id {
                        tx.relink_external_id(partner, conn.id, ext, holder.id)
                            .await?;
                    }
                    (holder, false)
                }
            }
        }
        (Some(c), _) => (c, false),
        (None, None) => return Ok(None),
        (None, Some(phone)) => {
            let name = r.name.as_deref().filter(|n| !n.trim().is_empty());
            let (c, created) = tx.insert_client(partner, phone, name, now).await?;
            if let Some(ext) = &r.external_id {
                tx.link_external_id(partner, conn.id, ext, c.id).await?;
            }
            (c, created)
        }
    };
    let mut update = CardUpdate {
        name: r
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty() && client.name.as_deref() != Some(*n))
            .map(str::to_owned),
        email: card
            .email
            .clone()
            .filter(|e| client.email.as_ref() != Some(e)),
        birth_date: card.birth_date.filter(|b| client.birth_date != Some(*b)),
    };
    if created {
        update.name = None;
    }
    if !update.is_empty() {
        tx.update_card(partner, client.id, &update).await?;
        if let Some(name) = update.name {
            client.name = Some(name);
        }
        if let Some(email) = update.email {
            client.email = Some(email);
        }
        if let Some(birth) = update.birth_date {
            client.birth_date = Some(birth);
        }
    }
    Ok(Some((client, created)))
}

/// The earlier posting when `entry`'s key was used before with the same input.
async fn replayed(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    entry: &NewEntry,
    balance: Points,
) -> Result<Option<Posting>, EngineError> {
    match tx.entry_by_key(partner, &entry.idempotency_key).await? {
        None => Ok(None),
        Some(done) if done.fingerprint == entry.fingerprint() => Ok(Some(Posting {
            client_id: done.client_id,
            entry_id: done.id,
            delta: done.client_delta(),
            balance,
            unbacked: Points::ZERO,
        })),
        Some(_) => Err(EngineError::Conflict {
            key: entry.idempotency_key.clone(),
        }),
    }
}

/// Posts an entry that credits the client: first repays any debt, the rest becomes a lot with
/// the program's expiry. `balance` is the client's locked balance.
async fn credit(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    program: &Program,
    entry: &NewEntry,
    balance: Points,
    source: Option<&str>,
    now: i64,
) -> Result<Posting, EngineError> {
    let entry_id = tx.insert_entry(partner, entry, now).await?;
    let debt = (-balance).max(Points::ZERO);
    let lot_amount = entry.amount - entry.amount.min(debt);
    if lot_amount.is_positive() {
        let lot = NewLot {
            client_id: entry.client_id,
            entry_id,
            source: source.map(str::to_owned),
            amount: lot_amount,
            expires_at_ms: program
                .points_ttl_days
                .map(|days| now.saturating_add(i64::from(days) * DAY_MS)),
        };
        tx.insert_lot(partner, &lot, now).await?;
    }
    let new_balance = balance + entry.amount;
    tx.set_balance(partner, entry.client_id, new_balance)
        .await?;
    Ok(Posting {
        client_id: entry.client_id,
        entry_id,
        delta: entry.amount,
        balance: new_balance,
        unbacked: Points::ZERO,
    })
}

/// Posts an entry that debits the client, drawing from lots (`prefer_source`'s first, then the
/// oldest). What the lots cannot cover is reported as `unbacked`; only reversals get there,
/// every other caller checks the balance first.
async fn debit(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    entry: &NewEntry,
    balance: Points,
    prefer_source: Option<&str>,
    now: i64,
) -> Result<Posting, EngineError> {
    let lots = tx.open_lots(partner, entry.client_id).await?;
    let plan = plan_draw(&lots, entry.amount, prefer_source);
    let entry_id = tx.insert_entry(partner, entry, now).await?;
    tx.draw_lots(partner, entry_id, &plan.draws).await?;
    let new_balance = balance - entry.amount;
    tx.set_balance(partner, entry.client_id, new_balance)
        .await?;
    Ok(Posting {
        client_id: entry.client_id,
        entry_id,
        delta: -entry.amount,
        balance: new_balance,
        unbacked: plan.shortfall,
    })
}

/// `draws` without their first `skip` points.
fn skip_points(draws: &[(LotId, Points)], skip: Points) -> Vec<(LotId, Points)> {
    let mut left = skip;
    let mut out = Vec::with_capacity(draws.len());
    for &(lot, amount) in draws {
        let skipped = left.min(amount);
        left -= skipped;
        if amount > skipped {
            out.push((lot, amount - skipped));
        }
    }
    out
}

/// Enqueues a notification for a client who linked Telegram and did not opt out.
async fn notify(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    client: &Client,
    notification: Notification,
    now: i64,
) -> Result<(), EngineError> {
    if client.telegram_chat_id.is_none() || client.notifications_off {
        return Ok(());
    }
    let msg = NewOutbox::for_client(client.id, notification, now);
    tx.enqueue(partner, &msg).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_points_drops_the_first_points_across_lots() {
        let draws = [(1, Points(30)), (2, Points(50))];
        assert_eq!(skip_points(&draws, Points(0)), draws.to_vec());
        assert_eq!(skip_points(&draws, Points(40)), vec![(2, Points(40))]);
        assert_eq!(skip_points(&draws, Points(30)), vec![(2, Points(50))]);
        assert!(skip_points(&draws, Points(80)).is_empty());
    }
}
