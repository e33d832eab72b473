//! The outbox worker and the client bot against a Telegram stand-in (wiremock) and a real
//! SQLite store: the exact requests sent, and what the store holds afterwards.

use std::sync::Arc;
use std::time::Duration;

use loyalty_core::event::{ClientRef, LineKind, VisitLine};
use loyalty_core::model::{NewConnection, NewPartner};
use loyalty_core::outbox::OutboxStatus;
use loyalty_core::{
    Bps, CrmConnection, CrmEvent, CrmKind, Currency, LoyaltyEngine, ManualClock, Partner, Phone,
    Points, Program, Store, VisitEvent, VisitStatus,
};
use loyalty_store::SqlStore;
use loyalty_telegram::{ClientBot, OutboxWorker, Telegram, WorkerSettings};
use serde_json::{Value, json};
use tokio::sync::watch;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "123456:TEST-token";
const T0: i64 = 1_767_225_600_000;
const ANNA: &str = "+79161234567";

struct World {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    engine: LoyaltyEngine,
    clock: Arc<ManualClock>,
    partner: Partner,
    conn: CrmConnection,
    telegram: MockServer,
}

async fn world(welcome: i64) -> World {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let sql = SqlStore::connect(&url).await.unwrap();
    sql.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(sql);
    let clock = Arc::new(ManualClock::new(T0));
    let engine = LoyaltyEngine::with_clock(Arc::clone(&store), clock.clone());
    let mut program = Program::with_cashback(Bps::new(500).unwrap());
    program.welcome_bonus = Points(welcome);
    let partner = store
        .create_partner(
            &NewPartner {
                name: "Лотос".into(),
                program,
            },
            T0,
        )
        .await
        .unwrap();
    let conn = store
        .create_connection(
            &NewConnection {
                partner_id: partner.id,
                kind: CrmKind::Yclients,
                company_id: "4564".into(),
                credentials_ref: "db".into(),
                webhook_secret: "s".into(),
            },
            T0,
        )
        .await
        .unwrap();
    World {
        _dir: dir,
        store,
        engine,
        clock,
        partner,
        conn,
        telegram: MockServer::start().await,
    }
}

impl World {
    fn telegram(&self) -> Telegram {
        Telegram::new(
            &self.telegram.uri(),
            TOKEN,
            frankenstein::reqwest::Client::new(),
        )
    }

    fn worker(&self) -> OutboxWorker {
        let settings = WorkerSettings {
            min_interval: Duration::from_millis(1),
            per_chat_interval: Duration::from_millis(1),
            ..WorkerSettings::default()
        };
        OutboxWorker::new(
            Arc::clone(&self.store),
            self.telegram(),
            self.clock.clone(),
            settings,
        )
    }

    async fn visit(&self, record: &str, status: VisitStatus, paid_minor: i64) {
        self.visit_of(ANNA, record, status, paid_minor).await;
    }

    async fn visit_of(&self, phone: &str, record: &str, status: VisitStatus, paid_minor: i64) {
        let event = CrmEvent::Visit(VisitEvent {
            company_id: "4564".into(),
            record_id: record.into(),
            version: Some(self.clock_now()),
            status,
            client: Some(ClientRef {
                external_id: None,
                phone: Some(Phone::parse_international(phone).unwrap()),
                name: Some("Анна".into()),
            }),
            currency: Currency::Rub,
            lines: vec![VisitLine {
                item_id: "1".into(),
                category_id: None,
                kind: LineKind::Service,
                title: "Стрижка".into(),
                paid_minor,
            }],
            staff_id: None,
            staff_name: None,
            visit_at_ms: Some(T0),
            needs_refetch: false,
            loyalty_paid: Default::default(),
        });
        self.engine.apply_event(&self.conn, &event).await.unwrap();
        self.clock.advance_ms(1);
    }

    fn clock_now(&self) -> i64 {
        use loyalty_core::Clock;
        self.clock.now_ms()
    }

    async fn link(&self, chat: i64) {
        self.link_of(ANNA, chat).await;
    }

    async fn link_of(&self, phone: &str, chat: i64) {
        let client = self
            .store
            .client_by_phone(self.partner.id, &Phone::parse_international(phone).unwrap())
            .await
            .unwrap()
            .unwrap();
        self.store
            .set_telegram_chat(self.partner.id, client.id, Some(chat))
            .await
            .unwrap();
    }

    /// A certificate worth `cost` roubles for `cost` points in the salon's catalog.
    async fn reward(&self, title: &str, cost: i64) -> loyalty_core::Reward {
        let reward = loyalty_core::NewReward {
            title: title.into(),
            cost: Points(cost),
            kind: loyalty_core::RewardKind::Certificate {
                value_minor: cost * 100,
            },
        };
        self.store
            .create_reward(self.partner.id, &reward, T0)
            .await
            .unwrap()
    }

    async fn round(&self, worker: &mut OutboxWorker) -> usize {
        let (_tx, rx) = watch::channel(false);
        worker.round(&rx).await.unwrap()
    }

    async fn sends(&self) -> Vec<Value> {
        self.telegram
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path().ends_with("/sendMessage"))
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }
}

fn sent_ok(chat: i64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "ok": true,
        "result": {"message_id": 1, "date": 1_767_225_600, "chat": {"id": chat, "type": "private"}, "text": "ok"}
    }))
}

#[tokio::test]
async fn an_accrual_is_sent_once_to_the_linked_chat_with_the_exact_request() {
    let w = world(0).await;
    w.visit("1", VisitStatus::Waiting, 400_000).await;
    w.link(777).await;
    w.visit("1", VisitStatus::Came, 400_000).await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/sendMessage")))
        .respond_with(sent_ok(777))
        .expect(1)
        .mount(&w.telegram)
        .await;

    let mut worker = w.worker();
    assert_eq!(w.round(&mut worker).await, 1);
    assert_eq!(w.round(&mut worker).await, 0, "nothing left");
    let requests = w.telegram.received_requests().await.unwrap();
    let req: &Request = &requests[0];
    assert_eq!(
        req.headers.get("content-type").map(|v| v.to_str().unwrap()),
        Some("application/json")
    );
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        body,
        json!({"chat_id": 777, "text": "💎 +200 баллов за визит на 4\u{202f}000 ₽ в «Лотос». Баланс: 200 баллов"})
    );
    let outbox = w.store.outbox_of(w.partner.id).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].status, OutboxStatus::Sent);
    assert_eq!(
        worker
            .stats()
            .sent
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn telegram_429_waits_retry_after_and_5xx_backs_off() {
    let w = world(0).await;
    w.visit("1", VisitStatus::Waiting, 400_000).await;
    w.link(777).await;
    w.visit("1", VisitStatus::Came, 400_000).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "ok": false, "error_code": 429,
            "description": "Too Many Requests: retry after 7",
            "parameters": {"retry_after": 7}
        })))
        .up_to_n_times(1)
        .mount(&w.telegram)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>"))
        .up_to_n_times(1)
        .mount(&w.telegram)
        .await;
    Mock::given(method("POST"))
        .respond_with(sent_ok(777))
        .mount(&w.telegram)
        .await;

    let mut worker = w.worker();
    let started = tokio::time::Instant::now();
    assert_eq!(w.round(&mut worker).await, 1);
    let msg = &w.store.outbox_of(w.partner.id).await.unwrap()[0];
    assert_eq!(msg.status, OutboxStatus::Pending);
    assert_eq!(msg.run_at_ms, w.clock_now() + 7_000, "retry_after honoured");
    assert_eq!(w.round(&mut worker).await, 0, "not due before retry_after");

    w.clock.advance_ms(7_000);
    // Within Telegram's wait (real time for the worker) nothing goes to the bot: the message
    // is put back for what is left of it, the claim not counted as a try.
    assert_eq!(w.round(&mut worker).await, 1);
    assert_eq!(w.sends().await.len(), 1, "not sent during the wait");
    let msg = &w.store.outbox_of(w.partner.id).await.unwrap()[0];
    assert_eq!(msg.status, OutboxStatus::Pending);
    assert!(msg.run_at_ms > w.clock_now() && msg.run_at_ms <= w.clock_now() + 7_000);
    tokio::time::sleep_until(started + Duration::from_secs(7)).await;
    w.clock.advance_ms(7_000);
    assert_eq!(w.round(&mut worker).await, 1);
    assert!(started.elapsed() >= Duration::from_secs(7));
    let msg = &w.store.outbox_of(w.partner.id).await.unwrap()[0];
    assert_eq!(msg.status, OutboxStatus::Pending, "502 is retried");
    assert_eq!(
        msg.run_at_ms,
        w.clock_now() + 300_000,
        "second attempt waits 5 min"
    );

    w.clock.advance_ms(300_000);
    assert_eq!(w.round(&mut worker).await, 1);
    assert_eq!(
        w.store.outbox_of(w.partner.id).await.unwrap()[0].status,
        OutboxStatus::Sent
    );
    assert_eq!(w.sends().await.len(), 3);
}

#[tokio::test]
async fn a_blocked_bot_marks_the_chat_inactive_and_stops_writing() {
    let w = world(0).await;
    w.visit("1", VisitStatus::Waiting, 400_000).await;
    w.link(777).await;
    w.visit("1", VisitStatus::Came, 400_000).await;
    w.visit("2", VisitStatus::Came, 100_000).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"
        })))
        .mount(&w.telegram)
        .await;
    let mut worker = w.worker();
    assert_eq!(w.round(&mut worker).await, 1);
    assert_eq!(w.round(&mut worker).await, 1);
    let outbox = w.store.outbox_of(w.partner.id).await.unwrap();
    assert!(
        outbox.iter().all(|m| m.status == OutboxStatus::Dead),
        "{outbox:?}"
    );
    assert!(outbox[1].last_error.as_deref().unwrap().contains("blocked"));
    assert_eq!(
        w.sends().await.len(),
        1,
        "the second message is not attempted"
    );
    assert!(!w.store.telegram_chat(777).await.unwrap().unwrap().active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_racing_on_one_outbox_send_each_message_once() {
    let w = world(0).await;
    let phones: Vec<String> = (0..12).map(|i| format!("+7916555{i:04}")).collect();
    for (i, phone) in phones.iter().enumerate() {
        w.visit_of(phone, &format!("w{i}"), VisitStatus::Waiting, 100_000)
            .await;
        w.link_of(phone, 9_000 + i as i64).await;
        w.visit_of(phone, &format!("w{i}"), VisitStatus::Came, 100_000)
            .await;
    }
    Mock::given(method("POST"))
        .respond_with(sent_ok(1))
        .mount(&w.telegram)
        .await;
    let settings = WorkerSettings {
        batch: 4,
        min_interval: Duration::from_millis(1),
        per_chat_interval: Duration::from_millis(1),
        ..WorkerSettings::default()
    };
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let mut worker = OutboxWorker::new(
            Arc::clone(&w.store),
            w.telegram(),
            w.clock.clone(),
            settings.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let (_tx, rx) = watch::channel(false);
            while worker.round(&rx).await.unwrap() > 0 {}
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut chats: Vec<i64> = w
        .sends()
        .await
        .iter()
        .map(|b| b["chat_id"].as_i64().unwrap())
        .collect();
    chats.sort();
    assert_eq!(
        chats,
        (9_000..9_012).collect::<Vec<i64>>(),
        "each chat exactly once"
    );
    let outbox = w.store.outbox_of(w.partner.id).await.unwrap();
    assert!(
        outbox.iter().all(|m| m.status == OutboxStatus::Sent),
        "{outbox:?}"
    );
}

#[tokio::test]
async fn one_chat_gets_at_most_one_message_per_interval() {
    let w = world(0).await;
    // The same person at two salons: two partitions, one chat.
    let other = w
        .store
        .create_partner(
            &NewPartner {
                name: "Роза".into(),
                program: Program::with_cashback(Bps::new(500).unwrap()),
            },
            T0,
        )
        .await
        .unwrap();
    let other_conn = w
        .store
        .create_connection(
            &NewConnection {
                partner_id: other.id,
                kind: CrmKind::Yclients,
                company_id: "4564".into(),
                credentials_ref: "db".into(),
                webhook_secret: "s2".into(),
            },
            T0,
        )
        .await
        .unwrap();
    w.visit("1", VisitStatus::Waiting, 100_000).await;
    w.link(777).await;
    w.visit("1", VisitStatus::Came, 100_000).await;
    // Anna's visit at the second salon, before that salon knows her chat.
    let visit = VisitEvent {
        company_id: "4564".into(),
        record_id: "1".into(),
        version: Some(1),
        status: VisitStatus::Came,
        client: Some(ClientRef {
            external_id: None,
            phone: Some(Phone::parse_international(ANNA).unwrap()),
            name: None,
        }),
        currency: Currency::Rub,
        lines: vec![VisitLine {
            item_id: "1".into(),
            category_id: None,
            kind: LineKind::Service,
            title: String::new(),
            paid_minor: 100_000,
        }],
        staff_id: None,
        staff_name: None,
        visit_at_ms: None,
        needs_refetch: false,
        loyalty_paid: Default::default(),
    };
    w.engine
        .apply_event(&other_conn, &CrmEvent::Visit(visit.clone()))
        .await
        .unwrap();
    let at_other = w
        .store
        .client_by_phone(other.id, &Phone::parse_international(ANNA).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(at_other.telegram_chat_id, None);
    w.store
        .set_telegram_chat(other.id, at_other.id, Some(777))
        .await
        .unwrap();
    // Now one message from each salon is due at once, both to chat 777.
    let second = VisitEvent {
        record_id: "2".into(),
        ..visit
    };
    w.engine
        .apply_event(&other_conn, &CrmEvent::Visit(second))
        .await
        .unwrap();
    Mock::given(method("POST"))
        .respond_with(sent_ok(777))
        .mount(&w.telegram)
        .await;

    let gap = Duration::from_millis(400);
    let settings = WorkerSettings {
        min_interval: Duration::from_millis(1),
        per_chat_interval: gap,
        ..WorkerSettings::default()
    };
    let mut worker = OutboxWorker::new(
        Arc::clone(&w.store),
        w.telegram(),
        w.clock.clone(),
        settings,
    );
    let started = tokio::time::Instant::now();
    assert_eq!(
        w.round(&mut worker).await,
        2,
        "one message of each salon's partition"
    );
    assert!(
        started.elapsed() >= gap,
        "the second waited for the chat's interval"
    );
    assert_eq!(w.sends().await.len(), 2);
}

fn update(id: u32, from: u64, lang: &str, message: Value) -> frankenstein::updates::Update {
    let mut msg = json!({
        "message_id": id, "date": 1_767_225_600,
        "chat": {"id": from, "type": "private", "first_name": "Anna"},
        "from": {"id": from, "is_bot": false, "first_name": "Anna", "language_code": lang}
    });
    if let (Some(m), Some(extra)) = (msg.as_object_mut(), message.as_object()) {
        m.extend(extra.clone());
    }
    serde_json::from_value(json!({"update_id": id, "message": msg})).unwrap()
}

/// Someone who comes by a salon's link and is not its client yet becomes one when they share
/// their phone: with the name Telegram gives, linked, with the welcome bonus; and only once.
#[tokio::test]
async fn a_newcomer_by_the_salons_link_becomes_its_client() {
    let w = world(50).await;
    Mock::given(method("POST"))
        .respond_with(sent_ok(905))
        .mount(&w.telegram)
        .await;
    let bot = ClientBot::new(w.engine.clone(), w.telegram());
    let start = format!("/start s{}", w.partner.id);
    bot.handle_update(update(1, 905, "ru", json!({"text": start})))
        .await;
    let contact = json!({"contact": {
        "phone_number": "79165550505", "first_name": "Вера", "last_name": "Соколова",
        "user_id": 905}});
    bot.handle_update(update(2, 905, "ru", contact.clone()))
        .await;
    let phone = Phone::parse_international("+79165550505").unwrap();
    let client = w
        .store
        .client_by_phone(w.partner.id, &phone)
        .await
        .unwrap()
        .expect("a client of the salon now");
    assert_eq!(client.name.as_deref(), Some("Вера Соколова"));
    assert_eq!(client.telegram_chat_id, Some(905));
    assert_eq!(
        w.store.balance(w.partner.id, client.id).await.unwrap(),
        Points(50)
    );
    let sends = w.sends().await;
    let linked = sends[1]["text"].as_str().unwrap();
    assert!(linked.contains("Лотос: 50 баллов"), "{linked}");
    // Sharing again changes nothing.
    bot.handle_update(update(3, 905, "ru", contact)).await;
    assert_eq!(
        w.store.balance(w.partner.id, client.id).await.unwrap(),
        Points(50)
    );
    // Without a salon's link, a stranger's phone stays nobody's client.
    bot.handle_update(update(
        4,
        906,
        "ru",
        json!({"contact": {"phone_number": "79165550606", "first_name": "X", "user_id": 906}}),
    ))
    .await;
    let stranger = Phone::parse_international("+79165550606").unwrap();
    assert!(
        w.store
            .client_by_phone(w.partner.id, &stranger)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn sharing_ones_own_contact_links_the_phone_shows_points_and_grants_the_bonus() {
    let w = world(50).await;
    w.visit("1", VisitStatus::Came, 400_000).await;
    Mock::given(method("POST"))
        .respond_with(sent_ok(900))
        .mount(&w.telegram)
        .await;
    let bot = ClientBot::new(w.engine.clone(), w.telegram());

    // /start with the salon's deep link names the salon and asks for the contact.
    let start = format!("/start s{}", w.partner.id);
    bot.handle_update(update(1, 900, "ru", json!({"text": start})))
        .await;
    // Someone else's contact is refused.
    bot.handle_update(update(
        2,
        900,
        "ru",
        json!({"contact": {
        "phone_number": "79161234567", "first_name": "Anna", "user_id": 901}}),
    ))
    .await;
    let client = w
        .store
        .client_by_phone(w.partner.id, &Phone::parse_international(ANNA).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.telegram_chat_id, None);
    // Her own contact links her and shows the points she already had.
    bot.handle_update(update(
        3,
        900,
        "ru",
        json!({"contact": {
        "phone_number": "79161234567", "first_name": "Anna", "user_id": 900}}),
    ))
    .await;
    // English-speaking users get English.
    bot.handle_update(update(4, 900, "en", json!({"text": "/balance"})))
        .await;

    let sends = w.sends().await;
    assert_eq!(sends.len(), 4);
    let text = |i: usize| sends[i]["text"].as_str().unwrap().to_owned();
    assert!(
        text(0).contains("Вас пригласил салон «Лотос»"),
        "{}",
        text(0)
    );
    assert_eq!(
        sends[0]["reply_markup"]["keyboard"][0][0]["request_contact"],
        json!(true)
    );
    assert!(text(1).contains("своим номером"), "{}", text(1));
    assert!(text(2).starts_with("✅ Номер привязан."), "{}", text(2));
    assert!(
        text(2).contains("Лотос: 250 баллов"),
        "200 for the visit + 50 welcome: {}",
        text(2)
    );
    assert_eq!(text(3), "💎 Лотос: 250 points");

    let client = w
        .store
        .client(w.partner.id, client.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.telegram_chat_id, Some(900));
    let chat = w.store.telegram_chat(900).await.unwrap().unwrap();
    assert_eq!(chat.phone, Some(Phone::parse_international(ANNA).unwrap()));
    assert_eq!(chat.language, "en");
    // The welcome bonus is announced through the outbox, once.
    bot.handle_update(update(
        5,
        900,
        "ru",
        json!({"contact": {
        "phone_number": "+7 916 123-45-67", "first_name": "Anna", "user_id": 900}}),
    ))
    .await;
    let outbox = w.store.outbox_of(w.partner.id).await.unwrap();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(
        w.store.balance(w.partner.id, client.id).await.unwrap(),
        Points(250)
    );

    // Opting out is stored for every salon of the chat.
    bot.handle_update(update(6, 900, "ru", json!({"text": "🔕 Без уведомлений"})))
        .await;
    assert!(
        w.store
            .client(w.partner.id, client.id)
            .await
            .unwrap()
            .unwrap()
            .notifications_off
    );
}

/// A button pressed under the bot's message `message_id`.
/// With levels on, `/balance` shows the level and what the next one needs, in the chat's
/// language, and the worker tells the client when she rises.
#[tokio::test]
async fn the_balance_shows_the_level_and_what_the_next_one_needs() {
    use loyalty_core::level::{LevelMeasure, Levels, Tier};
    let w = world(0).await;
    let tier = |name: &str, threshold: i64, cashback: i64, cap: i64| Tier {
        name: name.into(),
        threshold,
        cashback: Bps::new(cashback).unwrap(),
        max_redeem_share: Bps::new(cap).unwrap(),
    };
    let mut program = w.partner.program.clone();
    program.levels = Some(Levels {
        measure: LevelMeasure::Paid,
        window_days: Some(365),
        grace_days: 90,
        tiers: vec![
            tier("Base", 0, 300, 1_000),
            tier("Silver", 3_000_000, 700, 2_000),
            tier("Gold", 10_000_000, 1_500, 3_000),
        ],
    });
    w.store
        .set_program(
            w.partner.id,
            &program,
            T0,
            &loyalty_core::audit::Actor::system(),
        )
        .await
        .unwrap();
    w.visit("1", VisitStatus::Came, 2_500_000).await;
    w.link(910).await;
    Mock::given(method("POST"))
        .respond_with(sent_ok(910))
        .mount(&w.telegram)
        .await;
    let bot = ClientBot::new(w.engine.clone(), w.telegram());
    bot.handle_update(update(1, 910, "ru", json!({"text": "/balance"})))
        .await;
    w.visit("2", VisitStatus::Came, 600_000).await;
    bot.handle_update(update(2, 910, "en", json!({"text": "/balance"})))
        .await;
    // The points, then the level (one chat's messages go out in order, one per round); the chat
    // speaks English since its last message.
    let mut worker = w.worker();
    w.round(&mut worker).await;
    w.clock.advance_ms(1_000);
    w.round(&mut worker).await;

    let sends = w.sends().await;
    let texts: Vec<&str> = sends.iter().filter_map(|s| s["text"].as_str()).collect();
    assert_eq!(
        texts[0],
        "💎 Лотос: 750 баллов\n🏅 Уровень Base: кешбэк 3%. До Silver — ещё 5\u{202f}000 ₽"
    );
    assert_eq!(
        texts[1],
        "💎 Лотос: 930 points\n🏅 Level Silver: 7% cashback. Gold after 69\u{202f}000 ₽ more"
    );
    assert_eq!(
        texts[2..],
        [
            "💎 +180 points for your visit of 6\u{202f}000 ₽ at Лотос. Balance: 930 points",
            "🏅 New level at Лотос: Silver (was Base). Your cashback is now 7%, and points can \
             pay up to 20% of a bill."
        ]
    );
}

/// With a refund window, the client is told when her points become spendable; `/balance` and
/// `/history` show them pending until the salon's housekeeping makes them spendable.
#[tokio::test]
async fn pending_points_show_as_pending_until_they_are_spendable() {
    let w = world(0).await;
    let mut program = w.partner.program.clone();
    program.pending_days = 14;
    w.store
        .set_program(
            w.partner.id,
            &program,
            T0,
            &loyalty_core::audit::Actor::system(),
        )
        .await
        .unwrap();
    w.visit("1", VisitStatus::Waiting, 400_000).await;
    w.link(920).await;
    w.visit("1", VisitStatus::Came, 400_000).await;
    Mock::given(method("POST"))
        .respond_with(sent_ok(920))
        .mount(&w.telegram)
        .await;
    let bot = ClientBot::new(w.engine.clone(), w.telegram());
    bot.handle_update(update(1, 920, "ru", json!({"text": "/balance"})))
        .await;
    bot.handle_update(update(2, 920, "ru", json!({"text": "/history"})))
        .await;
    w.clock.advance_ms(14 * 86_400_000);
    w.engine.mature_due(w.partner.id).await.unwrap();
    bot.handle_update(update(3, 920, "en", json!({"text": "/history"})))
        .await;
    let mut worker = w.worker();
    w.round(&mut worker).await;
    w.clock.advance_ms(1_000);
    w.round(&mut worker).await;

    let sends = w.sends().await;
    let texts: Vec<&str> = sends.iter().filter_map(|s| s["text"].as_str()).collect();
    assert_eq!(
        texts,
        [
            "💎 Лотос: 0 баллов\n⏳ ещё 200 баллов станут доступны после периода возврата",
            "🏠 Лотос\n  +200 баллов — визит (ожидают)",
            "🏠 Лотос\n  +200 points — now spendable\n  +200 points — visit (pending)",
            "💎 +200 points for your visit of 4\u{202f}000 ₽ at Лотос, spendable from \
             2026-01-15. Balance: 0 points",
            "✅ 200 points at Лотос can be spent now. Balance: 200 points",
        ]
    );
}

/// A client's `/invite` gives her link (the bot's username from `getMe`) and what it pays; a
/// friend who comes by it and shares her phone is her referral; the friend's first visit pays
/// both, each told; the link's tally follows.
#[tokio::test]
async fn a_friend_by_a_clients_link_pays_both_on_her_first_visit() {
    let w = world(0).await;
    let mut program = w.partner.program.clone();
    program.referral = Some(loyalty_core::referral::ReferralProgram {
        referrer_points: Points(300),
        friend_points: Points(200),
        monthly_cap: None,
    });
    w.store
        .set_program(
            w.partner.id,
            &program,
            T0,
            &loyalty_core::audit::Actor::system(),
        )
        .await
        .unwrap();
    w.visit("1", VisitStatus::Came, 400_000).await;
    w.link(950).await;
    let anna = w
        .store
        .client_by_phone(w.partner.id, &Phone::parse_international(ANNA).unwrap())
        .await
        .unwrap()
        .unwrap();
    Mock::given(path(format!("/bot{TOKEN}/getMe")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": {
            "id": 42, "is_bot": true, "first_name": "Лотос", "username": "LotosBot"}})),
        )
        .expect(1)
        .mount(&w.telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/sendMessage")))
        .respond_with(sent_ok(950))
        .mount(&w.telegram)
        .await;
    let bot = ClientBot::new(w.engine.clone(), w.telegram());
    bot.handle_update(update(1, 950, "ru", json!({"text": "/invite"})))
        .await;
    // Olga opens Anna's link and shares her phone.
    let start = format!("/start r{}_{}", w.partner.id, anna.id);
    bot.handle_update(update(2, 960, "ru", json!({"text": start})))
        .await;
    let contact = json!({"contact": {
        "phone_number": "79165550707", "first_name": "Ольга", "user_id": 960}});
    bot.handle_update(update(3, 960, "ru", contact)).await;
    // Her first visit: 100 points for it, 200 for coming; Anna gets 300.
    w.visit_of("+79165550707", "2", VisitStatus::Came, 200_000)
        .await;
    let mut worker = w.worker();
    w.round(&mut worker).await;
    w.clock.advance_ms(1_000);
    w.round(&mut worker).await;
    bot.handle_update(update(4, 950, "en", json!({"text": "/invite"})))
        .await;

    let sends = w.sends().await;
    let to = |chat: i64| -> Vec<&str> {
        sends
            .iter()
            .filter(|s| s["chat_id"] == json!(chat))
            .filter_map(|s| s["text"].as_str())
            .collect()
    };
    let link = format!("https://t.me/LotosBot?start=r{}_{}", w.partner.id, anna.id);
    assert_eq!(
        to(950),
        [
            format!(
                "🤝 «Лотос»: пригласите друзей по этой ссылке. После первого визита друг получит \
                 200 баллов, а вы — 300 баллов.\n{link}\nПо ссылке пришли: 0 из 0, вы получили \
                 0 баллов"
            )
            .as_str(),
            "🤝 +300 баллов в «Лотос»: по вашей рекомендации пришёл новый клиент. Баланс: 500 \
             баллов",
            format!(
                "🤝 Лотос: invite friends with this link. After a friend's first visit they get \
                 200 points and you get 300 points.\n{link}\nCame by your link: 1 of 1, you \
                 earned 300 points"
            )
            .as_str(),
        ]
    );
    let olga = to(960);
    assert_eq!(
        olga[0],
        "Здравствуйте! Это бонусная программа ваших салонов красоты: баллы за визиты, баланс и \
         история.\nВас пригласил(а) Анна, клиент салона «Лотос».\nПоделитесь номером телефона, \
         который вы называете в салоне, — и мы покажем ваши баллы."
    );
    assert_eq!(
        olga[2..],
        [
            "💎 +100 баллов за визит на 2\u{202f}000 ₽ в «Лотос». Баланс: 100 баллов",
            "🤝 +200 баллов в «Лотос» за первый визит по рекомендации. Баланс: 300 баллов",
        ]
    );
}

/// `/invite` needs the bot's username: while Telegram's `getMe` fails the client is asked to try
/// again later (nothing cached), and the next `/invite` once it answers gives the link.
#[tokio::test]
async fn invite_says_try_later_while_telegram_cannot_name_the_bot() {
    let w = world(0).await;
    let mut program = w.partner.program.clone();
    program.referral = Some(loyalty_core::referral::ReferralProgram {
        referrer_points: Points(300),
        friend_points: Points(200),
        monthly_cap: None,
    });
    w.store
        .set_program(
            w.partner.id,
            &program,
            T0,
            &loyalty_core::audit::Actor::system(),
        )
        .await
        .unwrap();
    w.visit("1", VisitStatus::Came, 400_000).await;
    w.link(970).await;
    Mock::given(path(format!("/bot{TOKEN}/getMe")))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .mount(&w.telegram)
        .await;
    Mock::given(path(format!("/bot{TOKEN}/getMe")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": {
            "id": 42, "is_bot": true, "first_name": "Лотос", "username": "LotosBot"}})),
        )
        .mount(&w.telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/sendMessage")))
        .respond_with(sent_ok(970))
        .mount(&w.telegram)
        .await;
    let bot = ClientBot::new(w.engine.clone(), w.telegram());
    bot.handle_update(update(1, 970, "ru", json!({"text": "/invite"})))
        .await;
    bot.handle_update(update(2, 970, "ru", json!({"text": "/invite"})))
        .await;
    let sends = w.sends().await;
    let texts: Vec<&str> = sends.iter().filter_map(|s| s["text"].as_str()).collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert_eq!(
        texts[0],
        "Не получилось подготовить ссылку. Попробуйте чуть позже."
    );
    assert!(
        texts[1].contains("https://t.me/LotosBot?start=r"),
        "{}",
        texts[1]
    );
}

/// With birthday points on and no birth date from the CRM, linking invites the client to give
/// hers; `/birthday DD.MM` records it once; a known one is the salon's to change.
#[tokio::test]
async fn the_bot_asks_for_a_missing_birthday_and_records_it_once() {
    let w = world(0).await;
    let mut program = w.partner.program.clone();
    program.birthday = Some(loyalty_core::model::BirthdayBonus {
        points: Points(300),
        days_before: 3,
        valid_days: 7,
        utc_offset_minutes: 180,
    });
    w.store
        .set_program(
            w.partner.id,
            &program,
            T0,
            &loyalty_core::audit::Actor::system(),
        )
        .await
        .unwrap();
    w.visit("1", VisitStatus::Came, 100_000).await;
    Mock::given(method("POST"))
        .respond_with(sent_ok(920))
        .mount(&w.telegram)
        .await;
    let bot = ClientBot::new(w.engine.clone(), w.telegram());
    bot.handle_update(update(
        1,
        920,
        "ru",
        json!({"contact": {"phone_number": "79161234567", "first_name": "Anna", "user_id": 920}}),
    ))
    .await;
    bot.handle_update(update(2, 920, "ru", json!({"text": "/birthday 31.02"})))
        .await;
    bot.handle_update(update(3, 920, "ru", json!({"text": "/birthday 14.03"})))
        .await;
    bot.handle_update(update(
        4,
        920,
        "en",
        json!({"text": "/birthday 15.03.1990"}),
    ))
    .await;

    let sends = w.sends().await;
    let texts: Vec<&str> = sends.iter().filter_map(|s| s["text"].as_str()).collect();
    assert_eq!(
        texts,
        [
            "✅ Номер привязан.\n💎 Лотос: 50 баллов\n🎂 Подарок ко дню рождения: напишите \
             /birthday ДД.ММ, например /birthday 14.03",
            "Не понял дату. Напишите день и месяц: /birthday 14.03",
            "🎂 Запомнили: 14.03. Подарок придёт ко дню рождения.",
            "Your birthday is already on record; the salon's administrator can change it.",
        ]
    );
    let anna = w
        .store
        .client_by_phone(w.partner.id, &Phone::parse_international(ANNA).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        anna.birth_date,
        Some(loyalty_core::BirthDate {
            year: None,
            month: 3,
            day: 14
        })
    );
}

fn press(id: u32, from: u64, message_id: u32, data: &str) -> frankenstein::updates::Update {
    serde_json::from_value(json!({"update_id": id, "callback_query": {
        "id": format!("q{id}"),
        "from": {"id": from, "is_bot": false, "first_name": "Anna", "language_code": "ru"},
        "chat_instance": "ci",
        "data": data,
        "message": {"message_id": message_id, "date": 1_767_225_600,
                    "chat": {"id": from, "type": "private", "first_name": "Anna"}, "text": "…"}
    }}))
    .unwrap()
}

#[tokio::test]
async fn a_client_exchanges_points_in_the_bot_once_and_sees_the_code() {
    use loyalty_core::code::Code;
    use loyalty_telegram::GatewayCodes;

    let w = world(0).await;
    w.visit("1", VisitStatus::Came, 400_000).await; // 200 points
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/sendMessage")))
        .respond_with(sent_ok(900))
        .mount(&w.telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/answerCallbackQuery")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": true})))
        .mount(&w.telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/sendPhoto")))
        .respond_with(sent_ok(900))
        .mount(&w.telegram)
        .await;
    let p = w.partner.id;
    let cheap = w.reward("Сертификат 150 ₽", 150).await;
    let dear = w.reward("Сертификат 500 ₽", 500).await;
    let draws = Arc::new(std::sync::atomic::AtomicU8::new(1));
    let bot = ClientBot::new(w.engine.clone(), w.telegram()).with_exchange(
        Arc::new(GatewayCodes),
        Arc::new(move || {
            Code::from_entropy([draws.fetch_add(1, std::sync::atomic::Ordering::SeqCst); 8])
        }),
    );
    bot.handle_update(update(
        1,
        900,
        "ru",
        json!({"contact": {"phone_number": "79161234567", "first_name": "Anna", "user_id": 900}}),
    ))
    .await;
    let linked = w.sends().await;
    assert_eq!(
        linked[0]["reply_markup"]["keyboard"][1],
        json!([{"text": "🎁 Обменять баллы"}, {"text": "🎟 Мои коды"}])
    );

    // Only what 200 points buy is offered.
    bot.handle_update(update(2, 900, "ru", json!({"text": "🎁 Обменять баллы"})))
        .await;
    let menu = w.sends().await.pop().unwrap();
    assert_eq!(
        menu["reply_markup"]["inline_keyboard"],
        json!([[{"text": "Сертификат 150 ₽ — 150 баллов (Лотос)",
                 "callback_data": format!("x:{p}:{}", cheap.id)}]])
    );
    // Choosing it asks to confirm.
    bot.handle_update(press(3, 900, 10, &format!("x:{p}:{}", cheap.id)))
        .await;
    let confirm = w.sends().await.pop().unwrap();
    assert_eq!(
        confirm["text"],
        "Обменять 150 баллов на «Сертификат 150 ₽» (сертификат на 150 ₽) в «Лотос»?"
    );
    assert_eq!(
        confirm["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
        json!(format!("y:{p}:{}", cheap.id))
    );
    // "Yes", tapped twice on the same message: one redemption, the same code both times.
    bot.handle_update(press(4, 900, 11, &format!("y:{p}:{}", cheap.id)))
        .await;
    bot.handle_update(press(5, 900, 11, &format!("y:{p}:{}", cheap.id)))
        .await;
    let client = w
        .store
        .client_by_phone(p, &Phone::parse_international(ANNA).unwrap())
        .await
        .unwrap()
        .unwrap();
    let made = w.store.redemptions_of(p, client.id).await.unwrap();
    assert_eq!(made.len(), 1);
    let code = made[0].code.to_string();
    let sends = w.sends().await;
    let (first, second) = (&sends[sends.len() - 2], &sends[sends.len() - 1]);
    assert_eq!(first["text"], second["text"]);
    let text = first["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!(
            "🎟 Ваш код: {code}\n«Сертификат 150 ₽» в «Лотос», действует до 01.04.2026.\n\
             Сертификат на 150 ₽ оплачивает до 50% счёта: для счёта от 300 ₽.\n\
             Назовите код администратору при оплате."
        )),
        "{text}"
    );
    assert!(text.ends_with("Остаток: 50 баллов"), "{text}");
    assert_eq!(w.store.balance(p, client.id).await.unwrap(), Points(50));
    // Under each code message, the code as a QR image: a multipart upload to this chat of
    // exactly the PNG `qr::png` draws for the code, with the code in the caption.
    let photos: Vec<_> = w
        .telegram
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path().ends_with("/sendPhoto"))
        .collect();
    assert_eq!(photos.len(), 2);
    let expected = loyalty_telegram::qr::png(&code).unwrap();
    let body = &photos[0].body;
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    let content_type = photos[0]
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        content_type.starts_with("multipart/form-data"),
        "{content_type}"
    );
    assert!(has(&expected), "the PNG is uploaded byte for byte");
    assert!(has(b"name=\"chat_id\"\r\n\r\n900\r\n"));
    assert!(has(format!(
        "name=\"caption\"\r\n\r\n{code}: покажите администратору\r\n"
    )
    .as_bytes()));
    // A forged press for what the balance cannot cover, or another salon's reward, changes
    // nothing.
    bot.handle_update(press(6, 900, 12, &format!("y:{p}:{}", dear.id)))
        .await;
    assert_eq!(
        w.sends().await.pop().unwrap()["text"],
        "Не хватает баллов: нужно 500 баллов, доступно 50 баллов."
    );
    bot.handle_update(press(7, 900, 13, &format!("y:{}:{}", p.0 + 1, cheap.id)))
        .await;
    assert_eq!(
        w.sends().await.pop().unwrap()["text"],
        "Эта награда больше недоступна."
    );
    assert_eq!(w.store.redemptions_of(p, client.id).await.unwrap().len(), 1);
    // "My codes" lists it until it is used.
    bot.handle_update(update(8, 900, "ru", json!({"text": "🎟 Мои коды"})))
        .await;
    assert_eq!(
        w.sends().await.pop().unwrap()["text"],
        format!(
            "🎟 {code} — «Сертификат 150 ₽» в «Лотос», до 01.04.2026\n   \
             Сертификат на 150 ₽ оплачивает до 50% счёта: для счёта от 300 ₽."
        )
    );
    w.engine.use_code(&made[0].code).await.unwrap();
    bot.handle_update(update(9, 900, "ru", json!({"text": "/codes"})))
        .await;
    assert!(
        w.sends().await.pop().unwrap()["text"]
            .as_str()
            .unwrap()
            .starts_with("Активных кодов нет.")
    );
    // Every press was answered, so no button kept spinning.
    let answered = w
        .telegram
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("/answerCallbackQuery"))
        .count();
    assert_eq!(answered, 5);
}

#[tokio::test]
async fn only_the_salons_staff_check_and_use_its_codes_in_the_bot() {
    use loyalty_core::code::Code;
    use loyalty_core::redemption::Target;

    let w = world(0).await;
    w.visit("1", VisitStatus::Came, 400_000).await;
    Mock::given(method("POST"))
        .respond_with(sent_ok(700))
        .mount(&w.telegram)
        .await;
    let p = w.partner.id;
    let reward = w.reward("Сертификат 150 ₽", 150).await;
    let client = w
        .store
        .client_by_phone(p, &Phone::parse_international(ANNA).unwrap())
        .await
        .unwrap()
        .unwrap();
    let r = w
        .engine
        .redeem(p, client.id, &reward, "desk", Target::GATEWAY, &|| {
            Code::from_entropy([3; 8])
        })
        .await
        .unwrap();
    let code = r.code.to_string();
    w.store.add_staff_chat(p, 700, T0).await.unwrap();
    let bot = ClientBot::new(w.engine.clone(), w.telegram());
    let say = |id: u32, from: u64, text: &str| update(id, from, "ru", json!({"text": text}));

    // A stranger gets the help text: the commands do not exist for them.
    bot.handle_update(say(1, 800, &format!("/use {code}")))
        .await;
    assert!(
        w.sends().await[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("/balance")
    );
    assert_eq!(
        w.store
            .redemption_by_code(&r.code)
            .await
            .unwrap()
            .unwrap()
            .status,
        r.status
    );
    // The salon's administrator checks it (typed loosely). Points pay at most half a bill
    // here, so the 150 ₽ certificate needs the bill, of 300 ₽ or more; then it is used, once.
    let typed = [
        format!("/check {}", code.to_lowercase()),
        format!("/use {code}"),
        format!("/use {code} 299,99"),
        format!("/use {code} триста"),
        format!("/use {} 300 ₽", code.to_lowercase().replace('-', " ")),
        format!("/use {code} 300"),
        "/check ABCD-EFGH-K".to_owned(),
    ];
    for (i, text) in (2..).zip(&typed) {
        bot.handle_update(say(i, 700, text)).await;
    }
    let texts: Vec<String> = w.sends().await[1..]
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_owned())
        .collect();
    let terms = "Сертификат на 150 ₽ оплачивает до 50% счёта: для счёта от 300 ₽.";
    let head = format!("🎟 {code} — «Сертификат 150 ₽», 150 баллов");
    assert_eq!(
        texts,
        vec![
            format!("{head}: можно использовать до 01.04.2026\n{terms}"),
            format!(
                "🎟 {code} — «Сертификат 150 ₽». {terms}\nУкажите сумму счёта: /use {code} СУММА"
            ),
            format!("Код {code} не погашен: счёт слишком мал. {terms}"),
            format!("Не понял сумму счёта «триста». Например: /use {code} 3500"),
            format!("{head}: ✅ погашен сейчас"),
            format!("{head}: уже использован"),
            "Такого кода нет. Проверьте, как он написан: например ABCD-EFGH-K.".to_owned(),
        ]
    );
    assert_eq!(
        w.store.balance(p, client.id).await.unwrap(),
        Points(50),
        "spent once"
    );
}
