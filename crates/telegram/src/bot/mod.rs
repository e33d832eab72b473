//! The client bot: link a chat to a phone, then balance, history, notification settings,
//! exchanging points for rewards and the codes they gave.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use frankenstein::AsyncTelegramApi;
use frankenstein::methods::{AnswerCallbackQueryParams, DeleteWebhookParams, GetUpdatesParams};
use frankenstein::types::{
    AllowedUpdate, CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, KeyboardButton,
    MaybeInaccessibleMessage, Message, ReplyKeyboardMarkup, ReplyMarkup,
};
use frankenstein::updates::{Update, UpdateContent};
use loyalty_core::audit::Actor;
use loyalty_core::code::Code;
use loyalty_core::ledger::EntryKind;
use loyalty_core::redemption::{Redemption, RedemptionStatus, Strategy, Target};
use loyalty_core::referral::link_payload;
use loyalty_core::{
    BillTerms, BirthDate, Client, ClientId, Currency, EngineError, LoyaltyEngine, PartnerId, Phone,
    RewardId, RewardKind, StoreError, TelegramChat,
};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::text::{self, Lang};
use crate::{Telegram, TelegramError, classify};
use loyalty_engage::store::EngageStore;

mod consent;
mod desk;
mod signin;

/// Seconds Telegram holds a long poll open.
const POLL_TIMEOUT_S: u32 = 25;

/// The updates the bot asks Telegram for.
pub(crate) const UPDATES: [AllowedUpdate; 2] =
    [AllowedUpdate::Message, AllowedUpdate::CallbackQuery];

/// Where a salon's rewards go: the gateway answers from its connections' reward setups.
#[async_trait]
pub trait RewardTargets: Send + Sync {
    async fn target(&self, partner: PartnerId) -> Result<Target, StoreError>;
}

/// Every salon's rewards are the gateway's own codes.
pub struct GatewayCodes;

#[async_trait]
impl RewardTargets for GatewayCodes {
    async fn target(&self, _partner: PartnerId) -> Result<Target, StoreError> {
        Ok(Target::GATEWAY)
    }
}

/// Draws a fresh code (from the OS's randomness in the gateway).
pub type NewCode = Arc<dyn Fn() -> Code + Send + Sync>;

/// The bot's side of a conversation. Stateless between updates: everything it knows is in
/// the store, so any gateway instance can answer any update.
pub struct ClientBot {
    engine: LoyaltyEngine,
    telegram: Telegram,
    /// How rewards are issued; `None`: the bot does not exchange points.
    exchange: Option<(Arc<dyn RewardTargets>, NewCode)>,
    /// The bot's username, asked of Telegram the first time a link to it is needed.
    username: Arc<tokio::sync::OnceCell<String>>,
    /// Where consent and "Not now" are recorded; `None`: the bot asks for no marketing consent.
    reminders: Option<Arc<dyn EngageStore>>,
    /// Desk visits' rows, for `/visit`; `None`: staff cannot enter visits in the bot.
    desk: Option<Arc<dyn loyalty_core::history::HistoryStore>>,
    /// The dashboard's sign-in links, for `/login`; `None`: the command does not exist.
    sign_in: Option<Arc<dyn loyalty_core::access::SignInLinks>>,
    /// A salon's own bot serves that salon alone; `None`: the deployment's bot, for every
    /// salon without a bot of its own.
    scope: Option<BotScope>,
}

/// The salon a salon's own bot serves, and the bot's Telegram id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BotScope {
    pub partner: PartnerId,
    pub bot_id: i64,
}

/// What a message asks for.
#[derive(Debug, PartialEq, Eq)]
enum Intent {
    Start(Option<String>),
    Balance,
    History,
    NotificationsOff,
    NotificationsOn,
    Exchange,
    MyCodes,
    /// Staff: what a code is for.
    Check(String),
    /// Staff: mark a code used.
    Use(String),
    /// Staff: a visit entered at the desk.
    Visit(String),
    /// Staff: a link that signs in to the dashboard.
    Login,
    /// The client's birthday, `DD.MM` or `DD.MM.YYYY`.
    Birthday(String),
    Invite,
    /// The salons' offers: whether they are on, and the opt-in asked again.
    Offers,
    Help,
}

fn intent(text: &str) -> Option<Intent> {
    let text = text.trim();
    let (command, rest) = match text.split_once(char::is_whitespace) {
        Some((c, r)) => (c, r.trim()),
        None => (text, ""),
    };
    // `/balance@SalonBot` in groups names the bot; drop it.
    let command = command.split('@').next().unwrap_or(command);
    Some(match command {
        "/start" => Intent::Start(Some(rest.to_owned()).filter(|r| !r.is_empty())),
        "/balance" => Intent::Balance,
        "/history" => Intent::History,
        "/stop" | "/notifications_off" => Intent::NotificationsOff,
        "/notifications_on" => Intent::NotificationsOn,
        "/exchange" => Intent::Exchange,
        "/codes" => Intent::MyCodes,
        "/check" => Intent::Check(rest.to_owned()),
        "/use" => Intent::Use(rest.to_owned()),
        "/visit" => Intent::Visit(rest.to_owned()),
        "/login" => Intent::Login,
        "/birthday" => Intent::Birthday(rest.to_owned()),
        "/invite" => Intent::Invite,
        "/offers" => Intent::Offers,
        "/help" => Intent::Help,
        _ => match text {
            "💎 Баланс" | "💎 Balance" => Intent::Balance,
            "📜 История" | "📜 History" => Intent::History,
            "🔕 Без уведомлений" | "🔕 Mute" => Intent::NotificationsOff,
            "🔔 С уведомлениями" | "🔔 Unmute" => Intent::NotificationsOn,
            "🎁 Обменять баллы" | "🎁 Exchange points" => Intent::Exchange,
            "🎟 Мои коды" | "🎟 My codes" => Intent::MyCodes,
            _ => return None,
        },
    })
}

fn contact_keyboard(lang: Lang) -> ReplyMarkup {
    let label = match lang {
        Lang::Ru => "📱 Поделиться номером",
        Lang::En => "📱 Share my phone number",
    };
    let button = KeyboardButton::builder()
        .text(label)
        .request_contact(true)
        .build();
    ReplyMarkup::ReplyKeyboardMarkup(
        ReplyKeyboardMarkup::builder()
            .keyboard(vec![vec![button]])
            .resize_keyboard(true)
            .one_time_keyboard(true)
            .build(),
    )
}

fn menu_keyboard(lang: Lang, muted: bool) -> ReplyMarkup {
    let b = |t: &str| KeyboardButton::builder().text(t).build();
    let (balance, history, toggle) = match (lang, muted) {
        (Lang::Ru, false) => ("💎 Баланс", "📜 История", "🔕 Без уведомлений"),
        (Lang::Ru, true) => ("💎 Баланс", "📜 История", "🔔 С уведомлениями"),
        (Lang::En, false) => ("💎 Balance", "📜 History", "🔕 Mute"),
        (Lang::En, true) => ("💎 Balance", "📜 History", "🔔 Unmute"),
    };
    let (exchange, codes) = match lang {
        Lang::Ru => ("🎁 Обменять баллы", "🎟 Мои коды"),
        Lang::En => ("🎁 Exchange points", "🎟 My codes"),
    };
    ReplyMarkup::ReplyKeyboardMarkup(
        ReplyKeyboardMarkup::builder()
            .keyboard(vec![
                vec![b(balance), b(history)],
                vec![b(exchange), b(codes)],
                vec![b(toggle)],
            ])
            .resize_keyboard(true)
            .is_persistent(true)
            .build(),
    )
}

/// Errors of the bot: the store, or Telegram.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Telegram(#[from] TelegramError),
}

impl From<loyalty_core::StoreError> for BotError {
    fn from(e: loyalty_core::StoreError) -> BotError {
        BotError::Engine(EngineError::from(e))
    }
}

impl ClientBot {
    pub fn new(engine: LoyaltyEngine, telegram: Telegram) -> ClientBot {
        ClientBot {
            engine,
            telegram,
            exchange: None,
            username: Arc::new(tokio::sync::OnceCell::new()),
            reminders: None,
            desk: None,
            sign_in: None,
            scope: None,
        }
    }

    /// This bot is a salon's own: it links, shows and serves that salon's clients and staff
    /// only, and a salon link's payload is not needed to join it.
    pub fn for_salon(mut self, scope: BotScope) -> ClientBot {
        self.scope = Some(scope);
        self
    }

    /// The bot's id for the links it makes and reads: 0 for the deployment's.
    fn bot_id(&self) -> i64 {
        self.scope.map_or(0, |s| s.bot_id)
    }

    /// The chat's clients as this bot sees them (linked through it).
    pub(crate) async fn clients_of(&self, chat_id: i64) -> Result<Vec<Client>, BotError> {
        Ok(self
            .engine
            .store()
            .clients_of_chat_via(chat_id, self.bot_id())
            .await?)
    }

    /// The salons whose staff this chat is, as this bot serves them.
    pub(crate) async fn staff_salons(&self, chat_id: i64) -> Result<Vec<PartnerId>, BotError> {
        let mut salons = self.engine.store().staff_partners(chat_id).await?;
        if let Some(scope) = self.scope {
            salons.retain(|p| *p == scope.partner);
        }
        Ok(salons)
    }

    /// Asks linked clients for marketing consent and handles the reminders' buttons.
    pub fn with_reminders(mut self, reminders: Arc<dyn EngageStore>) -> ClientBot {
        self.reminders = Some(reminders);
        self
    }

    /// Lets clients exchange points for rewards: `targets` says where each salon's rewards go,
    /// `new_code` draws codes.
    pub fn with_exchange(
        mut self,
        targets: Arc<dyn RewardTargets>,
        new_code: NewCode,
    ) -> ClientBot {
        self.exchange = Some((targets, new_code));
        self
    }

    /// Long polling until `shutdown`: the default way to get updates. Only one process per
    /// bot token may poll (Telegram answers 409 to a second one).
    pub async fn poll(&self, mut shutdown: watch::Receiver<bool>) {
        if let Err(e) = self
            .telegram
            .api()
            .delete_webhook(&DeleteWebhookParams::builder().build())
            .await
        {
            warn!(error = %classify(e), "could not remove a webhook before polling");
        }
        info!("Telegram bot polling for updates");
        let mut offset: Option<i64> = None;
        while !*shutdown.borrow() {
            let params = GetUpdatesParams::builder()
                .maybe_offset(offset)
                .timeout(POLL_TIMEOUT_S)
                .allowed_updates(UPDATES.to_vec())
                .build();
            let polled = tokio::select! {
                r = self.telegram.api().get_updates(&params) => r,
                _ = shutdown.changed() => break,
            };
            match polled {
                Ok(response) => {
                    for update in response.result {
                        offset = Some(i64::from(update.update_id) + 1);
                        self.handle_update(update).await;
                    }
                }
                Err(e) => {
                    let e = classify(e);
                    let wait = match e {
                        TelegramError::RetryAfter(d) => d,
                        _ => Duration::from_secs(3),
                    };
                    warn!(error = %e, "getUpdates failed");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => break,
                    }
                }
            }
        }
        info!("Telegram bot stopped polling");
    }

    /// Registers `url` as the bot's webhook, with the secret Telegram must echo in
    /// `X-Telegram-Bot-Api-Secret-Token`.
    pub async fn set_webhook(&self, url: &str, secret: &str) -> Result<(), TelegramError> {
        self.telegram.set_webhook(url, secret).await
    }

    /// Answers one update. Failures are logged, never returned: a bad update must not stop
    /// the bot or make Telegram redeliver it forever.
    pub async fn handle_update(&self, update: Update) {
        match update.content {
            UpdateContent::Message(message) => {
                if let Err(e) = self.on_message(&message).await {
                    warn!(chat = message.chat.id, error = %e, "bot could not answer");
                }
            }
            UpdateContent::CallbackQuery(query) => {
                if let Err(e) = self.on_callback(&query).await {
                    warn!(user = query.from.id, error = %e, "bot could not answer a button");
                }
            }
            _ => {}
        }
    }

    async fn on_message(&self, message: &Message) -> Result<(), BotError> {
        let chat_id = message.chat.id;
        let Some(from) = message.from.as_deref() else {
            return Ok(());
        };
        if from.is_bot {
            return Ok(());
        }
        let lang = Lang::from_code(from.language_code.as_deref());
        let store = self.engine.store();
        let known = store.telegram_chat(chat_id).await?;
        let now = self.engine.now_ms();
        // Any message from the user means the chat works again; keep the language current. A
        // salon's link (`/start s<id>`, or a friend's `r<id>_<client>`) makes it the salon the
        // person joins when they share their phone.
        // A friend's link names her too: she is the referrer if the person joins the salon.
        let joined = match message.text.as_deref().and_then(intent) {
            Some(Intent::Start(Some(payload))) => self
                .salon_of(&payload)
                .await?
                .map(|salon| (salon, Self::referrer_of(&payload))),
            _ => None,
        }
        // A salon's own bot takes only its own salon's links.
        .filter(|(salon, _)| self.scope.is_none_or(|s| s.partner == *salon));
        let chat = TelegramChat {
            chat_id,
            phone: known.as_ref().and_then(|c| c.phone.clone()),
            language: lang.code().to_owned(),
            active: true,
            // The chat's joined salon is the deployment bot's: a salon's bot joins its own.
            joined_partner: joined
                .filter(|_| self.scope.is_none())
                .map(|(salon, _)| salon)
                .or(known.as_ref().and_then(|c| c.joined_partner)),
            referred_by: match joined {
                Some((_, referrer)) => referrer,
                None => known.as_ref().and_then(|c| c.referred_by),
            },
        };
        if known.as_ref() != Some(&chat) {
            store.save_telegram_chat(&chat, now).await?;
        }

        if let Some(contact) = message.contact.as_deref() {
            if contact.user_id != Some(from.id) {
                let text = match lang {
                    Lang::Ru => {
                        "Пожалуйста, поделитесь своим номером кнопкой ниже — чужие контакты не подходят."
                    }
                    Lang::En => {
                        "Please share your own number with the button below; other people's contacts are not accepted."
                    }
                };
                return self
                    .reply(chat_id, text, Some(contact_keyboard(lang)))
                    .await;
            }
            let Ok(phone) = Phone::parse_international(&contact.phone_number) else {
                let text = match lang {
                    Lang::Ru => "Не получилось прочитать этот номер телефона.",
                    Lang::En => "That phone number could not be read.",
                };
                return self
                    .reply(chat_id, text, Some(contact_keyboard(lang)))
                    .await;
            };
            let name = [
                contact.first_name.as_str(),
                contact.last_name.as_deref().unwrap_or(""),
            ]
            .join(" ")
            .trim()
            .to_owned();
            return self
                .link(chat, phone, Some(name).filter(|n| !n.is_empty()), lang)
                .await;
        }

        let Some(text) = message.text.as_deref() else {
            return Ok(());
        };
        match intent(text) {
            Some(Intent::Start(payload)) => self.start(chat_id, payload, lang).await,
            Some(Intent::Balance) => self.balance(chat_id, lang).await,
            Some(Intent::History) => self.history(chat_id, lang).await,
            Some(Intent::NotificationsOff) => self.notifications(chat_id, true, lang).await,
            Some(Intent::NotificationsOn) => self.notifications(chat_id, false, lang).await,
            Some(Intent::Exchange) => self.exchange_menu(chat_id, lang).await,
            Some(Intent::MyCodes) => self.my_codes(chat_id, lang).await,
            Some(Intent::Check(code)) => self.staff_code(chat_id, &code, false, lang).await,
            Some(Intent::Use(code)) => self.staff_code(chat_id, &code, true, lang).await,
            Some(Intent::Visit(typed)) => {
                self.desk_visit(chat_id, message.message_id, &typed, lang)
                    .await
            }
            Some(Intent::Login) => self.sign_in(chat_id, lang).await,
            Some(Intent::Birthday(date)) => self.birthday(chat_id, &date, lang).await,
            Some(Intent::Invite) => self.invite(chat_id, lang).await,
            Some(Intent::Offers) => self.offers(chat_id, lang).await,
            Some(Intent::Help) | None => self.help(chat_id, lang).await,
        }
    }

    async fn reply(
        &self,
        chat_id: i64,
        text: &str,
        markup: Option<ReplyMarkup>,
    ) -> Result<(), BotError> {
        self.telegram.send_text(chat_id, text, markup).await?;
        Ok(())
    }

    async fn salon_name(&self, partner: PartnerId) -> Result<String, BotError> {
        Ok(self
            .engine
            .store()
            .partner(partner)
            .await?
            .map(|p| p.name)
            .unwrap_or_default())
    }

    /// What a redemption bought, as the catalog names it, and the bills it pays if it is a
    /// money certificate (one read of the reward).
    async fn bought(&self, r: &Redemption) -> Result<(String, Option<BillTerms>), BotError> {
        let store = self.engine.store();
        let Some(reward) = store.reward(r.partner_id, r.reward_id).await? else {
            return Ok((String::new(), None));
        };
        let terms = self.engine.bill_terms(r, &reward).await?;
        Ok((reward.title, terms))
    }

    /// The client a friend's link (`r<partner>_<client>`) names.
    fn referrer_of(payload: &str) -> Option<ClientId> {
        let (_, client) = payload.strip_prefix('r')?.split_once('_')?;
        client.parse().ok().map(ClientId)
    }

    /// Who invited the user: `s<partner>` names a salon, `r<partner>_<client>` a client of it.
    /// The salon a start payload names (`s<id>`, or a friend's `r<id>_<client>`), if it exists.
    async fn salon_of(&self, payload: &str) -> Result<Option<PartnerId>, BotError> {
        let id = payload
            .strip_prefix('s')
            .or_else(|| payload.strip_prefix('r').and_then(|r| r.split('_').next()))
            .and_then(|s| s.parse::<i64>().ok());
        Ok(match id {
            Some(id) => self
                .engine
                .store()
                .partner(PartnerId(id))
                .await?
                .map(|p| p.id),
            None => None,
        })
    }

    async fn inviter(&self, payload: &str, lang: Lang) -> Result<Option<String>, BotError> {
        let store = self.engine.store();
        if let Some(id) = payload
            .strip_prefix('s')
            .and_then(|s| s.parse::<i64>().ok())
        {
            let Some(p) = store.partner(PartnerId(id)).await? else {
                return Ok(None);
            };
            return Ok(Some(match lang {
                Lang::Ru => format!("Вас пригласил салон «{}».", p.name),
                Lang::En => format!("You were invited by {}.", p.name),
            }));
        }
        let Some((p, c)) = payload.strip_prefix('r').and_then(|r| r.split_once('_')) else {
            return Ok(None);
        };
        let (Ok(p), Ok(c)) = (p.parse::<i64>(), c.parse::<i64>()) else {
            return Ok(None);
        };
        let partner = PartnerId(p);
        let (Some(salon), Some(friend)) = (
            store.partner(partner).await?,
            store.client(partner, loyalty_core::ClientId(c)).await?,
        ) else {
            return Ok(None);
        };
        let who = friend.name.unwrap_or_else(|| match lang {
            Lang::Ru => "ваш друг".into(),
            Lang::En => "a friend".into(),
        });
        Ok(Some(match lang {
            Lang::Ru => format!("Вас пригласил(а) {who}, клиент салона «{}».", salon.name),
            Lang::En => format!("You were invited by {who}, a client of {}.", salon.name),
        }))
    }

    async fn start(
        &self,
        chat_id: i64,
        payload: Option<String>,
        lang: Lang,
    ) -> Result<(), BotError> {
        let mut text = match (self.scope, lang) {
            (Some(s), Lang::Ru) => format!(
                "Здравствуйте! Это бонусная программа салона «{}»: баллы за визиты, баланс и история.",
                self.salon_name(s.partner).await?
            ),
            (Some(s), Lang::En) => format!(
                "Hello! This is {}'s loyalty program: points for visits, balance and history.",
                self.salon_name(s.partner).await?
            ),
            (None, Lang::Ru) => "Здравствуйте! Это бонусная программа ваших салонов красоты: баллы за визиты, баланс и история.".to_owned(),
            (None, Lang::En) => "Hello! This is your beauty salons' loyalty program: points for visits, balance and history.".to_owned(),
        };
        if let Some(invited) = match payload {
            Some(p) => self.inviter(&p, lang).await?,
            None => None,
        } {
            text.push('\n');
            text.push_str(&invited);
        }
        text.push('\n');
        text.push_str(match lang {
            Lang::Ru => "Поделитесь номером телефона, который вы называете в салоне, — и мы покажем ваши баллы.",
            Lang::En => "Share the phone number you give at the salon and we will show your points.",
        });
        self.reply(chat_id, &text, Some(contact_keyboard(lang)))
            .await
    }

    async fn link(
        &self,
        mut chat: TelegramChat,
        phone: Phone,
        name: Option<String>,
        lang: Lang,
    ) -> Result<(), BotError> {
        let store = self.engine.store();
        chat.phone = Some(phone.clone());
        store
            .save_telegram_chat(&chat, self.engine.now_ms())
            .await?;
        let mut clients = match self.scope {
            Some(s) => {
                store
                    .link_chat_via(s.bot_id, s.partner, &phone, chat.chat_id)
                    .await?
            }
            None => store.link_chat(&phone, chat.chat_id).await?,
        };
        // Someone who came by a salon's link (or to a salon's own bot) and is not its client
        // yet becomes one.
        let joins = self.scope.map(|s| s.partner).or(chat.joined_partner);
        if let Some(salon) = joins
            && !clients.iter().any(|c| c.partner_id == salon)
        {
            let mut client = self.engine.enroll(salon, &phone, name.as_deref()).await?;
            if let Some(s) = self.scope {
                // Created without a chat (a salon with its own bot links through it alone).
                if let Some(linked) = store
                    .link_chat_via(s.bot_id, s.partner, &phone, chat.chat_id)
                    .await?
                    .into_iter()
                    .next()
                {
                    client = linked;
                }
            }
            if let Some(referrer) = chat.referred_by {
                let outcome = self
                    .engine
                    .refer(salon, referrer, client.id, Some(chat.chat_id))
                    .await?;
                info!(
                    partner = salon.0,
                    referrer = referrer.0,
                    friend = client.id.0,
                    ?outcome,
                    "referral"
                );
            }
            clients.push(client);
        }
        info!(chat = chat.chat_id, phone = %phone.masked(), salons = clients.len(), "chat linked");
        for c in &clients {
            self.engine.grant_welcome_bonus(c.partner_id, c.id).await?;
        }
        let mut text = match lang {
            Lang::Ru => "✅ Номер привязан.".to_owned(),
            Lang::En => "✅ Your number is linked.".to_owned(),
        };
        if clients.is_empty() {
            text.push(' ');
            text.push_str(match lang {
                Lang::Ru => "Баллы появятся здесь после первого визита в салон-участник программы.",
                Lang::En => "Your points will show up here after your first visit to a salon in the program.",
            });
        } else {
            text.push('\n');
            text.push_str(&self.balances(&clients, lang).await?);
            if self.birthday_unknown(&clients).await? {
                text.push_str(match lang {
                    Lang::Ru => "\n🎂 Подарок ко дню рождения: напишите /birthday ДД.ММ, например /birthday 14.03",
                    Lang::En => "\n🎂 A birthday gift: send /birthday DD.MM, for example /birthday 14.03",
                });
            }
        }
        let muted = clients.iter().any(|c| c.notifications_off);
        let notice = self.personal_data_notices(&clients, lang).await?;
        if !notice.is_empty() {
            text.push_str("\n\n");
            text.push_str(&notice);
        }
        self.reply(chat.chat_id, &text, Some(menu_keyboard(lang, muted)))
            .await?;
        // Only a notice Telegram took is one the client was shown.
        self.record_notices(chat.chat_id, &clients, lang).await?;
        self.ask_opt_in(chat.chat_id, &clients, lang).await
    }

    async fn balances(&self, clients: &[Client], lang: Lang) -> Result<String, BotError> {
        let store = self.engine.store();
        let mut lines = Vec::with_capacity(clients.len());
        for c in clients {
            let balance = store.balance(c.partner_id, c.id).await?;
            let salon = self.salon_name(c.partner_id).await?;
            lines.push(format!("💎 {salon}: {}", text::points(balance, lang)));
            let pending = store.pending(c.partner_id, c.id).await?;
            if pending.is_positive() {
                lines.push(text::pending(pending, lang));
            }
            if let Some(view) = self.engine.client_level(c.partner_id, c).await? {
                lines.push(text::level(&view.progress, view.currency, lang));
            }
        }
        Ok(lines.join("\n"))
    }

    /// The chat's clients, or a request to share the phone first.
    async fn linked(&self, chat_id: i64, lang: Lang) -> Result<Option<Vec<Client>>, BotError> {
        let clients = self.clients_of(chat_id).await?;
        if !clients.is_empty() {
            return Ok(Some(clients));
        }
        let known = self.engine.store().telegram_chat(chat_id).await?;
        let text = if known.and_then(|c| c.phone).is_some() {
            match lang {
                Lang::Ru => {
                    "Пока баллов нет: они появятся после первого визита в салон-участник программы."
                }
                Lang::En => {
                    "No points yet: they will appear after your first visit to a salon in the program."
                }
            }
        } else {
            match lang {
                Lang::Ru => "Сначала поделитесь номером телефона — кнопка ниже.",
                Lang::En => "Please share your phone number first: use the button below.",
            }
        };
        self.reply(chat_id, text, Some(contact_keyboard(lang)))
            .await?;
        Ok(None)
    }

    async fn balance(&self, chat_id: i64, lang: Lang) -> Result<(), BotError> {
        let Some(clients) = self.linked(chat_id, lang).await? else {
            return Ok(());
        };
        let text = self.balances(&clients, lang).await?;
        self.reply(chat_id, &text, None).await
    }

    async fn history(&self, chat_id: i64, lang: Lang) -> Result<(), BotError> {
        let Some(clients) = self.linked(chat_id, lang).await? else {
            return Ok(());
        };
        let store = self.engine.store();
        let mut out = Vec::new();
        for c in &clients {
            out.push(format!("🏠 {}", self.salon_name(c.partner_id).await?));
            let entries = store.history(c.partner_id, c.id, 10).await?;
            if entries.is_empty() {
                out.push(match lang {
                    Lang::Ru => "  операций пока нет".into(),
                    Lang::En => "  nothing yet".into(),
                });
            }
            for e in entries {
                let delta = e.shown_delta();
                let sign = if delta.is_positive() { "+" } else { "" };
                let pending = match lang {
                    _ if !e.is_pending() => "",
                    Lang::Ru => " (ожидают)",
                    Lang::En => " (pending)",
                };
                out.push(format!(
                    "  {sign}{} — {}{pending}",
                    text::points(delta, lang),
                    kind_label(e.kind, lang)
                ));
            }
        }
        self.reply(chat_id, &out.join("\n"), None).await
    }

    async fn notifications(&self, chat_id: i64, off: bool, lang: Lang) -> Result<(), BotError> {
        let Some(clients) = self.linked(chat_id, lang).await? else {
            return Ok(());
        };
        for c in &clients {
            self.engine
                .store()
                .set_notifications_off(c.partner_id, c.id, off)
                .await?;
        }
        let text = match (off, lang) {
            (true, Lang::Ru) => {
                "🔕 Уведомления о баллах выключены. Баланс можно смотреть здесь в любой момент."
            }
            (true, Lang::En) => {
                "🔕 Points notifications are off. You can check your balance here at any time."
            }
            (false, Lang::Ru) => "🔔 Уведомления о баллах включены.",
            (false, Lang::En) => "🔔 Points notifications are on.",
        };
        self.reply(chat_id, text, Some(menu_keyboard(lang, off)))
            .await
    }

    /// What the balance can buy at each salon, as buttons; or what is still missing.
    async fn exchange_menu(&self, chat_id: i64, lang: Lang) -> Result<(), BotError> {
        if self.exchange.is_none() {
            let text = match lang {
                Lang::Ru => "Обмен баллов в этом боте пока не включён: спросите администратора.",
                Lang::En => "Exchanging points is not switched on in this bot yet: ask the salon.",
            };
            return self.reply(chat_id, text, None).await;
        }
        let Some(clients) = self.linked(chat_id, lang).await? else {
            return Ok(());
        };
        let store = self.engine.store();
        let mut buttons = Vec::new();
        let mut short = Vec::new();
        for c in &clients {
            let balance = store.balance(c.partner_id, c.id).await?;
            let salon = self.salon_name(c.partner_id).await?;
            for reward in store.rewards(c.partner_id, false).await? {
                let price = text::points(reward.cost, lang);
                if reward.cost <= balance {
                    buttons.push(vec![
                        InlineKeyboardButton::builder()
                            .text(format!("{} — {price} ({salon})", reward.title))
                            .callback_data(format!("x:{}:{}", c.partner_id, reward.id))
                            .build(),
                    ]);
                } else {
                    short.push((reward.cost - balance, reward.title, salon.clone()));
                }
            }
        }
        if buttons.is_empty() {
            short.sort();
            let mut text = match lang {
                Lang::Ru => "Пока баллов не хватает ни на одну награду.".to_owned(),
                Lang::En => "Not enough points for a reward yet.".to_owned(),
            };
            for (missing, title, salon) in short.iter().take(3) {
                text.push_str(&match lang {
                    Lang::Ru => format!(
                        "\n• «{title}» в «{salon}»: не хватает {}",
                        text::points(*missing, lang)
                    ),
                    Lang::En => format!(
                        "\n• \"{title}\" at {salon}: {} to go",
                        text::points(*missing, lang)
                    ),
                });
            }
            return self.reply(chat_id, &text, None).await;
        }
        let text = match lang {
            Lang::Ru => "🎁 Что можно получить за баллы:",
            Lang::En => "🎁 What your points can buy:",
        };
        let markup = InlineKeyboardMarkup::builder()
            .inline_keyboard(buttons)
            .build();
        self.reply(
            chat_id,
            text,
            Some(ReplyMarkup::InlineKeyboardMarkup(markup)),
        )
        .await
    }

    /// The chat's codes still to be used, and rewards still being written into a CRM.
    async fn my_codes(&self, chat_id: i64, lang: Lang) -> Result<(), BotError> {
        let Some(clients) = self.linked(chat_id, lang).await? else {
            return Ok(());
        };
        let store = self.engine.store();
        let mut lines = Vec::new();
        for c in &clients {
            let salon = self.salon_name(c.partner_id).await?;
            for r in store.redemptions_of(c.partner_id, c.id).await? {
                let (title, terms) = self.bought(&r).await?;
                let until = text::date(r.expires_at_ms, lang);
                match (r.status, r.strategy, lang) {
                    (RedemptionStatus::Pending, _, Lang::Ru) => {
                        lines.push(format!("⏳ «{title}» в «{salon}»: оформляется"))
                    }
                    (RedemptionStatus::Pending, _, Lang::En) => {
                        lines.push(format!("⏳ \"{title}\" at {salon}: being issued"))
                    }
                    (RedemptionStatus::Issued, Strategy::CrmCertificate, Lang::Ru) => {
                        lines.push(format!("🎟 {} — сертификат «{title}» в «{salon}»", r.code))
                    }
                    (RedemptionStatus::Issued, Strategy::CrmCertificate, Lang::En) => {
                        lines.push(format!("🎟 {} — certificate \"{title}\" at {salon}", r.code))
                    }
                    (RedemptionStatus::Issued, _, Lang::Ru) => {
                        lines.push(format!("🎟 {} — «{title}» в «{salon}», до {until}", r.code))
                    }
                    (RedemptionStatus::Issued, _, Lang::En) => lines.push(format!(
                        "🎟 {} — \"{title}\" at {salon}, until {until}",
                        r.code
                    )),
                    _ => continue,
                }
                if let Some(terms) = &terms {
                    lines.push(format!("   {}", terms_text(terms, lang)));
                }
            }
        }
        let text = if lines.is_empty() {
            match lang {
                Lang::Ru => "Активных кодов нет. «🎁 Обменять баллы» покажет, что можно получить.",
                Lang::En => "No active codes. \"🎁 Exchange points\" shows what you can get.",
            }
            .to_owned()
        } else {
            lines.join("\n")
        };
        self.reply(chat_id, &text, None).await
    }

    /// A button under one of the bot's messages: `x:<partner>:<reward>` asks to confirm,
    /// `y:<partner>:<reward>` exchanges, `n` cancels. Everything is checked again: the data
    /// comes from the user's side.
    async fn on_callback(&self, query: &CallbackQuery) -> Result<(), BotError> {
        // Stop the button's spinner whatever happens next.
        let answered = self
            .telegram
            .api()
            .answer_callback_query(
                &AnswerCallbackQueryParams::builder()
                    .callback_query_id(query.id.clone())
                    .build(),
            )
            .await;
        if let Err(e) = answered {
            warn!(error = %classify(e), "could not answer a callback query");
        }
        let lang = Lang::from_code(query.from.language_code.as_deref());
        let (chat_id, message_id) = match &query.message {
            Some(MaybeInaccessibleMessage::Message(m)) => (m.chat.id, Some(m.message_id)),
            Some(MaybeInaccessibleMessage::InaccessibleMessage(m)) => {
                (m.chat.id, Some(m.message_id))
            }
            None => (i64::try_from(query.from.id).unwrap_or_default(), None),
        };
        let data = query.data.as_deref().unwrap_or_default();
        if let Some(rest) = data.strip_prefix("eng:") {
            return self.on_reminder_button(chat_id, rest, lang).await;
        }
        if let Some(rest) = data.strip_prefix("dv:") {
            return self.on_desk_button(chat_id, rest, lang).await;
        }
        let mut parts = data.split(':');
        let (kind, partner, reward) = (
            parts.next().unwrap_or_default(),
            parts.next().and_then(|p| p.parse::<i64>().ok()),
            parts.next().and_then(|r| r.parse::<i64>().ok()),
        );
        let (Some(partner), Some(reward)) = (partner, reward) else {
            let text = match lang {
                Lang::Ru => "Хорошо, ничего не меняем.",
                Lang::En => "All right, nothing changed.",
            };
            return self.reply(chat_id, text, None).await;
        };
        let (partner, reward) = (PartnerId(partner), RewardId(reward));
        let store = self.engine.store();
        let client = self
            .clients_of(chat_id)
            .await?
            .into_iter()
            .find(|c| c.partner_id == partner);
        let reward = store.reward(partner, reward).await?.filter(|r| r.active);
        let (Some(client), Some(reward), Some((targets, new_code))) =
            (client, reward, self.exchange.as_ref())
        else {
            let text = match lang {
                Lang::Ru => "Эта награда больше недоступна.",
                Lang::En => "This reward is no longer available.",
            };
            return self.reply(chat_id, text, None).await;
        };
        let salon = self.salon_name(partner).await?;
        let price = text::points(reward.cost, lang);
        if kind == "x" {
            let currency = store
                .partner(partner)
                .await?
                .map(|p| p.program.currency)
                .unwrap_or(Currency::Rub);
            let worth = match (&reward.kind, lang) {
                (RewardKind::Certificate { value_minor }, Lang::Ru) => {
                    format!(
                        "сертификат на {}",
                        text::money(*value_minor, currency, lang)
                    )
                }
                (RewardKind::Certificate { value_minor }, Lang::En) => {
                    format!(
                        "a certificate for {}",
                        text::money(*value_minor, currency, lang)
                    )
                }
                (RewardKind::Service { price_minor, .. }, Lang::Ru) => {
                    format!(
                        "услуга, в салоне стоит {}",
                        text::money(*price_minor, currency, lang)
                    )
                }
                (RewardKind::Service { price_minor, .. }, Lang::En) => format!(
                    "a service, {} at the salon",
                    text::money(*price_minor, currency, lang)
                ),
            };
            let text = match lang {
                Lang::Ru => format!(
                    "Обменять {price} на «{}» ({worth}) в «{salon}»?",
                    reward.title
                ),
                Lang::En => format!(
                    "Exchange {price} for \"{}\" ({worth}) at {salon}?",
                    reward.title
                ),
            };
            let (yes, no) = match lang {
                Lang::Ru => ("✅ Да, обменять", "✖️ Нет"),
                Lang::En => ("✅ Yes, exchange", "✖️ No"),
            };
            let markup = InlineKeyboardMarkup::builder()
                .inline_keyboard(vec![vec![
                    InlineKeyboardButton::builder()
                        .text(yes)
                        .callback_data(format!("y:{partner}:{}", reward.id))
                        .build(),
                    InlineKeyboardButton::builder()
                        .text(no)
                        .callback_data("n")
                        .build(),
                ]])
                .build();
            return self
                .reply(
                    chat_id,
                    &text,
                    Some(ReplyMarkup::InlineKeyboardMarkup(markup)),
                )
                .await;
        }
        if kind != "y" {
            return Ok(());
        }
        // One confirmation message, one redemption: tapping "yes" twice gives the same code.
        let key = match message_id {
            Some(m) => format!("tg:{chat_id}:{m}"),
            None => format!("tg:{chat_id}:q{}", query.id),
        };
        let target = targets.target(partner).await?;
        let redeemed = self
            .engine
            .redeem(partner, client.id, &reward, &key, target, new_code.as_ref())
            .await;
        let r = match redeemed {
            Ok(r) => r,
            Err(EngineError::InsufficientBalance { available, .. }) => {
                let text = match lang {
                    Lang::Ru => format!(
                        "Не хватает баллов: нужно {price}, доступно {}.",
                        text::points(available, lang)
                    ),
                    Lang::En => format!(
                        "Not enough points: {price} needed, {} available.",
                        text::points(available, lang)
                    ),
                };
                return self.reply(chat_id, &text, None).await;
            }
            Err(e) => return Err(e.into()),
        };
        info!(chat = chat_id, partner = partner.0, reward = reward.id.0, code = %r.code, "points exchanged in the bot");
        let balance = store.balance(partner, client.id).await?;
        let left = text::points(balance, lang);
        let until = text::date(r.expires_at_ms, lang);
        // A money certificate says on which bills it may be used.
        let terms = match r.status {
            RedemptionStatus::Issued => self.engine.bill_terms(&r, &reward).await?,
            _ => None,
        }
        .map(|t| format!("{}\n", terms_text(&t, lang)))
        .unwrap_or_default();
        let text = match (r.status, lang) {
            (RedemptionStatus::Issued, Lang::Ru) => format!(
                "🎟 Ваш код: {}\n«{}» в «{salon}», действует до {until}.\n{terms}Назовите код администратору при оплате.\nОстаток: {left}",
                r.code, reward.title
            ),
            (RedemptionStatus::Issued, Lang::En) => format!(
                "🎟 Your code: {}\n\"{}\" at {salon}, valid until {until}.\n{terms}Give the code to the administrator when you pay.\nBalance left: {left}",
                r.code, reward.title
            ),
            (_, Lang::Ru) => format!(
                "⏳ Оформляем «{}» в «{salon}»: пришлём сообщение, как только будет готово.\nОстаток: {left}",
                reward.title
            ),
            (_, Lang::En) => format!(
                "⏳ Issuing \"{}\" at {salon}: we will message you as soon as it is ready.\nBalance left: {left}",
                reward.title
            ),
        };
        self.reply(chat_id, &text, None).await?;
        if r.status == RedemptionStatus::Issued {
            self.send_qr(chat_id, &r.code, lang).await;
        }
        Ok(())
    }

    /// The code as a QR image under the text, for the administrator to scan. The text already
    /// carries the code, so a failure here is logged, not the client's problem.
    async fn send_qr(&self, chat_id: i64, code: &Code, lang: Lang) {
        let caption = match lang {
            Lang::Ru => format!("{code}: покажите администратору"),
            Lang::En => format!("{code}: show it to the administrator"),
        };
        let sent = match crate::qr::png(&code.to_string()) {
            Ok(png) => self
                .telegram
                .send_png(chat_id, &png, &caption)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = sent {
            warn!(chat = chat_id, code = %code, error = %e, "could not send the code's QR image");
        }
    }

    /// `/check CODE` and `/use CODE` for the salon's staff. To anyone else, and for another
    /// salon's code, the commands do not exist: nothing is revealed.
    async fn staff_code(
        &self,
        chat_id: i64,
        typed: &str,
        use_it: bool,
        lang: Lang,
    ) -> Result<(), BotError> {
        let store = self.engine.store();
        let salons = self.staff_salons(chat_id).await?;
        if salons.is_empty() {
            return self.help(chat_id, lang).await;
        }
        let not_found = match lang {
            Lang::Ru => "Такого кода нет. Проверьте, как он написан: например ABCD-EFGH-K.",
            Lang::En => "There is no such code. Check how it is written, e.g. ABCD-EFGH-K.",
        };
        let (typed_code, typed_bill) = text::split_code(typed);
        let code = match Code::parse(typed_code) {
            Ok(code) => code,
            Err(_) => return self.reply(chat_id, not_found, None).await,
        };
        let Some(found) = store
            .redemption_by_code(&code)
            .await?
            .filter(|r| salons.contains(&r.partner_id))
        else {
            return self.reply(chat_id, not_found, None).await;
        };
        let (title, terms) = self.bought(&found).await?;
        let (r, just_used) = if use_it {
            let bill = match (typed_bill, &terms) {
                ("", _) => None,
                (typed, Some(t)) => match text::parse_money(typed, t.currency) {
                    Some(bill) => Some(bill),
                    None => {
                        let text = match lang {
                            Lang::Ru => format!(
                                "Не понял сумму счёта «{typed}». Например: /use {code} 3500"
                            ),
                            Lang::En => format!(
                                "Could not read the bill \"{typed}\". For example: /use {code} 3500"
                            ),
                        };
                        return self.reply(chat_id, &text, None).await;
                    }
                },
                // Only a money certificate's bill is checked; anything else needs none.
                (_, None) => None,
            };
            // The audit log names the staff chat that used it.
            let staff = self
                .engine
                .acting_as(Actor::new(format!("chat {chat_id}"), "telegram"));
            match staff.use_code_at_desk(&code, bill).await {
                Ok(r) => (r, true),
                Err(EngineError::CodeNotUsable { .. }) => (found, false),
                Err(
                    e @ (EngineError::BillNeeded { .. }
                    | EngineError::BillTooSmall { .. }
                    | EngineError::NonPositiveAmount(_)),
                ) => {
                    let terms = terms
                        .as_ref()
                        .map(|t| terms_text(t, lang))
                        .unwrap_or_default();
                    let text = match (e, lang) {
                        (EngineError::BillNeeded { .. }, Lang::Ru) => format!(
                            "🎟 {code} — «{title}». {terms}\nУкажите сумму счёта: /use {code} СУММА"
                        ),
                        (EngineError::BillNeeded { .. }, Lang::En) => format!(
                            "🎟 {code} — \"{title}\". {terms}\nAdd the bill: /use {code} AMOUNT"
                        ),
                        (_, Lang::Ru) => {
                            format!("Код {code} не погашен: счёт слишком мал. {terms}")
                        }
                        (_, Lang::En) => {
                            format!("Code {code} was not used: the bill is too small. {terms}")
                        }
                    };
                    return self.reply(chat_id, &text, None).await;
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            (found, false)
        };
        let points = text::points(r.cost, lang);
        let until = text::date(r.expires_at_ms, lang);
        let state = match (r.status, just_used, lang) {
            (RedemptionStatus::Used, true, Lang::Ru) => "✅ погашен сейчас".to_owned(),
            (RedemptionStatus::Used, true, Lang::En) => "✅ used now".to_owned(),
            (RedemptionStatus::Issued, _, Lang::Ru) => format!("можно использовать до {until}"),
            (RedemptionStatus::Issued, _, Lang::En) => format!("usable until {until}"),
            (RedemptionStatus::Used, false, Lang::Ru) => "уже использован".to_owned(),
            (RedemptionStatus::Used, false, Lang::En) => "already used".to_owned(),
            (other, _, Lang::Ru) => format!("нельзя использовать: {}", status_ru(other)),
            (other, _, Lang::En) => format!("cannot be used: {}", other.as_str()),
        };
        let mut text = format!("🎟 {} — «{title}», {points}: {state}", r.code);
        if let (RedemptionStatus::Issued, Some(terms)) = (r.status, &terms) {
            text.push('\n');
            text.push_str(&terms_text(terms, lang));
        }
        self.reply(chat_id, &text, None).await
    }

    /// Whether a salon with birthday points does not know one of these clients' birthday.
    async fn birthday_unknown(&self, clients: &[Client]) -> Result<bool, BotError> {
        for c in clients.iter().filter(|c| c.birth_date.is_none()) {
            let partner = self.engine.store().partner(c.partner_id).await?;
            if partner.is_some_and(|p| p.program.birthday.is_some()) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `/birthday DD.MM[.YYYY]`: recorded where the salon has none; a known one is staff's to
    /// change.
    async fn birthday(&self, chat_id: i64, typed: &str, lang: Lang) -> Result<(), BotError> {
        let Some(clients) = self.linked(chat_id, lang).await? else {
            return Ok(());
        };
        let typed = typed.trim();
        let date = match typed.matches('.').count() {
            1 => BirthDate::parse(&format!("{typed}.0000")),
            _ => BirthDate::parse(typed),
        };
        let Some(date) = date else {
            let hint = match lang {
                Lang::Ru => "Не понял дату. Напишите день и месяц: /birthday 14.03",
                Lang::En => "Could not read the date. Send the day and month: /birthday 14.03",
            };
            return self.reply(chat_id, hint, None).await;
        };
        let mut saved = false;
        for c in &clients {
            saved |= self.engine.set_birth_date(c.partner_id, c.id, date).await?;
        }
        let day = format!("{:02}.{:02}", date.day, date.month);
        let text = match (saved, lang) {
            (true, Lang::Ru) => format!("🎂 Запомнили: {day}. Подарок придёт ко дню рождения."),
            (true, Lang::En) => format!("🎂 Saved: {day}. Your gift will come for your birthday."),
            (false, Lang::Ru) => {
                "Ваш день рождения уже записан в салоне; изменить его может администратор.".into()
            }
            (false, Lang::En) => {
                "Your birthday is already on record; the salon's administrator can change it."
                    .into()
            }
        };
        self.reply(chat_id, &text, None).await
    }

    /// The client's referral link at each salon that runs a referral program, with what it
    /// pays and what it has brought her.
    async fn invite(&self, chat_id: i64, lang: Lang) -> Result<(), BotError> {
        let Some(clients) = self.linked(chat_id, lang).await? else {
            return Ok(());
        };
        let store = self.engine.store();
        let mut out = Vec::new();
        for c in &clients {
            let Some(partner) = store.partner(c.partner_id).await? else {
                continue;
            };
            let Some(rules) = &partner.program.referral else {
                continue;
            };
            let username = match self.username().await {
                Some(u) => u,
                None => {
                    let text = match lang {
                        Lang::Ru => "Не получилось подготовить ссылку. Попробуйте чуть позже.",
                        Lang::En => "Could not prepare your link. Please try again a bit later.",
                    };
                    return self.reply(chat_id, text, None).await;
                }
            };
            let link = format!(
                "https://t.me/{username}?start={}",
                link_payload(c.partner_id, c.id)
            );
            let stats = self.engine.referral_stats(c.partner_id, c.id).await?;
            out.push(text::invite(
                &partner.name,
                rules.friend_points,
                rules.referrer_points,
                &link,
                &stats,
                lang,
            ));
        }
        let text = if out.is_empty() {
            match lang {
                Lang::Ru => "В ваших салонах пока нет программы рекомендаций.".to_owned(),
                Lang::En => "Your salons have no referral program yet.".to_owned(),
            }
        } else {
            out.join("\n\n")
        };
        self.reply(chat_id, &text, None).await
    }

    /// The bot's username, asked of Telegram once.
    async fn username(&self) -> Option<String> {
        self.username
            .get_or_try_init(|| async { self.telegram.username().await })
            .await
            .ok()
            .cloned()
    }

    async fn help(&self, chat_id: i64, lang: Lang) -> Result<(), BotError> {
        let text = match lang {
            Lang::Ru => {
                "/balance — баланс\n/history — история\n/exchange — обменять баллы\n/codes — мои коды\n/notifications_off, /notifications_on — уведомления\n/birthday ДД.ММ — день рождения\n/invite — пригласить друга\n/offers — напоминания и предложения салонов\n/start — привязать номер"
            }
            Lang::En => {
                "/balance — balance\n/history — history\n/exchange — exchange points\n/codes — my codes\n/notifications_off, /notifications_on — notifications\n/birthday DD.MM — your birthday\n/invite — invite a friend\n/offers — salons' reminders and offers\n/start — link your number"
            }
        };
        self.reply(chat_id, text, None).await
    }
}

/// One sentence on the bills a money certificate pays: `A 300 ₽ certificate pays up to 50%
/// of a bill: for a bill of 600 ₽ or more.`
fn terms_text(t: &BillTerms, lang: Lang) -> String {
    let money = |minor| text::money(minor, t.currency, lang);
    let value = money(t.value_minor);
    match (t.min_bill_minor, lang) {
        (Some(min), Lang::Ru) => format!(
            "Сертификат на {value} оплачивает до {} счёта: для счёта от {}.",
            t.share,
            money(min)
        ),
        (Some(min), Lang::En) => format!(
            "A {value} certificate pays up to {} of a bill: for a bill of {} or more.",
            t.share,
            money(min)
        ),
        (None, Lang::Ru) => {
            format!("Сертификат на {value}, но баллами в этом салоне нельзя оплатить счёт.")
        }
        (None, Lang::En) => {
            format!("A {value} certificate, but points cannot pay a bill at this salon.")
        }
    }
}

fn status_ru(status: RedemptionStatus) -> &'static str {
    match status {
        RedemptionStatus::Pending => "ещё оформляется в CRM",
        RedemptionStatus::Issued => "действует",
        RedemptionStatus::Used => "уже использован",
        RedemptionStatus::Cancelled => "отменён",
        RedemptionStatus::Expired => "срок истёк, баллы вернулись клиенту",
        RedemptionStatus::Failed => "не оформлен, баллы вернулись клиенту",
    }
}

fn kind_label(kind: EntryKind, lang: Lang) -> &'static str {
    match (kind, lang) {
        (EntryKind::Accrual, Lang::Ru) => "визит",
        (EntryKind::Accrual, Lang::En) => "visit",
        (EntryKind::Reversal, Lang::Ru) => "визит отменён или изменён",
        (EntryKind::Reversal, Lang::En) => "visit cancelled or changed",
        (EntryKind::ManualAccrual | EntryKind::ManualDebit, Lang::Ru) => "администратор",
        (EntryKind::ManualAccrual | EntryKind::ManualDebit, Lang::En) => "by the salon",
        (EntryKind::Welcome, Lang::Ru) => "приветственный бонус",
        (EntryKind::Welcome, Lang::En) => "welcome bonus",
        (EntryKind::Birthday, Lang::Ru) => "ко дню рождения",
        (EntryKind::Birthday, Lang::En) => "birthday gift",
        (EntryKind::Referral, Lang::Ru) => "за рекомендацию",
        (EntryKind::Referral, Lang::En) => "referral bonus",
        (EntryKind::Offer, Lang::Ru) => "персональное предложение",
        (EntryKind::Offer, Lang::En) => "personal offer",
        (EntryKind::Trigger, Lang::Ru) => "бонус салона",
        (EntryKind::Trigger, Lang::En) => "salon's bonus",
        (EntryKind::Expiry, Lang::Ru) => "сгорание",
        (EntryKind::Expiry, Lang::En) => "expired",
        (EntryKind::Matured, Lang::Ru) => "стали доступны",
        (EntryKind::Matured, Lang::En) => "now spendable",
        (_, Lang::Ru) => "обмен баллов",
        (_, Lang::En) => "points exchange",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_buttons() {
        assert_eq!(
            intent("/start s12"),
            Some(Intent::Start(Some("s12".into())))
        );
        assert_eq!(intent("/start"), Some(Intent::Start(None)));
        assert_eq!(intent("/balance@LotusBot"), Some(Intent::Balance));
        assert_eq!(intent("💎 Balance"), Some(Intent::Balance));
        assert_eq!(intent("🔕 Без уведомлений"), Some(Intent::NotificationsOff));
        assert_eq!(intent("hello"), None);
    }
}
