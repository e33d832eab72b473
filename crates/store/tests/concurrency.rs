//! Many deliveries at once: the ledger ends exactly right and each event is announced once.

mod common;

use std::sync::Arc;

use common::{T0, TestDb, five_percent, salon};
use loyalty_core::engine::{EngineError, Outcome};
use loyalty_core::event::ClientRef;
use loyalty_core::ledger::Account;
use loyalty_core::store::HoldStatus;
use loyalty_core::{CrmConnection, CrmEvent, Phone, Points, VisitStatus};

fn came(conn: &CrmConnection, record: &str, paid_minor: i64, phone: &Phone) -> CrmEvent {
    let client = ClientRef {
        external_id: Some(format!("yc-{}", phone.digits())),
        ..common::by_phone(phone.as_str())
    };
    common::visit(
        conn,
        record,
        T0,
        VisitStatus::Came,
        paid_minor,
        Some(client),
    )
}

async fn storm(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.dyn_store();
    let (partner, conn) = salon(store.as_ref(), five_percent()).await;
    let phone = Phone::parse_international("+79161234567").unwrap();

    // The client exists and linked Telegram before the storm.
    let mut waiting = came(&conn, "first", 100_000, &phone);
    if let CrmEvent::Visit(v) = &mut waiting {
        v.status = VisitStatus::Waiting;
    }
    engine.apply_event(&conn, &waiting).await.unwrap();
    let client = store
        .client_by_phone(partner.id, &phone)
        .await
        .unwrap()
        .unwrap();
    store
        .set_telegram_chat(partner.id, client.id, Some(42))
        .await
        .unwrap();

    // 200 concurrent deliveries of one webhook event.
    let event = Arc::new(came(&conn, "same", 400_000, &phone));
    let conn = Arc::new(conn);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (engine, conn, event) = (engine.clone(), conn.clone(), event.clone());
        tasks.push(tokio::spawn(async move {
            engine.apply_event(&conn, &event).await
        }));
    }
    let mut applied = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Outcome::Applied { .. } => applied += 1,
            Outcome::Duplicate => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(applied, 1);
    assert_eq!(
        store.balance(partner.id, client.id).await.unwrap(),
        Points(200)
    );
    assert_eq!(store.outbox_of(partner.id).await.unwrap().len(), 1);

    // 50 distinct events for the same client, all at once.
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (engine, conn) = (engine.clone(), conn.clone());
        let event = came(&conn, &format!("r{i}"), 100_000 + i * 1_000, &phone);
        tasks.push(tokio::spawn(async move {
            engine.apply_event(&conn, &event).await
        }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap().unwrap(), Outcome::Applied { .. }));
    }
    // Σ floor(5 % of (1 000 + i×10) ₽) = Σ (50 + i/2) over i in 0..50.
    let expected: i64 = 200
        + (0..50)
            .map(|i| (100_000 + i * 1_000) * 500 / 1_000_000)
            .sum::<i64>();
    assert_eq!(
        store.balance(partner.id, client.id).await.unwrap(),
        Points(expected)
    );
    assert_eq!(
        store.ledger_balance(partner.id, client.id).await.unwrap(),
        Points(expected)
    );
    assert_eq!(
        store.lots_remaining(partner.id, client.id).await.unwrap(),
        Points(expected)
    );
    assert!(
        store
            .account_totals(partner.id)
            .await
            .unwrap()
            .is_balanced()
    );
    let outbox = store.outbox_of(partner.id).await.unwrap();
    assert_eq!(outbox.len(), 51, "one message per event");
    assert_eq!(store.entry_count(partner.id).await.unwrap(), 51);
}

/// Two workers claiming at once never get the same message.
async fn concurrent_claims_are_disjoint(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.dyn_store();
    let (partner, conn) = salon(store.as_ref(), five_percent()).await;
    for i in 0..40 {
        let phone = Phone::parse_international(&format!("+7916000{i:04}")).unwrap();
        engine
            .apply_event(&conn, &came(&conn, &format!("w{i}"), 1_000, &phone))
            .await
            .unwrap();
        let c = store
            .client_by_phone(partner.id, &phone)
            .await
            .unwrap()
            .unwrap();
        store
            .set_telegram_chat(partner.id, c.id, Some(i))
            .await
            .unwrap();
        engine
            .apply_event(&conn, &came(&conn, &format!("x{i}"), 100_000, &phone))
            .await
            .unwrap();
    }
    let mut workers = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = store.claim_outbox(T0 + 1, 60_000, 3).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|m| m.id));
            }
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "a message was claimed twice");
    assert_eq!(n, 40, "one head message per client");
}

/// A client with `points` to spend, created by a visit and topped up by staff.
async fn client_with(
    db: &TestDb,
    points: i64,
) -> (
    loyalty_core::LoyaltyEngine,
    loyalty_core::Partner,
    loyalty_core::ClientId,
) {
    let (engine, _) = db.engine();
    let store = db.dyn_store();
    let (partner, conn) = salon(store.as_ref(), five_percent()).await;
    let phone = Phone::parse_international("+79161234567").unwrap();
    engine
        .apply_event(&conn, &came(&conn, "r", 0, &phone))
        .await
        .unwrap();
    let client = store
        .client_by_phone(partner.id, &phone)
        .await
        .unwrap()
        .unwrap();
    engine
        .manual_accrual(partner.id, client.id, Points(points), "top-up", "top-up")
        .await
        .unwrap();
    (engine, partner, client.id)
}

/// A hold posted and voided at the same moment settles exactly one way.
async fn racing_settlements_settle_once(db: &TestDb) {
    let (engine, partner, client) = client_with(db, 1_000).await;
    let store = db.dyn_store();
    let mut holds = Vec::new();
    for i in 0..20 {
        holds.push(
            engine
                .hold(partner.id, client, Points(10), &format!("h{i}"))
                .await
                .unwrap(),
        );
    }
    let mut races = Vec::new();
    for hold in &holds {
        let (post, void) = (engine.clone(), engine.clone());
        let (p, id) = (partner.id, hold.id);
        races.push((
            id,
            tokio::spawn(async move { post.post_hold(p, id).await }),
            tokio::spawn(async move { void.void_hold(p, id).await }),
        ));
    }
    let mut posted = 0;
    for (id, post, void) in races {
        let (post, void) = (post.await.unwrap(), void.await.unwrap());
        let winner = match (&post, &void) {
            (Ok(h), Err(EngineError::HoldNotPending { .. })) => h.status,
            (Err(EngineError::HoldNotPending { .. }), Ok(h)) => h.status,
            other => panic!("hold {id}: both or neither settled: {other:?}"),
        };
        let stored = store.hold(partner.id, id).await.unwrap().unwrap();
        assert_eq!(stored.status, winner);
        if winner == HoldStatus::Posted {
            posted += 1;
        }
    }
    let history = store.history(partner.id, client, 1_000).await.unwrap();
    for hold in &holds {
        let settled = history
            .iter()
            .filter(|e| e.debit == Account::Hold(hold.id))
            .count();
        assert_eq!(settled, 1, "hold {} settled {settled} times", hold.id);
    }
    let balance = store.balance(partner.id, client).await.unwrap();
    assert_eq!(balance, Points(1_000 - 10 * posted));
    assert_eq!(
        store.lots_remaining(partner.id, client).await.unwrap(),
        balance
    );
    let totals = store.account_totals(partner.id).await.unwrap();
    assert!(totals.is_balanced(), "{totals:?}");
    assert_eq!(
        (totals.held, totals.spent),
        (Points(0), Points(10 * posted))
    );
}

/// Redemptions racing for one balance: only what it covers is held, never below zero.
async fn holds_racing_for_one_balance(db: &TestDb) {
    let (engine, partner, client) = client_with(db, 500).await;
    let store = db.dyn_store();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let engine = engine.clone();
        let p = partner.id;
        tasks.push(tokio::spawn(async move {
            engine
                .hold(p, client, Points(100), &format!("race-{i}"))
                .await
        }));
    }
    let (mut held, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => held += 1,
            Err(EngineError::InsufficientBalance { .. }) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((held, refused), (5, 5));
    assert_eq!(store.balance(partner.id, client).await.unwrap(), Points(0));
    assert_eq!(
        store.lots_remaining(partner.id, client).await.unwrap(),
        Points(0)
    );
    let totals = store.account_totals(partner.id).await.unwrap();
    assert_eq!(totals.held, Points(500));
    assert!(totals.is_balanced(), "{totals:?}");
}

both!(
    storm,
    concurrent_claims_are_disjoint,
    racing_settlements_settle_once,
    holds_racing_for_one_balance
);
