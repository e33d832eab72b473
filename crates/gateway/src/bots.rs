//! Salons' own Telegram bots in `serve`: many bots at once beside the deployment's. Each has its
//! webhook (`/telegram/{its secret}`) or, without a public URL, its own long poll; its own
//! [`ClientBot`] serving that salon alone; and, in the workers, its own pace and 429 pauses
//! (`loyalty_telegram::SalonBots`). Bots connected while `serve` runs are picked up within
//! [`REFRESH`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use loyalty_core::PartnerId;
use loyalty_store::{SalonBot, SqlStore};
use loyalty_telegram::{BotScope, ClientBot, SalonBots, Telegram};
use tokio::sync::watch;
use tracing::{info, warn};

/// How long a bot looked up is trusted before the database is asked again (a token changed,
/// a bot taken off).
pub const REFRESH: Duration = Duration::from_secs(30);

/// Builds a salon bot's [`ClientBot`] with the deployment bot's wiring.
pub type MakeBot = Box<dyn Fn(Telegram, BotScope) -> ClientBot + Send + Sync>;

/// Something looked up, and when: trusted for [`REFRESH`].
type Cached<T> = RwLock<HashMap<T, (Instant, Option<Arc<ClientBot>>)>>;

/// The salons' bots this process serves and sends through.
pub struct SalonBotPool {
    store: Arc<SqlStore>,
    api_url: String,
    http: reqwest::Client,
    make: MakeBot,
    senders: RwLock<HashMap<i64, (Instant, Option<Telegram>)>>,
    bots: Cached<String>,
}

impl SalonBotPool {
    pub fn new(
        store: Arc<SqlStore>,
        api_url: &str,
        http: reqwest::Client,
        make: MakeBot,
    ) -> SalonBotPool {
        SalonBotPool {
            store,
            api_url: api_url.to_owned(),
            http,
            make,
            senders: RwLock::new(HashMap::new()),
            bots: RwLock::new(HashMap::new()),
        }
    }

    /// The Bot API client of a salon's bot.
    pub fn telegram(&self, b: &SalonBot) -> Telegram {
        Telegram::new(&self.api_url, &b.token, self.http.clone())
    }

    fn client_bot(&self, b: &SalonBot) -> Arc<ClientBot> {
        Arc::new((self.make)(
            self.telegram(b),
            BotScope {
                partner: b.partner_id,
                bot_id: b.bot_id,
            },
        ))
    }

    /// The salon bot whose webhook secret this is (the caller checks Telegram's header
    /// against the same secret).
    pub async fn by_secret(&self, secret: &str) -> Option<Arc<ClientBot>> {
        if let Ok(known) = self.bots.read()
            && let Some((at, bot)) = known.get(secret)
            && at.elapsed() < REFRESH
        {
            return bot.clone();
        }
        let found = match self.store.salon_bot_by_secret(secret).await {
            Ok(found) => found,
            Err(e) => {
                warn!(error = %e, "cannot look up a salon's bot");
                return None;
            }
        };
        let bot = found.map(|b| self.client_bot(&b));
        if let Ok(mut known) = self.bots.write() {
            known.insert(secret.to_owned(), (Instant::now(), bot.clone()));
        }
        bot
    }

    /// Keeps every salon bot's updates coming while `serve` runs: with a public URL, their
    /// webhooks registered at start (`bot set` registers a new one); without, a long poll per
    /// bot, started for bots connected later and stopped for bots taken off.
    pub async fn run(
        self: Arc<Self>,
        public_url: Option<String>,
        mut stopping: watch::Receiver<bool>,
    ) {
        if let Some(public) = &public_url {
            match self.store.salon_bots().await {
                Ok(bots) => {
                    for b in bots {
                        let url = format!("{public}/telegram/{}", b.webhook_secret);
                        let bot = self.client_bot(&b);
                        if let Err(e) = bot.set_webhook(&url, &b.webhook_secret).await {
                            warn!(partner = b.partner_id.0, error = %e, "salon bot's webhook not set");
                        }
                    }
                }
                Err(e) => warn!(error = %e, "cannot list the salons' bots"),
            }
            return;
        }
        let mut polling: HashMap<i64, (String, watch::Sender<bool>)> = HashMap::new();
        loop {
            match self.store.salon_bots().await {
                Ok(bots) => {
                    polling.retain(|id, (token, stop)| {
                        let keep = bots.iter().any(|b| b.bot_id == *id && b.token == *token);
                        if !keep {
                            let _ = stop.send(true);
                        }
                        keep
                    });
                    for b in bots {
                        if polling.contains_key(&b.bot_id) {
                            continue;
                        }
                        let (stop, rx) = watch::channel(false);
                        let bot = self.client_bot(&b);
                        info!(partner = b.partner_id.0, bot = %b.username, "salon bot polling");
                        tokio::spawn(async move { bot.poll(rx).await });
                        polling.insert(b.bot_id, (b.token.clone(), stop));
                    }
                }
                Err(e) => warn!(error = %e, "cannot list the salons' bots"),
            }
            tokio::select! {
                _ = tokio::time::sleep(REFRESH) => {}
                _ = stopping.wait_for(|s| *s) => break,
            }
        }
        for (_, (_, stop)) in polling {
            let _ = stop.send(true);
        }
    }
}

/// Why a salon has no bot link now.
pub enum NoLink {
    /// No bot runs: neither the deployment's nor the salon's own.
    NoBot,
    /// Asking Telegram or the database failed; try later.
    Later(String),
}

/// The link that joins a salon through its bot (`https://t.me/<bot>?start=s<partner>`): the
/// salon's own bot when it has one, else the deployment's (its name asked of Telegram once).
/// The SMS invitations and onboarding's QR code share it.
pub struct JoinLinks {
    store: Arc<SqlStore>,
    telegram: Option<Telegram>,
    username: tokio::sync::OnceCell<String>,
}

impl JoinLinks {
    pub fn new(store: Arc<SqlStore>, telegram: Option<Telegram>) -> JoinLinks {
        JoinLinks {
            store,
            telegram,
            username: tokio::sync::OnceCell::new(),
        }
    }

    pub async fn link(&self, partner: PartnerId) -> Result<String, NoLink> {
        let link = |bot: &str| format!("https://t.me/{bot}?start=s{partner}");
        match self.store.salon_bot(partner).await {
            Ok(Some(own)) => return Ok(link(&own.username)),
            Ok(None) => {}
            Err(e) => return Err(NoLink::Later(format!("the salon's bot: {e}"))),
        }
        let Some(telegram) = &self.telegram else {
            return Err(NoLink::NoBot);
        };
        let username = self
            .username
            .get_or_try_init(|| async { telegram.username().await })
            .await
            .map_err(|e| NoLink::Later(format!("the bot's name: {e}")))?;
        Ok(link(username))
    }
}

#[async_trait]
impl SalonBots for SalonBotPool {
    async fn bot(&self, bot_id: i64) -> Option<Telegram> {
        if let Ok(known) = self.senders.read()
            && let Some((at, t)) = known.get(&bot_id)
            && at.elapsed() < REFRESH
        {
            return t.clone();
        }
        let found = match self.store.salon_bot_by_id(bot_id).await {
            Ok(found) => found,
            Err(e) => {
                warn!(error = %e, "cannot look up a salon's bot");
                return None;
            }
        };
        let t = found.map(|b| self.telegram(&b));
        if let Ok(mut known) = self.senders.write() {
            known.insert(bot_id, (Instant::now(), t.clone()));
        }
        t
    }
}
