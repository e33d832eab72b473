//! The store's behaviour, written once and run against SQLite and PostgreSQL (engine + real
//! database, no fakes).

mod common;

use common::{T0, TestDb, five_percent, salon};
use loyalty_core::LedgerStore;
use loyalty_core::OutboxStore;
use loyalty_core::PartnerStore;
use loyalty_core::engine::{EngineError, Outcome};
use loyalty_core::event::{ClientEvent, ClientRef, OtherEvent};
use loyalty_core::ledger::EntryKind;
use loyalty_core::model::HoldId;
use loyalty_core::outbox::{Notification, OutboxStatus};
use loyalty_core::store::HoldStatus;
use loyalty_core::{
    ClientId, CrmConnection, CrmEvent, Currency, MoneyError, PartnerId, Phone, Points, Store,
    VisitStatus,
};
use loyalty_core::{ClientStore, Clock};

const DAY: i64 = 86_400_000;

fn phone(s: &str) -> Phone {
    Phone::parse_international(s).expect("phone")
}

fn visit(
    conn: &CrmConnection,
    record: &str,
    version: i64,
    status: VisitStatus,
    paid_minor: i64,
    client_phone: &str,
) -> CrmEvent {
    let client = ClientRef {
        name: Some("Анна".into()),
        ..common::by_phone(client_phone)
    };
    common::visit(conn, record, version, status, paid_minor, Some(client))
}

async fn client_id(store: &dyn Store, partner: PartnerId, p: &str) -> ClientId {
    store
        .client_by_phone(partner, &phone(p))
        .await
        .expect("query")
        .expect("client exists")
        .id
}

/// Balance, ledger and lots agree, and the partner's accounts balance.
async fn assert_consistent(store: &dyn Store, partner: PartnerId, client: ClientId) -> Points {
    let balance = store.balance(partner, client).await.unwrap();
    assert_eq!(
        store.ledger_balance(partner, client).await.unwrap(),
        balance
    );
    assert_eq!(
        store.lots_remaining(partner, client).await.unwrap(),
        balance.max(Points::ZERO)
    );
    let totals = store.account_totals(partner).await.unwrap();
    assert!(totals.is_balanced(), "{totals:?}");
    balance
}

fn delta_of(outcome: &Outcome) -> i64 {
    match outcome {
        Outcome::Applied { postings } => postings.iter().map(|p| p.delta.value()).sum(),
        other => panic!("expected postings, got {other:?}"),
    }
}

async fn visit_accrues_floor_of_rate(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let out = engine
        .apply_event(
            &conn,
            &visit(
                &conn,
                "r1",
                1,
                VisitStatus::Came,
                400_000,
                "8 916 123-45-67",
            ),
        )
        .await
        .unwrap();
    assert_eq!(delta_of(&out), 200);
    let client = store
        .client_by_phone(partner.id, &phone("+79161234567"))
        .await
        .unwrap()
        .expect("virtual client created by phone");
    assert_eq!(client.name.as_deref(), Some("Анна"));
    assert_eq!(client.telegram_chat_id, None);
    assert_eq!(
        assert_consistent(store, partner.id, client.id).await,
        Points(200)
    );
    let statement = engine
        .statement(
            partner.id,
            &Phone::parse("9161234567", loyalty_core::Country::RU).expect("domestic"),
            10,
        )
        .await
        .unwrap()
        .expect("statement");
    assert_eq!(
        (statement.client.id, statement.balance),
        (client.id, Points(200))
    );
    assert_eq!(statement.history.len(), 1);
    assert_eq!(statement.history[0].kind, EntryKind::Accrual);
    assert_eq!(statement.history[0].amount, Points(200));
    assert!(
        engine
            .statement(partner.id, &phone("+79990000000"), 10)
            .await
            .unwrap()
            .is_none()
    );
    // A client without Telegram gets no outbox message.
    assert!(store.outbox_of(partner.id).await.unwrap().is_empty());
}

async fn duplicates_change_nothing(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let event = visit(&conn, "r1", 5, VisitStatus::Came, 400_000, "+79161234567");
    assert_eq!(
        delta_of(&engine.apply_event(&conn, &event).await.unwrap()),
        200
    );
    for _ in 0..5 {
        assert_eq!(
            engine.apply_event(&conn, &event).await.unwrap(),
            Outcome::Duplicate
        );
    }
    let client = client_id(store, partner.id, "+79161234567").await;
    assert_eq!(
        assert_consistent(store, partner.id, client).await,
        Points(200)
    );
    assert_eq!(store.entry_count(partner.id).await.unwrap(), 1);
}

async fn status_flips_reverse_and_reaccrue(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let p = "+79161234567";
    let steps = [
        (1, VisitStatus::Came, 200, 200),
        (2, VisitStatus::NoShow, -200, 0),
        (3, VisitStatus::Came, 200, 200),
        (4, VisitStatus::Deleted, -200, 0),
    ];
    for (version, status, delta, balance) in steps {
        let out = engine
            .apply_event(&conn, &visit(&conn, "r1", version, status, 400_000, p))
            .await
            .unwrap();
        assert_eq!(delta_of(&out), delta, "{status:?}");
        let client = client_id(store, partner.id, p).await;
        assert_eq!(
            assert_consistent(store, partner.id, client).await,
            Points(balance)
        );
    }
    let client = client_id(store, partner.id, p).await;
    let history = store.history(partner.id, client, 10).await.unwrap();
    let kinds: Vec<_> = history.iter().rev().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EntryKind::Accrual,
            EntryKind::Reversal,
            EntryKind::Accrual,
            EntryKind::Reversal
        ]
    );
    // Each reversal names the accrual it corrects.
    assert_eq!(history[2].reverses, Some(history[3].id));
    assert_eq!(history[0].reverses, Some(history[1].id));
    assert!(
        history[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("deleted")
    );
}

async fn stale_versions_are_ignored(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let p = "+79161234567";
    engine
        .apply_event(
            &conn,
            &visit(&conn, "r1", 20, VisitStatus::Came, 300_000, p),
        )
        .await
        .unwrap();
    let out = engine
        .apply_event(
            &conn,
            &visit(&conn, "r1", 10, VisitStatus::Came, 400_000, p),
        )
        .await
        .unwrap();
    assert_eq!(out, Outcome::Stale);
    let client = client_id(store, partner.id, p).await;
    assert_eq!(
        assert_consistent(store, partner.id, client).await,
        Points(150)
    );
}

async fn amount_edits_post_the_delta(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let p = "+79161234567";
    for (version, paid, delta) in [(1, 400_000, 200), (2, 500_000, 50), (3, 300_000, -100)] {
        let out = engine
            .apply_event(
                &conn,
                &visit(&conn, "r1", version, VisitStatus::Came, paid, p),
            )
            .await
            .unwrap();
        assert_eq!(delta_of(&out), delta);
    }
    let client = client_id(store, partner.id, p).await;
    assert_eq!(
        assert_consistent(store, partner.id, client).await,
        Points(150)
    );
}

async fn reversing_spent_points_leaves_a_visible_debt_repaid_later(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let p = "+79161234567";
    engine
        .apply_event(&conn, &visit(&conn, "r1", 1, VisitStatus::Came, 400_000, p))
        .await
        .unwrap();
    let client = client_id(store, partner.id, p).await;
    engine
        .manual_debit(partner.id, client, Points(150), "paid for a manicure", "d1")
        .await
        .unwrap();
    let out = engine
        .apply_event(
            &conn,
            &visit(&conn, "r1", 2, VisitStatus::NoShow, 400_000, p),
        )
        .await
        .unwrap();
    let Outcome::Applied { postings } = out else {
        panic!("expected a reversal")
    };
    assert_eq!(postings[0].delta, Points(-200));
    assert_eq!(
        postings[0].unbacked,
        Points(150),
        "spent points are reported"
    );
    assert_eq!(
        assert_consistent(store, partner.id, client).await,
        Points(-150)
    );
    // A further debit cannot go below zero.
    let err = engine
        .manual_debit(partner.id, client, Points(1), "x", "d2")
        .await
        .unwrap_err();
    assert_eq!(
        err,
        EngineError::InsufficientBalance {
            available: Points(0),
            requested: Points(1)
        }
    );
    // The next visit repays the debt first; only the rest becomes spendable.
    engine
        .apply_event(&conn, &visit(&conn, "r2", 1, VisitStatus::Came, 400_000, p))
        .await
        .unwrap();
    assert_eq!(
        assert_consistent(store, partner.id, client).await,
        Points(50)
    );
}

async fn record_moved_to_another_client_moves_its_points(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let (a, b) = ("+79161234567", "+79167654321");
    engine
        .apply_event(&conn, &visit(&conn, "r1", 1, VisitStatus::Came, 400_000, a))
        .await
        .unwrap();
    let out = engine
        .apply_event(&conn, &visit(&conn, "r1", 2, VisitStatus::Came, 400_000, b))
        .await
        .unwrap();
    let Outcome::Applied { postings } = out else {
        panic!("expected postings")
    };
    assert_eq!(postings.len(), 2);
    let (ca, cb) = (
        client_id(store, partner.id, a).await,
        client_id(store, partner.id, b).await,
    );
    assert_eq!(assert_consistent(store, partner.id, ca).await, Points(0));
    assert_eq!(assert_consistent(store, partner.id, cb).await, Points(200));
}

async fn linked_clients_get_notifications_in_the_same_transaction(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let p = "+79161234567";
    engine
        .apply_event(&conn, &visit(&conn, "r1", 1, VisitStatus::Came, 400_000, p))
        .await
        .unwrap();
    let client = client_id(store, partner.id, p).await;
    store
        .set_telegram_chat(partner.id, client, Some(555))
        .await
        .unwrap();
    engine
        .apply_event(&conn, &visit(&conn, "r2", 1, VisitStatus::Came, 200_000, p))
        .await
        .unwrap();
    engine
        .apply_event(
            &conn,
            &visit(&conn, "r2", 2, VisitStatus::NoShow, 200_000, p),
        )
        .await
        .unwrap();
    let outbox = store.outbox_of(partner.id).await.unwrap();
    assert_eq!(outbox.len(), 2);
    assert_eq!(
        outbox[0].notification,
        Notification::Accrued {
            points: Points(100),
            paid_minor: 200_000,
            currency: Currency::Rub,
            balance: Points(300),
            record_id: "r2".into(),
            pending_until_ms: None,
        }
    );
    assert!(matches!(
        &outbox[1].notification,
        Notification::Reversed {
            points: Points(100),
            balance: Points(200),
            ..
        }
    ));
    assert!(
        outbox
            .iter()
            .all(|m| m.partition_key == format!("client:{client}"))
    );
    // Opted out: points still move, no message.
    store
        .set_notifications_off(partner.id, client, true)
        .await
        .unwrap();
    engine
        .apply_event(&conn, &visit(&conn, "r3", 1, VisitStatus::Came, 200_000, p))
        .await
        .unwrap();
    assert_eq!(store.outbox_of(partner.id).await.unwrap().len(), 2);
    assert_eq!(
        assert_consistent(store, partner.id, client).await,
        Points(300)
    );
}

async fn manual_operations_are_idempotent_and_conflicts_are_errors(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let p = "+79161234567";
    engine
        .apply_event(&conn, &visit(&conn, "r1", 1, VisitStatus::Came, 100_000, p))
        .await
        .unwrap();
    let client = client_id(store, partner.id, p).await;
    let first = engine
        .manual_accrual(partner.id, client, Points(100), "birthday", "k1")
        .await
        .unwrap();
    let again = engine
        .manual_accrual(partner.id, client, Points(100), "birthday", "k1")
        .await
        .unwrap();
    assert_eq!(again.entry_id, first.entry_id);
    assert_eq!(
        assert_consistent(store, partner.id, client).await,
        Points(150)
    );
    let err = engine
        .manual_accrual(partner.id, client, Points(101), "birthday", "k1")
        .await
        .unwrap_err();
    assert_eq!(
        err,
        EngineError::Conflict {
            key: "manual:k1".into()
        }
    );
    let err = engine
        .manual_debit(partner.id, client, Points(100), "birthday", "k1")
        .await
        .unwrap_err();
    assert_eq!(
        err,
        EngineError::Conflict {
            key: "manual:k1".into()
        }
    );
    let err = engine
        .manual_debit(partner.id, client, Points(151), "too much", "k2")
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::InsufficientBalance { .. }));
    assert_eq!(
        engine
            .manual_debit(partner.id, client, Points(0), "zero", "k3")
            .await
            .unwrap_err(),
        EngineError::NonPositiveAmount(0)
    );
    engine
        .manual_debit(partner.id, client, Points(150), "everything", "k4")
        .await
        .unwrap();
    assert_eq!(
        assert_consistent(store, partner.id, client).await,
        Points(0)
    );
    assert_eq!(
        engine
            .manual_accrual(partner.id, ClientId(999_999), Points(1), "x", "k5")
            .await
            .unwrap_err(),
        EngineError::UnknownClient(ClientId(999_999))
    );
}

async fn expiry_draws_oldest_lots_first_and_posts_real_entries(db: &TestDb) {
    let (engine, clock) = db.engine();
    let store = db.store.as_ref();
    let mut program = five_percent();
    program.points_ttl_days = Some(30);
    let (partner, conn) = salon(store, program).await;
    let p = "+79161234567";
    engine
        .apply_event(&conn, &visit(&conn, "a", 1, VisitStatus::Came, 200_000, p))
        .await
        .unwrap(); // lot A: 100, expires T0+30d
    clock.advance_ms(10 * DAY);
    engine
        .apply_event(&conn, &visit(&conn, "b", 1, VisitStatus::Came, 200_000, p))
        .await
        .unwrap(); // lot B: 100, expires T0+40d
    let client = client_id(store, partner.id, p).await;
    clock.advance_ms(10 * DAY);
    engine
        .manual_debit(partner.id, client, Points(150), "spent", "d")
        .await
        .unwrap(); // all of A, 50 of B
    clock.advance_ms(11 * DAY); // T0+31d: A is past its date but empty
    assert!(engine.expire_due(partner.id).await.unwrap().is_empty());
    assert!(
        store
            .partners_with_due_lots(clock.now_ms())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        assert_consistent(store, partner.id, client).await,
        Points(50)
    );
    clock.advance_ms(10 * DAY); // T0+41d: B's 50 expire, found by the deployment-wide pass
    assert_eq!(
        store.partners_with_due_lots(clock.now_ms()).await.unwrap(),
        vec![partner.id]
    );
    let pass = engine.expire_everywhere().await.unwrap();
    assert_eq!(
        (pass.partners, pass.clients, pass.points, pass.failed.len()),
        (1, 1, Points(50), 0)
    );
    assert_eq!(
        assert_consistent(store, partner.id, client).await,
        Points(0)
    );
    let totals = store.account_totals(partner.id).await.unwrap();
    assert_eq!(
        (totals.issued, totals.spent, totals.expired),
        (Points(200), Points(150), Points(50))
    );
    // Nothing left to expire: running again changes nothing.
    assert!(engine.expire_due(partner.id).await.unwrap().is_empty());
}

/// A hold voided after its lot expired refills the lot, and the next expiry takes those points
/// too, even in the same millisecond (found by the ledger property test).
async fn points_a_voided_hold_returns_to_an_expired_lot_expire_again(db: &TestDb) {
    let (engine, clock) = db.engine();
    let store = db.store.as_ref();
    let mut program = five_percent();
    program.points_ttl_days = Some(30);
    let (partner, conn) = salon(store, program).await;
    let p = "+79161234567";
    engine
        .apply_event(&conn, &visit(&conn, "a", 1, VisitStatus::Came, 220_000, p))
        .await
        .unwrap(); // one lot of 110, expires T0+30d
    let client = client_id(store, partner.id, p).await;
    clock.advance_ms(14 * DAY);
    let hold = engine
        .hold(partner.id, client, Points(1), "h")
        .await
        .unwrap();
    clock.advance_ms(16 * DAY);
    let first = engine.expire_due(partner.id).await.unwrap();
    assert_eq!(first[0].delta, Points(-109));
    engine.void_hold(partner.id, hold.id).await.unwrap();
    let second = engine.expire_due(partner.id).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].delta, Points(-1));
    assert_eq!(
        assert_consistent(store, partner.id, client).await,
        Points(0)
    );
    let totals = store.account_totals(partner.id).await.unwrap();
    assert_eq!((totals.issued, totals.expired), (Points(110), Points(110)));
    assert!(engine.expire_due(partner.id).await.unwrap().is_empty());
}

async fn holds_are_two_phase_and_settle_exactly_once(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let p = "+79161234567";
    engine
        .apply_event(&conn, &visit(&conn, "r1", 1, VisitStatus::Came, 400_000, p))
        .await
        .unwrap();
    let client = client_id(store, partner.id, p).await;

    let h = engine
        .hold(partner.id, client, Points(120), "redeem-1")
        .await
        .unwrap();
    assert_eq!(h.status, HoldStatus::Pending);
    assert_eq!(
        assert_consistent(store, partner.id, client).await,
        Points(80)
    );
    assert_eq!(
        store.account_totals(partner.id).await.unwrap().held,
        Points(120)
    );
    // Same key, same request: the same hold, nothing held twice.
    let again = engine
        .hold(partner.id, client, Points(120), "redeem-1")
        .await
        .unwrap();
    assert_eq!(again.id, h.id);
    assert_eq!(
        engine
            .hold(partner.id, client, Points(10), "redeem-1")
            .await
            .unwrap_err(),
        EngineError::Conflict {
            key: "redeem-1".into()
        }
    );
    assert!(matches!(
        engine
            .hold(partner.id, client, Points(81), "redeem-2")
            .await
            .unwrap_err(),
        EngineError::InsufficientBalance { .. }
    ));

    let posted = engine.post_hold(partner.id, h.id).await.unwrap();
    assert_eq!(posted.status, HoldStatus::Posted);
    assert_eq!(
        engine.post_hold(partner.id, h.id).await.unwrap().status,
        HoldStatus::Posted
    );
    assert_eq!(
        engine.void_hold(partner.id, h.id).await.unwrap_err(),
        EngineError::HoldNotPending {
            hold: h.id,
            status: "posted"
        }
    );
    let totals = store.account_totals(partner.id).await.unwrap();
    assert_eq!((totals.held, totals.spent), (Points(0), Points(120)));

    let h2 = engine
        .hold(partner.id, client, Points(80), "redeem-3")
        .await
        .unwrap();
    assert_eq!(
        assert_consistent(store, partner.id, client).await,
        Points(0)
    );
    engine.void_hold(partner.id, h2.id).await.unwrap();
    assert_eq!(
        engine.void_hold(partner.id, h2.id).await.unwrap().status,
        HoldStatus::Voided
    );
    assert_eq!(
        engine.post_hold(partner.id, h2.id).await.unwrap_err(),
        EngineError::HoldNotPending {
            hold: h2.id,
            status: "voided"
        }
    );
    // Voided points went back to their lot and can be spent again.
    assert_eq!(
        assert_consistent(store, partner.id, client).await,
        Points(80)
    );
    let entries = store.history(partner.id, client, 50).await.unwrap();
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.kind == EntryKind::HoldPost)
            .count(),
        1
    );
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.kind == EntryKind::HoldVoid)
            .count(),
        1
    );
    assert_eq!(
        engine
            .post_hold(partner.id, HoldId(987_654))
            .await
            .unwrap_err(),
        EngineError::UnknownHold(HoldId(987_654))
    );
}

/// Found by the ledger property: a hold is pending, the visit that funded it is reversed (the
/// client now owes the held points), then the hold is voided. The returned points repay the
/// debt; nothing is left in the lots.
async fn voided_hold_repays_a_debt_before_refilling_lots(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let p = "+79161234567";
    engine
        .apply_event(&conn, &visit(&conn, "r1", 1, VisitStatus::Came, 442_000, p))
        .await
        .unwrap(); // 221
    let client = client_id(store, partner.id, p).await;
    let hold = engine
        .hold(partner.id, client, Points(95), "h")
        .await
        .unwrap();
    engine
        .apply_event(&conn, &visit(&conn, "r1", 2, VisitStatus::NoShow, 0, p))
        .await
        .unwrap();
    assert_eq!(
        assert_consistent(store, partner.id, client).await,
        Points(-95)
    );
    engine.void_hold(partner.id, hold.id).await.unwrap();
    assert_eq!(
        assert_consistent(store, partner.id, client).await,
        Points(0)
    );
}

async fn tenants_are_isolated(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (a, conn_a) = salon(store, five_percent()).await;
    let (b, conn_b) = salon(store, five_percent()).await;
    let p = "+79161234567";
    engine
        .apply_event(
            &conn_a,
            &visit(&conn_a, "r1", 1, VisitStatus::Came, 400_000, p),
        )
        .await
        .unwrap();
    engine
        .apply_event(
            &conn_b,
            &visit(&conn_b, "r1", 1, VisitStatus::Came, 200_000, p),
        )
        .await
        .unwrap();
    let ca = client_id(store, a.id, p).await;
    let cb = client_id(store, b.id, p).await;
    assert_ne!(ca, cb, "one phone is a separate client at each salon");
    assert_eq!(store.balance(a.id, ca).await.unwrap(), Points(200));
    assert_eq!(store.balance(b.id, cb).await.unwrap(), Points(100));
    // Partner A's id cannot reach partner B's client, hold or balance.
    assert_eq!(store.balance(a.id, cb).await.unwrap(), Points(0));
    assert!(store.history(a.id, cb, 10).await.unwrap().is_empty());
    assert_eq!(
        engine
            .manual_debit(a.id, cb, Points(1), "x", "k")
            .await
            .unwrap_err(),
        EngineError::UnknownClient(cb)
    );
    let hold_b = engine.hold(b.id, cb, Points(50), "h").await.unwrap();
    assert_eq!(
        engine.void_hold(a.id, hold_b.id).await.unwrap_err(),
        EngineError::UnknownHold(hold_b.id)
    );
    assert!(store.hold(a.id, hold_b.id).await.unwrap().is_none());
    assert!(store.set_telegram_chat(a.id, cb, Some(1)).await.is_err());
    // Each secret names its own connection.
    let found = store
        .connection_by_secret(&conn_b.webhook_secret)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.partner_id, b.id);
    assert!(
        store
            .connection_by_secret("no-such-secret")
            .await
            .unwrap()
            .is_none()
    );
    // A's event cannot be applied through B's connection (company ids differ).
    let err = engine
        .apply_event(&conn_b, &visit(&conn_a, "r9", 1, VisitStatus::Came, 1, p))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::WrongCompany { .. }));
    assert_eq!(store.balance(b.id, cb).await.unwrap(), Points(50));
    assert!(store.account_totals(a.id).await.unwrap().is_balanced());
    assert!(store.account_totals(b.id).await.unwrap().is_balanced());
}

async fn bad_events_are_typed_errors_and_write_nothing(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let p = "+79161234567";
    let mut usd = visit(&conn, "r1", 1, VisitStatus::Came, 1_000, p);
    if let CrmEvent::Visit(v) = &mut usd {
        v.currency = Currency::Usd;
    }
    assert_eq!(
        engine.apply_event(&conn, &usd).await.unwrap_err(),
        EngineError::CurrencyMismatch {
            program: Currency::Rub,
            event: Currency::Usd
        }
    );
    let negative = visit(&conn, "r1", 1, VisitStatus::Came, -1, p);
    assert_eq!(
        engine.apply_event(&conn, &negative).await.unwrap_err(),
        EngineError::Money(MoneyError::Negative(-1))
    );
    let mut partial = visit(&conn, "r1", 1, VisitStatus::Came, 1_000, p);
    if let CrmEvent::Visit(v) = &mut partial {
        v.needs_refetch = true;
    }
    assert_eq!(
        engine.apply_event(&conn, &partial).await.unwrap_err(),
        EngineError::NeedsRefetch {
            record_id: "r1".into()
        }
    );
    let mut foreign = conn.clone();
    foreign.partner_id = PartnerId(999_999);
    assert_eq!(
        engine
            .apply_event(
                &foreign,
                &visit(&conn, "r1", 1, VisitStatus::Came, 1_000, p)
            )
            .await
            .unwrap_err(),
        EngineError::UnknownPartner(PartnerId(999_999))
    );
    assert!(
        store
            .client_by_phone(partner.id, &phone(p))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.entry_count(partner.id).await.unwrap(), 0);
}

async fn clients_and_other_events(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let event = CrmEvent::Client(ClientEvent {
        company_id: conn.company_id.clone(),
        external_id: "c-77".into(),
        phone: Some(phone("+77011234567")),
        name: Some("Айгерим".into()),
        deleted: false,
        email: None,
        birth_date: None,
    });
    let out = engine.apply_event(&conn, &event).await.unwrap();
    let Outcome::ClientSynced {
        client_id: id,
        created: true,
    } = out
    else {
        panic!("{out:?}")
    };
    // A later record names only the CRM id: the client is found by it.
    let mut by_id = visit(&conn, "r1", 1, VisitStatus::Came, 400_000, "+79990000000");
    if let CrmEvent::Visit(v) = &mut by_id {
        v.client = Some(ClientRef {
            external_id: Some("c-77".into()),
            phone: None,
            name: None,
        });
    }
    engine.apply_event(&conn, &by_id).await.unwrap();
    assert_eq!(assert_consistent(store, partner.id, id).await, Points(200));
    // A record without any client earns nothing until one is named.
    let mut anonymous = visit(&conn, "r2", 1, VisitStatus::Came, 400_000, "+79990000000");
    if let CrmEvent::Visit(v) = &mut anonymous {
        v.client = None;
    }
    assert_eq!(
        engine.apply_event(&conn, &anonymous).await.unwrap(),
        Outcome::NoChange { client_id: None }
    );
    let other = CrmEvent::Other(OtherEvent {
        company_id: conn.company_id.clone(),
        resource: "service".into(),
        resource_id: Some("5".into()),
        status: Some("update".into()),
    });
    assert_eq!(
        engine.apply_event(&conn, &other).await.unwrap(),
        Outcome::Ignored
    );
}

async fn welcome_bonus_is_granted_once(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let mut program = five_percent();
    program.welcome_bonus = Points(300);
    let (partner, conn) = salon(store, program).await;
    let p = "+79161234567";
    engine
        .apply_event(
            &conn,
            &visit(&conn, "r1", 1, VisitStatus::Waiting, 400_000, p),
        )
        .await
        .unwrap();
    let client = client_id(store, partner.id, p).await;
    let first = engine
        .grant_welcome_bonus(partner.id, client)
        .await
        .unwrap();
    assert_eq!(first.map(|p| p.balance), Some(Points(300)));
    assert_eq!(
        engine
            .grant_welcome_bonus(partner.id, client)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        assert_consistent(store, partner.id, client).await,
        Points(300)
    );
}

async fn outbox_claims_in_partition_order_with_leases_retries_and_dead_letters(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let (a, b) = ("+79161234567", "+79167654321");
    for p in [a, b] {
        engine
            .apply_event(
                &conn,
                &visit(&conn, &format!("{p}-0"), 1, VisitStatus::Came, 100_000, p),
            )
            .await
            .unwrap();
        let id = client_id(store, partner.id, p).await;
        store
            .set_telegram_chat(partner.id, id, Some(id.0))
            .await
            .unwrap();
    }
    for i in 1..=3 {
        for p in [a, b] {
            engine
                .apply_event(
                    &conn,
                    &visit(&conn, &format!("{p}-{i}"), 1, VisitStatus::Came, 100_000, p),
                )
                .await
                .unwrap();
        }
    }
    let all = store.outbox_of(partner.id).await.unwrap();
    assert_eq!(all.len(), 6);
    let now = T0 + 1_000;
    // Only the head of each client's queue is claimable.
    let first = store.claim_outbox(now, 30_000, 10).await.unwrap();
    let mine: Vec<_> = first
        .iter()
        .filter(|m| m.partner_id == partner.id)
        .collect();
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert_eq!(mine[0].attempts, 1);
    // Leased: nobody else gets them, and their successors wait behind them.
    assert!(
        store
            .claim_outbox(now, 30_000, 10)
            .await
            .unwrap()
            .iter()
            .all(|m| m.partner_id != partner.id)
    );
    // One is sent, one fails: the sent one's successor comes next; the failed one waits.
    store.outbox_sent(mine[0].id, now).await.unwrap();
    store
        .outbox_failed(mine[1].id, Some(now + 5_000), "429")
        .await
        .unwrap();
    let next = store.claim_outbox(now, 30_000, 10).await.unwrap();
    let next: Vec<_> = next.iter().filter(|m| m.partner_id == partner.id).collect();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].partition_key, mine[0].partition_key);
    // After the back-off the failed one is claimable again, with its attempt counted.
    let retry = store.claim_outbox(now + 5_000, 30_000, 10).await.unwrap();
    let retry: Vec<_> = retry
        .iter()
        .filter(|m| m.partner_id == partner.id)
        .collect();
    assert_eq!(retry.len(), 1);
    assert_eq!((retry[0].id, retry[0].attempts), (mine[1].id, 2));
    // Giving up moves it to dead letters and unblocks its partition; replay brings it back.
    store
        .outbox_failed(retry[0].id, None, "chat not found")
        .await
        .unwrap();
    let dead = store.outbox_of(partner.id).await.unwrap();
    let dead_msg = dead.iter().find(|m| m.id == retry[0].id).unwrap();
    assert_eq!(dead_msg.status, OutboxStatus::Dead);
    assert_eq!(dead_msg.last_error.as_deref(), Some("chat not found"));
    assert!(store.outbox_replay(retry[0].id, now).await.unwrap());
    assert!(!store.outbox_replay(retry[0].id, now).await.unwrap());
    assert!(store.outbox_failed(987_654, None, "x").await.is_err());
}

async fn ledger_rows_cannot_be_updated_or_deleted(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    engine
        .apply_event(
            &conn,
            &visit(&conn, "r1", 1, VisitStatus::Came, 400_000, "+79161234567"),
        )
        .await
        .unwrap();
    let pool = db.store.pool();
    let update = sqlx::query("UPDATE ledger_entries SET amount = 1 WHERE partner_id = $1")
        .bind(partner.id.0)
        .execute(pool)
        .await;
    assert!(update.is_err(), "UPDATE must be refused");
    let delete = sqlx::query("DELETE FROM ledger_entries WHERE partner_id = $1")
        .bind(partner.id.0)
        .execute(pool)
        .await;
    assert!(delete.is_err(), "DELETE must be refused");
    assert_eq!(store.entry_count(partner.id).await.unwrap(), 1);
}

/// A transaction that never commits (the process died mid-way) leaves no trace.
async fn an_uncommitted_transaction_leaves_nothing(db: &TestDb) {
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let p = phone("+79161234567");
    {
        let mut tx = store.begin().await.unwrap();
        let (client, created) = tx.insert_client(partner.id, &p, None, T0).await.unwrap();
        assert!(created);
        tx.lock_record(partner.id, conn.id, "r1").await.unwrap();
        tx.lock_balance(partner.id, client.id).await.unwrap();
        tx.set_balance(partner.id, client.id, Points(500))
            .await
            .unwrap();
        // Dropped here without commit.
    }
    assert!(
        store
            .client_by_phone(partner.id, &p)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.entry_count(partner.id).await.unwrap(), 0);
    // The record was never seen either: a redelivery applies in full.
    let (engine, _) = db.engine();
    let out = engine
        .apply_event(
            &conn,
            &visit(&conn, "r1", 1, VisitStatus::Came, 400_000, p.as_str()),
        )
        .await
        .unwrap();
    assert_eq!(delta_of(&out), 200);
}

async fn migrations_are_idempotent(db: &TestDb) {
    assert_eq!(db.store.migrate().await.unwrap(), 0);
    assert!(db.store.is_migrated().await);
}

both!(
    points_a_voided_hold_returns_to_an_expired_lot_expire_again,
    visit_accrues_floor_of_rate,
    duplicates_change_nothing,
    status_flips_reverse_and_reaccrue,
    stale_versions_are_ignored,
    amount_edits_post_the_delta,
    reversing_spent_points_leaves_a_visible_debt_repaid_later,
    record_moved_to_another_client_moves_its_points,
    linked_clients_get_notifications_in_the_same_transaction,
    manual_operations_are_idempotent_and_conflicts_are_errors,
    expiry_draws_oldest_lots_first_and_posts_real_entries,
    holds_are_two_phase_and_settle_exactly_once,
    voided_hold_repays_a_debt_before_refilling_lots,
    tenants_are_isolated,
    bad_events_are_typed_errors_and_write_nothing,
    clients_and_other_events,
    welcome_bonus_is_granted_once,
    outbox_claims_in_partition_order_with_leases_retries_and_dead_letters,
    ledger_rows_cannot_be_updated_or_deleted,
    an_uncommitted_transaction_leaves_nothing,
    migrations_are_idempotent,
);
