//! Connection health through the running gateway: a CRM that refuses the key opens one
//! incident, the salon's staff chat is told once in Telegram however many calls fail, `sync
//! status` and the metrics show it, and when the CRM takes the key again the incident closes
//! and the chat is told once more. Dead letters and silent webhooks through the check the
//! gateway runs every minute, at times a day apart.

mod common;

use loyalty_core::ClientStore;
use loyalty_core::LedgerStore;
use loyalty_core::PartnerStore;
use std::time::{Duration, Instant};

use common::crm::RecordById;
use common::telegram::{telegram, texts_to};
use common::{PgSchema, add_lotos, connect_yclients, serve_with};
use loyalty_core::health::{HealthStore, Incident};
use loyalty_core::inbox::{InboxPolicy, IntakeStore, Source};
use loyalty_core::sync::{PollReport, SyncStore};
use loyalty_core::{Clock, ConnectionId, PartnerId, SystemClock};
use loyalty_gateway::config::{Config, Overrides};
use loyalty_gateway::health::{Health, check};
use loyalty_gateway::sample::{Record, record_webhook};
use loyalty_gateway::{StartOptions, cli};
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "77:staff-token";
const STAFF_CHAT: i64 = 777;

fn record(id: u64) -> Value {
    record_webhook(&Record {
        company_id: "4564",
        record_id: id,
        client_id: 1_000 + id,
        client_name: "Клиентка",
        phone: &format!("7916{:07}", id),
        cost: "2000",
        attendance: 1,
        deleted: false,
        changed_at_s: 60,
    })
}

async fn wait_for(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_tells_the_staff_once_and_once_more_when_it_works_again() {
    let crm = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "success": false, "data": null,
            "meta": {"message": "Авторизация не удалась"}})))
        .mount(&crm)
        .await;
    let telegram = telegram(TOKEN).await;
    let schema = PgSchema::new().await;
    let options = StartOptions {
        inbox: Some(InboxPolicy {
            first_pause_ms: 200,
            max_pause_ms: 400,
            ..InboxPolicy::default()
        }),
        health_every: Some(Duration::from_millis(200)),
        ..StartOptions::default()
    };
    let overrides = Overrides {
        yclients_api_url: Some(crm.uri()),
        public_url: Some("https://loyalty.example".into()),
        telegram_bot_token: Some(TOKEN.into()),
        telegram_api_url: Some(telegram.uri()),
        telegram_webhook_secret: Some("s3cret".into()),
        ..Overrides::default()
    };
    let (gateway, config) = serve_with(&schema, overrides, options).await;
    let partner = add_lotos(&gateway.store).await;
    cli::staff_add(&gateway.store, partner, STAFF_CHAT, 0)
        .await
        .unwrap();
    let conn = connect_yclients(&gateway.store, &config, partner, Some(("p", "u"))).await;
    let conn_id = conn["id"].as_i64().unwrap();
    let hook = conn["webhook_url"].as_str().unwrap().replace(
        "https://loyalty.example",
        &format!("http://{}", gateway.addr),
    );
    let http = reqwest::Client::new();

    // Two partial records: the CRM must be asked, and refuses, again and again.
    for id in [1u64, 2] {
        let body = json!({"company_id": 4564, "resource": "record", "resource_id": id,
                          "status": "update", "data": {"id": id, "comment": "оплачено"}});
        let resp = http
            .post(&hook)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    let refused = |texts: &[String]| {
        texts
            .iter()
            .filter(|t| t.contains("не принимает ключ API"))
            .count()
    };
    wait_for(
        "the staff to be told",
        Duration::from_secs(20),
        async || refused(&texts_to(&telegram, STAFF_CHAT).await) > 0,
    )
    .await;
    let inbox = &gateway.store;
    wait_for("more refused tries", Duration::from_secs(20), async || {
        inbox
            .inbox_items(false, 10)
            .await
            .unwrap()
            .iter()
            .all(|i| i.attempts >= 3)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let texts = texts_to(&telegram, STAFF_CHAT).await;
    assert_eq!(refused(&texts), 1, "told once per incident: {texts:?}");
    assert!(texts[0].contains("«Лотос»"), "{}", texts[0]);
    assert!(texts[0].contains("Авторизация не удалась"), "{}", texts[0]);

    let status = cli::sync_status(&gateway.store, &config, Some(conn_id))
        .await
        .unwrap();
    let incidents = &status["connections"][0]["incidents"];
    assert_eq!(incidents.as_array().unwrap().len(), 1, "{status}");
    assert_eq!(incidents[0]["incident"], "crm_refused");
    assert!(cli::sync_text(&status).contains("⚠ crm_refused"));
    let metrics = http
        .get(format!("http://{}/metrics", gateway.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = format!(
        "loyalty_connection_incident{{connection=\"{conn_id}\",incident=\"crm_refused\"}} 1"
    );
    assert!(metrics.contains(&gauge), "{metrics}");

    // The salon fixed the key: the records come, the incident closes, the staff hear it once.
    crm.reset().await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/record/4564/\d+$"))
        .respond_with(RecordById(|id| record(id)["data"].clone()))
        .mount(&crm)
        .await;
    wait_for(
        "the records to apply",
        Duration::from_secs(20),
        async || inbox.inbox_stats().await.unwrap().queued == 0,
    )
    .await;
    let fixed = |texts: &[String]| {
        texts
            .iter()
            .filter(|t| t.contains("снова принимает ключ API"))
            .count()
    };
    wait_for("the all-clear", Duration::from_secs(20), async || {
        fixed(&texts_to(&telegram, STAFF_CHAT).await) > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let texts = texts_to(&telegram, STAFF_CHAT).await;
    assert_eq!((refused(&texts), fixed(&texts)), (1, 1), "{texts:?}");
    let status = cli::sync_status(&gateway.store, &config, Some(conn_id))
        .await
        .unwrap();
    assert_eq!(status["connections"][0]["incidents"], json!([]));
    let partner = PartnerId(partner);
    for id in [1u64, 2] {
        let phone = loyalty_core::Phone::parse_international(&format!("7916{id:07}")).unwrap();
        let client = gateway
            .store
            .client_by_phone(partner, &phone)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            gateway.store.balance(partner, client.id).await.unwrap(),
            loyalty_core::Points(100)
        );
    }
    gateway.stop().await.unwrap();
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_and_silent_webhooks_open_and_close_incidents() {
    let schema = PgSchema::new().await;
    let config = Config::resolve(Overrides {
        database_url: Some(schema.url.clone()),
        ..Overrides::default()
    })
    .unwrap();
    let store = loyalty_store::SqlStore::connect(&schema.url).await.unwrap();
    store.migrate().await.unwrap();
    let partner = PartnerId(add_lotos(&store).await);
    cli::staff_add(&store, partner.0, STAFF_CHAT, 0)
        .await
        .unwrap();
    let conn = connect_yclients(&store, &config, partner.0, None).await;
    let id = ConnectionId(conn["id"].as_i64().unwrap());
    let connection = store.connection(id).await.unwrap().unwrap();
    let health = Health::default();
    let now = SystemClock.now_ms();
    let day = 86_400_000;
    let staff_told = async || {
        store
            .claim_staff_messages(i64::MAX / 2, 60_000, 100)
            .await
            .unwrap()
            .len()
    };

    // A webhook given up on: one incident, told once.
    let adapter = crm_yclients::YclientsAdapter::new(crm_yclients::YclientsConfig::new(
        crm_yclients::Flavor::YCLIENTS,
        "4564",
    ));
    let event = loyalty_core::CrmAdapter::parse_webhook(
        &adapter,
        Some("application/json"),
        record(9).to_string().as_bytes(),
    )
    .unwrap()
    .remove(0);
    let item = store
        .enqueue_inbox(partner, id, &event, Source::Webhook, now)
        .await
        .unwrap();
    store.claim_inbox(now, 10, now + 1_000).await.unwrap();
    store
        .inbox_failed(item, "7 days of 5xx", None)
        .await
        .unwrap();
    let first = check(&store, &health, now).await.unwrap();
    assert_eq!(first.opened, [(id, Incident::DeadLetters)]);
    assert!(
        check(&store, &health, now + 1)
            .await
            .unwrap()
            .opened
            .is_empty()
    );
    assert_eq!(staff_told().await, 1);
    cli::inbox_replay(&store, item).await.unwrap();
    let replayed = check(&store, &health, now + 2).await.unwrap();
    assert_eq!(replayed.closed, [(id, Incident::DeadLetters)]);
    assert_eq!(staff_told().await, 1);

    // A day and more without any webhook, but nothing found by the poller either: a quiet
    // salon, not an incident.
    let later = now + day + 3_600_000;
    assert_eq!(check(&store, &health, later).await.unwrap().opened, []);
    // The poller finds records no webhook brought.
    store
        .lease_poll(partner, id, "me", later - 60_000, later)
        .await
        .unwrap()
        .unwrap();
    let report = PollReport {
        started_ms: later - 60_000,
        finished_ms: later - 59_000,
        complete: true,
        seen: 4,
        applied: 4,
        ..PollReport::default()
    };
    store.finish_poll(id, "me", &report).await.unwrap();
    let silent = check(&store, &health, later).await.unwrap();
    assert_eq!(silent.opened, [(id, Incident::WebhooksSilent)]);
    assert!(
        check(&store, &health, later + 1)
            .await
            .unwrap()
            .opened
            .is_empty()
    );
    assert_eq!(staff_told().await, 1);
    let open = store.incidents(Some(id), false).await.unwrap();
    assert!(
        open[0].detail.contains("no webhook has ever come"),
        "{open:?}"
    );
    // A webhook comes again: closed at the next check.
    health.webhook_arrived(&connection, later + 10_000);
    let back = check(&store, &health, later + 20_000).await.unwrap();
    assert_eq!(back.closed, [(id, Incident::WebhooksSilent)]);
    assert_eq!(staff_told().await, 1);
    let cursor = store.sync_cursors(Some(id)).await.unwrap();
    assert_eq!(cursor[0].last_webhook_ms, Some(later + 10_000));
    store.close().await;
    schema.drop().await;
}

/// Arnica sends each webhook once and Beauty Pro's subscription can lapse: a day of visits the
/// poller found and no webhook opens the same incident for them as for YCLIENTS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_webhooks_are_an_incident_on_arnica_and_beauty_pro_too() {
    let schema = PgSchema::new().await;
    let config = Config::resolve(Overrides {
        database_url: Some(schema.url.clone()),
        ..Overrides::default()
    })
    .unwrap();
    let store = loyalty_store::SqlStore::connect(&schema.url).await.unwrap();
    store.migrate().await.unwrap();
    let partner = PartnerId(add_lotos(&store).await);
    let mut ids = Vec::new();
    for (crm, company) in [
        (loyalty_core::CrmKind::Arnica, "7781"),
        (loyalty_core::CrmKind::Beautypro, "123456"),
    ] {
        let conn = cli::connection_add(
            &store,
            &config,
            &cli::ConnectionAdd {
                partner: partner.0,
                crm,
                company_id: company.into(),
                partner_token: None,
                user_token: None,
                login: cli::CrmLogin::default(),
                utc_offset_minutes: None,
                country: None,
            },
            0,
        )
        .await
        .unwrap();
        ids.push(ConnectionId(conn["id"].as_i64().unwrap()));
    }
    let health = Health::default();
    let later = SystemClock.now_ms() + 86_400_000 + 3_600_000;
    for id in &ids {
        store
            .lease_poll(partner, *id, "me", later - 60_000, later)
            .await
            .unwrap()
            .unwrap();
        let report = PollReport {
            started_ms: later - 60_000,
            finished_ms: later - 59_000,
            complete: true,
            seen: 2,
            applied: 2,
            ..PollReport::default()
        };
        store.finish_poll(*id, "me", &report).await.unwrap();
    }
    let mut opened = check(&store, &health, later).await.unwrap().opened;
    opened.sort();
    assert_eq!(
        opened,
        [
            (ids[0], Incident::WebhooksSilent),
            (ids[1], Incident::WebhooksSilent)
        ]
    );
    store.close().await;
    schema.drop().await;
}
