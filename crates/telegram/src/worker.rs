//! The outbox worker: claims due notifications and sends them to Telegram.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use loyalty_core::health::HealthStore;
use loyalty_core::outbox::{OutboxMessage, retry_at};
use loyalty_core::{Clock, PartnerId, Store, StoreError};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::text::{self, Lang};
use crate::{Telegram, TelegramError};

/// How the worker paces itself.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Messages claimed per round.
    pub batch: u32,
    /// How long a claimed message stays invisible to other workers.
    pub lease: Duration,
    /// The least time between two sends of the whole bot (Telegram: about 30 messages/s).
    pub min_interval: Duration,
    /// The least time between two messages to one chat (Telegram: about 1/s).
    pub per_chat_interval: Duration,
    /// How long to sleep when nothing is due.
    pub idle: Duration,
}

impl Default for WorkerSettings {
    fn default() -> WorkerSettings {
        WorkerSettings {
            batch: 30,
            lease: Duration::from_secs(60),
            min_interval: Duration::from_millis(34),
            per_chat_interval: Duration::from_secs(1),
            idle: Duration::from_millis(500),
        }
    }
}

/// Counts of send results since start, for metrics.
#[derive(Debug, Default)]
pub struct SendStats {
    pub sent: AtomicU64,
    /// Failed for now; the message waits for its next attempt.
    pub retried: AtomicU64,
    /// Telegram answered 429.
    pub rate_limited: AtomicU64,
    /// The chat blocked the bot or is gone; it is marked inactive.
    pub chat_gone: AtomicU64,
    /// Given up: rejected by Telegram, out of attempts, or nobody to send it to.
    pub dead: AtomicU64,
}

impl SendStats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Delivers the outbox. Several workers (in one process or many) can run against one
/// database: a claim leases its messages, so no message is sent twice except when a worker
/// dies between sending and recording it (then once more, after the lease).
pub struct OutboxWorker {
    store: Arc<dyn Store>,
    telegram: Telegram,
    clock: Arc<dyn Clock>,
    settings: WorkerSettings,
    stats: Arc<SendStats>,
    salons: HashMap<PartnerId, String>,
    /// The last message to a chat through a bot (0: the deployment's).
    last_to_chat: HashMap<(i64, i64), Instant>,
    /// Each bot's next free slot: its pace, or the end of its 429 pause.
    next_send: HashMap<i64, Instant>,
    /// Where messages to the salons' staff chats wait, when the worker sends them too.
    staff: Option<Arc<dyn HealthStore>>,
    /// The salons' own bots, for clients linked through one.
    bots: Option<Arc<dyn crate::SalonBots>>,
}

/// What happened to one message.
enum Settle {
    Sent,
    /// Not tried: its bot waits out a 429 this much longer.
    Later(Duration),
    Retry(String),
    RateLimited(Duration),
    Dead(String),
}

impl OutboxWorker {
    pub fn new(
        store: Arc<dyn Store>,
        telegram: Telegram,
        clock: Arc<dyn Clock>,
        settings: WorkerSettings,
    ) -> OutboxWorker {
        OutboxWorker {
            store,
            telegram,
            clock,
            settings,
            stats: Arc::new(SendStats::default()),
            salons: HashMap::new(),
            last_to_chat: HashMap::new(),
            next_send: HashMap::new(),
            staff: None,
            bots: None,
        }
    }

    /// Sends to clients linked through a salon's own bot through that bot, each bot at its
    /// own pace and with its own 429 pauses.
    pub fn with_salon_bots(mut self, bots: Arc<dyn crate::SalonBots>) -> OutboxWorker {
        self.bots = Some(bots);
        self
    }

    /// Sends the staff chats' messages too (connection incidents), paced with the rest.
    pub fn with_staff_messages(mut self, staff: Arc<dyn HealthStore>) -> OutboxWorker {
        self.staff = Some(staff);
        self
    }

    pub fn stats(&self) -> Arc<SendStats> {
        Arc::clone(&self.stats)
    }

    /// Runs until `shutdown` turns true; the message being sent when it does is finished and
    /// recorded first.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        info!("outbox worker started");
        while !*shutdown.borrow() {
            let worked = match self.round(&shutdown).await {
                Ok(n) => n > 0,
                Err(e) => {
                    warn!(error = %e, "outbox round failed");
                    false
                }
            };
            if !worked {
                tokio::select! {
                    _ = tokio::time::sleep(self.settings.idle) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        info!("outbox worker stopped");
    }

    /// Claims one batch and settles every message of it; returns how many were claimed.
    pub async fn round(&mut self, shutdown: &watch::Receiver<bool>) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        let lease = i64::try_from(self.settings.lease.as_millis()).unwrap_or(60_000);
        let batch = self
            .store
            .claim_outbox(now, lease, self.settings.batch)
            .await?;
        let claimed = batch.len();
        for (i, msg) in batch.iter().enumerate() {
            if *shutdown.borrow() {
                // Hand the rest back at once rather than leaving them to their lease.
                for rest in &batch[i..] {
                    self.store
                        .outbox_failed(rest.id, Some(self.clock.now_ms()), "worker stopped")
                        .await?;
                }
                break;
            }
            let settle = self.deliver(msg).await?;
            self.record(msg, settle).await?;
        }
        Ok(claimed + self.staff_round(shutdown).await?)
    }

    /// Claims and sends one batch of staff messages; returns how many were claimed.
    async fn staff_round(&mut self, shutdown: &watch::Receiver<bool>) -> Result<usize, StoreError> {
        let Some(staff) = self.staff.clone() else {
            return Ok(0);
        };
        let now = self.clock.now_ms();
        let lease = i64::try_from(self.settings.lease.as_millis()).unwrap_or(60_000);
        let batch = staff
            .claim_staff_messages(now, lease, self.settings.batch)
            .await?;
        for (i, msg) in batch.iter().enumerate() {
            if *shutdown.borrow() {
                for rest in &batch[i..] {
                    staff
                        .staff_message_failed(rest.id, Some(self.clock.now_ms()), "worker stopped")
                        .await?;
                }
                break;
            }
            let chat = self.store.telegram_chat(msg.chat_id).await?;
            let lang = Lang::from_code(chat.as_ref().map(|c| c.language.as_str()));
            let salon = self.salon(msg.partner_id).await?;
            let body = text::staff_notice(&msg.notice, &salon, lang);
            if let Some(wait) = self.pace(0, msg.chat_id).await {
                let at = self.clock.now_ms() + i64::try_from(wait.as_millis()).unwrap_or(0);
                staff
                    .staff_message_failed(msg.id, Some(at), "Telegram: 429 Too Many Requests")
                    .await?;
                continue;
            }
            let now = self.clock.now_ms();
            match self.telegram.send_text(msg.chat_id, &body, None).await {
                Ok(()) => {
                    staff.staff_message_sent(msg.id, now).await?;
                    SendStats::bump(&self.stats.sent);
                }
                Err(TelegramError::RetryAfter(wait)) => {
                    self.next_send.insert(0, Instant::now() + wait);
                    let at = now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
                    staff
                        .staff_message_failed(msg.id, Some(at), "Telegram: 429 Too Many Requests")
                        .await?;
                    SendStats::bump(&self.stats.rate_limited);
                }
                Err(TelegramError::Transient(why)) => {
                    let at = retry_at(msg.attempts, now);
                    staff.staff_message_failed(msg.id, at, &why).await?;
                    SendStats::bump(if at.is_some() {
                        &self.stats.retried
                    } else {
                        &self.stats.dead
                    });
                    warn!(chat = msg.chat_id, error = %why, "staff message failed");
                }
                Err(TelegramError::ChatGone(why) | TelegramError::Rejected(why)) => {
                    staff.staff_message_failed(msg.id, None, &why).await?;
                    SendStats::bump(&self.stats.dead);
                    info!(chat = msg.chat_id, reason = %why, "staff message not deliverable");
                }
            }
        }
        Ok(batch.len())
    }

    async fn deliver(&mut self, msg: &OutboxMessage) -> Result<Settle, StoreError> {
        let Some(client) = self.store.client(msg.partner_id, msg.client_id).await? else {
            return Ok(Settle::Dead("client not found".into()));
        };
        let Some(chat_id) = client.telegram_chat_id else {
            return Ok(Settle::Dead("client has no Telegram chat".into()));
        };
        if client.notifications_off {
            return Ok(Settle::Dead("client turned notifications off".into()));
        }
        let chat = self.store.telegram_chat(chat_id).await?;
        if chat.as_ref().is_some_and(|c| !c.active) {
            return Ok(Settle::Dead(
                "chat inactive: the user blocked the bot".into(),
            ));
        }
        let lang = Lang::from_code(chat.as_ref().map(|c| c.language.as_str()));
        let salon = self.salon(msg.partner_id).await?;
        let body = text::notification(&msg.notification, &salon, lang);
        // The bot the client linked through: the deployment's, or her salon's own.
        let bot = self
            .store
            .chat_bot_of(msg.partner_id, msg.client_id)
            .await?;
        let telegram = match crate::bot_for(&self.telegram, self.bots.as_ref(), bot).await {
            Ok(t) => t,
            Err(why) => return Ok(Settle::Dead(why.into())),
        };

        if let Some(wait) = self.pace(bot, chat_id).await {
            // Its bot is paused by a 429: the message waits, other bots' go on.
            return Ok(Settle::Later(wait));
        }
        match telegram.send_text(chat_id, &body, None).await {
            Ok(()) => Ok(Settle::Sent),
            Err(TelegramError::RetryAfter(wait)) => {
                // The limit is the bot's, not the chat's: everyone of this bot waits.
                self.next_send.insert(bot, Instant::now() + wait);
                Ok(Settle::RateLimited(wait))
            }
            Err(TelegramError::ChatGone(why)) if bot != 0 => {
                // She blocked her salon's bot: that link is gone, the chat stays for others.
                self.store
                    .unlink_chat(msg.partner_id, msg.client_id)
                    .await?;
                SendStats::bump(&self.stats.chat_gone);
                Ok(Settle::Dead(format!("the salon's bot was blocked: {why}")))
            }
            Err(TelegramError::ChatGone(why)) => {
                let mut chat = chat.unwrap_or(loyalty_core::TelegramChat {
                    chat_id,
                    phone: Some(client.phone.clone()),
                    language: lang.code().into(),
                    active: true,
                    joined_partner: None,
                    referred_by: None,
                });
                chat.active = false;
                self.store
                    .save_telegram_chat(&chat, self.clock.now_ms())
                    .await?;
                SendStats::bump(&self.stats.chat_gone);
                Ok(Settle::Dead(format!("chat inactive: {why}")))
            }
            Err(TelegramError::Rejected(why)) => Ok(Settle::Dead(why)),
            Err(TelegramError::Transient(why)) => Ok(Settle::Retry(why)),
        }
    }

    async fn record(&mut self, msg: &OutboxMessage, settle: Settle) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        match settle {
            Settle::Sent => {
                self.store.outbox_sent(msg.id, now).await?;
                SendStats::bump(&self.stats.sent);
                debug!(message = msg.id, "notification sent");
            }
            Settle::Later(wait) => {
                let at = now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
                self.store.outbox_later(msg.id, at).await?;
                debug!(message = msg.id, "its bot waits out a 429");
            }
            Settle::RateLimited(wait) => {
                let at = now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
                self.store
                    .outbox_failed(msg.id, Some(at), "Telegram: 429 Too Many Requests")
                    .await?;
                SendStats::bump(&self.stats.rate_limited);
                warn!(
                    message = msg.id,
                    wait_s = wait.as_secs(),
                    "rate limited by Telegram"
                );
            }
            Settle::Retry(why) => match retry_at(msg.attempts, now) {
                Some(at) => {
                    self.store.outbox_failed(msg.id, Some(at), &why).await?;
                    SendStats::bump(&self.stats.retried);
                    warn!(message = msg.id, attempts = msg.attempts, error = %why, "send failed, will retry");
                }
                None => {
                    self.store.outbox_failed(msg.id, None, &why).await?;
                    SendStats::bump(&self.stats.dead);
                    warn!(message = msg.id, error = %why, "send failed for good");
                }
            },
            Settle::Dead(why) => {
                self.store.outbox_failed(msg.id, None, &why).await?;
                SendStats::bump(&self.stats.dead);
                info!(message = msg.id, reason = %why, "notification not deliverable");
            }
        }
        Ok(())
    }

    /// Waits for the bot's slot and the chat's own; a bot paused by a 429 for longer than a
    /// second is not waited for: how long it still is, and the message goes back to the
    /// outbox (other bots' messages go on meanwhile).
    async fn pace(&mut self, bot: i64, chat_id: i64) -> Option<Duration> {
        let now = Instant::now();
        let mut at = self.next_send.get(&bot).copied().unwrap_or(now);
        if at > now + Duration::from_secs(1) {
            return Some(at - now);
        }
        if let Some(last) = self.last_to_chat.get(&(bot, chat_id)) {
            at = at.max(*last + self.settings.per_chat_interval);
        }
        tokio::time::sleep_until(at).await;
        let now = Instant::now();
        self.next_send.insert(bot, now + self.settings.min_interval);
        self.last_to_chat.insert((bot, chat_id), now);
        if self.last_to_chat.len() > 10_000 {
            let horizon = self.settings.per_chat_interval;
            self.last_to_chat
                .retain(|_, t| now.duration_since(*t) < horizon);
        }
        None
    }

    async fn salon(&mut self, partner: PartnerId) -> Result<String, StoreError> {
        if let Some(name) = self.salons.get(&partner) {
            return Ok(name.clone());
        }
        let name = self
            .store
            .partner(partner)
            .await?
            .map(|p| p.name)
            .unwrap_or_default();
        self.salons.insert(partner, name.clone());
        Ok(name)
    }
}
