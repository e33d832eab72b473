//! Birthday points on both backends: granted once a year, `days_before` the birthday in the
//! salon's time, in a lot that expires after `valid_days`; again the next year; never twice for
//! one birthday, however many passes run.

mod common;

use common::{T0, TestDb, five_percent, salon};
use loyalty_core::event::{ClientEvent, CrmEvent};
use loyalty_core::model::BirthdayBonus;
use loyalty_core::{BirthDate, ClientStore, CrmConnection, LedgerStore, Phone, Points, Program};

const DAY: i64 = 86_400_000;

fn with_birthday() -> Program {
    let mut p = five_percent();
    p.birthday = Some(BirthdayBonus {
        points: Points(500),
        days_before: 3,
        valid_days: 7,
        utc_offset_minutes: 180,
    });
    p
}

fn card(conn: &CrmConnection, ext: &str, phone: &str, born: Option<&str>) -> CrmEvent {
    CrmEvent::Client(ClientEvent {
        company_id: conn.company_id.clone(),
        external_id: ext.into(),
        phone: Some(Phone::parse_international(phone).expect("phone")),
        name: Some("Клиентка".into()),
        deleted: false,
        email: None,
        birth_date: born.and_then(BirthDate::parse),
    })
}

async fn birthday_points_come_once_a_year_and_expire(db: &TestDb) {
    let (engine, clock) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, with_birthday()).await;
    let p = partner.id;
    // T0 is 1 January 2026, 03:00 in the salon's time.
    for (ext, phone, born) in [
        ("1", "+79161230001", Some("1990-01-03")),
        ("2", "+79161230002", Some("10.01.1985")),
        ("3", "+79161230003", None),
    ] {
        engine
            .apply_event(&conn, &card(&conn, ext, phone, born))
            .await
            .expect("card");
    }
    let of = |phone: &str| Phone::parse_international(phone).expect("phone");
    let anna = store
        .client_by_phone(p, &of("+79161230001"))
        .await
        .expect("read")
        .expect("anna");
    let olga = store
        .client_by_phone(p, &of("+79161230002"))
        .await
        .expect("read")
        .expect("olga");

    // Anna's birthday is in two days: 500 points, valid 7 days; nobody else's is near.
    let pass = engine.grant_birthdays(p).await.expect("grant");
    assert_eq!(pass.granted, 1);
    assert_eq!(store.balance(p, anna.id).await.expect("b"), Points(500));
    // Another pass, the next day, another instance: nothing more for this birthday.
    clock.advance_ms(DAY);
    assert_eq!(engine.grant_birthdays(p).await.expect("grant").granted, 0);
    assert_eq!(engine.grant_birthdays(p).await.expect("grant").granted, 0);
    // Unspent, they expire 7 days after they came.
    clock.advance_ms(5 * DAY);
    assert!(engine.expire_due(p).await.expect("expire").is_empty());
    clock.advance_ms(DAY);
    let expired = engine.expire_due(p).await.expect("expire");
    assert_eq!(expired.len(), 1);
    assert_eq!(store.balance(p, anna.id).await.expect("b"), Points::ZERO);
    // 7 January: Olga's birthday on the 10th is three days ahead.
    assert_eq!(engine.grant_birthdays(p).await.expect("grant").granted, 1);
    assert_eq!(store.balance(p, olga.id).await.expect("b"), Points(500));
    // A year on, Anna's next birthday.
    clock.advance_ms(T0 + 365 * DAY - (T0 + 7 * DAY));
    assert_eq!(engine.grant_birthdays(p).await.expect("grant").granted, 1);
    assert_eq!(store.balance(p, anna.id).await.expect("b"), Points(500));
    let totals = store.account_totals(p).await.expect("totals");
    assert!(totals.is_balanced(), "{totals:?}");
    assert_eq!(totals.expired, Points(500));
    // The program refuses a birthday bonus that could never be used.
    let mut bad = with_birthday();
    if let Some(b) = bad.birthday.as_mut() {
        b.valid_days = 0;
    }
    assert_eq!(
        bad.validate().expect_err("refused").to_string(),
        "birthday: valid_days must be at least 1"
    );
}

both!(birthday_points_come_once_a_year_and_expire);
