//! Birthday points through the doors: `program set` turns them on (a bonus that could never be
//! used is refused), and the running gateway grants them by itself on the client's birthday in
//! the salon's time, tells her once in Telegram, and keeps the books balanced.

mod common;

use std::time::{Duration, Instant};

use common::binary::Env;
use common::telegram::{telegram, texts_to};
use common::{PgSchema, connect_yclients, serve_with_bot};
use loyalty_core::event::{ClientEvent, CrmEvent};
use loyalty_core::{
    BirthDate, ClientStore, Clock, ConnectionId, LedgerStore, PartnerId, PartnerStore, Phone,
    Points, SystemClock,
};
use serde_json::json;

const TOKEN: &str = "66:birthday-token";
const CHAT: i64 = 6_161;
const PHONE: &str = "+79161230066";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn birthday_points_arrive_by_themselves_once_and_the_client_is_told() {
    let telegram = telegram(TOKEN).await;
    let schema = PgSchema::new().await;
    let (gateway, config) = serve_with_bot(&schema, TOKEN, telegram.uri()).await;
    let store = &gateway.store;
    let env = Env {
        vars: vec![("DATABASE_URL", schema.url.clone())],
    };
    let partner = env.cli(&["partner", "add", "--name", "Лотос", "--cashback-bps", "500"]);
    let p = partner["id"].to_string();
    let partner_id = PartnerId(partner["id"].as_i64().unwrap());

    // A client whose card in the CRM says she was born on this day (Moscow time), and who
    // linked the bot.
    let conn = connect_yclients(store, &config, partner_id.0, None).await;
    let conn = store
        .connection(ConnectionId(conn["id"].as_i64().unwrap()))
        .await
        .unwrap()
        .unwrap();
    let moscow = chrono::Utc::now() + chrono::Duration::minutes(180);
    let born = format!("1990-{}", moscow.format("%m-%d"));
    let card = CrmEvent::Client(ClientEvent {
        company_id: conn.company_id.clone(),
        external_id: "6600".into(),
        phone: Some(Phone::parse_international(PHONE).unwrap()),
        name: Some("Анна".into()),
        deleted: false,
        email: None,
        birth_date: BirthDate::parse(&born),
    });
    gateway.engine.apply_event(&conn, &card).await.unwrap();
    let client = store
        .client_by_phone(partner_id, &Phone::parse_international(PHONE).unwrap())
        .await
        .unwrap()
        .unwrap();
    store
        .set_telegram_chat(partner_id, client.id, Some(CHAT))
        .await
        .unwrap();

    // Off until the program says so; a bonus that could never be used is refused.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        store.balance(partner_id, client.id).await.unwrap(),
        Points::ZERO
    );
    let shown = env
        .command(false)
        .args(["program", "show", "--partner", &p])
        .output()
        .unwrap();
    let mut program: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("program.json");
    program["birthday"] = json!({"points": 300, "days_before": 0, "valid_days": 0});
    std::fs::write(&file, program.to_string()).unwrap();
    let refused = env
        .command(false)
        .args([
            "program",
            "set",
            "--partner",
            &p,
            "--file",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("birthday: valid_days must be at least 1"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    program["birthday"] = json!({"points": 300, "days_before": 0, "valid_days": 7});
    std::fs::write(&file, program.to_string()).unwrap();
    env.cli(&[
        "program",
        "set",
        "--partner",
        &p,
        "--file",
        file.to_str().unwrap(),
    ]);

    // The running gateway grants them by itself and tells her.
    let until = chrono::DateTime::from_timestamp_millis(SystemClock.now_ms() + 7 * 86_400_000)
        .unwrap()
        .format("%d.%m.%Y")
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(15);
    let texts = loop {
        let texts = texts_to(&telegram, CHAT).await;
        if texts.iter().any(|t| t.starts_with("🎂")) {
            break texts;
        }
        assert!(Instant::now() < deadline, "no birthday message: {texts:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        texts.contains(&format!(
            "🎂 С наступающим днём рождения! «Лотос» дарит вам 300 баллов, они действуют до \
             {until}. Баланс: 300 баллов"
        )),
        "{texts:?}"
    );
    // Many more passes: once a year means once.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let texts = texts_to(&telegram, CHAT).await;
    assert_eq!(texts.iter().filter(|t| t.starts_with("🎂")).count(), 1);
    assert_eq!(
        store.balance(partner_id, client.id).await.unwrap(),
        Points(300)
    );
    assert!(
        store
            .account_totals(partner_id)
            .await
            .unwrap()
            .is_balanced()
    );
    gateway.stop().await.unwrap();
    schema.drop().await;
}
