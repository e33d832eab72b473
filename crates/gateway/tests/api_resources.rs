//! The partner API's resources over real HTTP on PostgreSQL: clients created (found again by
//! phone), history paged by stable cursors, answers replayed by Idempotency-Key (24 h, then the
//! ledger's own key still posts once; concurrent requests under one key give one effect);
//! visits pushed through the engine's webhook path (points, duplicates, stale and corrected
//! states, a reversal; refused where a CRM reports visits); rewards, redemptions (held,
//! cancelled), codes checked and used with a bill; levels and referrals; another salon's ids
//! 404 on every route.

mod common;

use common::api::{Api, enterprise, key, unlimited};
use common::web::salons;
use loyalty_core::{LedgerStore, PartnerId};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_history_and_idempotency() {
    let s = salons(unlimited(1_000.0)).await;
    enterprise(&s, &[s.a, s.b]);
    let (w, r, wb) = (
        key(&s, s.a, "write"),
        key(&s, s.a, "read"),
        key(&s, s.b, "write"),
    );
    let api = Api::of(&s);

    // Created: validation first (nothing kept: the key works once the body is right).
    let (status, body) = api
        .post(&w, "/api/v1/clients", Some("c-1"), &json!({"phone": "12"}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_phone"))
    );
    let (status, body) = api
        .post(
            &w,
            "/api/v1/clients",
            Some("c-1"),
            &json!({"phone": "+79165550011", "nick": 1}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_body"))
    );
    assert!(body["detail"].as_str().unwrap().contains("nick"), "{body}");
    let vera = json!({"phone": "8 916 555-00-11", "name": "Вера", "birth_date": "1990-05-17"});
    let (status, made, headers) = api
        .post_full(&w, "/api/v1/clients", Some("c-1"), &vera)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert!(headers.get("idempotent-replayed").is_none());
    assert_eq!(made["phone"], "+79165550011");
    assert_eq!(made["birth_date"], "1990-05-17");
    // The same request: the first answer again, said so.
    let (status, again, headers) = api
        .post_full(&w, "/api/v1/clients", Some("c-1"), &vera)
        .await;
    assert_eq!((status, &again), (StatusCode::CREATED, &made));
    assert_eq!(headers["idempotent-replayed"], "true");
    // Another request under the key: 409; under a new key the same phone is found (200).
    let (status, body) = api
        .post(
            &w,
            "/api/v1/clients",
            Some("c-1"),
            &json!({"phone": "+79165550012"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("idempotency_conflict"))
    );
    let (status, found) = api
        .post(
            &w,
            "/api/v1/clients",
            Some("c-2"),
            &json!({"phone": "+7 916 555 00 11"}),
        )
        .await;
    assert_eq!((status, &found["id"]), (StatusCode::OK, &made["id"]));
    // A read key cannot create.
    let (status, _) = api.post(&r, "/api/v1/clients", Some("c-3"), &vera).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // History: six entries, pages of two by cursor; a newer entry does not shift the pages.
    let id = made["id"].as_i64().unwrap();
    let points = format!("/api/v1/clients/{id}/points");
    for i in 1..=6 {
        let (status, _) = api
            .post(
                &w,
                &points,
                Some(&format!("p-{i}")),
                &json!({"points": i, "reason": "подарок"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let history = format!("/api/v1/clients/{id}/history");
    let (_, first, _) = api.get(Some(&r), &format!("{history}?limit=2")).await;
    let amounts = |page: &Value| -> Vec<i64> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["points"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(amounts(&first), [6, 5]);
    assert_eq!(first["items"][0]["kind"], "manual_accrual");
    assert_eq!(first["items"][0]["reason"], "подарок");
    api.post(
        &w,
        &points,
        Some("p-7"),
        &json!({"points": 7, "reason": "ещё"}),
    )
    .await;
    let mut cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let mut rest = Vec::new();
    loop {
        let (status, page, _) = api
            .get(Some(&r), &format!("{history}?limit=2&cursor={cursor}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        rest.extend(amounts(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(rest, [4, 3, 2, 1]);
    for bad in ["?cursor=zz", "?limit=0", "?limit=101", "?limit=x"] {
        let (status, body, headers) = api.get(Some(&r), &format!("{history}{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert!(
            body["code"].as_str().unwrap().starts_with("invalid_"),
            "{body}"
        );
    }

    // A day later the answer is let go, yet the points still move once: the ledger's key
    // derives from the Idempotency-Key.
    let balance = |v: Value| v["balance"].as_i64().unwrap();
    let (_, before, _) = api
        .get(Some(&r), &format!("/api/v1/clients/{id}/balance"))
        .await;
    sqlx::query(
        "UPDATE api_requests SET created_at_ms = created_at_ms - 90000000 WHERE idem_key = 'p-1'",
    )
    .execute(s.gateway.store.pool())
    .await
    .unwrap();
    let (status, late, headers) = api
        .post_full(
            &w,
            &points,
            Some("p-1"),
            &json!({"points": 1, "reason": "подарок"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{late}");
    assert!(headers.get("idempotent-replayed").is_none(), "not a replay");
    let (_, after, _) = api
        .get(Some(&r), &format!("/api/v1/clients/{id}/balance"))
        .await;
    assert_eq!(balance(after), balance(before.clone()));

    // Eight requests at once under one key: one effect; the others wait their turn (409) or
    // get the first answer.
    let gift = json!({"points": 100, "reason": "акция"});
    let answers = futures_util::future::join_all(
        (0..8).map(|_| api.post_full(&w, &points, Some("burst"), &gift)),
    )
    .await;
    let mut entries = std::collections::BTreeSet::new();
    for (status, body, _) in &answers {
        match *status {
            StatusCode::OK => {
                entries.insert(body["entry_id"].as_i64().unwrap());
            }
            StatusCode::CONFLICT => assert_eq!(body["code"], "request_in_progress", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(entries.len(), 1, "{answers:?}");
    let (_, now, _) = api
        .get(Some(&r), &format!("/api/v1/clients/{id}/balance"))
        .await;
    assert_eq!(balance(now), balance(before) + 100);

    // B's key sees none of it.
    for path in [
        format!("/api/v1/clients/{id}"),
        format!("/api/v1/clients/{id}/balance"),
        format!("/api/v1/clients/{id}/history"),
        format!("/api/v1/clients/{id}/level"),
        format!("/api/v1/clients/{id}/referrals"),
        "/api/v1/clients?phone=%2B79165550011".to_owned(),
    ] {
        let (status, body, _) = api.get(Some(&wb), &path).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}"
        );
    }
    let (status, _) = api.post(&wb, &points, Some("b-1"), &gift).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let totals = s
        .gateway
        .store
        .account_totals(PartnerId(s.a))
        .await
        .unwrap();
    assert!(totals.is_balanced(), "{totals:?}");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visits_pushed_through_the_engine() {
    let s = salons(unlimited(1_000.0)).await;
    enterprise(&s, &[s.a, s.b]);
    let (w, wb) = (key(&s, s.a, "write"), key(&s, s.b, "write"));
    let api = Api::of(&s);
    let visit = |id: &str, status: &str, paid: i64, version: Option<i64>| {
        let mut v = json!({
            "id": id,
            "status": status,
            "client": {"phone": "+7 916 777-00-01", "name": "Ольга"},
            "lines": [{"title": "Окрашивание", "paid_minor": paid}],
            "master": "Ирина",
            "at_ms": 1_764_000_000_000i64,
        });
        if let Some(n) = version {
            v["version"] = json!(n);
        }
        v
    };

    // Came: 3 000 ₽ at 5 % is 150 points; the client is made from the phone.
    let (status, first) = api
        .post(
            &w,
            "/api/v1/visits",
            Some("v-1"),
            &visit("pos-1", "came", 300_000, Some(1)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(
        (first["outcome"].as_str(), first["points"].as_i64()),
        (Some("applied"), Some(150))
    );
    assert_eq!(first["balance"], 150);
    assert_eq!(first["master"], "Ирина");
    let client = first["client_id"].as_i64().unwrap();
    let (_, c, _) = api
        .get(Some(&w), &format!("/api/v1/clients/{client}"))
        .await;
    assert_eq!(
        (c["name"].as_str(), c["phone"].as_str()),
        (Some("Ольга"), Some("+79167770001"))
    );
    // The same state pushed again (another key): nothing more.
    let (_, dup) = api
        .post(
            &w,
            "/api/v1/visits",
            Some("v-2"),
            &visit("pos-1", "came", 300_000, Some(1)),
        )
        .await;
    assert_eq!(
        (dup["outcome"].as_str(), dup["points"].as_i64()),
        (Some("duplicate"), Some(0))
    );
    // A corrected bill posts the difference; an older state changes nothing.
    let (_, fixed) = api
        .post(
            &w,
            "/api/v1/visits",
            Some("v-3"),
            &visit("pos-1", "came", 400_000, Some(3)),
        )
        .await;
    assert_eq!(
        (fixed["outcome"].as_str(), fixed["points"].as_i64()),
        (Some("applied"), Some(50))
    );
    let (_, stale) = api
        .post(
            &w,
            "/api/v1/visits",
            Some("v-4"),
            &visit("pos-1", "no_show", 400_000, Some(2)),
        )
        .await;
    assert_eq!(
        (stale["outcome"].as_str(), stale["balance"].as_i64()),
        (Some("stale"), Some(200))
    );
    // A no-show after all: the points come back.
    let (_, gone) = api
        .post(
            &w,
            "/api/v1/visits",
            Some("v-5"),
            &visit("pos-1", "no_show", 400_000, Some(4)),
        )
        .await;
    assert_eq!(
        (gone["points"].as_i64(), gone["balance"].as_i64()),
        (Some(-200), Some(0))
    );
    let (status, read, _) = api.get(Some(&w), "/api/v1/visits/pos-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (read["status"].as_str(), read["paid_minor"].as_i64()),
        (Some("no_show"), Some(400_000))
    );
    assert_eq!(read["outcome"], Value::Null);
    // Kept in the history as pushed through the API.
    let source: String =
        sqlx::query_scalar("SELECT source FROM crm_records WHERE record_id = 'api-pos-1'")
            .fetch_one(s.gateway.store.pool())
            .await
            .unwrap();
    assert_eq!(source, "api");

    // Bad input is named, nothing applied.
    let mut negative = visit("pos-2", "came", 100, None);
    negative["lines"][0]["paid_minor"] = json!(-5);
    let mut many = visit("pos-2", "came", 100, None);
    many["lines"] = json!(vec![json!({"title": "x", "paid_minor": 1}); 101]);
    let mut spaced = visit("pos 2", "came", 100, None);
    spaced["id"] = json!("pos 2");
    for (body, code, says) in [
        (negative, "invalid_amount", "lines[0].paid_minor"),
        (many, "invalid_body", "lines"),
        (spaced, "invalid_body", "id"),
        (
            json!({"id": "pos-2", "status": "paid"}),
            "invalid_body",
            "unknown variant `paid`",
        ),
    ] {
        let (status, p) = api.post(&w, "/api/v1/visits", Some("bad"), &body).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{p}"
        );
        assert!(p["detail"].as_str().unwrap().contains(says), "{p}");
    }
    let (status, _, _) = api.get(Some(&w), "/api/v1/visits/pos-2").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Another salon's visit: not found.
    let (status, _, _) = api.get(Some(&wb), "/api/v1/visits/pos-1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A salon whose CRM reports visits: pushing would count a visit twice.
    s.env.cli(&[
        "connection",
        "add",
        "--partner",
        &s.b.to_string(),
        "--crm",
        "yclients",
        "--company-id",
        "4564",
    ]);
    let (status, p) = api
        .post(
            &wb,
            "/api/v1/visits",
            Some("v-b"),
            &visit("pos-9", "came", 100_000, None),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("crm_reports_visits"))
    );
    let totals = s
        .gateway
        .store
        .account_totals(PartnerId(s.a))
        .await
        .unwrap();
    assert!(totals.is_balanced(), "{totals:?}");
    s.finish().await;
}

/// A push's claim and answer are written in the visit's own transaction: a replay, another
/// body under the key (its effect rolled back), a burst under one key, an answer made after
/// the commit (a duplicate) and a kept refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_answers_once_per_key() {
    let s = salons(unlimited(1_000.0)).await;
    enterprise(&s, &[s.a, s.b]);
    let (w, wb) = (key(&s, s.a, "write"), key(&s, s.b, "write"));
    let api = Api::of(&s);
    let came = |id: &str, paid: i64| {
        json!({
            "id": id,
            "status": "came",
            "client": {"phone": "+7 916 777-00-02", "name": "Вера"},
            "lines": [{"title": "Стрижка", "paid_minor": paid}],
            "at_ms": 1_764_000_000_000i64,
        })
    };
    let balance = |v: &Value| v["balance"].as_i64().unwrap();

    let (status, first, headers) = api
        .post_full(&w, "/api/v1/visits", Some("k-1"), &came("pos-10", 200_000))
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(
        (first["outcome"].as_str(), balance(&first)),
        (Some("applied"), 100)
    );
    assert!(headers.get("idempotent-replayed").is_none());
    // The same request: the first answer, said to be one.
    let (status, again, headers) = api
        .post_full(&w, "/api/v1/visits", Some("k-1"), &came("pos-10", 200_000))
        .await;
    assert_eq!((status, &again), (StatusCode::OK, &first));
    assert_eq!(headers["idempotent-replayed"], "true");
    // Another bill under the same key: 409, and the correction it would have posted is not.
    let (status, p) = api
        .post(&w, "/api/v1/visits", Some("k-1"), &came("pos-10", 500_000))
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("idempotency_conflict"))
    );
    let (_, read, _) = api.get(Some(&w), "/api/v1/visits/pos-10").await;
    assert_eq!(
        (read["paid_minor"].as_i64(), balance(&read)),
        (Some(200_000), 100)
    );

    // A duplicate under a new key: its answer is read after the commit, and kept.
    let (_, dup) = api
        .post(&w, "/api/v1/visits", Some("k-2"), &came("pos-10", 200_000))
        .await;
    assert_eq!(
        (dup["outcome"].as_str(), balance(&dup)),
        (Some("duplicate"), 100)
    );
    let (_, dup_again, headers) = api
        .post_full(&w, "/api/v1/visits", Some("k-2"), &came("pos-10", 200_000))
        .await;
    assert_eq!(
        (&dup_again, &headers["idempotent-replayed"]),
        (&dup, &"true".parse().unwrap())
    );

    // Eight pushes at once under one key: one effect, every answer the first one.
    let burst = came("pos-11", 300_000);
    let answers = futures_util::future::join_all(
        (0..8).map(|_| api.post_full(&w, "/api/v1/visits", Some("k-3"), &burst)),
    )
    .await;
    let firsts: Vec<&Value> = answers
        .iter()
        .filter(|(_, _, h)| h.get("idempotent-replayed").is_none())
        .map(|(_, b, _)| b)
        .collect();
    assert_eq!(firsts.len(), 1, "{answers:?}");
    for (status, body, _) in &answers {
        match *status {
            StatusCode::OK => assert_eq!(body, firsts[0]),
            StatusCode::CONFLICT => assert_eq!(body["code"], "request_in_progress", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(
        (firsts[0]["points"].as_i64(), balance(firsts[0])),
        (Some(150), 250)
    );

    // A refusal is the key's answer too.
    s.env.cli(&[
        "connection",
        "add",
        "--partner",
        &s.b.to_string(),
        "--crm",
        "yclients",
        "--company-id",
        "4565",
    ]);
    for replayed in [false, true] {
        let (status, p, headers) = api
            .post_full(&wb, "/api/v1/visits", Some("k-4"), &came("pos-12", 100_000))
            .await;
        assert_eq!(
            (status, p["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("crm_reports_visits"))
        );
        assert_eq!(headers.get("idempotent-replayed").is_some(), replayed);
    }
    let totals = s
        .gateway
        .store
        .account_totals(PartnerId(s.a))
        .await
        .unwrap();
    assert!(totals.is_balanced(), "{totals:?}");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewards_redemptions_codes_levels_referrals() {
    let s = salons(unlimited(1_000.0)).await;
    enterprise(&s, &[s.a, s.b]);
    let (w, wb) = (key(&s, s.a, "write"), key(&s, s.b, "write"));
    let api = Api::of(&s);
    let client = s.a_client;

    // The catalog: the certificate of 500 ₽ for 100 points.
    let (_, rewards, _) = api.get(Some(&w), "/api/v1/rewards").await;
    assert_eq!(rewards.as_array().unwrap().len(), 1, "{rewards}");
    let reward = &rewards[0];
    assert_eq!(
        (reward["kind"].as_str(), reward["cost"].as_i64()),
        (Some("certificate"), Some(100))
    );
    assert_eq!(reward["value_minor"], 50_000);
    let start = s.balance(s.a, client).await;
    let redeem = json!({"client_id": client, "reward_id": reward["id"]});

    // Redeemed: points held, a code; the same key answers the same redemption.
    let (status, made) = api
        .post(&w, "/api/v1/redemptions", Some("r-1"), &redeem)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(
        (made["status"].as_str(), made["balance"].as_i64()),
        (Some("issued"), Some(start - 100))
    );
    let (_, again) = api
        .post(&w, "/api/v1/redemptions", Some("r-1"), &redeem)
        .await;
    assert_eq!(again["id"], made["id"]);
    let rid = made["id"].as_i64().unwrap();
    let (_, read, _) = api
        .get(Some(&w), &format!("/api/v1/redemptions/{rid}"))
        .await;
    assert_eq!(read["code"], made["code"]);
    // Cancelled: the points come back, once; a cancelled redemption stays so.
    let cancel = format!("/api/v1/redemptions/{rid}/cancel");
    let (status, gone) = api.post(&w, &cancel, Some("x-1"), &json!({})).await;
    assert_eq!(
        (status, gone["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    assert_eq!(gone["balance"], start);
    let (status, again) = api.post(&w, &cancel, Some("x-2"), &json!({})).await;
    assert_eq!(
        (status, again["balance"].as_i64()),
        (StatusCode::OK, Some(start))
    );

    // A new one, checked and used at the POS: a certificate needs the bill it pays, and
    // points pay at most half of one.
    let (_, second) = api
        .post(&w, "/api/v1/redemptions", Some("r-2"), &redeem)
        .await;
    let code = second["code"].as_str().unwrap().to_owned();
    let typed = code.to_lowercase().replace('-', "");
    let (status, checked, _) = api.get(Some(&w), &format!("/api/v1/codes/{typed}")).await;
    assert_eq!(status, StatusCode::OK, "{checked}");
    assert_eq!(
        (
            checked["value_minor"].as_i64(),
            checked["min_bill_minor"].as_i64()
        ),
        (Some(50_000), Some(100_000))
    );
    let use_path = format!("/api/v1/codes/{code}/use");
    let (status, p) = api.post(&w, &use_path, Some("u-1"), &json!({})).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("bill_needed"))
    );
    let (_, p) = api
        .post(&w, &use_path, Some("u-2"), &json!({"bill_minor": 60_000}))
        .await;
    assert_eq!(p["code"], "bill_too_small");
    let (status, used) = api
        .post(&w, &use_path, Some("u-3"), &json!({"bill_minor": 120_000}))
        .await;
    assert_eq!(
        (status, used["status"].as_str()),
        (StatusCode::OK, Some("used"))
    );
    assert_eq!(used["balance"], start - 100);
    // A used code cannot be cancelled.
    let (status, p) = api
        .post(
            &w,
            &format!("/api/v1/redemptions/{}/cancel", second["id"]),
            Some("x-3"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("code_not_usable"))
    );

    // Another salon's code, redemption, reward and client: not found; nothing moved at B.
    let b_before = s.balance(s.b, s.b_client).await;
    for path in [
        format!("/api/v1/codes/{code}"),
        format!("/api/v1/redemptions/{rid}"),
    ] {
        let (status, _, _) = api.get(Some(&wb), &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _, _) = api
        .get(Some(&w), &format!("/api/v1/codes/{}", s.b_code))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for (path, body) in [
        (format!("/api/v1/codes/{}/use", s.b_code), json!({})),
        (format!("/api/v1/redemptions/{rid}/cancel"), json!({})),
        (
            "/api/v1/redemptions".to_owned(),
            json!({"client_id": s.b_client, "reward_id": reward["id"]}),
        ),
    ] {
        let (status, p) = api.post(&w, &path, Some(&format!("t-{path}")), &body).await;
        if path.contains("cancel") {
            // A's own redemption through A is fine; through B it is not found.
            let (status, _) = api.post(&wb, &path, Some("t-b"), &body).await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            continue;
        }
        assert_eq!(
            (status, p["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}: {p}"
        );
    }
    assert_eq!(s.balance(s.b, s.b_client).await, b_before);

    // Levels and referrals follow the program.
    let (_, none, _) = api.get(Some(&w), "/api/v1/levels").await;
    assert_eq!(
        (
            none["enabled"].as_bool(),
            none["tiers"].as_array().map(Vec::len)
        ),
        (Some(false), Some(0))
    );
    let shown = s
        .env
        .command(false)
        .args(["program", "show", "--partner", &s.a.to_string()])
        .output()
        .unwrap();
    let mut program: Value = serde_json::from_slice(&shown.stdout).unwrap();
    program["levels"] = json!({
        "measure": "paid", "window_days": 365, "grace_days": 90,
        "tiers": [
            {"name": "Base", "threshold": 0, "cashback": 500, "max_redeem_share": 5000},
            {"name": "Silver", "threshold": 3_000_000, "cashback": 700, "max_redeem_share": 5000},
        ]
    });
    program["referral"] = json!({"referrer_points": 300, "friend_points": 200});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("program.json");
    std::fs::write(&path, program.to_string()).unwrap();
    s.env.cli(&[
        "program",
        "set",
        "--partner",
        &s.a.to_string(),
        "--file",
        path.to_str().unwrap(),
    ]);
    let (_, levels, _) = api.get(Some(&w), "/api/v1/levels").await;
    assert_eq!(levels["enabled"], true, "{levels}");
    assert_eq!(levels["tiers"][1]["name"], "Silver");
    assert_eq!(levels["tiers"][1]["cashback_bps"], 700);
    let (_, level, _) = api
        .get(Some(&w), &format!("/api/v1/clients/{client}/level"))
        .await;
    assert_eq!(
        (level["level"].as_str(), level["next_level"].as_str()),
        (Some("Base"), Some("Silver"))
    );
    // 4 000 ₽ paid of the 30 000 ₽ Silver needs.
    assert_eq!(
        (level["value"].as_i64(), level["to_next"].as_i64()),
        (Some(400_000), Some(2_600_000))
    );
    let (_, refs, _) = api
        .get(Some(&w), &format!("/api/v1/clients/{client}/referrals"))
        .await;
    assert_eq!(
        (refs["enabled"].as_bool(), refs["invited"].as_i64()),
        (Some(true), Some(0))
    );
    let totals = s
        .gateway
        .store
        .account_totals(PartnerId(s.a))
        .await
        .unwrap();
    assert!(totals.is_balanced(), "{totals:?}");
    s.finish().await;
}
