//! # loyalty-engage
//!
//! Reminders that bring clients back, as pure functions over one row per client — easy to test
//! and to embed. No I/O: the gateway runs a scan, the store answers its queries.
//!
//! * [`backtest`]: the fixed rule, a per-service interval, the personal cadence and BG/NBD
//!   compared on a salon's own last 90 days.
//! * [`cadence`]: each client's typical gap per service category (the median of recent gaps,
//!   shrunk towards the salon's), when they are due again; the salon's regularity `k̂`.
//! * [`lapse`]: how unusual a client's absence is for her own rhythm (has she stopped?).
//! * [`model`]: BG/NBD and Gamma-Gamma fitted per salon (P(alive), expected visits, value).
//! * [`risk`]: the salon's model, used only where its backtest beats the rules, and each
//!   client's chance of still coming and 12-month value (the `at_risk` trigger).
//! * [`trigger`]: when each of the program's triggers is due for a client, once per absence,
//!   and why.
//! * [`offers`]: personal offers — a client's profile (favourite master, services, average
//!   bill), the service to suggest (co-occurrence), the variant by Thompson sampling.
//! * [`policy`]: consent, the send window in the salon's zone, caps, the control group.
//! * [`window`]: the send window's hours in an IANA zone.
//! * [`uplift`]: the control group's draw and the uplift with its 95% interval, per salon and
//!   pooled.
//! * [`sim`]: the fixed salon generator the backtest, the demo and the bench share.
//!
//! Settings are the program's ([`loyalty_core::engage::Engagement`]).

pub mod backtest;
pub mod cadence;
pub mod custom;
pub mod lapse;
pub mod model;
pub mod offers;
pub mod policy;
pub mod risk;
pub mod scan;
pub mod sim;
pub mod store;
pub mod trigger;
pub mod uplift;
pub mod window;

use loyalty_core::history::Rhythm;
use loyalty_core::{BirthDate, ClientId, Points};

pub use cadence::{Cadence, SalonRhythm, SalonRhythmBuilder};
pub use policy::{Channel, Decision, Scan, Verdict, WaitReason, decide};
pub use store::{EngageStore, NewSend, Reminder};
pub use trigger::{Context, Due, Why};

/// One client as a scan reads them: their summary row, balance, reach, consent and what was
/// already recorded for them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub client: ClientId,
    pub first_visit_ms: Option<i64>,
    /// Their last visit that came: the absence a trigger's once key names.
    pub last_visit_ms: Option<i64>,
    /// Visits that came.
    pub visits: i64,
    /// What their bills came to (minor units).
    pub paid_minor: i64,
    pub rhythm: Rhythm,
    /// Their latest no-show or cancelled record.
    pub missed_ms: Option<i64>,
    /// Their latest booked record's time (a future one means they are coming).
    pub booked_ms: Option<i64>,
    pub balance: Points,
    /// Their next points to expire: how many, and when the first of them do.
    pub expiring: Option<Expiring>,
    pub birthday: Option<BirthDate>,
    /// A linked Telegram chat that takes messages.
    pub telegram: bool,
    /// A marketing opt-in on record and not withdrawn.
    pub consent: bool,
    /// An SMS opt-in on record and not withdrawn, and an id at one of the salon's CRMs to send
    /// it through.
    pub sms: bool,
    /// What was recorded for them (sent or held out), newest last.
    pub recorded: Vec<Recorded>,
}

/// Points that expire soon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiring {
    pub points: Points,
    pub at_ms: i64,
}

/// A message sent, or held out, under a trigger's once key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub trigger: String,
    pub cycle: String,
    pub at_ms: i64,
    /// The client answered "Not now": the trigger rests for the rest of this absence.
    pub snoozed: bool,
    /// It counts against the caps: sent, on its way, or held out (not one cancelled or dead).
    pub counts: bool,
}
