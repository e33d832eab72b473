//! Property tests of the ledger invariants, through the engine on a real database (SQLite and
//! PostgreSQL), checked after every step:
//!
//! * balance = Σ ledger entries of the client = Σ lots remaining (while not in debt);
//! * issued = outstanding + held + spent + expired, each total also matching an independent model;
//! * the ledger only grows;
//! * a balance goes negative only through a logged reversal of spent points;
//! * at the end every record has earned exactly what its final state earns, whatever the
//!   order, duplication and flips of its deliveries, including edits of the part of the bill
//!   paid with certificates or points (which earns nothing);
//! * a hold settles once: posted or voided, never both, never twice;
//! * each record's history row is its newest delivered state, and the client's summary counts
//!   exactly the records whose newest state came, and their bills.
//!
//! 1 000 cases per property and backend unless `PROPTEST_CASES` says otherwise.

mod common;

use loyalty_core::LedgerStore;
use std::collections::HashMap;

use common::{TestDb, five_percent, salon};
use loyalty_core::engine::{EngineError, Outcome};
use loyalty_core::history::HistoryStore;
use loyalty_core::ledger::{Account, EntryKind};
use loyalty_core::model::HoldId;
use loyalty_core::store::HoldStatus;
use loyalty_core::{
    ClientId, CrmConnection, CrmEvent, LoyaltyEngine, LoyaltyPaid, ManualClock, PartnerId, Phone,
    Points, Store, VisitStatus,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const DAY: i64 = 86_400_000;
const PHONE: &str = "+79161234567";

fn config() -> Config {
    common::proptest_config(1000)
}

fn event(
    conn: &CrmConnection,
    record: usize,
    version: i64,
    status: VisitStatus,
    paid: i64,
    loyalty: Option<i64>,
) -> CrmEvent {
    let client = Some(common::by_phone(PHONE));
    let mut event = common::visit(
        conn,
        &format!("rec-{record}"),
        version,
        status,
        paid,
        client,
    );
    if let (CrmEvent::Visit(v), Some(minor)) = (&mut event, loyalty) {
        v.loyalty_paid = LoyaltyPaid::Minor(minor);
    }
    event
}

/// 5 %, rounded down, only for visits that came; of a bill partly paid with certificates or
/// points (`loyalty`, at most the bill), only the rest's share, rounded down once.
fn target(status: VisitStatus, paid: i64, loyalty: Option<i64>) -> i64 {
    if status != VisitStatus::Came {
        return 0;
    }
    let full = paid * 500 / 1_000_000;
    match loyalty.map(|l| l.min(paid)) {
        Some(l) if l > 0 => full * (paid - l) / paid,
        _ => full,
    }
}

fn status() -> impl Strategy<Value = VisitStatus> {
    prop_oneof![
        4 => Just(VisitStatus::Came),
        1 => Just(VisitStatus::NoShow),
        1 => Just(VisitStatus::Waiting),
        1 => Just(VisitStatus::Confirmed),
        1 => Just(VisitStatus::Deleted),
    ]
}

/// The invariants that hold after every step. `debt_logged`: a reversal reported spent points.
async fn check(
    store: &dyn Store,
    partner: PartnerId,
    client: Option<ClientId>,
    entries_before: &mut i64,
    debt_logged: bool,
) -> Result<(), TestCaseError> {
    let entries = store.entry_count(partner).await.unwrap();
    prop_assert!(entries >= *entries_before, "the ledger shrank");
    *entries_before = entries;
    let totals = store.account_totals(partner).await.unwrap();
    prop_assert!(totals.is_balanced(), "unbalanced: {:?}", totals);
    if let Some(client) = client {
        let balance = store.balance(partner, client).await.unwrap();
        prop_assert_eq!(
            store.ledger_balance(partner, client).await.unwrap(),
            balance
        );
        prop_assert_eq!(
            store.lots_remaining(partner, client).await.unwrap(),
            balance.max(Points::ZERO)
        );
        prop_assert!(
            balance >= Points::ZERO || debt_logged,
            "negative balance {}",
            balance
        );
    }
    Ok(())
}

async fn client_of(store: &dyn Store, partner: PartnerId) -> Option<ClientId> {
    let phone = Phone::parse_international(PHONE).expect("phone");
    store
        .client_by_phone(partner, &phone)
        .await
        .unwrap()
        .map(|c| c.id)
}

// ---------------------------------------------------------------------------------------------
// Property 1: visits delivered in any order, duplicated, flipped, edited, deleted.

#[derive(Debug, Clone)]
enum VisitStep {
    /// Deliver version `version` (1-based) of record `record`.
    Deliver { record: usize, version: usize },
    /// Staff write off points.
    Debit(i64),
}

#[derive(Debug, Clone)]
struct VisitCase {
    /// Each record's successive states (status, paid minor units, the part of it paid with
    /// certificates or points if reported); version n is index n − 1.
    records: Vec<Vec<(VisitStatus, i64, Option<i64>)>>,
    steps: Vec<VisitStep>,
}

fn visit_case() -> impl Strategy<Value = VisitCase> {
    let loyalty = prop_oneof![Just(None), (0i64..=1_200_000).prop_map(Some)];
    let history = prop::collection::vec((status(), 0i64..=1_000_000, loyalty), 1..=4);
    prop::collection::vec(history, 1..=4).prop_flat_map(|records| {
        let all: Vec<VisitStep> = records
            .iter()
            .enumerate()
            .flat_map(|(r, h)| {
                (1..=h.len()).map(move |v| VisitStep::Deliver {
                    record: r,
                    version: v,
                })
            })
            .collect();
        let dups = prop::collection::vec(prop::sample::select(all.clone()), 0..=4);
        let debits = prop::collection::vec((1i64..=300).prop_map(VisitStep::Debit), 0..=3);
        (
            Just(records),
            (Just(all), dups, debits)
                .prop_map(|(mut a, d, b)| {
                    a.extend(d);
                    a.extend(b);
                    a
                })
                .prop_shuffle(),
        )
            .prop_map(|(records, steps)| VisitCase { records, steps })
    })
}

async fn visits_case(
    db: &TestDb,
    engine: &LoyaltyEngine,
    case: VisitCase,
) -> Result<(), TestCaseError> {
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let mut entries = 0;
    let mut debt_logged = false;
    let mut debited = 0i64;
    // The newest version of each record delivered so far.
    let mut newest: HashMap<usize, usize> = HashMap::new();
    for step in &case.steps {
        match *step {
            VisitStep::Deliver { record, version } => {
                let slot = newest.entry(record).or_default();
                *slot = (*slot).max(version);
                let (status, paid, loyalty) = case.records[record][version - 1];
                let version = version as i64;
                let out = engine
                    .apply_event(&conn, &event(&conn, record, version, status, paid, loyalty))
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                if let Outcome::Applied { postings } = &out {
                    debt_logged |= postings.iter().any(|p| p.unbacked.is_positive());
                }
            }
            VisitStep::Debit(points) => {
                let Some(client) = client_of(store, partner.id).await else {
                    continue;
                };
                let before = store.balance(partner.id, client).await.unwrap();
                let key = format!("debit-{entries}-{points}");
                match engine
                    .manual_debit(partner.id, client, Points(points), "desk", &key)
                    .await
                {
                    Ok(_) => debited += points,
                    Err(EngineError::InsufficientBalance { .. }) => {
                        prop_assert!(before < Points(points), "refused with {} available", before)
                    }
                    Err(e) => return Err(TestCaseError::fail(e.to_string())),
                }
            }
        }
        let client = client_of(store, partner.id).await;
        check(store, partner.id, client, &mut entries, debt_logged).await?;
        check_history(db, &conn, &case, &newest, client).await?;
    }
    let expected: i64 = case
        .records
        .iter()
        .map(|h| {
            let (status, paid, loyalty) = h[h.len() - 1];
            target(status, paid, loyalty)
        })
        .sum::<i64>()
        - debited;
    let client = client_of(store, partner.id)
        .await
        .expect("every case delivers a visit");
    prop_assert_eq!(
        store.balance(partner.id, client).await.unwrap(),
        Points(expected)
    );
    Ok(())
}

/// Each delivered record's history row is its newest delivered state; the client's summary
/// counts the records whose newest state came, and their bills.
async fn check_history(
    db: &TestDb,
    conn: &CrmConnection,
    case: &VisitCase,
    newest: &HashMap<usize, usize>,
    client: Option<ClientId>,
) -> Result<(), TestCaseError> {
    let history = db.store.as_ref();
    let (mut came, mut paid_total) = (0i64, 0i64);
    for (&record, &version) in newest {
        let (status, paid, _) = case.records[record][version - 1];
        let row = history
            .visit(conn.partner_id, conn.id, &format!("rec-{record}"))
            .await
            .unwrap();
        let row = row.ok_or_else(|| TestCaseError::fail(format!("no history of {record}")))?;
        prop_assert_eq!(
            (row.status, row.paid_minor),
            (status, paid),
            "record {}",
            record
        );
        prop_assert_eq!(row.client_id, client);
        if status == VisitStatus::Came {
            came += 1;
            paid_total += paid;
        }
    }
    if let Some(client) = client {
        let summary = history
            .summary(conn.partner_id, client)
            .await
            .unwrap()
            .unwrap_or_default();
        prop_assert_eq!((summary.visits, summary.paid_minor), (came, paid_total));
        let seen = (came > 0).then_some(common::T0);
        prop_assert_eq!(
            (summary.first_visit_ms, summary.last_visit_ms),
            (seen, seen)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Property 2: accruals, debits, holds, posts, voids, reversals and expiry interleaved.

#[derive(Debug, Clone)]
enum LedgerOp {
    Accrue(i64),
    Debit(i64),
    Hold(i64),
    Post(usize),
    Void(usize),
    /// A visit's new state: record, came?, paid minor units.
    Visit(usize, bool, i64),
    Advance(i64),
    Expire,
}

fn ledger_op() -> impl Strategy<Value = LedgerOp> {
    prop_oneof![
        3 => (1i64..=500).prop_map(LedgerOp::Accrue),
        2 => (1i64..=500).prop_map(LedgerOp::Debit),
        2 => (1i64..=500).prop_map(LedgerOp::Hold),
        2 => (0usize..8).prop_map(LedgerOp::Post),
        2 => (0usize..8).prop_map(LedgerOp::Void),
        3 => (0usize..3, any::<bool>(), 0i64..=800_000).prop_map(|(r, c, p)| LedgerOp::Visit(r, c, p)),
        1 => (1i64..=20).prop_map(LedgerOp::Advance),
        1 => Just(LedgerOp::Expire),
    ]
}

/// What the totals should be, tracked independently of the engine.
#[derive(Default)]
struct Model {
    manual_issued: i64,
    visit_targets: HashMap<usize, i64>,
    spent: i64,
    expired: i64,
    holds: Vec<(HoldId, i64, HoldStatus)>,
}

async fn ledger_case(
    db: &TestDb,
    engine: &LoyaltyEngine,
    clock: &ManualClock,
    ops: Vec<LedgerOp>,
) -> Result<(), TestCaseError> {
    let store = db.store.as_ref();
    let mut program = five_percent();
    program.points_ttl_days = Some(30);
    let (partner, conn) = salon(store, program).await;
    let p = partner.id;
    // The client exists from the start (a waiting visit), so every op has someone to act on.
    engine
        .apply_event(&conn, &event(&conn, 99, 0, VisitStatus::Waiting, 0, None))
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let client = client_of(store, p).await.expect("client");
    let mut model = Model::default();
    let mut entries = 0;
    let mut debt_logged = false;
    for (i, op) in ops.iter().enumerate() {
        let key = format!("op-{i}");
        let before = store.balance(p, client).await.unwrap();
        let fail = |e: EngineError| TestCaseError::fail(format!("op {i} {op:?}: {e}"));
        match *op {
            LedgerOp::Accrue(n) => {
                engine
                    .manual_accrual(p, client, Points(n), "gift", &key)
                    .await
                    .map_err(fail)?;
                model.manual_issued += n;
            }
            LedgerOp::Debit(n) => match engine
                .manual_debit(p, client, Points(n), "desk", &key)
                .await
            {
                Ok(_) => model.spent += n,
                Err(EngineError::InsufficientBalance { .. }) => prop_assert!(before < Points(n)),
                Err(e) => return Err(fail(e)),
            },
            LedgerOp::Hold(n) => match engine.hold(p, client, Points(n), &key).await {
                Ok(h) => model.holds.push((h.id, n, HoldStatus::Pending)),
                Err(EngineError::InsufficientBalance { .. }) => prop_assert!(before < Points(n)),
                Err(e) => return Err(fail(e)),
            },
            LedgerOp::Post(idx) | LedgerOp::Void(idx) => {
                if model.holds.is_empty() {
                    continue;
                }
                let slot = idx % model.holds.len();
                let (id, amount, state) = model.holds[slot];
                let posting = matches!(op, LedgerOp::Post(_));
                let wanted = if posting {
                    HoldStatus::Posted
                } else {
                    HoldStatus::Voided
                };
                let result = if posting {
                    engine.post_hold(p, id).await
                } else {
                    engine.void_hold(p, id).await
                };
                match (state, result) {
                    (HoldStatus::Pending, Ok(h)) => {
                        prop_assert_eq!(h.status, wanted);
                        if posting {
                            model.spent += amount;
                        }
                        model.holds[slot].2 = wanted;
                    }
                    (s, Ok(h)) if s == wanted => prop_assert_eq!(h.status, wanted),
                    (_, Err(EngineError::HoldNotPending { .. })) => prop_assert!(state != wanted),
                    (_, other) => return Err(TestCaseError::fail(format!("{op:?}: {other:?}"))),
                }
            }
            LedgerOp::Visit(record, came, paid) => {
                let status = if came {
                    VisitStatus::Came
                } else {
                    VisitStatus::NoShow
                };
                let out = engine
                    .apply_event(
                        &conn,
                        &event(&conn, record, i as i64 + 1, status, paid, None),
                    )
                    .await
                    .map_err(fail)?;
                if let Outcome::Applied { postings } = &out {
                    debt_logged |= postings.iter().any(|p| p.unbacked.is_positive());
                }
                model
                    .visit_targets
                    .insert(record, target(status, paid, None));
            }
            LedgerOp::Advance(days) => clock.advance_ms(days * DAY),
            LedgerOp::Expire => {
                for posting in engine.expire_due(p).await.map_err(fail)? {
                    model.expired -= posting.delta.value();
                }
            }
        }
        check(store, p, Some(client), &mut entries, debt_logged).await?;
        let totals = store.account_totals(p).await.unwrap();
        let issued = model.manual_issued + model.visit_targets.values().sum::<i64>();
        let held: i64 = model
            .holds
            .iter()
            .filter(|h| h.2 == HoldStatus::Pending)
            .map(|h| h.1)
            .sum();
        prop_assert_eq!(totals.issued, Points(issued));
        prop_assert_eq!(totals.held, Points(held));
        prop_assert_eq!(totals.spent, Points(model.spent));
        prop_assert_eq!(totals.expired, Points(model.expired));
    }
    // Every hold settled at most once, never both ways, and its state is what the model says.
    let history = store.history(p, client, 10_000).await.unwrap();
    for (id, _, state) in &model.holds {
        let settled: Vec<EntryKind> = history
            .iter()
            .filter(|e| e.debit == Account::Hold(*id))
            .map(|e| e.kind)
            .collect();
        prop_assert!(settled.len() <= 1, "hold {} settled {:?}", id, settled);
        prop_assert_eq!(
            store.hold(p, *id).await.unwrap().map(|h| h.status),
            Some(*state)
        );
    }
    Ok(())
}

fn run_visits(db: TestDb, rt: &tokio::runtime::Runtime) {
    let (engine, _) = db.engine();
    let mut runner = TestRunner::new(config());
    let result = runner.run(&visit_case(), |case| {
        rt.block_on(visits_case(&db, &engine, case))
    });
    rt.block_on(db.finish());
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn run_ledger(db: TestDb, rt: &tokio::runtime::Runtime) {
    let (engine, clock) = db.engine();
    let mut runner = TestRunner::new(config());
    let strategy = prop::collection::vec(ledger_op(), 1..=24);
    let result = runner.run(&strategy, |ops| {
        rt.block_on(ledger_case(&db, &engine, &clock, ops))
    });
    rt.block_on(db.finish());
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn sqlite_visits_end_exact_whatever_the_delivery_order() {
    let rt = common::runtime();
    let db = rt.block_on(TestDb::sqlite());
    run_visits(db, &rt);
}

#[test]
fn postgres_visits_end_exact_whatever_the_delivery_order() {
    let rt = common::runtime();
    let db = rt.block_on(TestDb::postgres());
    run_visits(db, &rt);
}

#[test]
fn sqlite_ledger_operations_create_and_lose_nothing() {
    let rt = common::runtime();
    let db = rt.block_on(TestDb::sqlite());
    run_ledger(db, &rt);
}

#[test]
fn postgres_ledger_operations_create_and_lose_nothing() {
    let rt = common::runtime();
    let db = rt.block_on(TestDb::postgres());
    run_ledger(db, &rt);
}
