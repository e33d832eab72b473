//! Custom triggers on both backends (issue 18): a visit trigger reads the days since the
//! client's visit before, runs only on the Enterprise plan, and fires once per record; a
//! birthday trigger posts its bonus with the birthday points, once; a referral trigger adds to
//! the inviting client's bonus, taken back with it when the friend's visit did not take place,
//! and fires once; a level trigger credits its bonus when a level is reached.

mod common;

use common::{T0, TestDb, by_phone, five_percent, salon, visit};
use loyalty_core::audit::{Actor, AuditStore, Plan};
use loyalty_core::custom::{Action, Conditions, CustomTrigger, When};
use loyalty_core::event::{ClientEvent, CrmEvent};
use loyalty_core::ledger::EntryKind;
use loyalty_core::level::{LevelMeasure, Levels, Tier};
use loyalty_core::model::BirthdayBonus;
use loyalty_core::referral::ReferralProgram;
use loyalty_core::{
    BirthDate, Bps, ClientId, ClientStore, CrmConnection, LedgerStore, PartnerId, Phone, Points,
    Program, VisitStatus,
};

const DAY: i64 = 86_400_000;
const ANNA: &str = "+79160000001";
const OLGA: &str = "+79160000002";

fn bonus(name: &str, when: When, conditions: Conditions, points: i64) -> CustomTrigger {
    CustomTrigger {
        name: name.into(),
        when,
        conditions,
        then: vec![
            Action::Bonus {
                points: Points(points),
            },
            Action::Webhook,
        ],
    }
}

async fn enterprise(db: &TestDb, p: PartnerId) {
    db.store
        .set_plan(p, Plan::Enterprise, &Actor::system(), T0)
        .await
        .expect("plan");
}

fn came(conn: &CrmConnection, record: &str, v: i64, phone: &str, day: i64) -> CrmEvent {
    let mut e = visit(
        conn,
        record,
        v,
        VisitStatus::Came,
        100_000,
        Some(by_phone(phone)),
    );
    if let CrmEvent::Visit(v) = &mut e {
        v.visit_at_ms = Some(T0 + day * DAY);
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

async fn a_visit_trigger_reads_the_gap_and_the_plan(db: &TestDb) {
    let (engine, _clock) = db.engine();
    let store = db.store.as_ref();
    let mut program = five_percent();
    let back = Conditions {
        min_days_since_last_visit: Some(30),
        ..Conditions::default()
    };
    program.custom_triggers = vec![bonus("Вернулась", When::Visit, back, 500)];
    let (partner, conn) = salon(store, program).await;
    let p = partner.id;

    // On Pro the rule is kept and runs for nobody.
    engine
        .apply_event(&conn, &came(&conn, "v1", 1, ANNA, 0))
        .await
        .expect("v1");
    engine
        .apply_event(&conn, &came(&conn, "v2", 1, ANNA, 40))
        .await
        .expect("v2");
    let anna = client(db, p, ANNA).await;
    assert_eq!(store.balance(p, anna).await.expect("b"), Points(100));
    assert!(
        store
            .trigger_fires(p, None, 10)
            .await
            .expect("fires")
            .is_empty()
    );

    enterprise(db, p).await;
    // Ten days after the visit before: nothing; fifty: the bonus, once however delivered.
    engine
        .apply_event(&conn, &came(&conn, "v3", 1, ANNA, 50))
        .await
        .expect("v3");
    assert_eq!(store.balance(p, anna).await.expect("b"), Points(150));
    for v in [1, 1, 2] {
        engine
            .apply_event(&conn, &came(&conn, "v4", v, ANNA, 100))
            .await
            .expect("v4");
    }
    assert_eq!(store.balance(p, anna).await.expect("b"), Points(700));
    let fires = store.trigger_fires(p, None, 10).await.expect("fires");
    assert_eq!(fires.len(), 1, "{fires:?}");
    assert_eq!(
        (
            fires[0].record_id.as_deref(),
            fires[0].points,
            fires[0].webhook
        ),
        (Some("v4"), Points(500), true)
    );
    assert!(store.account_totals(p).await.expect("t").is_balanced());
}

async fn a_birthday_trigger_posts_its_bonus_once(db: &TestDb) {
    let (engine, clock) = db.engine();
    let store = db.store.as_ref();
    let mut program = five_percent();
    program.birthday = Some(BirthdayBonus {
        points: Points(500),
        days_before: 3,
        valid_days: 7,
        utc_offset_minutes: 180,
    });
    program.custom_triggers = vec![bonus(
        "С днём рождения",
        When::Birthday,
        Conditions::default(),
        200,
    )];
    let (partner, conn) = salon(store, program).await;
    let p = partner.id;
    enterprise(db, p).await;
    engine
        .apply_event(
            &conn,
            &CrmEvent::Client(ClientEvent {
                company_id: conn.company_id.clone(),
                external_id: "1".into(),
                phone: Some(Phone::parse_international(ANNA).expect("phone")),
                name: Some("Анна".into()),
                deleted: false,
                email: None,
                // T0 is 1 January 2026: her birthday is in two days.
                birth_date: BirthDate::parse("1990-01-03"),
            }),
        )
        .await
        .expect("card");
    let anna = client(db, p, ANNA).await;
    for _ in 0..3 {
        engine.grant_birthdays(p).await.expect("grant");
        clock.advance_ms(DAY / 3);
    }
    assert_eq!(store.balance(p, anna).await.expect("b"), Points(700));
    let kinds: Vec<(EntryKind, Points)> = store
        .history(p, anna, 20)
        .await
        .expect("entries")
        .iter()
        .map(|e| (e.kind, e.amount))
        .collect();
    assert!(
        kinds.contains(&(EntryKind::Trigger, Points(200))),
        "{kinds:?}"
    );
    let fires = store.trigger_fires(p, None, 10).await.expect("fires");
    assert_eq!(fires.len(), 1);
    assert_eq!(fires[0].event_key, format!("birthday:{}:2026", anna.0));
    assert!(store.account_totals(p).await.expect("t").is_balanced());
}

async fn a_referral_trigger_rides_on_the_referrers_bonus(db: &TestDb) {
    let (engine, _clock) = db.engine();
    let store = db.store.as_ref();
    let mut program = five_percent();
    program.referral = Some(ReferralProgram {
        referrer_points: Points(300),
        friend_points: Points(200),
        monthly_cap: None,
    });
    program.custom_triggers = vec![bonus(
        "Спасибо за подругу",
        When::ReferralRewarded,
        Conditions::default(),
        150,
    )];
    let (partner, conn) = salon(store, program).await;
    let p = partner.id;
    enterprise(db, p).await;
    engine
        .apply_event(&conn, &came(&conn, "a1", 1, ANNA, 0))
        .await
        .expect("a1");
    let anna = client(db, p, ANNA).await;
    let olga = engine
        .enroll(p, &Phone::parse_international(OLGA).expect("phone"), None)
        .await
        .expect("enroll")
        .id;
    assert_eq!(
        engine.refer(p, anna, olga, None).await.expect("refer"),
        Ok(())
    );

    // Olga came: Anna 50 for her own visit, 300 and the rule's 150.
    engine
        .apply_event(&conn, &came(&conn, "o1", 1, OLGA, 1))
        .await
        .expect("o1");
    assert_eq!(store.balance(p, anna).await.expect("b"), Points(500));
    // She did not after all: both bonuses back; then she did: both again, the rule once.
    let mut no_show = came(&conn, "o1", 2, OLGA, 1);
    if let CrmEvent::Visit(v) = &mut no_show {
        v.status = VisitStatus::NoShow;
    }
    engine.apply_event(&conn, &no_show).await.expect("no-show");
    assert_eq!(store.balance(p, anna).await.expect("b"), Points(50));
    engine
        .apply_event(&conn, &came(&conn, "o1", 3, OLGA, 1))
        .await
        .expect("o1 again");
    assert_eq!(store.balance(p, anna).await.expect("b"), Points(500));
    let fires = store.trigger_fires(p, None, 10).await.expect("fires");
    assert_eq!(fires.len(), 1, "{fires:?}");
    assert_eq!(fires[0].client_id, anna);
    assert!(store.account_totals(p).await.expect("t").is_balanced());
}

async fn a_level_trigger_pays_on_the_level_reached(db: &TestDb) {
    let (engine, _clock) = db.engine();
    let store = db.store.as_ref();
    let tier = |name: &str, threshold: i64| Tier {
        name: name.into(),
        threshold,
        cashback: Bps::new(500).expect("bps"),
        max_redeem_share: Bps::new(5_000).expect("bps"),
    };
    let mut program: Program = five_percent();
    program.levels = Some(Levels {
        measure: LevelMeasure::Visits,
        window_days: None,
        grace_days: 90,
        tiers: vec![tier("Base", 0), tier("Silver", 2)],
    });
    let silver = Conditions {
        levels: vec!["Silver".into()],
        ..Conditions::default()
    };
    program.custom_triggers = vec![bonus("Серебро", When::LevelReached, silver, 1_000)];
    let (partner, conn) = salon(store, program).await;
    let p = partner.id;
    enterprise(db, p).await;
    engine
        .apply_event(&conn, &came(&conn, "l1", 1, ANNA, 0))
        .await
        .expect("l1");
    let anna = client(db, p, ANNA).await;
    assert_eq!(store.balance(p, anna).await.expect("b"), Points(50));
    engine
        .apply_event(&conn, &came(&conn, "l2", 1, ANNA, 1))
        .await
        .expect("l2");
    assert_eq!(store.balance(p, anna).await.expect("b"), Points(1_100));
    engine
        .apply_event(&conn, &came(&conn, "l2", 1, ANNA, 1))
        .await
        .expect("again");
    assert_eq!(store.balance(p, anna).await.expect("b"), Points(1_100));
    assert_eq!(
        store.trigger_fires(p, None, 10).await.expect("fires").len(),
        1
    );
}

#[tokio::test]
async fn sqlite_custom_triggers() {
    let db = TestDb::sqlite().await;
    a_visit_trigger_reads_the_gap_and_the_plan(&db).await;
    a_birthday_trigger_posts_its_bonus_once(&db).await;
    a_referral_trigger_rides_on_the_referrers_bonus(&db).await;
    a_level_trigger_pays_on_the_level_reached(&db).await;
    db.finish().await;
}

#[tokio::test]
async fn postgres_custom_triggers() {
    let db = TestDb::postgres().await;
    a_visit_trigger_reads_the_gap_and_the_plan(&db).await;
    a_birthday_trigger_posts_its_bonus_once(&db).await;
    a_referral_trigger_rides_on_the_referrers_bonus(&db).await;
    a_level_trigger_pays_on_the_level_reached(&db).await;
    db.finish().await;
}
