//! The demo's fourth salon: «Прима» runs its own POS and no CRM we connect to. On the
//! Enterprise plan it gets an API key, registers a webhook endpoint (a local stand-in receiver
//! that checks each signature), and its POS pushes the day's visit through `/api/v1/visits`;
//! the receiver is told of the points, signed. Then the salon writes a rule of its own (a custom
//! trigger: 300 points on every return visit), tries it on the past visit through the API, and
//! the client's next visit fires it — the receiver told of that too. Last, the client asks for
//! her data and to be forgotten (152-FZ): exported and forgotten through the API.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use loyalty_web::api::signing;
use serde_json::{Value, json};

use loyalty_core::PartnerStore;

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
            json!({"url": receiver, "events": ["points.accrued", "trigger.fired"]}),
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
        "20:41  It registers where to be told of points (a secret whsec_… comes back once):\n      POST {base}/webhooks/endpoints {{\"url\": \"{receiver}\", \"events\": [\"points.accrued\", \"trigger.fired\"]}}"
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

    // Its own rule: 300 points on every return visit of 1 000 ₽ or more, and a word to its
    // receiver. Tried on Дарья's first visit before it is saved: it would not have fired.
    let rule = json!({
        "name": "Снова к нам",
        "when": "visit",
        "conditions": {"min_visits": 2, "min_paid_minor": 100_000},
        "then": [{"kind": "bonus", "points": 300}, {"kind": "webhook"}]
    });
    let preview = json_of(
        http.post(format!("{base}/custom-triggers/preview"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(json!({"trigger": rule, "visit_id": "pos-2041"}).to_string())
            .send()
            .await?,
    )
    .await?;
    let failed: Vec<&str> = preview["checks"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter(|c| c["holds"] == false)
                .filter_map(|c| c["condition"].as_str())
                .collect()
        })
        .unwrap_or_default();
    say(format!(
        "20:50  «Прима» writes a rule of its own — 300 points on every return visit of 1 000 ₽ or more —
      and tries it on Дарья's visit first: POST {base}/custom-triggers/preview → fires: {}, failing: {}",
        preview["fires"],
        failed.join(", ")
    ));
    let mut program = gateway
        .store
        .partner(loyalty_core::PartnerId(id))
        .await?
        .context("«Прима» is gone")?
        .program;
    program.custom_triggers = vec![serde_json::from_value(rule)?];
    program.validate()?;
    gateway
        .store
        .set_program(
            loyalty_core::PartnerId(id),
            &program,
            gateway.engine.now_ms(),
            &loyalty_core::audit::Actor::system(),
        )
        .await?;
    say("      $ loyalty-gateway program set --partner … --file prima.json   (custom_triggers: [the rule])".into());
    let next = json!({
        "id": "pos-2107",
        "status": "came",
        "client": {"phone": "+7 916 444-00-07", "name": "Дарья"},
        "lines": [{"title": "Укладка", "paid_minor": 250_000}],
        "master": "Ольга",
    });
    let returned = json_of(call("/visits", "pos-2107-came", next).await?).await?;
    say(format!(
        "21:07  Дарья is back for a styling: +{} points (125 for the bill, 300 by the rule), balance {}",
        returned["points"], returned["balance"]
    ));

    // The receiver is told within a second or two (the sender looks every second).
    for _ in 0..100 {
        if got.lock().map(|g| g.1.len() >= 3).unwrap_or(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut events = got.lock().map(|g| g.1.clone()).unwrap_or_default();
    // In the order they were written (`msg_{endpoint}_{delivery}`); they may arrive otherwise.
    events.sort_by_key(|(_, id, _)| {
        id.rsplit('_')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(u64::MAX)
    });
    say("21:08  «Прима»'s receiver was told of each change within a second, signed:".into());
    for (kind, msg, verified) in &events {
        say(format!(
            "      {kind} ({msg}), signature {}",
            if *verified { "checked" } else { "WRONG" }
        ));
    }
    // Her data on request (152-FZ): her copy, then forgotten; her points stay in the books.
    let client_id = returned["client_id"].as_i64().unwrap_or_default();
    let export = json_of(
        http.get(format!("{base}/clients/{client_id}/export"))
            .bearer_auth(&key)
            .send()
            .await?,
    )
    .await?;
    let forgotten = json_of(
        http.delete(format!("{base}/clients/{client_id}"))
            .bearer_auth(&key)
            .send()
            .await?,
    )
    .await?;
    let count = |field: &str| export[field].as_array().map_or(0, Vec::len);
    say(format!(
        "21:10  Дарья asks for her data, then to be forgotten (152-FZ):\n      GET {base}/clients/{client_id}/export → her card, {} ledger entries, {} visits\n      DELETE {base}/clients/{client_id} → her phone now {}, name and Telegram gone; her {} points stay in the books",
        count("ledger"),
        count("visits"),
        forgotten["phone"].as_str().unwrap_or_default(),
        export["balance"],
    ));
    server.abort();
    Ok(json!({
        "salon": "Прима",
        "crm": "its own POS (partner API)",
        "visit": pushed,
        "replayed": replayed == "true",
        "preview": {"fires": preview["fires"], "failing": failed},
        "returned": returned,
        "forgotten": {
            "exported_visits": count("visits"),
            "exported_ledger": count("ledger"),
            "phone": forgotten["phone"],
        },
        "webhooks": events
            .iter()
            .map(|(kind, id, verified)| json!({"type": kind, "webhook_id": id, "signature_checked": verified}))
            .collect::<Vec<_>>(),
    }))
}
