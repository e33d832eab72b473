//! What the engine needs from a database. `loyalty-store` implements it for PostgreSQL and
//! SQLite; the engine holds an `Arc<dyn Store>`.
//!
//! Every method takes the partner it acts for and touches only that partner's rows. The only
//! cross-partner calls are the outbox worker's ([`OutboxStore`]) and the chats' ([`ChatStore`]),
//! which serve the whole deployment.
//!
//! [`Store`] is composed of one trait per capability (partners, clients, the books, the outbox,
//! chats, rewards); the sync, inbox, history, import, health and quota parts have their own
//! traits beside their types. Each names what its part of the engine needs.
//!
//! Business rules live in the engine; a [`StoreTx`] only reads, locks and writes rows inside
//! one database transaction. Locks are taken in one order — record, then client balances by
//! ascending client id — so concurrent transactions never deadlock.

use async_trait::async_trait;
use serde::Serialize;

use crate::audit::{Actor, AuditStore, AuditTx};
use crate::code::Code;
use crate::event::VisitStatus;
use crate::history::Visit;
use crate::ledger::{
    AccountTotals, LedgerEntry, Lot, LotId, NewEntry, NewLot, NewPendingLot, PendingLot,
};
use crate::level::{LevelReason, Measure, Terms};
use crate::model::{
    Client, ClientId, ConnectionId, CrmConnection, EntryId, HoldId, NewConnection, NewPartner,
    Partner, PartnerId, Program, ProgramVersion, RewardId,
};
use crate::money::Points;
use crate::outbox::{NewOutbox, OutboxMessage};
use crate::phone::Phone;
use crate::redemption::{NewRedemption, Redemption, RedemptionStatus, WriteBack};
use crate::referral::{Referral, ReferralStats};
use crate::reward::{NewReward, Reward};

/// Errors of a store. [`StoreError::Retryable`] is a lost race (deadlock, serialization
/// failure, a busy SQLite file): the engine runs the whole transaction again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("concurrent update, try again: {0}")]
    Retryable(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("already exists: {0}")]
    Duplicate(String),
    #[error("stored row is not valid: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Backend(String),
}

/// What the store remembers of one CRM record (or sale) between deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordState {
    /// The newest version applied.
    pub version: Option<i64>,
    /// [`crate::event::VisitEvent::fingerprint`] of the last applied delivery.
    pub fingerprint: Option<String>,
    pub status: Option<VisitStatus>,
    /// Whose account holds this record's points.
    pub client_id: Option<ClientId>,
    /// Net points posted for this record so far.
    pub accrued: Points,
    /// Entries posted for this record so far; numbers the next entry's idempotency key.
    pub postings: i64,
    /// The last accrual posted for it: what a reversal names.
    pub last_accrual: Option<EntryId>,
    /// The program version and level it was first applied to its client with.
    pub terms: Option<Terms>,
}

/// One change of a client's level, kept for the salon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LevelChange {
    pub client_id: ClientId,
    /// `None`: the program's first level.
    pub from: Option<String>,
    pub to: Option<String>,
    pub reason: LevelReason,
    /// The qualifying measure then, in the program's unit.
    pub measure: i64,
    /// Who set it, for a level set by hand.
    pub actor: Option<String>,
    pub at_ms: i64,
}

/// The outcome of one delivery, kept for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryRecord {
    pub connection_id: ConnectionId,
    pub resource: String,
    pub resource_id: Option<String>,
    pub outcome: String,
    pub delta: Points,
    pub received_at_ms: i64,
}

/// A two-phase hold on a client's points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    pub id: HoldId,
    pub partner_id: PartnerId,
    pub client_id: ClientId,
    pub amount: Points,
    pub status: HoldStatus,
    pub idempotency_key: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Pending,
    Posted,
    Voided,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Pending => "pending",
            HoldStatus::Posted => "posted",
            HoldStatus::Voided => "voided",
        }
    }

    pub fn parse(s: &str) -> Option<HoldStatus> {
        match s {
            "pending" => Some(HoldStatus::Pending),
            "posted" => Some(HoldStatus::Posted),
            "voided" => Some(HoldStatus::Voided),
            _ => None,
        }
    }
}

/// A Telegram chat that shared a phone with the bot (deployment-wide: one person may be a
/// client of several salons).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TelegramChat {
    pub chat_id: i64,
    /// The phone the chat shared, once it did.
    pub phone: Option<Phone>,
    /// `ru` or `en`: what the bot speaks to this chat.
    pub language: String,
    /// False once Telegram said the user blocked the bot; a new message from them revives it.
    pub active: bool,
    /// The salon whose link started the chat (`/start s<id>`): sharing a phone makes the
    /// person that salon's client, and the salon may have them created in its CRM.
    pub joined_partner: Option<PartnerId>,
    /// The client of that salon whose link (`/start r<id>_<client>`) started the chat.
    pub referred_by: Option<ClientId>,
}

/// Gauges of the outbox, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct OutboxStats {
    pub pending: i64,
    pub dead: i64,
    /// When the oldest pending message was enqueued (Unix ms).
    pub oldest_pending_created_ms: Option<i64>,
}

/// CRM-owned fields of a client's card to write; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardUpdate {
    pub name: Option<String>,
    pub email: Option<String>,
    pub birth_date: Option<crate::model::BirthDate>,
}

impl CardUpdate {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.email.is_none() && self.birth_date.is_none()
    }
}

/// One database transaction. Dropping it without [`StoreTx::commit`] rolls it back.
///
/// Composed of one trait per part of a transaction's work, below.
#[async_trait]
pub trait StoreTx:
    RecordTx
    + ClientTx
    + LedgerTx
    + PendingTx
    + CampaignTx
    + crate::custom::TriggerTx
    + ReferralTx
    + OfferTx
    + LevelTx
    + HoldTx
    + RedemptionTx
    + OutboxTx
    + AuditTx
    + crate::seal::AnswerTx
    + Send
{
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// A CRM record in a transaction: its state (locked), its history row and the client's summary, the delivery log.
#[async_trait]
pub trait RecordTx: Send {
    /// The state of a record, created empty on first sight, locked until commit.
    async fn lock_record(
        &mut self,
        partner: PartnerId,
        connection: ConnectionId,
        record_id: &str,
    ) -> Result<RecordState, StoreError>;

    /// Saves the record's state and its history row (`visit` names the partner, connection,
    /// record and time) in one write.
    async fn save_record(&mut self, state: &RecordState, visit: &Visit) -> Result<(), StoreError>;

    /// Recomputes the client's summary from their records that came, and returns what came at
    /// or after `level_from_ms` (the level measure's window; `i64::MIN` for all time).
    async fn refresh_summary(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        level_from_ms: i64,
    ) -> Result<Measure, StoreError>;

    async fn record_delivery(
        &mut self,
        partner: PartnerId,
        delivery: &DeliveryRecord,
    ) -> Result<(), StoreError>;
}

/// Clients in a transaction: found, created, their card and phone and CRM ids changed.
#[async_trait]
pub trait ClientTx: Send {
    async fn client(
        &mut self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Option<Client>, StoreError>;

    async fn client_by_phone(
        &mut self,
        partner: PartnerId,
        phone: &Phone,
    ) -> Result<Option<Client>, StoreError>;

    async fn client_by_external_id(
        &mut self,
        partner: PartnerId,
        connection: ConnectionId,
        external_id: &str,
    ) -> Result<Option<Client>, StoreError>;

    /// Creates the client unless one with this phone exists; returns it and whether it is new.
    async fn insert_client(
        &mut self,
        partner: PartnerId,
        phone: &Phone,
        name: Option<&str>,
        now_ms: i64,
    ) -> Result<(Client, bool), StoreError>;

    /// Writes the CRM-owned fields of the client's card that `card` carries (a `None` field is
    /// left as it is).
    async fn update_card(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        card: &CardUpdate,
    ) -> Result<(), StoreError>;

    /// Moves the client to another phone (the CRM changed the card's number), linked to the
    /// Telegram chat that shared the new one, if any. The phone must be free at the partner.
    async fn set_client_phone(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        phone: &Phone,
    ) -> Result<(), StoreError>;

    /// Points a CRM id at another client (the card now has a number another client holds).
    async fn relink_external_id(
        &mut self,
        partner: PartnerId,
        connection: ConnectionId,
        external_id: &str,
        client: ClientId,
    ) -> Result<(), StoreError>;

    /// Remembers the client's id in a CRM; a mapping that exists is left as it is.
    async fn link_external_id(
        &mut self,
        partner: PartnerId,
        connection: ConnectionId,
        external_id: &str,
        client: ClientId,
    ) -> Result<(), StoreError>;
}

/// The program and the books in a transaction: balances (locked), lots, entries.
#[async_trait]
pub trait LedgerTx: Send {
    /// The partner's newest program version; [`StoreError::NotFound`] for an unknown partner.
    async fn program(&mut self, partner: PartnerId) -> Result<ProgramVersion, StoreError>;

    /// The version in force at `at_ms`: the newest in force from then or earlier, else the
    /// first.
    async fn program_in_force(
        &mut self,
        partner: PartnerId,
        at_ms: i64,
    ) -> Result<ProgramVersion, StoreError>;

    /// One version by number.
    async fn program_version(
        &mut self,
        partner: PartnerId,
        version: i64,
    ) -> Result<ProgramVersion, StoreError>;

    /// The client's materialized balance, created at zero on first use, locked until commit.
    async fn lock_balance(
        &mut self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Points, StoreError>;

    async fn set_balance(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        balance: Points,
    ) -> Result<(), StoreError>;

    /// The client's lots that still hold points.
    async fn open_lots(
        &mut self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Vec<Lot>, StoreError>;

    async fn insert_lot(
        &mut self,
        partner: PartnerId,
        lot: &NewLot,
        now_ms: i64,
    ) -> Result<LotId, StoreError>;

    /// Takes points from lots and remembers, under `entry`, what was drawn from each so that
    /// a voided hold can give them back.
    async fn draw_lots(
        &mut self,
        partner: PartnerId,
        entry: EntryId,
        draws: &[(LotId, Points)],
    ) -> Result<(), StoreError>;

    /// Gives points back to lots (a voided hold).
    async fn restore_lots(
        &mut self,
        partner: PartnerId,
        draws: &[(LotId, Points)],
    ) -> Result<(), StoreError>;

    /// What `entry` drew from each lot.
    async fn draws_of(
        &mut self,
        partner: PartnerId,
        entry: EntryId,
    ) -> Result<Vec<(LotId, Points)>, StoreError>;

    /// The entry posted under this key, if any.
    async fn entry_by_key(
        &mut self,
        partner: PartnerId,
        key: &str,
    ) -> Result<Option<LedgerEntry>, StoreError>;

    /// Appends an entry. [`StoreError::Duplicate`] when the key was taken meanwhile.
    async fn insert_entry(
        &mut self,
        partner: PartnerId,
        entry: &NewEntry,
        now_ms: i64,
    ) -> Result<EntryId, StoreError>;

    /// Lots of this partner past their expiry that still hold points (not locked).
    async fn due_lots(
        &mut self,
        partner: PartnerId,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<Lot>, StoreError>;
}

/// Pending points in a transaction: the client's pending total (its row is the balance's, so
/// [`LedgerTx::lock_balance`] locks it too) and the pending lots.
#[async_trait]
pub trait PendingTx: Send {
    /// The client's pending points; read under the balance lock.
    async fn pending_points(
        &mut self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Points, StoreError>;

    async fn set_pending_points(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        pending: Points,
    ) -> Result<(), StoreError>;

    async fn insert_pending_lot(
        &mut self,
        partner: PartnerId,
        lot: &NewPendingLot,
        now_ms: i64,
    ) -> Result<LotId, StoreError>;

    /// The client's pending lots that still hold points, oldest first.
    async fn open_pending_lots(
        &mut self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Vec<PendingLot>, StoreError>;

    /// Takes points from pending lots.
    async fn draw_pending_lots(
        &mut self,
        partner: PartnerId,
        draws: &[(LotId, Points)],
    ) -> Result<(), StoreError>;

    /// Pending lots of this partner due to mature by `now_ms` (not locked), oldest first.
    async fn due_pending_lots(
        &mut self,
        partner: PartnerId,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<PendingLot>, StoreError>;
}

/// Campaign limits in a transaction: what visits reserved of a limited campaign.
#[async_trait]
pub trait CampaignTx: Send {
    /// Σ of what the client's visits at `[from_ms, to_ms)` reserved of `campaign`.
    async fn campaign_used(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        campaign: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Points, StoreError>;

    /// Records what a visit (`record_key`, at `visit_at_ms`) reserved of `campaign`; once.
    async fn reserve_campaign(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        campaign: &str,
        record_key: &str,
        visit_at_ms: i64,
        points: Points,
    ) -> Result<(), StoreError>;
}

/// Referrals in a transaction.
#[async_trait]
pub trait ReferralTx: Send {
    /// Records that `referrer` invited `friend`; false when the friend was referred already.
    async fn insert_referral(
        &mut self,
        partner: PartnerId,
        referrer: ClientId,
        friend: ClientId,
        now_ms: i64,
    ) -> Result<bool, StoreError>;

    /// The referral of `friend`, locked until commit.
    async fn lock_referral_of(
        &mut self,
        partner: PartnerId,
        friend: ClientId,
    ) -> Result<Option<Referral>, StoreError>;

    /// Saves what a referral's visit, points and postings now are.
    async fn save_referral(&mut self, partner: PartnerId, r: &Referral) -> Result<(), StoreError>;

    /// How many of `referrer`'s referrals are paid by a visit at `[from_ms, to_ms)`.
    async fn referrals_paid_in(
        &mut self,
        partner: PartnerId,
        referrer: ClientId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<i64, StoreError>;
}

/// Personal offers in a transaction: what a visit may earn under them.
#[async_trait]
pub trait OfferTx: Send {
    /// The client's offers a visit may touch, locked until commit: the one already posted for
    /// `record_key` (first), then those sent by `at_ms`, valid at it and posted for no visit,
    /// oldest first.
    async fn lock_offers_for(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        record_key: &str,
        at_ms: i64,
    ) -> Result<Vec<crate::offer::Offer>, StoreError>;

    /// Saves what an offer's visit, posted benefit and postings now are.
    async fn save_offer(&mut self, offer: &crate::offer::Offer) -> Result<(), StoreError>;
}

/// Reads of referrals.
#[async_trait]
pub trait ReferralStore: Send + Sync {
    /// What a client's link has brought.
    async fn referral_stats(
        &self,
        partner: PartnerId,
        referrer: ClientId,
    ) -> Result<ReferralStats, StoreError>;
}

/// Two-phase holds in a transaction.
#[async_trait]
pub trait HoldTx: Send {
    async fn hold_by_key(
        &mut self,
        partner: PartnerId,
        key: &str,
    ) -> Result<Option<Hold>, StoreError>;

    async fn insert_hold(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        amount: Points,
        key: &str,
        now_ms: i64,
    ) -> Result<Hold, StoreError>;

    /// The hold, locked until commit.
    async fn lock_hold(
        &mut self,
        partner: PartnerId,
        hold: HoldId,
    ) -> Result<Option<Hold>, StoreError>;

    async fn set_hold_status(
        &mut self,
        partner: PartnerId,
        hold: HoldId,
        status: HoldStatus,
        now_ms: i64,
    ) -> Result<(), StoreError>;
}

/// Redemptions and their rewards in a transaction.
#[async_trait]
pub trait RedemptionTx: Send {
    /// The redemption made under this key, if any.
    async fn redemption_by_key(
        &mut self,
        partner: PartnerId,
        key: &str,
    ) -> Result<Option<Redemption>, StoreError>;

    /// A reward of the partner's catalog, removed or not.
    async fn reward(
        &mut self,
        partner: PartnerId,
        id: RewardId,
    ) -> Result<Option<Reward>, StoreError>;

    /// The redemption with this code, at any partner (staff type only the code), locked until
    /// commit.
    async fn lock_redemption(&mut self, code: &Code) -> Result<Option<Redemption>, StoreError>;

    /// [`StoreError::Duplicate`] when the code is taken (draw another).
    async fn insert_redemption(
        &mut self,
        partner: PartnerId,
        redemption: &NewRedemption,
        now_ms: i64,
    ) -> Result<Redemption, StoreError>;

    async fn set_redemption_status(
        &mut self,
        partner: PartnerId,
        id: i64,
        status: RedemptionStatus,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Saves how far writing the reward into the CRM got.
    async fn set_write_back(
        &mut self,
        partner: PartnerId,
        id: i64,
        write_back: &WriteBack,
        now_ms: i64,
    ) -> Result<(), StoreError>;
}

/// The outbox in a transaction: a message is queued with what it tells.
#[async_trait]
pub trait OutboxTx: Send {
    async fn enqueue(&mut self, partner: PartnerId, msg: &NewOutbox) -> Result<(), StoreError>;
}

/// Levels in a transaction: a client's level set with a compare-and-set, its floor, the log.
#[async_trait]
pub trait LevelTx: Send {
    /// Sets the client's level to `level` (`None`: the first) holding since `since_ms`, only
    /// if it is still `expected`; whether it was.
    async fn set_level(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        expected: Option<&str>,
        level: Option<&str>,
        since_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Sets (or with `None` clears) the level staff set by hand.
    async fn set_level_floor(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        floor: Option<&str>,
    ) -> Result<(), StoreError>;

    async fn insert_level_change(
        &mut self,
        partner: PartnerId,
        change: &LevelChange,
    ) -> Result<(), StoreError>;

    /// What came for the client at or after `from_ms`.
    async fn measure(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        from_ms: i64,
    ) -> Result<Measure, StoreError>;
}

/// Birthdays: who has one on given days.
#[async_trait]
pub trait BirthdayStore: Send + Sync {
    /// The partner's clients whose birthday (month, day) is one of `days`, by id.
    async fn clients_born_on(
        &self,
        partner: PartnerId,
        days: &[(u8, u8)],
    ) -> Result<Vec<Client>, StoreError>;
}

/// Levels outside a transaction: who is due a review, the log, a client's measure.
#[async_trait]
pub trait LevelStore: Send + Sync {
    /// Up to `limit` clients above the first level whose level has held since `cutoff_ms` or
    /// earlier.
    async fn level_reviews_due(
        &self,
        partner: PartnerId,
        cutoff_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClientId>, StoreError>;

    /// The client's level changes, oldest first.
    async fn level_changes(
        &self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Vec<LevelChange>, StoreError>;

    /// What came for the client at or after `from_ms`.
    async fn client_measure(
        &self,
        partner: PartnerId,
        client: ClientId,
        from_ms: i64,
    ) -> Result<Measure, StoreError>;
}

/// The database behind the engine, the CLI and the workers: every capability below, and
/// write transactions. An embedder that needs only part of it implements only those traits.
#[async_trait]
pub trait Store:
    PartnerStore
    + ClientStore
    + LedgerStore
    + LevelStore
    + BirthdayStore
    + ReferralStore
    + AuditStore
    + OutboxStore
    + ChatStore
    + RewardStore
    + Send
    + Sync
{
    /// Starts a write transaction.
    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError>;
}

/// Partners, their programs and their CRM connections.
#[async_trait]
pub trait PartnerStore: Send + Sync {
    async fn create_partner(
        &self,
        partner: &NewPartner,
        now_ms: i64,
    ) -> Result<Partner, StoreError>;

    async fn partner(&self, id: PartnerId) -> Result<Option<Partner>, StoreError>;

    /// Makes `program` the partner's newest version, in force from `effective_from_ms` (never
    /// before the version it follows), and logs who changed it; `NotFound` for an unknown
    /// partner.
    async fn set_program(
        &self,
        partner: PartnerId,
        program: &Program,
        effective_from_ms: i64,
        actor: &Actor,
    ) -> Result<ProgramVersion, StoreError>;

    /// Every partner, by id: for the passes that visit each program.
    async fn partner_ids(&self) -> Result<Vec<PartnerId>, StoreError>;

    /// Every version of the partner's program, oldest first.
    async fn program_versions(&self, partner: PartnerId)
    -> Result<Vec<ProgramVersion>, StoreError>;

    async fn create_connection(
        &self,
        connection: &NewConnection,
        now_ms: i64,
    ) -> Result<CrmConnection, StoreError>;

    /// A connection by id.
    async fn connection(&self, id: ConnectionId) -> Result<Option<CrmConnection>, StoreError>;

    /// The partner's connections, by id.
    async fn connections_of(&self, partner: PartnerId) -> Result<Vec<CrmConnection>, StoreError>;

    /// The partner's desk connection ([`crate::CrmKind::Desk`]): the visits entered at the desk
    /// and imported from files. Made on first use, once however many ask at the same time.
    async fn desk_connection(
        &self,
        partner: PartnerId,
        now_ms: i64,
    ) -> Result<CrmConnection, StoreError>;

    /// The connection a webhook URL's secret names (the webhook's only authentication).
    async fn connection_by_secret(&self, secret: &str)
    -> Result<Option<CrmConnection>, StoreError>;
}

/// A partner's clients, and each one's Telegram link and notification setting.
#[async_trait]
pub trait ClientStore: Send + Sync {
    async fn client_by_phone(
        &self,
        partner: PartnerId,
        phone: &Phone,
    ) -> Result<Option<Client>, StoreError>;

    async fn client(
        &self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Option<Client>, StoreError>;

    /// Links (or with `None` unlinks) the client's Telegram chat.
    async fn set_telegram_chat(
        &self,
        partner: PartnerId,
        client: ClientId,
        chat_id: Option<i64>,
    ) -> Result<(), StoreError>;

    async fn set_notifications_off(
        &self,
        partner: PartnerId,
        client: ClientId,
        off: bool,
    ) -> Result<(), StoreError>;
}

/// Reads of the books: balances, entries, lots, totals, holds, the delivery log.
#[async_trait]
pub trait LedgerStore: Send + Sync {
    /// The materialized balance (zero for a client without entries).
    async fn balance(&self, partner: PartnerId, client: ClientId) -> Result<Points, StoreError>;

    /// The client's pending points: earned, not yet spendable (zero without any).
    async fn pending(&self, partner: PartnerId, client: ClientId) -> Result<Points, StoreError>;

    /// The partners, of the whole deployment, with pending points due to mature, by id.
    async fn partners_with_due_pending(&self, now_ms: i64) -> Result<Vec<PartnerId>, StoreError>;

    /// The client's entries, newest first.
    async fn history(
        &self,
        partner: PartnerId,
        client: ClientId,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, StoreError>;

    /// Σ of the ledger entries that touch the client's account.
    async fn ledger_balance(
        &self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Points, StoreError>;

    /// Σ remaining of the client's lots.
    async fn lots_remaining(
        &self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Points, StoreError>;

    /// The partner's ledger totals by account category.
    async fn account_totals(&self, partner: PartnerId) -> Result<AccountTotals, StoreError>;

    /// Number of ledger entries of the partner (the ledger only grows).
    async fn entry_count(&self, partner: PartnerId) -> Result<i64, StoreError>;

    /// The partners, of the whole deployment, with a lot past its date and not used up, by id.
    async fn partners_with_due_lots(&self, now_ms: i64) -> Result<Vec<PartnerId>, StoreError>;

    async fn hold(&self, partner: PartnerId, hold: HoldId) -> Result<Option<Hold>, StoreError>;

    /// The partner's latest deliveries and what each did, newest first.
    async fn recent_deliveries(
        &self,
        partner: PartnerId,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
}

/// The Telegram outbox, for the operator and the worker (the whole deployment's).
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// The partner's outbox messages in id order, any state (for the operator and tests).
    async fn outbox_of(&self, partner: PartnerId) -> Result<Vec<OutboxMessage>, StoreError>;

    /// Claims up to `limit` due messages across all partners, at most one per partition (the
    /// oldest unsent), leasing them for `lease_ms`: a claimed message is invisible to other
    /// workers until the lease ends or it is settled. Safe with any number of workers.
    async fn claim_outbox(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError>;

    /// The message was delivered.
    async fn outbox_sent(&self, id: i64, now_ms: i64) -> Result<(), StoreError>;

    /// The message failed: try again at `retry_at_ms`, or with `None` move it to dead letters.
    async fn outbox_failed(
        &self,
        id: i64,
        retry_at_ms: Option<i64>,
        error: &str,
    ) -> Result<(), StoreError>;

    /// The message was not tried (its bot waits out a 429): back in line at `run_at_ms`, its
    /// claim not counted as an attempt.
    async fn outbox_later(&self, id: i64, run_at_ms: i64) -> Result<(), StoreError>;

    /// Puts a dead message back in line, attempts reset.
    async fn outbox_replay(&self, id: i64, now_ms: i64) -> Result<bool, StoreError>;

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError>;
}

/// Telegram chats: who they are linked to, and which salons' staff they belong to (the whole deployment's).
#[async_trait]
pub trait ChatStore: Send + Sync {
    async fn telegram_chat(&self, chat_id: i64) -> Result<Option<TelegramChat>, StoreError>;

    /// Creates or replaces the chat's row.
    async fn save_telegram_chat(&self, chat: &TelegramChat, now_ms: i64) -> Result<(), StoreError>;

    /// Links the chat, through the deployment's bot, to the client with this phone at every
    /// partner that has no bot of its own (and unlinks it from such clients with another
    /// phone); returns the linked clients. A client created later with this phone is linked
    /// when it is created (at a partner without its own bot).
    async fn link_chat(&self, phone: &Phone, chat_id: i64) -> Result<Vec<Client>, StoreError>;

    /// The clients this chat is linked to through the deployment's bot.
    async fn clients_of_chat(&self, chat_id: i64) -> Result<Vec<Client>, StoreError> {
        self.clients_of_chat_via(chat_id, 0).await
    }

    /// The clients this chat is linked to through one bot: `bot` 0 is the deployment's, any
    /// other a salon's own bot (its Telegram id). Each bot sees only its own links.
    async fn clients_of_chat_via(&self, chat_id: i64, bot: i64) -> Result<Vec<Client>, StoreError>;

    /// Links the chat, through the salon's own bot `bot`, to that salon's client with this
    /// phone (and unlinks it from the salon's clients with another phone linked through it).
    async fn link_chat_via(
        &self,
        bot: i64,
        partner: PartnerId,
        phone: &Phone,
        chat_id: i64,
    ) -> Result<Vec<Client>, StoreError>;

    /// The bot the client's chat was linked through: 0 the deployment's.
    async fn chat_bot_of(&self, partner: PartnerId, client: ClientId) -> Result<i64, StoreError>;

    /// Forgets the client's chat (it blocked the salon's own bot): she is no longer reached
    /// in Telegram until she links again.
    async fn unlink_chat(&self, partner: PartnerId, client: ClientId) -> Result<(), StoreError>;

    /// Lets the chat check and use the partner's codes in the bot; adding twice is a no-op.
    async fn add_staff_chat(
        &self,
        partner: PartnerId,
        chat_id: i64,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// The partners whose staff the chat belongs to.
    async fn staff_partners(&self, chat_id: i64) -> Result<Vec<PartnerId>, StoreError>;
}

/// The rewards catalog and the redemptions made of it.
#[async_trait]
pub trait RewardStore: Send + Sync {
    async fn create_reward(
        &self,
        partner: PartnerId,
        reward: &NewReward,
        now_ms: i64,
    ) -> Result<Reward, StoreError>;

    /// The partner's rewards by id; removed ones only with `include_removed`.
    async fn rewards(
        &self,
        partner: PartnerId,
        include_removed: bool,
    ) -> Result<Vec<Reward>, StoreError>;

    async fn reward(&self, partner: PartnerId, id: RewardId) -> Result<Option<Reward>, StoreError>;

    /// Takes a reward off the catalog; false when it was not there.
    async fn remove_reward(&self, partner: PartnerId, id: RewardId) -> Result<bool, StoreError>;

    /// The redemption with this code, at any partner (staff type only the code).
    async fn redemption_by_code(&self, code: &Code) -> Result<Option<Redemption>, StoreError>;

    /// Issued CRM certificates of every partner with an id above `after_id`, by id: the ones
    /// whose use at the desk the CRM may report.
    async fn issued_certificates(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<Redemption>, StoreError>;

    /// Pending redemptions of every partner whose CRM write-back is due, most overdue first.
    async fn due_write_backs(&self, now_ms: i64, limit: u32)
    -> Result<Vec<Redemption>, StoreError>;

    /// Gateway codes of every partner still issued after their date, oldest first. CRM
    /// certificates follow the CRM's own expiry.
    async fn due_codes(&self, now_ms: i64, limit: u32) -> Result<Vec<Code>, StoreError>;

    /// The client's redemptions, newest first.
    async fn redemptions_of(
        &self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Vec<Redemption>, StoreError>;
}
