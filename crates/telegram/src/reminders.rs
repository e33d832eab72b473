//! Marketing reminders on Telegram: their texts and buttons, the opt-in question, and the
//! worker that sends them — at its own pace, its own 429 pause (a flood wait on reminders never
//! holds bot replies or point messages, which have their own worker), and only inside the
//! salon's send window, checked again right before each send.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use frankenstein::types::{InlineKeyboardButton, InlineKeyboardMarkup, ReplyMarkup};
use loyalty_core::engage::Engagement;
use loyalty_core::offer::{Benefit, OfferTerms};
use loyalty_core::outbox::retry_at;
use loyalty_core::{Clock, PartnerId, Points, Store, StoreError};
use loyalty_engage::store::{EngageStore, QueuedReminder, Reminder};
use loyalty_engage::window::{current_or_next, open_at};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::text::{self, Lang};
use crate::{Telegram, TelegramError};

/// `5 дней`, `1 day`.
fn days(n: i64, lang: Lang) -> String {
    let abs = n.unsigned_abs();
    let word = match lang {
        Lang::En if abs == 1 => "day",
        Lang::En => "days",
        Lang::Ru => match (abs % 10, abs % 100) {
            (1, r) if r != 11 => "день",
            (2..=4, r) if !(12..=14).contains(&r) => "дня",
            _ => "дней",
        },
    };
    format!("{n} {word}")
}

/// `14.03.2026` from `2026-03-14`; the text as it is otherwise.
fn date(iso: &str, lang: Lang) -> String {
    match (lang, iso.split('-').collect::<Vec<_>>().as_slice()) {
        (Lang::Ru, [y, m, d]) => format!("{d}.{m}.{y}"),
        _ => iso.to_owned(),
    }
}

/// The reminder's text: the salon's own for its trigger (placeholders `{name}`, `{salon}`,
/// `{points}` or `{balance}`, `{days}`, `{date}`, and for a custom trigger's `{level}` and
/// `{master}`), else the built-in one.
pub fn reminder_text(r: &Reminder, lang: Lang) -> String {
    let salon = r.salon.clone().unwrap_or_default();
    let name = r.name.clone().unwrap_or_default();
    let points = text::points(Points(r.points), lang);
    let on = r.date.as_deref().map(|d| date(d, lang)).unwrap_or_default();
    let own = r.text.as_ref().and_then(|t| match lang {
        Lang::En => t.en.clone().or_else(|| Some(t.ru.clone())),
        Lang::Ru => Some(t.ru.clone()),
    });
    let hello = match (lang, name.is_empty()) {
        (Lang::Ru, true) => "Здравствуйте!".to_owned(),
        (Lang::Ru, false) => format!("{name}, здравствуйте!"),
        (Lang::En, true) => "Hello!".to_owned(),
        (Lang::En, false) => format!("Hello, {name}!"),
    };
    let body = own.unwrap_or_else(|| {
        match (r.trigger.as_str(), lang) {
            ("inactive", Lang::Ru) => format!(
                "{hello} Мы давно не виделись — {}. На вашем счёте в «{salon}» {points}: ими можно оплатить часть следующего визита.",
                days(r.days, lang)
            ),
            ("inactive", Lang::En) => format!(
                "{hello} It has been {} since your last visit. You have {points} at {salon} to pay part of the next one.",
                days(r.days, lang)
            ),
            ("due", Lang::Ru) => format!(
                "{hello} Кажется, пора снова к нам: обычно вы приходите в «{salon}» примерно в это время. Записаться можно по кнопке ниже."
            ),
            ("due", Lang::En) => format!(
                "{hello} It looks like time for your usual visit to {salon}. Book with the button below."
            ),
            ("lapsed", Lang::Ru) => format!(
                "{hello} Давно вас не было в «{salon}» — {}. Мы скучаем и будем рады видеть вас снова: на вашем счёте {points}.",
                days(r.days, lang)
            ),
            ("lapsed", Lang::En) => format!(
                "{hello} We have not seen you at {salon} for {}. We miss you and would love to see you again: you have {points}.",
                days(r.days, lang)
            ),
            ("at_risk", Lang::Ru) => format!(
                "{hello} Мы давно вас не видели в «{salon}» и очень хотим вернуть. Запишитесь — на вашем счёте {points}, а мы подготовим для вас лучшее время."
            ),
            ("at_risk", Lang::En) => format!(
                "{hello} We have not seen you at {salon} for a while and would love to have you back. Book a visit — you have {points}, and we will keep the best time for you."
            ),
            ("expiring", Lang::Ru) => format!(
                "{hello} {points} в «{salon}» сгорят {on}. Успейте потратить их на визит."
            ),
            ("expiring", Lang::En) => format!(
                "{hello} {points} at {salon} expire on {on}. Use them on a visit before then."
            ),
            ("missed", Lang::Ru) => format!(
                "{hello} Жаль, что визит в «{salon}» не состоялся. Подберём другое время?"
            ),
            ("missed", Lang::En) => format!(
                "{hello} Sorry we missed you at {salon}. Shall we find another time?"
            ),
            ("welcome_back", Lang::Ru) => format!(
                "{hello} Спасибо, что выбрали «{salon}». Будем рады видеть вас снова — у вас уже {points}."
            ),
            ("welcome_back", Lang::En) => format!(
                "{hello} Thank you for choosing {salon}. We'd love to see you again — you already have {points}."
            ),
            ("birthday", Lang::Ru) => match r.birthday_points {
                Some(p) => format!(
                    "{hello} Скоро ваш день рождения — «{salon}» дарит {}. Приходите отпраздновать!",
                    text::points(Points(p), lang)
                ),
                None => format!("{hello} Скоро ваш день рождения — «{salon}» ждёт вас в гости!"),
            },
            ("birthday", Lang::En) => match r.birthday_points {
                Some(p) => format!(
                    "{hello} Your birthday is coming — {salon} gives you {}. Come and celebrate!",
                    text::points(Points(p), lang)
                ),
                None => format!("{hello} Your birthday is coming — {salon} would love to see you!"),
            },
            (_, Lang::Ru) => format!("{hello} «{salon}» ждёт вас снова."),
            (_, Lang::En) => format!("{hello} {salon} would love to see you again."),
        }
    });
    let body = body
        .replace("{name}", &name)
        .replace("{salon}", &salon)
        .replace("{points}", &points)
        .replace("{days}", &r.days.to_string())
        .replace("{date}", &on)
        .replace("{balance}", &points)
        .replace("{level}", r.level.as_deref().unwrap_or_default())
        .replace("{master}", r.master.as_deref().unwrap_or_default());
    match &r.offer {
        Some(o) => format!("{body}\n\n{}", offer_text(o, lang)),
        None => body,
    }
}

/// A live offer in one line, for `/offers`: what it gives and until when (`until`, a date).
pub fn offer_line(o: &OfferTerms, until: &str, lang: Lang) -> String {
    let what = match (&o.benefit, lang) {
        (Benefit::BonusPoints { points }, Lang::Ru) => {
            format!("+{} за визит", text::points(*points, lang))
        }
        (Benefit::BonusPoints { points }, Lang::En) => {
            format!("+{} for a visit", text::points(*points, lang))
        }
        (Benefit::ServiceCashback { percent, .. }, Lang::Ru) => format!(
            "{percent} % баллами за «{}»",
            o.service.as_ref().map(|s| s.1.as_str()).unwrap_or_default()
        ),
        (Benefit::ServiceCashback { percent, .. }, Lang::En) => format!(
            "{percent} % back in points on {}",
            o.service.as_ref().map(|s| s.1.as_str()).unwrap_or_default()
        ),
    };
    let min = (o.min_paid_minor > 0).then(|| text::money(o.min_paid_minor, o.currency, lang));
    match (lang, min) {
        (Lang::Ru, Some(m)) => format!("🎁 {what} от {m} — до {until}"),
        (Lang::Ru, None) => format!("🎁 {what} — до {until}"),
        (Lang::En, Some(m)) => format!("🎁 {what} from {m} — until {until}"),
        (Lang::En, None) => format!("🎁 {what} — until {until}"),
    }
}

/// An offer's paragraph: the variant's own text (placeholders `{bonus}`, `{percent}`,
/// `{service}`, `{master}`, `{valid_days}`, `{min_bill}`), else the built-in one — what it gives,
/// for how long, from which bill, and her master.
pub fn offer_text(o: &OfferTerms, lang: Lang) -> String {
    let valid = days(i64::from(o.valid_days), lang);
    let min = text::money(o.min_paid_minor, o.currency, lang);
    let service = o.service.as_ref().map(|s| s.1.clone()).unwrap_or_default();
    let master = o.master.as_ref().map(|m| m.1.clone()).unwrap_or_default();
    let (bonus, percent) = match &o.benefit {
        Benefit::BonusPoints { points } => (text::points(*points, lang), String::new()),
        Benefit::ServiceCashback {
            percent,
            max_points,
        } => (text::points(*max_points, lang), format!("{percent} %")),
    };
    let own = o.text.as_ref().and_then(|t| match lang {
        Lang::En => t.en.clone().or_else(|| Some(t.ru.clone())),
        Lang::Ru => Some(t.ru.clone()),
    });
    let text = own.unwrap_or_else(|| {
        let mut out = match (&o.benefit, lang) {
            (Benefit::BonusPoints { .. }, Lang::Ru) => {
                format!("🎁 Персонально для вас: +{bonus} за визит в ближайшие {valid}")
            }
            (Benefit::BonusPoints { .. }, Lang::En) => {
                format!("🎁 Just for you: +{bonus} for a visit within {valid}")
            }
            (Benefit::ServiceCashback { .. }, Lang::Ru) => format!(
                "🎁 Попробуйте «{service}» — её часто выбирают клиенты с похожими визитами: {percent} её стоимости вернутся баллами (до {bonus}), если придёте в ближайшие {valid}"
            ),
            (Benefit::ServiceCashback { .. }, Lang::En) => format!(
                "🎁 Try {service} — clients with visits like yours often choose it: {percent} of its price comes back in points (up to {bonus}) if you come within {valid}"
            ),
        };
        if o.min_paid_minor > 0 {
            out.push_str(&match lang {
                Lang::Ru => format!(" (при визите от {min})"),
                Lang::En => format!(" (for a bill of {min} or more)"),
            });
        }
        out.push('.');
        if !master.is_empty() {
            out.push_str(&match lang {
                Lang::Ru => format!(" Ваш мастер {master} ждёт вас."),
                Lang::En => format!(" {master}, your master, is looking forward to seeing you."),
            });
        }
        out
    });
    text.replace("{bonus}", &bonus)
        .replace("{percent}", &percent)
        .replace("{service}", &service)
        .replace("{master}", &master)
        .replace("{valid_days}", &valid)
        .replace("{min_bill}", &min)
}

/// "Book" (when the salon has a booking page), "Not now", "Stop offers".
pub fn reminder_buttons(id: i64, partner: PartnerId, r: &Reminder, lang: Lang) -> ReplyMarkup {
    let (book, later, stop) = match lang {
        Lang::Ru => ("📅 Записаться", "Не сейчас", "🚫 Не присылать предложения"),
        Lang::En => ("📅 Book", "Not now", "🚫 Stop offers"),
    };
    let mut rows = Vec::new();
    if let Some(url) = &r.booking_url {
        rows.push(vec![
            InlineKeyboardButton::builder().text(book).url(url).build(),
        ]);
    }
    rows.push(vec![
        InlineKeyboardButton::builder()
            .text(later)
            .callback_data(format!("eng:later:{id}"))
            .build(),
    ]);
    rows.push(vec![
        InlineKeyboardButton::builder()
            .text(stop)
            .callback_data(format!("eng:stop:{partner}"))
            .build(),
    ]);
    ReplyMarkup::InlineKeyboardMarkup(
        InlineKeyboardMarkup::builder()
            .inline_keyboard(rows)
            .build(),
    )
}

/// The opt-in question, exactly as shown (it is what the client's consent records).
pub fn opt_in_question(salon: &str, lang: Lang) -> String {
    match lang {
        Lang::Ru => format!(
            "Салон «{salon}» может присылать вам напоминания о визитах и персональные предложения — не чаще раза в неделю, днём. Согласны? Отказаться можно в любой момент кнопкой «Не присылать предложения»."
        ),
        Lang::En => format!(
            "{salon} may send you visit reminders and personal offers — at most once a week, in the daytime. Do you agree? You can stop them at any time with the \"Stop offers\" button."
        ),
    }
}

pub fn opt_in_buttons(partner: PartnerId, lang: Lang) -> ReplyMarkup {
    let (yes, no) = match lang {
        Lang::Ru => ("Да, присылайте", "Нет, спасибо"),
        Lang::En => ("Yes, please", "No, thanks"),
    };
    ReplyMarkup::InlineKeyboardMarkup(
        InlineKeyboardMarkup::builder()
            .inline_keyboard(vec![vec![
                InlineKeyboardButton::builder()
                    .text(yes)
                    .callback_data(format!("eng:yes:{partner}"))
                    .build(),
                InlineKeyboardButton::builder()
                    .text(no)
                    .callback_data(format!("eng:no:{partner}"))
                    .build(),
            ]])
            .build(),
    )
}

/// The personal-data notice shown when a chat is linked (152-FZ), exactly as recorded.
pub fn personal_data_notice(salon: &str, lang: Lang) -> String {
    match lang {
        Lang::Ru => format!(
            "Привязывая номер, вы соглашаетесь на обработку ваших персональных данных (телефон, имя, история визитов) салоном «{salon}» для программы лояльности."
        ),
        Lang::En => format!(
            "By linking your number you agree that {salon} processes your personal data (phone, name, visit history) for its loyalty program."
        ),
    }
}

/// How the reminders' worker paces itself.
#[derive(Debug, Clone)]
pub struct ReminderSettings {
    pub batch: u32,
    pub lease: Duration,
    /// The least time between two reminders (20/s: under Telegram's ~30/s, leaving room for
    /// replies and point messages).
    pub min_interval: Duration,
    pub idle: Duration,
}

impl Default for ReminderSettings {
    fn default() -> ReminderSettings {
        ReminderSettings {
            batch: 20,
            lease: Duration::from_secs(60),
            min_interval: Duration::from_millis(50),
            idle: Duration::from_secs(1),
        }
    }
}

/// Sends queued reminders. Any number may run against one database (claims lease).
pub struct ReminderWorker {
    store: Arc<dyn Store>,
    reminders: Arc<dyn EngageStore>,
    telegram: Telegram,
    clock: Arc<dyn Clock>,
    settings: ReminderSettings,
    /// Each bot's next free slot (0: the deployment's): its pace, or its 429 pause's end.
    next_send: HashMap<i64, Instant>,
    bots: Option<Arc<dyn crate::SalonBots>>,
}

impl ReminderWorker {
    pub fn new(
        store: Arc<dyn Store>,
        reminders: Arc<dyn EngageStore>,
        telegram: Telegram,
        clock: Arc<dyn Clock>,
        settings: ReminderSettings,
    ) -> ReminderWorker {
        ReminderWorker {
            store,
            reminders,
            telegram,
            clock,
            settings,
            next_send: HashMap::new(),
            bots: None,
        }
    }

    /// Sends to clients linked through a salon's own bot through that bot, at its own pace.
    pub fn with_salon_bots(mut self, bots: Arc<dyn crate::SalonBots>) -> ReminderWorker {
        self.bots = Some(bots);
        self
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        info!("reminder worker started");
        while !*shutdown.borrow() {
            let worked = match self.round(&shutdown).await {
                Ok(n) => n > 0,
                Err(e) => {
                    warn!(error = %e, "reminder round failed");
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
        info!("reminder worker stopped");
    }

    /// Claims one batch and settles it; returns how many were claimed.
    pub async fn round(&mut self, shutdown: &watch::Receiver<bool>) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        let lease = i64::try_from(self.settings.lease.as_millis()).unwrap_or(60_000);
        let batch = self
            .reminders
            .claim_reminders(now, lease, self.settings.batch)
            .await?;
        let mut settings: HashMap<PartnerId, Option<Engagement>> = HashMap::new();
        for (i, r) in batch.iter().enumerate() {
            if *shutdown.borrow() {
                for rest in &batch[i..] {
                    self.reminders
                        .reminder_later(rest.id, self.clock.now_ms())
                        .await?;
                }
                break;
            }
            let engage = match settings.get(&r.partner) {
                Some(known) => known.clone(),
                None => {
                    let engage = self
                        .store
                        .partner(r.partner)
                        .await?
                        .and_then(|p| p.program.engage);
                    settings.insert(r.partner, engage.clone());
                    engage
                }
            };
            self.one(r, engage.as_ref()).await?;
        }
        Ok(batch.len())
    }

    async fn one(
        &mut self,
        r: &QueuedReminder,
        engage: Option<&Engagement>,
    ) -> Result<(), StoreError> {
        let Some(engage) = engage else {
            return self
                .reminders
                .reminder_failed(r.id, "the salon turned reminders off", None)
                .await;
        };
        let Ok(tz) = engage.zone() else {
            return self
                .reminders
                .reminder_failed(r.id, "the salon's time zone is unknown", None)
                .await;
        };
        let bot = self.store.chat_bot_of(r.partner, r.client).await?;
        let telegram = match crate::bot_for(&self.telegram, self.bots.as_ref(), bot).await {
            Ok(t) => t,
            Err(why) => return self.reminders.reminder_failed(r.id, why, None).await,
        };
        let slot = self
            .next_send
            .get(&bot)
            .copied()
            .unwrap_or_else(Instant::now);
        let paused = slot.saturating_duration_since(Instant::now());
        if paused > std::time::Duration::from_secs(1) {
            // This bot waits out a 429; the others' reminders go on.
            let at = self.clock.now_ms() + i64::try_from(paused.as_millis()).unwrap_or(0);
            return self.reminders.reminder_later(r.id, at).await;
        }
        // Waited too long (a backlog, an outage): it goes out in the next window, never at night.
        tokio::time::sleep_until(slot).await;
        let now = self.clock.now_ms();
        if !open_at(tz, engage.send_window, now) {
            let at = current_or_next(tz, engage.send_window, now).map_or(now + 3_600_000, |w| w.0);
            return self.reminders.reminder_later(r.id, at).await;
        }
        let lang = Lang::from_code(Some(&r.language));
        let body = reminder_text(&r.reminder, lang);
        let markup = reminder_buttons(r.id, r.partner, &r.reminder, lang);
        let sent = telegram.send_text(r.chat_id, &body, Some(markup)).await;
        self.next_send
            .insert(bot, Instant::now() + self.settings.min_interval);
        let now = self.clock.now_ms();
        match sent {
            Ok(()) => {
                info!(reminder = r.id, trigger = %r.reminder.trigger, "reminder sent");
                self.reminders.reminder_sent(r.id, now).await
            }
            Err(TelegramError::RetryAfter(wait)) => {
                // Only this bot's reminders wait: the outbox worker, the bot and the other
                // bots keep their own pace.
                self.next_send.insert(bot, Instant::now() + wait);
                let at = now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
                warn!(
                    wait_s = wait.as_secs(),
                    "reminders rate limited by Telegram"
                );
                self.reminders.reminder_later(r.id, at).await
            }
            Err(TelegramError::Transient(why)) => {
                let at = retry_at(r.attempts, now);
                warn!(reminder = r.id, error = %why, "reminder failed");
                self.reminders.reminder_failed(r.id, &why, at).await
            }
            Err(TelegramError::ChatGone(why)) if bot != 0 => {
                self.store.unlink_chat(r.partner, r.client).await?;
                self.reminders.reminder_failed(r.id, &why, None).await
            }
            Err(TelegramError::ChatGone(why)) => {
                if let Some(mut chat) = self.store.telegram_chat(r.chat_id).await? {
                    chat.active = false;
                    self.store.save_telegram_chat(&chat, now).await?;
                }
                self.reminders.reminder_failed(r.id, &why, None).await
            }
            Err(TelegramError::Rejected(why)) => {
                self.reminders.reminder_failed(r.id, &why, None).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lapsed_reminder_names_the_absence_and_the_balance() {
        let r = Reminder {
            trigger: "lapsed".into(),
            salon: Some("Лотос".into()),
            name: Some("Анна".into()),
            points: 350,
            days: 52,
            date: None,
            birthday_points: None,
            text: None,
            booking_url: None,
            offer: None,
            level: None,
            master: None,
        };
        assert_eq!(
            reminder_text(&r, Lang::Ru),
            "Анна, здравствуйте! Давно вас не было в «Лотос» — 52 дня. Мы скучаем и будем рады видеть вас снова: на вашем счёте 350 баллов."
        );
        assert_eq!(
            reminder_text(&r, Lang::En),
            "Hello, Анна! We have not seen you at Лотос for 52 days. We miss you and would love to see you again: you have 350 points."
        );
    }

    #[test]
    fn a_custom_triggers_message_fills_name_balance_level_and_master() {
        let r = Reminder {
            trigger: "custom".into(),
            salon: Some("Лотос".into()),
            name: Some("Анна".into()),
            points: 1_250,
            days: 0,
            date: None,
            birthday_points: None,
            text: Some(loyalty_core::engage::Texts {
                ru: "{name}, спасибо за пятый визит к {master}! Уровень {level}, на счёте {balance}."
                    .into(),
                en: None,
            }),
            booking_url: None,
            offer: None,
            level: Some("Золото".into()),
            master: Some("Ольге".into()),
        };
        assert_eq!(
            reminder_text(&r, Lang::Ru),
            "Анна, спасибо за пятый визит к Ольге! Уровень Золото, на счёте 1\u{202f}250 баллов."
        );
    }

    #[test]
    fn the_at_risk_reminder_asks_her_back_with_her_balance() {
        let r = Reminder {
            trigger: "at_risk".into(),
            salon: Some("Лотос".into()),
            name: Some("Анна".into()),
            points: 350,
            days: 80,
            date: None,
            birthday_points: None,
            text: None,
            booking_url: None,
            offer: None,
            level: None,
            master: None,
        };
        assert_eq!(
            reminder_text(&r, Lang::Ru),
            "Анна, здравствуйте! Мы давно вас не видели в «Лотос» и очень хотим вернуть. Запишитесь — на вашем счёте 350 баллов, а мы подготовим для вас лучшее время."
        );
        assert!(reminder_text(&r, Lang::En).contains("you have 350 points"));
    }

    #[test]
    fn an_offer_says_what_it_gives_for_how_long_and_from_which_bill() {
        use loyalty_core::offer::{Benefit, OfferTerms};
        let mut o = OfferTerms {
            variant: "try10".into(),
            benefit: Benefit::ServiceCashback {
                percent: 10,
                max_points: Points(500),
            },
            min_paid_minor: 0,
            valid_days: 14,
            service: Some(("5".into(), "Уход для волос".into())),
            master: Some(("9".into(), "Оксана".into())),
            average_minor: 300_000,
            currency: loyalty_core::Currency::Rub,
            text: None,
        };
        assert_eq!(
            offer_text(&o, Lang::Ru),
            "🎁 Попробуйте «Уход для волос» — её часто выбирают клиенты с похожими визитами: 10 % её стоимости вернутся баллами (до 500 баллов), если придёте в ближайшие 14 дней. Ваш мастер Оксана ждёт вас."
        );
        assert_eq!(
            offer_line(&o, "16.12.2026", Lang::Ru),
            "🎁 10 % баллами за «Уход для волос» — до 16.12.2026"
        );
        o.benefit = Benefit::BonusPoints {
            points: Points(300),
        };
        o.min_paid_minor = 150_000;
        o.master = None;
        assert_eq!(
            offer_text(&o, Lang::En),
            "🎁 Just for you: +300 points for a visit within 14 days (for a bill of 1\u{202f}500 ₽ or more)."
        );
        o.text = Some(loyalty_core::engage::Texts {
            ru: "{bonus} до конца {valid_days}, от {min_bill}".into(),
            en: None,
        });
        assert_eq!(
            offer_text(&o, Lang::Ru),
            "300 баллов до конца 14 дней, от 1\u{202f}500 ₽"
        );
    }
}
