//! The points ledger: double entry between named accounts, append-only.
//!
//! Every movement debits one account and credits another by a positive amount:
//!
//! | movement                   | debit            | credit             |
//! |----------------------------|------------------|--------------------|
//! | accrual, welcome, birthday | `program:issued` | `client:{id}`      |
//! | accrual in the refund window | `program:issued` | `pending:{id}`   |
//! | pending points mature      | `pending:{id}`   | `client:{id}`      |
//! | reversal of accrual        | `client:{id}` or `pending:{id}` | `program:issued` |
//! | manual debit               | `client:{id}`    | `program:redeemed` |
//! | expiry                     | `client:{id}`    | `program:expired`  |
//! | hold (pending)             | `client:{id}`    | `hold:{id}`        |
//! | hold posted                | `hold:{id}`      | `program:redeemed` |
//! | hold voided                | `hold:{id}`      | `client:{id}`      |
//!
//! An account's balance is credits minus debits, so `program:issued` goes negative by exactly what
//! was issued and `issued = outstanding + pending + held + spent + expired` holds by construction;
//! the store checks it against the materialized balances ([`AccountTotals::is_balanced`]).
//!
//! Pending points (a program with a refund window) sit in `pending:{id}`, drawn on by nothing but
//! a reversal of their own visit, in *pending lots* that mature into ordinary lots.
//!
//! Spending draws on *lots*: each accrual is a lot with its own expiry, drawn oldest first. A
//! client's balance is always `Σ lot.remaining − debt`, where a debt only arises from reversing
//! points that were already spent; while a debt exists every lot is empty, so
//! `Σ remaining = max(balance, 0)`, and new accruals repay the debt before they fill a lot.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{ClientId, EntryId, HoldId, PartnerId};
use crate::money::Points;

/// A ledger account of one partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Account {
    Client(ClientId),
    Issued,
    Redeemed,
    Expired,
    Hold(HoldId),
    /// A client's points still in the program's refund window.
    Pending(ClientId),
}

impl Account {
    /// The account's name as stored: `client:42`, `program:issued`, `hold:7`.
    pub fn name(&self) -> String {
        match self {
            Account::Client(id) => format!("client:{id}"),
            Account::Issued => "program:issued".to_owned(),
            Account::Redeemed => "program:redeemed".to_owned(),
            Account::Expired => "program:expired".to_owned(),
            Account::Hold(id) => format!("hold:{id}"),
            Account::Pending(id) => format!("pending:{id}"),
        }
    }

    pub fn parse(name: &str) -> Option<Account> {
        match name {
            "program:issued" => Some(Account::Issued),
            "program:redeemed" => Some(Account::Redeemed),
            "program:expired" => Some(Account::Expired),
            _ => {
                let (kind, id) = name.split_once(':')?;
                let id: i64 = id.parse().ok()?;
                match kind {
                    "client" => Some(Account::Client(ClientId(id))),
                    "hold" => Some(Account::Hold(HoldId(id))),
                    "pending" => Some(Account::Pending(ClientId(id))),
                    _ => None,
                }
            }
        }
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl Serialize for Account {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

/// Why an entry was posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Points for a visit or sale.
    Accrual,
    /// A visit's points taken back (status flip, smaller amount, deletion, another client).
    Reversal,
    /// Points added by staff, with a reason.
    ManualAccrual,
    /// Points spent at the desk and written off by staff, with a reason.
    ManualDebit,
    /// The program's welcome bonus.
    Welcome,
    /// Birthday points, in a lot of their own short life.
    Birthday,
    /// A referral's bonus, to the friend or the client who invited her.
    Referral,
    /// A personal offer's benefit, for the visit that met it.
    Offer,
    /// A custom trigger's bonus for an event other than a visit (a visit's are its accrual).
    Trigger,
    /// An accrual's unspent rest after its expiry date.
    Expiry,
    /// Pending points past the refund window, now spendable.
    Matured,
    /// Points held for a redemption (pending).
    Hold,
    /// A held redemption completed.
    HoldPost,
    /// A held redemption cancelled; points back to the client.
    HoldVoid,
}

impl EntryKind {
    pub const ALL: [EntryKind; 14] = [
        EntryKind::Accrual,
        EntryKind::Reversal,
        EntryKind::ManualAccrual,
        EntryKind::ManualDebit,
        EntryKind::Welcome,
        EntryKind::Birthday,
        EntryKind::Referral,
        EntryKind::Offer,
        EntryKind::Trigger,
        EntryKind::Expiry,
        EntryKind::Matured,
        EntryKind::Hold,
        EntryKind::HoldPost,
        EntryKind::HoldVoid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Accrual => "accrual",
            EntryKind::Reversal => "reversal",
            EntryKind::ManualAccrual => "manual_accrual",
            EntryKind::ManualDebit => "manual_debit",
            EntryKind::Welcome => "welcome",
            EntryKind::Birthday => "birthday",
            EntryKind::Referral => "referral",
            EntryKind::Offer => "offer",
            EntryKind::Trigger => "trigger",
            EntryKind::Expiry => "expiry",
            EntryKind::Matured => "matured",
            EntryKind::Hold => "hold",
            EntryKind::HoldPost => "hold_post",
            EntryKind::HoldVoid => "hold_void",
        }
    }

    pub fn parse(s: &str) -> Option<EntryKind> {
        EntryKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// An entry about to be posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// Unique per partner. Posting the same key again with the same input returns the first
    /// entry; with different input it is a conflict.
    pub idempotency_key: String,
    pub kind: EntryKind,
    pub debit: Account,
    pub credit: Account,
    /// Always positive.
    pub amount: Points,
    /// The client whose account this entry touches.
    pub client_id: ClientId,
    /// The entry this one corrects, for reversals.
    pub reverses: Option<EntryId>,
    /// What caused it: `visit:{connection}:{record}`, a staff member's reason…
    pub reason: Option<String>,
}

impl NewEntry {
    /// Everything but the key: equal fingerprints under one key are the same request.
    pub fn fingerprint(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.kind.as_str(),
            self.debit.name(),
            self.credit.name(),
            self.amount.value(),
            self.client_id
        )
    }
}

/// A posted entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerEntry {
    pub id: EntryId,
    pub partner_id: PartnerId,
    pub idempotency_key: String,
    pub kind: EntryKind,
    pub debit: Account,
    pub credit: Account,
    pub amount: Points,
    pub client_id: ClientId,
    pub reverses: Option<EntryId>,
    pub reason: Option<String>,
    pub fingerprint: String,
    pub created_at_ms: i64,
}

impl LedgerEntry {
    /// The entry's effect on its client's balance.
    pub fn client_delta(&self) -> Points {
        let own = Account::Client(self.client_id);
        if self.credit == own {
            self.amount
        } else if self.debit == own {
            -self.amount
        } else {
            Points::ZERO
        }
    }

    /// The entry's effect on its client's pending points.
    pub fn pending_delta(&self) -> Points {
        let own = Account::Pending(self.client_id);
        if self.credit == own {
            self.amount
        } else if self.debit == own {
            -self.amount
        } else {
            Points::ZERO
        }
    }

    /// Whether the entry moved points still pending (an accrual in the refund window, or its
    /// reversal).
    pub fn is_pending(&self) -> bool {
        self.kind != EntryKind::Matured && self.pending_delta() != Points::ZERO
    }

    /// What the entry did to the client's points, pending or not, as a statement shows it: a
    /// maturing moves points from pending to spendable and shows as what became spendable.
    pub fn shown_delta(&self) -> Points {
        if self.kind == EntryKind::Matured {
            self.client_delta()
        } else {
            self.client_delta() + self.pending_delta()
        }
    }
}

/// Lot identifier (an accrual's remaining, with its expiry).
pub type LotId = i64;

/// What is left of one accrual.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lot {
    pub id: LotId,
    pub client_id: ClientId,
    /// The record that earned it (`{connection}:{record}`), when a visit did.
    pub source: Option<String>,
    pub amount: Points,
    pub remaining: Points,
    pub expires_at_ms: Option<i64>,
    pub created_at_ms: i64,
}

/// A new lot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLot {
    pub client_id: ClientId,
    pub entry_id: EntryId,
    pub source: Option<String>,
    pub amount: Points,
    pub expires_at_ms: Option<i64>,
}

/// What is still pending of one accrual: it matures into a lot at `matures_at_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLot {
    pub id: LotId,
    pub client_id: ClientId,
    /// The record that earned it (`{connection}:{record}`).
    pub source: Option<String>,
    pub amount: Points,
    pub remaining: Points,
    pub matures_at_ms: i64,
    /// The expiry of the lot it matures into, counted from the accrual.
    pub expires_at_ms: Option<i64>,
}

/// A new pending lot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPendingLot {
    pub client_id: ClientId,
    pub entry_id: EntryId,
    pub source: Option<String>,
    pub amount: Points,
    pub matures_at_ms: i64,
    pub expires_at_ms: Option<i64>,
}

/// How much to take from which lot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawPlan {
    pub draws: Vec<(LotId, Points)>,
    /// What the lots could not cover.
    pub shortfall: Points,
}

/// Plans drawing `amount` from `lots`: lots of `prefer_source` first (a reversal takes back its
/// own visit's points first), then the oldest: the earliest expiry first, lots that never
/// expire last, ties by creation order.
pub fn plan_draw(lots: &[Lot], amount: Points, prefer_source: Option<&str>) -> DrawPlan {
    let mut order: Vec<&Lot> = lots.iter().filter(|l| l.remaining.is_positive()).collect();
    order.sort_by_key(|l| {
        let preferred = prefer_source.is_some() && l.source.as_deref() == prefer_source;
        (
            !preferred,
            l.expires_at_ms.is_none(),
            l.expires_at_ms.unwrap_or(i64::MAX),
            l.created_at_ms,
            l.id,
        )
    });
    let mut left = amount;
    let mut draws = Vec::new();
    for lot in order {
        if !left.is_positive() {
            break;
        }
        let take = left.min(lot.remaining);
        draws.push((lot.id, take));
        left -= take;
    }
    DrawPlan {
        draws,
        shortfall: left.max(Points::ZERO),
    }
}

/// Ledger totals of one partner by account category, each the account's balance
/// (credits − debits), plus the materialized client balances for cross-checking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct AccountTotals {
    /// Points ever issued, net of reversals (`−balance(program:issued)`).
    pub issued: Points,
    /// Σ of the `client:*` accounts in the ledger.
    pub outstanding: Points,
    /// Σ of the `pending:*` accounts.
    pub pending: Points,
    /// Σ of the `hold:*` accounts.
    pub held: Points,
    pub spent: Points,
    pub expired: Points,
    /// Σ of the materialized balances (`balances` table).
    pub balances_sum: Points,
    /// Σ of the materialized pending points.
    pub pending_sum: Points,
}

impl AccountTotals {
    /// `issued = outstanding + pending + held + spent + expired`, and the materialized balances
    /// and pending points agree with the ledger.
    pub fn is_balanced(&self) -> bool {
        self.issued == self.outstanding + self.pending + self.held + self.spent + self.expired
            && self.balances_sum == self.outstanding
            && self.pending_sum == self.pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lot(id: LotId, remaining: i64, expires: Option<i64>, source: Option<&str>) -> Lot {
        Lot {
            id,
            client_id: ClientId(1),
            source: source.map(Into::into),
            amount: Points(remaining),
            remaining: Points(remaining),
            expires_at_ms: expires,
            created_at_ms: id,
        }
    }

    #[test]
    fn oldest_expiry_first_never_expiring_last() {
        let lots = [
            lot(1, 100, None, None),
            lot(2, 50, Some(2_000), None),
            lot(3, 30, Some(1_000), None),
        ];
        let plan = plan_draw(&lots, Points(100), None);
        assert_eq!(
            plan.draws,
            vec![(3, Points(30)), (2, Points(50)), (1, Points(20))]
        );
        assert_eq!(plan.shortfall, Points::ZERO);
    }

    #[test]
    fn preferred_source_first_then_shortfall() {
        let lots = [lot(1, 10, Some(1), None), lot(2, 40, Some(9), Some("c:r"))];
        let plan = plan_draw(&lots, Points(80), Some("c:r"));
        assert_eq!(plan.draws, vec![(2, Points(40)), (1, Points(10))]);
        assert_eq!(plan.shortfall, Points(30));
    }

    #[test]
    fn empty_lots_are_skipped() {
        let lots = [lot(1, 0, Some(1), None), lot(2, 5, None, None)];
        let plan = plan_draw(&lots, Points(5), None);
        assert_eq!(plan.draws, vec![(2, Points(5))]);
    }

    #[test]
    fn account_names_round_trip() {
        for a in [
            Account::Client(ClientId(42)),
            Account::Issued,
            Account::Redeemed,
            Account::Expired,
            Account::Hold(HoldId(7)),
            Account::Pending(ClientId(3)),
        ] {
            assert_eq!(Account::parse(&a.name()), Some(a));
        }
        assert_eq!(Account::parse("client:x"), None);
        assert_eq!(Account::parse("bank:1"), None);
        for k in EntryKind::ALL {
            assert_eq!(EntryKind::parse(k.as_str()), Some(k));
        }
    }
}
