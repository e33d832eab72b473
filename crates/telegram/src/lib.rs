//! # loyalty-telegram
//!
//! Loyalty Bridge on Telegram, over `frankenstein`:
//!
//! * [`OutboxWorker`] delivers the notifications the engine enqueued (retries with back-off,
//!   Telegram's `retry_after` honoured, about 30 messages/s overall and 1/s per chat, chats
//!   that blocked the bot marked inactive). Any number of workers may run against one database.
//! * [`ClientBot`] is the client's side of the program: `/start`, sharing a contact to link the
//!   chat to the phone at every salon, balance, history, notification opt-out; Russian by
//!   default, English for English-speaking users. Updates come by long polling
//!   ([`ClientBot::poll`]) or by webhook ([`ClientBot::handle_update`]).

mod bot;
pub mod qr;
pub mod reminders;
pub mod text;
mod worker;

use std::time::Duration;

use frankenstein::AsyncTelegramApi;
use frankenstein::client_reqwest::Bot;
use frankenstein::input_file::{FileUpload, InputFile};
use frankenstein::methods::{SendMessageParams, SendPhotoParams};
use frankenstein::types::ReplyMarkup;

pub use bot::{BotError, BotScope, ClientBot, GatewayCodes, NewCode, RewardTargets};
pub use reminders::{ReminderSettings, ReminderWorker};
pub use text::Lang;
pub use worker::{OutboxWorker, SendStats, WorkerSettings};

/// The salons' own bots (issue 17), by Telegram's id of the bot: what the workers send
/// through for a client linked through one. The gateway keeps them in its database.
#[async_trait::async_trait]
pub trait SalonBots: Send + Sync {
    /// The bot with this id, while a salon has it connected.
    async fn bot(&self, bot_id: i64) -> Option<Telegram>;
}

/// The bot a client is sent to through: `bot` 0 is the deployment's (`default`), any other a
/// salon's own from `bots`; why not, when that bot is not served.
pub(crate) async fn bot_for(
    default: &Telegram,
    bots: Option<&std::sync::Arc<dyn SalonBots>>,
    bot: i64,
) -> Result<Telegram, &'static str> {
    match (bot, bots) {
        (0, _) => Ok(default.clone()),
        (id, Some(bots)) => bots
            .bot(id)
            .await
            .ok_or("the salon's bot is no longer connected"),
        (_, None) => Err("salons' own bots are not served here"),
    }
}

/// Telegram's Bot API base URL.
pub const TELEGRAM_API_URL: &str = "https://api.telegram.org";

/// Why a call to Telegram failed, sorted by what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelegramError {
    /// 429: wait this long, then try again (the limit is bot-wide).
    #[error("Telegram asks to wait {0:?}")]
    RetryAfter(Duration),
    /// The user blocked the bot, deleted their account, or the chat is gone: stop writing.
    #[error("chat is unreachable: {0}")]
    ChatGone(String),
    /// Telegram refused the request itself; sending it again will not help.
    #[error("Telegram rejected the request: {0}")]
    Rejected(String),
    /// A network failure, a timeout or a 5xx: try again later.
    #[error("Telegram is unreachable: {0}")]
    Transient(String),
}

/// A bot token and the API it talks to. `Debug` hides the token.
#[derive(Clone)]
pub struct Telegram {
    bot: Bot,
}

impl std::fmt::Debug for Telegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Telegram { token: *** }")
    }
}

impl Telegram {
    /// A bot at `api_url` (Telegram's, or a stand-in in tests) through the given HTTP client.
    /// Give the client a timeout longer than the long-polling timeout (25 s).
    pub fn new(api_url: &str, token: &str, http: frankenstein::reqwest::Client) -> Telegram {
        let base = api_url.trim_end_matches('/');
        let bot = Bot::builder()
            .api_url(format!("{base}/bot{token}"))
            .client(http)
            .build();
        Telegram { bot }
    }

    pub(crate) fn api(&self) -> &Bot {
        &self.bot
    }

    /// Sends a text message, with an optional keyboard.
    pub async fn send_text(
        &self,
        chat_id: i64,
        text: &str,
        markup: Option<ReplyMarkup>,
    ) -> Result<(), TelegramError> {
        let params = SendMessageParams::builder()
            .chat_id(chat_id)
            .text(text)
            .maybe_reply_markup(markup)
            .build();
        self.bot
            .send_message(&params)
            .await
            .map(|_| ())
            .map_err(classify)
    }
}

impl Telegram {
    /// The bot's Telegram id and username (`getMe`): what a salon's token is checked by.
    pub async fn identity(&self) -> Result<(i64, String), TelegramError> {
        let me = self.bot.get_me().await.map_err(classify)?;
        let username = me
            .result
            .username
            .ok_or_else(|| TelegramError::Rejected("getMe gave no username".into()))?;
        let id = i64::try_from(me.result.id)
            .map_err(|_| TelegramError::Rejected("getMe gave an id out of range".into()))?;
        Ok((id, username))
    }

    /// Registers `url` as the bot's webhook, with the secret Telegram must echo in
    /// `X-Telegram-Bot-Api-Secret-Token`, for the updates the bot reads.
    pub async fn set_webhook(&self, url: &str, secret: &str) -> Result<(), TelegramError> {
        let params = frankenstein::methods::SetWebhookParams::builder()
            .url(url)
            .secret_token(secret)
            .allowed_updates(bot::UPDATES.to_vec())
            .build();
        self.bot
            .set_webhook(&params)
            .await
            .map(|_| ())
            .map_err(classify)
    }

    /// Stops the bot's webhook (a salon's bot taken off).
    pub async fn delete_webhook(&self) -> Result<(), TelegramError> {
        self.bot
            .delete_webhook(&frankenstein::methods::DeleteWebhookParams::builder().build())
            .await
            .map(|_| ())
            .map_err(classify)
    }

    /// The bot's username (`getMe`), for links to it.
    pub async fn username(&self) -> Result<String, TelegramError> {
        let me = self.bot.get_me().await.map_err(classify)?;
        me.result
            .username
            .ok_or_else(|| TelegramError::Rejected("getMe gave no username".into()))
    }

    /// Sends a PNG image with a caption. frankenstein uploads files from a path, so the bytes
    /// go through a temporary file that is removed once the call returns.
    pub async fn send_png(
        &self,
        chat_id: i64,
        png: &[u8],
        caption: &str,
    ) -> Result<(), TelegramError> {
        let file = tempfile::Builder::new()
            .prefix("loyalty-qr-")
            .suffix(".png")
            .tempfile()
            .map_err(|e| TelegramError::Transient(format!("temporary file: {e}")))?;
        std::fs::write(file.path(), png)
            .map_err(|e| TelegramError::Transient(format!("temporary file: {e}")))?;
        let params = SendPhotoParams::builder()
            .chat_id(chat_id)
            .photo(FileUpload::InputFile(InputFile {
                path: file.path().to_path_buf(),
            }))
            .caption(caption)
            .build();
        let sent = self.bot.send_photo(&params).await;
        drop(file);
        sent.map(|_| ()).map_err(classify)
    }
}

/// Sorts frankenstein's error by what the caller should do.
pub(crate) fn classify(e: frankenstein::Error) -> TelegramError {
    match e {
        frankenstein::Error::Api(api) => {
            let desc = api.description;
            let lower = desc.to_ascii_lowercase();
            match api.error_code {
                429 => {
                    let secs = api.parameters.and_then(|p| p.retry_after).unwrap_or(1);
                    TelegramError::RetryAfter(Duration::from_secs(u64::from(secs.max(1))))
                }
                403 => TelegramError::ChatGone(desc),
                400 if lower.contains("chat not found")
                    || lower.contains("user is deactivated") =>
                {
                    TelegramError::ChatGone(desc)
                }
                code if code >= 500 => TelegramError::Transient(format!("{code}: {desc}")),
                code => TelegramError::Rejected(format!("{code}: {desc}")),
            }
        }
        frankenstein::Error::HttpReqwest(e) => TelegramError::Transient(e.to_string()),
        // A reply that does not decode: Telegram (or a proxy) answered something else; retry.
        other => TelegramError::Transient(other.to_string()),
    }
}
