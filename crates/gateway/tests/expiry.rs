//! Points expiry through the running gateway: a program with `points_ttl_days` earns points by a
//! webhook; while its lot is in date, housekeeping passes leave it alone; once its date has
//! passed, the next pass posts it to `program:expired`, the client is told once in Telegram,
//! and the books balance. This test fails if the gateway ever stops running expiry by itself.
//!
//! Pending points likewise: a program with a refund window holds a visit's points pending, and
//! once the window is over the running gateway makes them spendable and tells the client, once.

mod common;

use std::time::{Duration, Instant};

use common::telegram::{telegram, texts_to};
use common::{PgSchema, connect_yclients, live_hook, serve_with, serve_with_bot};
use loyalty_core::{
    ClientStore, Clock, Country, Currency, LedgerStore, PartnerId, PartnerStore, Phone, Points,
    SystemClock,
};
use loyalty_gateway::StartOptions;
use loyalty_gateway::cli::{self, PartnerAdd};
use loyalty_gateway::config::Overrides;
use loyalty_gateway::sample::{Record, record_webhook};
use sqlx::Connection;

const TOKEN: &str = "88:expiry-token";
const CHAT: i64 = 4_242;
const PHONE: &str = "79161230042";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_past_their_date_expire_by_themselves_and_the_client_is_told_once() {
    let telegram = telegram(TOKEN).await;
    let schema = PgSchema::new().await;
    let (gateway, config) = serve_with_bot(&schema, TOKEN, telegram.uri()).await;
    let store = &gateway.store;
    let added = cli::partner_add(
        store,
        &PartnerAdd {
            name: "Лотос".into(),
            cashback_bps: 500,
            currency: Currency::Rub,
            min_paid_minor: 0,
            points_ttl_days: Some(30),
            welcome_bonus: 0,
            point_value_minor: 100,
            max_redeem_share_bps: 5000,
            code_ttl_days: 90,
            country: Country::RU,
            plan: loyalty_core::audit::Plan::Pro,
        },
        &loyalty_core::audit::Actor::system(),
        0,
    )
    .await
    .unwrap();
    let partner = PartnerId(added["id"].as_i64().unwrap());
    let conn = connect_yclients(store, &config, partner.0, None).await;
    let hook = live_hook(&gateway, &conn);

    // A paid visit of 2 000 ₽ earns 100 points, valid 30 days.
    let body = record_webhook(&Record {
        company_id: "4564",
        record_id: 42,
        client_id: 4_200,
        client_name: "Клиентка",
        phone: PHONE,
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
    assert_eq!(resp.status().as_u16(), 200);
    let phone = Phone::parse_international(PHONE).unwrap();
    let client = store
        .client_by_phone(partner, &phone)
        .await
        .unwrap()
        .unwrap();
    store
        .set_telegram_chat(partner, client.id, Some(CHAT))
        .await
        .unwrap();
    assert_eq!(
        store.balance(partner, client.id).await.unwrap(),
        Points(100)
    );

    // In date: several housekeeping passes leave it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        store.balance(partner, client.id).await.unwrap(),
        Points(100)
    );
    assert!(
        store
            .partners_with_due_lots(SystemClock.now_ms())
            .await
            .unwrap()
            .is_empty()
    );

    // Thirty days on: the lot's date is behind us.
    let mut db = sqlx::AnyConnection::connect(&schema.url).await.unwrap();
    sqlx::query("UPDATE lots SET expires_at_ms = $1 WHERE partner_id = $2")
        .bind(SystemClock.now_ms() - 1_000)
        .bind(partner.0)
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let expired = store.balance(partner, client.id).await.unwrap() == Points::ZERO;
        let texts = texts_to(&telegram, CHAT).await;
        if expired && texts.iter().any(|t| t.contains("Сгорели")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not expired by housekeeping: {texts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let totals = store.account_totals(partner).await.unwrap();
    assert!(totals.is_balanced(), "{totals:?}");
    assert_eq!(
        (totals.expired, totals.outstanding),
        (Points(100), Points::ZERO)
    );

    // More passes, on a second gateway on the same database too: nothing expires twice, the
    // client is told once.
    let (second, _) = serve_with(
        &schema,
        Overrides::default(),
        StartOptions {
            housekeeping_every: Some(Duration::from_millis(100)),
            ..StartOptions::default()
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let texts = texts_to(&telegram, CHAT).await;
    assert_eq!(
        texts.iter().filter(|t| t.contains("Сгорели")).count(),
        1,
        "{texts:?}"
    );
    let totals = store.account_totals(partner).await.unwrap();
    assert_eq!(totals.expired, Points(100));
    assert!(totals.is_balanced());
    second.stop().await.unwrap();
    gateway.stop().await.unwrap();
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_points_become_spendable_by_themselves_after_the_refund_window() {
    const PENDING_CHAT: i64 = 4_343;
    let telegram = telegram(TOKEN).await;
    let schema = PgSchema::new().await;
    let (gateway, config) = serve_with_bot(&schema, TOKEN, telegram.uri()).await;
    let store = &gateway.store;
    let partner = PartnerId(common::add_lotos(store).await);
    let mut program = store.partner(partner).await.unwrap().unwrap().program;
    program.pending_days = 14;
    store
        .set_program(partner, &program, 0, &loyalty_core::audit::Actor::system())
        .await
        .unwrap();
    let conn = connect_yclients(store, &config, partner.0, None).await;
    let body = record_webhook(&Record {
        company_id: "4564",
        record_id: 43,
        client_id: 4_300,
        client_name: "Клиентка",
        phone: PHONE,
        cost: "2000",
        attendance: 1,
        deleted: false,
        changed_at_s: 60,
    });
    let resp = reqwest::Client::new()
        .post(live_hook(&gateway, &conn))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let phone = Phone::parse_international(PHONE).unwrap();
    let client = store
        .client_by_phone(partner, &phone)
        .await
        .unwrap()
        .unwrap();
    store
        .set_telegram_chat(partner, client.id, Some(PENDING_CHAT))
        .await
        .unwrap();
    // Within the window: pending through many housekeeping passes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        store.balance(partner, client.id).await.unwrap(),
        Points::ZERO
    );
    assert_eq!(
        store.pending(partner, client.id).await.unwrap(),
        Points(100)
    );

    // Fourteen days on: the window is behind us.
    let mut db = sqlx::AnyConnection::connect(&schema.url).await.unwrap();
    sqlx::query("UPDATE pending_lots SET matures_at_ms = $1 WHERE partner_id = $2")
        .bind(SystemClock.now_ms() - 1_000)
        .bind(partner.0)
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let spendable = store.balance(partner, client.id).await.unwrap() == Points(100);
        let texts = texts_to(&telegram, PENDING_CHAT).await;
        if spendable && texts.iter().any(|t| t.contains("теперь можно тратить")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not matured by housekeeping: {texts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let texts = texts_to(&telegram, PENDING_CHAT).await;
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.contains("теперь можно тратить"))
            .count(),
        1,
        "{texts:?}"
    );
    assert_eq!(
        store.pending(partner, client.id).await.unwrap(),
        Points::ZERO
    );
    let totals = store.account_totals(partner).await.unwrap();
    assert!(totals.is_balanced(), "{totals:?}");
    assert_eq!(
        (totals.outstanding, totals.pending),
        (Points(100), Points::ZERO)
    );
    gateway.stop().await.unwrap();
    schema.drop().await;
}
