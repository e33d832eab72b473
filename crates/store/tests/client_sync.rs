//! The CRM's client cards on both backends: the CRM owns the name, phone, e-mail and birth date;
//! a card whose phone changes moves our client (balance and history with it); a new phone that
//! another client holds points the CRM id at that client; two cards with one phone are one
//! client.

mod common;

use common::{T0, TestDb, five_percent, salon, visit};
use loyalty_core::ChatStore;
use loyalty_core::ClientStore;
use loyalty_core::LedgerStore;
use loyalty_core::event::{ClientEvent, ClientRef, CrmEvent};
use loyalty_core::{
    BirthDate, Client, CrmConnection, Phone, Points, Store, TelegramChat, VisitStatus,
};

fn card(conn: &CrmConnection, ext: &str, phone: &str, name: &str) -> ClientEvent {
    ClientEvent {
        company_id: conn.company_id.clone(),
        external_id: ext.into(),
        phone: Some(Phone::parse_international(phone).unwrap()),
        name: Some(name.into()),
        deleted: false,
        email: None,
        birth_date: None,
    }
}

async fn by_phone(db: &TestDb, conn: &CrmConnection, phone: &str) -> Option<Client> {
    let phone = Phone::parse_international(phone).unwrap();
    db.store
        .client_by_phone(conn.partner_id, &phone)
        .await
        .unwrap()
}

async fn the_crm_owns_name_email_and_birth_date(db: &TestDb) {
    let (engine, _) = db.engine();
    let (_, conn) = salon(db.store.as_ref(), five_percent()).await;
    let mut event = card(&conn, "501", "+79161234567", "Анна");
    event.email = Some("anna@example.com".into());
    event.birth_date = BirthDate::parse("0000-05-17");
    engine
        .apply_event(&conn, &CrmEvent::Client(event.clone()))
        .await
        .unwrap();
    let anna = by_phone(db, &conn, "+79161234567").await.unwrap();
    assert_eq!(anna.name.as_deref(), Some("Анна"));
    assert_eq!(anna.email.as_deref(), Some("anna@example.com"));
    assert_eq!(
        anna.birth_date.map(|b| b.to_iso()).as_deref(),
        Some("--05-17")
    );
    // The salon corrects her name and adds the year; a record names her by the new name.
    event.name = Some("Анна Петрова".into());
    event.birth_date = BirthDate::parse("1991-05-17");
    event.email = None;
    engine
        .apply_event(&conn, &CrmEvent::Client(event))
        .await
        .unwrap();
    let anna = by_phone(db, &conn, "+79161234567").await.unwrap();
    assert_eq!(anna.name.as_deref(), Some("Анна Петрова"));
    assert_eq!(anna.email.as_deref(), Some("anna@example.com"), "kept");
    assert_eq!(anna.birth_date, BirthDate::parse("1991-05-17"));
}

async fn a_card_with_a_new_phone_moves_the_client_with_its_points(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let who = |phone: &str| ClientRef {
        external_id: Some("501".into()),
        phone: Some(Phone::parse_international(phone).unwrap()),
        name: Some("Анна".into()),
    };
    let e = visit(
        &conn,
        "r1",
        1,
        VisitStatus::Came,
        400_000,
        Some(who("+79161234567")),
    );
    engine.apply_event(&conn, &e).await.unwrap();
    let before = by_phone(db, &conn, "+79161234567").await.unwrap();
    // Her new number already shared with the bot.
    store
        .save_telegram_chat(
            &TelegramChat {
                chat_id: 77,
                phone: Some(Phone::parse_international("+79169999999").unwrap()),
                language: "ru".into(),
                active: true,
                joined_partner: None,
                referred_by: None,
            },
            T0,
        )
        .await
        .unwrap();
    // The next record (the poller's or a webhook's) carries the card's new number.
    let e = visit(
        &conn,
        "r2",
        1,
        VisitStatus::Came,
        200_000,
        Some(who("+79169999999")),
    );
    engine.apply_event(&conn, &e).await.unwrap();
    assert!(by_phone(db, &conn, "+79161234567").await.is_none());
    let after = by_phone(db, &conn, "+79169999999").await.unwrap();
    assert_eq!(after.id, before.id, "the same client, moved");
    assert_eq!(after.telegram_chat_id, Some(77));
    assert_eq!(
        store.balance(partner.id, after.id).await.unwrap(),
        Points(300)
    );
    let totals = store.account_totals(partner.id).await.unwrap();
    assert!(totals.is_balanced(), "{totals:?}");
}

async fn a_new_phone_another_client_holds_points_the_card_at_them(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    engine
        .apply_event(
            &conn,
            &CrmEvent::Client(card(&conn, "501", "+79161234567", "Анна")),
        )
        .await
        .unwrap();
    engine
        .apply_event(
            &conn,
            &CrmEvent::Client(card(&conn, "502", "+79167654321", "Ольга")),
        )
        .await
        .unwrap();
    let anna = by_phone(db, &conn, "+79161234567").await.unwrap();
    let olga = by_phone(db, &conn, "+79167654321").await.unwrap();
    engine
        .manual_accrual(partner.id, anna.id, Points(40), "gift", "g1")
        .await
        .unwrap();
    // Card 501 now has Olga's number: it is Olga's card from now on; Anna keeps her points.
    engine
        .apply_event(
            &conn,
            &CrmEvent::Client(card(&conn, "501", "+79167654321", "Ольга")),
        )
        .await
        .unwrap();
    let ext = |id: &'static str| async move {
        let mut tx = store.begin().await.unwrap();
        tx.client_by_external_id(partner.id, conn.id, id)
            .await
            .unwrap()
            .map(|c| c.id)
    };
    assert_eq!(ext("501").await, Some(olga.id));
    assert_eq!(ext("502").await, Some(olga.id));
    assert_eq!(
        store.balance(partner.id, anna.id).await.unwrap(),
        Points(40)
    );
    assert!(by_phone(db, &conn, "+79161234567").await.is_some());
}

async fn two_cards_with_one_phone_are_one_client(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    for (ext, record) in [("601", "r1"), ("602", "r2")] {
        let who = ClientRef {
            external_id: Some(ext.into()),
            phone: Some(Phone::parse_international("+79161112233").unwrap()),
            name: Some("Ирина".into()),
        };
        let e = visit(&conn, record, 1, VisitStatus::Came, 200_000, Some(who));
        engine.apply_event(&conn, &e).await.unwrap();
    }
    let irina = by_phone(db, &conn, "+79161112233").await.unwrap();
    assert_eq!(
        store.balance(partner.id, irina.id).await.unwrap(),
        Points(200)
    );
}

both!(
    the_crm_owns_name_email_and_birth_date,
    a_card_with_a_new_phone_moves_the_client_with_its_points,
    a_new_phone_another_client_holds_points_the_card_at_them,
    two_cards_with_one_phone_are_one_client,
);
