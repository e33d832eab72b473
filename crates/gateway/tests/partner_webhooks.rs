//! Partners' outbound webhooks: endpoints made through the API (internal addresses refused),
//! events written with the change and sent by the running gateway, signed the Standard
//! Webhooks way and verified by the reference library from PyPI (also across a rotation);
//! another salon's events never sent, nor a salon's once it leaves the Enterprise plan; retries on Svix's schedule under a fake clock, dead at
//! its end and replayed with the same `webhook-id`; an endpoint failing five days disabled
//! (and a 410 at once); names resolving inside refused before any connection (a stub
//! resolver); a sender that dies mid-send taken over after its lease, one duplicate at most.

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::api::{Api, enterprise, key, verify_reference};
use common::web::{Salons, salons};
use loyalty_core::{ClientId, Clock, ManualClock, PartnerId, Points, SystemClock};
use loyalty_gateway::StartOptions;
use loyalty_gateway::partner_hooks::{
    HookPass, HookPolicy, HookSender, HostResolver, SystemResolver,
};
use loyalty_store::DeliveryState;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn options(every: Duration) -> StartOptions {
    StartOptions {
        dashboard: Some(loyalty_web::Settings {
            api_rate: loyalty_web::api::RateLimit {
                per_second: 1_000.0,
                burst: 1_000.0,
            },
            webhooks_allow_loopback: true,
            ..Default::default()
        }),
        hooks: Some(HookPolicy {
            allow_loopback: true,
            ..Default::default()
        }),
        hooks_every: Some(every),
        ..StartOptions::default()
    }
}

async fn answering(status: u16) -> MockServer {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&receiver)
        .await;
    receiver
}

/// The requests the receiver got: headers by name, the body as JSON and as bytes.
async fn received(receiver: &MockServer) -> Vec<(Vec<(&'static str, String)>, Value, Vec<u8>)> {
    let mut out = Vec::new();
    for r in receiver.received_requests().await.unwrap_or_default() {
        let header = |n: &str| {
            r.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let headers = vec![
            ("webhook-id", header("webhook-id")),
            ("webhook-timestamp", header("webhook-timestamp")),
            ("webhook-signature", header("webhook-signature")),
            ("content-type", header("content-type")),
        ];
        out.push((
            headers,
            serde_json::from_slice(&r.body).unwrap_or(Value::Null),
            r.body.clone(),
        ));
    }
    out
}

async fn wait_for(
    receiver: &MockServer,
    n: usize,
) -> Vec<(Vec<(&'static str, String)>, Value, Vec<u8>)> {
    for _ in 0..200 {
        let got = received(receiver).await;
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let got: Vec<Value> = received(receiver)
        .await
        .into_iter()
        .map(|(_, b, _)| b)
        .collect();
    panic!("the receiver got {} of {n}: {got:?}", got.len());
}

fn get<'a>(headers: &'a [(&'static str, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_partner_signed() {
    let s = salons(options(Duration::from_millis(50))).await;
    enterprise(&s, &[s.a, s.b]);
    let (w, wb) = (key(&s, s.a, "write"), key(&s, s.b, "write"));
    let api = Api::of(&s);
    let receiver = answering(200).await;
    let url = format!("{}/loyalty", receiver.uri());

    // Internal addresses are refused when the endpoint is made.
    for bad in [
        "http://10.0.0.5/h",
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00::1]/",
        "ftp://hooks.example/",
    ] {
        let (status, p) = api
            .post(
                &w,
                "/api/v1/webhooks/endpoints",
                Some(bad),
                &json!({"url": bad}),
            )
            .await;
        assert_eq!(
            (status, p["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_url")),
            "{bad}: {p}"
        );
    }
    let (status, p) = api
        .post(
            &w,
            "/api/v1/webhooks/endpoints",
            Some("e-0"),
            &json!({"url": url, "events": ["points.gained"]}),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_event"))
    );
    let wanted = json!(["points.accrued", "redemption.created", "redemption.used"]);
    let (status, made) = api
        .post(
            &w,
            "/api/v1/webhooks/endpoints",
            Some("e-1"),
            &json!({"url": url, "events": wanted}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let secret = made["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(made["events"], wanted);
    let (_, listed, _) = api.get(Some(&w), "/api/v1/webhooks/endpoints").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        !listed.to_string().contains(&secret),
        "the secret is shown once"
    );
    let (_, theirs, _) = api.get(Some(&wb), "/api/v1/webhooks/endpoints").await;
    assert_eq!(theirs, json!([]));

    // Points added (enough for two rewards): told at once, signed; the reference library agrees, and refuses a
    // tampered body.
    let client = s.a_client;
    api.post(
        &w,
        &format!("/api/v1/clients/{client}/points"),
        Some("p-1"),
        &json!({"points": 300, "reason": "подарок"}),
    )
    .await;
    let got = wait_for(&receiver, 1).await;
    let (headers, body, raw) = &got[0];
    assert_eq!(body["type"], "points.accrued");
    assert_eq!(
        (
            body["data"]["client_id"].as_i64(),
            body["data"]["points"].as_i64()
        ),
        (Some(client), Some(300))
    );
    assert_eq!(get(headers, "content-type"), "application/json");
    assert!(get(headers, "webhook-id").starts_with("msg_"));
    verify_reference(&secret, headers, raw).unwrap();
    let mut tampered = raw.clone();
    tampered.extend_from_slice(b" ");
    assert!(verify_reference(&secret, headers, &tampered).is_err());

    // A redemption made and used: told; its cancel is not wanted, so not sent. Salon B's
    // changes are never sent to A's endpoint.
    let reward = api.get(Some(&w), "/api/v1/rewards").await.1[0]["id"].clone();
    let (_, r) = api
        .post(
            &w,
            "/api/v1/redemptions",
            Some("r-1"),
            &json!({"client_id": client, "reward_id": reward}),
        )
        .await;
    api.post(
        &w,
        &format!("/api/v1/codes/{}/use", r["code"].as_str().unwrap()),
        Some("u-1"),
        &json!({"bill_minor": 200_000}),
    )
    .await;
    let (_, r2) = api
        .post(
            &w,
            "/api/v1/redemptions",
            Some("r-2"),
            &json!({"client_id": client, "reward_id": reward}),
        )
        .await;
    api.post(
        &w,
        &format!("/api/v1/redemptions/{}/cancel", r2["id"]),
        Some("x-1"),
        &json!({}),
    )
    .await;
    api.post(
        &wb,
        &format!("/api/v1/clients/{}/points", s.b_client),
        Some("b-1"),
        &json!({"points": 5, "reason": "b"}),
    )
    .await;
    let got = wait_for(&receiver, 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received(&receiver).await.len(), 4, "nothing more");
    let mut types: Vec<&str> = got
        .iter()
        .map(|(_, b, _)| b["type"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "points.accrued",
            "redemption.created",
            "redemption.created",
            "redemption.used"
        ]
    );
    for (headers, _, raw) in &got {
        verify_reference(&secret, headers, raw).unwrap();
    }
    let (_, page, _) = api
        .get(
            Some(&w),
            "/api/v1/webhooks/deliveries?state=delivered&limit=100",
        )
        .await;
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["message_id"].as_str().unwrap())
        .collect();
    for (headers, _, _) in &got {
        assert!(ids.contains(&get(headers, "webhook-id")), "{ids:?}");
    }

    // A rotation: the new secret is shown once; for a day both sign.
    let id = made["id"].as_i64().unwrap();
    let (_, p) = api
        .post(
            &wb,
            &format!("/api/v1/webhooks/endpoints/{id}/rotate"),
            Some("rot"),
            &json!({}),
        )
        .await;
    assert_eq!(p["code"], "not_found", "B cannot touch A's endpoint");
    let (status, rotated) = api
        .post(
            &w,
            &format!("/api/v1/webhooks/endpoints/{id}/rotate"),
            Some("rot"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let fresh = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(fresh, secret);
    let before = received(&receiver).await.len();
    api.post(
        &w,
        &format!("/api/v1/clients/{client}/points"),
        Some("p-2"),
        &json!({"points": 1, "reason": "x"}),
    )
    .await;
    let got = wait_for(&receiver, before + 1).await;
    let (headers, _, raw) = got.last().unwrap();
    assert_eq!(get(headers, "webhook-signature").split(' ').count(), 2);
    verify_reference(&fresh, headers, raw).unwrap();
    verify_reference(&secret, headers, raw).unwrap();

    // Off the Enterprise plan the endpoint stays, but nothing more is owed to it.
    s.env.cli(&[
        "partner",
        "plan",
        "--partner",
        &s.a.to_string(),
        "--plan",
        "pro",
    ]);
    let sent = received(&receiver).await.len();
    accrue(&s, "after-pro").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received(&receiver).await.len(), sent);
    let owed = s
        .gateway
        .store
        .deliveries(PartnerId(s.a), DeliveryState::Pending, None, 10)
        .await
        .unwrap();
    assert!(owed.is_empty(), "{owed:?}");
    s.finish().await;
}

/// A sender of the test's own, on a fake clock.
fn sender(
    s: &Salons,
    clock: Arc<ManualClock>,
    resolver: Arc<dyn HostResolver>,
    loopback: bool,
) -> HookSender {
    HookSender::new(
        Arc::clone(&s.gateway.store),
        clock,
        HookPolicy {
            allow_loopback: loopback,
            ..Default::default()
        },
        resolver,
    )
    .unwrap()
}

async fn accrue(s: &Salons, key: &str) {
    s.gateway
        .engine
        .manual_accrual(PartnerId(s.a), ClientId(s.a_client), Points(3), "x", key)
        .await
        .unwrap();
}

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_on_the_schedule_dead_replayed_and_disabled() {
    // The gateway's own sender looks once an hour: the test's sender does the work.
    let s = salons(options(Duration::from_secs(3600))).await;
    enterprise(&s, &[s.a]);
    let w = key(&s, s.a, "write");
    let api = Api::of(&s);
    let receiver = answering(500).await;
    let (_, made) = api
        .post(
            &w,
            "/api/v1/webhooks/endpoints",
            Some("e-1"),
            &json!({"url": receiver.uri()}),
        )
        .await;
    let endpoint = made["id"].as_i64().unwrap();
    accrue(&s, "k-1").await;
    let clock = Arc::new(ManualClock::new(SystemClock.now_ms() + SECOND));
    let hooks = sender(&s, Arc::clone(&clock), Arc::new(SystemResolver), true);
    let due = |n| HookPass {
        retried: n,
        ..Default::default()
    };

    // Svix's schedule: at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; dead after.
    assert_eq!(hooks.pass().await.unwrap(), due(1));
    let waits = [
        5 * SECOND,
        5 * MINUTE,
        30 * MINUTE,
        2 * HOUR,
        5 * HOUR,
        10 * HOUR,
        10 * HOUR,
    ];
    for (i, wait) in waits.iter().enumerate() {
        clock.advance_ms(wait - 1);
        assert_eq!(
            hooks.pass().await.unwrap(),
            HookPass::default(),
            "not before {wait} ms"
        );
        clock.advance_ms(1);
        let expected = if i + 1 == waits.len() {
            HookPass {
                dead: 1,
                ..Default::default()
            }
        } else {
            due(1)
        };
        assert_eq!(hooks.pass().await.unwrap(), expected, "after {wait} ms");
    }
    let got = received(&receiver).await;
    assert_eq!(got.len(), 8);
    let id = get(&got[0].0, "webhook-id").to_owned();
    assert!(
        got.iter().all(|(h, _, _)| get(h, "webhook-id") == id),
        "one id on every attempt"
    );
    let (_, dead, _) = api.get(Some(&w), "/api/v1/webhooks/deliveries").await;
    let item = &dead["items"][0];
    assert_eq!(
        (
            item["state"].as_str(),
            item["attempts"].as_i64(),
            item["last_status"].as_i64()
        ),
        (Some("dead"), Some(8), Some(500))
    );
    assert_eq!(item["message_id"], id);

    // Replayed once the partner is back: the same id, delivered.
    receiver.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let (status, again) = api
        .post(
            &w,
            &format!("/api/v1/webhooks/deliveries/{}/replay", item["id"]),
            Some("re-1"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, again["state"].as_str()),
        (StatusCode::OK, Some("pending")),
        "{again}"
    );
    assert_eq!(
        hooks.pass().await.unwrap(),
        HookPass {
            delivered: 1,
            ..Default::default()
        }
    );
    assert_eq!(get(&received(&receiver).await[0].0, "webhook-id"), id);
    let (status, p) = api
        .post(
            &w,
            &format!("/api/v1/webhooks/deliveries/{}/replay", item["id"]),
            Some("re-2"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_dead"))
    );

    // Five days of failures: disabled, what it was owed dead, nothing new owed; the salon's
    // API page says why.
    receiver.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&receiver)
        .await;
    accrue(&s, "k-2").await;
    assert_eq!(hooks.pass().await.unwrap(), due(1));
    clock.advance_ms(5 * 24 * HOUR);
    let pass = hooks.pass().await.unwrap();
    assert_eq!(pass.disabled, 1, "{pass:?}");
    let (_, endpoints, _) = api.get(Some(&w), "/api/v1/webhooks/endpoints").await;
    assert_eq!(
        endpoints[0]["disabled_reason"],
        "every delivery failed for 5 days"
    );
    let pending = s
        .gateway
        .store
        .deliveries(PartnerId(s.a), DeliveryState::Pending, None, 10)
        .await
        .unwrap();
    assert!(pending.is_empty(), "{pending:?}");
    accrue(&s, "k-3").await;
    let all = s
        .gateway
        .store
        .deliveries(PartnerId(s.a), DeliveryState::Dead, None, 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "nothing owed to a disabled endpoint: {all:?}");
    let mut web = s.web("owner@lotos.ru").await;
    let page = web.get("/api-keys").await;
    assert!(
        page.body.contains("every delivery failed for 5 days"),
        "{}",
        page.body
    );
    // Enabled again: owed again.
    let (status, _) = api
        .post(
            &w,
            &format!("/api/v1/webhooks/endpoints/{endpoint}/enable"),
            Some("en-1"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    accrue(&s, "k-4").await;
    assert_eq!(
        s.gateway
            .store
            .deliveries(PartnerId(s.a), DeliveryState::Pending, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // 410 Gone: disabled at once.
    receiver.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(410))
        .mount(&receiver)
        .await;
    clock.advance_ms(SECOND);
    let pass = hooks.pass().await.unwrap();
    assert_eq!((pass.dead, pass.disabled), (1, 1));
    s.finish().await;
}

/// Names resolved from a table, every lookup noted.
#[derive(Debug, Default)]
struct Table {
    names: HashMap<String, Vec<IpAddr>>,
    asked: Mutex<Vec<String>>,
}

impl HostResolver for Table {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>> {
        self.asked.lock().unwrap().push(host.to_owned());
        let found = self.names.get(host).cloned();
        Box::pin(async move {
            found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such name"))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_resolving_inside_are_never_connected() {
    let s = salons(options(Duration::from_secs(3600))).await;
    enterprise(&s, &[s.a]);
    let receiver = answering(200).await;
    let port = receiver.address().port();
    let partner = PartnerId(s.a);
    let store = &s.gateway.store;
    let secret = loyalty_web::api::signing::new_secret().unwrap();
    let table = Arc::new(Table {
        names: HashMap::from([
            (
                "hooks.partner.example".to_owned(),
                vec!["10.0.0.5".parse().unwrap()],
            ),
            (
                "metadata.partner.example".to_owned(),
                vec!["169.254.169.254".parse().unwrap()],
            ),
            (
                "mixed.partner.example".to_owned(),
                vec!["10.1.1.1".parse().unwrap(), "127.0.0.1".parse().unwrap()],
            ),
        ]),
        ..Default::default()
    });
    let now = SystemClock.now_ms();
    for host in ["hooks.partner.example", "metadata.partner.example"] {
        store
            .create_endpoint(
                partner,
                &format!("http://{host}:{port}/h"),
                &[],
                &secret,
                now,
            )
            .await
            .unwrap();
    }
    // A literal internal address kept from before (or typed into the database): refused
    // before sending.
    store
        .create_endpoint(partner, "http://10.0.0.7:9/h", &[], &secret, now)
        .await
        .unwrap();
    accrue(&s, "k-1").await;
    let clock = Arc::new(ManualClock::new(now + SECOND));
    let hooks = sender(&s, Arc::clone(&clock), table.clone(), false);
    assert_eq!(
        hooks.pass().await.unwrap(),
        HookPass {
            retried: 3,
            ..Default::default()
        }
    );
    assert!(received(&receiver).await.is_empty());
    let failed = store
        .deliveries(partner, DeliveryState::Pending, None, 10)
        .await
        .unwrap();
    let errors: Vec<String> = failed
        .iter()
        .map(|d| d.last_error.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        errors
            .iter()
            .filter(|e| e.contains("internal addresses only"))
            .count(),
        2,
        "{errors:?}"
    );
    assert_eq!(
        errors
            .iter()
            .filter(|e| e.contains("10.0.0.7 is an internal address"))
            .count(),
        1,
        "{errors:?}"
    );
    assert!(
        !table
            .asked
            .lock()
            .unwrap()
            .iter()
            .any(|h| h.starts_with("10.")),
        "a literal is not looked up"
    );

    // With loopback allowed (a local receiver), a name answering both a private and a
    // loopback address reaches the loopback one only.
    for e in store.endpoints(partner).await.unwrap() {
        store
            .set_endpoint_disabled(partner, e.id, Some("test"), now)
            .await
            .unwrap();
    }
    store
        .create_endpoint(
            partner,
            &format!("http://mixed.partner.example:{port}/h"),
            &[],
            &secret,
            now,
        )
        .await
        .unwrap();
    accrue(&s, "k-2").await;
    let local = sender(&s, Arc::clone(&clock), table.clone(), true);
    assert_eq!(
        local.pass().await.unwrap(),
        HookPass {
            delivered: 1,
            ..Default::default()
        }
    );
    assert_eq!(received(&receiver).await.len(), 1);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_that_dies_mid_send_is_taken_over_once() {
    let s = salons(options(Duration::from_secs(3600))).await;
    enterprise(&s, &[s.a]);
    let w = key(&s, s.a, "write");
    let api = Api::of(&s);
    let receiver = answering(200).await;
    let (_, made) = api
        .post(
            &w,
            "/api/v1/webhooks/endpoints",
            Some("e-1"),
            &json!({"url": receiver.uri()}),
        )
        .await;
    assert!(made["secret"].as_str().unwrap().starts_with("whsec_"));
    accrue(&s, "k-1").await;
    // A sender claims the delivery and sends it, then dies before noting the answer.
    let now = SystemClock.now_ms() + SECOND;
    let claimed = s
        .gateway
        .store
        .claim_deliveries(now, 60 * SECOND, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let (d, e) = &claimed[0];
    let ts = now / 1000;
    let sig = loyalty_web::api::signing::sign(
        &e.signing_secrets(now),
        &d.message_id(),
        ts,
        d.body.as_bytes(),
    );
    reqwest::Client::new()
        .post(&e.url)
        .header("webhook-id", d.message_id())
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(d.body.clone())
        .send()
        .await
        .unwrap();
    // Another sender leaves it alone during the lease, then takes it over: sent once more,
    // with the same id.
    let clock = Arc::new(ManualClock::new(now + 30 * SECOND));
    let hooks = sender(&s, Arc::clone(&clock), Arc::new(SystemResolver), true);
    assert_eq!(hooks.pass().await.unwrap(), HookPass::default());
    clock.advance_ms(31 * SECOND);
    assert_eq!(
        hooks.pass().await.unwrap(),
        HookPass {
            delivered: 1,
            ..Default::default()
        }
    );
    clock.advance_ms(HOUR);
    assert_eq!(hooks.pass().await.unwrap(), HookPass::default());
    let got = received(&receiver).await;
    assert_eq!(got.len(), 2, "at most one duplicate");
    assert_eq!(get(&got[0].0, "webhook-id"), get(&got[1].0, "webhook-id"));
    assert_eq!(got[0].2, got[1].2, "the same body");
    s.finish().await;
}
