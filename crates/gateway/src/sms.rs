//! Reminders by SMS, for clients who have no Telegram chat: the invitation to the salon's bot
//! and, where the salon asks for it, the reminders themselves — sent by the salon's CRM (from
//! its SMS balance there), through the connection that knows the client.
//!
//! A scan decides them under the same consent (an SMS opt-in on record), send window, caps and
//! control group as the Telegram ones; this worker sends what a scan queued, checking the
//! window again right before each send. A CRM that is down, slow or answering 429 leaves the
//! SMS queued for a later try (nothing is lost); one that refuses it (no SMS balance, a bad
//! id) ends it as dead with the CRM's reason, shown in `engage list`.
//!
//! The CRM has no key to tell a retry from a second SMS: an answer lost after the CRM took the
//! request (a timeout) is tried again, so that SMS may arrive twice — as a Telegram reminder
//! may after a crash between the send and its record.

use std::collections::HashMap;
use std::sync::Arc;

use loyalty_core::engage::Engagement;
use loyalty_core::outbox::retry_at;
use loyalty_core::quota::Priority;
use loyalty_core::{AdapterError, Clock, PartnerId, PartnerStore, Points, StoreError};
use loyalty_engage::store::{EngageStore, QueuedSms, Reminder};
use loyalty_engage::trigger::INVITE;
use loyalty_engage::window::{current_or_next, open_at};
use loyalty_store::SqlStore;
use loyalty_telegram::reminders::reminder_text;
use loyalty_telegram::{Lang, ReminderSettings, text};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::bots::{JoinLinks, NoLink};
use crate::connections::Connections;

/// How the SMS worker paces itself: 5 a second at most (each is a CRM call, counted against
/// the salon's CRM budget besides).
pub fn default_settings() -> ReminderSettings {
    ReminderSettings {
        min_interval: std::time::Duration::from_millis(200),
        ..ReminderSettings::default()
    }
}

/// The SMS's text, in Russian (a client without a chat has told us no language): the
/// invitation with the bot's `link`, or the reminder's Telegram text with the booking page in
/// place of the buttons; each says how to stop them.
pub fn sms_text(r: &Reminder, link: &str) -> String {
    let salon = r.salon.clone().unwrap_or_default();
    let name = r.name.clone().unwrap_or_default();
    let points = text::points(Points(r.points), Lang::Ru);
    let stop = "Отказаться от SMS можно у администратора.";
    if r.trigger != INVITE {
        let mut out = reminder_text(r, Lang::Ru);
        if let Some(url) = &r.booking_url {
            out.push_str(&format!(" Запись: {url}"));
        }
        return format!("{out} {stop}");
    }
    let own = r.text.as_ref().map(|t| t.ru.clone());
    let body = own.unwrap_or_else(|| {
        let hello = if name.is_empty() {
            "Здравствуйте!".to_owned()
        } else {
            format!("{name}, здравствуйте!")
        };
        let balance = if r.points > 0 {
            format!(" У вас уже {points}.")
        } else {
            String::new()
        };
        format!(
            "{hello} «{salon}» начисляет баллы за визиты.{balance} Баланс, подарки и напоминания — в нашем Telegram-боте: {{link}}"
        )
    });
    let body = body
        .replace("{name}", &name)
        .replace("{salon}", &salon)
        .replace("{points}", &points)
        .replace("{link}", link);
    format!("{body} {stop}")
}

/// Sends queued SMS. Any number may run against one database (claims lease).
pub struct SmsWorker {
    store: Arc<SqlStore>,
    connections: Arc<Connections>,
    /// The bot an invitation names.
    links: Arc<JoinLinks>,
    clock: Arc<dyn Clock>,
    settings: ReminderSettings,
    next_send: Instant,
}

impl SmsWorker {
    pub fn new(
        store: Arc<SqlStore>,
        connections: Arc<Connections>,
        links: Arc<JoinLinks>,
        clock: Arc<dyn Clock>,
        settings: ReminderSettings,
    ) -> SmsWorker {
        SmsWorker {
            store,
            connections,
            links,
            clock,
            settings,
            next_send: Instant::now(),
        }
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        info!("SMS worker started");
        while !*shutdown.borrow() {
            let worked = match self.round(&shutdown).await {
                Ok(n) => n > 0,
                Err(e) => {
                    warn!(error = %e, "SMS round failed");
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
        info!("SMS worker stopped");
    }

    /// Claims one batch and settles it; returns how many were claimed.
    pub async fn round(&mut self, shutdown: &watch::Receiver<bool>) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        let lease = i64::try_from(self.settings.lease.as_millis()).unwrap_or(60_000);
        let batch = self
            .store
            .claim_sms(now, lease, self.settings.batch)
            .await?;
        let mut settings: HashMap<PartnerId, Option<Engagement>> = HashMap::new();
        for (i, r) in batch.iter().enumerate() {
            if *shutdown.borrow() {
                for rest in &batch[i..] {
                    self.store
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

    async fn one(&mut self, r: &QueuedSms, engage: Option<&Engagement>) -> Result<(), StoreError> {
        let Some(engage) = engage.filter(|e| e.sms.is_some()) else {
            return self
                .store
                .reminder_failed(r.id, "the salon turned SMS off", None)
                .await;
        };
        let Ok(tz) = engage.zone() else {
            return self
                .store
                .reminder_failed(r.id, "the salon's time zone is unknown", None)
                .await;
        };
        tokio::time::sleep_until(self.next_send).await;
        let now = self.clock.now_ms();
        // Waited too long (a backlog, an outage): it goes out in the next window, never at night.
        if !open_at(tz, engage.send_window, now) {
            let at = current_or_next(tz, engage.send_window, now).map_or(now + 3_600_000, |w| w.0);
            return self.store.reminder_later(r.id, at).await;
        }
        let link = if r.reminder.trigger == INVITE {
            match self.links.link(r.partner).await {
                Ok(link) => link,
                Err(NoLink::NoBot) => {
                    return self
                        .store
                        .reminder_failed(r.id, "no Telegram bot is configured to invite to", None)
                        .await;
                }
                Err(NoLink::Later(why)) => {
                    let at = retry_at(r.attempts, now);
                    return self.store.reminder_failed(r.id, &why, at).await;
                }
            }
        } else {
            String::new()
        };
        let adapter = match self.connections.by_id(r.connection, Priority::Poll).await? {
            Some(c) => Arc::clone(&c.adapter),
            None => {
                return self
                    .store
                    .reminder_failed(r.id, "the CRM connection is gone", None)
                    .await;
            }
        };
        let body = sms_text(&r.reminder, &link);
        let sent = adapter.send_sms(&r.external_id, &body).await;
        self.next_send = Instant::now() + self.settings.min_interval;
        let now = self.clock.now_ms();
        match sent {
            Ok(()) => {
                info!(reminder = r.id, trigger = %r.reminder.trigger, "SMS sent");
                self.store.reminder_sent(r.id, now).await
            }
            Err(AdapterError::RateLimited { retry_after }) => {
                let wait = retry_after.unwrap_or(std::time::Duration::from_secs(60));
                self.next_send = Instant::now() + wait;
                warn!(wait_s = wait.as_secs(), "SMS rate limited by the CRM");
                let at = now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
                self.store.reminder_later(r.id, at).await
            }
            Err(e) if e.is_retryable() => {
                warn!(reminder = r.id, error = %e, "SMS failed; tried again later");
                self.store
                    .reminder_failed(r.id, &e.to_string(), retry_at(r.attempts, now))
                    .await
            }
            Err(e) => {
                warn!(reminder = r.id, error = %e, "SMS refused by the CRM");
                self.store.reminder_failed(r.id, &e.to_string(), None).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(points: i64) -> Reminder {
        Reminder {
            trigger: INVITE.into(),
            salon: Some("Студия".into()),
            name: Some("Ирина".into()),
            points,
            days: 0,
            date: None,
            birthday_points: None,
            text: None,
            booking_url: Some("https://n1.yclients.com/company/4564".into()),
            offer: None,
            level: None,
            master: None,
        }
    }

    #[test]
    fn the_invitation_names_the_bot_and_how_to_stop() {
        let link = "https://t.me/salon_bot?start=s7";
        assert_eq!(
            sms_text(&invite(350), link),
            "Ирина, здравствуйте! «Студия» начисляет баллы за визиты. У вас уже 350 баллов. \
             Баланс, подарки и напоминания — в нашем Telegram-боте: https://t.me/salon_bot?start=s7 \
             Отказаться от SMS можно у администратора."
        );
        let mut own = invite(0);
        own.text = Some(loyalty_core::engage::Texts {
            ru: "{salon}: бот {link}".into(),
            en: None,
        });
        assert_eq!(
            sms_text(&own, link),
            "Студия: бот https://t.me/salon_bot?start=s7 Отказаться от SMS можно у администратора."
        );
    }

    #[test]
    fn a_reminder_carries_the_booking_page_instead_of_buttons() {
        let mut r = invite(100);
        r.trigger = "inactive".into();
        r.days = 40;
        let text = sms_text(&r, "");
        assert!(
            text.starts_with("Ирина, здравствуйте! Мы давно не виделись — 40 дней."),
            "{text}"
        );
        assert!(
            text.ends_with(
                "Запись: https://n1.yclients.com/company/4564 Отказаться от SMS можно у администратора."
            ),
            "{text}"
        );
    }
}
