//! The history import on both backends: clients and records brought in page by page with no
//! points for the past, points once from `--accrue-since`, a record imported then delivered by
//! webhook not accrued twice, and an import that stops at any page and is run again ending
//! exactly where an uninterrupted one does.

mod common;

use loyalty_core::ClientStore;
use loyalty_core::LedgerStore;
use loyalty_core::OutboxStore;
use loyalty_core::PartnerStore;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use common::{T0, TestDb, five_percent, salon};
use loyalty_core::adapter::{AdapterError, ClientPage, CrmAdapter, CrmClient, RecordPage};
use loyalty_core::engine::{ImportRun, Quiet};
use loyalty_core::event::{ClientRef, CrmEvent};
use loyalty_core::history::HistoryStore;
use loyalty_core::import::{ImportPhase, ImportStore, NewImport};
use loyalty_core::{
    Capabilities, CrmConnection, CrmKind, Phone, Points, VisitEvent, VisitStatus, WebhookError,
};

const DAY: i64 = 86_400_000;
/// Records 0..12 of four clients, one a month back from T0 − 2 days; 3 a page.
const RECORDS: i64 = 12;

fn phone(client: i64) -> String {
    format!("+7916700{client:04}")
}

fn record(conn: &CrmConnection, n: i64) -> VisitEvent {
    let client = n % 4;
    let who = ClientRef {
        external_id: Some(format!("c{client}")),
        phone: Some(Phone::parse_international(&phone(client)).unwrap()),
        name: Some(format!("Клиентка {client}")),
    };
    let status = if n % 5 == 4 {
        VisitStatus::NoShow
    } else {
        VisitStatus::Came
    };
    let CrmEvent::Visit(mut v) = common::visit(
        conn,
        &format!("r{n}"),
        1,
        status,
        100_000 * (n + 1),
        Some(who),
    ) else {
        unreachable!()
    };
    v.visit_at_ms = Some(T0 - 2 * DAY - n * 30 * DAY);
    v
}

/// A CRM with 5 client cards (2 a page) and the records (3 a page); it fails the pages listed
/// in `fail_at` (the n-th call of all, 1-based), once each.
struct Crm {
    conn: CrmConnection,
    calls: AtomicU32,
    fail_at: Vec<u32>,
}

impl Crm {
    fn failing(&self) -> Result<(), AdapterError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_at.contains(&n) {
            return Err(AdapterError::Transient(format!("call {n} refused")));
        }
        Ok(())
    }
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
    async fn list_clients(&self, page: u32) -> Result<ClientPage, AdapterError> {
        self.failing()?;
        let clients: Vec<CrmClient> = (0..5i64)
            .skip((page as usize - 1) * 2)
            .take(2)
            .map(|c| CrmClient {
                external_id: format!("c{c}"),
                phone: Some(Phone::parse_international(&phone(c)).unwrap()),
                name: Some(format!("Клиентка {c}")),
                email: None,
                birth_date: None,
            })
            .collect();
        Ok(ClientPage {
            clients,
            rejected: Vec::new(),
            next_page: (page < 3).then_some(page + 1),
            total: Some(5),
        })
    }
    async fn records_between(
        &self,
        _from: i64,
        _to: i64,
        page: u32,
    ) -> Result<RecordPage, AdapterError> {
        self.failing()?;
        let records = (0..RECORDS)
            .skip((page as usize - 1) * 3)
            .take(3)
            .map(|n| record(&self.conn, n))
            .collect();
        Ok(RecordPage {
            caveat: None,
            records,
            rejected: Vec::new(),
            next_page: (i64::from(page) * 3 < RECORDS).then_some(page + 1),
            total: Some(RECORDS as u64),
        })
    }
}

/// What an import leaves behind: each client's phone, name and balance, and each record's
/// history row.
async fn outcome(db: &TestDb, conn: &CrmConnection) -> Vec<String> {
    let store = db.store.as_ref();
    let mut out = Vec::new();
    for c in 0..5 {
        let p = Phone::parse_international(&phone(c)).unwrap();
        let client = store
            .client_by_phone(conn.partner_id, &p)
            .await
            .unwrap()
            .unwrap();
        let balance = store.balance(conn.partner_id, client.id).await.unwrap();
        let summary = store.summary(conn.partner_id, client.id).await.unwrap();
        out.push(format!(
            "{} {:?} {balance} {summary:?}",
            client.phone, client.name
        ));
    }
    for n in 0..RECORDS {
        let row = store
            .visit(conn.partner_id, conn.id, &format!("r{n}"))
            .await
            .unwrap()
            .unwrap();
        out.push(format!(
            "r{n} {:?} {} {:?}",
            row.status, row.paid_minor, row.visit_at_ms
        ));
    }
    out
}

async fn total_points(db: &TestDb, partner: loyalty_core::PartnerId) -> i64 {
    let mut sum = 0;
    for c in 0..4 {
        let p = Phone::parse_international(&phone(c)).unwrap();
        let client = db
            .store
            .client_by_phone(partner, &p)
            .await
            .unwrap()
            .unwrap();
        sum += db.store.balance(partner, client.id).await.unwrap().value();
    }
    sum
}

async fn run(db: &TestDb, conn: &CrmConnection, crm: &Crm, job: i64) -> Result<ImportRun, String> {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    engine
        .run_import(store, store, conn, crm, Some(job), "test", 60_000, &Quiet)
        .await
        .map_err(|e| e.to_string())
}

async fn queue(db: &TestDb, conn: &CrmConnection, accrue: Option<i64>) -> i64 {
    db.store
        .queue_import(
            &NewImport {
                partner_id: conn.partner_id,
                connection_id: conn.id,
                since_ms: T0 - 730 * DAY,
                until_ms: T0,
                accrue_since_ms: accrue,
            },
            T0,
        )
        .await
        .unwrap()
        .id
}

async fn the_past_is_history_only_and_a_webhook_does_not_change_that(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let job = queue(db, &conn, None).await;
    let crm = Crm {
        conn: conn.clone(),
        calls: AtomicU32::new(0),
        fail_at: Vec::new(),
    };
    let ImportRun::Done(done) = run(db, &conn, &crm, job).await.unwrap() else {
        panic!("not done")
    };
    assert_eq!(done.phase, ImportPhase::Done);
    assert_eq!(
        (done.clients_seen, done.records_seen, done.errors),
        (5, RECORDS, 0)
    );
    assert_eq!(done.records_applied, RECORDS);
    // The salon connected at T0: the boundary is a day before; every imported visit is older.
    assert_eq!(done.accrue_since_ms, T0 - DAY);
    assert_eq!(store.entry_count(partner.id).await.unwrap(), 0);
    assert!(store.outbox_of(partner.id).await.unwrap().is_empty());
    let c0 = store
        .client_by_phone(partner.id, &Phone::parse_international(&phone(0)).unwrap())
        .await
        .unwrap()
        .unwrap();
    let summary = store.summary(partner.id, c0.id).await.unwrap().unwrap();
    // c0 has r0, r4 (a no-show) and r8.
    assert_eq!((summary.visits, summary.paid_minor), (2, 100_000 + 900_000));
    // The connection read again has the boundary: a webhook for an imported record (an edit in
    // the CRM) earns nothing either.
    let conn = store.connection(conn.id).await.unwrap().unwrap();
    assert_eq!(conn.points_since_ms, Some(T0 - DAY));
    let mut edited = record(&conn, 0);
    edited.version = Some(2);
    edited.lines[0].paid_minor = 200_000;
    engine
        .apply_event(&conn, &CrmEvent::Visit(edited))
        .await
        .unwrap();
    assert_eq!(store.entry_count(partner.id).await.unwrap(), 0);
    // A visit after the boundary earns as any other.
    let mut today = record(&conn, 0);
    today.record_id = "new".into();
    today.visit_at_ms = Some(T0);
    engine
        .apply_event(&conn, &CrmEvent::Visit(today))
        .await
        .unwrap();
    assert_eq!(store.balance(partner.id, c0.id).await.unwrap(), Points(50));
    // The job is done: running it again does nothing.
    assert_eq!(run(db, &conn, &crm, job).await.unwrap(), ImportRun::Nothing);
}

async fn accrue_since_earns_once(db: &TestDb) {
    let (engine, _) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    // Points for the last 100 days: r0, r1, r2 and r3 (at most 91 days back).
    let job = queue(db, &conn, Some(T0 - 100 * DAY)).await;
    let crm = Crm {
        conn: conn.clone(),
        calls: AtomicU32::new(0),
        fail_at: Vec::new(),
    };
    run(db, &conn, &crm, job).await.unwrap();
    let expected: i64 = (0..RECORDS)
        .filter(|n| T0 - 2 * DAY - n * 30 * DAY >= T0 - 100 * DAY && n % 5 != 4)
        .map(|n| (100_000 * (n + 1)) * 500 / 1_000_000)
        .sum();
    assert_eq!(total_points(db, partner.id).await, expected);
    // The same record by webhook, and a second import: nothing more.
    let conn = store.connection(conn.id).await.unwrap().unwrap();
    engine
        .apply_event(&conn, &CrmEvent::Visit(record(&conn, 1)))
        .await
        .unwrap();
    let again = queue(db, &conn, Some(T0 - 100 * DAY)).await;
    assert_ne!(again, job);
    run(db, &conn, &crm, again).await.unwrap();
    assert_eq!(total_points(db, partner.id).await, expected);
    assert!(store.outbox_of(partner.id).await.unwrap().is_empty());
}

async fn stopped_at_any_page_and_run_again_it_ends_as_an_uninterrupted_one(db: &TestDb) {
    let store = db.store.as_ref();
    // The reference: one run, nothing failing.
    let (_, reference) = salon(store, five_percent()).await;
    let job = queue(db, &reference, Some(T0 - 200 * DAY)).await;
    let ok = Crm {
        conn: reference.clone(),
        calls: AtomicU32::new(0),
        fail_at: Vec::new(),
    };
    run(db, &reference, &ok, job).await.unwrap();
    let want = outcome(db, &reference).await;
    // Pages 2 (clients), 5 and 7 (records) fail once each: three runs stop, a fourth ends.
    for fail_at in [vec![2], vec![5], vec![2, 6, 9]] {
        let (_, conn) = salon(store, five_percent()).await;
        let job = queue(db, &conn, Some(T0 - 200 * DAY)).await;
        let crm = Crm {
            conn: conn.clone(),
            calls: AtomicU32::new(0),
            fail_at: fail_at.clone(),
        };
        let mut stops = 0;
        loop {
            match run(db, &conn, &crm, job).await {
                Ok(ImportRun::Done(done)) => {
                    assert!(done.records_seen >= RECORDS, "{done:?}");
                    break;
                }
                Ok(other) => panic!("{other:?}"),
                Err(e) => {
                    assert!(e.contains("refused"), "{e}");
                    stops += 1;
                    let waiting = store.imports(Some(conn.id)).await.unwrap();
                    assert!(
                        waiting[0]
                            .last_error
                            .as_deref()
                            .unwrap()
                            .contains("refused")
                    );
                }
            }
            assert!(stops <= fail_at.len());
        }
        assert_eq!(stops, fail_at.len());
        assert_eq!(outcome(db, &conn).await, want, "failing at {fail_at:?}");
    }
}

async fn one_owner_at_a_time(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, conn) = salon(store, five_percent()).await;
    let job = queue(db, &conn, None).await;
    assert_eq!(
        queue(db, &conn, None).await,
        job,
        "one unfinished job per connection"
    );
    let a = store
        .lease_import(Some(job), "a", T0, T0 + 1_000)
        .await
        .unwrap();
    assert!(a.is_some());
    assert!(
        store
            .lease_import(Some(job), "b", T0 + 1, T0 + 1_001)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .lease_import(None, "b", T0 + 1, T0 + 1_001)
            .await
            .unwrap()
            .is_none()
    );
    // An owner that stopped: its lease runs out and another takes the job over.
    assert!(
        store
            .lease_import(None, "b", T0 + 1_001, T0 + 2_000)
            .await
            .unwrap()
            .is_some()
    );
    let mut stale = a.unwrap();
    stale.next_page = 9;
    assert!(!store.save_import(&stale, "a", T0 + 3_000).await.unwrap());
    assert_eq!(store.imports(Some(conn.id)).await.unwrap()[0].next_page, 1);
}

both!(
    the_past_is_history_only_and_a_webhook_does_not_change_that,
    accrue_since_earns_once,
    stopped_at_any_page_and_run_again_it_ends_as_an_uninterrupted_one,
    one_owner_at_a_time,
);
