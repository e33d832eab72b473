//! The partner API's first part over real HTTP on PostgreSQL: keys made and revoked by the
//! CLI (shown once, kept hashed), no key / a wrong key / a revoked key 401, a read key writing
//! 403, a Pro salon's key refused naming the plan, another salon's ids 404 on every route, the
//! rate limit's 429 with `Retry-After`, an `Idempotency-Key` required and honoured (the same
//! request once, another body under it 409), errors as problem details.

mod common;

use common::api::{Api, enterprise};
use common::web::salons;
use loyalty_core::audit::{AuditStore, Plan};
use loyalty_core::{LedgerStore, PartnerId};
use loyalty_gateway::StartOptions;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_scopes_tenants_plans_limits_and_idempotency() {
    let options = StartOptions {
        dashboard: Some(loyalty_web::Settings {
            api_rate: loyalty_web::api::RateLimit {
                per_second: 1.0,
                burst: 30.0,
            },
            ..Default::default()
        }),
        ..StartOptions::default()
    };
    let s = salons(options).await;
    enterprise(&s, &[s.a, s.b]);
    let key = |partner: i64, scope: &str| {
        s.env.cli(&[
            "api-key",
            "add",
            "--partner",
            &partner.to_string(),
            "--scope",
            scope,
        ])
    };
    let made = key(s.a, "write");
    let write_a = made["key"].as_str().unwrap().to_owned();
    assert!(write_a.starts_with("lb_live_"));
    assert_eq!(made["prefix"].as_str().unwrap(), &write_a[..16]);
    let read_a = key(s.a, "read")["key"].as_str().unwrap().to_owned();
    let write_b = key(s.b, "write")["key"].as_str().unwrap().to_owned();
    // Kept hashed: the key itself is nowhere in the database.
    let listed = s
        .env
        .cli(&["api-key", "list", "--partner", &s.a.to_string()]);
    assert_eq!(listed["keys"].as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains(&write_a));
    let stored: Vec<(String,)> = sqlx::query_as("SELECT key_hash FROM api_keys")
        .fetch_all(s.gateway.store.pool())
        .await
        .unwrap();
    assert!(
        stored
            .iter()
            .all(|(h,)| h.len() == 64 && !h.contains(&write_a[8..]))
    );

    let api = Api::of(&s);
    let a_client = format!("/api/v1/clients/{}", s.a_client);
    let b_client = format!("/api/v1/clients/{}", s.b_client);

    // Without a key, with a wrong one: 401 as problem details.
    let (status, body, headers) = api.get(None, &a_client).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["code"], "unauthorized");
    assert_eq!(body["status"], 401);
    assert_eq!(body["type"], "/api/v1/problems/unauthorized");
    let (status, _, _) = api.get(Some("lb_live_0000"), &a_client).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A's client through A's key: by phone and by id; her balance.
    let (status, found, _) = api
        .get(Some(&read_a), "/api/v1/clients?phone=8%20916%20123-00-01")
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["id"], s.a_client);
    assert_eq!(found["phone"], "+79161230001");
    let (_, one, _) = api.get(Some(&read_a), &a_client).await;
    assert_eq!(one["name"], "Анна");
    let (_, balance, _) = api.get(Some(&read_a), &format!("{a_client}/balance")).await;
    assert_eq!(balance["balance"], s.balance(s.a, s.a_client).await);
    let (status, bad, _) = api.get(Some(&read_a), "/api/v1/clients?phone=12").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(bad["code"], "invalid_phone");

    // B's ids through A's key: 404 on every route; B's phone is not A's client.
    for path in [
        b_client.clone(),
        format!("{b_client}/balance"),
        "/api/v1/clients?phone=%2B79161230002".to_owned(),
        "/api/v1/clients/abc".to_owned(),
        "/api/v1/nothing".to_owned(),
    ] {
        let (status, body, _) = api.get(Some(&write_a), &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["code"], "not_found", "{path}");
    }
    let b_before = s.balance(s.b, s.b_client).await;
    let (status, _) = api
        .post(
            &write_a,
            &format!("{b_client}/points"),
            Some("x-1"),
            &json!({"points": 5, "reason": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(s.balance(s.b, s.b_client).await, b_before);

    // Writing: a read key is refused; an Idempotency-Key is required.
    let gift = json!({"points": 40, "reason": "извинение за ожидание"});
    let points = format!("{a_client}/points");
    let (status, body) = api.post(&read_a, &points, Some("g-1"), &gift).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("read_only_key"))
    );
    let (status, body) = api.post(&write_a, &points, None, &gift).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "idempotency_key_required");
    let before = s.balance(s.a, s.a_client).await;
    let (status, first) = api.post(&write_a, &points, Some("g-1"), &gift).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["balance"], before + 40);
    // The same request again: the same posting, no second effect.
    let (status, again) = api.post(&write_a, &points, Some("g-1"), &gift).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["entry_id"], first["entry_id"]);
    assert_eq!(s.balance(s.a, s.a_client).await, before + 40);
    // Another body under the same key: 409.
    let (status, body) = api
        .post(
            &write_a,
            &points,
            Some("g-1"),
            &json!({"points": 41, "reason": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("idempotency_conflict"))
    );
    // Written off beyond the balance: refused in the engine's words, nothing moved.
    let (status, body) = api
        .post(
            &write_a,
            &points,
            Some("d-1"),
            &json!({"points": -1_000_000, "reason": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("insufficient_balance")
        )
    );
    let totals = s
        .gateway
        .store
        .account_totals(PartnerId(s.a))
        .await
        .unwrap();
    assert!(totals.is_balanced(), "{totals:?}");
    // The audit log names the key.
    let log =
        loyalty_core::audit::AuditStore::audit_log(s.gateway.store.as_ref(), PartnerId(s.a), 5)
            .await
            .unwrap();
    assert!(
        log.iter()
            .any(|e| e.actor.name.starts_with("api key lb_live_")),
        "{log:?}"
    );

    // B's own key works for B.
    let (status, _, _) = api.get(Some(&write_b), &b_client).await;
    assert_eq!(status, StatusCode::OK);

    // Revoked: 401 at once.
    let prefix = &read_a[..16];
    s.env.cli(&[
        "api-key",
        "revoke",
        "--partner",
        &s.a.to_string(),
        "--prefix",
        prefix,
    ]);
    let (status, _, _) = api.get(Some(&read_a), &a_client).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A Pro salon's key is refused, the plan named.
    s.gateway
        .store
        .set_plan(
            PartnerId(s.b),
            Plan::Pro,
            &loyalty_core::audit::Actor::system(),
            0,
        )
        .await
        .unwrap();
    let (status, body, _) = api.get(Some(&write_b), &b_client).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "plan");
    assert!(
        body["detail"].as_str().unwrap().contains("enterprise"),
        "{body}"
    );

    // The rate limit: a burst of 30, then 429 with Retry-After, per key.
    let mut limited = None;
    for _ in 0..40 {
        let (status, body, headers) = api.get(Some(&write_a), &a_client).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((body, headers));
            break;
        }
    }
    let (body, headers) = limited.expect("a 429 within 40 requests");
    assert_eq!(body["code"], "rate_limited");
    assert!(
        headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    s.finish().await;
}
