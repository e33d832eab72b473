//! A client's personal data on request (152-FZ, issue 19) through its doors: `client export`
//! and `client forget` on the CLI, `GET /api/v1/clients/{id}/export` and
//! `DELETE /api/v1/clients/{id}` on the partner API. Afterwards her phone, name, e-mail and
//! Telegram chat appear in no row of any table of the database, her CRM ids are gone, the books
//! balance with her points still in them, and a later CRM visit for her phone starts a new
//! client who must link Telegram again. Both audited.

mod common;

use common::api::{Api, enterprise, key, unlimited};
use common::binary::stderr;
use common::web::salons;
use loyalty_core::audit::AuditStore;
use loyalty_core::{ChatStore, ClientStore, LedgerStore, PartnerId, Phone, TelegramChat};
use loyalty_engage::EngageStore;
use loyalty_engage::store::ConsentKind;
use loyalty_gateway::sample::{Record, record_webhook};
use reqwest::StatusCode;
use serde_json::json;

const PHONE: &str = "+79167654321";
const NAME: &str = "Зинаида Забвенная";
const EMAIL: &str = "zina.forget@example.ru";
const CHAT: i64 = 7_770_012_345;

/// A YCLIENTS record of hers: came, 3 000 ₽.
async fn crm_visit(hook: &str, record_id: u64) {
    let body = record_webhook(&Record {
        company_id: "4564",
        record_id,
        client_id: 9_001,
        client_name: NAME,
        phone: &PHONE[1..],
        cost: "3000",
        attendance: 1,
        deleted: false,
        changed_at_s: 60,
    });
    let r = reqwest::Client::new()
        .post(hook)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        r.text().await.unwrap_or_default()
    );
}

/// The rows of every table of the schema whose text holds `needle`, by table.
async fn found_anywhere(pool: &sqlx::AnyPool, needle: &str) -> Vec<(String, i64)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(tables.len() > 40, "{tables:?}");
    let mut found = Vec::new();
    for t in tables {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{t}\" r WHERE strpos(r::text, $1) > 0"
        )))
        .bind(needle)
        .fetch_one(pool)
        .await
        .unwrap();
        if n > 0 {
            found.push((t, n));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_client_is_nowhere_and_the_books_stand() {
    let s = salons(unlimited(1_000.0)).await;
    enterprise(&s, &[s.a]);
    let (w, r) = (key(&s, s.a, "write"), key(&s, s.a, "read"));
    let api = Api::of(&s);
    let a = s.a.to_string();
    let partner = PartnerId(s.a);
    let store = &s.gateway.store;

    // She comes through the salon's CRM (her CRM id, her name), is found by the partner's
    // system through the API (its answer kept for replay), links Telegram, agrees to
    // marketing, and gets points by hand (the audit log, a Telegram notice).
    let conn = s.env.cli(&[
        "connection",
        "add",
        "--partner",
        &a,
        "--crm",
        "yclients",
        "--company-id",
        "4564",
    ]);
    let url = conn["webhook_url"].as_str().unwrap();
    let hook = format!(
        "http://{}{}",
        s.gateway.addr,
        &url[url.find("/webhooks/").unwrap()..]
    );
    crm_visit(&hook, 501).await;
    let phone = Phone::parse_international(PHONE).unwrap();
    let her = store
        .client_by_phone(partner, &phone)
        .await
        .unwrap()
        .unwrap();
    let (status, card) = api
        .post(
            &w,
            "/api/v1/clients",
            Some("c-1"),
            &json!({"phone": PHONE, "name": NAME, "birth_date": "1990-04-12"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{card}");
    assert_eq!(card["id"], her.id.0);
    sqlx::query("UPDATE clients SET email = $1 WHERE id = $2")
        .bind(EMAIL)
        .bind(her.id.0)
        .execute(store.pool())
        .await
        .unwrap();
    let chat = TelegramChat {
        chat_id: CHAT,
        phone: Some(phone.clone()),
        language: "ru".into(),
        active: true,
        joined_partner: Some(partner),
        referred_by: None,
    };
    store.save_telegram_chat(&chat, 0).await.unwrap();
    store.link_chat(&phone, CHAT).await.unwrap();
    store
        .set_consent(
            partner,
            her.id,
            ConsentKind::Marketing,
            true,
            &format!("telegram:{CHAT}"),
            "Да, присылайте",
            0,
        )
        .await
        .unwrap();
    s.env.cli(&[
        "client",
        "accrue",
        "--partner",
        &a,
        "--phone",
        PHONE,
        "--points",
        "50",
        "--reason",
        "извинение",
        "--key",
        "gift-1",
    ]);
    let balance = store.balance(partner, her.id).await.unwrap().0;
    assert_eq!(balance, 200, "150 for the visit and 50 by hand");

    // Her copy, by the CLI and by the API: all of it.
    let export = s
        .env
        .cli(&["client", "export", "--partner", &a, "--phone", PHONE]);
    assert_eq!(
        (
            export["client"]["phone"].as_str(),
            export["client"]["name"].as_str(),
            export["client"]["email"].as_str(),
        ),
        (Some(PHONE), Some(NAME), Some(EMAIL))
    );
    assert_eq!(export["telegram"]["chat_id"], CHAT);
    assert_eq!(export["crm_ids"][0]["external_id"], "9001");
    assert_eq!(export["balance"], 200);
    assert_eq!(export["visits"].as_array().unwrap().len(), 1);
    assert_eq!(export["ledger"].as_array().unwrap().len(), 2);
    assert_eq!(export["consents"][0]["kind"], "marketing");
    let path = format!("/api/v1/clients/{}", her.id.0);
    let (status, by_api, _) = api.get(Some(&r), &format!("{path}/export")).await;
    assert_eq!(status, StatusCode::OK, "{by_api}");
    assert_eq!(
        (&by_api["client"], &by_api["ledger"]),
        (&export["client"], &export["ledger"])
    );

    // Forgotten through the API: a read key may not; another salon's key finds no one.
    let (status, body) = api.delete(&r, &path).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("read_only_key"))
    );
    let wb = {
        enterprise(&s, &[s.b]);
        key(&s, s.b, "write")
    };
    let (status, _) = api.delete(&wb, &path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = api.get(Some(&wb), &format!("{path}/export")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, done) = api.delete(&w, &path).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["client_id"], her.id.0);
    assert!(
        done["phone"].as_str().unwrap().starts_with("+999"),
        "{done}"
    );
    let (status, again) = api.delete(&w, &path).await;
    assert_eq!(
        (status, again["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    // Nowhere: not her number in any spelling, her name, e-mail or chat.
    for needle in [
        PHONE.to_owned(),
        PHONE[1..].to_owned(),
        PHONE[2..].to_owned(),
        NAME.to_owned(),
        EMAIL.to_owned(),
        CHAT.to_string(),
    ] {
        let found = found_anywhere(store.pool(), &needle).await;
        assert!(found.is_empty(), "{needle:?} still in {found:?}");
    }
    let crm_ids: i64 =
        sqlx::query_scalar("SELECT count(*) FROM client_external_ids WHERE client_id = $1")
            .bind(her.id.0)
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(crm_ids, 0);
    // Her points stay in the books, under her id.
    assert_eq!(store.balance(partner, her.id).await.unwrap().0, 200);
    let totals = store.account_totals(partner).await.unwrap();
    assert!(totals.is_balanced(), "{totals:?}");
    let card = store.client(partner, her.id).await.unwrap().unwrap();
    assert_eq!(
        (
            card.name,
            card.email,
            card.birth_date,
            card.telegram_chat_id
        ),
        (None, None, None, None)
    );
    let log = store.audit_log(partner, 10).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"client_forgotten"), "{actions:?}");
    assert!(actions.contains(&"client_exported"), "{actions:?}");
    assert!(
        log.iter().any(|e| e.action.as_str() == "client_forgotten"
            && e.actor.name.starts_with("api key lb_live_")
            && e.detail["client"] == her.id.0),
        "{log:?}"
    );

    // Her next visit from the CRM: a new client, not linked to Telegram.
    crm_visit(&hook, 502).await;
    let new = store
        .client_by_phone(partner, &phone)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(new.id, her.id);
    assert_eq!(
        (
            new.telegram_chat_id,
            store.balance(partner, new.id).await.unwrap().0
        ),
        (None, 150)
    );
    // The CLI's door: the new one forgotten too; an unknown number is the operator's mistake.
    let forgot = s
        .env
        .cli(&["client", "forget", "--partner", &a, "--phone", PHONE]);
    assert_eq!(forgot["client_id"], new.id.0);
    let out = s
        .env
        .run(&["client", "forget", "--partner", &a, "--phone", PHONE]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not a client"), "{}", stderr(&out));
    assert!(found_anywhere(store.pool(), NAME).await.is_empty());
    s.finish().await;
}
