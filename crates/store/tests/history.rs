//! The visit history on both backends: each record's row written with its points, the master,
//! lines and the loyalty part of the bill kept; a chain's client summed across locations; a
//! record that changes client moves in both summaries; an import writes history but tells
//! nobody.

mod common;

use common::{T0, TestDb, five_percent, salon};
use loyalty_core::ChatStore;
use loyalty_core::ClientStore;
use loyalty_core::LedgerStore;
use loyalty_core::OutboxStore;
use loyalty_core::PartnerStore;
use loyalty_core::event::{ClientRef, CrmEvent, LoyaltyPaid};
use loyalty_core::history::{ClientSummary, HistoryStore};
use loyalty_core::inbox::Source;
use loyalty_core::model::NewConnection;
use loyalty_core::{CrmKind, Phone, Points, TelegramChat, VisitStatus};

fn anna() -> ClientRef {
    ClientRef {
        external_id: Some("501".into()),
        phone: Some(Phone::parse_international("+79161234567").unwrap()),
        name: Some("Анна".into()),
    }
}

fn olga() -> ClientRef {
    ClientRef {
        external_id: Some("502".into()),
        phone: Some(Phone::parse_international("+79167654321").unwrap()),
        name: Some("Ольга".into()),
    }
}

/// A visit at `at_ms` with a master and a certificate paying part of the bill.
fn visit_at(
    conn: &loyalty_core::CrmConnection,
    record: &str,
    version: i64,
    status: VisitStatus,
    paid: i64,
    at_ms: i64,
    who: ClientRef,
) -> CrmEvent {
    let CrmEvent::Visit(mut v) = common::visit(conn, record, version, status, paid, Some(who))
    else {
        unreachable!()
    };
    v.visit_at_ms = Some(at_ms);
    v.staff_id = Some("9".into());
    v.staff_name = Some("Оксана".into());
    v.loyalty_paid = LoyaltyPaid::Minor(paid / 4);
    CrmEvent::Visit(v)
}

async fn each_record_keeps_its_latest_state_and_the_summary_follows(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let day = 86_400_000;
    for (record, at) in [("r1", T0), ("r2", T0 + 30 * day), ("r3", T0 + 65 * day)] {
        let e = visit_at(&conn, record, 1, VisitStatus::Came, 400_000, at, anna());
        engine.apply_event(&conn, &e).await.unwrap();
    }
    let client = store
        .client_by_phone(partner.id, anna().phone.as_ref().unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    let row = store
        .visit(partner.id, conn.id, "r2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            row.client_id,
            row.visit_at_ms,
            row.status,
            row.staff_id.as_deref(),
            row.staff_name.as_deref(),
            row.paid_minor,
            row.loyalty_paid_minor,
            row.source
        ),
        (
            Some(client),
            Some(T0 + 30 * day),
            VisitStatus::Came,
            Some("9"),
            Some("Оксана"),
            400_000,
            100_000,
            Source::Webhook
        )
    );
    assert_eq!(row.lines[0].title, "Стрижка");
    assert_eq!(
        store.summary(partner.id, client).await.unwrap(),
        Some(ClientSummary {
            first_visit_ms: Some(T0),
            last_visit_ms: Some(T0 + 65 * day),
            visits: 3,
            paid_minor: 1_200_000,
        })
    );
    // The last visit turns out a no-show: the summary steps back; history keeps the record.
    let e = visit_at(
        &conn,
        "r3",
        2,
        VisitStatus::NoShow,
        400_000,
        T0 + 65 * day,
        anna(),
    );
    engine.apply_event(&conn, &e).await.unwrap();
    let summary = store.summary(partner.id, client).await.unwrap().unwrap();
    assert_eq!(
        (summary.last_visit_ms, summary.visits, summary.paid_minor),
        (Some(T0 + 30 * day), 2, 800_000)
    );
    let visits = store.visits_of(partner.id, client, 10).await.unwrap();
    let records: Vec<(&str, VisitStatus)> = visits
        .iter()
        .map(|v| (v.record_id.as_str(), v.status))
        .collect();
    assert_eq!(
        records,
        vec![
            ("r3", VisitStatus::NoShow),
            ("r2", VisitStatus::Came),
            ("r1", VisitStatus::Came)
        ]
    );
    // A duplicate writes nothing.
    let before = store
        .visit(partner.id, conn.id, "r3")
        .await
        .unwrap()
        .unwrap();
    engine.apply_event(&conn, &e).await.unwrap();
    assert_eq!(
        store.visit(partner.id, conn.id, "r3").await.unwrap(),
        Some(before)
    );
}

async fn a_record_that_changes_client_moves_between_summaries(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let e = visit_at(&conn, "r1", 1, VisitStatus::Came, 200_000, T0, anna());
    engine.apply_event(&conn, &e).await.unwrap();
    // The administrator corrects whose visit it was.
    let e = visit_at(&conn, "r1", 2, VisitStatus::Came, 200_000, T0, olga());
    engine.apply_event(&conn, &e).await.unwrap();
    let id = |r: ClientRef| async move {
        store
            .client_by_phone(partner.id, r.phone.as_ref().unwrap())
            .await
            .unwrap()
            .unwrap()
            .id
    };
    let (a, o) = (id(anna()).await, id(olga()).await);
    let a_summary = store.summary(partner.id, a).await.unwrap().unwrap();
    assert_eq!((a_summary.visits, a_summary.last_visit_ms), (0, None));
    let o_summary = store.summary(partner.id, o).await.unwrap().unwrap();
    assert_eq!((o_summary.visits, o_summary.paid_minor), (1, 200_000));
    assert!(store.visits_of(partner.id, a, 10).await.unwrap().is_empty());
    assert_eq!(store.balance(partner.id, a).await.unwrap(), Points(0));
    // 5 % of the three quarters not paid by certificate.
    assert_eq!(store.balance(partner.id, o).await.unwrap(), Points(75));
}

async fn a_chain_sums_a_client_across_its_locations(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, first) = salon(store, five_percent()).await;
    let second = store
        .create_connection(
            &NewConnection {
                partner_id: partner.id,
                kind: CrmKind::Yclients,
                company_id: "second-location".into(),
                credentials_ref: "test".into(),
                webhook_secret: format!("second-{}", partner.id),
            },
            T0,
        )
        .await
        .unwrap();
    let e = visit_at(&first, "r1", 1, VisitStatus::Came, 200_000, T0, anna());
    engine.apply_event(&first, &e).await.unwrap();
    // The same record id at the other location is another record.
    let mut who = anna();
    who.external_id = Some("77".into());
    let e = visit_at(&second, "r1", 1, VisitStatus::Came, 300_000, T0 + 1, who);
    engine.apply_event(&second, &e).await.unwrap();
    let client = store
        .client_by_phone(partner.id, anna().phone.as_ref().unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    let summary = store.summary(partner.id, client).await.unwrap().unwrap();
    assert_eq!((summary.visits, summary.paid_minor), (2, 500_000));
    assert_eq!(
        store.balance(partner.id, client).await.unwrap(),
        Points(75 + 112)
    );
    let locations: Vec<_> = store
        .visits_of(partner.id, client, 10)
        .await
        .unwrap()
        .iter()
        .map(|v| v.connection_id)
        .collect();
    assert_eq!(locations, vec![second.id, first.id]);
}

async fn an_import_writes_history_and_tells_nobody(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    // Anna uses the bot: a message would be sent for a live visit.
    let chat = TelegramChat {
        chat_id: 1001,
        phone: anna().phone,
        language: "ru".into(),
        active: true,
        joined_partner: None,
        referred_by: None,
    };
    store.save_telegram_chat(&chat, T0).await.unwrap();
    let e = visit_at(&conn, "r1", 1, VisitStatus::Came, 200_000, T0, anna());
    engine
        .apply_event_from(&conn, &e, Source::Import)
        .await
        .unwrap();
    let client = store
        .client_by_phone(partner.id, anna().phone.as_ref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.telegram_chat_id, Some(1001));
    assert!(store.outbox_of(partner.id).await.unwrap().is_empty());
    let row = store
        .visit(partner.id, conn.id, "r1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.source, Source::Import);
    let e = visit_at(&conn, "r2", 1, VisitStatus::Came, 200_000, T0, anna());
    engine.apply_event(&conn, &e).await.unwrap();
    assert_eq!(store.outbox_of(partner.id).await.unwrap().len(), 1);
}

both!(
    each_record_keeps_its_latest_state_and_the_summary_follows,
    a_record_that_changes_client_moves_between_summaries,
    a_chain_sums_a_client_across_its_locations,
    an_import_writes_history_and_tells_nobody,
);
