//! The reminders' worker against a Telegram stand-in (wiremock) and a real SQLite store: the
//! exact request; a 429 pauses reminders only (point messages go on) and loses nothing;
//! Telegram down is tried again; a blocked chat ends it; a reminder that would go out at night
//! waits for the morning; consent withdrawn before it goes cancels it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use loyalty_core::engage::{Engagement, TriggerRule, TriggerSetting};
use loyalty_core::model::NewPartner;
use loyalty_core::{
    Bps, ChatStore, ClientId, ClientStore, LoyaltyEngine, ManualClock, Partner, PartnerStore,
    Phone, Points, Program, Store, TelegramChat,
};
use loyalty_engage::store::{ConsentKind, EngageStore, NewSend, Reminder};
use loyalty_store::SqlStore;
use loyalty_telegram::{OutboxWorker, ReminderSettings, ReminderWorker, Telegram, WorkerSettings};
use serde_json::{Value, json};
use tokio::sync::watch;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "123456:TEST-token";
/// 2026-01-01 12:00 in Moscow.
const NOON: i64 = 1_767_225_600_000 + 9 * 3_600_000;
const CHAT: i64 = 777;

struct World {
    _dir: tempfile::TempDir,
    sql: Arc<SqlStore>,
    clock: Arc<ManualClock>,
    engine: LoyaltyEngine,
    partner: Partner,
    client: ClientId,
    telegram: MockServer,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let sql = Arc::new(SqlStore::connect(&url).await.unwrap());
    sql.migrate().await.unwrap();
    let mut program = Program::with_cashback(Bps::new(500).unwrap());
    program.engage = Some(Engagement {
        holdout_percent: 0,
        booking_url: Some("https://n4564.yclients.com/".into()),
        triggers: vec![TriggerSetting {
            rule: TriggerRule::Inactive {
                days: 30,
                min_balance: Points(0),
            },
            text: None,
            offer: None,
        }],
        ..Engagement::default()
    });
    let partner = sql
        .create_partner(
            &NewPartner {
                name: "Лотос".into(),
                program,
            },
            NOON,
        )
        .await
        .unwrap();
    let phone = Phone::parse_international("+79161234567").unwrap();
    let clock = Arc::new(ManualClock::new(NOON));
    let store: Arc<dyn Store> = sql.clone();
    let engine = LoyaltyEngine::with_clock(store, clock.clone());
    let client = engine
        .enroll(partner.id, &phone, Some("Анна"))
        .await
        .unwrap()
        .id;
    sql.save_telegram_chat(
        &TelegramChat {
            chat_id: CHAT,
            phone: Some(phone),
            language: "ru".into(),
            active: true,
            joined_partner: None,
            referred_by: None,
        },
        NOON,
    )
    .await
    .unwrap();
    sql.set_telegram_chat(partner.id, client, Some(CHAT))
        .await
        .unwrap();
    sql.set_consent(
        partner.id,
        client,
        ConsentKind::Marketing,
        true,
        "telegram:777",
        "да",
        NOON,
    )
    .await
    .unwrap();
    sql.record_sends(
        partner.id,
        &[NewSend {
            client,
            trigger: "inactive".into(),
            cycle: "1".into(),
            control: false,
            channel: loyalty_engage::Channel::Telegram,
            why: "no visit for 40 days".into(),
            reminder: Reminder {
                trigger: "inactive".into(),
                salon: Some("Лотос".into()),
                name: Some("Анна".into()),
                points: 350,
                days: 40,
                date: None,
                birthday_points: None,
                text: None,
                booking_url: Some("https://n4564.yclients.com/".into()),
                offer: None,
                level: None,
                master: None,
            },
            decided_at_ms: NOON,
        }],
    )
    .await
    .unwrap();
    World {
        _dir: dir,
        sql,
        clock,
        engine,
        partner,
        client,
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

    fn reminders(&self) -> ReminderWorker {
        let store: Arc<dyn Store> = self.sql.clone();
        ReminderWorker::new(
            store,
            self.sql.clone(),
            self.telegram(),
            self.clock.clone(),
            ReminderSettings {
                min_interval: Duration::from_millis(1),
                ..ReminderSettings::default()
            },
        )
    }

    async fn status(&self) -> String {
        self.sql.sends(self.partner.id, 1).await.unwrap()[0]
            .status
            .clone()
    }

    async fn sent(&self) -> Vec<Value> {
        self.telegram
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path().ends_with("/sendMessage"))
            .filter_map(|r| serde_json::from_slice(&r.body).ok())
            .collect()
    }
}

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": {
        "message_id": 1, "date": 1_795_000_000, "chat": {"id": CHAT, "type": "private"}}}))
}

async fn answer(w: &World, first: ResponseTemplate, times: u64) {
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/sendMessage")))
        .respond_with(first)
        .up_to_n_times(times)
        .with_priority(1)
        .mount(&w.telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/sendMessage")))
        .respond_with(ok())
        .with_priority(2)
        .mount(&w.telegram)
        .await;
}

#[tokio::test]
async fn a_reminder_goes_out_once_with_its_buttons() {
    let w = world().await;
    answer(&w, ok(), 1).await;
    let (_tx, rx) = watch::channel(false);
    let mut worker = w.reminders();
    assert_eq!(worker.round(&rx).await.unwrap(), 1);
    assert_eq!(worker.round(&rx).await.unwrap(), 0, "sent once");
    assert_eq!(w.status().await, "sent");
    let sent = w.sent().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0],
        json!({
            "chat_id": CHAT,
            "text": "Анна, здравствуйте! Мы давно не виделись — 40 дней. На вашем счёте в «Лотос» 350 баллов: ими можно оплатить часть следующего визита.",
            "reply_markup": {"inline_keyboard": [
                [{"text": "📅 Записаться", "url": "https://n4564.yclients.com/"}],
                [{"text": "Не сейчас", "callback_data": format!("eng:later:{}", w.sql.sends(w.partner.id, 1).await.unwrap()[0].id)}],
                [{"text": "🚫 Не присылать предложения", "callback_data": format!("eng:stop:{}", w.partner.id)}]
            ]}
        })
    );
}

#[tokio::test]
async fn a_429_pauses_reminders_only_and_loses_nothing() {
    let w = world().await;
    answer(
        &w,
        ResponseTemplate::new(429).set_body_json(json!({"ok": false, "error_code": 429,
            "description": "Too Many Requests: retry after 2", "parameters": {"retry_after": 2}})),
        1,
    )
    .await;
    let (_tx, rx) = watch::channel(false);
    let mut reminders = w.reminders();
    reminders.round(&rx).await.unwrap();
    assert_eq!(w.status().await, "queued", "kept for later");
    // A point message goes out at once: its worker does not wait for the reminders' pause.
    w.engine
        .manual_accrual(w.partner.id, w.client, Points(50), "подарок", "gift-1")
        .await
        .unwrap();
    let store: Arc<dyn Store> = w.sql.clone();
    let mut outbox = OutboxWorker::new(
        store,
        w.telegram(),
        w.clock.clone(),
        WorkerSettings::default(),
    );
    let started = Instant::now();
    assert_eq!(outbox.round(&rx).await.unwrap(), 1);
    assert!(started.elapsed() < Duration::from_millis(1_500));
    assert_eq!(
        w.sent().await.len(),
        2,
        "the reminder's 429, then the point message"
    );
    // After the pause (real time for the worker, the test's clock for the queue) the
    // reminder goes out.
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.clock.advance_ms(2_000);
    assert_eq!(reminders.round(&rx).await.unwrap(), 1);
    assert_eq!(w.status().await, "sent");
}

#[tokio::test]
async fn telegram_down_is_tried_again_and_a_blocked_chat_ends_it() {
    let w = world().await;
    answer(&w, ResponseTemplate::new(502), 1).await;
    let (_tx, rx) = watch::channel(false);
    let mut reminders = w.reminders();
    reminders.round(&rx).await.unwrap();
    assert_eq!(w.status().await, "queued");
    assert_eq!(
        reminders.round(&rx).await.unwrap(),
        0,
        "not before its retry time"
    );
    w.clock.advance_ms(10_000);
    assert_eq!(reminders.round(&rx).await.unwrap(), 1);
    assert_eq!(w.status().await, "sent");

    let w = world().await;
    answer(
        &w,
        ResponseTemplate::new(403).set_body_json(json!({"ok": false, "error_code": 403,
            "description": "Forbidden: bot was blocked by the user"})),
        1,
    )
    .await;
    let mut reminders = w.reminders();
    reminders.round(&rx).await.unwrap();
    assert_eq!(w.status().await, "dead");
    let chat = w.sql.telegram_chat(CHAT).await.unwrap().unwrap();
    assert!(!chat.active);
}

#[tokio::test]
async fn at_night_it_waits_for_the_morning() {
    let w = world().await;
    answer(&w, ok(), 1).await;
    // The scan queued it at noon; the worker comes to it at 22:30 Moscow time.
    w.clock.advance_ms(10 * 3_600_000 + 1_800_000);
    let (_tx, rx) = watch::channel(false);
    let mut reminders = w.reminders();
    reminders.round(&rx).await.unwrap();
    assert!(w.sent().await.is_empty(), "nothing at night");
    assert_eq!(w.status().await, "queued");
    // 09:59 the next day: still waiting; 10:00: sent.
    w.clock.advance_ms(11 * 3_600_000 + 1_800_000 - 60_000);
    assert_eq!(reminders.round(&rx).await.unwrap(), 0);
    w.clock.advance_ms(60_000);
    assert_eq!(reminders.round(&rx).await.unwrap(), 1);
    assert_eq!(w.status().await, "sent");
    assert_eq!(w.sent().await.len(), 1);
}

#[tokio::test]
async fn stop_offers_before_it_goes_cancels_it() {
    let w = world().await;
    answer(&w, ok(), 1).await;
    w.sql
        .set_consent(
            w.partner.id,
            w.client,
            ConsentKind::Marketing,
            false,
            "telegram:777",
            "Не присылать предложения",
            NOON,
        )
        .await
        .unwrap();
    let (_tx, rx) = watch::channel(false);
    assert_eq!(w.reminders().round(&rx).await.unwrap(), 0);
    assert_eq!(w.status().await, "cancelled");
    assert!(w.sent().await.is_empty());
}

/// The personal-data notice is recorded only once the message showing it went out: with
/// Telegram down at linking, nothing is on record; linked again with Telegram up, it is.
#[tokio::test]
async fn the_notice_is_recorded_only_when_it_was_shown() {
    let w = world().await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/sendMessage")))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&w.telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/sendMessage")))
        .respond_with(ok())
        .with_priority(2)
        .mount(&w.telegram)
        .await;
    let bot = loyalty_telegram::ClientBot::new(w.engine.clone(), w.telegram())
        .with_reminders(w.sql.clone());
    let contact = |id: u32| -> frankenstein::updates::Update {
        serde_json::from_value(json!({"update_id": id, "message": {
            "message_id": id, "date": 1_767_225_600,
            "chat": {"id": CHAT, "type": "private", "first_name": "Анна"},
            "from": {"id": CHAT, "is_bot": false, "first_name": "Анна", "language_code": "ru"},
            "contact": {"phone_number": "+79161234567", "first_name": "Анна", "user_id": CHAT}}}))
        .unwrap()
    };
    let notices = async || {
        w.sql
            .consent_log(w.partner.id, w.client)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "personal_data")
            .count()
    };
    bot.handle_update(contact(1)).await;
    assert_eq!(notices().await, 0, "not shown, not recorded");
    bot.handle_update(contact(2)).await;
    assert_eq!(notices().await, 1);
}

/// "Stop offers" has a way back: `/offers` says they are off and asks again; "Yes" records the
/// question's exact text as a new grant, after the withdrawal.
#[tokio::test]
async fn offers_stopped_can_be_turned_back_on() {
    let w = world().await;
    answer(&w, ok(), 1).await;
    let bot = loyalty_telegram::ClientBot::new(w.engine.clone(), w.telegram())
        .with_reminders(w.sql.clone());
    let update = |id: u32, body: Value| -> frankenstein::updates::Update {
        let mut u = json!({"update_id": id});
        u.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        serde_json::from_value(u).unwrap()
    };
    let from = json!({"id": CHAT, "is_bot": false, "first_name": "Анна", "language_code": "ru"});
    let tap = |id: u32, data: String| {
        update(
            id,
            json!({"callback_query": {"id": format!("cb{id}"), "chat_instance": "ci", "data": data,
                "from": from,
                "message": {"message_id": 9, "date": 1_767_225_600,
                            "chat": {"id": CHAT, "type": "private"}}}}),
        )
    };
    let command = |id: u32| {
        update(
            id,
            json!({"message": {"message_id": id, "date": 1_767_225_600,
                "chat": {"id": CHAT, "type": "private"}, "from": from, "text": "/offers"}}),
        )
    };
    bot.handle_update(tap(1, format!("eng:stop:{}", w.partner.id)))
        .await;
    bot.handle_update(command(2)).await;
    let sent = w.sent().await;
    let asked = sent.last().unwrap();
    assert_eq!(
        asked["text"],
        json!(
            "Предложения от «Лотос» сейчас выключены.\n\nСалон «Лотос» может присылать вам напоминания о визитах и персональные предложения — не чаще раза в неделю, днём. Согласны? Отказаться можно в любой момент кнопкой «Не присылать предложения»."
        )
    );
    assert_eq!(
        asked["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
        json!(format!("eng:yes:{}", w.partner.id))
    );
    bot.handle_update(tap(3, format!("eng:yes:{}", w.partner.id)))
        .await;
    let log = w.sql.consent_log(w.partner.id, w.client).await.unwrap();
    let marketing: Vec<bool> = log
        .iter()
        .filter(|e| e.kind == "marketing")
        .map(|e| e.granted)
        .collect();
    assert_eq!(marketing, vec![true, false, true]);
    assert!(
        log.last()
            .unwrap()
            .text
            .starts_with("Салон «Лотос» может присылать")
    );
    bot.handle_update(command(4)).await;
    assert!(
        w.sent().await.last().unwrap()["text"]
            .as_str()
            .unwrap()
            .starts_with("Предложения от «Лотос» сейчас включены.")
    );
}
