//! The reconciliation poller on both backends: a pass takes every record through the engine as
//! a webhook would, moves the cursor only when every page was read, goes on past a record it
//! cannot apply, and runs on one instance at a time.

mod common;

use loyalty_core::LedgerStore;
use std::sync::Mutex;

use async_trait::async_trait;
use common::{T0, TestDb, by_phone, five_percent, salon, visit};
use loyalty_core::adapter::{AdapterError, CrmAdapter, RecordPage};
use loyalty_core::event::CrmEvent;
use loyalty_core::sync::{PollPolicy, PollReport, SyncStore};
use loyalty_core::{
    Capabilities, Clock, CrmConnection, CrmKind, Currency, Phone, Points, Store, VisitEvent,
    VisitStatus, WebhookError,
};

/// A CRM whose record list is given by the test: pages of records (`Err` for a page that fails),
/// and the cursors it was asked for.
struct Crm {
    pages: Vec<Result<RecordPage, AdapterError>>,
    asked: Mutex<Vec<(i64, u32)>>,
}

#[async_trait]
impl CrmAdapter for Crm {
    fn kind(&self) -> CrmKind {
        CrmKind::Yclients
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            poll_records: true,
            ..Capabilities::default()
        }
    }
    fn parse_webhook(&self, _: Option<&str>, _: &[u8]) -> Result<Vec<CrmEvent>, WebhookError> {
        Ok(Vec::new())
    }
    async fn records_changed_since(
        &self,
        since_ms: i64,
        page: u32,
    ) -> Result<RecordPage, AdapterError> {
        self.asked.lock().unwrap().push((since_ms, page));
        self.pages
            .get(page as usize - 1)
            .cloned()
            .unwrap_or_else(|| Err(AdapterError::Unexpected(format!("no page {page}"))))
    }
}

fn record(
    conn: &CrmConnection,
    id: &str,
    status: VisitStatus,
    paid: i64,
    phone: &str,
) -> VisitEvent {
    let CrmEvent::Visit(v) = visit(conn, id, 1, status, paid, Some(by_phone(phone))) else {
        unreachable!()
    };
    v
}

fn page(records: Vec<VisitEvent>, next: Option<u32>) -> Result<RecordPage, AdapterError> {
    Ok(RecordPage {
        caveat: None,
        records,
        rejected: Vec::new(),
        next_page: next,
        total: None,
    })
}

async fn balance(store: &dyn Store, conn: &CrmConnection, phone: &str) -> Points {
    let phone = Phone::parse_international(phone).unwrap();
    match store
        .client_by_phone(conn.partner_id, &phone)
        .await
        .unwrap()
    {
        Some(c) => store.balance(conn.partner_id, c.id).await.unwrap(),
        None => Points::ZERO,
    }
}

async fn a_pass_applies_what_webhooks_lost_and_moves_the_cursor(db: &TestDb) {
    let (engine, clock) = db.engine();
    let store = db.store.as_ref();
    let (_, conn) = salon(store, five_percent()).await;
    // The webhook of r1 arrived; those of r2 and r3 were lost.
    let r1 = record(&conn, "r1", VisitStatus::Came, 200_000, "+79160000001");
    engine
        .apply_event(&conn, &CrmEvent::Visit(r1.clone()))
        .await
        .unwrap();
    let mut bad = record(&conn, "r4", VisitStatus::Came, 100_000, "+79160000004");
    bad.currency = Currency::Usd;
    let crm = Crm {
        pages: vec![
            page(
                vec![
                    r1.clone(),
                    record(&conn, "r2", VisitStatus::Came, 400_000, "+79160000002"),
                ],
                Some(2),
            ),
            Ok(RecordPage {
                caveat: None,
                records: vec![
                    bad,
                    record(&conn, "r3", VisitStatus::Came, 600_000, "+79160000003"),
                ],
                rejected: vec!["item 1: record event without an id".into()],
                next_page: None,
                total: None,
            }),
        ],
        asked: Mutex::new(Vec::new()),
    };
    let policy = PollPolicy::default();
    let report = engine
        .poll_pass(store, store, &conn, &crm, "a", &policy)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            report.complete,
            report.pages,
            report.seen,
            report.applied,
            report.errors
        ),
        (true, 2, 4, 2, 2),
        "{report:?}"
    );
    // The first pass read the first window: a day back.
    assert_eq!(
        crm.asked.lock().unwrap().as_slice(),
        &[
            (T0 - policy.first_window_ms, 1),
            (T0 - policy.first_window_ms, 2)
        ]
    );
    for (phone, points) in [
        ("+79160000001", 100),
        ("+79160000002", 200),
        ("+79160000003", 300),
        ("+79160000004", 0),
    ] {
        assert_eq!(
            balance(store, &conn, phone).await,
            Points(points),
            "{phone}"
        );
    }
    let cursor = &store.sync_cursors(Some(conn.id)).await.unwrap()[0];
    assert_eq!(cursor.cursor_ms, Some(T0));
    assert_eq!((cursor.seen, cursor.applied, cursor.errors), (4, 2, 2));
    assert!(
        cursor.last_error.as_deref().unwrap().contains("USD"),
        "{cursor:?}"
    );

    // The next pass reads from a little before the cursor; all duplicates now.
    clock.advance_ms(300_000);
    crm.asked.lock().unwrap().clear();
    let again = engine
        .poll_pass(store, store, &conn, &crm, "a", &policy)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.applied, again.seen), (0, 4));
    assert_eq!(crm.asked.lock().unwrap()[0].0, T0 - policy.overlap_ms);
    let cursor = &store.sync_cursors(Some(conn.id)).await.unwrap()[0];
    assert_eq!(cursor.cursor_ms, Some(T0 + 300_000));
    assert_eq!(store.entry_count(conn.partner_id).await.unwrap(), 3);
}

async fn a_page_that_fails_leaves_the_cursor_for_the_next_pass(db: &TestDb) {
    let (engine, clock) = db.engine();
    let store = db.store.as_ref();
    let (_, conn) = salon(store, five_percent()).await;
    let first = Crm {
        pages: vec![page(Vec::new(), None)],
        asked: Mutex::new(Vec::new()),
    };
    let policy = PollPolicy::default();
    engine
        .poll_pass(store, store, &conn, &first, "a", &policy)
        .await
        .unwrap();
    clock.advance_ms(600_000);
    let broken = Crm {
        pages: vec![
            page(
                vec![record(
                    &conn,
                    "r1",
                    VisitStatus::Came,
                    200_000,
                    "+79160000001",
                )],
                Some(2),
            ),
            Err(AdapterError::Unexpected(
                "the record list is not a list".into(),
            )),
        ],
        asked: Mutex::new(Vec::new()),
    };
    let report = engine
        .poll_pass(store, store, &conn, &broken, "a", &policy)
        .await
        .unwrap()
        .unwrap();
    assert!(!report.complete);
    assert_eq!((report.applied, report.errors), (1, 1));
    // What was read is applied; the cursor stays, so the next pass reads it all again.
    assert_eq!(balance(store, &conn, "+79160000001").await, Points(100));
    let cursor = &store.sync_cursors(Some(conn.id)).await.unwrap()[0];
    assert_eq!(cursor.cursor_ms, Some(T0));
    assert!(cursor.last_error.as_deref().unwrap().contains("page 2"));
    assert_eq!(cursor.last_started_ms, Some(T0 + 600_000));
}

async fn a_cursor_ahead_of_the_clock_reads_from_now(db: &TestDb) {
    let (engine, clock) = db.engine();
    let store = db.store.as_ref();
    let (_, conn) = salon(store, five_percent()).await;
    let empty = Crm {
        pages: vec![page(Vec::new(), None)],
        asked: Mutex::new(Vec::new()),
    };
    let policy = PollPolicy::default();
    engine
        .poll_pass(store, store, &conn, &empty, "a", &policy)
        .await
        .unwrap();
    // The clock goes back an hour (the cursor is now an hour ahead of it).
    let back = Crm {
        pages: vec![page(Vec::new(), None)],
        asked: Mutex::new(Vec::new()),
    };
    let engine_back = loyalty_core::LoyaltyEngine::with_clock(
        db.dyn_store(),
        std::sync::Arc::new(loyalty_core::ManualClock::new(clock.now_ms() - 3_600_000)),
    );
    let report = engine_back
        .poll_pass(store, store, &conn, &back, "a", &policy)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.errors, 1);
    assert!(report.last_error.unwrap().contains("ahead of the clock"));
    assert_eq!(
        back.asked.lock().unwrap()[0].0,
        T0 - 3_600_000 - policy.overlap_ms
    );
}

async fn one_instance_at_a_time_polls_a_connection(db: &TestDb) {
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let a = store
        .lease_poll(partner.id, conn.id, "a", T0, T0 + 60_000)
        .await
        .unwrap();
    assert!(a.is_some());
    assert!(
        store
            .lease_poll(partner.id, conn.id, "b", T0 + 1, T0 + 60_001)
            .await
            .unwrap()
            .is_none(),
        "b waits while a holds it"
    );
    // b's report does not count; a's does and frees the connection.
    let done = PollReport {
        started_ms: T0,
        finished_ms: T0 + 5,
        complete: true,
        ..PollReport::default()
    };
    store.finish_poll(conn.id, "b", &done).await.unwrap();
    assert_eq!(
        store.sync_cursors(Some(conn.id)).await.unwrap()[0].cursor_ms,
        None
    );
    store.finish_poll(conn.id, "a", &done).await.unwrap();
    assert_eq!(
        store.sync_cursors(Some(conn.id)).await.unwrap()[0].cursor_ms,
        Some(T0)
    );
    assert!(
        store
            .lease_poll(partner.id, conn.id, "b", T0 + 10, T0 + 60_010)
            .await
            .unwrap()
            .is_some()
    );
    // A lease that ran out (an instance that died mid-pass) is taken over.
    assert!(
        store
            .lease_poll(partner.id, conn.id, "c", T0 + 60_011, T0 + 120_000)
            .await
            .unwrap()
            .is_some()
    );
    // A connection's own interval, and back to the deployment's.
    store
        .set_poll_interval(partner.id, conn.id, Some(60))
        .await
        .unwrap();
    assert_eq!(
        store.sync_cursors(None).await.unwrap()[0].interval_s,
        Some(60)
    );
    store
        .set_poll_interval(partner.id, conn.id, None)
        .await
        .unwrap();
    assert_eq!(store.sync_cursors(None).await.unwrap()[0].interval_s, None);
}

/// A CRM that could not read everything the pass asked for (Arnica past its 1,440-minute
/// window) says so: the pass completes and moves on, and `sync status` shows why.
async fn a_pages_caveat_is_reported_with_the_pass(db: &TestDb) {
    let (engine, _clock) = db.engine();
    let store = db.store.as_ref();
    let (_, conn) = salon(store, five_percent()).await;
    let mut read = page(
        vec![record(
            &conn,
            "r1",
            VisitStatus::Came,
            200_000,
            "+79160000001",
        )],
        None,
    );
    if let Ok(p) = &mut read {
        p.caveat = Some("a visit dated before 2026-11-17 and edited since is not seen".into());
    }
    let crm = Crm {
        pages: vec![read],
        asked: Mutex::new(Vec::new()),
    };
    let report = engine
        .poll_pass(store, store, &conn, &crm, "a", &PollPolicy::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (report.complete, report.applied, report.errors),
        (true, 1, 0)
    );
    let cursor = &store.sync_cursors(Some(conn.id)).await.unwrap()[0];
    assert_eq!(cursor.cursor_ms, Some(T0));
    assert!(
        cursor
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("not seen")),
        "{cursor:?}"
    );
}

both!(
    a_pages_caveat_is_reported_with_the_pass,
    a_pass_applies_what_webhooks_lost_and_moves_the_cursor,
    a_page_that_fails_leaves_the_cursor_for_the_next_pass,
    a_cursor_ahead_of_the_clock_reads_from_now,
    one_instance_at_a_time_polls_a_connection,
);
