//! Visits entered at the desk, through the binary and the running gateway's bot: `visit add`
//! accrues by the program and tells the client, the same key again is a duplicate (and with
//! another bill refused), `visit correct` and `visit cancel` post reversals with the reason,
//! the audit log names each; `/visit` in the bot for the salon's staff only, a redelivered update
//! entered once, its button cancels; a salon whose CRM reports visits is refused without
//! `--force`.

mod common;

use common::binary::{Env, stderr, wait_for};
use common::telegram::{telegram, texts_to};
use common::{PgSchema, serve_with_bot};
use loyalty_core::{ClientStore, LedgerStore, PartnerId, Phone, Points};
use serde_json::{Value, json};

const TOKEN: &str = "4242:desk-token";
const CLIENT_CHAT: i64 = 7001;
const STAFF_CHAT: i64 = 900;

fn message(update: i64, chat: i64, message_id: i64, text: &str) -> Value {
    json!({"update_id": update, "message": {"message_id": message_id, "date": 1_795_000_000,
        "chat": {"id": chat, "type": "private"},
        "from": {"id": chat, "is_bot": false, "first_name": "Staff", "language_code": "ru"},
        "text": text}})
}

async fn post_update(addr: &str, update: &Value) {
    let status = reqwest::Client::new()
        .post(format!("http://{addr}/telegram/s3cret"))
        .header("x-telegram-bot-api-secret-token", "s3cret")
        .header("content-type", "application/json")
        .body(update.to_string())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desk_visits_accrue_once_tell_the_client_and_are_corrected_by_reversal() {
    let schema = PgSchema::new().await;
    let tg = telegram(TOKEN).await;
    let (gateway, _) = serve_with_bot(&schema, TOKEN, tg.uri()).await;
    let env = Env {
        vars: vec![("DATABASE_URL", schema.url.clone())],
    };
    let salon = env.cli(&["partner", "add", "--name", "Лотос", "--cashback-bps", "500"]);
    let p = salon["id"].to_string();
    let partner = PartnerId(salon["id"].as_i64().unwrap());
    let visit = |key: &str, paid: &str| {
        vec![
            "visit",
            "add",
            "--partner",
            &p,
            "--phone",
            "8 916 123-45-67",
            "--paid-minor",
            paid,
            "--service",
            "Стрижка",
            "--master",
            "Ольга",
            "--name",
            "Анна",
            "--key",
            key,
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>()
    };
    let cli = |args: Vec<String>| env.cli(&args.iter().map(String::as_str).collect::<Vec<_>>());

    // The first visit makes the client: 5 % of 3,500.00 ₽.
    let first = cli(visit("v1", "350000"));
    assert_eq!(first["outcome"], "applied");
    assert_eq!(first["points"], 175);
    assert_eq!(first["balance"], 175);
    assert_eq!(first["record_id"], "desk-v1");
    let store = &gateway.store;
    let phone = Phone::parse_international("+79161234567").unwrap();
    let client = store
        .client_by_phone(partner, &phone)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.name.as_deref(), Some("Анна"));
    store
        .set_telegram_chat(partner, client.id, Some(CLIENT_CHAT))
        .await
        .unwrap();

    // A second visit is told in Telegram.
    let second = cli(visit("v2", "200000"));
    assert_eq!(
        (second["points"].clone(), second["balance"].clone()),
        (json!(100), json!(275))
    );
    wait_for(&tg, CLIENT_CHAT, "+100").await;

    // The same command again: a duplicate, nothing posted; the same key with another bill is
    // refused.
    let again = cli(visit("v2", "200000"));
    assert_eq!(again["outcome"], "duplicate");
    assert_eq!(
        (again["points"].clone(), again["balance"].clone()),
        (json!(0), json!(275))
    );
    let other: Vec<String> = visit("v2", "250000");
    let out = env.run(&other.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("already used"), "{}", stderr(&out));

    // A correction posts the difference as a reversal carrying the reason.
    let corrected = env.cli(&[
        "visit",
        "correct",
        "--partner",
        &p,
        "--key",
        "v1",
        "--paid-minor",
        "300000",
        "--reason",
        "ошибка в сумме",
    ]);
    assert_eq!(corrected["points"], -25);
    assert_eq!(corrected["balance"], 250);
    let cancelled = env.cli(&[
        "visit",
        "cancel",
        "--partner",
        &p,
        "--key",
        "v2",
        "--reason",
        "не пришла",
    ]);
    assert_eq!(
        (cancelled["points"].clone(), cancelled["balance"].clone()),
        (json!(-100), json!(150))
    );
    let twice = env.cli(&[
        "visit",
        "cancel",
        "--partner",
        &p,
        "--key",
        "v2",
        "--reason",
        "не пришла",
    ]);
    assert_eq!(
        (twice["outcome"].clone(), twice["points"].clone()),
        (json!("duplicate"), json!(0))
    );
    let unknown = env.run(&[
        "visit",
        "cancel",
        "--partner",
        &p,
        "--key",
        "nope",
        "--reason",
        "x",
    ]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("no desk visit with the key \"nope\""));

    let shown = env.cli(&["client", "show", "--partner", &p, "--phone", "+79161234567"]);
    let reasons: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(
        reasons.contains(&"visit desk-v1 corrected: ошибка в сумме")
            && reasons.contains(&"visit desk-v2 corrected: не пришла"),
        "{reasons:?}"
    );
    let visits = shown["visits"].as_array().unwrap();
    assert!(visits.iter().all(|v| v["source"] == "desk"), "{visits:?}");
    assert_eq!(
        shown["summary"]["visits"], 1,
        "the cancelled visit no longer counts"
    );

    let audit = env.cli(&["audit", "--partner", &p]);
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "visit_entered").count(),
        2,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| **a == "visit_corrected").count(),
        2,
        "{actions:?}"
    );

    // The bot: /visit exists for the salon's staff only.
    let addr = gateway.addr.to_string();
    post_update(
        &addr,
        &message(1, 901, 10, "/visit +7 916 123-45-67 1000 маникюр"),
    )
    .await;
    let to_stranger = wait_for(&tg, 901, "/balance").await;
    assert!(
        !to_stranger.iter().any(|t| t.contains("Визит")),
        "{to_stranger:?}"
    );
    env.cli(&[
        "staff-add",
        "--partner",
        &p,
        "--chat",
        &STAFF_CHAT.to_string(),
    ]);
    let entered = message(2, STAFF_CHAT, 11, "/visit +7 916 123-45-67 1000 маникюр");
    post_update(&addr, &entered).await;
    wait_for(&tg, STAFF_CHAT, "Визит внесён").await;
    let balance = || async { store.balance(partner, client.id).await.unwrap() };
    assert_eq!(balance().await, Points(200));
    // Telegram delivers the same update again: entered once.
    post_update(&addr, &entered).await;
    wait_for(&tg, STAFF_CHAT, "уже внесён").await;
    assert_eq!(balance().await, Points(200));
    let unreadable = message(3, STAFF_CHAT, 12, "/visit +7 916 123 тысяча");
    post_update(&addr, &unreadable).await;
    wait_for(&tg, STAFF_CHAT, "Не понял визит").await;

    // Its button cancels it, for the salon's staff only; pressed twice, once.
    let press = |update: i64, chat: i64| {
        json!({"update_id": update, "callback_query": {"id": format!("q{update}"),
            "from": {"id": chat, "is_bot": false, "first_name": "Staff", "language_code": "ru"},
            "chat_instance": "c", "data": format!("dv:{p}:tg{STAFF_CHAT}-11"),
            "message": {"message_id": 50, "date": 1_795_000_000,
                "chat": {"id": chat, "type": "private"}, "text": "✅"}}})
    };
    post_update(&addr, &press(4, 901)).await;
    post_update(&addr, &press(5, STAFF_CHAT)).await;
    wait_for(&tg, STAFF_CHAT, "Визит отменён").await;
    assert_eq!(balance().await, Points(150));
    post_update(&addr, &press(6, STAFF_CHAT)).await;
    wait_for(&tg, STAFF_CHAT, "уже отменён").await;
    assert_eq!(balance().await, Points(150));
    let staff_texts = texts_to(&tg, STAFF_CHAT).await;
    assert_eq!(
        staff_texts
            .iter()
            .filter(|t| t.contains("Визит отменён"))
            .count(),
        1,
        "{staff_texts:?}"
    );

    gateway.stop().await.unwrap();
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salon_whose_crm_reports_visits_enters_one_at_the_desk_only_by_force() {
    let schema = PgSchema::new().await;
    let env = Env::migrated(&schema.url);
    let (partner, connection) = env.lotos_on_yclients("pt", "ut");
    let p = partner["id"].to_string();
    let args = [
        "visit",
        "add",
        "--partner",
        &p,
        "--phone",
        "+79161234567",
        "--paid-minor",
        "100000",
        "--key",
        "k1",
    ];
    let out = env.run(&args);
    assert_eq!(out.status.code(), Some(2));
    let refusal = stderr(&out);
    assert!(
        refusal.contains(&format!(
            "visits come from yclients (connection {})",
            connection["id"]
        )) && refusal.contains("count twice"),
        "{refusal}"
    );
    let mut forced = args.to_vec();
    forced.push("--force");
    let done = env.cli(&forced);
    assert_eq!(done["points"], 50);
    assert_ne!(done["connection_id"], connection["id"]);
    // The desk is no CRM to connect.
    let out = env.run(&[
        "connection",
        "add",
        "--partner",
        &p,
        "--crm",
        "desk",
        "--company-id",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("visit add"), "{}", stderr(&out));
    schema.drop().await;
}
