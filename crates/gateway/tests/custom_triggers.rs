//! Custom triggers (issue 18) through the doors a salon and its partners use: `program set`
//! refuses a rule with the field named, and any rule on a plan below Enterprise; visits pushed
//! through `/api/v1/visits` to the running gateway fire the rule — its bonus part of the
//! visit's points, its Telegram message through the reminders' delivery policy (a client who
//! never opted in gets none), its `trigger.fired` event at the partner's endpoint — once,
//! whatever is pushed again, flipped or reordered; the API lists what fired and previews a rule
//! on a past visit; a salon moved off Enterprise keeps its rules, run by none.

mod common;

use std::time::{Duration, Instant};

use common::api::Api;
use common::binary::Env;
use common::telegram::{telegram, texts_to};
use common::{PUBLIC_URL, PgSchema, serve_with};
use loyalty_core::audit::Plan;
use loyalty_core::{ChatStore, ClientId, PartnerId, Phone, TelegramChat};
use loyalty_engage::EngageStore;
use loyalty_engage::store::ConsentKind;
use loyalty_gateway::StartOptions;
use loyalty_gateway::config::Overrides;
use loyalty_gateway::partner_hooks::HookPolicy;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "88:rules-token";
const CHAT: i64 = 8_118;
const OLGA_CHAT: i64 = 8_119;
const ANNA: &str = "+79161238801";
const OLGA: &str = "+79161238802";
/// Monday 7 December 2026, 12:00 in Moscow.
const MONDAY_NOON: i64 = 1_796_634_000_000;

fn rule() -> Value {
    json!({
        "name": "Снова к нам",
        "when": "visit",
        "conditions": {"min_visits": 2, "min_paid_minor": 100_000},
        "then": [
            {"kind": "bonus", "points": 300},
            {"kind": "message", "text": {"ru": "{name}, спасибо, что вернулись к {master}! На счёте {balance}."}},
            {"kind": "webhook"}
        ]
    })
}

fn program(rules: Value) -> Value {
    json!({
        "currency": "RUB",
        "cashback": 500,
        "max_redeem_share": 5000,
        "point_value_minor": 100,
        "engage": {
            "time_zone": "Europe/Moscow",
            "send_window": {"from_hour": 0, "to_hour": 24},
            "holdout_percent": 0,
            "booking_url": "https://n4564.yclients.com/"
        },
        "custom_triggers": rules
    })
}

fn visit(id: &str, phone: &str, status: &str, paid: i64, version: i64, day: i64) -> Value {
    json!({
        "id": id,
        "status": status,
        "client": {"phone": phone, "name": if phone == ANNA { "Анна" } else { "Ольга" }},
        "lines": [{"title": "Стрижка", "paid_minor": paid}],
        "master": "Ирине",
        "at_ms": MONDAY_NOON + day * 86_400_000,
        "version": version,
    })
}

async fn receiver() -> MockServer {
    let r = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&r)
        .await;
    r
}

async fn fired_events(receiver: &MockServer) -> Vec<Value> {
    events_of(receiver, "trigger.fired").await
}

async fn events_of(receiver: &MockServer, kind: &str) -> Vec<Value> {
    receiver
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|b| b["type"] == kind)
        .collect()
}

/// The client with `phone` shares it with the bot in `chat` (as /start and the contact button
/// leave it).
async fn in_the_bot(
    store: &loyalty_store::SqlStore,
    partner: PartnerId,
    phone: &str,
    chat: i64,
    now: i64,
) {
    let phone = Phone::parse_international(phone).unwrap();
    let chat = TelegramChat {
        chat_id: chat,
        phone: Some(phone.clone()),
        language: "ru".into(),
        active: true,
        joined_partner: Some(partner),
        referred_by: None,
    };
    store.save_telegram_chat(&chat, now).await.unwrap();
    store.link_chat(&phone, chat.chat_id).await.unwrap();
}

/// Waits until `check` holds (the gateway's workers run every 50 ms).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salons_rule_from_program_set_to_telegram_and_the_partner() {
    let telegram = telegram(TOKEN).await;
    let schema = PgSchema::new().await;
    let overrides = Overrides {
        public_url: Some(PUBLIC_URL.into()),
        telegram_bot_token: Some(TOKEN.into()),
        telegram_api_url: Some(telegram.uri()),
        telegram_webhook_secret: Some("s3cret".into()),
        ..Overrides::default()
    };
    let options = StartOptions {
        dashboard: Some(loyalty_web::Settings {
            api_rate: loyalty_web::api::RateLimit {
                per_second: 1_000.0,
                burst: 1_000.0,
            },
            webhooks_allow_loopback: true,
            ..Default::default()
        }),
        hooks: Some(HookPolicy {
            allow_loopback: true,
            ..Default::default()
        }),
        hooks_every: Some(Duration::from_millis(50)),
        housekeeping_every: Some(Duration::from_millis(200)),
        ..StartOptions::default()
    };
    let (gateway, _) = serve_with(&schema, overrides, options).await;
    let store = &gateway.store;
    let env = Env {
        vars: vec![("DATABASE_URL", schema.url.clone())],
    };
    let p = env.cli(&["partner", "add", "--name", "Лотос", "--cashback-bps", "500"])["id"]
        .as_i64()
        .unwrap();
    let partner = PartnerId(p);
    let ps = p.to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("program.json");
    let file = file.to_str().unwrap();
    let set = |program: &Value| {
        std::fs::write(file, program.to_string()).unwrap();
        env.command(false)
            .args(["program", "set", "--partner", &ps, "--file", file])
            .output()
            .unwrap()
    };
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();

    // A Pro salon is told which plan has custom triggers; nothing changes.
    let out = set(&program(json!([rule()])));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("custom triggers") && stderr(&out).contains("Enterprise"),
        "{}",
        stderr(&out)
    );
    env.cli(&["partner", "plan", "--partner", &ps, "--plan", "enterprise"]);
    // A rule that cannot work is refused naming the field.
    let mut bad = rule();
    bad["when"] = json!("referral_rewarded");
    let out = set(&program(json!([bad])));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("custom_triggers[0].conditions.min_paid_minor: only a visit has it"),
        "{}",
        stderr(&out)
    );
    let out = set(&program(json!([rule()])));
    assert!(out.status.success(), "{}", stderr(&out));

    // The partner's key and endpoint.
    let w = env.cli(&["api-key", "add", "--partner", &ps, "--scope", "write"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let api = Api {
        base: format!("http://{}", gateway.addr),
        http: reqwest::Client::new(),
    };
    let partner_receiver = receiver().await;
    let url = format!("{}/loyalty", partner_receiver.uri());
    let (status, endpoint) = api
        .post(
            &w,
            "/api/v1/webhooks/endpoints",
            Some("e-1"),
            &json!({"url": url, "events": ["trigger.fired", "client.linked", "engagement.sent"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{endpoint}");

    // Anna's first visit: 5 % of 2 000 ₽; the rule wants a second.
    let push = |v: Value, idem: String| {
        let (api, w) = (&api, &w);
        async move { api.post(w, "/api/v1/visits", Some(&idem), &v).await }
    };
    let (status, first) = push(visit("a-1", ANNA, "came", 200_000, 1, 0), "v1".into()).await;
    assert_eq!(
        (status, first["points"].as_i64()),
        (StatusCode::OK, Some(100)),
        "{first}"
    );
    let anna = ClientId(first["client_id"].as_i64().unwrap());
    // She shares her phone with the bot.
    in_the_bot(store, partner, ANNA, CHAT, 0).await;
    store
        .set_consent(
            partner,
            anna,
            ConsentKind::Marketing,
            true,
            "telegram",
            "Да, присылайте",
            MONDAY_NOON,
        )
        .await
        .unwrap();

    // The second: 75 points and the rule's 300.
    let (_, second) = push(visit("a-2", ANNA, "came", 150_000, 1, 14), "v2".into()).await;
    assert_eq!(
        (second["points"].as_i64(), second["balance"].as_i64()),
        (Some(375), Some(475)),
        "{second}"
    );
    eventually("the rule's message in Telegram", || async {
        texts_to(&telegram, CHAT)
            .await
            .iter()
            .any(|t| t.contains("спасибо, что вернулись"))
    })
    .await;
    let texts = texts_to(&telegram, CHAT).await;
    let thanks: Vec<&String> = texts
        .iter()
        .filter(|t| t.contains("спасибо, что вернулись"))
        .collect();
    assert_eq!(
        thanks,
        vec!["Анна, спасибо, что вернулись к Ирине! На счёте 475 баллов."],
        "{texts:?}"
    );
    eventually("trigger.fired at the partner", || async {
        !fired_events(&partner_receiver).await.is_empty()
    })
    .await;
    let event = &fired_events(&partner_receiver).await[0];
    assert_eq!(event["data"]["trigger"], "Снова к нам");
    assert_eq!(event["data"]["event"], "visit");
    assert_eq!(event["data"]["record_id"], "api-a-2");
    assert_eq!(event["data"]["client_id"], anna.0);
    assert_eq!(event["data"]["points"], 300);

    // Pushed again, a no-show, back to came, an older state: the points follow the visit, the
    // rule fires no more.
    let (_, dup) = push(visit("a-2", ANNA, "came", 150_000, 1, 14), "v3".into()).await;
    assert_eq!(dup["outcome"], "duplicate");
    let (_, gone) = push(visit("a-2", ANNA, "no_show", 150_000, 2, 14), "v4".into()).await;
    assert_eq!(
        (gone["points"].as_i64(), gone["balance"].as_i64()),
        (Some(-375), Some(100))
    );
    let (_, back) = push(visit("a-2", ANNA, "came", 150_000, 3, 14), "v5".into()).await;
    assert_eq!(
        (back["points"].as_i64(), back["balance"].as_i64()),
        (Some(375), Some(475))
    );
    let (_, stale) = push(visit("a-2", ANNA, "no_show", 150_000, 2, 14), "v6".into()).await;
    assert_eq!(stale["outcome"], "stale");

    // Olga is in the bot but never opted in to offers: the rule's points, but no message.
    push(visit("o-1", OLGA, "came", 100_000, 1, 0), "v7".into()).await;
    in_the_bot(store, partner, OLGA, OLGA_CHAT, 0).await;
    let (_, olga) = push(visit("o-2", OLGA, "came", 100_000, 1, 10), "v8".into()).await;
    assert_eq!(olga["points"].as_i64(), Some(350), "{olga}");

    // What fired, as the partner reads it: once per visit; Anna's message sent, Olga's not.
    eventually("both messages decided", || async {
        let fires = store.trigger_fires(partner, None, 10).await.unwrap();
        fires.len() == 2
            && fires
                .iter()
                .all(|f| f.message.as_deref() != Some("pending"))
    })
    .await;
    let (status, page, _) = api
        .get(Some(&w), "/api/v1/custom-triggers/fires?limit=1")
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"][0]["record_id"], "api-o-2");
    assert_eq!(page["items"][0]["message"], "no_consent");
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, next, _) = api
        .get(
            Some(&w),
            &format!("/api/v1/custom-triggers/fires?limit=1&cursor={cursor}"),
        )
        .await;
    assert_eq!(next["items"][0]["record_id"], "api-a-2");
    assert_eq!(next["items"][0]["message"], "send");
    assert_eq!(next["items"][0]["webhook"], true);
    assert_eq!(next["next_cursor"], Value::Null);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fired_events(&partner_receiver).await.len(), 2);
    let thanks = texts_to(&telegram, CHAT)
        .await
        .into_iter()
        .filter(|t| t.contains("спасибо, что вернулись"))
        .count();
    assert_eq!(thanks, 1, "one message for one visit");
    // The partner heard of both links and of the message that went out.
    let linked: Vec<Value> = events_of(&partner_receiver, "client.linked")
        .await
        .iter()
        .map(|e| e["data"]["client_id"].clone())
        .collect();
    assert_eq!(linked.len(), 2, "{linked:?}");
    assert!(linked.contains(&json!(anna.0)));
    let sent = events_of(&partner_receiver, "engagement.sent").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (
            &sent[0]["data"]["client_id"],
            &sent[0]["data"]["trigger"],
            &sent[0]["data"]["channel"]
        ),
        (&json!(anna.0), &json!("custom"), &json!("telegram"))
    );
    let to_olga = texts_to(&telegram, OLGA_CHAT).await;
    assert!(
        !to_olga.iter().any(|t| t.contains("спасибо")),
        "{to_olga:?}"
    );

    // The rules in force, and what a rule would have done on a past visit.
    let (_, listed, _) = api.get(Some(&w), "/api/v1/custom-triggers").await;
    assert_eq!(listed["triggers"][0]["name"], "Снова к нам");
    let mut first_visit = rule();
    first_visit["conditions"] = json!({"visit_number": 1, "min_paid_minor": 180_000});
    let (status, would) = api
        .post(
            &w,
            "/api/v1/custom-triggers/preview",
            None,
            &json!({"trigger": first_visit, "visit_id": "a-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{would}");
    assert_eq!(
        (would["fires"].as_bool(), would["points"].as_i64()),
        (Some(true), Some(300))
    );
    assert_eq!(would["visit_number"], 1);
    let (_, would_not) = api
        .post(
            &w,
            "/api/v1/custom-triggers/preview",
            None,
            &json!({"trigger": first_visit, "visit_id": "a-2"}),
        )
        .await;
    assert_eq!(would_not["fires"], false);
    let failed: Vec<&str> = would_not["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["holds"] == false)
        .filter_map(|c| c["condition"].as_str())
        .collect();
    assert_eq!(
        failed,
        vec!["min_paid_minor", "visit_number"],
        "{would_not}"
    );
    assert_eq!(would_not["since_last_visit_days"], 14);
    let mut broken = rule();
    broken["then"] = json!([{"kind": "bonus", "points": 0}]);
    let (status, problem) = api
        .post(
            &w,
            "/api/v1/custom-triggers/preview",
            None,
            &json!({"trigger": broken, "visit_id": "a-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["code"], "invalid_trigger");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("custom_triggers[0].then[0].points"),
        "{problem}"
    );
    let (status, _) = api
        .post(
            &w,
            "/api/v1/custom-triggers/preview",
            None,
            &json!({"trigger": rule(), "visit_id": "nowhere"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Off Enterprise the rules stay in the program and run for nobody.
    use loyalty_core::audit::AuditStore;
    store
        .set_plan(partner, Plan::Pro, &loyalty_core::audit::Actor::system(), 0)
        .await
        .unwrap();
    // A third visit of Anna's at the desk: 5 % of 1 000 ₽ and no bonus.
    let third = common::web::visit(&gateway, p, ANNA, 100_000).await;
    assert_eq!(third["points"], 50, "{third}");
    assert_eq!(
        store.trigger_fires(partner, None, 10).await.unwrap().len(),
        2
    );

    gateway.stop().await.unwrap();
    schema.drop().await;
}

/// The messages' worker under a chosen clock: a rule's message that fires at night waits for
/// the salon's send window and goes out in it; one still waiting three days on is dropped as
/// expired, not sent late; nothing is recorded twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rules_message_waits_for_the_window_and_expires() {
    use loyalty_engage::store::SendRow;
    use loyalty_gateway::engage::{TRIGGER_MESSAGE_TTL_MS, trigger_messages};

    let schema = PgSchema::new().await;
    let store = std::sync::Arc::new(loyalty_store::SqlStore::connect(&schema.url).await.unwrap());
    store.migrate().await.unwrap();
    let mut program: loyalty_core::Program =
        serde_json::from_value(program(json!([rule()]))).unwrap();
    if let Some(e) = program.engage.as_mut() {
        e.send_window.from_hour = 10;
        e.send_window.to_hour = 20;
        e.caps.per_7_days = 5;
    }
    // 23:00 in Moscow, the night before Monday 7 December 2026.
    let night = MONDAY_NOON - 13 * 3_600_000;
    let clock = std::sync::Arc::new(loyalty_core::ManualClock::new(night));
    let partner = {
        use loyalty_core::PartnerStore;
        store
            .create_partner(
                &loyalty_core::model::NewPartner {
                    name: "Лотос".into(),
                    program,
                },
                night,
            )
            .await
            .unwrap()
            .id
    };
    {
        use loyalty_core::audit::AuditStore;
        store
            .set_plan(
                partner,
                Plan::Enterprise,
                &loyalty_core::audit::Actor::system(),
                night,
            )
            .await
            .unwrap();
    }
    let engine = loyalty_core::LoyaltyEngine::with_clock(store.clone(), clock.clone());
    let phone = Phone::parse_international(ANNA).unwrap();
    let anna = engine
        .enroll(partner, &phone, Some("Анна"))
        .await
        .unwrap()
        .id;
    in_the_bot(store.as_ref(), partner, ANNA, CHAT, night).await;
    store
        .set_consent(
            partner,
            anna,
            ConsentKind::Marketing,
            true,
            "telegram",
            "Да",
            night,
        )
        .await
        .unwrap();
    let desk = |n: u32, paid: i64| loyalty_core::engine::DeskVisit {
        phone: phone.clone(),
        name: None,
        paid_minor: paid,
        service: Some("Стрижка".into()),
        master: Some("Ирине".into()),
        key: format!("night-{n}"),
    };
    let conn = engine.desk(partner, false).await.unwrap();
    let ours = |rows: Vec<SendRow>| rows.into_iter().filter(|r| r.trigger == "custom").count();

    // Two visits at the desk late at night: the rule fires on the second.
    engine.desk_visit(&conn, &desk(1, 200_000)).await.unwrap();
    engine.desk_visit(&conn, &desk(2, 150_000)).await.unwrap();
    assert_eq!(trigger_messages(&store, night).await.unwrap(), 0);
    let fires = store.trigger_fires(partner, None, 10).await.unwrap();
    assert_eq!(fires[0].message.as_deref(), Some("pending"));
    assert_eq!(ours(store.sends(partner, 10).await.unwrap()), 0);
    // Nothing is due before ten in the morning.
    assert_eq!(
        trigger_messages(&store, night + 3_600_000).await.unwrap(),
        0
    );
    let ten = night + 11 * 3_600_000;
    assert_eq!(trigger_messages(&store, ten).await.unwrap(), 1);
    let sends: Vec<SendRow> = store
        .sends(partner, 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.trigger == "custom")
        .collect();
    assert_eq!(sends.len(), 1);
    assert!(sends[0].cycle.starts_with("Снова к нам:"), "{:?}", sends[0]);
    assert_eq!(
        store.trigger_fires(partner, None, 10).await.unwrap()[0]
            .message
            .as_deref(),
        Some("send")
    );
    assert_eq!(trigger_messages(&store, ten + 60_000).await.unwrap(), 0);

    // A third visit's message, looked at first more than three days later: expired, unsent.
    clock.advance_ms(3_600_000);
    engine.desk_visit(&conn, &desk(3, 150_000)).await.unwrap();
    let later = loyalty_core::Clock::now_ms(clock.as_ref()) + TRIGGER_MESSAGE_TTL_MS + 1;
    assert_eq!(trigger_messages(&store, later).await.unwrap(), 1);
    let states: Vec<Option<String>> = store
        .trigger_fires(partner, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.message)
        .collect();
    assert_eq!(states, vec![Some("expired".into()), Some("send".into())]);
    assert_eq!(ours(store.sends(partner, 10).await.unwrap()), 1);
    schema.drop().await;
}
