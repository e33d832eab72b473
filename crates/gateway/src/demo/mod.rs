//! `loyalty-gateway demo`: a day of a small salon, end to end, on a throwaway embedded
//! database. The real gateway serves; a simulated YCLIENTS posts real-shaped webhooks to it
//! over HTTP; a Telegram stand-in (a local HTTP server speaking the Bot API) feeds the bot
//! the clients' messages and prints every message a client would receive.

use loyalty_core::ClientStore;
use loyalty_core::LedgerStore;
use loyalty_core::OutboxStore;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use loyalty_core::{Currency, PartnerId, Phone, Store};
use loyalty_telegram::WorkerSettings;
use serde_json::{Value, json};

use crate::cli::{self, ConnectionAdd, PartnerAdd};
use crate::config::{Config, Overrides};
use crate::sample::{Record, record_webhook};
use crate::{Gateway, StartOptions, start};

mod arnica;
mod paper;
mod partner;
mod reminders;

const TOKEN: &str = "demo-token";
const COMPANY: &str = "4564";

/// A client of the demo salon.
struct Person {
    name: &'static str,
    phone: &'static str,
    chat: i64,
    crm_id: u64,
}

const ANNA: Person = Person {
    name: "Анна",
    phone: "79161110001",
    chat: 1001,
    crm_id: 501,
};
const OLGA: Person = Person {
    name: "Ольга",
    phone: "79161110002",
    chat: 1002,
    crm_id: 502,
};
const MARIA: Person = Person {
    name: "Мария",
    phone: "79161110003",
    chat: 1003,
    crm_id: 503,
};
const IRINA: Person = Person {
    name: "Ирина",
    phone: "79161110004",
    chat: 1004,
    crm_id: 504,
};
const VERA: Person = Person {
    name: "Вера",
    phone: "79161110005",
    chat: 1005,
    crm_id: 505,
};
const PEOPLE: [&Person; 5] = [&ANNA, &OLGA, &MARIA, &IRINA, &VERA];
/// Anna's number as the administrator types it: read in the salon's country (RU), it is the
/// number the CRM and Telegram sent.
const ANNA_AT_DESK: &str = "8 (916) 111-00-01";

/// The Telegram stand-in's state: updates waiting for the bot, and what the bot sent.
#[derive(Default)]
struct Standin {
    updates: Mutex<VecDeque<Value>>,
    sent: Mutex<Vec<(i64, String)>>,
    next_update: Mutex<u32>,
    quiet: bool,
    /// Names of the chats that are not the demo's five people (the generated clients).
    names: Mutex<HashMap<i64, String>>,
}

impl Standin {
    fn push_message(&self, who: &Person, message: Value) {
        self.push_message_from(who.chat, who.name, message);
    }

    fn push_message_from(&self, chat: i64, name: &str, message: Value) {
        let mut id = self.next_update.lock().unwrap_or_else(|p| p.into_inner());
        *id += 1;
        let mut msg = json!({
            "message_id": *id,
            "date": 1_795_000_000,
            "chat": {"id": chat, "type": "private", "first_name": name},
            "from": {"id": chat, "is_bot": false, "first_name": name, "language_code": "ru"},
        });
        if let (Some(m), Some(extra)) = (msg.as_object_mut(), message.as_object()) {
            m.extend(extra.clone());
        }
        self.updates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(json!({"update_id": *id, "message": msg}));
    }

    /// A tap on an inline button under the bot's last message to `chat`.
    fn push_tap(&self, chat: i64, name: &str, data: &str) {
        let mut id = self.next_update.lock().unwrap_or_else(|p| p.into_inner());
        *id += 1;
        self.updates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(json!({"update_id": *id, "callback_query": {
                "id": format!("tap{}", *id), "chat_instance": "demo", "data": data,
                "from": {"id": chat, "is_bot": false, "first_name": name, "language_code": "ru"},
                "message": {"message_id": 1, "date": 1_795_000_000,
                            "chat": {"id": chat, "type": "private"}}}}));
    }

    fn sent_count(&self) -> usize {
        self.sent.lock().map(|s| s.len()).unwrap_or(0)
    }
}

fn chat_name(standin: &Standin, chat: i64) -> String {
    PEOPLE
        .iter()
        .find(|p| p.chat == chat)
        .map(|p| p.name.to_owned())
        .or_else(|| standin.names.lock().ok()?.get(&chat).cloned())
        .unwrap_or_else(|| "?".to_owned())
}

async fn bot_api(
    State(standin): State<Arc<Standin>>,
    Path((_bot, method)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> axum::Json<Value> {
    let params: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match method.as_str() {
        "getUpdates" => {
            for _ in 0..10 {
                let batch: Vec<Value> = standin
                    .updates
                    .lock()
                    .map(|mut q| q.drain(..).collect())
                    .unwrap_or_default();
                if !batch.is_empty() {
                    return axum::Json(json!({"ok": true, "result": batch}));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            axum::Json(json!({"ok": true, "result": []}))
        }
        "sendMessage" => {
            let chat = params["chat_id"].as_i64().unwrap_or_default();
            let text = params["text"].as_str().unwrap_or_default().to_owned();
            if !standin.quiet {
                let indented = text.replace('\n', "\n              ");
                let buttons = params["reply_markup"]["inline_keyboard"]
                    .as_array()
                    .map(|rows| {
                        rows.iter()
                            .flat_map(|r| r.as_array().into_iter().flatten())
                            .filter_map(|b| b["text"].as_str().map(|t| format!("[{t}]")))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .filter(|b| !b.is_empty())
                    .map(|b| format!("\n              {b}"))
                    .unwrap_or_default();
                println!(
                    "      📱 {} ← {indented}{buttons}",
                    chat_name(&standin, chat)
                );
            }
            if let Ok(mut sent) = standin.sent.lock() {
                sent.push((chat, text));
            }
            axum::Json(json!({"ok": true, "result": {
                "message_id": 1, "date": 1_795_000_000,
                "chat": {"id": chat, "type": "private"}, "text": "ok"}}))
        }
        "getMe" => axum::Json(json!({"ok": true, "result": {
            "id": 1, "is_bot": true, "first_name": "Лотос", "username": "LotosBonusBot"}})),
        _ => axum::Json(json!({"ok": true, "result": true})),
    }
}

/// Runs the demo; with `json` prints only the final summary as one JSON object.
pub async fn run(json_out: bool, serve: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let standin = Arc::new(Standin {
        quiet: json_out,
        ..Standin::default()
    });
    let tg_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let tg_addr = tg_listener.local_addr()?;
    let tg_app = Router::new()
        .route("/{bot}/{method}", post(bot_api))
        .with_state(Arc::clone(&standin));
    let tg_server = tokio::spawn(async move { axum::serve(tg_listener, tg_app).await });

    let config = Config::resolve(Overrides {
        data_dir: Some(dir.path().to_owned()),
        listen: Some("127.0.0.1:0".into()),
        telegram_bot_token: Some(TOKEN.into()),
        telegram_api_url: Some(format!("http://{tg_addr}")),
        ..Overrides::default()
    })?;
    let worker = WorkerSettings {
        idle: Duration::from_millis(50),
        ..WorkerSettings::default()
    };
    let gateway = start(
        &config,
        StartOptions {
            worker: Some(worker),
            migrate: true,
            reminders: Some(loyalty_telegram::ReminderSettings {
                idle: Duration::from_millis(50),
                ..loyalty_telegram::ReminderSettings::default()
            }),
            // A newcomer can also sign a salon of their own up and walk through onboarding.
            dashboard: Some(loyalty_web::Settings {
                signup: Some(loyalty_core::audit::Plan::Pro),
                // «Прима»'s receiver runs on this machine.
                webhooks_allow_loopback: true,
                ..loyalty_web::Settings::default()
            }),
            hooks: Some(crate::partner_hooks::HookPolicy {
                allow_loopback: true,
                ..Default::default()
            }),
            hooks_every: Some(Duration::from_millis(100)),
            ..StartOptions::default()
        },
    )
    .await?;
    let mut config = config;
    config.listen = gateway.addr;
    let say = |line: String| {
        if !json_out {
            println!("{line}");
        }
    };

    say("Loyalty Bridge demo: one day at «Лотос», a small salon on YCLIENTS.".into());
    say(format!(
        "Gateway on http://{} with an embedded SQLite database in {}; Telegram is a local stand-in.\n",
        gateway.addr,
        dir.path().display()
    ));

    let partner = cli::partner_add(
        &gateway.store,
        &salon("Лотос", 500),
        &loyalty_core::audit::Actor::system(),
        gateway.engine.now_ms(),
    )
    .await?;
    let partner_id = PartnerId(partner["id"].as_i64().unwrap_or_default());
    let connection = cli::connection_add(
        &gateway.store,
        &config,
        &ConnectionAdd {
            partner: partner_id.0,
            crm: loyalty_core::CrmKind::Yclients,
            company_id: COMPANY.into(),
            partner_token: None,
            user_token: None,
            login: cli::CrmLogin::default(),
            utc_offset_minutes: None,
            country: None,
        },
        gateway.engine.now_ms(),
    )
    .await?;
    let hook = connection["webhook_url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    say("$ loyalty-gateway partner add --name Лотос --cashback-bps 500".into());
    say(format!("  {partner}"));
    say(format!(
        "$ loyalty-gateway connection add --partner {partner_id} --crm yclients --company-id {COMPANY}"
    ));
    say(format!("  webhook URL for YCLIENTS: {hook}"));

    // Levels: the base keeps 5 %; from 5 000 ₽ paid in a year a client is Silver at 7 %. A
    // campaign: 100 points more on a client's second visit.
    let mut program =
        cli::program_show(gateway.store.as_ref(), partner_id.0, false).await?["program"].take();
    program["levels"] = json!({
        "measure": "paid",
        "window_days": 365,
        "grace_days": 90,
        "tiers": [
            {"name": "Base", "threshold": 0, "cashback": 500, "max_redeem_share": 5000},
            {"name": "Silver", "threshold": 500_000, "cashback": 700, "max_redeem_share": 5000},
        ]
    });
    program["referral"] = json!({"referrer_points": 300, "friend_points": 200});
    program["campaigns"] = json!([{
        "name": "Второй визит",
        "reward": {"kind": "nth_visit", "n": 2, "points": 100},
    }]);
    // Reminders: a missed visit, the client's own rhythm, then inactivity; 10 % held out. The
    // send window is open all day only so the demo shows the same at any hour (10–21 by
    // default, in the salon's zone).
    program["engage"] = json!({
        "time_zone": "Europe/Moscow",
        "send_window": {"from_hour": 0, "to_hour": 24},
        "holdout_percent": 10,
        "booking_url": "https://n4564.yclients.com/",
        "triggers": [
            {"kind": "missed", "after_days": 0},
            {"kind": "due", "overdue_percent": 25,
             "offer": {"valid_days": 14, "variants": [
                 {"name": "bonus200", "benefit": {"kind": "bonus_points", "points": 200}}]}},
            {"kind": "inactive", "days": 60, "min_balance": 0}
        ]
    });
    let file = dir.path().join("program.json");
    std::fs::write(&file, serde_json::to_string_pretty(&program)?)?;
    let owner = loyalty_core::audit::Actor::new("owner", "demo");
    let version = cli::program_set(
        gateway.store.as_ref(),
        partner_id.0,
        &file.to_string_lossy(),
        &owner,
    )
    .await?;
    say(format!(
        "$ loyalty-gateway program set --partner {partner_id} --file program.json   # levels: Base 5 %, Silver 7 % from 5 000 ₽; +100 points on the second visit; a friend's first visit: 300 to the client who invited her, 200 to the friend; reminders (a missed visit, the client's own rhythm with a personal offer of +200 points for a visit within 14 days, 60 days away) with a 10 % control group\n  program v{} in force from now\n",
        version["version"]
    ));
    // CRMs time visits to the second: the day's visits come after the change.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;

    let http = reqwest::Client::new();
    let mut journal: HashMap<&str, Vec<String>> = HashMap::new();
    let mut rejected = 0;
    let mut record_count = 0;

    let bot_says = async |time: &str, who: &Person, message: Value, what: &str| {
        say(format!("{time}  {} in Telegram: {what}", who.name));
        let before = standin.sent_count();
        standin.push_message(who, message);
        wait_until(|| standin.sent_count() > before).await;
        drain(gateway.store.as_ref()).await;
    };
    // Sharing a number links the chat: the bot answers, then asks for marketing consent.
    let shares_phone = async |time: &str, who: &Person, what: &str| {
        say(format!("{time}  {} in Telegram: {what}", who.name));
        let before = standin.sent_count();
        standin.push_message(
            who,
            json!({"contact": {"phone_number": who.phone, "first_name": who.name, "user_id": who.chat}}),
        );
        wait_until(|| standin.sent_count() >= before + 2).await;
        drain(gateway.store.as_ref()).await;
    };
    let taps = async |time: &str, who: &Person, data: String, what: &str| {
        say(format!("{time}  {} in Telegram: {what}", who.name));
        let before = standin.sent_count();
        standin.push_tap(who.chat, who.name, &data);
        wait_until(|| standin.sent_count() > before).await;
    };

    bot_says(
        "09:00",
        &ANNA,
        json!({"text": format!("/start s{partner_id}")}),
        "opens the salon's link t.me/…?start=s1",
    )
    .await;
    for p in [&MARIA, &IRINA] {
        bot_says(
            "09:02",
            p,
            json!({"text": format!("/start s{partner_id}")}),
            "opens the salon's link too",
        )
        .await;
    }
    for p in [&ANNA, &MARIA, &IRINA] {
        shares_phone("09:05", p, "shares her phone number").await;
    }
    for p in [&ANNA, &MARIA] {
        taps(
            "09:06",
            p,
            format!("eng:yes:{partner_id}"),
            "taps «Да, присылайте»",
        )
        .await;
    }
    taps(
        "09:06",
        &IRINA,
        format!("eng:no:{partner_id}"),
        "taps «Нет, спасибо»",
    )
    .await;
    say(String::new());

    let steps: Vec<(&str, &Person, u64, &str, i32, &str)> = vec![
        ("10:00", &ANNA, 1001, "4000", 1, "came; colouring, 4 000 ₽"),
        (
            "10:00",
            &ANNA,
            1001,
            "4000",
            1,
            "the same webhook delivered again",
        ),
        (
            "11:30",
            &OLGA,
            1002,
            "2500",
            1,
            "new client, came; haircut, 2 500 ₽ (no Telegram yet)",
        ),
        (
            "12:00",
            &MARIA,
            1003,
            "3000",
            1,
            "a regular, came; manicure, 3 000 ₽",
        ),
        ("13:00", &IRINA, 1004, "1800", 1, "came; brows, 1 800 ₽"),
        (
            "13:20",
            &IRINA,
            1004,
            "1800",
            -1,
            "the administrator corrects it: did not come",
        ),
        (
            "15:00",
            &ANNA,
            1001,
            "4600",
            1,
            "amount edited: 4 600 ₽ (hair mask added)",
        ),
        (
            "18:00",
            &MARIA,
            1005,
            "2000",
            1,
            "second visit today; pedicure, 2 000 ₽",
        ),
    ];
    let mut last: Option<Value> = None;
    for (i, (time, who, record, cost, attendance, what)) in steps.iter().enumerate() {
        // A step that repeats the one before is the CRM delivering it again: the same bytes.
        let repeat = i.checked_sub(1).map(|j| &steps[j]).is_some_and(|p| {
            p.1.phone == who.phone && p.2 == *record && p.3 == *cost && p.4 == *attendance
        });
        let body = match last.take() {
            Some(previous) if repeat => previous,
            _ => record_webhook(&Record {
                company_id: COMPANY,
                record_id: *record,
                client_id: who.crm_id,
                client_name: who.name,
                phone: who.phone,
                cost,
                attendance: *attendance,
                deleted: false,
                changed_at_s: u32::try_from(i).unwrap_or(0) * 600,
            }),
        };
        record_count += 1;
        let answer = post_json(&http, &hook, &body).await?;
        last = Some(body);
        let outcome = answer["events"][0]["outcome"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        let points = answer["events"][0]["points"].as_i64().unwrap_or_default();
        say(format!(
            "{time}  YCLIENTS → record {record} of {}: {what}\n      gateway: {outcome}{}",
            who.name,
            if points != 0 {
                format!(" {points:+} points")
            } else {
                String::new()
            }
        ));
        journal
            .entry(who.name)
            .or_default()
            .push(format!("{time} {outcome} {points:+}"));
        drain(gateway.store.as_ref()).await;
    }

    // A delivery that cannot be read is refused with a 4xx and kept for the operator.
    let broken = http
        .post(&hook)
        .header("content-type", "application/json")
        .body("{\"resource\": \"record\", \"data\": ")
        .send()
        .await?;
    rejected += 1;
    say(format!(
        "18:30  YCLIENTS → a truncated body\n      gateway: HTTP {} {}",
        broken.status().as_u16(),
        broken.text().await.unwrap_or_default()
    ));

    shares_phone(
        "19:00",
        &OLGA,
        "opens the bot after her visit and shares her number (and leaves the question unanswered)",
    )
    .await;
    bot_says(
        "19:05",
        &MARIA,
        json!({"text": "/history"}),
        "asks for her history",
    )
    .await;

    // A referral: Maria invites Vera, who is new to the salon; Vera's first visit pays both.
    bot_says(
        "19:10",
        &MARIA,
        json!({"text": "/invite"}),
        "asks for her link to invite a friend",
    )
    .await;
    let maria = gateway
        .store
        .client_by_phone(partner_id, &Phone::parse_international(MARIA.phone)?)
        .await?
        .map(|c| c.id.0)
        .unwrap_or_default();
    bot_says(
        "19:12",
        &VERA,
        json!({"text": format!("/start r{partner_id}_{maria}")}),
        "opens Мария's link",
    )
    .await;
    shares_phone("19:13", &VERA, "shares her phone number").await;
    let body = record_webhook(&Record {
        company_id: COMPANY,
        record_id: 1006,
        client_id: VERA.crm_id,
        client_name: VERA.name,
        phone: VERA.phone,
        cost: "2000",
        attendance: 1,
        deleted: false,
        changed_at_s: 7_200,
    });
    record_count += 1;
    let answer = post_json(&http, &hook, &body).await?;
    let points = answer["events"][0]["points"].as_i64().unwrap_or_default();
    say(format!(
        "19:20  YCLIENTS → record 1006 of Вера: her first visit, came; haircut, 2 000 ₽\n      gateway: applied {points:+} points, and the referral's bonuses"
    ));
    journal
        .entry(VERA.name)
        .or_default()
        .push(format!("19:20 applied {points:+}; referral +200"));
    journal
        .entry(MARIA.name)
        .or_default()
        .push("19:20 referral +300".into());
    let before = standin.sent_count();
    wait_until(|| standin.sent_count() >= before + 3).await;
    drain(gateway.store.as_ref()).await;

    // Spending: Anna exchanges points at the desk; the administrator uses the code once.
    let reward = cli::reward_add(
        &gateway.store,
        &cli::RewardAdd {
            partner: partner_id.0,
            title: "Сертификат 200 ₽".into(),
            points: 200,
            certificate_minor: Some(20_000),
            service_id: None,
            price_minor: None,
        },
        gateway.engine.now_ms(),
    )
    .await?;
    let reward_id = reward["id"].as_i64().unwrap_or_default();
    say(format!(
        "\n19:30  The salon offers a reward:\n      $ loyalty-gateway reward add --partner {partner_id} --title \"Сертификат 200 ₽\" --points 200 --certificate-minor 20000"
    ));
    let issued = cli::redeem(
        &gateway.engine,
        &gateway.store,
        partner_id.0,
        ANNA_AT_DESK,
        reward_id,
        None,
    )
    .await?;
    let code = issued["code"].as_str().unwrap_or_default().to_owned();
    say(format!(
        "19:40  Анна at the desk exchanges 200 points (her number typed the way people say it):\n      $ loyalty-gateway redeem --partner {partner_id} --phone \"{ANNA_AT_DESK}\" --reward {reward_id}\n      code {code}, balance left {} points",
        issued["balance"]
    ));
    journal
        .entry(ANNA.name)
        .or_default()
        .push(format!("19:40 redeemed -200 ({code})"));
    // Points pay at most half a bill here: a 200 ₽ certificate needs a bill of 400 ₽.
    let small = cli::code(
        &gateway.engine,
        &code,
        cli::CodeAction::Use {
            bill_minor: Some(30_000),
        },
    )
    .await;
    say(format!(
        "19:41  The administrator tries it on a 300 ₽ bill:\n      $ loyalty-gateway code use {code} --bill-minor 30000\n      {}",
        small
            .err()
            .map(|e| format!("refused: {e}"))
            .unwrap_or_else(|| "accepted?!".into())
    ));
    let on_bill = cli::CodeAction::Use {
        bill_minor: Some(350_000),
    };
    let used = cli::code(&gateway.engine, &code, on_bill).await?;
    say(format!(
        "19:42  …and on Анна's 3 500 ₽ bill:\n      $ loyalty-gateway code use {code} --bill-minor 350000\n      {}",
        used["status"].as_str().unwrap_or_default()
    ));
    let again = cli::code(&gateway.engine, &code, on_bill).await;
    say(format!(
        "19:43  …and tries the same code again: {}",
        again
            .err()
            .map(|e| format!("refused: {e}"))
            .unwrap_or_else(|| "accepted?!".into())
    ));

    // Across town, a clinic on Arnica: the same bot, the same client.
    let second = arnica::salon(&gateway, &config, &standin, &http, &say).await?;

    // A nail studio on DIKIDI, which has no API: its export imported, a visit at the desk.
    let third = paper::salon(&gateway, &config, &standin, &say).await?;

    // A salon on its own POS: the partner API and signed webhooks.
    let fourth = partner::salon(&gateway, &http, &say).await?;

    // The next morning: the salon's past imported, and the reminders' scan.
    let reminded = reminders::morning(&gateway, &standin, partner_id, &connection, &say).await?;

    // The summary.
    let mut rows = Vec::new();
    for p in PEOPLE {
        let phone = Phone::parse_international(p.phone)?;
        let Some(client) = gateway.store.client_by_phone(partner_id, &phone).await? else {
            continue;
        };
        let balance = gateway.store.balance(partner_id, client.id).await?;
        let level = gateway
            .engine
            .client_level(partner_id, &client)
            .await?
            .map(|v| v.progress.level);
        let told = standin
            .sent
            .lock()
            .map(|s| s.iter().filter(|(c, _)| *c == p.chat).count())
            .unwrap_or(0);
        rows.push(json!({
            "client": p.name,
            "phone": phone.masked(),
            "telegram": client.telegram_chat_id.is_some(),
            "balance": balance,
            "level": level,
            "messages": told,
            "deliveries": journal.get(p.name).cloned().unwrap_or_default(),
        }));
    }
    let outbox = gateway.store.outbox_stats().await?;
    let dashboard = dashboard_users(&gateway, partner_id).await?;
    let summary = json!({
        "dashboard": dashboard,
        "clients": rows,
        "webhooks_sent": record_count + rejected,
        "rejected": gateway.store.rejected_deliveries(10).await?.len(),
        "telegram_messages": standin.sent_count(),
        "outbox_pending": outbox.pending,
        "reminders": reminded,
        "second_salon": second,
        "third_salon": third,
        "fourth_salon": fourth,
    });
    if json_out {
        println!("{summary}");
    } else {
        println!("\nEnd of the day at «Лотос»:\n");
        println!(
            "{:<8} {:<15} {:<9} {:>7} {:<7} {:>9}  what happened",
            "client", "phone", "telegram", "points", "level", "messages"
        );
        for r in summary["clients"].as_array().into_iter().flatten() {
            let linked = if r["telegram"].as_bool() == Some(true) {
                "linked"
            } else {
                "—"
            };
            let what = r["deliveries"]
                .as_array()
                .map(|d| {
                    d.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            println!(
                "{:<8} {:<15} {:<9} {:>7} {:<7} {:>9}  {what}",
                r["client"].as_str().unwrap_or_default(),
                r["phone"].as_str().unwrap_or_default(),
                linked,
                r["balance"].to_string(),
                r["level"].as_str().unwrap_or("—"),
                r["messages"].to_string(),
            );
        }
        println!(
            "\n{} webhooks, {} refused and kept for the operator (`loyalty-gateway rejected`), {} Telegram messages.",
            summary["webhooks_sent"], summary["rejected"], summary["telegram_messages"]
        );
        println!(
            "At «{}» (on {}), Анна has {} points: {}.",
            second["salon"].as_str().unwrap_or_default(),
            second["crm"].as_str().unwrap_or_default(),
            second["anna_balance"],
            second["deliveries"]
                .as_array()
                .map(|d| d
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; "))
                .unwrap_or_default()
        );
        println!(
            "\nTo run it for real (README.md, \"Running for real\"):\n  \
             export DATABASE_URL=postgres://…  TELEGRAM_BOT_TOKEN=…  LOYALTY_PUBLIC_URL=https://…\n  \
             loyalty-gateway migrate\n  \
             loyalty-gateway partner add --name \"My salon\" --cashback-bps 500\n  \
             loyalty-gateway connection add --partner 1 --crm yclients --company-id <id> --partner-token … --user-token …\n  \
             loyalty-gateway serve      # then paste the printed webhook URL into YCLIENTS"
        );
    }
    if serve {
        if json_out {
            // The JSON line is the whole answer; the demo stays up until Ctrl-C.
            use std::io::Write;
            let _ = std::io::stdout().flush();
        } else {
            println!(
                "\nThe salon's dashboard is at {url}\n  owner: {} / {}\n  admin: {} / {}\n\
                 A salon of your own: {url}signup (onboarding: choose the CRM, check, webhook).\n\
                 Serving until Ctrl-C.",
                dashboard["owner"]["email"].as_str().unwrap_or_default(),
                dashboard["owner"]["password"].as_str().unwrap_or_default(),
                dashboard["admin"]["email"].as_str().unwrap_or_default(),
                dashboard["admin"]["password"].as_str().unwrap_or_default(),
                url = dashboard["url"].as_str().unwrap_or_default(),
            );
        }
        let mut stopping = gateway.stopping();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = stopping.wait_for(|s| *s) => {}
        }
    } else if !json_out {
        println!(
            "\nRun `loyalty-gateway demo --serve` to keep it up and click through «Лотос»'s \
             dashboard."
        );
    }
    gateway.stop().await?;
    tg_server.abort();
    Ok(())
}

/// Lotos's owner and administrator in the dashboard, with passwords made for this run.
async fn dashboard_users(gateway: &Gateway, partner: PartnerId) -> anyhow::Result<Value> {
    let mut out = json!({ "url": format!("http://{}/", gateway.addr) });
    for (role, email) in [("owner", "owner@lotos.demo"), ("admin", "admin@lotos.demo")] {
        let password = format!("demo-{}", &cli::new_secret()?[..10]);
        cli::user_add(
            &gateway.store,
            partner.0,
            email,
            role.parse().map_err(anyhow::Error::msg)?,
            Some(password.clone()),
            None,
            &loyalty_core::audit::Actor::system(),
            gateway.engine.now_ms(),
        )
        .await?;
        out[role] = json!({ "email": email, "password": password });
    }
    Ok(out)
}

/// A salon of the demo: roubles, points for a year, a point worth a rouble, half a bill at
/// most in points, the Pro plan.
fn salon(name: &str, cashback_bps: u32) -> PartnerAdd {
    PartnerAdd {
        name: name.into(),
        cashback_bps,
        currency: Currency::Rub,
        min_paid_minor: 0,
        points_ttl_days: Some(365),
        welcome_bonus: 0,
        point_value_minor: 100,
        max_redeem_share_bps: 5_000,
        code_ttl_days: 90,
        country: loyalty_core::Country::RU,
        plan: loyalty_core::audit::Plan::Pro,
    }
}

async fn post_json(http: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<Value> {
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .context("posting a webhook to the gateway")?;
    let status = resp.status();
    let answer: Value = serde_json::from_slice(&resp.bytes().await?).unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "gateway answered {status}: {answer}");
    Ok(answer)
}

/// Waits (up to 10 s) until `done` holds.
async fn wait_until(done: impl Fn() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the outbox has sent everything due, so the output reads in order.
async fn drain(store: &dyn Store) {
    for _ in 0..200 {
        match store.outbox_stats().await {
            Ok(s) if s.pending == 0 => return,
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(_) => return,
        }
    }
}
