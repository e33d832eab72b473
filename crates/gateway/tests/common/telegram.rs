//! The Telegram Bot API as wiremock plays it for the gateway's bot: `setWebhook` and
//! `sendMessage` answer ok, and what was sent to a chat can be read back.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A stand-in for the bot with this `token`.
pub async fn telegram(token: &str) -> MockServer {
    let telegram = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{token}/setWebhook")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": true})))
        .mount(&telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{token}/sendMessage")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": {
            "message_id": 1, "date": 1_795_000_000, "chat": {"id": 1, "type": "private"}}})),
        )
        .mount(&telegram)
        .await;
    telegram
}

/// The texts sent to `chat` so far, in order.
pub async fn texts_to(telegram: &MockServer, chat: i64) -> Vec<String> {
    telegram
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path().ends_with("/sendMessage"))
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|b| b["chat_id"] == json!(chat))
        .filter_map(|b| b["text"].as_str().map(str::to_owned))
        .collect()
}
