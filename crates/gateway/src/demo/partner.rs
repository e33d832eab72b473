//! The demo's fourth salon: «Прима» runs its own POS and no CRM we connect to. On the
//! Enterprise plan it gets an API key, registers a webhook endpoint (a local stand-in receiver
//! that checks each signature), and its POS pushes the day's visit through `/api/v1/visits`;
//! the receiver is told of the points, signed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use loyalty_web::api::signing;
use serde_json::{Value, json};

use crate::cli;

/// What the stand-in receiver got: the event's type, its `webhook-id`, and whether the
/// signature was the one the secret makes.
type Received = Arc<Mutex<(Option<String>, Vec<(String, String, bool)>)>>;

async fn receive(State(got): State<Received>, headers: HeaderMap, body: axum::body::Bytes) {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, ts, sig) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let kind = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_owned))
        .unwrap_or_default();
    if let Ok(mut g) = got.lock() {
        let verified = match (&g.0, ts.parse::<i64>()) {
            (Some(secret), Ok(ts)) => sig
                .split(' ')
                .any(|s| s == signing::sign(&[secret.as_str()], &id, ts, &body)),
            _ => false,
        };
        g.1.push((kind, id, verified));
    }
}

pub(super) async fn salon(
    gateway: &crate::Gateway,
    http: &reqwest::Client,
    say: &impl Fn(String),
) -> anyhow::Result<Value> {
    let now = gateway.engine.now_ms();
    let mut prima = super::salon("Прима", 500);
    prima.plan = loyalty_core::audit::Plan::Enterprise;
    let partner = cli::partner_add(
        &gateway.store,
        &prima,
        &loyalty_core::audit::Actor::system(),
        now,
    )
    .await?;
    let id = partner["id"].as_i64().unwrap_or_default();
    let made = cli::api_key_add(&gateway.store, id, "write").await?;
    let key = made["key"].as_str().unwrap_or_default().to_owned();
    say(format!(
        "\n20:40  «Прима» runs its own POS, no CRM of ours; on the Enterprise plan it takes a key:\n      $ loyalty-gateway api-key add --partner {id} --scope write\n      {}… (shown once; kept as its SHA-256)",
        made["prefix"].as_str().unwrap_or_default()
    ));

    // Its receiver: a local stand-in that checks each signature with the endpoint's secret.
    let got: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver = format!("http://{}/loyalty-events", listener.local_addr()?);
    let app = Router::new()
        .route("/loyalty-events", post(receive))
        .with_state(Arc::clone(&got));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let base = format!("http://{}/api/v1", gateway.addr);
    let call = |path: &str, idem: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(&key)
            .header("idempotency-key", idem)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    async fn json_of(r: reqwest::Response) -> anyhow::Result<Value> {
        Ok(serde_json::from_slice(&r.bytes().await?)?)
    }
    let endpoint = json_of(
        call(
            "/webhooks/endpoints",
            "prima-endpoint-1",
            json!({"url": receiver, "events": ["points.accrued"]}),
        )
        .await?,
    )
    .await?;
    let secret = endpoint["secret"]
        .as_str()
        .context("no endpoint secret")?
        .to_owned();
    if let Ok(mut g) = got.lock() {
        g.0 = Some(secret);
    }
    say(format!(
        "20:41  It registers where to be told of points (a secret whsec_… comes back once):\n      POST {base}/webhooks/endpoints {{\"url\": \"{receiver}\", \"events\": [\"points.accrued\"]}}"
    ));

    let visit = json!({
        "id": "pos-2041",
        "status": "came",
        "client": {"phone": "+7 916 444-00-07", "name": "Дарья"},
        "lines": [{"title": "Окрашивание", "paid_minor": 600_000}],
        "master": "Ольга",
    });
    let pushed = json_of(call("/visits", "pos-2041-came", visit.clone()).await?).await?;
    say(format!(
        "20:45  Its POS pushes Дарья's visit — the same rules as a CRM's webhook:\n      POST {base}/visits (Idempotency-Key: pos-2041-came) → {}, +{} points, balance {}",
        pushed["outcome"].as_str().unwrap_or_default(),
        pushed["points"],
        pushed["balance"]
    ));
    let again = call("/visits", "pos-2041-came", visit).await?;
    let replayed = again
        .headers()
        .get("idempotent-replayed")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("no")
        .to_owned();
    say(format!(
        "20:46  The POS, unsure the answer arrived, sends it again: the first answer (Idempotent-Replayed: {replayed}), no second accrual"
    ));

    // The receiver is told within a second or two (the sender looks every second).
    for _ in 0..100 {
        if got.lock().map(|g| !g.1.is_empty()).unwrap_or(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = got.lock().map(|g| g.1.clone()).unwrap_or_default();
    for (kind, msg, verified) in &events {
        say(format!(
            "20:46  «Прима»'s receiver gets {kind} ({msg}), signature {}",
            if *verified { "checked" } else { "WRONG" }
        ));
    }
    server.abort();
    Ok(json!({
        "salon": "Прима",
        "crm": "its own POS (partner API)",
        "visit": pushed,
        "replayed": replayed == "true",
        "webhooks": events
            .iter()
            .map(|(kind, id, verified)| json!({"type": kind, "webhook_id": id, "signature_checked": verified}))
            .collect::<Vec<_>>(),
    }))
}
