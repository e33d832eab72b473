//! Property test of spending points, through the engine on a real database (SQLite and
//! PostgreSQL): random interleavings of accruals, redemptions (gateway codes and CRM
//! strategies), uses, cancels, CRM write-back outcomes, clock moves and code expiry. After every
//! step:
//!
//! * the ledger balances and its totals match an independent model: issued = outstanding +
//!   held + spent, held = the cost of the open redemptions, spent = the cost of the used ones;
//! * the client's balance is exactly what was accrued less what is held or spent;
//! * every redemption's status is what the model says, and its hold agrees with it (open →
//!   pending, used → posted, cancelled/expired/failed → voided);
//! * a code is used at most once: using it again is refused, and its hold is posted once.
//!
//! 300 cases per backend unless `PROPTEST_CASES` says otherwise.

mod common;

use loyalty_core::ClientStore;
use loyalty_core::LedgerStore;
use loyalty_core::RewardStore;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{TestDb, five_percent, salon};
use loyalty_core::code::Code;
use loyalty_core::engine::{EngineError, Resolution};
use loyalty_core::ledger::{Account, EntryKind};
use loyalty_core::redemption::{RedemptionStatus, Strategy as Via, Target};
use loyalty_core::store::HoldStatus;
use loyalty_core::{LoyaltyEngine, ManualClock, NewReward, Points, RewardKind, VisitStatus};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const DAY: i64 = 86_400_000;
const TTL_DAYS: u32 = 10;
const COSTS: [i64; 2] = [100, 250];

fn config() -> Config {
    common::proptest_config(300)
}

static DRAWS: AtomicU64 = AtomicU64::new(1);

fn next_code() -> Code {
    let n = DRAWS.fetch_add(1, Ordering::SeqCst) ^ (u64::from(std::process::id()) << 32);
    Code::from_entropy(n.to_le_bytes())
}

#[derive(Debug, Clone)]
enum Op {
    Accrue(i64),
    /// Reward 0 or 1; through the gateway, the loyalty card or a certificate.
    Redeem(usize, u8),
    Use(usize),
    Cancel(usize),
    /// The CRM write-back ends: written or not.
    Resolve(usize, bool),
    Advance(i64),
    ExpireCodes,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1i64..=400).prop_map(Op::Accrue),
        4 => (0usize..2, 0u8..3).prop_map(|(r, s)| Op::Redeem(r, s)),
        3 => (0usize..6).prop_map(Op::Use),
        1 => (0usize..6).prop_map(Op::Cancel),
        2 => (0usize..6, any::<bool>()).prop_map(|(i, w)| Op::Resolve(i, w)),
        1 => (1i64..=8).prop_map(Op::Advance),
        1 => Just(Op::ExpireCodes),
    ]
}

/// A redemption as the model sees it.
#[derive(Debug, Clone)]
struct Seen {
    code: Code,
    strategy: Via,
    cost: i64,
    status: RedemptionStatus,
    expires_at_ms: i64,
}

fn hold_for(status: RedemptionStatus) -> HoldStatus {
    match status {
        RedemptionStatus::Pending | RedemptionStatus::Issued => HoldStatus::Pending,
        RedemptionStatus::Used => HoldStatus::Posted,
        _ => HoldStatus::Voided,
    }
}

async fn case(
    db: &TestDb,
    engine: &LoyaltyEngine,
    clock: &ManualClock,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let store = db.store.as_ref();
    let mut program = five_percent();
    program.code_ttl_days = TTL_DAYS;
    let (partner, conn) = salon(store, program).await;
    let p = partner.id;
    engine
        .apply_event(
            &conn,
            &common::visit(
                &conn,
                "r",
                0,
                VisitStatus::Waiting,
                0,
                Some(common::by_phone("+79161234567")),
            ),
        )
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let client = store
        .client_by_phone(
            p,
            &loyalty_core::Phone::parse_international("+79161234567").unwrap(),
        )
        .await
        .unwrap()
        .expect("client")
        .id;
    let mut rewards = Vec::new();
    for cost in COSTS {
        let reward = store
            .create_reward(
                p,
                &NewReward {
                    title: format!("{cost}"),
                    cost: Points(cost),
                    kind: RewardKind::Certificate {
                        value_minor: cost * 100,
                    },
                },
                clock_now(engine),
            )
            .await
            .unwrap();
        rewards.push(reward);
    }
    let mut accrued = 0i64;
    let mut seen: Vec<Seen> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let fail = |e: EngineError| TestCaseError::fail(format!("op {i} {op:?}: {e}"));
        let balance = store.balance(p, client).await.unwrap();
        let now = clock_now(engine);
        match *op {
            Op::Accrue(n) => {
                engine
                    .manual_accrual(p, client, Points(n), "gift", &format!("a{i}"))
                    .await
                    .map_err(fail)?;
                accrued += n;
            }
            Op::Redeem(r, via) => {
                let target = match via {
                    0 => Target::GATEWAY,
                    1 => Target::crm(Via::LoyaltyCard, conn.id),
                    _ => Target::crm(Via::CrmCertificate, conn.id),
                };
                let reward = &rewards[r];
                match engine
                    .redeem(p, client, reward, &format!("k{i}"), target, &next_code)
                    .await
                {
                    Ok(red) => {
                        prop_assert!(balance >= reward.cost);
                        let status = if via == 0 {
                            RedemptionStatus::Issued
                        } else {
                            RedemptionStatus::Pending
                        };
                        prop_assert_eq!(red.status, status);
                        seen.push(Seen {
                            code: red.code,
                            strategy: red.strategy,
                            cost: reward.cost.value(),
                            status,
                            expires_at_ms: now + i64::from(TTL_DAYS) * DAY,
                        });
                    }
                    Err(EngineError::InsufficientBalance { .. }) => {
                        prop_assert!(balance < reward.cost)
                    }
                    Err(e) => return Err(fail(e)),
                }
            }
            Op::Use(idx) | Op::Cancel(idx) => {
                if seen.is_empty() {
                    continue;
                }
                let slot = idx % seen.len();
                let s = seen[slot].clone();
                let using = matches!(op, Op::Use(_));
                let result = if using {
                    engine.use_code(&s.code).await
                } else {
                    engine.cancel_code(&s.code).await
                };
                let expected = match (s.status, using) {
                    (RedemptionStatus::Issued, true)
                        if now > s.expires_at_ms && s.strategy == Via::GatewayCode =>
                    {
                        Some(RedemptionStatus::Expired)
                    }
                    (RedemptionStatus::Issued, true) => Some(RedemptionStatus::Used),
                    (RedemptionStatus::Cancelled, false) => Some(RedemptionStatus::Cancelled),
                    (from, false) if from.is_open() => Some(RedemptionStatus::Cancelled),
                    _ => None,
                };
                match (expected, result) {
                    (Some(to), Ok(r)) => {
                        prop_assert_eq!(r.status, to);
                        seen[slot].status = to;
                    }
                    (None, Err(EngineError::CodeNotUsable { .. })) => {}
                    (want, got) => {
                        return Err(TestCaseError::fail(format!(
                            "op {i} {op:?} on {s:?}: wanted {want:?}, got {got:?}"
                        )));
                    }
                }
            }
            Op::Resolve(idx, written) => {
                if seen.is_empty() {
                    continue;
                }
                let slot = idx % seen.len();
                let s = seen[slot].clone();
                let resolution = if written {
                    Resolution::Written
                } else {
                    Resolution::NotWritten
                };
                let result = engine.resolve_write_back(&s.code, resolution).await;
                match (s.status, result) {
                    (RedemptionStatus::Pending, Ok(r)) => {
                        let to = match (written, s.strategy) {
                            (false, _) => RedemptionStatus::Failed,
                            (true, Via::LoyaltyCard) => RedemptionStatus::Used,
                            (true, _) => RedemptionStatus::Issued,
                        };
                        prop_assert_eq!(r.status, to);
                        seen[slot].status = to;
                    }
                    (_, Err(EngineError::CodeNotUsable { .. })) => {
                        prop_assert!(s.status != RedemptionStatus::Pending)
                    }
                    (_, other) => {
                        return Err(TestCaseError::fail(format!(
                            "op {i} {op:?} on {s:?}: {other:?}"
                        )));
                    }
                }
            }
            Op::Advance(days) => clock.advance_ms(days * DAY),
            Op::ExpireCodes => {
                let expired = engine.expire_codes().await.map_err(fail)?;
                let mut due = 0;
                for s in seen.iter_mut() {
                    if s.status == RedemptionStatus::Issued
                        && s.strategy == Via::GatewayCode
                        && now > s.expires_at_ms
                    {
                        s.status = RedemptionStatus::Expired;
                        due += 1;
                    }
                }
                prop_assert!(expired >= due, "expired {} of {} due", expired, due);
            }
        }

        // The books after every step.
        let totals = store.account_totals(p).await.unwrap();
        prop_assert!(totals.is_balanced(), "unbalanced: {:?}", totals);
        let held: i64 = seen
            .iter()
            .filter(|s| s.status.is_open())
            .map(|s| s.cost)
            .sum();
        let spent: i64 = seen
            .iter()
            .filter(|s| s.status == RedemptionStatus::Used)
            .map(|s| s.cost)
            .sum();
        prop_assert_eq!(totals.issued, Points(accrued));
        prop_assert_eq!(totals.held, Points(held));
        prop_assert_eq!(totals.spent, Points(spent));
        let balance = store.balance(p, client).await.unwrap();
        prop_assert_eq!(balance, Points(accrued - held - spent));
        prop_assert_eq!(store.ledger_balance(p, client).await.unwrap(), balance);
    }

    // Every redemption ends as the model says, its hold agreeing, posted at most once.
    let history = store.history(p, client, 10_000).await.unwrap();
    for s in &seen {
        let r = store.redemption_by_code(&s.code).await.unwrap().unwrap();
        prop_assert_eq!(r.status, s.status, "{:?}", s);
        let hold = store.hold(p, r.hold_id).await.unwrap().unwrap();
        prop_assert_eq!(hold.status, hold_for(s.status), "{:?}", s);
        let settled: Vec<EntryKind> = history
            .iter()
            .filter(|e| e.debit == Account::Hold(r.hold_id))
            .map(|e| e.kind)
            .collect();
        prop_assert!(settled.len() <= 1, "{:?} settled {:?}", s, settled);
        if s.status == RedemptionStatus::Used {
            prop_assert!(engine.use_code(&s.code).await.is_err(), "used twice");
        }
    }
    Ok(())
}

fn clock_now(engine: &LoyaltyEngine) -> i64 {
    engine.now_ms()
}

fn run(db: TestDb, rt: &tokio::runtime::Runtime) {
    let (engine, clock) = db.engine();
    let mut runner = TestRunner::new(config());
    let strategy = prop::collection::vec(op(), 1..=30);
    let result = runner.run(&strategy, |ops| {
        rt.block_on(case(&db, &engine, &clock, ops))
    });
    rt.block_on(db.finish());
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn sqlite_redemptions_create_and_lose_no_point_and_use_a_code_once() {
    let rt = common::runtime();
    let db = rt.block_on(TestDb::sqlite());
    run(db, &rt);
}

#[test]
fn postgres_redemptions_create_and_lose_no_point_and_use_a_code_once() {
    let rt = common::runtime();
    let db = rt.block_on(TestDb::postgres());
    run(db, &rt);
}
