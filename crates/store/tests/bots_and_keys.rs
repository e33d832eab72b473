//! Salons' own bots, per-bot chat links, API keys and the outbox's "not tried" on both backends:
//! each bot sees only the links made through it, the deployment's bot never links a salon with
//! its own, a bot serves one salon; a key is found by its hash while live, revoked by its
//! salon only; a message put back while its bot waits keeps its attempt count; the API's
//! answers kept by Idempotency-Key (replayed, in progress, conflicting, taken over once
//! abandoned or a day old) and a client's entries paged by a stable cursor.

mod common;

use common::{TestDb, five_percent, salon};
use loyalty_core::{ChatStore, OutboxStore, Phone, Points, TelegramChat};

use loyalty_core::Store;
use loyalty_core::audit::Actor;
use loyalty_core::seal::KeptAnswer;
use loyalty_store::{ABANDONED_MS, Claim, KeyScope, REPLAY_MS, SalonBot};

const CHAT: i64 = 7001;

fn phone() -> Phone {
    Phone::parse_international("+79161234567").expect("phone")
}

async fn links_are_per_bot(db: &TestDb) {
    let store = db.store.as_ref();
    let (engine, _) = db.engine();
    let (lotos, _) = salon(store, five_percent()).await;
    let (roza, _) = salon(store, five_percent()).await;
    let own = SalonBot {
        partner_id: lotos.id,
        bot_id: 2001,
        username: "lotos_bot".into(),
        token: "2001:x".into(),
        webhook_secret: "s-lotos".into(),
    };
    store.set_salon_bot(&own, 1).await.expect("set");
    assert_eq!(
        store.salon_bot_by_secret("s-lotos").await.unwrap(),
        Some(own.clone())
    );
    assert_eq!(
        store.salon_bot_by_id(2001).await.unwrap(),
        Some(own.clone())
    );
    // One bot serves one salon.
    let taken = SalonBot {
        partner_id: roza.id,
        webhook_secret: "s-other".into(),
        ..own.clone()
    };
    assert!(matches!(
        store.set_salon_bot(&taken, 2).await,
        Err(loyalty_core::StoreError::Duplicate(_))
    ));

    let anna_l = engine
        .enroll(lotos.id, &phone(), None)
        .await
        .expect("enroll");
    let anna_r = engine
        .enroll(roza.id, &phone(), None)
        .await
        .expect("enroll");
    // The deployment's bot links her at «Роза» only: «Лотос» links through its own bot.
    let chat = TelegramChat {
        chat_id: CHAT,
        phone: Some(phone()),
        language: "ru".into(),
        active: true,
        joined_partner: None,
        referred_by: None,
    };
    store.save_telegram_chat(&chat, 3).await.unwrap();
    let linked = store.link_chat(&phone(), CHAT).await.unwrap();
    assert_eq!(linked.iter().map(|c| c.id).collect::<Vec<_>>(), [anna_r.id]);
    let through_own = store
        .link_chat_via(2001, lotos.id, &phone(), CHAT)
        .await
        .unwrap();
    assert_eq!(
        through_own.iter().map(|c| c.id).collect::<Vec<_>>(),
        [anna_l.id]
    );
    // Each bot sees its own links, the same chat notwithstanding.
    let seen = |bot| async move {
        store
            .clients_of_chat_via(CHAT, bot)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(seen(0).await, [anna_r.id]);
    assert_eq!(seen(2001).await, [anna_l.id]);
    assert_eq!(store.chat_bot_of(lotos.id, anna_l.id).await.unwrap(), 2001);
    assert_eq!(store.chat_bot_of(roza.id, anna_r.id).await.unwrap(), 0);
    // Linking again through the deployment's bot leaves «Лотос»'s link alone.
    store.link_chat(&phone(), CHAT).await.unwrap();
    assert_eq!(seen(2001).await, [anna_l.id]);
    // A client created later at «Лотос» is not linked through the deployment's chat.
    let other = Phone::parse_international("+79037654321").unwrap();
    let later_chat = TelegramChat {
        chat_id: 7002,
        phone: Some(other.clone()),
        ..chat.clone()
    };
    store.save_telegram_chat(&later_chat, 4).await.unwrap();
    let olga = engine.enroll(lotos.id, &other, None).await.expect("enroll");
    assert_eq!(olga.telegram_chat_id, None);
    let olga_r = engine.enroll(roza.id, &other, None).await.expect("enroll");
    assert_eq!(olga_r.telegram_chat_id, Some(7002));
    // Blocked through «Лотос»'s bot: that link alone goes.
    store.unlink_chat(lotos.id, anna_l.id).await.unwrap();
    assert!(seen(2001).await.is_empty());
    assert_eq!(seen(0).await, [anna_r.id]);
    // The bot taken off forgets its links.
    store
        .link_chat_via(2001, lotos.id, &phone(), CHAT)
        .await
        .unwrap();
    assert_eq!(store.remove_salon_bot(lotos.id).await.unwrap(), Some(own));
    assert!(seen(2001).await.is_empty());
    assert_eq!(store.remove_salon_bot(lotos.id).await.unwrap(), None);
    assert!(store.salon_bots().await.unwrap().is_empty());
}

async fn keys_by_hash_and_revoked_by_their_salon(db: &TestDb) {
    let store = db.store.as_ref();
    let (a, _) = salon(store, five_percent()).await;
    let (b, _) = salon(store, five_percent()).await;
    let made = store
        .create_api_key(
            a.id,
            "lb_live_0001aaaa",
            "hash-a",
            KeyScope::Write,
            &Actor::system(),
            10,
        )
        .await
        .unwrap();
    assert_eq!((made.partner_id, made.scope), (a.id, KeyScope::Write));
    let (found, salon) = store.api_caller("hash-a").await.unwrap().expect("found");
    assert_eq!((found.id, salon.id), (made.id, a.id));
    assert!(store.api_caller("hash-b").await.unwrap().is_none());
    // Another salon cannot revoke it; its own can, once.
    assert_eq!(
        store
            .revoke_api_key(b.id, "lb_live_0001aaaa", &Actor::system(), 11)
            .await
            .unwrap(),
        None
    );
    let revoked = store
        .revoke_api_key(a.id, "lb_live_0001aaaa", &Actor::system(), 12)
        .await
        .unwrap()
        .expect("revoked");
    assert_eq!(revoked.revoked_at_ms, Some(12));
    assert!(store.api_caller("hash-a").await.unwrap().is_none());
    assert_eq!(
        store
            .revoke_api_key(a.id, "lb_live_0001aaaa", &Actor::system(), 13)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.api_keys(a.id).await.unwrap().len(), 1);
    assert!(store.api_keys(b.id).await.unwrap().is_empty());
}

async fn a_message_put_back_keeps_its_attempts(db: &TestDb) {
    let store = db.store.as_ref();
    let (engine, _) = db.engine();
    let (a, _) = salon(store, five_percent()).await;
    let anna = engine.enroll(a.id, &phone(), None).await.expect("enroll");
    store.link_chat(&phone(), CHAT).await.unwrap();
    engine
        .manual_accrual(a.id, anna.id, Points(10), "gift", "k1")
        .await
        .unwrap();
    let now = engine.now_ms();
    let claimed = store.claim_outbox(now + 1, 60_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let before = claimed[0].attempts;
    store
        .outbox_later(claimed[0].id, now + 5_000)
        .await
        .unwrap();
    let kept = &store.outbox_of(a.id).await.unwrap()[0];
    assert_eq!(kept.attempts, before - 1, "not tried: not counted");
    assert_eq!(kept.run_at_ms, now + 5_000);
    assert!(
        store
            .claim_outbox(now + 4_999, 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .claim_outbox(now + 5_000, 60_000, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn answers_kept_by_idempotency_key(db: &TestDb) {
    let store = db.store.as_ref();
    let (a, _) = salon(store, five_percent()).await;
    let key = store
        .create_api_key(
            a.id,
            "lb_live_0002aaaa",
            "hash-2",
            KeyScope::Write,
            &Actor::system(),
            0,
        )
        .await
        .unwrap();
    let other = store
        .create_api_key(
            a.id,
            "lb_live_0003aaaa",
            "hash-3",
            KeyScope::Write,
            &Actor::system(),
            0,
        )
        .await
        .unwrap();
    let t = 1_000_000;
    assert_eq!(
        store.claim_api_request(key.id, "k", "f1", t).await.unwrap(),
        Claim::New
    );
    // Concurrent: the same request is in progress, another is a conflict.
    assert_eq!(
        store
            .claim_api_request(key.id, "k", "f1", t + 1)
            .await
            .unwrap(),
        Claim::InProgress
    );
    assert_eq!(
        store
            .claim_api_request(key.id, "k", "f2", t + 1)
            .await
            .unwrap(),
        Claim::Conflict
    );
    // Another API key's same Idempotency-Key is its own.
    assert_eq!(
        store
            .claim_api_request(other.id, "k", "f2", t)
            .await
            .unwrap(),
        Claim::New
    );
    store
        .finish_api_request(key.id, "k", 201, "{\"id\":7}")
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_api_request(key.id, "k", "f1", t + 2)
            .await
            .unwrap(),
        Claim::Replay {
            status: 201,
            body: "{\"id\":7}".into()
        }
    );
    // A day later the answer is let go: the key runs again (the effect's own key keeps it
    // once).
    assert_eq!(
        store
            .claim_api_request(key.id, "k", "f2", t + REPLAY_MS + 1)
            .await
            .unwrap(),
        Claim::New
    );
    // Released (our failure): free at once.
    store.release_api_request(key.id, "k").await.unwrap();
    let late = t + REPLAY_MS + 2;
    assert_eq!(
        store
            .claim_api_request(key.id, "k", "f3", late)
            .await
            .unwrap(),
        Claim::New
    );
    // Abandoned mid-answer (the instance died): taken over by the same request after a
    // minute, never by another one.
    let abandoned = late + ABANDONED_MS + 1;
    assert_eq!(
        store
            .claim_api_request(key.id, "k", "f4", abandoned)
            .await
            .unwrap(),
        Claim::Conflict
    );
    assert_eq!(
        store
            .claim_api_request(key.id, "k", "f3", abandoned)
            .await
            .unwrap(),
        Claim::New
    );
    assert_eq!(
        store
            .claim_api_request(key.id, "k", "f3", abandoned)
            .await
            .unwrap(),
        Claim::InProgress
    );
    // Forgotten after a day.
    assert_eq!(
        store
            .forget_api_requests(abandoned + REPLAY_MS + 1)
            .await
            .unwrap(),
        2
    );

    // Kept in the effect's own transaction (a pushed visit's): the first request holds the key
    // with its answer; the same request again, or another, finds it held.
    let t = abandoned + 3 * REPLAY_MS;
    let kept = |fingerprint, now_ms, answer| KeptAnswer {
        key_id: key.id,
        idem: "s",
        fingerprint,
        now_ms,
        answer,
    };
    let keep = |k: KeptAnswer<'static>| async move {
        let mut tx = store.begin().await.unwrap();
        let held = tx.keep_answer(&k).await.unwrap();
        tx.commit().await.unwrap();
        held
    };
    assert!(keep(kept("f1", t, Some((200, "{\"a\":1}")))).await);
    assert_eq!(
        store
            .claim_api_request(key.id, "s", "f1", t + 1)
            .await
            .unwrap(),
        Claim::Replay {
            status: 200,
            body: "{\"a\":1}".into()
        }
    );
    assert!(!keep(kept("f1", t + 1, Some((200, "{}")))).await);
    assert!(!keep(kept("f2", t + 1, None)).await);
    // A day later the key is anyone's.
    assert!(keep(kept("f2", t + REPLAY_MS + 1, None)).await);
    // Claimed, its answer to follow the commit: in progress; taken over by the same request
    // after a minute, never by another.
    let t = t + REPLAY_MS + 1;
    assert_eq!(
        store
            .claim_api_request(key.id, "s", "f2", t + 1)
            .await
            .unwrap(),
        Claim::InProgress
    );
    assert!(!keep(kept("f3", t + ABANDONED_MS + 1, None)).await);
    assert!(!keep(kept("f2", t + 1, None)).await);
    assert!(keep(kept("f2", t + ABANDONED_MS + 1, Some((422, "{}")))).await);
    assert_eq!(
        store
            .claim_api_request(key.id, "s", "f2", t + ABANDONED_MS + 2)
            .await
            .unwrap(),
        Claim::Replay {
            status: 422,
            body: "{}".into()
        }
    );
}

async fn entries_paged_by_a_stable_cursor(db: &TestDb) {
    let store = db.store.as_ref();
    let (engine, _) = db.engine();
    let (a, _) = salon(store, five_percent()).await;
    let (b, _) = salon(store, five_percent()).await;
    let anna = engine.enroll(a.id, &phone(), None).await.expect("enroll");
    let bella = engine.enroll(b.id, &phone(), None).await.expect("enroll");
    for i in 0..5 {
        engine
            .manual_accrual(a.id, anna.id, Points(i + 1), "gift", &format!("k{i}"))
            .await
            .unwrap();
    }
    engine
        .manual_accrual(b.id, bella.id, Points(9), "gift", "kb")
        .await
        .unwrap();
    let first = store.entries_page(a.id, anna.id, None, 2).await.unwrap();
    let amounts = |es: &[loyalty_core::ledger::LedgerEntry]| {
        es.iter().map(|e| e.amount.0).collect::<Vec<_>>()
    };
    assert_eq!(amounts(&first), [5, 4]);
    // A newer entry does not move the pages after the cursor.
    engine
        .manual_accrual(a.id, anna.id, Points(6), "gift", "k5")
        .await
        .unwrap();
    let second = store
        .entries_page(a.id, anna.id, Some(first[1].id.0), 2)
        .await
        .unwrap();
    assert_eq!(amounts(&second), [3, 2]);
    let last = store
        .entries_page(a.id, anna.id, Some(second[1].id.0), 2)
        .await
        .unwrap();
    assert_eq!(amounts(&last), [1]);
    // Another salon's client through this salon: nothing.
    assert!(
        store
            .entries_page(a.id, bella.id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

both!(
    answers_kept_by_idempotency_key,
    entries_paged_by_a_stable_cursor,
    links_are_per_bot,
    keys_by_hash_and_revoked_by_their_salon,
    a_message_put_back_keeps_its_attempts
);
