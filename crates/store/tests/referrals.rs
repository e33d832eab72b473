//! Referrals on both backends (issue 12, step 2): recorded only for a friend new to the salon,
//! never for oneself or from a referrer who never came; the friend's first visit that came pays
//! both sides once however often it is delivered, a flip to "did not come" takes both back and
//! her next visit qualifies; a monthly cap per referrer.

mod common;

use common::{T0, TestDb, by_phone, five_percent, salon, visit};
use loyalty_core::ledger::EntryKind;
use loyalty_core::referral::{ReferralProgram, Refusal};
use loyalty_core::{
    ClientId, ClientStore, CrmConnection, CrmEvent, LedgerStore, LoyaltyEngine, PartnerId, Phone,
    Points, Program, VisitStatus,
};

const DAY: i64 = 86_400_000;

fn program() -> Program {
    let mut p = five_percent();
    p.referral = Some(ReferralProgram {
        referrer_points: Points(300),
        friend_points: Points(200),
        monthly_cap: Some(2),
    });
    p
}

fn at(conn: &CrmConnection, record: &str, v: i64, came: bool, phone: &str, when: i64) -> CrmEvent {
    let status = if came {
        VisitStatus::Came
    } else {
        VisitStatus::NoShow
    };
    let mut e = visit(conn, record, v, status, 200_000, Some(by_phone(phone)));
    if let CrmEvent::Visit(v) = &mut e {
        v.visit_at_ms = Some(when);
    }
    e
}

async fn client(db: &TestDb, p: PartnerId, phone: &str) -> ClientId {
    db.store
        .client_by_phone(p, &Phone::parse_international(phone).expect("phone"))
        .await
        .expect("read")
        .expect("client")
        .id
}

async fn enroll(engine: &LoyaltyEngine, p: PartnerId, phone: &str) -> ClientId {
    let phone = Phone::parse_international(phone).expect("phone");
    engine.enroll(p, &phone, None).await.expect("enroll").id
}

const ANNA: &str = "+79160000001";
const OLGA: &str = "+79160000002";
const MARIA: &str = "+79160000003";
const IRINA: &str = "+79160000004";
const VERA: &str = "+79160000005";
const ZOYA: &str = "+79160000006";

async fn a_referral_pays_both_once_and_only_for_someone_new(db: &TestDb) {
    let (engine, clock) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, program()).await;
    let p = partner.id;
    // Anna and Maria have come; Irina joined but never came.
    engine
        .apply_event(&conn, &at(&conn, "a1", 1, true, ANNA, T0))
        .await
        .expect("a1");
    engine
        .apply_event(&conn, &at(&conn, "m1", 1, true, MARIA, T0))
        .await
        .expect("m1");
    let anna = client(db, p, ANNA).await;
    let maria = client(db, p, MARIA).await;
    let irina = enroll(&engine, p, IRINA).await;
    store
        .set_telegram_chat(p, anna, Some(10))
        .await
        .expect("chat");
    let olga = enroll(&engine, p, OLGA).await;

    // What is refused, and why.
    let refer = |referrer, friend, chat| engine.refer(p, referrer, friend, chat);
    assert_eq!(
        refer(anna, anna, None).await.expect("refer"),
        Err(Refusal::SelfReferral)
    );
    assert_eq!(
        refer(anna, olga, Some(10)).await.expect("refer"),
        Err(Refusal::SelfReferral)
    );
    assert_eq!(
        refer(irina, olga, Some(20)).await.expect("refer"),
        Err(Refusal::ReferrerHasNoVisit)
    );
    assert_eq!(
        refer(anna, maria, Some(30)).await.expect("refer"),
        Err(Refusal::NotNew)
    );
    assert_eq!(
        refer(ClientId(999_999), olga, Some(20))
            .await
            .expect("refer"),
        Err(Refusal::UnknownReferrer)
    );
    // Anna's link, from Olga's chat: recorded once; Maria's later link changes nothing.
    assert_eq!(refer(anna, olga, Some(20)).await.expect("refer"), Ok(()));
    assert_eq!(
        refer(maria, olga, Some(20)).await.expect("refer"),
        Err(Refusal::AlreadyReferred)
    );

    // Olga's first visit, delivered five times: 100 for the visit and 200, Anna 100 and 300.
    for _ in 0..5 {
        engine
            .apply_event(&conn, &at(&conn, "o1", 1, true, OLGA, T0 + DAY))
            .await
            .expect("o1");
    }
    assert_eq!(store.balance(p, olga).await.expect("b"), Points(300));
    assert_eq!(store.balance(p, anna).await.expect("b"), Points(400));
    // It did not come after all: both bonuses go back.
    engine
        .apply_event(&conn, &at(&conn, "o1", 2, false, OLGA, T0 + DAY))
        .await
        .expect("flip");
    assert_eq!(store.balance(p, olga).await.expect("b"), Points::ZERO);
    assert_eq!(store.balance(p, anna).await.expect("b"), Points(100));
    // Her next visit that came qualifies; the flipped one coming back later pays nothing more.
    engine
        .apply_event(&conn, &at(&conn, "o2", 1, true, OLGA, T0 + 2 * DAY))
        .await
        .expect("o2");
    engine
        .apply_event(&conn, &at(&conn, "o1", 3, true, OLGA, T0 + DAY))
        .await
        .expect("o1 back");
    assert_eq!(store.balance(p, olga).await.expect("b"), Points(400));
    assert_eq!(store.balance(p, anna).await.expect("b"), Points(400));
    let stats = engine.referral_stats(p, anna).await.expect("stats");
    assert_eq!(
        (stats.invited, stats.qualified, stats.earned),
        (1, 1, Points(300))
    );
    let referral_entries = store
        .history(p, anna, 100)
        .await
        .expect("history")
        .iter()
        .filter(|e| e.kind == EntryKind::Referral)
        .count();
    assert_eq!(referral_entries, 2, "paid, reversed, paid again");

    // The cap: two paying referrals a month. Vera's January visit pays; Zoya, referred by Anna
    // in January too, earns nothing by a January visit; her February visit pays.
    let vera = enroll(&engine, p, VERA).await;
    let zoya = enroll(&engine, p, ZOYA).await;
    assert_eq!(refer(anna, vera, Some(50)).await.expect("refer"), Ok(()));
    assert_eq!(refer(anna, zoya, Some(60)).await.expect("refer"), Ok(()));
    engine
        .apply_event(&conn, &at(&conn, "v1", 1, true, VERA, T0 + 3 * DAY))
        .await
        .expect("v1");
    engine
        .apply_event(&conn, &at(&conn, "z1", 1, true, ZOYA, T0 + 3 * DAY))
        .await
        .expect("z1");
    assert_eq!(store.balance(p, vera).await.expect("b"), Points(300));
    assert_eq!(store.balance(p, zoya).await.expect("b"), Points(100));
    assert_eq!(store.balance(p, anna).await.expect("b"), Points(700));
    clock.advance_ms(40 * DAY);
    engine
        .apply_event(&conn, &at(&conn, "z2", 1, true, ZOYA, T0 + 40 * DAY))
        .await
        .expect("z2");
    assert_eq!(store.balance(p, zoya).await.expect("b"), Points(400));
    assert_eq!(store.balance(p, anna).await.expect("b"), Points(1_000));

    let totals = store.account_totals(p).await.expect("totals");
    assert!(totals.is_balanced(), "{totals:?}");

    // A salon without a referral program records none.
    let (other, _) = salon(store, five_percent()).await;
    let friend = enroll(&engine, other.id, OLGA).await;
    assert_eq!(
        engine
            .refer(other.id, friend, friend, None)
            .await
            .expect("refer"),
        Err(Refusal::NoProgram)
    );
}

/// Levels by effective referrals: the referrer rises as soon as a friend's first visit pays,
/// earns the new rate on her next visit, and keeps the level through a reversal until the
/// review, which lowers it.
async fn levels_by_referrals_rise_when_a_friend_comes(db: &TestDb) {
    use loyalty_core::level::{LevelMeasure, Levels, Tier};
    let (engine, clock) = db.engine();
    let store = db.store.as_ref();
    let mut p = program();
    let tier = |name: &str, threshold: i64, cashback: i64| Tier {
        name: name.into(),
        threshold,
        cashback: loyalty_core::Bps::new(cashback).expect("bps"),
        max_redeem_share: loyalty_core::Bps::new(5_000).expect("bps"),
    };
    p.levels = Some(Levels {
        measure: LevelMeasure::Referrals,
        window_days: None,
        grace_days: 30,
        tiers: vec![tier("Base", 0, 500), tier("Ambassador", 1, 1_000)],
    });
    let (partner, conn) = salon(store, p).await;
    let p = partner.id;
    engine
        .apply_event(&conn, &at(&conn, "a1", 1, true, ANNA, T0))
        .await
        .expect("a1");
    let anna = client(db, p, ANNA).await;
    let olga = enroll(&engine, p, OLGA).await;
    assert_eq!(
        engine.refer(p, anna, olga, Some(20)).await.expect("refer"),
        Ok(())
    );
    engine
        .apply_event(&conn, &at(&conn, "o1", 1, true, OLGA, T0))
        .await
        .expect("o1");
    let level = |c: &loyalty_core::Client| c.level.clone();
    let anna_now = store.client(p, anna).await.expect("read").expect("anna");
    assert_eq!(level(&anna_now).as_deref(), Some("Ambassador"));
    let view = engine
        .client_level(p, &anna_now)
        .await
        .expect("view")
        .expect("levels");
    assert_eq!(view.progress.value, 1);
    // Her next visit earns 10 %: 2 000 ₽, 200 points (100 + 300 + 200).
    engine
        .apply_event(&conn, &at(&conn, "a2", 1, true, ANNA, T0))
        .await
        .expect("a2");
    assert_eq!(store.balance(p, anna).await.expect("b"), Points(600));
    // Olga did not come after all: Anna keeps her level until the review.
    engine
        .apply_event(&conn, &at(&conn, "o1", 2, false, OLGA, T0))
        .await
        .expect("flip");
    let anna_now = store.client(p, anna).await.expect("read").expect("anna");
    assert_eq!(level(&anna_now).as_deref(), Some("Ambassador"));
    clock.advance_ms(31 * DAY);
    engine.review_levels(p).await.expect("review");
    let anna_now = store.client(p, anna).await.expect("read").expect("anna");
    assert_eq!(level(&anna_now), None, "back at the first level");
}

both!(
    a_referral_pays_both_once_and_only_for_someone_new,
    levels_by_referrals_rise_when_a_friend_comes
);
