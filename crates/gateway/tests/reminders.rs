//! Reminders end to end (issue 13): a salon of 200 clients with known rhythms imported from
//! wiremock as YCLIENTS; seven of them link Telegram (wiremock as Telegram) and answer the
//! opt-in; the real binary's `serve` scans by itself every few seconds — no `engage run` — and
//! sends exactly the due clients who opted in and are not held out their reminder, with its
//! text and buttons; "Stop offers" stops the next scan's message; a client who declined, or is
//! not due, gets nothing. A time zone the tz database does not know is refused. Clients without
//! Telegram who gave an SMS opt-in are invited, then reminded, by SMS through YCLIENTS.

mod common;

use std::time::{Duration, Instant};

use common::PgSchema;
use common::binary::{Env, TOKEN, free_port};
use loyalty_core::{ClientId, PartnerId, Phone};
use loyalty_engage::EngageStore;
use loyalty_engage::uplift::in_control;
use loyalty_gateway::sample::{Record, record_webhook};
use loyalty_store::SqlStore;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const CLIENTS: u64 = 200;
const VISITS: u64 = 5;
const DAY_S: i64 = 86_400;

fn phone(c: u64) -> String {
    format!("7916900{c:04}")
}

/// Client `c` comes every `21 + 7·(c mod 6)` days; an even client's last visit was two of her
/// gaps ago (due again), an odd one's a third of a gap ago (not due).
fn gap_days(c: u64) -> i64 {
    21 + 7 * (c % 6) as i64
}

fn visit_s(c: u64, k: u64, now_s: i64) -> i64 {
    let g = gap_days(c) * DAY_S;
    let last = if c.is_multiple_of(2) { 2 * g } else { g / 3 };
    now_s - last - k as i64 * g
}

fn record(r: u64, now_s: i64) -> Value {
    let (c, k) = (r / VISITS, r % VISITS);
    record_at(90_000 + r, c, visit_s(c, k, now_s), "2000")
}

/// Record `id` of client `c` (YCLIENTS id 800 + c) at `at_s`, come and paid `cost`.
fn record_at(id: u64, c: u64, at_s: i64, cost: &str) -> Value {
    let mut body = record_webhook(&Record {
        company_id: "4564",
        record_id: id,
        client_id: 800 + c,
        client_name: "Клиентка",
        phone: &phone(c),
        cost,
        attendance: 1,
        deleted: false,
        changed_at_s: 60,
    });
    let at = chrono::DateTime::from_timestamp(at_s, 0).unwrap();
    body["data"]["datetime"] = json!(at.format("%Y-%m-%dT%H:%M:%S+00:00").to_string());
    body["data"]["date"] = json!(at.format("%Y-%m-%d %H:%M:%S").to_string());
    body
}

/// A salon's client cards and records (their `data`), paged as the import asks.
struct Yclients {
    cards: Vec<Value>,
    records: Vec<Value>,
}

impl Respond for Yclients {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if request.url.path().ends_with("/clients/search") {
            let asked: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            let page = asked["page"].as_u64().unwrap_or(1);
            let size = asked["page_size"].as_u64().unwrap_or(200);
            let cards: Vec<&Value> = self
                .cards
                .iter()
                .skip(((page - 1) * size) as usize)
                .take(size as usize)
                .collect();
            return ResponseTemplate::new(200).set_body_json(
                json!({"success": true, "data": cards, "meta": {"total_count": self.cards.len()}}),
            );
        }
        let query = |k: &str| {
            request
                .url
                .query_pairs()
                .find(|(key, _)| key == k)
                .and_then(|(_, v)| v.parse::<u64>().ok())
        };
        let (page, count) = (query("page").unwrap_or(1), query("count").unwrap_or(200));
        let records: Vec<&Value> = self
            .records
            .iter()
            .skip(((page - 1) * count) as usize)
            .take(count as usize)
            .collect();
        ResponseTemplate::new(200).set_body_json(
            json!({"success": true, "data": records, "meta": {"total_count": self.records.len()}}),
        )
    }
}

fn card(c: u64) -> Value {
    json!({"id": 800 + c, "name": format!("Клиентка {c}"), "phone": phone(c)})
}

/// YCLIENTS with the salon's 200 client cards and their records.
async fn salon_on_yclients(now_s: i64) -> MockServer {
    salon_of(
        (0..CLIENTS).map(card).collect(),
        (0..CLIENTS * VISITS)
            .map(|r| record(r, now_s)["data"].clone())
            .collect(),
    )
    .await
}

async fn salon_of(cards: Vec<Value>, records: Vec<Value>) -> MockServer {
    let yclients = MockServer::start().await;
    let salon = std::sync::Arc::new(Yclients { cards, records });
    Mock::given(method("POST"))
        .and(path("/api/v1/company/4564/clients/search"))
        .respond_with(Shared(salon.clone()))
        .mount(&yclients)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/records/4564"))
        .respond_with(Shared(salon))
        .mount(&yclients)
        .await;
    yclients
}

struct Shared(std::sync::Arc<Yclients>);

impl Respond for Shared {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.respond(request)
    }
}

fn chat(c: u64) -> i64 {
    5_000 + c as i64
}

fn contact(update: u64, c: u64) -> Value {
    json!({"update_id": update, "message": {
        "message_id": 1, "date": 1_795_000_000,
        "chat": {"id": chat(c), "type": "private", "first_name": "Клиентка"},
        "from": {"id": chat(c), "is_bot": false, "first_name": "Клиентка", "language_code": "ru"},
        "contact": {"phone_number": format!("+{}", phone(c)), "first_name": "Клиентка",
                    "user_id": chat(c)}}})
}

fn button(update: u64, c: u64, data: &str) -> Value {
    json!({"update_id": update, "callback_query": {
        "id": format!("cb{update}"), "chat_instance": "ci", "data": data,
        "from": {"id": chat(c), "is_bot": false, "first_name": "Клиентка", "language_code": "ru"},
        "message": {"message_id": 9, "date": 1_795_000_000,
                    "chat": {"id": chat(c), "type": "private"}}}})
}

async fn updates_once(telegram: &MockServer, updates: Vec<Value>, priority: u8) {
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/getUpdates")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": updates})),
        )
        .up_to_n_times(1)
        .with_priority(priority)
        .mount(telegram)
        .await;
}

/// Every sendMessage body to `chat`, in order.
async fn bodies_to(telegram: &MockServer, c: u64) -> Vec<Value> {
    telegram
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path().ends_with("/sendMessage"))
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|b| b["chat_id"] == json!(chat(c)))
        .collect()
}

fn is_reminder(b: &Value) -> bool {
    b["reply_markup"]["inline_keyboard"]
        .to_string()
        .contains("eng:later:")
}

async fn wait_until<F: AsyncFn() -> bool>(what: &str, secs: u64, f: F) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reminds_by_itself_whom_it_should_and_stops_when_asked() {
    let now_s = chrono::Utc::now().timestamp();
    let yclients = salon_on_yclients(now_s).await;
    let telegram = MockServer::start().await;
    let Imported {
        env,
        listen,
        schema,
        p,
        ..
    } = import_salon(&yclients, &telegram, "5", (CLIENTS * VISITS) as usize).await;

    // Reminders: the personal rhythm first, then inactivity; open all day so the test does not
    // depend on the hour; two messages a week at most.
    let mut program = env.cli(&["program", "show", "--partner", &p.to_string()])["program"].clone();
    program["engage"] = json!({
        "time_zone": "Atlantis/Capital",
        "send_window": {"from_hour": 0, "to_hour": 24},
        "caps": {"per_7_days": 2, "per_30_days": 4},
        "holdout_percent": 10,
        "booking_url": "https://n4564.yclients.com/",
        "triggers": [{"kind": "due"}, {"kind": "inactive", "days": 20, "min_balance": 0}]
    });
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), program.to_string()).unwrap();
    let refused = env
        .command(false)
        .args(["program", "set", "--partner", &p.to_string(), "--file"])
        .arg(file.path())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("\"Atlantis/Capital\" is not a time zone the tz database knows"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    program["engage"]["time_zone"] = json!("Asia/Yekaterinburg");
    std::fs::write(file.path(), program.to_string()).unwrap();
    env.cli(&[
        "program",
        "set",
        "--partner",
        &p.to_string(),
        "--file",
        file.path().to_str().unwrap(),
    ]);

    // Who is who: seven chats, six of them due; the control group as the salon's salt draws it.
    let store = SqlStore::connect(&schema.url).await.unwrap();
    let salt = store.engage_salt(PartnerId(p)).await.unwrap();
    let mut id_of = std::collections::HashMap::new();
    let mut name_of = std::collections::HashMap::new();
    for c in [0u64, 1, 2, 4, 6, 8, 10] {
        let client = loyalty_core::ClientStore::client_by_phone(
            &store,
            PartnerId(p),
            &Phone::parse_international(&format!("+{}", phone(c))).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
        id_of.insert(c, client.id);
        name_of.insert(c, client.name.clone().unwrap_or_default());
    }
    let held = |c: u64| in_control(salt, id_of[&c], 10);
    let declined = 10u64;
    let due_opted: Vec<u64> = [0u64, 2, 4, 6, 8]
        .into_iter()
        .filter(|c| !held(*c))
        .collect();
    assert!(
        due_opted.len() >= 2,
        "the draw left too few to test: {salt}"
    );
    let (stopper, other) = (due_opted[0], due_opted[1]);

    // Telegram: the seven share their contacts, then answer the opt-in.
    let mut contacts = Vec::new();
    let mut answers = Vec::new();
    for (i, c) in [0u64, 1, 2, 4, 6, 8, 10].into_iter().enumerate() {
        contacts.push(contact(i as u64 + 1, c));
        let yes = if c == declined { "no" } else { "yes" };
        answers.push(button(100 + i as u64, c, &format!("eng:{yes}:{p}")));
    }
    updates_once(&telegram, contacts, 1).await;
    updates_once(&telegram, answers, 2).await;
    mount_quiet_bot(&telegram).await;

    let running = env.serve(true, &listen).await;
    // The opt-in question came after linking, with the 152-FZ notice.
    wait_until("the opt-in question", 20, async || {
        bodies_to(&telegram, 0).await.iter().any(|b| {
            b["text"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Салон «Лотос» может присылать вам напоминания")
        })
    })
    .await;
    let linked = bodies_to(&telegram, 0).await;
    assert!(
        linked[0]["text"].as_str().unwrap().contains(
            "Привязывая номер, вы соглашаетесь на обработку ваших персональных данных (телефон, имя, история визитов) салоном «Лотос» для программы лояльности."
        ),
        "{linked:?}"
    );

    // The first reminder of everyone due who opted in: the rhythm's, with its buttons.
    for &c in &due_opted {
        wait_until("a due reminder", 30, async || {
            bodies_to(&telegram, c).await.iter().any(is_reminder)
        })
        .await;
    }
    let first = bodies_to(&telegram, stopper).await;
    let reminder = first.iter().find(|b| is_reminder(b)).unwrap();
    assert_eq!(
        reminder["text"],
        json!(format!(
            "{}, здравствуйте! Кажется, пора снова к нам: обычно вы приходите в «Лотос» примерно в это время. Записаться можно по кнопке ниже.",
            name_of[&stopper]
        ))
    );
    let keyboard = &reminder["reply_markup"]["inline_keyboard"];
    assert_eq!(keyboard[0][0]["text"], json!("📅 Записаться"));
    assert_eq!(keyboard[0][0]["url"], json!("https://n4564.yclients.com/"));
    assert_eq!(keyboard[1][0]["text"], json!("Не сейчас"));
    assert!(
        keyboard[1][0]["callback_data"]
            .as_str()
            .unwrap()
            .starts_with("eng:later:")
    );
    assert_eq!(keyboard[2][0]["text"], json!("🚫 Не присылать предложения"));
    assert_eq!(
        keyboard[2][0]["callback_data"],
        json!(format!("eng:stop:{p}"))
    );

    // One client taps "Stop offers" before the next scan.
    updates_once(
        &telegram,
        vec![button(500, stopper, &format!("eng:stop:{p}"))],
        1,
    )
    .await;
    wait_until("the stop to be confirmed", 10, async || {
        bodies_to(&telegram, stopper).await.iter().any(|b| {
            b["text"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Готово: предложения")
        })
    })
    .await;
    // The next scan brings the others their second reminder (inactivity) ...
    wait_until("the second reminder", 30, async || {
        bodies_to(&telegram, other)
            .await
            .iter()
            .filter(|b| is_reminder(b))
            .count()
            == 2
    })
    .await;
    let second = bodies_to(&telegram, other).await;
    let inactive = second.iter().filter(|b| is_reminder(b)).nth(1).unwrap();
    assert!(
        inactive["text"]
            .as_str()
            .unwrap()
            .contains("Мы давно не виделись"),
        "{inactive}"
    );
    // ... and after one more scan interval, still nothing more to the one who stopped.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stopped = bodies_to(&telegram, stopper).await;
    assert_eq!(
        stopped.iter().filter(|b| is_reminder(b)).count(),
        1,
        "{stopped:?}"
    );

    // Nobody else got a reminder: not the client who declined, not the one who is not due,
    // not those held out (recorded as control instead), not the 193 without Telegram.
    for c in [1u64, declined] {
        assert!(
            !bodies_to(&telegram, c).await.iter().any(is_reminder),
            "client {c}"
        );
    }
    for c in [0u64, 2, 4, 6, 8].into_iter().filter(|c| held(*c)) {
        assert!(
            !bodies_to(&telegram, c).await.iter().any(is_reminder),
            "held out {c}"
        );
    }
    let all_reminders = telegram
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("/sendMessage"))
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(is_reminder)
        .count();
    assert_eq!(all_reminders, 2 * due_opted.len() - 1);
    let listed = env.cli(&[
        "engage",
        "list",
        "--partner",
        &p.to_string(),
        "--limit",
        "500",
    ]);
    let rows = listed["reminders"].as_array().unwrap();
    let control: Vec<i64> = rows
        .iter()
        .filter(|r| r["status"] == json!("control"))
        .map(|r| r["client_id"].as_i64().unwrap())
        .collect();
    for c in [0u64, 2, 4, 6, 8].into_iter().filter(|c| held(*c)) {
        assert!(
            control.contains(&id_of[&c].0),
            "held out {c} recorded as control"
        );
    }
    assert!(
        control.iter().all(|id| in_control(salt, ClientId(*id), 10)),
        "only the drawn are control"
    );
    let status = env.cli(&["engage", "status", "--partner", &p.to_string()]);
    assert_eq!(status["report"]["clients"], json!(CLIENTS));
    assert_eq!(status["report"]["reachable"], json!(7));
    assert!(status["report"]["k"].as_f64().unwrap() > 10.0, "{status}");
    drop(running);
    store.close().await;
    schema.drop().await;
}

/// The SMS the CRM was asked to send, in order: (client ids, text).
async fn sms_asked(yclients: &MockServer) -> Vec<(Value, String)> {
    yclients
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/api/v1/sms/clients/by_id/4564")
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .map(|b| {
            let text = b["text"].as_str().unwrap_or_default().to_owned();
            (b["client_ids"].clone(), text)
        })
        .collect()
}

/// Clients without Telegram, by SMS through YCLIENTS: the one who signed an SMS opt-in at the
/// desk is invited to the bot, then reminded, by `serve` alone; the CRM down once and
/// rate-limiting once loses nothing and sends nothing twice; one without an opt-in, and one
/// who withdrew hers, get nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reaches_clients_without_telegram_by_sms() {
    let now_s = chrono::Utc::now().timestamp();
    let yclients = salon_on_yclients(now_s).await;
    // The price list files the records' service (id 1) under category 4: rhythms are per
    // category although YCLIENTS records name no category.
    Mock::given(method("GET"))
        .and(path("/api/v1/company/4564/services"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "success": true,
            "data": [{"id": 1, "title": "Окрашивание", "category_id": 4, "price_min": 3000,
                      "price_max": 5000, "active": 1}],
            "meta": {"total_count": 1}
        })))
        .mount(&yclients)
        .await;
    let sms = || Mock::given(method("POST")).and(path("/api/v1/sms/clients/by_id/4564"));
    sms()
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&yclients)
        .await;
    sms()
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&yclients)
        .await;
    sms()
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"success": true, "meta": {"message": "Accepted"}})),
        )
        .with_priority(3)
        .mount(&yclients)
        .await;
    let telegram = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/getMe")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result":
            {"id": 42, "is_bot": true, "first_name": "Лотос", "username": "lotos_bot"}})),
        )
        .mount(&telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/getUpdates")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true, "result": []}))
                .set_delay(Duration::from_millis(300)),
        )
        .mount(&telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/deleteWebhook")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": true})))
        .mount(&telegram)
        .await;
    let Imported {
        env,
        listen,
        schema,
        p,
        ..
    } = import_salon(&yclients, &telegram, "3", (CLIENTS * VISITS) as usize).await;
    // The churn model on this salon's history: every client keeps a fixed rhythm and nobody
    // has left, which BG/NBD cannot describe (its drop-out runs to zero, its rates to one
    // value): the fit is refused with why, never used.
    let refused = env
        .command(false)
        .args(["analytics", "fit", "--partner", &p.to_string()])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("the BG/NBD fit is degenerate"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // Which method spots who stays away here, judged on the last 90 days.
    let judged = env.cli(&["analytics", "backtest", "--partner", &p.to_string()]);
    assert_eq!(judged["horizon_days"], json!(90), "{judged}");
    assert!(judged["clients"].as_u64().unwrap() > 100, "{judged}");
    for method in [
        "fixed_30_days",
        "per_service_interval",
        "personal_cadence",
        "bgnbd",
    ] {
        let m = &judged["methods"][method];
        assert!(
            m["precision"].is_f64() || m["error"].is_string(),
            "{judged}"
        );
    }
    assert!(
        [
            "fixed_30_days",
            "per_service_interval",
            "personal_cadence",
            "bgnbd"
        ]
        .contains(&judged["winner"].as_str().unwrap()),
        "{judged}"
    );
    // So the `at_risk` trigger's model is off here, and says why.
    let model = env.cli(&["analytics", "model", "--partner", &p.to_string()]);
    assert_eq!(model["built_now"], json!(true), "{model}");
    assert_eq!(model["on"], json!(false), "{model}");
    assert!(
        model["off"]
            .as_str()
            .unwrap()
            .starts_with("the rules predict better here"),
        "{model}"
    );
    assert_eq!(model["backtest"].as_array().unwrap().len(), 4, "{model}");
    set_engage(
        &env,
        p,
        json!({
            "time_zone": "Europe/Moscow",
            "send_window": {"from_hour": 0, "to_hour": 24},
            "caps": {"per_7_days": 2, "per_30_days": 4},
            "holdout_percent": 0,
            "booking_url": "https://n4564.yclients.com/",
            "triggers": [{"kind": "due"}],
            "sms": {"invite": true, "reminders": true}
        }),
    );
    // All three are due; client 0 signed an SMS opt-in at the desk, client 4 too but withdrew
    // it, client 2 never did.
    let signed = "Согласна получать SMS салона «Лотос» о визитах и предложениях";
    let consent = |c: u64, args: &[&str]| {
        let (partner, phone) = (p.to_string(), format!("+{}", phone(c)));
        let mut all = vec![
            "engage",
            "consent",
            "--partner",
            &partner,
            "--phone",
            &phone,
        ];
        all.extend_from_slice(args);
        env.cli(&all)
    };
    let log = consent(0, &["--sms-grant", signed]);
    assert_eq!(log["consent"][0]["kind"], json!("marketing_sms"));
    assert_eq!(log["consent"][0]["text"], json!(signed));
    consent(4, &["--sms-grant", signed]);
    let log = consent(4, &["--sms-withdraw"]);
    assert_eq!(log["consent"][1]["granted"], json!(false));

    let running = env.serve(true, &listen).await;
    let invite = format!(
        "Клиентка, здравствуйте! «Лотос» начисляет баллы за визиты. Баланс, подарки и напоминания — в нашем Telegram-боте: https://t.me/lotos_bot?start=s{p} Отказаться от SMS можно у администратора."
    );
    // The invitation, then the reminder, each sent once: the CRM down for one request and
    // rate-limiting the next only puts them off.
    let store = SqlStore::connect(&schema.url).await.unwrap();
    wait_until(
        "the invitation and the reminder sent by SMS",
        60,
        async || {
            let rows = store.sends(PartnerId(p), 10).await.unwrap();
            rows.len() == 2 && rows.iter().all(|r| r.status == "sent")
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let asked = sms_asked(&yclients).await;
    let reminder = "Клиентка, здравствуйте! Кажется, пора снова к нам: обычно вы приходите в «Лотос» примерно в это время. Записаться можно по кнопке ниже. Запись: https://n4564.yclients.com/ Отказаться от SMS можно у администратора.";
    // Four requests: one 503, one 429, one 201 for each message (after a 201 a message is
    // marked sent and never asked again).
    assert_eq!(asked.len(), 4, "{asked:?}");
    assert!(
        asked.iter().all(|(ids, _)| ids == &json!([800])),
        "{asked:?}"
    );
    assert!(
        asked.iter().all(|(_, t)| t == &invite || t == reminder),
        "{asked:?}"
    );
    assert!(asked.iter().any(|(_, t)| t == &invite));
    assert!(asked.iter().any(|(_, t)| t == reminder));
    let rows = store.sends(PartnerId(p), 10).await.unwrap();
    let mut triggers: Vec<&str> = rows.iter().map(|r| r.trigger.as_str()).collect();
    triggers.sort_unstable();
    assert_eq!(triggers, ["due", "invite"]);
    assert!(rows.iter().all(|r| r.channel == "sms"));
    let status = env.cli(&["engage", "status", "--partner", &p.to_string()]);
    assert_eq!(status["report"]["sms_opted_in"], json!(1), "{status}");
    let lines = status["report"]["lines"].as_array().unwrap();
    assert!(
        lines.iter().any(|l| l["trigger"] == json!("due")
            && l["why"].as_str().unwrap_or_default().contains("category 4")),
        "{status}"
    );
    assert_eq!(status["report"]["reachable"], json!(0));
    drop(running);
    store.close().await;
    schema.drop().await;
}

/// Clients `cs` share their contacts with the bot, then say yes to the salon's reminders.
async fn link_and_opt_in(telegram: &MockServer, p: i64, cs: &[u64]) {
    let n = cs.len() as u64;
    let contacts = cs
        .iter()
        .enumerate()
        .map(|(i, c)| contact(i as u64 + 1, *c))
        .collect();
    let answers = cs
        .iter()
        .enumerate()
        .map(|(i, c)| button(n + i as u64 + 1, *c, &format!("eng:yes:{p}")))
        .collect();
    updates_once(telegram, contacts, 1).await;
    updates_once(telegram, answers, 2).await;
}

/// Telegram answering everything the bot asks, with no updates of its own.
async fn mount_quiet_bot(telegram: &MockServer) {
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/getUpdates")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true, "result": []}))
                .set_delay(Duration::from_millis(300)),
        )
        .with_priority(5)
        .mount(telegram)
        .await;
    for m in ["sendMessage", "answerCallbackQuery", "deleteWebhook"] {
        Mock::given(method("POST"))
            .and(path(format!("/bot{TOKEN}/{m}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result":
                if m == "sendMessage" {
                    json!({"message_id": 7, "date": 1_795_000_000, "chat": {"id": 1, "type": "private"}})
                } else { json!(true) }})))
            .mount(telegram)
            .await;
    }
}

/// Sets the salon's `engage` section through `program set`.
fn set_engage(env: &Env, p: i64, engage: Value) {
    let mut program = env.cli(&["program", "show", "--partner", &p.to_string()])["program"].clone();
    program["engage"] = engage;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), program.to_string()).unwrap();
    env.cli(&[
        "program",
        "set",
        "--partner",
        &p.to_string(),
        "--file",
        file.path().to_str().unwrap(),
    ]);
}

/// A fresh schema, the salon on `yclients` (with its API tokens) imported by the real binary,
/// its `records` all there; `serve` (once started) scans every `engage_every_s` seconds.
struct Imported {
    env: Env,
    listen: String,
    schema: PgSchema,
    p: i64,
    conn: Value,
}

async fn import_salon(
    yclients: &MockServer,
    telegram: &MockServer,
    engage_every_s: &str,
    records: usize,
) -> Imported {
    let schema = PgSchema::new().await;
    let listen = free_port();
    let env = Env {
        vars: vec![
            ("DATABASE_URL", schema.url.clone()),
            ("LOYALTY_LISTEN", listen.clone()),
            ("YCLIENTS_API_URL", format!("{}/api/v1", yclients.uri())),
            ("TELEGRAM_BOT_TOKEN", TOKEN.to_owned()),
            ("TELEGRAM_API_URL", telegram.uri()),
            ("LOYALTY_ENGAGE_INTERVAL_S", engage_every_s.to_owned()),
            ("LOYALTY_POLL_INTERVAL_S", "0".to_owned()),
        ],
    };
    env.cli(&["migrate"]);
    let (partner, conn) = env.lotos_on_yclients("p", "u");
    let p = partner["id"].as_i64().unwrap();
    let done = env.cli(&["import", "crm", "--connection", &conn["id"].to_string()]);
    assert_eq!(done["records"], json!(records), "{done}");
    Imported {
        env,
        listen,
        schema,
        p,
        conn,
    }
}

/// The salon of `cards` and `records` on wiremock YCLIENTS and a quiet Telegram.
async fn quiet_salon(cards: Vec<Value>, records: Vec<Value>) -> (MockServer, MockServer) {
    let yclients = salon_of(cards, records).await;
    let telegram = MockServer::start().await;
    mount_quiet_bot(&telegram).await;
    (yclients, telegram)
}

/// The `at_risk` trigger at a salon where BG/NBD predicts (issue 14): a CDNOW-like history of
/// 1,000 clients imported from YCLIENTS; `serve` builds the salon's model by itself (its backtest
/// picks BG/NBD), `analytics model` shows it and the most valuable clients; of two valuable
/// clients who opt in, the one the model thinks gone is asked back, the one still coming is
/// not. (At the regular salon of the SMS test the same model is off, with why.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_asks_back_the_valuable_clients_the_model_says_it_is_losing() {
    const N: u64 = 1_000;
    let now_s = chrono::Utc::now().timestamp();
    let now_ms = now_s * 1000;
    let day = 86_400_000;
    let sim = loyalty_engage::sim::generate_bgnbd(
        7,
        N as usize,
        now_ms - 78 * 7 * day,
        now_ms - day,
        (0.243, 30.9, 0.793, 2.426),
    );
    let mut records = Vec::new();
    for (c, client) in sim.iter().enumerate() {
        // Three price levels, and a visit's bill 80–120 % of its client's level.
        let level = [1_500, 3_000, 6_000][c % 3];
        for (k, v) in client.visits.iter().enumerate() {
            let id = 300_000 + records.len() as u64;
            let cost = (level * (8 + (k * 7 + c) % 5) / 10).to_string();
            records.push(record_at(id, c as u64, v.at_ms / 1000, &cost)["data"].clone());
        }
    }
    let total = records.len();
    let (yclients, telegram) = quiet_salon((0..N).map(card).collect(), records).await;
    let Imported {
        env,
        listen,
        schema,
        p,
        ..
    } = import_salon(&yclients, &telegram, "3", total).await;
    set_engage(
        &env,
        p,
        json!({
            "time_zone": "Europe/Moscow",
            "send_window": {"from_hour": 0, "to_hour": 24},
            "holdout_percent": 0,
            "triggers": [{"kind": "at_risk", "below_percent": 30, "top_percent": 20}]
        }),
    );

    // serve's first scan builds the model; the CLI then reads it, not building it again.
    let running = env.serve(true, &listen).await;
    let store = SqlStore::connect(&schema.url).await.unwrap();
    wait_until("the salon's model", 60, async || {
        store.salon_model(PartnerId(p)).await.unwrap().is_some()
    })
    .await;
    let model = env.cli(&[
        "analytics",
        "model",
        "--partner",
        &p.to_string(),
        "--top",
        "100",
    ]);
    assert_eq!(model["built_now"], json!(false), "{model}");
    assert_eq!(model["on"], json!(true), "{model}");
    assert_eq!(model["winner"], json!("bgnbd"), "{model}");
    assert!(model["gamma_gamma"]["p"].as_f64().unwrap() > 0.0, "{model}");
    let top = model["top"].as_array().unwrap();
    assert_eq!(top.len(), 100);
    assert!(
        top.windows(2)
            .all(|w| w[0]["at_stake_12m_minor"].as_i64() >= w[1]["at_stake_12m_minor"].as_i64())
    );
    // Among the top tenth by what they would bring: one the model thinks gone, one it thinks
    // still coming.
    let pick = |gone: bool| {
        let row = top
            .iter()
            .find(|r| {
                let alive = r["p_alive"].as_f64().unwrap();
                if gone { alive < 0.2 } else { alive > 0.9 }
            })
            .unwrap_or_else(|| panic!("no client with gone = {gone}: {model}"));
        let phone = row["phone"]
            .as_str()
            .unwrap()
            .trim_start_matches("+7916900");
        phone.parse::<u64>().unwrap()
    };
    let (gone, staying) = (pick(true), pick(false));
    link_and_opt_in(&telegram, p, &[gone, staying]).await;
    wait_until("the at-risk client's reminder", 60, async || {
        bodies_to(&telegram, gone).await.iter().any(is_reminder)
    })
    .await;
    let sent = bodies_to(&telegram, gone).await;
    let reminder = sent.iter().find(|b| is_reminder(b)).unwrap();
    assert!(
        reminder["text"]
            .as_str()
            .unwrap()
            .contains("Мы давно вас не видели в «Лотос» и очень хотим вернуть"),
        "{reminder}"
    );
    // Two more scans: the client still coming is not asked back, the other not twice.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(
        !bodies_to(&telegram, staying).await.iter().any(is_reminder),
        "{:?}",
        bodies_to(&telegram, staying).await
    );
    let reminders = bodies_to(&telegram, gone)
        .await
        .into_iter()
        .filter(is_reminder)
        .count();
    assert_eq!(reminders, 1);
    let listed = env.cli(&["engage", "list", "--partner", &p.to_string()]);
    let at_risk: Vec<&Value> = listed["reminders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["trigger"] == json!("at_risk"))
        .collect();
    assert!(!at_risk.is_empty(), "{listed}");
    assert!(
        at_risk[0]["why"]
            .as_str()
            .unwrap()
            .contains("that they still come"),
        "{listed}"
    );
    let status = env.cli(&["engage", "status", "--partner", &p.to_string()]);
    assert_eq!(status["model"]["on"], json!(true), "{status}");
    drop(running);
    store.close().await;
    schema.drop().await;
}

/// Personal offers end to end (issue 14): 40 clients who came about 40 days ago to Оксана for
/// colouring; the `inactive` trigger carries a +300 points offer for a visit of 1,000 ₽ or more
/// within 14 days, half the salon held out. `serve` alone sends the offer (her master named,
/// `/offers` lists it with its deadline) to an opted-in client it treats, nothing to one it
/// holds out; her visit's webhook delivered five times posts the 300 points once, with one
/// message; flipped to "did not come" the 300 go back; `analytics offers` shows the variant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_sends_a_personal_offer_that_pays_once_and_is_taken_back() {
    const N: u64 = 40;
    let now_s = chrono::Utc::now().timestamp();
    let records: Vec<Value> = (0..N)
        .map(|c| record_at(500_000 + c, c, now_s - 40 * DAY_S, "2000")["data"].clone())
        .collect();
    let (yclients, telegram) = quiet_salon((0..N).map(card).collect(), records).await;
    let Imported {
        env,
        listen,
        schema,
        p,
        conn,
    } = import_salon(&yclients, &telegram, "3", N as usize).await;
    let hook = conn["webhook_url"].as_str().unwrap().to_owned();
    set_engage(
        &env,
        p,
        json!({
            "time_zone": "Europe/Moscow",
            "send_window": {"from_hour": 0, "to_hour": 24},
            "holdout_percent": 50,
            "booking_url": "https://n4564.yclients.com/",
            "triggers": [{"kind": "inactive", "days": 30, "min_balance": 0,
                          "offer": {"valid_days": 14, "variants": [
                              {"name": "bonus300", "benefit": {"kind": "bonus_points", "points": 300},
                               "min_paid_minor": 100000}]}}]
        }),
    );
    // One client the salt treats and one it holds out, both opted in.
    let store = SqlStore::connect(&schema.url).await.unwrap();
    let salt = store.engage_salt(PartnerId(p)).await.unwrap();
    let id = |c: u64| {
        let store = &store;
        async move {
            loyalty_core::ClientStore::client_by_phone(
                store,
                PartnerId(p),
                &Phone::parse_international(&format!("+{}", phone(c))).unwrap(),
            )
            .await
            .unwrap()
            .unwrap()
            .id
        }
    };
    let mut treated = None;
    let mut held = None;
    for c in 0..N {
        let control = in_control(salt, id(c).await, 50);
        match (control, treated, held) {
            (false, None, _) => treated = Some(c),
            (true, _, None) => held = Some(c),
            _ => {}
        }
    }
    let (treated, held) = (treated.unwrap(), held.unwrap());
    link_and_opt_in(&telegram, p, &[treated, held]).await;
    let running = env.serve(true, &listen).await;
    wait_until("the offer", 60, async || {
        bodies_to(&telegram, treated).await.iter().any(is_reminder)
    })
    .await;
    let sent = bodies_to(&telegram, treated).await;
    let offer = sent.iter().find(|b| is_reminder(b)).unwrap();
    let text = offer["text"].as_str().unwrap();
    assert!(
        text.ends_with(
            "🎁 Персонально для вас: +300 баллов за визит в ближайшие 14 дней (при визите от 1\u{202f}000 ₽). Ваш мастер Оксана ждёт вас."
        ),
        "{text}"
    );
    // /offers lists it, with its deadline in Moscow.
    updates_once(
        &telegram,
        vec![json!({"update_id": 5, "message": {
            "message_id": 5, "date": 1_795_000_000, "text": "/offers",
            "chat": {"id": chat(treated), "type": "private"},
            "from": {"id": chat(treated), "is_bot": false, "first_name": "К", "language_code": "ru"}}})],
        1,
    )
    .await;
    let until = (chrono::Utc::now() + chrono::Duration::days(14))
        .with_timezone(&chrono_tz::Europe::Moscow)
        .format("%d.%m.%Y")
        .to_string();
    wait_until("the /offers answer", 20, async || {
        bodies_to(&telegram, treated).await.iter().any(|b| {
            b["text"].as_str().unwrap_or_default().contains(&format!(
                "🎁 +300 баллов за визит от 1\u{202f}000 ₽ — до {until}"
            ))
        })
    })
    .await;

    // Her visit, an hour from now, 2,000 ₽, delivered five times.
    let http = reqwest::Client::new();
    let visit = |attendance: i32, changed: u32| {
        let mut body = record_webhook(&Record {
            company_id: "4564",
            record_id: 777_001,
            client_id: 800 + treated,
            client_name: "Клиентка",
            phone: &phone(treated),
            cost: "2000",
            attendance,
            deleted: false,
            changed_at_s: changed,
        });
        let at = chrono::Utc::now() + chrono::Duration::hours(1);
        body["data"]["datetime"] = json!(at.format("%Y-%m-%dT%H:%M:%S+00:00").to_string());
        body
    };
    let came = visit(1, 100);
    for _ in 0..5 {
        common::binary::post(&http, &hook, &came).await;
    }
    let is_offer_paid = |b: &Value| {
        b["text"]
            .as_str()
            .unwrap_or_default()
            .starts_with("🎁 +300 баллов в «Лотос» по вашему персональному предложению")
    };
    wait_until("the offer's points", 30, async || {
        bodies_to(&telegram, treated)
            .await
            .iter()
            .any(is_offer_paid)
    })
    .await;
    let offers = env.cli(&["analytics", "offers", "--partner", &p.to_string()]);
    assert_eq!(
        offers["variants"][0]["variant"],
        json!("bonus300"),
        "{offers}"
    );
    assert_eq!(offers["variants"][0]["sent"], json!(1), "{offers}");
    assert_eq!(
        offers["variants"][0]["benefits_posted"],
        json!(1),
        "{offers}"
    );
    assert_eq!(
        offers["variants"][0]["points_posted"],
        json!(300),
        "{offers}"
    );
    // Did not come after all: the 300 go back, told once.
    common::binary::post(&http, &hook, &visit(-1, 200)).await;
    wait_until("the offer taken back", 30, async || {
        bodies_to(&telegram, treated).await.iter().any(|b| {
            b["text"]
                .as_str()
                .unwrap_or_default()
                .starts_with("↩️ −300 баллов в «Лотос»: визит больше не подходит")
        })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let all = bodies_to(&telegram, treated).await;
    assert_eq!(
        all.iter().filter(|b| is_offer_paid(b)).count(),
        1,
        "{all:?}"
    );
    let shown = env.cli(&[
        "client",
        "show",
        "--partner",
        &p.to_string(),
        "--phone",
        &format!("+{}", phone(treated)),
    ]);
    let offer_entries: Vec<&Value> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["reason"]
                .as_str()
                .unwrap_or_default()
                .starts_with("offer ")
        })
        .collect();
    assert_eq!(offer_entries.len(), 2, "{shown}");
    let offers = env.cli(&["analytics", "offers", "--partner", &p.to_string()]);
    assert_eq!(
        offers["variants"][0]["benefits_posted"],
        json!(0),
        "{offers}"
    );
    // The client held out got nothing: no reminder, no offer.
    assert!(
        !bodies_to(&telegram, held).await.iter().any(is_reminder),
        "{:?}",
        bodies_to(&telegram, held).await
    );
    let held_id = id(held).await;
    let listed = env.cli(&["engage", "list", "--partner", &p.to_string()]);
    assert!(
        listed["reminders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["client_id"] == json!(held_id.0) && r["status"] == json!("control")),
        "{listed}"
    );
    assert!(
        store
            .client_offers(PartnerId(p), held_id)
            .await
            .unwrap()
            .is_empty()
    );
    // Bonus points suggest no service and the salon has no at_risk trigger: its scans built no
    // churn model and read no year of records for one.
    assert_eq!(store.salon_model(PartnerId(p)).await.unwrap(), None);
    drop(running);
    store.close().await;
    schema.drop().await;
}
