//! The dashboard's people on both backends: one active user per e-mail across salons, removal
//! ends their sessions and is audited; a session lives until its end, its revocation or its
//! user's removal; a one-time link is used once, for its purpose, before it expires; the clients
//! list is searched by phone digits or name within one salon.

mod common;

use common::{TestDb, five_percent, salon};
use loyalty_core::access::{AccessStore, AddUserError, LinkPurpose, Role};
use loyalty_core::audit::{Actor, AuditAction, AuditStore};
use loyalty_core::{LoyaltyEngine, Phone, Points};
use loyalty_store::ClientQuery;

fn owner() -> Actor {
    Actor::new("owner@lotos.ru", "dashboard")
}

async fn users_sessions_and_links(db: &TestDb) {
    let store = db.store.as_ref();
    let (a, _) = salon(store, five_percent()).await;
    let (b, _) = salon(store, five_percent()).await;
    let anna = store
        .add_user(
            a.id,
            "anna@lotos.ru",
            Role::Admin,
            Some("$argon2id$x"),
            &owner(),
            10,
        )
        .await
        .expect("add");
    assert!(anna.has_password);
    // The same e-mail cannot sign in to a second salon while active in one.
    match store
        .add_user(b.id, "anna@lotos.ru", Role::Owner, None, &owner(), 11)
        .await
    {
        Err(AddUserError::EmailTaken(e)) => assert_eq!(e, "anna@lotos.ru"),
        other => panic!("{other:?}"),
    }
    let olga = store
        .add_user(a.id, "olga@lotos.ru", Role::Owner, None, &owner(), 12)
        .await
        .expect("add");
    assert!(!olga.has_password, "invited");
    let listed: Vec<_> = store
        .users_of(a.id)
        .await
        .expect("list")
        .into_iter()
        .map(|u| (u.email, u.role))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("olga@lotos.ru".to_owned(), Role::Owner),
            ("anna@lotos.ru".to_owned(), Role::Admin)
        ]
    );
    assert!(store.users_of(b.id).await.expect("list").is_empty());
    let (found, hash) = store
        .user_by_email("anna@lotos.ru")
        .await
        .expect("read")
        .expect("found");
    assert_eq!((found.id, hash.as_deref()), (anna.id, Some("$argon2id$x")));

    // Sessions: live until their end; revoked one by one or all of a user's.
    store
        .create_session("s1", anna.id, 100, 1_000)
        .await
        .expect("session");
    store
        .create_session("s2", anna.id, 100, 1_000)
        .await
        .expect("session");
    let s = store.session("s1", 500).await.expect("read").expect("live");
    assert_eq!((s.user.id, s.last_seen_ms), (anna.id, 100));
    store.touch_session("s1", 600).await.expect("touch");
    assert_eq!(
        store
            .session("s1", 700)
            .await
            .unwrap()
            .unwrap()
            .last_seen_ms,
        600
    );
    assert!(
        store.session("s1", 1_000).await.expect("read").is_none(),
        "ended"
    );
    store.revoke_session("s1", 700).await.expect("revoke");
    assert!(store.session("s1", 800).await.expect("read").is_none());
    assert!(store.session("s2", 800).await.expect("read").is_some());
    store
        .create_session("s3", anna.id, 100, 9_000)
        .await
        .expect("session");
    assert_eq!(
        store.revoke_sessions_of(anna.id, 800).await.expect("all"),
        2
    );
    assert!(store.session("s3", 800).await.expect("read").is_none());

    // Links: once, for their purpose, in time, while the user is there.
    store
        .create_link("l1", olga.id, LinkPurpose::Invite, 1_000)
        .await
        .expect("link");
    assert!(
        store
            .use_link("l1", LinkPurpose::SignIn, 500)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .use_link("l1", LinkPurpose::Invite, 1_000)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .peek_link("l1", LinkPurpose::Invite, 500)
            .await
            .unwrap()
            .map(|u| u.id),
        Some(olga.id)
    );
    assert_eq!(
        store
            .use_link("l1", LinkPurpose::Invite, 500)
            .await
            .unwrap()
            .map(|u| u.id),
        Some(olga.id)
    );
    assert!(
        store
            .use_link("l1", LinkPurpose::Invite, 501)
            .await
            .unwrap()
            .is_none(),
        "once"
    );
    store
        .set_password(olga.id, "$argon2id$y")
        .await
        .expect("password");
    assert!(
        store
            .user_by_email("olga@lotos.ru")
            .await
            .unwrap()
            .unwrap()
            .0
            .has_password
    );

    // Removal: sessions end, the e-mail is free again, both audited in the salon's log.
    store
        .create_session("s4", anna.id, 900, 9_000)
        .await
        .expect("session");
    let removed = store
        .remove_user(a.id, "anna@lotos.ru", &owner(), 1_000)
        .await
        .expect("remove");
    assert_eq!(removed.map(|u| u.id), Some(anna.id));
    assert!(store.session("s4", 1_001).await.expect("read").is_none());
    assert!(
        store
            .user_by_email("anna@lotos.ru")
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .remove_user(b.id, "olga@lotos.ru", &owner(), 1_000)
            .await
            .expect("remove")
            .is_none(),
        "another salon's user is not found"
    );
    store
        .add_user(b.id, "anna@lotos.ru", Role::Owner, None, &owner(), 1_100)
        .await
        .expect("free again");
    let log = store.audit_log(a.id, 10).await.expect("log");
    let actions: Vec<_> = log.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        vec![
            AuditAction::UserRemoved,
            AuditAction::UserAdded,
            AuditAction::UserAdded
        ]
    );
    assert_eq!(log[0].detail["email"], "anna@lotos.ru");
    assert_eq!(log[0].actor, owner());
}

async fn the_clients_list_searches_one_salon(db: &TestDb) {
    let store = db.store.as_ref();
    let (engine, _) = db.engine();
    let (a, _) = salon(store, five_percent()).await;
    let (b, _) = salon(store, five_percent()).await;
    let phone = |p: &str| Phone::parse_international(p).expect("phone");
    let engine: &LoyaltyEngine = &engine;
    let anna = engine
        .enroll(a.id, &phone("+79161234567"), Some("Анна Петрова"))
        .await
        .expect("enroll");
    engine
        .enroll(a.id, &phone("+79037654321"), Some("Olga 50%_off"))
        .await
        .expect("enroll");
    engine
        .enroll(b.id, &phone("+79161234568"), Some("Анна"))
        .await
        .expect("enroll");
    engine
        .manual_accrual(a.id, anna.id, Points(70), "подарок", "k")
        .await
        .expect("accrue");
    let ids = |lines: Vec<loyalty_store::ClientLine>| -> Vec<String> {
        lines.into_iter().map(|l| l.phone).collect()
    };
    let search = |q: &str| {
        let query = ClientQuery::parse(q);
        async move { store.search_clients(a.id, &query, 10, 0).await }
    };
    assert_eq!(ids(search("916 123").await.unwrap()), vec!["+79161234567"]);
    assert_eq!(ids(search("Анна").await.unwrap()), vec!["+79161234567"]);
    assert_eq!(ids(search("50%_").await.unwrap()), vec!["+79037654321"]);
    assert_eq!(
        ids(search("5%").await.unwrap()),
        Vec::<String>::new(),
        "% is literal"
    );
    assert_eq!(search("").await.unwrap().len(), 2);
    assert_eq!(
        store
            .search_clients(a.id, &ClientQuery::All, 1, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    let line = &search("+7 916 123-45-67").await.unwrap()[0];
    assert_eq!(
        (line.balance, line.visits, line.telegram_linked),
        (70, 0, false)
    );
    let o = store.overview(a.id, 0).await.expect("overview");
    assert_eq!(
        (o.clients, o.linked, o.outstanding, o.visits_since),
        (2, 0, 70, 0)
    );
}

/// The analytics' books and their snapshot: the months' flows and the all-time totals by the
/// ledger's identity; kept for the same bounds within its age, computed again when asked.
async fn analytics_books_are_kept_then_computed_again(db: &TestDb) {
    let store = db.store.as_ref();
    let (engine, clock) = db.engine();
    let (a, _) = salon(store, five_percent()).await;
    let anna = engine
        .enroll(
            a.id,
            &Phone::parse_international("+79161234567").unwrap(),
            None,
        )
        .await
        .unwrap();
    const DAY: i64 = 86_400_000;
    let t0 = common::T0;
    engine
        .manual_accrual(a.id, anna.id, Points(300), "подарок", "k1")
        .await
        .unwrap();
    clock.advance_ms(10 * DAY);
    engine
        .manual_debit(a.id, anna.id, Points(120), "оплата", "k2")
        .await
        .unwrap();
    let bounds = [t0 - DAY, t0 + DAY, t0 + 20 * DAY];
    let s = store
        .analytics_snapshot(a.id, &bounds, t0 + 10 * DAY, 60_000, false)
        .await
        .unwrap();
    assert_eq!(
        (
            s.books.issued,
            s.books.spent,
            s.books.outstanding,
            s.books.held
        ),
        (300, 120, 180, 0)
    );
    assert_eq!(s.books.periods[0].issued, 300);
    assert_eq!(
        (s.books.periods[1].issued, s.books.periods[1].spent),
        (0, 120)
    );
    assert_eq!(s.computed_at_ms, t0 + 10 * DAY);
    // Within its age: the same figures, however the ledger moved since.
    engine
        .manual_accrual(a.id, anna.id, Points(5), "ещё", "k3")
        .await
        .unwrap();
    let kept = store
        .analytics_snapshot(a.id, &bounds, t0 + 10 * DAY + 30_000, 60_000, false)
        .await
        .unwrap();
    assert_eq!(
        (kept.books.issued, kept.computed_at_ms),
        (300, t0 + 10 * DAY)
    );
    // Past its age, or asked, or for other bounds: computed again.
    for (at, refresh, b) in [
        (t0 + 10 * DAY + 61_000, false, &bounds[..]),
        (t0 + 10 * DAY + 1_000, true, &bounds[..]),
        (t0 + 10 * DAY + 1_000, false, &bounds[..2]),
    ] {
        let again = store
            .analytics_snapshot(a.id, b, at, 60_000, refresh)
            .await
            .unwrap();
        assert_eq!((again.books.issued, again.computed_at_ms), (305, at));
    }
    let linked = store.linked_vs_not(a.id, t0 + 10 * DAY).await.unwrap();
    assert_eq!(linked, loyalty_store::Linked::default(), "no visits");
    // Two visits at the desk 20 days apart, seen 90 days after the first.
    let desk = engine.desk(a.id, true).await.unwrap();
    for (key, days) in [("v1", 0), ("v2", 20)] {
        if days > 0 {
            clock.advance_ms(days * DAY);
        }
        let visit = loyalty_core::engine::DeskVisit {
            phone: Phone::parse_international("+79161234567").unwrap(),
            name: None,
            paid_minor: 100_000,
            service: None,
            master: None,
            key: key.into(),
        };
        engine.desk_visit(&desk, &visit).await.unwrap();
    }
    let first = t0 + 10 * DAY;
    let linked = store.linked_vs_not(a.id, first + 90 * DAY).await.unwrap();
    let g = linked.not_linked;
    assert_eq!(
        (g.visits_60, g.returned_60, g.visits_90, g.returned_90),
        (2, 1, 1, 1),
        "the first came back in 20 days; only it is 90 days old"
    );
    assert_eq!(
        (g.year_visits, g.year_clients, g.year_paid_minor),
        (2, 1, 200_000)
    );
    assert_eq!(linked.linked, loyalty_store::Group::default());
    // Cohorts of 20 days: her first visit (day 10) in the first, she came in both.
    let cohorts = store
        .cohorts(a.id, &[t0, t0 + 20 * DAY, t0 + 40 * DAY])
        .await
        .unwrap();
    assert_eq!(
        cohorts,
        vec![
            loyalty_store::Cohort {
                size: 1,
                returned: vec![1, 1]
            },
            loyalty_store::Cohort {
                size: 0,
                returned: vec![0]
            },
        ]
    );
}

both!(
    users_sessions_and_links,
    the_clients_list_searches_one_salon,
    analytics_books_are_kept_then_computed_again
);
