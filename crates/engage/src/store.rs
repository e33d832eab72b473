//! What a scan asks of the store, and what the reminders' worker and the bot record.
//!
//! Every scan query is partner-scoped and set-based: a page of clients in one statement (their
//! summary row, balance, points expiring, chat, consent), their recorded reminders in another.
//! `loyalty-store` implements it on PostgreSQL and SQLite.

use async_trait::async_trait;
use loyalty_core::engage::Texts;
use loyalty_core::history::Rhythm;
use loyalty_core::{ClientId, ConnectionId, PartnerId, StoreError};
use serde::{Deserialize, Serialize};

use crate::Snapshot;
use crate::risk::SalonModel;
use crate::uplift::Arm;

/// What a reminder says: the facts its text is filled with, rendered when it is sent, in the
/// chat's language (the built-in text of its trigger, or the salon's own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminder {
    pub trigger: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The balance, or the points expiring.
    pub points: i64,
    /// Days away, late, or since the first visit.
    pub days: i64,
    /// The expiry or birthday date, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// The program's birthday points, for the birthday trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday_points: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Texts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_url: Option<String>,
    /// The personal offer it carries: made an offer (valid from the moment it is sent) when it
    /// goes out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<loyalty_core::offer::OfferTerms>,
    /// A custom trigger's: the client's level and the visit's master, for `{level}` and
    /// `{master}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
}

/// A decision to record under its once key.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSend {
    pub client: ClientId,
    pub trigger: String,
    pub cycle: String,
    /// Held out (the control group) rather than sent.
    pub control: bool,
    /// How it goes out.
    pub channel: crate::Channel,
    pub why: String,
    pub reminder: Reminder,
    pub decided_at_ms: i64,
}

/// A row of `analytics offers`: one variant of one trigger's offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfferTotals {
    pub trigger: String,
    pub variant: String,
    pub sent: u64,
    pub sent_recently: u64,
    pub posted: u64,
    pub posted_points: i64,
}

/// A reminder claimed for sending.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedReminder {
    pub id: i64,
    pub partner: PartnerId,
    pub client: ClientId,
    pub chat_id: i64,
    pub language: String,
    pub reminder: Reminder,
    pub attempts: i32,
}

/// A reminder claimed for sending by SMS, through the CRM connection that knows the client.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedSms {
    pub id: i64,
    pub partner: PartnerId,
    pub client: ClientId,
    pub connection: ConnectionId,
    /// The client's id in that CRM.
    pub external_id: String,
    pub reminder: Reminder,
    pub attempts: i32,
}

/// A row of `engage list`: a recorded reminder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SendRow {
    pub id: i64,
    pub client_id: ClientId,
    pub trigger: String,
    pub cycle: String,
    pub status: String,
    pub channel: String,
    pub why: String,
    pub decided_at_ms: i64,
    pub sent_at_ms: Option<i64>,
    pub snoozed: bool,
}

/// Consent kinds: marketing messages in Telegram and by SMS (38-FZ art. 18), and the
/// personal-data notice (152-FZ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentKind {
    Marketing,
    MarketingSms,
    PersonalData,
}

impl ConsentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentKind::Marketing => "marketing",
            ConsentKind::MarketingSms => "marketing_sms",
            ConsentKind::PersonalData => "personal_data",
        }
    }
}

/// One line of a client's consent log, as given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentEntry {
    pub kind: String,
    pub granted: bool,
    pub channel: String,
    pub text: String,
    pub at_ms: i64,
}

/// A trigger's two arms: those sent the message (whatever became of it) and those held out,
/// each decided at least the window ago, and who of them came back within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerArms {
    pub partner: PartnerId,
    pub trigger: String,
    pub treated: Arm,
    pub control: Arm,
}

/// A page of a scan's clients, and whether it is the salon's last.
#[derive(Debug, Clone, Default)]
pub struct Snapshots {
    /// Each client with their name.
    pub clients: Vec<(Snapshot, Option<String>)>,
    pub last: bool,
}

/// A page of a scan: clients with an id above the previous page's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub after: ClientId,
    pub limit: u32,
}

#[async_trait]
pub trait EngageStore: Send + Sync {
    /// The salt of the salon's control-group draw.
    async fn engage_salt(&self, partner: PartnerId) -> Result<u64, StoreError>;

    /// A page of clients' rhythms (the salon's typical gaps are measured over all of them).
    async fn rhythms(
        &self,
        partner: PartnerId,
        page: Page,
    ) -> Result<Vec<(ClientId, Rhythm)>, StoreError>;

    /// A page of clients as the triggers read them at `now_ms`, with the points that expire
    /// before `expiring_until_ms`. Their SMS reach is read only `with_sms` (the salon sends
    /// SMS); otherwise `Snapshot::sms` is false and costs nothing.
    async fn snapshots(
        &self,
        partner: PartnerId,
        now_ms: i64,
        expiring_until_ms: i64,
        page: Page,
        with_sms: bool,
    ) -> Result<Snapshots, StoreError>;

    /// Records decisions, each once under `(client, trigger, cycle)`: a sent one is queued for
    /// the reminders' worker, a held-out one kept as control. Returns how many were new.
    async fn record_sends(&self, partner: PartnerId, sends: &[NewSend]) -> Result<u64, StoreError>;

    /// Takes the salon's scan for `lease_ms` unless another instance holds it.
    async fn lease_scan(
        &self,
        partner: PartnerId,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Ends a scan: its report kept, the lease given back.
    async fn finish_scan(
        &self,
        partner: PartnerId,
        owner: &str,
        now_ms: i64,
        report: &str,
    ) -> Result<(), StoreError>;

    /// When the salon was last scanned, and what the scan found.
    async fn last_scan(&self, partner: PartnerId) -> Result<Option<(i64, String)>, StoreError>;

    /// What the visits that came since `since_ms` say of each of `clients` (ascending ids):
    /// masters, services, bills. Clients without such a visit are left out.
    async fn offer_profiles(
        &self,
        partner: PartnerId,
        clients: &[ClientId],
        since_ms: i64,
    ) -> Result<std::collections::HashMap<ClientId, crate::offers::Profile>, StoreError>;

    /// The services the salon's clients had together in visits that came since `since_ms`.
    async fn service_baskets(
        &self,
        partner: PartnerId,
        since_ms: i64,
    ) -> Result<crate::offers::Cooccurrence, StoreError>;

    /// Per trigger and variant, the offers sent at least `window_ms` before `now_ms` and how
    /// many of their clients came within `window_ms` of it.
    async fn offer_arms(
        &self,
        partner: PartnerId,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<Vec<crate::offers::VariantArm>, StoreError>;

    /// Per trigger and variant: offers sent, those sent since `since_ms`, and those whose
    /// benefit is posted now with its points.
    async fn offer_totals(
        &self,
        partner: PartnerId,
        since_ms: i64,
    ) -> Result<Vec<OfferTotals>, StoreError>;

    /// The client's offers at the salon, newest first (live ones and past).
    async fn client_offers(
        &self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Vec<loyalty_core::offer::Offer>, StoreError>;

    /// The salon's churn and value model as last built.
    async fn salon_model(&self, partner: PartnerId) -> Result<Option<SalonModel>, StoreError>;

    /// Keeps `model` as the salon's, in place of the one before.
    async fn save_salon_model(
        &self,
        partner: PartnerId,
        model: &SalonModel,
    ) -> Result<(), StoreError>;

    /// Logs a consent given or withdrawn, as given; marketing's is then the one in force.
    #[allow(clippy::too_many_arguments)]
    async fn set_consent(
        &self,
        partner: PartnerId,
        client: ClientId,
        kind: ConsentKind,
        granted: bool,
        channel: &str,
        text: &str,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// The client's consent log, oldest first.
    async fn consent_log(
        &self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Vec<ConsentEntry>, StoreError>;

    /// Claims queued Telegram reminders due by `now_ms` for `lease_ms`. A queued reminder whose
    /// client has withdrawn consent, or no longer has a chat taking messages, is cancelled
    /// instead.
    async fn claim_reminders(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<QueuedReminder>, StoreError>;

    /// Claims queued SMS due by `now_ms` for `lease_ms`, each with the CRM connection and id
    /// to send it through. One whose client withdrew the SMS opt-in, or an invitation to a
    /// client who has linked a chat since, is cancelled instead; one whose client no CRM knows
    /// any more is dead.
    async fn claim_sms(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<QueuedSms>, StoreError>;

    /// A claimed reminder (either channel) went out.
    /// Marks a reminder sent; one that carries an offer makes the offer, valid from `now_ms`
    /// for its days (once, however often this is called).
    async fn reminder_sent(&self, id: i64, now_ms: i64) -> Result<(), StoreError>;

    /// A reminder that could not go now: tried again at `retry_at_ms`, or dead (`None`).
    async fn reminder_failed(
        &self,
        id: i64,
        error: &str,
        retry_at_ms: Option<i64>,
    ) -> Result<(), StoreError>;

    /// A reminder held to `run_at_ms` (outside the send window) without counting a try.
    async fn reminder_later(&self, id: i64, run_at_ms: i64) -> Result<(), StoreError>;

    /// "Not now" on a reminder, by its client's chat: its trigger rests for this absence.
    /// `false` when the reminder is not that chat's.
    async fn snooze_reminder(&self, id: i64, chat_id: i64, now_ms: i64)
    -> Result<bool, StoreError>;

    /// The salon's recorded reminders, newest first.
    async fn sends(&self, partner: PartnerId, limit: u32) -> Result<Vec<SendRow>, StoreError>;

    /// Every client of the salon with a visit that came before `now_ms`, as the churn and
    /// value models read her: time in days, a day's visits counting once, her average paid per
    /// visit (minor units) as the value; by client id.
    async fn visit_histories(
        &self,
        partner: PartnerId,
        now_ms: i64,
    ) -> Result<Vec<(ClientId, crate::model::Customer)>, StoreError>;

    /// Every visit that came of the salon's clients, with its categories, by client: what
    /// [`crate::backtest::compare`] judges the methods on.
    async fn came_visits(
        &self,
        partner: PartnerId,
    ) -> Result<Vec<(ClientId, crate::backtest::Visits)>, StoreError>;

    /// Per salon (`None`: every salon) and trigger, both arms of what was decided at least
    /// `window_ms` before `now_ms`.
    async fn uplift_arms(
        &self,
        partner: Option<PartnerId>,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<Vec<TriggerArms>, StoreError>;
}
