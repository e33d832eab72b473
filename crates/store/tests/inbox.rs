//! The CRM inbox on both backends: stored, claimed once at a time, tried again after a growing
//! pause, kept as a dead letter when given up on, replayed by the operator; and the credit
//! question that decides whether a settled bill is asked about.

mod common;

use loyalty_core::ClientStore;
use loyalty_core::LedgerStore;
use loyalty_core::RewardStore;
use std::sync::Arc;

use async_trait::async_trait;
use common::{T0, TestDb, by_phone, five_percent, salon, visit};
use loyalty_core::adapter::{AdapterError, CrmAdapter, IssuedReward, RewardRequest};
use loyalty_core::code::Code;
use loyalty_core::engine::AdapterSource;
use loyalty_core::event::{ClientRef, CrmEvent, LoyaltyPaid};
use loyalty_core::inbox::{InboxPolicy, IntakeStore, Source};
use loyalty_core::redemption::{Strategy, Target};
use loyalty_core::{
    Capabilities, ConnectionId, CrmKind, NewReward, Outcome, Phone, Points, RewardKind, StoreError,
    VisitEvent, VisitStatus, WebhookError,
};

fn policy() -> InboxPolicy {
    InboxPolicy {
        first_pause_ms: 1_000,
        max_pause_ms: 8_000,
        give_up_after_ms: 60_000,
        batch: 10,
        lease_ms: 60_000,
    }
}

async fn claims_retries_and_gives_up_in_order(db: &TestDb) {
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let event = visit(
        &conn,
        "1",
        1,
        VisitStatus::Came,
        100_000,
        Some(by_phone("+79161234567")),
    );
    let a = store
        .enqueue_inbox(partner.id, conn.id, &event, Source::Webhook, T0)
        .await
        .unwrap();
    let b = store
        .enqueue_inbox(partner.id, conn.id, &event, Source::Poll, T0 + 1)
        .await
        .unwrap();
    let stats = store.inbox_stats().await.unwrap();
    assert_eq!(
        (stats.queued, stats.oldest_received_at_ms, stats.dead),
        (2, Some(T0), 0)
    );

    // Not due before it arrived; then both, in order, each try counted and leased.
    assert!(
        store
            .claim_inbox(T0 - 1, 10, T0 + 60_000)
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = store.claim_inbox(T0 + 1, 10, T0 + 60_000).await.unwrap();
    assert_eq!(claimed.iter().map(|i| i.id).collect::<Vec<_>>(), vec![a, b]);
    assert_eq!(claimed[0].event, event);
    assert_eq!(claimed[1].source, Source::Poll);
    assert_eq!(
        (claimed[0].attempts, claimed[0].next_at_ms),
        (1, T0 + 60_000)
    );
    // A leased item is not claimed again before its lease ends (a worker that died).
    assert!(
        store
            .claim_inbox(T0 + 59_999, 10, T0 + 120_000)
            .await
            .unwrap()
            .is_empty()
    );

    // Failed: due at the time given, with its error; done: gone.
    store
        .inbox_failed(a, "the CRM answered 502", Some(T0 + 5_000))
        .await
        .unwrap();
    store.inbox_done(b).await.unwrap();
    assert!(
        store
            .claim_inbox(T0 + 4_999, 10, T0 + 9_000)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store.claim_inbox(T0 + 5_000, 10, T0 + 9_000).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].last_error.as_deref(), Some("the CRM answered 502"));
    assert_eq!(again[0].attempts, 2);

    // Its connection's CRM answers again (another item got through): due at once; a leased
    // item (a try under way) is left to its worker.
    store
        .inbox_failed(a, "the CRM answered 502", Some(T0 + 50_000))
        .await
        .unwrap();
    let c = store
        .enqueue_inbox(partner.id, conn.id, &event, Source::Webhook, T0 + 6_000)
        .await
        .unwrap();
    let leased = store
        .claim_inbox(T0 + 6_000, 10, T0 + 90_000)
        .await
        .unwrap();
    assert_eq!(leased.iter().map(|i| i.id).collect::<Vec<_>>(), vec![c]);
    assert_eq!(
        store
            .inbox_wake_connection(conn.id, T0 + 7_000)
            .await
            .unwrap(),
        1
    );
    let woken = store.claim_inbox(T0 + 7_000, 10, T0 + 9_000).await.unwrap();
    assert_eq!(woken.iter().map(|i| i.id).collect::<Vec<_>>(), vec![a]);
    store.inbox_done(c).await.unwrap();

    // Given up on: kept, not claimed, counted; the operator's replay makes it due at once.
    store.inbox_failed(a, "still down", None).await.unwrap();
    assert!(
        store
            .claim_inbox(i64::MAX / 2, 10, i64::MAX / 2)
            .await
            .unwrap()
            .is_empty()
    );
    let stats = store.inbox_stats().await.unwrap();
    assert_eq!((stats.queued, stats.dead), (0, 1));
    let dead = store.inbox_items(true, 10).await.unwrap();
    assert_eq!((dead[0].id, dead[0].dead, dead[0].attempts), (a, true, 3));
    assert_eq!(dead[0].last_error.as_deref(), Some("still down"));
    assert!(store.inbox_replay(a, T0 + 10_000).await.unwrap());
    assert!(!store.inbox_replay(a + 1_000, T0).await.unwrap());
    let replayed = store
        .claim_inbox(T0 + 10_000, 10, T0 + 20_000)
        .await
        .unwrap();
    assert_eq!((replayed[0].id, replayed[0].attempts), (a, 1));
}

/// A live worker keeps its items while their tries last; a renewal leaves alone the items it
/// has finished or let go meanwhile.
async fn a_renewed_lease_holds_and_a_finished_item_stays_finished(db: &TestDb) {
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let event = visit(&conn, "1", 1, VisitStatus::Came, 100_000, None);
    let mut ids = Vec::new();
    for at in 0..3 {
        ids.push(
            store
                .enqueue_inbox(partner.id, conn.id, &event, Source::Webhook, T0 + at)
                .await
                .unwrap(),
        );
    }
    let claimed = store.claim_inbox(T0 + 10, 10, T0 + 60_000).await.unwrap();
    assert_eq!(claimed.len(), 3);
    // One failed (due again at T0 + 5 s), one done, one still under way when renewed.
    store
        .inbox_failed(ids[0], "the CRM answered 502", Some(T0 + 5_000))
        .await
        .unwrap();
    store.inbox_done(ids[1]).await.unwrap();
    store.inbox_renew(&ids, T0 + 120_000).await.unwrap();

    // Past the first lease, only the failed one is free; the renewed one is not.
    let free = store
        .claim_inbox(T0 + 60_000, 10, T0 + 70_000)
        .await
        .unwrap();
    assert_eq!(free.iter().map(|i| i.id).collect::<Vec<_>>(), vec![ids[0]]);
    store.inbox_done(ids[0]).await.unwrap();
    assert!(
        store
            .claim_inbox(T0 + 119_999, 10, T0 + 200_000)
            .await
            .unwrap()
            .is_empty()
    );
    // Its worker died: free once the renewed lease ends.
    let orphan = store
        .claim_inbox(T0 + 120_000, 10, T0 + 200_000)
        .await
        .unwrap();
    assert_eq!(
        orphan.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![ids[2]]
    );
    assert_eq!(orphan[0].attempts, 2);
    assert_eq!(store.inbox_stats().await.unwrap().queued, 1);
}

async fn racing_workers_claim_each_item_once(db: &TestDb) {
    let store = db.store.clone();
    let (partner, conn) = salon(store.as_ref(), five_percent()).await;
    for i in 0..40 {
        let event = visit(&conn, &i.to_string(), 1, VisitStatus::Came, 100, None);
        store
            .enqueue_inbox(partner.id, conn.id, &event, Source::Webhook, T0)
            .await
            .unwrap();
    }
    let mut workers = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = loop {
                    match store.claim_inbox(T0, 3, T0 + 60_000).await {
                        Ok(got) => break got,
                        Err(StoreError::Retryable(_)) => continue,
                        Err(e) => panic!("{e}"),
                    }
                };
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|i| i.id));
            }
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    all.sort_unstable();
    let before = all.len();
    all.dedup();
    assert_eq!(
        (before, all.len()),
        (40, 40),
        "each item claimed exactly once"
    );
}

/// An adapter whose every call fails as the CRM being down.
struct Down;

#[async_trait]
impl CrmAdapter for Down {
    fn kind(&self) -> CrmKind {
        CrmKind::Yclients
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    fn parse_webhook(&self, _: Option<&str>, _: &[u8]) -> Result<Vec<CrmEvent>, WebhookError> {
        Ok(Vec::new())
    }
    async fn get_record(&self, _: &str) -> Result<VisitEvent, AdapterError> {
        Err(AdapterError::Transient("connection refused".into()))
    }
}

/// An adapter that writes certificates into the CRM.
struct Issuer;

#[async_trait]
impl CrmAdapter for Issuer {
    fn kind(&self) -> CrmKind {
        CrmKind::Yclients
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            certificates: true,
            ..Capabilities::default()
        }
    }
    fn parse_webhook(&self, _: Option<&str>, _: &[u8]) -> Result<Vec<CrmEvent>, WebhookError> {
        Ok(Vec::new())
    }
    async fn find_certificate(
        &self,
        _: &RewardRequest,
    ) -> Result<Option<IssuedReward>, AdapterError> {
        Ok(None)
    }
    async fn issue_certificate(&self, req: &RewardRequest) -> Result<IssuedReward, AdapterError> {
        Ok(IssuedReward {
            external_id: "c1".into(),
            code: req.code.clone(),
            spent: false,
        })
    }
}

struct Source1(Arc<dyn CrmAdapter>);

#[async_trait]
impl AdapterSource for Source1 {
    async fn adapter(&self, _: ConnectionId) -> Result<Option<Arc<dyn CrmAdapter>>, StoreError> {
        Ok(Some(self.0.clone()))
    }
}

async fn a_crm_down_for_good_leaves_a_dead_letter_not_a_loss(db: &TestDb) {
    let (engine, clock) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let CrmEvent::Visit(mut partial) = visit(
        &conn,
        "7",
        1,
        VisitStatus::Waiting,
        0,
        Some(by_phone("+79161234567")),
    ) else {
        unreachable!()
    };
    partial.needs_refetch = true;
    let outcome = engine
        .accept(store, &conn, &CrmEvent::Visit(partial), Source::Webhook)
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Queued { .. }), "{outcome:?}");
    let source = Source1(Arc::new(Down));
    let mut seen = Vec::new();
    for _ in 0..20 {
        let pass = engine.work_inbox(store, &source, &policy()).await.unwrap();
        seen.push(pass);
        if pass.dead > 0 {
            break;
        }
        clock.advance_ms(10_000);
    }
    let last = seen.last().copied().unwrap_or_default();
    assert_eq!(last.dead, 1, "{seen:?}");
    assert!(
        seen.iter()
            .take(seen.len() - 1)
            .all(|p| p.retried == 1 && p.applied == 0)
    );
    let dead = store.inbox_items(true, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("connection refused")
    );
    assert_eq!(store.entry_count(partner.id).await.unwrap(), 0);
}

async fn only_a_client_holding_our_crm_credit_is_asked_about(db: &TestDb) {
    let (engine, clock) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, five_percent()).await;
    let anna = ClientRef {
        external_id: Some("501".into()),
        phone: Some(Phone::parse_international("+79161234567").unwrap()),
        name: None,
    };
    let came = visit(
        &conn,
        "1",
        1,
        VisitStatus::Came,
        400_000,
        Some(anna.clone()),
    );
    engine.apply_event(&conn, &came).await.unwrap();
    let client = store
        .client_by_phone(partner.id, anna.phone.as_ref().unwrap())
        .await
        .unwrap()
        .unwrap();
    let credit = |ext: Option<&'static str>, phone: Option<&'static str>, since: i64| {
        let phone = phone.map(|p| Phone::parse_international(p).unwrap());
        async move {
            store
                .holds_crm_credit(partner.id, conn.id, ext, phone.as_ref(), since)
                .await
                .unwrap()
        }
    };
    assert!(!credit(Some("501"), None, 0).await);

    // A settled bill of a client with nothing of ours in the CRM: applied, not queued.
    let CrmEvent::Visit(mut settled) = visit(
        &conn,
        "2",
        1,
        VisitStatus::Came,
        200_000,
        Some(anna.clone()),
    ) else {
        unreachable!()
    };
    settled.loyalty_paid = LoyaltyPaid::Ask("v2".into());
    let outcome = engine
        .accept(
            store,
            &conn,
            &CrmEvent::Visit(settled.clone()),
            Source::Webhook,
        )
        .await
        .unwrap();
    assert_eq!(outcome.delta(), Points(100));

    // A gateway code is not credit in the CRM; a CRM certificate is, by CRM id or phone.
    let reward = store
        .create_reward(
            partner.id,
            &NewReward {
                title: "100 ₽".into(),
                cost: Points(100),
                kind: RewardKind::Certificate {
                    value_minor: 10_000,
                },
            },
            T0,
        )
        .await
        .unwrap();
    let code = |n: u8| move || Code::from_entropy([n, 2, 3, 4, 5, 6, 7, 8]);
    engine
        .redeem(
            partner.id,
            client.id,
            &reward,
            "g",
            Target::GATEWAY,
            &code(1),
        )
        .await
        .unwrap();
    assert!(!credit(Some("501"), None, 0).await);
    let cert = engine
        .redeem(
            partner.id,
            client.id,
            &reward,
            "c",
            Target::crm(Strategy::CrmCertificate, conn.id),
            &code(2),
        )
        .await
        .unwrap();
    assert!(credit(Some("501"), None, 0).await);
    assert!(credit(None, Some("+79161234567"), 0).await);
    assert!(!credit(Some("999"), Some("+79160000000"), 0).await);
    // Another partner's client with the same phone holds nothing here.
    let (other, other_conn) = salon(store, five_percent()).await;
    assert!(
        !store
            .holds_crm_credit(other.id, other_conn.id, Some("501"), anna.phone.as_ref(), 0)
            .await
            .unwrap()
    );
    settled.record_id = "3".into();
    let outcome = engine
        .accept(store, &conn, &CrmEvent::Visit(settled), Source::Webhook)
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Queued { .. }), "{outcome:?}");

    // Written into the CRM, then used there: for a while it may have paid a bill being
    // applied; used a while ago, it can no longer have paid today's.
    let pass = engine
        .write_back_due(&Source1(Arc::new(Issuer)), &Default::default())
        .await
        .unwrap();
    assert_eq!(pass.issued, 1, "{pass:?}");
    assert!(credit(Some("501"), None, i64::MAX).await, "issued: credit");
    clock.advance_ms(1_000);
    engine.use_code(&cert.code).await.unwrap();
    assert!(credit(Some("501"), None, T0).await);
    assert!(!credit(Some("501"), None, T0 + 2_000).await);
}

both!(
    claims_retries_and_gives_up_in_order,
    racing_workers_claim_each_item_once,
    a_renewed_lease_holds_and_a_finished_item_stays_finished,
    a_crm_down_for_good_leaves_a_dead_letter_not_a_loss,
    only_a_client_holding_our_crm_credit_is_asked_about,
);
