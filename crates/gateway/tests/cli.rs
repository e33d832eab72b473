//! The gateway binary as an operator runs it.

use loyalty_core::LedgerStore;
use loyalty_core::PartnerStore;
use std::process::{Command, Output};

use sqlx::Connection;

fn gateway(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loyalty-gateway"));
    cmd.args(args);
    for var in ["DATABASE_URL", "LOYALTY_CONFIG", "LOYALTY_DATA_DIR"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run loyalty-gateway")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A command's help shows its own options first; the settings every command shares follow
/// under their own heading, not interleaved with them.
#[test]
fn a_commands_help_puts_its_own_options_before_the_deployment_settings() {
    for command in [
        &["client", "accrue", "--help"][..],
        &["redeem", "--help"][..],
        &["serve", "--help"][..],
    ] {
        let out = gateway(command, &[]);
        assert!(out.status.success(), "{command:?}");
        let help = text(&out.stdout);
        let own = help.find("Options:").unwrap_or_else(|| panic!("{help}"));
        let shared = help
            .find("Deployment settings (every command):")
            .unwrap_or_else(|| panic!("{help}"));
        let database = help
            .find("--database-url")
            .unwrap_or_else(|| panic!("{help}"));
        assert!(own < shared && shared < database, "{command:?}:\n{help}");
        if command[0] == "client" {
            // (after the usage line, which names it too)
            let partner = own
                + help[own..]
                    .find("--partner")
                    .unwrap_or_else(|| panic!("{help}"));
            assert!(partner < shared, "{help}");
        }
        assert!(help.contains("Output:"), "{help}");
    }
}

#[test]
fn help_explains_itself() {
    let out = gateway(&["--help"], &[]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needle in [
        "migrate",
        "DATABASE_URL",
        "sqlite",
        "postgres",
        "--config",
        "--json",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
}

#[test]
fn migrate_creates_the_embedded_sqlite_default_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested/data");
    let data = data.to_str().unwrap();
    let out = gateway(&["migrate", "--json"], &[("LOYALTY_DATA_DIR", data)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(json["backend"], "sqlite");
    assert!(json["applied"].as_u64().unwrap() >= 1);
    assert!(dir.path().join("nested/data/loyalty.db").exists());
    let again = gateway(&["migrate"], &[("LOYALTY_DATA_DIR", data)]);
    assert!(again.status.success());
    assert!(
        text(&again.stdout).contains("up to date"),
        "{}",
        text(&again.stdout)
    );
}

#[test]
fn migrate_postgres_from_a_config_file() {
    let admin = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let schema = format!("lbt_cli_{}", std::process::id());
    rt.block_on(async {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&admin)
            .await
            .expect("PostgreSQL is required: run `cargo xtask test` or set TEST_DATABASE_URL");
        let create = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&mut conn)
            .await
            .unwrap();
    });
    let sep = if admin.contains('?') { '&' } else { '?' };
    let url = format!("{admin}{sep}options[search_path]={schema}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, format!("database_url = {url:?}\n")).unwrap();
    let out = gateway(
        &["--config", file.to_str().unwrap(), "migrate", "--json"],
        &[],
    );
    let ok = out.status.success();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    rt.block_on(async {
        let mut conn = sqlx::AnyConnection::connect(&admin).await.unwrap();
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $1 \
             AND table_name IN ('ledger_entries', 'outbox', 'balances')",
        )
        .bind(&schema)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let drop = format!("DROP SCHEMA {schema} CASCADE");
        sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(&mut conn)
            .await
            .unwrap();
        assert!(ok, "{}", text(&out.stderr));
        assert_eq!(json["backend"], "postgres");
        assert_eq!(tables, 3);
    });
}

#[test]
fn bad_database_urls_fail_clearly_without_leaking_the_password() {
    let out = gateway(
        &["migrate"],
        &[("DATABASE_URL", "mysql://root:hunter2@db/x")],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("neither postgres"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let out = gateway(
        &["migrate", "--json"],
        &[("DATABASE_URL", "postgres://app:hunter2@127.0.0.1:1/x")],
    );
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON error");
    let msg = json["error"].as_str().unwrap();
    assert!(
        msg.contains("cannot open postgres://app:***@127.0.0.1:1/x"),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn config_shows_sources_and_hides_passwords() {
    let out = gateway(
        &["config"],
        &[("DATABASE_URL", "postgres://app:hunter2@db.internal/loyalty")],
    );
    assert!(out.status.success());
    let shown = text(&out.stdout);
    assert!(
        shown.contains("postgres://app:***@db.internal/loyalty"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"));
    let out = gateway(&["config"], &[("LOYALTY_CONFIG", "/nonexistent/gw.toml")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read config file /nonexistent/gw.toml"));
}

fn inspect(args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loyalty-gateway"));
    cmd.arg("inspect-webhook").args(args);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    if let Some(mut pipe) = child.stdin.take() {
        // A command that fails on its arguments exits without reading standard input.
        if let Err(e) = pipe.write_all(stdin.unwrap_or_default()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "stdin: {e}");
        }
    }
    child.wait_with_output().expect("wait")
}

fn fixture_path(name: &str) -> String {
    format!("{}/../../fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect()
}

#[test]
fn inspect_webhook_prints_one_object_per_event() {
    let out = inspect(
        &[
            "--crm",
            "yclients",
            &fixture_path("yclients/record_came.json"),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events = lines(&out);
    assert_eq!(events.len(), 1);
    let v = &events[0];
    assert_eq!(v["kind"], "visit");
    assert_eq!(v["record_id"], "2");
    assert_eq!(v["company_id"], "4564");
    assert_eq!(v["status"], "came");
    assert_eq!(v["phone"], "+79001234567");
    assert_eq!(v["amount_minor"], 400_000);
    assert_eq!(v["needs_refetch"], false);

    let partial = std::fs::read(fixture_path("yclients/record_partial.json")).unwrap();
    let out = inspect(&["--crm", "yclients", "-"], Some(&partial));
    let v = &lines(&out)[0];
    assert_eq!(
        (v["needs_refetch"].clone(), v["status"].clone()),
        (true.into(), "waiting".into())
    );
    assert!(v["phone"].is_null());

    let out = inspect(
        &[
            "--crm",
            "yclients",
            &fixture_path("yclients/events_array.json"),
        ],
        None,
    );
    let kinds: Vec<_> = lines(&out).iter().map(|e| e["kind"].clone()).collect();
    assert_eq!(kinds, ["visit", "client"]);

    let out = inspect(
        &[
            "--crm",
            "altegio",
            "--currency",
            "KZT",
            &fixture_path("altegio/record_came.json"),
        ],
        None,
    );
    let v = &lines(&out)[0];
    assert_eq!(
        (v["currency"].clone(), v["amount_minor"].clone()),
        ("KZT".into(), 1_200_000.into())
    );

    // Arnica: services and goods paid, the certificate not; the organisation's own time.
    let out = inspect(
        &[
            "--crm",
            "arnica",
            &fixture_path("arnica/webhook_visit_came.json"),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v = &lines(&out)[0];
    assert_eq!(
        (
            v["company_id"].clone(),
            v["record_id"].clone(),
            v["status"].clone()
        ),
        ("7781".into(), "90817".into(), "came".into())
    );
    assert_eq!(v["amount_minor"], 465_050);
    assert_eq!(v["phone"], "+79161234567");
}

#[test]
fn inspect_webhook_rejects_bad_input_with_status_2() {
    for (args, stdin, needle) in [
        (
            vec!["--crm", "yclients", "-"],
            &b"{\"company_id\": 1"[..],
            "not valid JSON",
        ),
        (vec!["--crm", "yclients", "-"], &b""[..], "empty"),
        (
            vec!["--crm", "yclients", "-"],
            &b"{\"resource\": \"record\"}"[..],
            "company_id",
        ),
        (
            vec!["--crm", "yclients", "/nonexistent/body.json"],
            &b""[..],
            "cannot read",
        ),
        (
            vec!["--crm", "dikidi", "-"],
            &b"{}"[..],
            "yclients, altegio, arnica and beautypro",
        ),
        (
            vec!["--crm", "arnica", "-"],
            &b"{\"object\": \"invoice\", \"type\": \"create\", \"orgId\": 1}"[..],
            "invoice",
        ),
        (vec!["--crm", "amo", "-"], &b"{}"[..], "unknown CRM"),
    ] {
        let out = inspect(&args, Some(stdin));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(needle),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn the_rewards_catalog_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let env = [("LOYALTY_DATA_DIR", data)];
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = gateway(&all, &env);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("one JSON object")
    };
    json(&["migrate"]);
    let partner = json(&["partner", "add", "--name", "Лотос", "--cashback-bps", "500"]);
    assert_eq!(partner["id"], 1);
    let cert = json(&[
        "reward",
        "add",
        "--partner",
        "1",
        "--title",
        "Сертификат 500 ₽",
        "--points",
        "500",
        "--certificate-minor",
        "50000",
    ]);
    assert_eq!(
        cert["reward"]["kind"],
        serde_json::json!({"kind": "certificate", "value_minor": 50000})
    );
    json(&[
        "reward",
        "add",
        "--partner",
        "1",
        "--title",
        "Маникюр",
        "--points",
        "1200",
        "--service-id",
        "8401",
        "--price-minor",
        "120000",
    ]);
    let listed = json(&["reward", "list", "--partner", "1"]);
    assert_eq!(listed["rewards"].as_array().unwrap().len(), 2);
    assert_eq!(
        json(&["reward", "remove", "--partner", "1", "--reward", "1"])["removed"],
        1
    );
    let listed = json(&["reward", "list", "--partner", "1"]);
    assert_eq!(listed["rewards"][0]["title"], "Маникюр");
    assert_eq!(
        json(&["reward", "list", "--partner", "1", "--all"])["rewards"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Operator mistakes: exit status 2 and one JSON error object.
    for bad in [
        &[
            "reward",
            "add",
            "--partner",
            "1",
            "--title",
            "x",
            "--points",
            "0",
            "--certificate-minor",
            "1",
        ][..],
        &[
            "reward",
            "add",
            "--partner",
            "1",
            "--title",
            "x",
            "--points",
            "5",
        ][..],
        &[
            "reward",
            "add",
            "--partner",
            "9",
            "--title",
            "x",
            "--points",
            "5",
            "--certificate-minor",
            "1",
        ][..],
        &["reward", "remove", "--partner", "1", "--reward", "1"][..],
    ] {
        let mut args = bad.to_vec();
        args.push("--json");
        let out = gateway(&args, &env);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let err: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            err["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad:?}"
        );
    }
}

#[test]
fn inspect_webhook_reads_phones_in_the_company_country() {
    let mut body: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture_path("yclients/record_came.json")).unwrap())
            .unwrap();
    body["data"]["client"]["phone"] = "8 029 123-45-67".into();
    let body = body.to_string();
    let out = inspect(
        &["--crm", "yclients", "--country", "BY", "-"],
        Some(body.as_bytes()),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(lines(&out)[0]["phone"], "+375291234567");
    // Read as Russian, the same digits are no number at all: the client is known by CRM id only.
    let out = inspect(&["--crm", "yclients", "-"], Some(body.as_bytes()));
    let v = &lines(&out)[0];
    assert!(v["phone"].is_null(), "{v}");
    assert_eq!(v["client_id"], "18936825");
    let out = inspect(
        &["--crm", "yclients", "--country", "XX", "-"],
        Some(body.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("XX"), "{}", text(&out.stderr));
}

/// `doctor phones` through the binary, on an embedded database seeded with the numbers the old
/// reader stored for a Belarusian salon.
#[test]
fn doctor_phones_reports_the_wrong_numbers_and_applies_the_free_ones() {
    use loyalty_core::event::ClientRef;
    use loyalty_core::{ConnectionId, LoyaltyEngine, PartnerId, Phone};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let env = [("LOYALTY_DATA_DIR", data.as_str())];
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = gateway(&all, &env);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("one JSON object")
    };
    json(&["migrate"]);
    let partner = json(&[
        "partner",
        "add",
        "--name",
        "Васілёк",
        "--cashback-bps",
        "500",
        "--currency",
        "BYN",
        "--country",
        "BY",
    ]);
    let partner_id = partner["id"].as_i64().unwrap();
    let conn = json(&[
        "connection",
        "add",
        "--partner",
        &partner_id.to_string(),
        "--crm",
        "yclients",
        "--company-id",
        "777",
    ]);

    // Seed: four clients with 100 points each, as the old reader stored their numbers.
    let url = format!("sqlite://{data}/loyalty.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = std::sync::Arc::new(loyalty_store::SqlStore::connect(&url).await.unwrap());
        let connection = store
            .connection(ConnectionId(conn["id"].as_i64().unwrap()))
            .await
            .unwrap()
            .unwrap();
        let engine = LoyaltyEngine::new(store.clone());
        for (i, phone) in [
            "+70291234567",
            "+70441234567",
            "+375441234567",
            "+71234567890",
        ]
        .iter()
        .enumerate()
        {
            let mut body: serde_json::Value = serde_json::from_slice(
                &std::fs::read(fixture_path("yclients/record_came.json")).unwrap(),
            )
            .unwrap();
            body["company_id"] = 777.into();
            body["resource_id"] = (100 + i).into();
            body["data"]["id"] = (100 + i).into();
            body["data"]["services"][0]["cost"] = 1000.into();
            let events = crm_yclients::parse_webhook(
                &crm_yclients::ParseContext {
                    currency: loyalty_core::Currency::Byn,
                    utc_offset_minutes: 180,
                    country: loyalty_core::Country::RU,
                },
                body.to_string().as_bytes(),
            )
            .unwrap();
            let loyalty_core::CrmEvent::Visit(mut visit) = events[0].clone() else {
                panic!("{events:?}")
            };
            visit.client = Some(ClientRef {
                external_id: Some(format!("c{i}")),
                phone: Some(Phone::from_e164(phone).unwrap()),
                name: None,
            });
            visit.loyalty_paid = loyalty_core::LoyaltyPaid::NotReported;
            engine
                .apply_event(&connection, &loyalty_core::CrmEvent::Visit(visit))
                .await
                .unwrap();
        }
        let totals = store.account_totals(PartnerId(partner_id)).await.unwrap();
        assert!(totals.is_balanced());
        store.close().await;
    });

    let partner_arg = partner_id.to_string();
    let report = json(&["doctor", "phones", "--partner", &partner_arg]);
    assert_eq!(report["checked"], 4);
    let findings: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["stored"].as_str().unwrap().to_owned(),
                f["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        findings,
        [
            ("+70291234567".into(), "would_change".into()),
            ("+70441234567".into(), "collision".into()),
            ("+71234567890".into(), "invalid".into()),
        ]
    );
    assert_eq!(report["findings"][0]["to"], "+375291234567");
    assert_eq!(report["findings"][1]["to"], "+375441234567");

    let applied = json(&["doctor", "phones", "--partner", &partner_arg, "--apply"]);
    assert_eq!(
        (
            applied["changed"].clone(),
            applied["collisions"].clone(),
            applied["invalid"].clone()
        ),
        (1.into(), 1.into(), 1.into())
    );
    // The corrected client keeps its points, found by the number as the desk types it.
    let shown = json(&[
        "client",
        "show",
        "--partner",
        &partner_arg,
        "--phone",
        "8 029 123-45-67",
    ]);
    assert_eq!(
        (shown["phone"].clone(), shown["balance"].clone()),
        ("+375291234567".into(), 50.into())
    );
    let again = json(&["doctor", "phones"]);
    assert_eq!(
        (again["would_change"].clone(), again["collisions"].clone()),
        (0.into(), 1.into())
    );

    // The text form says what to do.
    let out = gateway(&["doctor", "phones"], &env);
    let said = text(&out.stdout);
    assert!(
        said.contains("+70441234567") && said.contains("one person?"),
        "{said}"
    );
    let out = gateway(&["doctor", "phones", "--partner", "999"], &env);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("partner 999 does not exist"));
    rt.block_on(async {
        let store = loyalty_store::SqlStore::connect(&url).await.unwrap();
        let totals = store.account_totals(PartnerId(partner_id)).await.unwrap();
        assert!(totals.is_balanced(), "{totals:?}");
        store.close().await;
    });
}

/// The operator sees what waits for the CRM and what was given up on, and replays a dead
/// letter.
#[test]
fn inbox_list_shows_dead_letters_and_replay_makes_them_due() {
    use loyalty_core::inbox::{IntakeStore, Source};
    use loyalty_core::{ConnectionId, PartnerId};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let env = [("LOYALTY_DATA_DIR", data.as_str())];
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = gateway(&all, &env);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("one JSON object")
    };
    json(&["migrate"]);
    let partner = json(&["partner", "add", "--name", "Лотос", "--cashback-bps", "500"]);
    let conn = json(&[
        "connection",
        "add",
        "--partner",
        &partner["id"].to_string(),
        "--crm",
        "yclients",
        "--company-id",
        "4564",
    ]);
    let url = format!("sqlite://{data}/loyalty.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let id = rt.block_on(async {
        let store = loyalty_store::SqlStore::connect(&url).await.unwrap();
        let connection = store
            .connection(ConnectionId(conn["id"].as_i64().unwrap()))
            .await
            .unwrap()
            .unwrap();
        let body = std::fs::read(fixture_path("yclients/record_partial.json")).unwrap();
        let events = crm_yclients::parse_webhook(
            &crm_yclients::YclientsConfig::new(crm_yclients::Flavor::YCLIENTS, "4564").context,
            &body,
        )
        .unwrap();
        let partner = PartnerId(partner["id"].as_i64().unwrap());
        let id = store
            .enqueue_inbox(partner, connection.id, &events[0], Source::Webhook, 1_000)
            .await
            .unwrap();
        store.claim_inbox(1_000, 10, 2_000).await.unwrap();
        store
            .inbox_failed(id, "CRM: the CRM refused the credentials: bad token", None)
            .await
            .unwrap();
        store.close().await;
        id
    });

    let waiting = json(&["inbox", "list"]);
    assert_eq!(
        (waiting["queued"].clone(), waiting["dead"].clone()),
        (0.into(), 1.into())
    );
    assert!(waiting["items"].as_array().unwrap().is_empty());
    let dead = json(&["inbox", "list", "--dead"]);
    let item = &dead["items"][0];
    assert_eq!(item["id"], id);
    assert_eq!(item["resource"], "record");
    assert_eq!(item["source"], "webhook");
    assert!(item["last_error"].as_str().unwrap().contains("bad token"));
    let out = gateway(&["inbox", "list", "--dead"], &env);
    assert!(
        text(&out.stdout).contains("1 given up on"),
        "{}",
        text(&out.stdout)
    );

    assert_eq!(json(&["inbox", "replay", &id.to_string()])["replayed"], id);
    let after = json(&["inbox", "list"]);
    assert_eq!(
        (after["queued"].clone(), after["dead"].clone()),
        (1.into(), 0.into())
    );
    assert_eq!(after["items"][0]["attempts"], 0);
    let out = gateway(&["inbox", "replay", "999"], &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no item 999"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn connection_set_turns_creating_clients_in_the_crm_on_and_off() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let env = [("LOYALTY_DATA_DIR", data.as_str())];
    let run = |args: &[&str]| gateway(args, &env);
    assert!(run(&["migrate"]).status.success());
    assert!(
        run(&["partner", "add", "--name", "Лотос", "--cashback-bps", "500"])
            .status
            .success()
    );
    let with = run(&[
        "connection",
        "add",
        "--partner",
        "1",
        "--crm",
        "yclients",
        "--company-id",
        "4564",
        "--partner-token",
        "p",
        "--user-token",
        "u",
        "--json",
    ]);
    assert!(with.status.success(), "{}", text(&with.stderr));
    let out = run(&["connection", "set", "1", "--create-clients", "on", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["create_clients"], true);
    let out = run(&["connection", "set", "1", "--create-clients", "off"]);
    assert!(
        text(&out.stdout).contains("not created"),
        "{}",
        text(&out.stdout)
    );
    let bad = run(&["connection", "set", "1", "--create-clients", "maybe"]);
    assert_eq!(bad.status.code(), Some(2));
    // Without API tokens the CRM cannot be written to.
    assert!(
        run(&[
            "connection",
            "add",
            "--partner",
            "1",
            "--crm",
            "yclients",
            "--company-id",
            "4565",
        ])
        .status
        .success()
    );
    let refused = run(&["connection", "set", "2", "--create-clients", "on"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("no API tokens"),
        "{}",
        text(&refused.stderr)
    );
    let missing = run(&["connection", "set", "9", "--create-clients", "on"]);
    assert_eq!(missing.status.code(), Some(2));
}

/// `connection add --crm arnica`: the integrator's e-mail and password (the password from the
/// environment too), never printed; tokens, half a login or a bad base URL are usage errors
/// that add nothing.
#[test]
fn an_arnica_connection_takes_a_login_and_never_prints_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let env = [
        ("LOYALTY_DATA_DIR", data.as_str()),
        ("CRM_PASSWORD", "pw-from-env"),
    ];
    let run = |args: &[&str]| gateway(args, &env);
    assert!(run(&["migrate"]).status.success());
    assert!(
        run(&[
            "partner",
            "add",
            "--name",
            "Арника",
            "--cashback-bps",
            "500"
        ])
        .status
        .success()
    );
    let add = |extra: &[&str]| {
        let mut args = vec![
            "--json",
            "connection",
            "add",
            "--partner",
            "1",
            "--crm",
            "arnica",
            "--company-id",
            "7781",
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    for (extra, why) in [
        (&["--partner-token", "p"][..], "not tokens"),
        (&["--email", "not-an-address"][..], "e-mail address"),
        (
            &["--email", "a@b.c", "--base-url", "crm.example"][..],
            "http(s) URL",
        ),
    ] {
        let out = add(extra);
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(said.contains(why), "{extra:?}: {said}");
    }
    let out = add(&["--email", "integrator@salon.example"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(!shown.contains("pw-from-env"), "{shown}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["api"], true);
    assert!(
        v["webhook_url"]
            .as_str()
            .unwrap()
            .contains("/webhooks/arnica/")
    );
    assert!(v["import"].is_i64(), "the history import is queued: {v}");
    // The password lives in the settings only.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stored = rt.block_on(async {
        let store = loyalty_store::SqlStore::connect(&format!("sqlite://{data}/loyalty.db"))
            .await
            .unwrap();
        store
            .connection_settings(loyalty_core::ConnectionId(1))
            .await
            .unwrap()
            .unwrap()
    });
    assert!(
        stored
            .crm_credentials
            .as_deref()
            .unwrap()
            .contains("pw-from-env")
    );
    assert!(!format!("{:?}", stored).contains("pw-from-env"));
    // Only one connection was added.
    let again = add(&["--email", "integrator@salon.example"]);
    assert_eq!(again.status.code(), Some(2));
}

/// `connection add --crm beautypro`: the application's id and secret (the secret from the
/// environment), never printed; another CRM's flags, half an application, a reward strategy
/// the CRM cannot write, or a webhook subscription a CRM has no API for are usage errors.
#[test]
fn a_beautypro_connection_takes_the_application_and_refuses_what_it_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let env = [
        ("LOYALTY_DATA_DIR", data.as_str()),
        ("CRM_APP_SECRET", "secret-from-env"),
    ];
    let run = |args: &[&str]| gateway(args, &env);
    assert!(run(&["migrate"]).status.success());
    assert!(
        run(&["partner", "add", "--name", "Бьюти", "--cashback-bps", "500"])
            .status
            .success()
    );
    let said = |out: &Output| format!("{}{}", text(&out.stdout), text(&out.stderr));
    let add = |crm: &str, company: &str, extra: &[&str]| {
        let mut args = vec![
            "--json",
            "connection",
            "add",
            "--partner",
            "1",
            "--crm",
            crm,
            "--company-id",
            company,
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    for (extra, why) in [
        (&["--email", "a@b.c"][..], "--app-id and --app-secret"),
        (&["--api-url", "ftp://proxy"][..], "http(s) URL"),
    ] {
        let out = add("beautypro", "123456", extra);
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        assert!(said(&out).contains(why), "{extra:?}: {}", said(&out));
    }
    let out = add(
        "beautypro",
        "123456",
        &["--app-id", "a47cbc05-5ce6-4551-9456-2855b52a17f0"],
    );
    assert!(out.status.success(), "{}", said(&out));
    assert!(!said(&out).contains("secret-from-env"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["api"], true);
    assert!(
        v["webhook_url"]
            .as_str()
            .unwrap()
            .contains("/webhooks/beautypro/")
    );
    // Beauty Pro writes certificates with nothing else to name; Arnica cannot.
    let out = run(&[
        "--json",
        "connection",
        "rewards",
        "1",
        "--strategy",
        "certificate",
    ]);
    assert!(out.status.success(), "{}", said(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["strategy"], "crm_certificate");
    let arnica = add("arnica", "7781", &[]);
    assert!(arnica.status.success(), "{}", said(&arnica));
    let out = run(&["connection", "rewards", "2", "--strategy", "certificate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(said(&out).contains("gateway-code"), "{}", said(&out));
    // Without API tokens the webhook is pasted into the CRM: nothing to subscribe through it.
    let yclients = add("yclients", "4564", &[]);
    assert!(yclients.status.success(), "{}", said(&yclients));
    let out = run(&["connection", "webhooks", "3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(said(&out).contains("paste"), "{}", said(&out));
}

/// The demo, as a newcomer runs it: the day at the YCLIENTS salon, a clinic on Arnica where
/// the same client's visit counts once and is told, a studio on DIKIDI whose export is
/// imported and whose administrator enters a visit in the bot, and a salon whose own POS
/// pushes a visit through the partner API and is told of its points by a signed webhook.
#[test]
fn the_demo_runs_a_yclients_salon_and_a_clinic_on_arnica() {
    let out = gateway(&["demo", "--json"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let second = &summary["second_salon"];
    assert_eq!(second["crm"], "arnica");
    assert_eq!(second["anna_balance"], 210, "{second}");
    assert_eq!(
        second["deliveries"],
        serde_json::json!(["20:10 applied +210", "20:10 duplicate +0"])
    );
    let third = &summary["third_salon"];
    assert_eq!(third["crm"], "dikidi");
    assert_eq!(
        (
            third["import"]["accepted"].clone(),
            third["import"]["applied"].clone()
        ),
        (serde_json::json!(3), serde_json::json!(3)),
        "{third}"
    );
    assert_eq!(third["import"]["rejected"][0]["reason"], "no phone");
    assert_eq!(
        third["anna_balance"], 125,
        "the past is history; the visit entered in the bot earns: {third}"
    );
    // A salon on its own POS: a visit pushed through the partner API, its retry answered
    // the same, its points told to the salon's receiver, signed.
    let fourth = &summary["fourth_salon"];
    assert_eq!(
        (
            fourth["visit"]["outcome"].as_str(),
            fourth["visit"]["points"].as_i64()
        ),
        (Some("applied"), Some(300)),
        "{fourth}"
    );
    assert_eq!(fourth["replayed"], true);
    // Its own rule: tried on the first visit (not a return), then fired by the second.
    assert_eq!(fourth["preview"]["fires"], false, "{fourth}");
    assert_eq!(
        fourth["preview"]["failing"],
        serde_json::json!(["min_visits"])
    );
    assert_eq!(fourth["returned"]["points"], 425, "{fourth}");
    // Then she asked for her data and to be forgotten.
    assert_eq!(fourth["forgotten"]["exported_visits"], 2, "{fourth}");
    assert!(
        fourth["forgotten"]["phone"]
            .as_str()
            .unwrap()
            .starts_with("+999"),
        "{fourth}"
    );
    let mut told: Vec<(String, bool)> = fourth["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["type"].as_str().unwrap().to_owned(),
                w["signature_checked"] == true,
            )
        })
        .collect();
    told.sort();
    assert_eq!(
        told,
        vec![
            ("points.accrued".to_owned(), true),
            ("points.accrued".to_owned(), true),
            ("trigger.fired".to_owned(), true)
        ],
        "{fourth}"
    );
    assert_eq!(summary["outbox_pending"], 0);
    assert_eq!(summary["dashboard"]["owner"]["email"], "owner@lotos.demo");
    assert!(
        summary["clients"].as_array().unwrap().len() >= 5,
        "{summary}"
    );
}

/// `client accrue` / `client debit`: the Basic plan's manual work through the binary. A key
/// makes a retry the same posting and refuses other input under it; a debit never goes below
/// zero; bad input is a usage error (status 2) that writes nothing; the books balance.
#[test]
fn points_accrued_and_debited_by_hand_from_the_cli() {
    use loyalty_core::{LedgerStore, LoyaltyEngine, PartnerId, Phone};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let env = [("LOYALTY_DATA_DIR", data.as_str())];
    let run = |args: &[&str]| -> Output {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        gateway(&all, &env)
    };
    let json = |args: &[&str]| -> serde_json::Value {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stdout));
        serde_json::from_slice(&out.stdout).expect("one JSON object")
    };
    json(&["migrate"]);
    let partner = json(&["partner", "add", "--name", "Лотос", "--cashback-bps", "500"]);
    let partner_id = partner["id"].as_i64().unwrap();
    let p = partner_id.to_string();

    // A client who joined at the desk (no CRM).
    let url = format!("sqlite://{data}/loyalty.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(async {
        std::sync::Arc::new(loyalty_store::SqlStore::connect(&url).await.unwrap())
    });
    rt.block_on(async {
        let engine = LoyaltyEngine::new(store.clone());
        let phone = Phone::from_e164("+79161234567").unwrap();
        engine
            .enroll(PartnerId(partner_id), &phone, Some("Анна"))
            .await
            .unwrap();
    });

    let accrue = |points: &str, key: &str| {
        run(&[
            "client",
            "accrue",
            "--partner",
            &p,
            "--phone",
            "8 916 123-45-67",
            "--points",
            points,
            "--reason",
            "подарок к празднику",
            "--key",
            key,
        ])
    };
    let first = accrue("50", "k1");
    assert!(first.status.success(), "{}", text(&first.stdout));
    let first: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(
        (first["points"].clone(), first["balance"].clone()),
        (50.into(), 50.into())
    );
    assert_eq!(first["phone"], "+7******4567");

    // The same key again: the same posting, nothing added.
    let again: serde_json::Value = serde_json::from_slice(&accrue("50", "k1").stdout).unwrap();
    assert_eq!(again["entry_id"], first["entry_id"]);
    assert_eq!(again["balance"], 50);
    // The same key with other input: refused.
    let clash = accrue("60", "k1");
    assert_eq!(clash.status.code(), Some(2), "{}", text(&clash.stdout));
    assert!(
        text(&clash.stdout).contains("k1"),
        "{}",
        text(&clash.stdout)
    );

    let debit = |points: &str| {
        run(&[
            "client",
            "debit",
            "--partner",
            &p,
            "--phone",
            "+7 916 123 45 67",
            "--points",
            points,
            "--reason",
            "оплата стрижки",
        ])
    };
    // More than the balance, zero, or a stranger: usage errors, nothing written.
    for (out, says) in [
        (debit("51"), "not enough points"),
        (debit("0"), "positive"),
        (
            run(&[
                "client",
                "debit",
                "--partner",
                &p,
                "--phone",
                "89160000000",
                "--points",
                "1",
                "--reason",
                "x",
            ]),
            "not a client",
        ),
        (
            run(&[
                "client",
                "accrue",
                "--partner",
                &p,
                "--phone",
                "89161234567",
                "--points",
                "1",
                "--reason",
                " ",
            ]),
            "--reason",
        ),
    ] {
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
        assert!(
            text(&out.stdout).to_lowercase().contains(says),
            "{says}: {}",
            text(&out.stdout)
        );
    }
    let spent: serde_json::Value = serde_json::from_slice(&debit("30").stdout).unwrap();
    assert_eq!(
        (spent["points"].clone(), spent["balance"].clone()),
        ((-30).into(), 20.into())
    );

    // Shown in the client's history with their reasons; the books balance.
    let shown = json(&["client", "show", "--partner", &p, "--phone", "89161234567"]);
    assert_eq!(shown["balance"], 20);
    let reasons: Vec<(i64, String)> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["points"].as_i64().unwrap(),
                h["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            (-30, "оплата стрижки".to_owned()),
            (50, "подарок к празднику".to_owned())
        ]
    );
    rt.block_on(async {
        let totals = store.account_totals(PartnerId(partner_id)).await.unwrap();
        assert!(totals.is_balanced(), "{totals:?}");
        assert_eq!(totals.outstanding, loyalty_core::Points(20));
        store.close().await;
    });
}

/// `analytics fit --summary`: the CDNOW summary gives the published BG/NBD and Gamma-Gamma fits
/// and each customer's P(alive) and expected visits in order; a malformed file is one clear
/// error naming its line; no database is needed.
#[test]
fn analytics_fit_reads_a_lifetimes_summary() {
    let file = fixture_path("cdnow/cdnow_summary.csv");
    let out = gateway(
        &[
            "analytics",
            "fit",
            "--summary",
            &file,
            "--horizon",
            "39",
            "--json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let at = |p: &str, digits: usize| {
        format!(
            "{:.*}",
            digits,
            v.pointer(p).and_then(|x| x.as_f64()).unwrap_or(f64::NAN)
        )
    };
    assert_eq!(at("/bgnbd/r", 3), "0.243");
    assert_eq!(at("/bgnbd/alpha", 3), "4.414");
    assert_eq!(at("/bgnbd/a", 3), "0.793");
    assert_eq!(at("/bgnbd/b", 3), "2.426");
    assert_eq!(at("/bgnbd/log_likelihood", 1), "-9582.4");
    assert_eq!(at("/gamma_gamma/p", 2), "6.25");
    assert_eq!(at("/gamma_gamma/q", 2), "3.74");
    let customers = v["customers"].as_array().expect("customers");
    assert_eq!(customers.len(), 2_357);
    assert_eq!(at("/customers/0/expected_visits", 3), "1.226");
    assert_eq!(v["customers"][2]["p_alive"], serde_json::json!(1.0));

    let dir = tempfile::tempdir().expect("dir");
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "frequency,recency,T\n1,2,3\n1,x,3\n").expect("write");
    let out = gateway(
        &[
            "analytics",
            "fit",
            "--summary",
            bad.to_str().unwrap_or_default(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("line 3: recency: \"x\" is not a number"),
        "{}",
        text(&out.stderr)
    );
}
