//! Plans and the audit log through the binary and the running gateway: a Basic partner cannot
//! connect a CRM, its CRM webhooks are refused with a message naming the plan and kept for the
//! operator, manual accrual works on Basic; `audit --partner` lists each plan change, manual
//! accrual and debit, program change and code used at the desk with who, from where and when.

mod common;

use std::process::Output;

use common::binary::Env;
use common::{PUBLIC_URL, PgSchema, connect_yclients, live_hook, serve_on};
use loyalty_core::{LoyaltyEngine, PartnerId, Phone};
use loyalty_gateway::config::Overrides;
use loyalty_gateway::sample::{Record, record_webhook};
use serde_json::{Value, json};

const PHONE: &str = "+79161230088";

fn run(env: &Env, args: &[&str]) -> Output {
    env.command(false).args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_basic_partner_works_by_hand_its_webhooks_are_refused_and_the_audit_log_says_who() {
    let schema = PgSchema::new().await;
    let overrides = Overrides {
        public_url: Some(PUBLIC_URL.into()),
        ..Overrides::default()
    };
    let (gateway, config) = serve_on(&schema, overrides).await;
    let env = Env {
        vars: vec![("DATABASE_URL", schema.url.clone())],
    };
    let basic = env.cli(&[
        "partner",
        "add",
        "--name",
        "Лотос",
        "--cashback-bps",
        "500",
        "--plan",
        "basic",
        "--actor",
        "owner",
    ]);
    assert_eq!(basic["plan"], json!("basic"));
    let p = basic["id"].to_string();
    let partner = PartnerId(basic["id"].as_i64().unwrap());

    // Basic has no CRM integration: connecting one is refused with the plan named.
    let out = run(
        &env,
        &[
            "connection",
            "add",
            "--partner",
            &p,
            "--crm",
            "yclients",
            "--company-id",
            "4564",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is on the Basic plan: the CRM integration needs Pro or above"),
        "{}",
        stderr(&out)
    );

    // Connected while on Pro, then back to Basic: the CRM's webhooks are refused and kept.
    let up = env.cli(&[
        "partner",
        "plan",
        "--partner",
        &p,
        "--plan",
        "pro",
        "--actor",
        "owner",
    ]);
    assert_eq!(
        (up["plan"].clone(), up["was"].clone()),
        (json!("pro"), json!("basic"))
    );
    let conn = connect_yclients(&gateway.store, &config, partner.0, None).await;
    env.cli(&[
        "partner",
        "plan",
        "--partner",
        &p,
        "--plan",
        "basic",
        "--actor",
        "owner",
    ]);
    let hook = live_hook(&gateway, &conn);
    let body = record_webhook(&Record {
        company_id: "4564",
        record_id: 88,
        client_id: 8_800,
        client_name: "Клиентка",
        phone: "79161230088",
        cost: "2000",
        attendance: 1,
        deleted: false,
        changed_at_s: 60,
    });
    let resp = reqwest::Client::new()
        .post(&hook)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let answer: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(answer["error"], json!("plan"));
    assert_eq!(
        answer["message"],
        json!(format!(
            "partner {partner} is on the Basic plan: the CRM integration needs Pro or above"
        ))
    );
    let rejected = env.cli(&["rejected"]);
    let kept = &rejected["rejected"][0];
    assert_eq!(kept["http_status"], json!(403));
    assert!(
        kept["reason"].as_str().unwrap().starts_with("plan: "),
        "{kept}"
    );
    assert!(
        kept["body_excerpt"].as_str().unwrap().contains("\"id\":88"),
        "{kept}"
    );

    // A client who joined at the desk; points by hand work on Basic.
    let engine = LoyaltyEngine::new(gateway.store.clone());
    engine
        .enroll(
            partner,
            &Phone::parse_international(PHONE).unwrap(),
            Some("Анна"),
        )
        .await
        .unwrap();
    let accrued = env.cli(&[
        "client",
        "accrue",
        "--partner",
        &p,
        "--phone",
        PHONE,
        "--points",
        "300",
        "--reason",
        "подарок",
        "--key",
        "gift-1",
        "--actor",
        "anna",
    ]);
    assert_eq!(accrued["balance"], json!(300));
    // Without --actor the operator's user name is recorded ($USER; here the test clears it).
    env.cli(&[
        "client",
        "debit",
        "--partner",
        &p,
        "--phone",
        PHONE,
        "--points",
        "100",
        "--reason",
        "оплата",
    ]);
    // A replay of the same key posts nothing and logs nothing.
    env.cli(&[
        "client",
        "accrue",
        "--partner",
        &p,
        "--phone",
        PHONE,
        "--points",
        "300",
        "--reason",
        "подарок",
        "--key",
        "gift-1",
        "--actor",
        "anna",
    ]);
    let program = run(&env, &["program", "show", "--partner", &p]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.json");
    let mut edited: Value = serde_json::from_slice(&program.stdout).unwrap();
    edited["cashback"] = json!(700);
    std::fs::write(&file, edited.to_string()).unwrap();
    env.cli(&[
        "program",
        "set",
        "--partner",
        &p,
        "--file",
        file.to_str().unwrap(),
        "--actor",
        "owner",
    ]);
    let reward = env.cli(&[
        "reward",
        "add",
        "--partner",
        &p,
        "--title",
        "Маска",
        "--points",
        "100",
        "--certificate-minor",
        "10000",
    ]);
    let code = env.cli(&[
        "redeem",
        "--partner",
        &p,
        "--phone",
        PHONE,
        "--reward",
        &reward["id"].to_string(),
    ]);
    let code = code["code"].as_str().unwrap().to_owned();
    env.cli(&[
        "code",
        "use",
        &code,
        "--bill-minor",
        "50000",
        "--actor",
        "desk-2",
    ]);

    let log = env.cli(&["audit", "--partner", &p]);
    let entries = log["entries"].as_array().unwrap();
    let lines: Vec<(String, String, String)> = entries
        .iter()
        .rev()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"]["name"].as_str().unwrap().to_owned(),
                e["actor"]["via"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let owned = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        lines,
        vec![
            owned("plan_changed", "owner", "cli"),
            owned("plan_changed", "owner", "cli"),
            owned("plan_changed", "owner", "cli"),
            owned("manual_accrual", "anna", "cli"),
            owned("manual_debit", "operator", "cli"),
            owned("program_changed", "owner", "cli"),
            owned("code_used", "desk-2", "cli"),
        ]
    );
    let oldest = &entries[entries.len() - 1];
    assert_eq!(oldest["detail"], json!({"from": "pro", "to": "basic"}));
    let accrual = &entries[3];
    assert_eq!(accrual["detail"]["points"], json!(300));
    assert_eq!(accrual["detail"]["reason"], json!("подарок"));
    assert!(entries.iter().all(|e| e["at_ms"].as_i64().unwrap() > 0));
    assert_eq!(entries[0]["detail"]["bill_minor"], json!(50_000));

    gateway.stop().await.unwrap();
    schema.drop().await;
}
