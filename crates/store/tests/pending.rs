//! Pending points on both backends (issue 12, step 4): with a refund window, a visit's points
//! are pending — in the books, never spendable — until the window ends; a refund within it takes
//! them first and leaves the spendable balance alone; a refund after it takes them from the
//! balance; a maturing pass moves them once, however often it runs.

mod common;

use common::{TestDb, by_phone, five_percent, salon, visit};
use loyalty_core::ledger::{Account, EntryKind};
use loyalty_core::{ClientStore, EngineError, LedgerStore, Phone, Points, Program, VisitStatus};

const DAY: i64 = 86_400_000;
const PHONE: &str = "+79161234567";

fn with_window() -> Program {
    let mut p = five_percent();
    p.pending_days = 14;
    p.points_ttl_days = Some(365);
    p
}

async fn pending_points_wait_out_the_refund_window(db: &TestDb) {
    let (engine, clock) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, with_window()).await;
    let p = partner.id;
    let came = |record: &str, version: i64, paid: i64| {
        visit(
            &conn,
            record,
            version,
            VisitStatus::Came,
            paid,
            Some(by_phone(PHONE)),
        )
    };

    // Two visits: 3 000 ₽ and 2 000 ₽ earn 150 and 100 points, both pending.
    engine
        .apply_event(&conn, &came("r1", 1, 300_000))
        .await
        .expect("r1");
    let client = store
        .client_by_phone(p, &Phone::parse_international(PHONE).expect("phone"))
        .await
        .expect("read")
        .expect("client");
    let c = client.id;
    // Something to spend that is not pending: 40 points by hand.
    engine
        .manual_accrual(p, c, Points(40), "goodwill", "m1")
        .await
        .expect("manual");
    engine
        .apply_event(&conn, &came("r2", 1, 200_000))
        .await
        .expect("r2");
    assert_eq!(store.balance(p, c).await.expect("b"), Points(40));
    assert_eq!(store.pending(p, c).await.expect("p"), Points(250));
    let totals = store.account_totals(p).await.expect("totals");
    assert!(totals.is_balanced(), "{totals:?}");
    assert_eq!((totals.issued, totals.pending), (Points(290), Points(250)));

    // Pending points never pay: 41 points cannot be held or written off.
    for refused in [
        engine.hold(p, c, Points(41), "h1").await.map(|_| ()),
        engine
            .manual_debit(p, c, Points(41), "desk", "d1")
            .await
            .map(|_| ()),
    ] {
        assert!(
            matches!(
                refused,
                Err(EngineError::InsufficientBalance { available, .. }) if available == Points(40)
            ),
            "{refused:?}"
        );
    }

    // The first visit is refunded down to 1 000 ₽ within the window: the 100 points it loses
    // come out of its pending points; the spendable 40 stay.
    engine
        .apply_event(&conn, &came("r1", 2, 100_000))
        .await
        .expect("refund");
    assert_eq!(store.balance(p, c).await.expect("b"), Points(40));
    assert_eq!(store.pending(p, c).await.expect("p"), Points(150));
    let reversal = &store.history(p, c, 1).await.expect("history")[0];
    assert_eq!(reversal.kind, EntryKind::Reversal);
    assert_eq!(reversal.debit, Account::Pending(c));
    assert!(reversal.is_pending());

    // Not a day before the window ends.
    clock.advance_ms(14 * DAY - 1);
    assert!(engine.mature_due(p).await.expect("mature").is_empty());
    clock.advance_ms(1);
    let matured = engine.mature_due(p).await.expect("mature");
    assert_eq!(matured.len(), 1);
    assert_eq!(matured[0].delta, Points(150));
    assert_eq!(store.balance(p, c).await.expect("b"), Points(190));
    assert_eq!(store.pending(p, c).await.expect("p"), Points::ZERO);
    // Again, and at every partner: nothing matures twice.
    assert!(engine.mature_due(p).await.expect("mature").is_empty());
    let pass = engine.mature_everywhere().await.expect("everywhere");
    assert_eq!(pass.clients, 0);
    assert_eq!(store.balance(p, c).await.expect("b"), Points(190));

    // After the window, a refund takes its points from the balance.
    engine
        .apply_event(
            &conn,
            &visit(
                &conn,
                "r2",
                2,
                VisitStatus::Deleted,
                200_000,
                Some(by_phone(PHONE)),
            ),
        )
        .await
        .expect("cancel");
    assert_eq!(store.balance(p, c).await.expect("b"), Points(90));
    // Spendable now: 90 points are written off.
    engine
        .manual_debit(p, c, Points(90), "desk", "d2")
        .await
        .expect("debit");
    let totals = store.account_totals(p).await.expect("totals");
    assert!(totals.is_balanced(), "{totals:?}");
    assert_eq!(totals.pending, Points::ZERO);
    assert_eq!(
        store.lots_remaining(p, c).await.expect("lots"),
        Points::ZERO
    );
}

async fn a_window_longer_than_the_points_life_is_refused(db: &TestDb) {
    let _ = db;
    let mut p = with_window();
    p.points_ttl_days = Some(14);
    assert_eq!(
        p.validate().expect_err("refused").to_string(),
        "pending_days: points would expire (14 days) before they become spendable (14 days)"
    );
    p.points_ttl_days = None;
    p.pending_days = 400;
    assert_eq!(
        p.validate().expect_err("refused").to_string(),
        "pending_days: at most 365"
    );
}

both!(
    pending_points_wait_out_the_refund_window,
    a_window_longer_than_the_points_life_is_refused
);
