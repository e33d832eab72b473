//! A DIKIDI salon through the binary: `connection add --crm dikidi --company-id` keeps no
//! password and says where its visits come from; `services sync` reads the services and masters
//! from the booking widget (a wiremock stand-in: the exact requests are the crate's contract
//! tests), and the widget answering 429 loses nothing synced before; its visits are entered at
//! the desk (no CRM reports them, so nothing is refused) and its redemptions are gateway codes.

mod common;

use std::path::Path;

use common::PgSchema;
use common::binary::{Env, stderr};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/dikidi")
        .join(name);
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dikidi_salon_syncs_its_catalog_enters_visits_and_redeems_with_codes() {
    let schema = PgSchema::new().await;
    let env = Env::migrated(&schema.url);
    let widget = MockServer::start().await;
    let salon = env.cli(&["partner", "add", "--name", "Лотос", "--cashback-bps", "500"]);
    let p = salon["id"].to_string();

    // No password is ever taken for DIKIDI.
    let out = env.run(&[
        "connection",
        "add",
        "--partner",
        &p,
        "--crm",
        "dikidi",
        "--company-id",
        "591511",
        "--email",
        "owner@salon.example",
        "--password",
        "secret",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("a DIKIDI password is never asked for"),
        "{}",
        stderr(&out)
    );
    let uri = widget.uri();
    let conn = env.cli(&[
        "connection",
        "add",
        "--partner",
        &p,
        "--crm",
        "dikidi",
        "--company-id",
        "591511",
        "--base-url",
        &uri,
    ]);
    assert_eq!(conn["webhook_url"], Value::Null);
    assert_eq!(
        (conn["api"].clone(), conn["import"].clone()),
        (json!(false), Value::Null)
    );
    assert!(
        conn["next"].as_str().unwrap().contains("import file"),
        "{conn}"
    );
    let c = conn["id"].to_string();

    let services = Mock::given(method("GET"))
        .and(path("/mobile/ajax/newrecord/company_services/"))
        .and(query_param("company", "591511"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("company_services.json")))
        .mount_as_scoped(&widget)
        .await;
    Mock::given(method("GET"))
        .and(path("/ru/ajax/newrecord/to_master_get_masters/"))
        .and(query_param("company_id", "591511"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("masters.json")))
        .mount(&widget)
        .await;
    let synced = env.cli(&["services", "sync", "--connection", &c]);
    assert_eq!(synced["sync"]["listed"], 4, "{synced}");
    assert_eq!(synced["directories"]["staff"]["listed"], 3, "{synced}");
    assert_eq!(synced["directories"]["category"]["listed"], 3, "{synced}");
    drop(services);

    // The widget rate-limits the next sync: it fails, and the list synced before stays.
    Mock::given(method("GET"))
        .and(path("/mobile/ajax/newrecord/company_services/"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "600"))
        .mount(&widget)
        .await;
    let out = env.run(&["services", "sync", "--connection", &c]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("rate"), "{}", stderr(&out));
    let listed = env.cli(&["services", "list", "--connection", &c]);
    let titles: Vec<&str> = listed["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["title"].as_str())
        .collect();
    assert_eq!(titles.len(), 4, "{listed}");
    assert!(titles.contains(&"Маникюр с покрытием"));

    // DIKIDI reports no visits: the desk enters them without --force.
    let visit = env.cli(&[
        "visit",
        "add",
        "--partner",
        &p,
        "--phone",
        "+79161234567",
        "--paid-minor",
        "400000",
        "--service",
        "Стрижка женская",
        "--master",
        "Ольга Петрова",
    ]);
    assert_eq!(visit["points"], 200);
    assert_ne!(visit["connection_id"], conn["id"]);

    // Rewards are the gateway's own codes, used at the desk.
    let reward = env.cli(&[
        "reward",
        "add",
        "--partner",
        &p,
        "--title",
        "Сертификат 100 ₽",
        "--points",
        "100",
        "--certificate-minor",
        "10000",
    ]);
    let issued = env.cli(&[
        "redeem",
        "--partner",
        &p,
        "--phone",
        "+79161234567",
        "--reward",
        &reward["id"].to_string(),
    ]);
    assert_eq!(issued["strategy"], "gateway_code", "{issued}");
    assert_eq!(issued["balance"], 100);
    let code = issued["code"].as_str().unwrap();
    let used = env.cli(&["code", "use", code, "--bill-minor", "30000"]);
    assert_eq!(used["status"], "used", "{used}");
    schema.drop().await;
}
