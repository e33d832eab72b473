//! `import file` through the binary on PostgreSQL, over the files in fixtures/import: a dry run
//! writes nothing and reports each refused row; `--apply --accrue` posts each visit's points
//! once and each opening balance once; the same files again change nothing; a corrected amount
//! posts only the difference and rows missing from a later file are reported, not reversed;
//! without `--accrue` visits are history only (the desk's points boundary moves past them),
//! refused when that would take back points already earned; an import killed with SIGKILL and
//! run again gives the books an uninterrupted import gives.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::PgSchema;
use common::binary::{Env, stderr};
use loyalty_core::{LedgerStore, PartnerId};
use loyalty_store::SqlStore;
use serde_json::{Value, json};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/import")
        .join(name)
        .display()
        .to_string()
}

fn partner(env: &Env) -> String {
    env.cli(&["partner", "add", "--name", "Лотос", "--cashback-bps", "500"])["id"].to_string()
}

fn balance(env: &Env, p: &str, phone: &str) -> i64 {
    env.cli(&["client", "show", "--partner", p, "--phone", phone])["balance"]
        .as_i64()
        .unwrap()
}

fn reasons(v: &Value) -> Vec<(String, u64, String)> {
    v["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let file = r["file"].as_str().unwrap();
            let name = Path::new(file).file_name().unwrap().to_string_lossy();
            (
                name.into_owned(),
                r["row"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_checked_then_applied_once_and_corrections_post_the_difference() {
    let schema = PgSchema::new().await;
    let env = Env::migrated(&schema.url);
    let p = partner(&env);
    let (clients, visits, balances) = (
        fixture("clients_utf8_semicolon.csv"),
        fixture("visits_en_utf8bom_comma.csv"),
        fixture("balances_uds.csv"),
    );
    let args = |extra: &[&str]| {
        let mut a = vec![
            "import",
            "file",
            "--partner",
            &p,
            "--clients",
            &clients,
            "--visits",
            &visits,
            "--balances",
            &balances,
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let cli = |a: Vec<String>| env.cli(&a.iter().map(String::as_str).collect::<Vec<_>>());

    // A dry run: every row checked, nothing written.
    let dry = cli(args(&[]));
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        (dry["rows"].clone(), dry["accepted"].clone()),
        (json!(13), json!(8))
    );
    assert_eq!(dry["applied"], 0);
    let refused = reasons(&dry);
    assert_eq!(refused.len(), 5, "{refused:?}");
    assert!(refused.contains(&(
        "visits_en_utf8bom_comma.csv".into(),
        6,
        "a duplicate of row 3".into()
    )));
    assert!(refused.contains(&("balances_uds.csv".into(), 4, "negative points: -5".into())));
    assert!(refused.contains(&(
        "clients_utf8_semicolon.csv".into(),
        5,
        "a duplicate of row 2".into()
    )));
    let out = env.run(&["client", "show", "--partner", &p, "--phone", "+79161234567"]);
    assert_eq!(out.status.code(), Some(2), "the dry run made nobody");

    // Applied with points: 5 % of 3,500.00 and of 5,200.50 (floored), the opening balances.
    let done = cli(args(&["--apply", "--accrue"]));
    assert_eq!(done["dry_run"], false);
    assert_eq!(done["points"], 175 + 260 + 1500 + 250);
    assert_eq!(balance(&env, &p, "+79161234567"), 175 + 1500);
    assert_eq!(balance(&env, &p, "+79167654321"), 260 + 250);
    let store = SqlStore::connect(&schema.url).await.unwrap();
    let id = PartnerId(p.parse().unwrap());
    let books = store.account_totals(id).await.unwrap();
    let entries = store.entry_count(id).await.unwrap();
    assert!(books.is_balanced(), "{books:?}");

    // The same files again: nothing changes.
    let again = cli(args(&["--apply", "--accrue"]));
    assert_eq!(
        (again["applied"].clone(), again["points"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(store.account_totals(id).await.unwrap(), books);
    assert_eq!(store.entry_count(id).await.unwrap(), entries);

    // A corrected export: visit 9002 was 4,200.50, and 9003 is no longer in it.
    let dir = tempfile::tempdir().unwrap();
    let corrected = dir.path().join("corrected.csv");
    let text = std::fs::read_to_string(&visits).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("9003,"))
        .map(|l| l.replace("\"5,200.50\"", "4200.50"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&corrected, text).unwrap();
    let c = corrected.display().to_string();
    let fixed = env.cli(&[
        "import",
        "file",
        "--partner",
        &p,
        "--visits",
        &c,
        "--apply",
        "--accrue",
    ]);
    assert_eq!(
        (fixed["applied"].clone(), fixed["points"].clone()),
        (json!(1), json!(-50))
    );
    assert_eq!(fixed["files"][0]["missing_from_file"], 1, "{fixed}");
    assert_eq!(balance(&env, &p, "+79167654321"), 210 + 250);
    assert_eq!(
        balance(&env, &p, "+79031112233"),
        0,
        "the visit missing from the file is kept, not reversed"
    );
    // A second balances file cannot open a balance twice.
    let other = dir.path().join("balances2.csv");
    std::fs::write(&other, "Телефон;Баллы\n+79161234567;900\n").unwrap();
    let o = other.display().to_string();
    let twice = env.cli(&[
        "import",
        "file",
        "--partner",
        &p,
        "--balances",
        &o,
        "--apply",
    ]);
    assert_eq!(twice["applied"], 0);
    assert!(
        reasons(&twice)[0]
            .2
            .starts_with("an opening balance of 1500 points was imported"),
        "{twice}"
    );
    let audit = env.cli(&["audit", "--partner", &p]);
    let imports = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "file_imported")
        .count();
    assert_eq!(imports, 4, "every applied import is in the audit log");
    store.close().await;
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_accrue_visits_are_history_and_later_ones_earn() {
    let schema = PgSchema::new().await;
    let env = Env::migrated(&schema.url);
    let p = partner(&env);
    let history = fixture("visits_ru_cp1251_semicolon.csv");
    let xlsx = fixture("visits_ru.xlsx");
    let done = env.cli(&[
        "import",
        "file",
        "--partner",
        &p,
        "--visits",
        &history,
        "--apply",
    ]);
    assert_eq!(done["points"], 0);
    assert_eq!(done["applied"], 6);
    let shown = env.cli(&["client", "show", "--partner", &p, "--phone", "+79161234567"]);
    assert_eq!(shown["balance"], 0);
    assert_eq!(
        shown["summary"]["visits"], 1,
        "history: one visit that came"
    );
    // The XLSX's visits of 14–17 October are before the boundary (19 October): history.
    let xlsx_done = env.cli(&[
        "import",
        "file",
        "--partner",
        &p,
        "--visits",
        &xlsx,
        "--apply",
        "--accrue",
    ]);
    assert_eq!(xlsx_done["points"], 0);
    assert_eq!(xlsx_done["applied"], 4);
    // A visit after the boundary earns, from a file with --accrue or at the desk.
    let dir = tempfile::tempdir().unwrap();
    let later = dir.path().join("later.csv");
    std::fs::write(&later, "Дата;Телефон;Сумма\n01.11.2025;+79161234567;2000\n").unwrap();
    let l = later.display().to_string();
    let earned = env.cli(&[
        "import",
        "file",
        "--partner",
        &p,
        "--visits",
        &l,
        "--apply",
        "--accrue",
    ]);
    assert_eq!(earned["points"], 100);
    let desk = env.cli(&[
        "visit",
        "add",
        "--partner",
        &p,
        "--phone",
        "+79161234567",
        "--paid-minor",
        "100000",
        "--key",
        "d1",
    ]);
    assert_eq!(desk["points"], 50);
    // History up to tomorrow would take back points already earned: refused, nothing written.
    let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
    let future = dir.path().join("future.csv");
    std::fs::write(
        &future,
        format!(
            "Дата;Телефон;Сумма\n{};+79031112233;500\n",
            tomorrow.format("%d.%m.%Y")
        ),
    )
    .unwrap();
    let f = future.display().to_string();
    let out = env.run(&["import", "file", "--partner", &p, "--visits", &f, "--apply"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("already earned points"),
        "{}",
        stderr(&out)
    );
    assert_eq!(balance(&env, &p, "+79161234567"), 150);
    // A file that is not a table: one clear error.
    let letter = dir.path().join("letter.csv");
    std::fs::File::create(&letter)
        .unwrap()
        .write_all("Добрый день! Высылаю выгрузку.\n".as_bytes())
        .unwrap();
    let l = letter.display().to_string();
    let out = env.run(&["import", "file", "--partner", &p, "--visits", &l]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not a table"), "{}", stderr(&out));
    schema.drop().await;
}

/// 1,500 visits of 150 clients, each with its id.
fn big_file(dir: &Path) -> PathBuf {
    let path = dir.join("big.csv");
    let mut text = String::from("ID;Дата;Телефон;Услуга;Сумма;Статус\n");
    for i in 0..1500u32 {
        let status = if i % 10 == 3 {
            "Не пришёл"
        } else {
            "Пришёл"
        };
        text.push_str(&format!(
            "{i};{:02}.10.2025 {:02}:00;+7916{:07};Стрижка;{} 000,00;{status}\n",
            1 + i % 28,
            9 + i % 10,
            1_000_000 + i % 150,
            1 + i % 7,
        ));
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_midway_and_run_again_gives_the_same_books() {
    let schema = PgSchema::new().await;
    let env = Env::migrated(&schema.url);
    let (killed, whole) = (partner(&env), partner(&env));
    let dir = tempfile::tempdir().unwrap();
    let file = big_file(dir.path()).display().to_string();
    let store = SqlStore::connect(&schema.url).await.unwrap();
    let killed_id = PartnerId(killed.parse().unwrap());

    let args = |p: &str| -> Vec<String> {
        [
            "import",
            "file",
            "--partner",
            p,
            "--visits",
            &file,
            "--apply",
            "--accrue",
            "--json",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect()
    };
    let mut child = env.command(false).args(args(&killed)).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let entries = store.entry_count(killed_id).await.unwrap();
        if entries >= 100 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the import did not start posting"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it was killed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = store.account_totals(killed_id).await.unwrap();
    assert!(partial.is_balanced(), "{partial:?}");
    let again = env.cli(&args(&killed).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(again["applied"].as_u64().unwrap() < 1500, "{again}");
    env.cli(&args(&whole).iter().map(String::as_str).collect::<Vec<_>>());

    let whole_id = PartnerId(whole.parse().unwrap());
    let (a, b) = (
        store.account_totals(killed_id).await.unwrap(),
        store.account_totals(whole_id).await.unwrap(),
    );
    assert_eq!(a, b);
    assert!(a.issued.value() > 0);
    assert_eq!(
        store.entry_count(killed_id).await.unwrap(),
        store.entry_count(whole_id).await.unwrap()
    );
    for i in [0u32, 77, 149] {
        let phone = format!("+7916{:07}", 1_000_000 + i);
        assert_eq!(
            balance(&env, &killed, &phone),
            balance(&env, &whole, &phone)
        );
    }
    store.close().await;
    schema.drop().await;
}
