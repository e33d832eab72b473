//! Levels through the doors a salon and its operator use: `program set` (checked, versioned)
//! turns levels on; webhooks to the running gateway raise a client on the visit that crosses
//! 30 000 ₽ and she is told in Telegram; the next visit earns the new rate; a reversal below the
//! threshold leaves her level alone until the gateway's own review, which lowers it and tells
//! her; `client level --set` puts a floor by hand.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::binary::Env;
use common::telegram::{telegram, texts_to};
use common::{PgSchema, connect_yclients, live_hook, serve_with_bot};
use loyalty_core::{ClientStore, LedgerStore, PartnerId, Phone, Points};
use loyalty_gateway::sample::{Record, record_webhook};
use serde_json::{Value, json};
use sqlx::Connection;

const TOKEN: &str = "77:levels-token";
const CHAT: i64 = 5_151;
const PHONE: &str = "79161230077";

fn run(env: &Env, args: &[&str]) -> Output {
    env.command(false).args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Base 3 % (points pay up to 10 %), Silver from 30 000 ₽ at 7 % (20 %), Gold from 100 000 ₽
/// at 15 % (30 %), by the paid total over a year, reviewed after 90 days.
fn levels() -> Value {
    json!({
        "measure": "paid",
        "window_days": 365,
        "grace_days": 90,
        "tiers": [
            {"name": "Base", "threshold": 0, "cashback": 300, "max_redeem_share": 1000},
            {"name": "Silver", "threshold": 3_000_000, "cashback": 700, "max_redeem_share": 2000},
            {"name": "Gold", "threshold": 10_000_000, "cashback": 1500, "max_redeem_share": 3000},
        ]
    })
}

async fn deliver(http: &reqwest::Client, hook: &str, record: u64, rub: &str, attendance: i32) {
    let body = record_webhook(&Record {
        company_id: "4564",
        record_id: record,
        client_id: 7_700,
        client_name: "Клиентка",
        phone: PHONE,
        cost: rub,
        attendance,
        deleted: false,
        changed_at_s: 60 + 10 * record as u32 + u32::from(attendance < 0),
    });
    let resp = http
        .post(hook)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        200,
        "{}",
        resp.text().await.unwrap()
    );
}

async fn wait_for_text(telegram: &wiremock::MockServer, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let texts = texts_to(telegram, CHAT).await;
        if texts.iter().any(|t| t.contains(needle)) {
            return texts;
        }
        assert!(Instant::now() < deadline, "no {needle:?} in {texts:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn levels_from_program_set_to_the_review_through_the_running_gateway() {
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

    // `program show` prints the program as `program set` reads it back.
    let shown = run(&env, &["program", "show", "--partner", &p]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let mut program: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(program["cashback"], json!(500));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("program.json");
    let file = file.to_str().unwrap();

    // Mistakes are refused with what is wrong (status 2), and nothing changes.
    let mut bad = program.clone();
    bad["levels"] = levels();
    bad["levels"]["tiers"][2]["threshold"] = json!(2_000_000);
    std::fs::write(file, bad.to_string()).unwrap();
    let out = run(&env, &["program", "set", "--partner", &p, "--file", file]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("level Gold starts at 2000000, not above the level before it"),
        "{}",
        stderr(&out)
    );
    bad = program.clone();
    bad["cashbak"] = json!(700);
    std::fs::write(file, bad.to_string()).unwrap();
    let out = run(&env, &["program", "set", "--partner", &p, "--file", file]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown field `cashbak`"),
        "{}",
        stderr(&out)
    );
    bad = program.clone();
    bad["max_redeem_share"] = json!(12_000);
    std::fs::write(file, bad.to_string()).unwrap();
    let out = run(&env, &["program", "set", "--partner", &p, "--file", file]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("12000"), "{}", stderr(&out));

    bad = program.clone();
    bad["campaigns"] = json!([{
        "name": "Утро", "starts_on": "2026-12-10", "ends_on": "2026-12-01",
        "reward": {"kind": "multiplier", "percent": 200}
    }]);
    std::fs::write(file, bad.to_string()).unwrap();
    let out = run(&env, &["program", "set", "--partner", &p, "--file", file]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains("campaign \"Утро\" ends on 2026-12-01 before it starts on 2026-12-10"),
        "{}",
        stderr(&out)
    );

    program["levels"] = levels();
    std::fs::write(file, program.to_string()).unwrap();
    let set = env.cli(&["program", "set", "--partner", &p, "--file", file]);
    assert_eq!(set["version"], json!(2));
    let versions = env.cli(&["program", "show", "--partner", &p, "--versions"]);
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
    // Visits are timed to the second: the next ones are after the change.
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let conn = connect_yclients(store, &config, partner_id.0, None).await;
    let hook = live_hook(&gateway, &conn);
    let http = reqwest::Client::new();

    // 25 000 ₽ at the base level's 3 %.
    deliver(&http, &hook, 1, "25000", 1).await;
    let phone = Phone::parse_international(PHONE).unwrap();
    let client = store
        .client_by_phone(partner_id, &phone)
        .await
        .unwrap()
        .unwrap();
    store
        .set_telegram_chat(partner_id, client.id, Some(CHAT))
        .await
        .unwrap();
    assert_eq!(
        store.balance(partner_id, client.id).await.unwrap(),
        Points(750)
    );
    // 6 000 ₽ crosses 30 000 ₽: still 3 % for this visit, and she is told she is Silver.
    deliver(&http, &hook, 2, "6000", 1).await;
    let texts = wait_for_text(&telegram, "Новый уровень").await;
    assert!(
        texts.contains(
            &"🏅 Новый уровень в «Лотос»: Silver (был Base). Теперь кешбэк 7%, баллами можно \
              оплатить до 20% счёта."
                .to_owned()
        ),
        "{texts:?}"
    );
    assert_eq!(
        store.balance(partner_id, client.id).await.unwrap(),
        Points(930)
    );
    // The next visit earns 7 %.
    deliver(&http, &hook, 3, "1000", 1).await;
    assert_eq!(
        store.balance(partner_id, client.id).await.unwrap(),
        Points(1_000)
    );
    let shown = env.cli(&["client", "level", "--partner", &p, "--phone", PHONE]);
    assert_eq!(shown["progress"]["level"], json!("Silver"));
    assert_eq!(shown["progress"]["value"], json!(3_200_000));
    assert_eq!(shown["progress"]["next"], json!(["Gold", 6_800_000]));
    assert_eq!(shown["changes"][0]["reason"], json!("rise"));

    // The crossing visit was a no-show after all: 26 000 ₽ is below Silver, but she stays
    // Silver until the review, through many housekeeping passes.
    deliver(&http, &hook, 2, "6000", -1).await;
    assert_eq!(
        store.balance(partner_id, client.id).await.unwrap(),
        Points(820)
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let kept = env.cli(&["client", "level", "--partner", &p, "--phone", PHONE]);
    assert_eq!(kept["progress"]["level"], json!("Silver"));

    // Ninety days on (the level's start moved back), the running gateway reviews her by itself.
    let mut db = sqlx::AnyConnection::connect(&schema.url).await.unwrap();
    let ninety_days = 90 * 86_400_000_i64;
    sqlx::query("UPDATE clients SET level_since_ms = level_since_ms - $1 WHERE partner_id = $2")
        .bind(ninety_days)
        .bind(partner_id.0)
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    let texts = wait_for_text(&telegram, "пересмотрен").await;
    assert!(
        texts.contains(
            &"Уровень в «Лотос» пересмотрен: Base (был Silver). Кешбэк 3%, баллами можно \
              оплатить до 10% счёта."
                .to_owned()
        ),
        "{texts:?}"
    );
    let fell = env.cli(&["client", "level", "--partner", &p, "--phone", PHONE]);
    assert_eq!(fell["progress"]["level"], json!("Base"));
    assert_eq!(fell["changes"][1]["reason"], json!("review"));

    // Staff put her at Silver by hand: a floor, recorded with who did it.
    let set = env.cli(&[
        "client",
        "level",
        "--partner",
        &p,
        "--phone",
        PHONE,
        "--set",
        "Silver",
        "--actor",
        "anna",
    ]);
    assert_eq!(set["progress"]["level"], json!("Silver"));
    assert_eq!(set["floor"], json!("Silver"));
    assert_eq!(set["changes"][2]["actor"], json!("anna"));
    let unknown = run(
        &env,
        &[
            "client",
            "level",
            "--partner",
            &p,
            "--phone",
            PHONE,
            "--set",
            "Platinum",
        ],
    );
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("no level is named Platinum"),
        "{}",
        stderr(&unknown)
    );
    // Told once for each change, never twice.
    let about_levels = |texts: &[String]| {
        texts
            .iter()
            .filter(|t| t.contains("уровень") || t.contains("Уровень"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while about_levels(&texts_to(&telegram, CHAT).await) < 3 {
        assert!(
            Instant::now() < deadline,
            "the level set by hand was not told"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let texts = texts_to(&telegram, CHAT).await;
    assert_eq!(about_levels(&texts), 3, "{texts:?}");
    gateway.stop().await.unwrap();
    schema.drop().await;
}
