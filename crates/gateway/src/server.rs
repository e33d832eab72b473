//! The HTTP service: CRM webhooks, the Telegram webhook, health and metrics.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use loyalty_core::audit::Capability;
use loyalty_core::health::HealthStore;
use loyalty_core::inbox::{IntakeStore, Source};
use loyalty_core::sync::SyncStore;
use loyalty_core::{
    Clock, CrmKind, EngineError, LoyaltyEngine, Outcome, SystemClock, WebhookError,
};
use loyalty_store::{RejectedDelivery, SqlStore};
use loyalty_telegram::ClientBot;
use serde_json::{Value, json};
use tower_http::timeout::TimeoutLayer;
use tracing::{info, warn};

use crate::connections::{Connected, Connections};
use crate::metrics::Metrics;

/// The largest webhook body accepted.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// How long one request may take, CRM re-fetch included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How much of a rejected body is kept.
const EXCERPT: usize = 4 * 1024;

/// Everything a request handler needs.
pub struct App {
    /// Whether the database answers ([`crate::dbwatch`]).
    pub db: crate::dbwatch::DbWatch,
    pub store: Arc<SqlStore>,
    pub engine: LoyaltyEngine,
    pub connections: Arc<Connections>,
    pub metrics: Arc<Metrics>,
    /// The bot, when a token is configured and updates come by webhook.
    pub bot: Option<Arc<ClientBot>>,
    /// The secret in `POST /telegram/{secret}` and its header.
    pub telegram_secret: Option<String>,
    /// Salons' own bots: a secret that is not the deployment's names one of them.
    pub salon_bots: Option<Arc<crate::bots::SalonBotPool>>,
    /// Service syncs asked for by webhooks.
    pub service_syncs: crate::services::Pending,
    /// Wakes the inbox worker when a delivery was queued for the CRM.
    pub inbox_wake: Arc<tokio::sync::Notify>,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/webhooks/{crm}/{secret}", post(crm_webhook))
        .route("/telegram/{secret}", post(telegram_webhook))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        // Webhook bodies are read with their own limit, so an oversized one is still recorded.
        .layer(DefaultBodyLimit::disable())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(app)
}

/// A JSON error answer: `{"error": code, "message": …}`.
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({ "error": code, "message": message.into() })),
    )
        .into_response()
}

async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if let Some(why) = app.db.down() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "not_ready", why);
    }
    let migrated = tokio::time::timeout(Duration::from_secs(1), app.store.is_migrated())
        .await
        .unwrap_or(false);
    if migrated {
        axum::Json(json!({ "status": "ready" })).into_response()
    } else {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the database is unreachable or not migrated (run `loyalty-gateway migrate`)",
        )
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let stats = match app.engine.store().outbox_stats().await {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "outbox gauges unavailable");
            None
        }
    };
    let inbox = match app.store.inbox_stats().await {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "inbox gauges unavailable");
            None
        }
    };
    let sync = app.store.sync_cursors(None).await.unwrap_or_else(|e| {
        warn!(error = %e, "sync gauges unavailable");
        Vec::new()
    });
    let incidents = app.store.incidents(None, false).await.unwrap_or_else(|e| {
        warn!(error = %e, "incident gauges unavailable");
        Vec::new()
    });
    let gauges = crate::metrics::Gauges {
        outbox: stats,
        inbox,
        sync,
        incidents,
    };
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(gauges, app.engine.now_ms()),
    )
        .into_response()
}

/// What to tell the CRM about a delivery that was not applied, and whether to keep it.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }
}

fn webhook_refusal(e: &WebhookError) -> Refusal {
    match e {
        WebhookError::Malformed(_) => {
            Refusal::new(StatusCode::BAD_REQUEST, "malformed_json", e.to_string())
        }
        WebhookError::Shape(_) => Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unexpected_payload",
            e.to_string(),
        ),
        WebhookError::WrongCompany { .. } => Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_company",
            e.to_string(),
        ),
        WebhookError::ContentType(_) => Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_type",
            e.to_string(),
        ),
    }
}

/// An engine error on a well-formed delivery: the CRM's data does not fit the connection
/// (4xx, kept), or something on our side or the CRM's API is down (5xx, kept for replay, the
/// CRM may retry).
fn engine_refusal(e: &EngineError) -> Refusal {
    match e {
        EngineError::WrongCompany { .. } => Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_company",
            e.to_string(),
        ),
        EngineError::CurrencyMismatch { .. } => Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_currency",
            e.to_string(),
        ),
        EngineError::Money(_) | EngineError::Phone(_) => Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_values",
            e.to_string(),
        ),
        EngineError::Crm(_)
        | EngineError::NeedsRefetch { .. }
        | EngineError::PaymentsUnknown { .. } => Refusal::new(
            StatusCode::BAD_GATEWAY,
            "crm_unavailable",
            format!("the record could not be fetched from the CRM: {e}"),
        ),
        EngineError::Store(loyalty_core::StoreError::Unavailable(why)) => Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            format!("the delivery could not be stored ({why}); send it again"),
        ),
        _ => Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "the delivery could not be stored; send it again",
        ),
    }
}

/// `POST /webhooks/{crm}/{secret}`.
/// The database is down (`why`): said at once, never left to the CRM's timeout.
fn database_down(why: &str) -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        format!("{why}; send it again"),
    )
}

/// A CRM's webhook, answered 503 as soon as the database is found down — before it is
/// read, or while it waits on the database.
async fn crm_webhook(
    State(app): State<Arc<App>>,
    Path((crm, secret)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(why) = app.db.down() {
        app.metrics.delivery("unknown", "unavailable");
        return database_down(&why);
    }
    let watch = app.db.clone();
    tokio::select! {
        r = crm_delivery(Arc::clone(&app), crm, secret, headers, body) => r,
        why = watch.went_down() => {
            app.metrics.delivery("unknown", "unavailable");
            database_down(&why)
        }
    }
}

async fn crm_delivery(
    app: Arc<App>,
    crm: String,
    secret: String,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let found = match app.connections.by_secret(&secret).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            app.metrics.delivery("unknown", "rejected");
            return error(
                StatusCode::NOT_FOUND,
                "unknown_connection",
                "no connection has this webhook URL",
            );
        }
        Err(e) => {
            warn!(error = %e, "connection lookup failed");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "the database is unavailable; send it again",
            );
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());

    let kind = match crm.parse::<CrmKind>() {
        Ok(kind) if kind == found.connection.kind => kind,
        Ok(_) | Err(_) => {
            let r = Refusal::new(
                StatusCode::NOT_FOUND,
                "unknown_crm",
                format!(
                    "this URL belongs to a {} connection, not {crm:?}",
                    found.connection.kind
                ),
            );
            return refuse(
                &app,
                &found,
                &crm,
                content_type,
                declared.unwrap_or(0),
                b"",
                r,
            )
            .await;
        }
    };
    let crm = kind.as_str();

    if declared.is_some_and(|n| n > BODY_LIMIT) {
        let r = Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("webhook bodies are limited to {BODY_LIMIT} bytes"),
        );
        return refuse(
            &app,
            &found,
            crm,
            content_type,
            declared.unwrap_or(0),
            b"",
            r,
        )
        .await;
    }
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            let r = Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("webhook bodies are limited to {BODY_LIMIT} bytes"),
            );
            return refuse(&app, &found, crm, content_type, BODY_LIMIT + 1, b"", r).await;
        }
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        let r = Refusal::new(StatusCode::BAD_REQUEST, "empty_body", "the body is empty");
        return refuse(&app, &found, crm, content_type, body.len(), &body, r).await;
    }
    // A plan without the CRM integration is refused where the integration is served, and the
    // delivery kept for the operator (after an upgrade the poller and the import catch up).
    if let Err(refusal) = found
        .plan
        .check(found.connection.partner_id, Capability::CrmIntegration)
    {
        let r = Refusal::new(StatusCode::FORBIDDEN, "plan", refusal.to_string());
        return refuse(&app, &found, crm, content_type, body.len(), &body, r).await;
    }
    let events = match found.adapter.parse_webhook(content_type.as_deref(), &body) {
        Ok(events) => events,
        Err(e) => {
            let r = webhook_refusal(&e);
            return refuse(&app, &found, crm, content_type, body.len(), &body, r).await;
        }
    };
    app.connections
        .health()
        .webhook_arrived(&found.connection, SystemClock.now_ms());
    // A change to the CRM's service list refreshes the rewards catalog, after the answer.
    let services_changed = events
        .iter()
        .any(|e| crate::services::touches_services(e.resource()));
    let response = apply(&app, &found, crm, content_type, &body, events).await;
    if response.status().is_success() {
        if services_changed {
            crate::services::request(&app, found.connection.id);
        }
        // What the adapter keeps of a delivery (Beauty Pro: its replay's first cursor); a
        // failure here loses nothing the poller would not bring.
        if let Err(e) = found.adapter.webhook_received(&body).await {
            warn!(connection = %found.connection.id, crm, error = %e, "the adapter could not note the delivery");
        }
    }
    response
}

async fn apply(
    app: &App,
    found: &Connected,
    crm: &str,
    content_type: Option<String>,
    body: &Bytes,
    events: Vec<loyalty_core::CrmEvent>,
) -> Response {
    let mut results = Vec::with_capacity(events.len());
    let mut all_duplicates = !events.is_empty();
    for event in &events {
        // Never the CRM's API inside the request: what needs it is queued and answered 2xx.
        match app
            .engine
            .accept(
                app.store.as_ref(),
                &found.connection,
                event,
                Source::Webhook,
            )
            .await
        {
            Ok(outcome) => {
                if matches!(outcome, Outcome::Queued { .. }) {
                    app.inbox_wake.notify_one();
                }
                let delta = outcome.delta().value();
                app.metrics.points(delta);
                if !matches!(outcome, Outcome::Duplicate | Outcome::Stale) {
                    all_duplicates = false;
                }
                info!(
                    connection = %found.connection.id,
                    crm,
                    resource = event.resource(),
                    outcome = outcome.label(),
                    delta,
                    "delivery applied"
                );
                results.push(json!({ "outcome": outcome.label(), "points": delta }));
            }
            Err(e) => {
                let r = engine_refusal(&e);
                warn!(connection = %found.connection.id, crm, error = %e, "delivery not applied");
                if r.status == StatusCode::SERVICE_UNAVAILABLE {
                    app.metrics.delivery(crm, "failed");
                    return error(r.status, r.code, r.message);
                }
                return refuse(app, found, crm, content_type, body.len(), body, r).await;
            }
        }
    }
    app.metrics.delivery(
        crm,
        if all_duplicates {
            "duplicate"
        } else {
            "accepted"
        },
    );
    (
        StatusCode::OK,
        axum::Json(json!({ "ok": true, "events": results })),
    )
        .into_response()
}

/// Answers a refused delivery and keeps it for the operator.
async fn refuse(
    app: &App,
    found: &Connected,
    crm: &str,
    content_type: Option<String>,
    body_bytes: usize,
    body: &[u8],
    r: Refusal,
) -> Response {
    // The URL's CRM name is the sender's to choose: only known names become label values.
    let label = crm.parse::<CrmKind>().map_or("unknown", CrmKind::as_str);
    app.metrics.delivery(label, "rejected");
    warn!(
        connection = %found.connection.id,
        crm,
        status = r.status.as_u16(),
        reason = r.code,
        "delivery rejected"
    );
    let kept = RejectedDelivery {
        partner_id: found.connection.partner_id,
        connection_id: found.connection.id,
        crm: crm.chars().take(32).collect(),
        http_status: r.status.as_u16(),
        reason: format!("{}: {}", r.code, r.message),
        content_type: content_type.map(|c| c.chars().take(200).collect()),
        body_bytes: i64::try_from(body_bytes).unwrap_or(i64::MAX),
        body_excerpt: redacted_excerpt(body),
        received_at_ms: app.engine.now_ms(),
    };
    if let Err(e) = app.store.record_rejected(&kept).await {
        warn!(error = %e, "could not keep the rejected delivery");
    }
    error(r.status, r.code, r.message)
}

/// The start of a body with secret-looking JSON values replaced by `***`.
pub fn redacted_excerpt(body: &[u8]) -> String {
    if let Ok(mut value) = serde_json::from_slice::<Value>(body) {
        redact(&mut value);
        let text = value.to_string();
        return cut(&text);
    }
    cut(&String::from_utf8_lossy(body))
}

fn cut(text: &str) -> String {
    if text.len() <= EXCERPT {
        return text.to_owned();
    }
    let mut end = EXCERPT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn redact(value: &mut Value) {
    const SECRET: [&str; 6] = [
        "token",
        "password",
        "secret",
        "authorization",
        "api_key",
        "apikey",
    ];
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let key = key.to_ascii_lowercase();
                if SECRET.iter().any(|s| key.contains(s)) {
                    *v = Value::String("***".into());
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// `POST /telegram/{secret}`: Telegram's webhook, checked by path and header.
async fn telegram_webhook(
    State(app): State<Arc<App>>,
    Path(secret): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header_ok = headers
        .get("x-telegram-bot-api-secret-token")
        .and_then(|v| v.to_str().ok())
        == Some(secret.as_str());
    // The deployment's bot by its secret, else a salon's own bot by its.
    let bot = match (&app.bot, &app.telegram_secret) {
        (Some(bot), Some(expected)) if secret == *expected => Some(Arc::clone(bot)),
        _ => match &app.salon_bots {
            Some(pool) => pool.by_secret(&secret).await,
            None => None,
        },
    };
    let Some(bot) = bot.filter(|_| header_ok) else {
        return error(StatusCode::NOT_FOUND, "not_found", "unknown bot webhook");
    };
    if body.len() > BODY_LIMIT {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "update too large",
        );
    }
    match serde_json::from_slice::<frankenstein::updates::Update>(&body) {
        Ok(update) => {
            bot.handle_update(update).await;
            axum::Json(json!({ "ok": true })).into_response()
        }
        // An update this bot cannot read is acknowledged, or Telegram would resend it forever.
        Err(e) => {
            warn!(error = %e, "unreadable Telegram update skipped");
            axum::Json(json!({ "ok": true, "skipped": true })).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_hide_secrets_and_stay_short() {
        let body = br#"{"resource":"record","data":{"api_token":"abc","nested":[{"Password":"p"}],"phone":"+7"}}"#;
        let e = redacted_excerpt(body);
        assert!(!e.contains("abc") && !e.contains("\"p\""), "{e}");
        assert!(e.contains("\"phone\":\"+7\""), "{e}");
        let big = "я".repeat(10_000);
        let e = redacted_excerpt(big.as_bytes());
        assert!(e.len() <= EXCERPT + 3 && e.ends_with('…'));
    }
}
