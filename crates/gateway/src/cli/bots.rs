//! `bot set|remove|list`: a salon's own Telegram bot (made with @BotFather), so its clients
//! talk to the salon's name rather than the deployment's bot.

use loyalty_core::{Clock, StoreError, SystemClock};
use loyalty_store::{SalonBot, SqlStore};
use loyalty_telegram::{Telegram, TelegramError};
use serde_json::{Value, json};

use super::{Usage, known_partner, new_secret};
use crate::config::Config;

/// A Bot API client for `token` on the deployment's API.
fn client(config: &Config, token: &str) -> anyhow::Result<Telegram> {
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(40))
        .build()?;
    Ok(Telegram::new(&config.telegram_api_url, token, http))
}

/// `bot set --partner ID` (the token on standard input): checks the token with Telegram
/// (`getMe`), keeps it, and registers its webhook when the deployment has a public URL.
pub async fn bot_set(
    store: &SqlStore,
    config: &Config,
    partner: i64,
    token: &str,
) -> anyhow::Result<Value> {
    let partner = known_partner(store, partner).await?;
    let token = token.trim();
    let Some((id, rest)) = token.split_once(':') else {
        return Err(
            Usage("a bot token looks like 123456789:AA…, as @BotFather gives it".into()).into(),
        );
    };
    if id.parse::<u64>().is_err() || rest.len() < 20 || rest.chars().any(char::is_whitespace) {
        return Err(
            Usage("a bot token looks like 123456789:AA…, as @BotFather gives it".into()).into(),
        );
    }
    let telegram = client(config, token)?;
    let (bot_id, username) = match telegram.identity().await {
        Ok(me) => me,
        Err(TelegramError::Rejected(why)) | Err(TelegramError::ChatGone(why)) => {
            return Err(Usage(format!("Telegram refused the token: {why}")).into());
        }
        Err(e) => {
            return Err(anyhow::anyhow!(
                "Telegram could not be asked about the token: {e}"
            ));
        }
    };
    let bot = SalonBot {
        partner_id: partner,
        bot_id,
        username: username.clone(),
        token: token.to_owned(),
        webhook_secret: new_secret()?,
    };
    store
        .set_salon_bot(&bot, SystemClock.now_ms())
        .await
        .map_err(|e| match e {
            StoreError::Duplicate(why) => anyhow::Error::from(Usage(why)),
            other => other.into(),
        })?;
    let webhook = match &config.public_url {
        Some(public) => {
            let url = format!("{public}/telegram/{}", bot.webhook_secret);
            match telegram.set_webhook(&url, &bot.webhook_secret).await {
                Ok(()) => json!("registered"),
                Err(e) => json!(format!(
                    "not registered ({e}): `serve` registers it at start"
                )),
            }
        }
        None => json!("none: `serve` polls it"),
    };
    Ok(json!({
        "partner": partner,
        "bot_id": bot_id,
        "username": username,
        "link": format!("https://t.me/{username}?start=s{partner}"),
        "webhook": webhook,
    }))
}

/// `bot remove --partner ID`: the salon's clients talk to the deployment's bot again (they
/// link again there).
pub async fn bot_remove(store: &SqlStore, config: &Config, partner: i64) -> anyhow::Result<Value> {
    let partner = known_partner(store, partner).await?;
    let Some(gone) = store.remove_salon_bot(partner).await? else {
        return Err(Usage(format!("partner {partner} has no bot of its own")).into());
    };
    // Best effort: a webhook left behind only gets 404s.
    if let Ok(t) = client(config, &gone.token) {
        let _ = t.delete_webhook().await;
    }
    Ok(json!({ "partner": partner, "removed": gone.username }))
}

/// `bot list`: every salon's own bot.
pub async fn bot_list(store: &SqlStore) -> anyhow::Result<Value> {
    let bots: Vec<Value> = store
        .salon_bots()
        .await?
        .into_iter()
        .map(|b| json!({ "partner": b.partner_id, "bot_id": b.bot_id, "username": b.username }))
        .collect();
    Ok(json!({ "bots": bots }))
}

pub fn bot_text(v: &Value) -> String {
    if let Some(bots) = v["bots"].as_array() {
        if bots.is_empty() {
            return "no salon has a bot of its own".into();
        }
        return bots
            .iter()
            .map(|b| {
                format!(
                    "partner {}: @{}",
                    b["partner"],
                    b["username"].as_str().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
    }
    if let Some(removed) = v["removed"].as_str() {
        return format!("partner {}: @{removed} taken off", v["partner"]);
    }
    format!(
        "partner {}: @{} connected; clients join at {} (webhook: {})",
        v["partner"],
        v["username"].as_str().unwrap_or_default(),
        v["link"].as_str().unwrap_or_default(),
        v["webhook"].as_str().unwrap_or_default()
    )
}
