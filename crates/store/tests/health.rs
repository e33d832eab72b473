//! Connection health on both backends: one open incident per connection and kind whoever
//! opens it, the staff chats told once on opening and once on closing, their messages claimed
//! once, the latest webhook time kept, dead letters counted per connection.

mod common;

use common::{T0, TestDb, five_percent, salon, visit};
use loyalty_core::ChatStore;
use loyalty_core::VisitStatus;
use loyalty_core::health::{HealthStore, Incident, StaffNotice};
use loyalty_core::inbox::{IntakeStore, Source};
use loyalty_core::sync::{PollReport, SyncStore};

fn opened(c: loyalty_core::ConnectionId) -> StaffNotice {
    StaffNotice::Opened {
        connection_id: c,
        crm: "YCLIENTS".into(),
        incident: Incident::CrmRefused,
        detail: "401".into(),
    }
}

async fn an_incident_opens_once_and_tells_each_staff_chat_once(db: &TestDb) {
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let (other, other_conn) = salon(store, five_percent()).await;
    store.add_staff_chat(partner.id, 501, T0).await.unwrap();
    store.add_staff_chat(partner.id, 502, T0).await.unwrap();
    store.add_staff_chat(other.id, 503, T0).await.unwrap();

    let notice = opened(conn.id);
    let open = |at| {
        store.open_incident(
            partner.id,
            conn.id,
            Incident::CrmRefused,
            "401",
            &notice,
            at,
        )
    };
    assert!(open(T0).await.unwrap());
    assert!(!open(T0 + 1).await.unwrap(), "already open");
    // Another kind of the same connection is its own incident.
    assert!(
        store
            .open_incident(
                partner.id,
                conn.id,
                Incident::DeadLetters,
                "2 dead",
                &opened(conn.id),
                T0
            )
            .await
            .unwrap()
    );
    let listed = store.incidents(Some(conn.id), false).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        store
            .incidents(Some(other_conn.id), false)
            .await
            .unwrap()
            .is_empty()
    );

    // Two incidents, two staff chats: four messages, each claimed once.
    let claimed = store
        .claim_staff_messages(T0 + 5, 60_000, 10)
        .await
        .unwrap();
    let mut chats: Vec<i64> = claimed.iter().map(|m| m.chat_id).collect();
    chats.sort_unstable();
    assert_eq!(chats, [501, 501, 502, 502]);
    assert!(claimed.iter().all(|m| m.attempts == 1));
    assert_eq!(claimed[0].notice, opened(conn.id));
    assert!(
        store
            .claim_staff_messages(T0 + 5, 60_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    store
        .staff_message_sent(claimed[0].id, T0 + 6)
        .await
        .unwrap();
    store
        .staff_message_failed(claimed[1].id, Some(T0 + 100), "5xx")
        .await
        .unwrap();
    store
        .staff_message_failed(claimed[2].id, None, "blocked")
        .await
        .unwrap();
    let again = store
        .claim_staff_messages(T0 + 100, 60_000, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempts), (claimed[1].id, 2));
    // The fourth comes back when its lease ends.
    let after_lease = store
        .claim_staff_messages(T0 + 5 + 60_001, 60_000, 10)
        .await
        .unwrap();
    assert_eq!(after_lease.len(), 1);
    assert_eq!(after_lease[0].id, claimed[3].id);

    // Closing tells once; closing again does nothing; a new incident may open then.
    let closed = StaffNotice::Closed {
        connection_id: conn.id,
        crm: "YCLIENTS".into(),
        incident: Incident::CrmRefused,
    };
    assert!(
        store
            .close_incident(conn.id, Incident::CrmRefused, &closed, T0 + 200)
            .await
            .unwrap()
    );
    assert!(
        !store
            .close_incident(conn.id, Incident::CrmRefused, &closed, T0 + 201)
            .await
            .unwrap()
    );
    let told = store
        .claim_staff_messages(T0 + 300, 60_000, 10)
        .await
        .unwrap();
    assert_eq!(told.len(), 2);
    assert!(told.iter().all(|m| m.notice == closed));
    let all = store.incidents(Some(conn.id), true).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        all.iter()
            .find(|i| i.incident == Incident::CrmRefused)
            .unwrap()
            .closed_at_ms,
        Some(T0 + 200)
    );
    assert!(open(T0 + 400).await.unwrap(), "a new incident");
}

async fn webhook_times_and_found_records_and_dead_letters_are_kept(db: &TestDb) {
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    // Another salon, with no dead letters: left out of the count.
    salon(store, five_percent()).await;
    store
        .note_webhook(partner.id, conn.id, T0 + 10)
        .await
        .unwrap();
    store
        .note_webhook(partner.id, conn.id, T0 + 5)
        .await
        .unwrap();
    let cursor = |c| async move {
        store
            .sync_cursors(Some(c))
            .await
            .unwrap()
            .into_iter()
            .next()
            .unwrap()
    };
    assert_eq!(
        cursor(conn.id).await.last_webhook_ms,
        Some(T0 + 10),
        "the latest wins"
    );

    // A pass that applied nothing leaves `last_found_ms`; one that applied records sets it.
    for (applied, at) in [(0, T0 + 100), (3, T0 + 200), (0, T0 + 300)] {
        store
            .lease_poll(partner.id, conn.id, "me", at, at + 1_000)
            .await
            .unwrap()
            .unwrap();
        let report = PollReport {
            started_ms: at,
            finished_ms: at + 1,
            complete: true,
            applied,
            ..PollReport::default()
        };
        store.finish_poll(conn.id, "me", &report).await.unwrap();
    }
    let c = cursor(conn.id).await;
    assert_eq!(c.last_found_ms, Some(T0 + 201));
    assert_eq!(
        c.last_webhook_ms,
        Some(T0 + 10),
        "a pass keeps the webhook time"
    );

    // Dead letters per connection.
    for (record, give_up) in [("1", true), ("2", true), ("3", false)] {
        let event = visit(&conn, record, 1, VisitStatus::Came, 100_000, None);
        let id = store
            .enqueue_inbox(partner.id, conn.id, &event, Source::Webhook, T0)
            .await
            .unwrap();
        store.claim_inbox(T0, 10, T0 + 1_000).await.unwrap();
        store
            .inbox_failed(id, "gone", (!give_up).then_some(T0 + 5_000))
            .await
            .unwrap();
    }
    assert_eq!(store.dead_letters().await.unwrap(), [(conn.id, 2)]);
}

both!(
    an_incident_opens_once_and_tells_each_staff_chat_once,
    webhook_times_and_found_records_and_dead_letters_are_kept,
);
