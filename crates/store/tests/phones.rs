//! `doctor phones` on both backends: stored numbers the old reader got wrong are found exactly,
//! corrected only where nobody holds the corrected number, and the books do not move.

mod common;

use loyalty_core::audit::Actor;

use common::{TestDb, five_percent, salon, visit};
use loyalty_core::ChatStore;
use loyalty_core::ClientStore;
use loyalty_core::PartnerStore;
use loyalty_core::doctor::{self, PhoneMove, PhoneStore, Verdict};
use loyalty_core::event::ClientRef;
use loyalty_core::{
    ClientId, Country, PartnerId, Phone, Points, Program, Store, TelegramChat, VisitStatus,
};

/// A client as the old reader stored them: any E.164-shaped number, valid or not.
fn stored(ext: &str, phone: &str) -> ClientRef {
    ClientRef {
        external_id: Some(ext.to_owned()),
        phone: Some(Phone::from_e164(phone).expect("E.164 shape")),
        name: None,
    }
}

fn belarus() -> Program {
    Program {
        country: Country::parse("BY").expect("BY"),
        ..five_percent()
    }
}

async fn client_at(store: &dyn Store, partner: PartnerId, phone: &str) -> Option<ClientId> {
    let phone = Phone::from_e164(phone).expect("E.164 shape");
    store
        .client_by_phone(partner, &phone)
        .await
        .expect("client by phone")
        .map(|c| c.id)
}

async fn balances(store: &dyn Store, partner: PartnerId, clients: &[ClientId]) -> Vec<Points> {
    let mut out = Vec::new();
    for c in clients {
        out.push(store.balance(partner, *c).await.expect("balance"));
    }
    let totals = store.account_totals(partner).await.expect("totals");
    assert!(totals.is_balanced(), "{totals:?}");
    out
}

async fn doctor_finds_exactly_the_wrong_numbers_and_moves_only_the_free_ones(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, belarus()).await;
    let seeded = [
        // `8 029 123-45-67` typed at the desk, read by the old reader as a +7 number.
        ("1", "+70291234567"),
        // `8 033 …`, whose correct number another card already has.
        ("2", "+70331234567"),
        ("3", "+375331234567"),
        // Accepted by the old reader, impossible anywhere.
        ("4", "+71234567890"),
        // A Russian client of the salon: valid, stays.
        ("5", "+79161234567"),
    ];
    for (i, (ext, phone)) in seeded.iter().enumerate() {
        let record = format!("r{i}");
        let event = visit(
            &conn,
            &record,
            1,
            VisitStatus::Came,
            400_000,
            Some(stored(ext, phone)),
        );
        engine.apply_event(&conn, &event).await.expect("seed visit");
    }
    // The same wrong number at a Russian partner: read in RU it has no other reading.
    let (other, other_conn) = salon(store, five_percent()).await;
    let event = visit(
        &other_conn,
        "r0",
        1,
        VisitStatus::Came,
        400_000,
        Some(stored("1", "+70291234567")),
    );
    engine.apply_event(&other_conn, &event).await.expect("seed");
    // The client's Telegram chat shared the real number.
    let real = Phone::parse_international("375291234567").expect("phone");
    store
        .save_telegram_chat(
            &TelegramChat {
                chat_id: 555,
                phone: Some(real.clone()),
                language: "ru".into(),
                active: true,
                joined_partner: None,
                referred_by: None,
            },
            common::T0,
        )
        .await
        .expect("chat");

    let mut ids = Vec::new();
    for (_, phone) in &seeded {
        ids.push(
            client_at(store, partner.id, phone)
                .await
                .expect("seeded client"),
        );
    }
    let before = balances(store, partner.id, &ids).await;
    assert_eq!(before, vec![Points(200); 5]);

    // A dry run names exactly the three, and changes nothing.
    let report = doctor::phones(store, Some(partner.id), false)
        .await
        .expect("doctor");
    assert_eq!((report.partners, report.checked), (1, 5));
    let verdicts: Vec<(ClientId, &str, Verdict)> = report
        .findings
        .iter()
        .map(|f| (f.client_id, f.stored.as_str(), f.verdict.clone()))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            (
                ids[0],
                "+70291234567",
                Verdict::WouldChange { to: real.clone() }
            ),
            (
                ids[1],
                "+70331234567",
                Verdict::Collision {
                    to: Phone::from_e164("+375331234567").expect("phone"),
                    holder: ids[2],
                }
            ),
            (
                ids[3],
                "+71234567890",
                Verdict::Invalid {
                    reason: "no phone number of +7 begins with these digits".into(),
                    kind: "not_in_use",
                }
            ),
        ]
    );
    assert_eq!(
        client_at(store, partner.id, "+70291234567").await,
        Some(ids[0])
    );

    // --apply moves the free one, links it to the chat that shared the number, and leaves
    // the collision and the invalid number for the operator.
    let applied = doctor::phones(store, Some(partner.id), true)
        .await
        .expect("doctor --apply");
    assert_eq!(
        (
            applied.count("changed"),
            applied.count("collision"),
            applied.count("invalid"),
            applied.count("would_change"),
        ),
        (1, 1, 1, 0)
    );
    assert_eq!(client_at(store, partner.id, "+70291234567").await, None);
    assert_eq!(
        client_at(store, partner.id, real.as_str()).await,
        Some(ids[0])
    );
    let moved = store
        .client(partner.id, ids[0])
        .await
        .expect("client")
        .expect("moved client");
    assert_eq!(moved.telegram_chat_id, Some(555));
    assert_eq!(
        client_at(store, partner.id, "+70331234567").await,
        Some(ids[1])
    );
    assert_eq!(
        balances(store, partner.id, &ids).await,
        before,
        "points do not move"
    );

    // The other partner was not part of this run; read in its own country, it is invalid.
    assert!(client_at(store, other.id, "+70291234567").await.is_some());
    let all = doctor::phones(store, None, false).await.expect("doctor");
    assert_eq!(all.partners, 2);
    let elsewhere: Vec<&str> = all
        .findings
        .iter()
        .filter(|f| f.partner_id == other.id)
        .map(|f| f.verdict.name())
        .collect();
    assert_eq!(elsewhere, vec!["invalid"]);
    // Run again, the corrected client is no longer a finding.
    assert!(
        all.findings
            .iter()
            .all(|f| f.client_id != ids[0] || f.partner_id != partner.id)
    );
}

async fn a_move_is_refused_when_taken_or_stale(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, belarus()).await;
    for (i, phone) in ["+70291234567", "+375291234567"].iter().enumerate() {
        let event = visit(
            &conn,
            &format!("r{i}"),
            1,
            VisitStatus::Came,
            100_000,
            Some(stored(&i.to_string(), phone)),
        );
        engine.apply_event(&conn, &event).await.expect("seed");
    }
    let wrong = client_at(store, partner.id, "+70291234567")
        .await
        .expect("wrong");
    let right = client_at(store, partner.id, "+375291234567")
        .await
        .expect("right");
    let to = Phone::from_e164("+375291234567").expect("phone");
    assert_eq!(
        store
            .move_phone(partner.id, wrong, "+70291234567", &to)
            .await
            .expect("move"),
        PhoneMove::Taken { holder: right }
    );
    let free = Phone::from_e164("+375291234568").expect("phone");
    // Not the number the client has any more.
    assert_eq!(
        store
            .move_phone(partner.id, wrong, "+70000000000", &free)
            .await
            .expect("move"),
        PhoneMove::Stale
    );
    // Another partner's client is out of reach.
    let (other, _) = salon(store, belarus()).await;
    assert_eq!(
        store
            .move_phone(other.id, wrong, "+70291234567", &free)
            .await
            .expect("move"),
        PhoneMove::Stale
    );
    assert_eq!(
        store
            .move_phone(partner.id, wrong, "+70291234567", &free)
            .await
            .expect("move"),
        PhoneMove::Moved
    );
    assert_eq!(
        client_at(store, partner.id, free.as_str()).await,
        Some(wrong)
    );
    assert_eq!(
        store.stored_phones(partner.id).await.expect("phones"),
        vec![
            (wrong, "+375291234568".to_owned()),
            (right, "+375291234567".to_owned())
        ]
    );
}

async fn the_country_is_a_program_setting(db: &TestDb) {
    let store = db.store.as_ref();
    let (partner, _) = salon(store, five_percent()).await;
    assert_eq!(partner.program.country, Country::RU);
    let mut program = partner.program.clone();
    program.country = Country::parse("KZ").expect("KZ");
    let v2 = store
        .set_program(partner.id, &program, 1_000, &Actor::system())
        .await
        .expect("set");
    assert_eq!((v2.version, v2.effective_from_ms), (2, 1_000));
    let read = store
        .partner(partner.id)
        .await
        .expect("partner")
        .expect("some");
    assert_eq!(read.program, program);
    assert!(matches!(
        store
            .set_program(PartnerId(999_999), &program, 1_000, &Actor::system())
            .await,
        Err(loyalty_core::StoreError::NotFound(_))
    ));
}

both!(
    doctor_finds_exactly_the_wrong_numbers_and_moves_only_the_free_ones,
    a_move_is_refused_when_taken_or_stale,
    the_country_is_a_program_setting,
);
