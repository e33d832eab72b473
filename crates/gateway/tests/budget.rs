//! The shared CRM budget on a real PostgreSQL: two gateway instances (two schedulers on two
//! connection pools) and several connections with mixed priorities never exceed the limits in
//! any window of their combined calls; a live call waits behind at most one import call; within
//! one priority connections are served in turn; a 429 pauses the whole budget. The limits are
//! scaled down (4 a second, 8 in 3 seconds) so a test takes seconds, not minutes; the code is
//! the one YCLIENTS' 5 a second and 200 a minute run through.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::PgSchema;
use loyalty_core::ConnectionId;
use loyalty_core::quota::{Limits, Priority, QuotaStore};
use loyalty_gateway::quota::Scheduler;
use loyalty_store::SqlStore;

const BUDGET: &str = "yclients:test";

fn limits() -> Limits {
    Limits {
        windows: vec![(1_000, 4), (3_000, 8)],
        margin_ms: 20,
        reserve: 0,
    }
}

async fn store(schema: &PgSchema) -> Arc<SqlStore> {
    let store = SqlStore::connect(&schema.url).await.unwrap();
    store.migrate().await.unwrap();
    Arc::new(store)
}

/// Every window of `limits` holds at most its count of the calls started at `times` (ms).
fn within(times: &[i64], limits: &Limits) -> Result<(), String> {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    for (window, count) in &limits.windows {
        for (i, t) in sorted.iter().enumerate() {
            let inside = sorted[i..].iter().take_while(|u| *u - t < *window).count();
            if inside > *count as usize {
                return Err(format!(
                    "{inside} calls within {window} ms from {t}: {sorted:?}"
                ));
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_never_exceed_the_shared_budget_together() {
    let schema = PgSchema::new().await;
    let (a, b) = (store(&schema).await, store(&schema).await);
    let one = Scheduler::new(Arc::clone(&a), limits());
    let two = Scheduler::new(Arc::clone(&b), limits());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..24u32 {
        let scheduler = if i % 2 == 0 { one.clone() } else { two.clone() };
        let connection = ConnectionId(i64::from(i % 3) + 1);
        let priority = [Priority::Live, Priority::Poll, Priority::Import][(i % 3) as usize];
        tasks.push(tokio::spawn(async move {
            scheduler
                .acquire(BUDGET, Some(connection), priority)
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let calls = a.budget_calls(BUDGET, 0).await.unwrap();
    assert_eq!(calls.len(), 24);
    let times: Vec<i64> = calls.iter().map(|c| c.0).collect();
    within(&times, &limits()).unwrap();
    // At the limit, not far below it: 24 calls at 8 per 3 s need 6 s; the first window opens
    // at once.
    assert!(elapsed >= Duration::from_millis(5_900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_call_waits_behind_at_most_one_import_call() {
    let schema = PgSchema::new().await;
    let store = store(&schema).await;
    let scheduler = Scheduler::new(Arc::clone(&store), limits());
    // An import of one salon queues 16 calls.
    let mut imports = Vec::new();
    for _ in 0..16 {
        let s = scheduler.clone();
        imports.push(tokio::spawn(async move {
            s.acquire(BUDGET, Some(ConnectionId(1)), Priority::Import)
                .await
                .unwrap();
        }));
    }
    // Once the import is going, a webhook of another salon needs the CRM.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let asked_ms = loyalty_core::Clock::now_ms(&loyalty_core::SystemClock);
    scheduler
        .acquire(BUDGET, Some(ConnectionId(2)), Priority::Live)
        .await
        .unwrap();
    for t in imports {
        t.await.unwrap();
    }
    let calls = store.budget_calls(BUDGET, 0).await.unwrap();
    let live = calls
        .iter()
        .position(|c| c.2 == Priority::Live.as_i16())
        .unwrap();
    let imports_after_ask = calls[..live].iter().filter(|c| c.0 >= asked_ms).count();
    assert!(
        imports_after_ask <= 1,
        "{imports_after_ask} import calls went first: {calls:?}"
    );
    within(&calls.iter().map(|c| c.0).collect::<Vec<_>>(), &limits()).unwrap();
    schema.drop().await;
}

/// An import stops short of the longest window's reserve: a webhook that needs the CRM while
/// the import has used all it may of the window starts at once, instead of waiting for the
/// window to move.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_import_leaves_the_reserve_to_live_work() {
    let schema = PgSchema::new().await;
    let store = store(&schema).await;
    let reserved = Limits {
        reserve: 2,
        ..limits()
    };
    let scheduler = Scheduler::new(Arc::clone(&store), reserved.clone());
    let mut imports = Vec::new();
    for _ in 0..16 {
        let s = scheduler.clone();
        imports.push(tokio::spawn(async move {
            s.acquire(BUDGET, Some(ConnectionId(1)), Priority::Import)
                .await
                .unwrap();
        }));
    }
    // By now the import has its 6 of the 3-second window's 8 and waits for the window.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let asked = std::time::Instant::now();
    scheduler
        .acquire(BUDGET, Some(ConnectionId(2)), Priority::Live)
        .await
        .unwrap();
    let waited = asked.elapsed();
    assert!(waited < Duration::from_millis(500), "{waited:?}");
    for t in imports {
        t.await.unwrap();
    }
    let calls = store.budget_calls(BUDGET, 0).await.unwrap();
    within(&calls.iter().map(|c| c.0).collect::<Vec<_>>(), &reserved).unwrap();
    // The import alone never took more than 6 in any 3 seconds.
    let import_calls: Vec<i64> = calls
        .iter()
        .filter(|c| c.2 == Priority::Import.as_i16())
        .map(|c| c.0)
        .collect();
    within(
        &import_calls,
        &Limits {
            windows: vec![(1_000, 4), (3_000, 6)],
            ..reserved
        },
    )
    .unwrap();
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_of_one_priority_are_served_in_turn() {
    let schema = PgSchema::new().await;
    let store = store(&schema).await;
    let scheduler = Scheduler::new(Arc::clone(&store), limits());
    let mut tasks = Vec::new();
    // Salon 1 queues 8 imports first, salon 2 then queues 8.
    for connection in [1, 2] {
        for _ in 0..8 {
            let s = scheduler.clone();
            tasks.push(tokio::spawn(async move {
                s.acquire(BUDGET, Some(ConnectionId(connection)), Priority::Import)
                    .await
                    .unwrap();
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    let order: Vec<i64> = store
        .budget_calls(BUDGET, 0)
        .await
        .unwrap()
        .iter()
        .map(|c| c.1.unwrap().0)
        .collect();
    // Salon 2 is served before salon 1 has had all of its own (first come, first served would
    // give salon 1 all eight first), and from salon 2's first call to salon 1's last they take
    // turns: even shares, give or take the call a contender is still re-queuing for (a strict
    // alternation depends on which task the runtime wakes first, and failed now and then on
    // two shared cores).
    let first_two = order.iter().position(|c| *c == 2).unwrap();
    let last_one = order.iter().rposition(|c| *c == 1).unwrap();
    assert!(last_one > first_two, "{order:?}");
    let shared = &order[first_two..=last_one];
    let ones = shared.iter().filter(|c| **c == 1).count();
    let twos = shared.len() - ones;
    assert!(ones.abs_diff(twos) <= 2, "{order:?}");
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_429_pauses_the_whole_budget() {
    let schema = PgSchema::new().await;
    let store = store(&schema).await;
    let scheduler = Scheduler::new(Arc::clone(&store), limits());
    scheduler
        .acquire(BUDGET, Some(ConnectionId(1)), Priority::Live)
        .await
        .unwrap();
    let paused_at = loyalty_core::Clock::now_ms(&loyalty_core::SystemClock);
    scheduler
        .pause(BUDGET, Some(Duration::from_millis(1_200)))
        .await;
    // Another connection's call waits the pause out too.
    scheduler
        .acquire(BUDGET, Some(ConnectionId(2)), Priority::Live)
        .await
        .unwrap();
    let calls = store.budget_calls(BUDGET, 0).await.unwrap();
    assert!(calls[1].0 >= paused_at + 1_200, "{calls:?}");
    // A shorter pause after it does not shorten it.
    scheduler.pause(BUDGET, Some(Duration::from_secs(2))).await;
    scheduler
        .pause(BUDGET, Some(Duration::from_millis(10)))
        .await;
    let before = loyalty_core::Clock::now_ms(&loyalty_core::SystemClock);
    scheduler
        .acquire(BUDGET, Some(ConnectionId(1)), Priority::Live)
        .await
        .unwrap();
    let calls = store.budget_calls(BUDGET, 0).await.unwrap();
    assert!(calls[2].0 >= before + 1_900, "{calls:?}");
    schema.drop().await;
}
