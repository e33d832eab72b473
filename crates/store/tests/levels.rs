//! Levels and program versions through the engine, on both backends: a client rises on the visit
//! that crosses a threshold and earns the new rate from the next one; a reversal below the
//! threshold does not drop her until the review; a level set by hand is a floor; a record keeps
//! the level it was first applied with; a late visit is computed with the program version in
//! force at its time; the redemption cap follows the level.

mod common;

use common::{T0, TestDb, by_phone, salon, visit};
use loyalty_core::audit::Actor;
use loyalty_core::code::Code;
use loyalty_core::engine::{EngineError, Outcome};
use loyalty_core::level::{LevelMeasure, LevelReason, Levels, Tier};
use loyalty_core::outbox::Notification;
use loyalty_core::redemption::Target;
use loyalty_core::{
    Bps, Client, ClientStore, CrmConnection, CrmEvent, LedgerStore, LevelStore, LoyaltyEngine,
    NewReward, OutboxStore, PartnerId, PartnerStore, Phone, Points, Program, RewardKind,
    RewardStore, VisitStatus,
};

const DAY: i64 = 86_400_000;
const PHONE: &str = "+79161234567";

fn bps(v: i64) -> Bps {
    Bps::new(v).expect("bps")
}

/// Base 3 % (points pay up to 10 % of a bill), Silver from 30 000 ₽ at 7 % (20 %), Gold from
/// 100 000 ₽ at 15 % (30 %); paid total over 365 days, reviewed after 90.
fn salon_levels() -> Program {
    let tier = |name: &str, threshold: i64, cashback, cap| Tier {
        name: name.into(),
        threshold,
        cashback: bps(cashback),
        max_redeem_share: bps(cap),
    };
    let mut p = Program::with_cashback(bps(500));
    p.levels = Some(Levels {
        measure: LevelMeasure::Paid,
        window_days: Some(365),
        grace_days: 90,
        tiers: vec![
            tier("Base", 0, 300, 1_000),
            tier("Silver", 3_000_000, 700, 2_000),
            tier("Gold", 10_000_000, 1_500, 3_000),
        ],
    });
    p
}

fn came(conn: &CrmConnection, record: &str, version: i64, rub: i64) -> CrmEvent {
    visit(
        conn,
        record,
        version,
        VisitStatus::Came,
        rub * 100,
        Some(by_phone(PHONE)),
    )
}

fn earned(out: &Outcome) -> i64 {
    out.delta().value()
}

async fn client(db: &TestDb, partner: PartnerId) -> Client {
    let phone = Phone::parse_international(PHONE).expect("phone");
    db.store
        .client_by_phone(partner, &phone)
        .await
        .expect("read")
        .expect("client")
}

async fn level_notes(db: &TestDb, partner: PartnerId) -> Vec<(String, String, bool)> {
    db.store
        .outbox_of(partner)
        .await
        .expect("outbox")
        .into_iter()
        .filter_map(|m| match m.notification {
            Notification::LevelChanged { from, to, rose, .. } => Some((from, to, rose)),
            _ => None,
        })
        .collect()
}

async fn apply(engine: &LoyaltyEngine, conn: &CrmConnection, e: &CrmEvent) -> Outcome {
    engine.apply_event(conn, e).await.expect("apply")
}

async fn she_rises_on_the_visit_that_crosses_and_earns_the_new_rate_on_the_next(db: &TestDb) {
    let (engine, _) = db.engine();
    let (partner, conn) = salon(db.store.as_ref(), salon_levels()).await;
    // 25 000 ₽ at the base 3 %.
    assert_eq!(
        earned(&apply(&engine, &conn, &came(&conn, "r1", 1, 25_000)).await),
        750
    );
    let c = client(db, partner.id).await;
    db.store
        .set_telegram_chat(partner.id, c.id, Some(7001))
        .await
        .expect("chat");
    // 6 000 ₽ crosses 30 000 ₽: this visit still earns 3 %, and she is Silver after it.
    assert_eq!(
        earned(&apply(&engine, &conn, &came(&conn, "r2", 1, 6_000)).await),
        180
    );
    let c = client(db, partner.id).await;
    assert_eq!(c.level.as_deref(), Some("Silver"));
    assert_eq!(c.level_since_ms, Some(T0));
    // The next visit earns 7 %.
    assert_eq!(
        earned(&apply(&engine, &conn, &came(&conn, "r3", 1, 1_000)).await),
        70
    );
    // Told once, in the outbox with the points.
    assert_eq!(
        level_notes(db, partner.id).await,
        vec![("Base".to_owned(), "Silver".to_owned(), true)]
    );
    let changes = db
        .store
        .level_changes(partner.id, c.id)
        .await
        .expect("changes");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].reason, LevelReason::Rise);
    assert_eq!(changes[0].measure, 3_100_000);
    // The crossing visit edited later keeps the rate it was first applied with (3 %), and the
    // one after keeps 7 %, though she is Silver now.
    assert_eq!(
        earned(&apply(&engine, &conn, &came(&conn, "r2", 2, 7_000)).await),
        30
    );
    assert_eq!(
        earned(&apply(&engine, &conn, &came(&conn, "r3", 2, 2_000)).await),
        70
    );
    assert_eq!(
        db.store.balance(partner.id, c.id).await.expect("balance"),
        Points(750 + 210 + 140)
    );
}

async fn a_reversal_below_the_threshold_waits_for_the_review(db: &TestDb) {
    let (engine, clock) = db.engine();
    let (partner, conn) = salon(db.store.as_ref(), salon_levels()).await;
    apply(&engine, &conn, &came(&conn, "r1", 1, 25_000)).await;
    apply(&engine, &conn, &came(&conn, "r2", 1, 6_000)).await;
    let c = client(db, partner.id).await;
    db.store
        .set_telegram_chat(partner.id, c.id, Some(7002))
        .await
        .expect("chat");
    assert_eq!(c.level.as_deref(), Some("Silver"));
    // The crossing visit turns out a no-show: 25 000 ₽ is below Silver, but she stays.
    let flip = visit(
        &conn,
        "r2",
        2,
        VisitStatus::NoShow,
        600_000,
        Some(by_phone(PHONE)),
    );
    assert_eq!(earned(&apply(&engine, &conn, &flip).await), -180);
    assert_eq!(
        client(db, partner.id).await.level.as_deref(),
        Some("Silver")
    );
    // Before the grace period ends, a review changes nothing.
    clock.advance_ms(89 * DAY);
    let pass = engine.review_levels(partner.id).await.expect("review");
    assert_eq!((pass.reviewed, pass.fell), (0, 0));
    assert_eq!(
        client(db, partner.id).await.level.as_deref(),
        Some("Silver")
    );
    // At the review she takes what her measure supports, and is told.
    clock.advance_ms(DAY);
    let pass = engine.review_levels(partner.id).await.expect("review");
    assert_eq!((pass.reviewed, pass.fell), (1, 1));
    let after = client(db, partner.id).await;
    assert_eq!(after.level, None);
    assert_eq!(
        level_notes(db, partner.id).await,
        vec![("Silver".to_owned(), "Base".to_owned(), false)]
    );
    // A second pass (another instance) finds nobody due.
    let again = engine.review_levels(partner.id).await.expect("review");
    assert_eq!(again.reviewed, 0);
    assert_eq!(level_notes(db, partner.id).await.len(), 1);
}

async fn a_level_set_by_hand_is_a_floor(db: &TestDb) {
    let (engine, clock) = db.engine();
    let (partner, conn) = salon(db.store.as_ref(), salon_levels()).await;
    apply(&engine, &conn, &came(&conn, "r1", 1, 1_000)).await;
    let c = client(db, partner.id).await;
    let anna = engine.acting_as(Actor::new("anna@salon", "test"));
    let set = anna
        .set_client_level(partner.id, c.id, Some("Silver"))
        .await
        .expect("set");
    assert_eq!(set.level.as_deref(), Some("Silver"));
    assert_eq!(set.level_floor.as_deref(), Some("Silver"));
    let changes = db.store.level_changes(partner.id, c.id).await.expect("log");
    assert_eq!(changes[0].reason, LevelReason::Hand);
    assert_eq!(changes[0].actor.as_deref(), Some("anna@salon"));
    // Her 1 000 ₽ supports only Base, but the review keeps her at the floor.
    clock.advance_ms(91 * DAY);
    let pass = engine.review_levels(partner.id).await.expect("review");
    assert_eq!((pass.reviewed, pass.fell), (1, 0));
    let kept = client(db, partner.id).await;
    assert_eq!(kept.level.as_deref(), Some("Silver"));
    // Confirmed: the grace period starts again.
    assert_eq!(kept.level_since_ms, Some(T0 + 91 * DAY));
    // An unknown level is refused with its name.
    let err = anna
        .set_client_level(partner.id, c.id, Some("Platinum"))
        .await
        .expect_err("unknown");
    assert!(err.to_string().contains("Platinum"), "{err}");
}

async fn a_late_visit_is_computed_with_the_program_of_its_time(db: &TestDb) {
    let (engine, clock) = db.engine();
    let (partner, conn) = salon(db.store.as_ref(), Program::with_cashback(bps(500))).await;
    // Ten days on, the salon raises its cashback to 10 %.
    clock.advance_ms(10 * DAY);
    let v2 = db
        .store
        .set_program(
            partner.id,
            &Program::with_cashback(bps(1_000)),
            T0 + 10 * DAY,
            &Actor::new("owner", "test"),
        )
        .await
        .expect("v2");
    assert_eq!(v2.version, 2);
    // A visit of T0 delivered now earns the 5 % in force then; one of today earns 10 %.
    assert_eq!(
        earned(&apply(&engine, &conn, &came(&conn, "old", 1, 1_000)).await),
        50
    );
    let mut today = came(&conn, "new", 1, 1_000);
    if let CrmEvent::Visit(v) = &mut today {
        v.visit_at_ms = Some(T0 + 10 * DAY);
    }
    assert_eq!(earned(&apply(&engine, &conn, &today).await), 100);
    let versions = db
        .store
        .program_versions(partner.id)
        .await
        .expect("versions");
    assert_eq!(
        versions
            .iter()
            .map(|v| (v.version, v.effective_from_ms))
            .collect::<Vec<_>>(),
        vec![(1, 0), (2, T0 + 10 * DAY)]
    );
}

/// The desk checks a money certificate's bill against the client's level's cap at the moment
/// the code is used.
async fn the_redemption_cap_follows_the_level(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, salon_levels()).await;
    apply(&engine, &conn, &came(&conn, "r1", 1, 1_000)).await;
    let c = client(db, partner.id).await;
    engine
        .manual_accrual(partner.id, c.id, Points(1_000), "подарок", "gift")
        .await
        .expect("accrue");
    let reward = store
        .create_reward(
            partner.id,
            &NewReward {
                title: "Сертификат 1 000 ₽".into(),
                cost: Points(1_000),
                kind: RewardKind::Certificate {
                    value_minor: 100_000,
                },
            },
            T0,
        )
        .await
        .expect("reward");
    let code = engine
        .redeem(partner.id, c.id, &reward, "r", Target::GATEWAY, &|| {
            Code::from_entropy(7u64.to_le_bytes())
        })
        .await
        .expect("redeem")
        .code;
    // At Base points pay up to 10 % of a bill: 1 000 ₽ needs a bill of 10 000 ₽.
    let err = engine
        .use_code_at_desk(&code, Some(600_000))
        .await
        .expect_err("too small at Base");
    assert!(
        matches!(
            err,
            EngineError::BillTooSmall {
                min_bill_minor: Some(1_000_000),
                ..
            }
        ),
        "{err}"
    );
    // At Silver (20 %) a bill of 6 000 ₽ will do.
    engine
        .set_client_level(partner.id, c.id, Some("Silver"))
        .await
        .expect("silver");
    engine
        .use_code_at_desk(&code, Some(600_000))
        .await
        .expect("used at Silver");
}

both!(
    she_rises_on_the_visit_that_crosses_and_earns_the_new_rate_on_the_next,
    a_reversal_below_the_threshold_waits_for_the_review,
    a_level_set_by_hand_is_a_floor,
    a_late_visit_is_computed_with_the_program_of_its_time,
    the_redemption_cap_follows_the_level,
);
