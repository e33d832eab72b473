//! Consent in the bot: the personal-data notice shown and recorded when a chat is linked
//! (152-FZ), the marketing opt-in asked after it (38-FZ art. 18: prior, provable), and the
//! reminders' buttons — "Not now" and "Stop offers", which stops at once.

use loyalty_core::{Client, PartnerId};
use loyalty_engage::store::ConsentKind;

use super::{BotError, ClientBot};
use crate::reminders::{opt_in_buttons, opt_in_question, personal_data_notice};
use crate::text::Lang;

impl ClientBot {
    /// The notice for each salon the chat is now linked at (with reminders' store set).
    pub(super) async fn personal_data_notices(
        &self,
        clients: &[Client],
        lang: Lang,
    ) -> Result<String, BotError> {
        if self.reminders.is_none() {
            return Ok(String::new());
        }
        let mut lines = Vec::with_capacity(clients.len());
        for c in clients {
            lines.push(personal_data_notice(
                &self.salon_name(c.partner_id).await?,
                lang,
            ));
        }
        Ok(lines.join("\n"))
    }

    /// Records each salon's notice as shown, once the message carrying it was sent.
    pub(super) async fn record_notices(
        &self,
        chat_id: i64,
        clients: &[Client],
        lang: Lang,
    ) -> Result<(), BotError> {
        let Some(store) = &self.reminders else {
            return Ok(());
        };
        for c in clients {
            let notice = personal_data_notice(&self.salon_name(c.partner_id).await?, lang);
            store
                .set_consent(
                    c.partner_id,
                    c.id,
                    ConsentKind::PersonalData,
                    true,
                    &format!("telegram:{chat_id}"),
                    &notice,
                    self.engine.now_ms(),
                )
                .await?;
        }
        Ok(())
    }

    /// Asks for marketing consent at each salon that runs reminders and has no answer yet.
    pub(super) async fn ask_opt_in(
        &self,
        chat_id: i64,
        clients: &[Client],
        lang: Lang,
    ) -> Result<(), BotError> {
        let Some(store) = &self.reminders else {
            return Ok(());
        };
        for c in clients {
            let Some(partner) = self.engine.store().partner(c.partner_id).await? else {
                continue;
            };
            if partner.program.engage.is_none() {
                continue;
            }
            let log = store.consent_log(c.partner_id, c.id).await?;
            if log
                .iter()
                .any(|e| e.kind == ConsentKind::Marketing.as_str())
            {
                continue;
            }
            self.reply(
                chat_id,
                &opt_in_question(&partner.name, lang),
                Some(opt_in_buttons(c.partner_id, lang)),
            )
            .await?;
        }
        Ok(())
    }

    /// `/offers`: for each salon of the chat that runs reminders, whether its offers are on, and
    /// the opt-in question again (recorded as shown when answered) — the way back after "Stop
    /// offers", and the question for a salon the client joined after linking.
    pub(super) async fn offers(&self, chat_id: i64, lang: Lang) -> Result<(), BotError> {
        let mut asked = 0;
        if let Some(store) = &self.reminders {
            for c in self.clients_of(chat_id).await? {
                let Some(partner) = self.engine.store().partner(c.partner_id).await? else {
                    continue;
                };
                if partner.program.engage.is_none() {
                    continue;
                }
                let on = store
                    .consent_log(c.partner_id, c.id)
                    .await?
                    .iter()
                    .rev()
                    .find(|e| e.kind == ConsentKind::Marketing.as_str())
                    .is_some_and(|e| e.granted);
                let now = match (lang, on) {
                    (Lang::Ru, true) => "сейчас включены",
                    (Lang::Ru, false) => "сейчас выключены",
                    (Lang::En, true) => "are on now",
                    (Lang::En, false) => "are off now",
                };
                let mut state = match lang {
                    Lang::Ru => format!("Предложения от «{}» {now}.", partner.name),
                    Lang::En => format!("Offers from {} {now}.", partner.name),
                };
                // Her live offers there, each with its deadline in the salon's zone.
                let at = self.engine.now_ms();
                let tz = partner
                    .program
                    .engage
                    .as_ref()
                    .and_then(|e| e.zone().ok())
                    .unwrap_or(chrono_tz::Europe::Moscow);
                for o in store
                    .client_offers(c.partner_id, c.id)
                    .await?
                    .iter()
                    .filter(|o| o.record_key.is_none() && o.valid_until_ms > at)
                {
                    let until = loyalty_engage::window::local(tz, o.valid_until_ms)
                        .map(|d| match lang {
                            Lang::Ru => d.format("%d.%m.%Y").to_string(),
                            Lang::En => d.format("%Y-%m-%d").to_string(),
                        })
                        .unwrap_or_default();
                    state.push('\n');
                    state.push_str(&crate::reminders::offer_line(&o.terms, &until, lang));
                }
                self.reply(
                    chat_id,
                    &format!("{state}\n\n{}", opt_in_question(&partner.name, lang)),
                    Some(opt_in_buttons(c.partner_id, lang)),
                )
                .await?;
                asked += 1;
            }
        }
        if asked == 0 {
            let text = match lang {
                Lang::Ru => "Ни один из ваших салонов пока не присылает напоминаний и предложений.",
                Lang::En => "None of your salons sends reminders or offers yet.",
            };
            self.reply(chat_id, text, None).await?;
        }
        Ok(())
    }

    /// `eng:yes|no|stop:{partner}`, `eng:later:{reminder}`.
    pub(super) async fn on_reminder_button(
        &self,
        chat_id: i64,
        data: &str,
        lang: Lang,
    ) -> Result<(), BotError> {
        let Some(store) = self.reminders.clone() else {
            return Ok(());
        };
        let (action, arg) = data.split_once(':').unwrap_or((data, ""));
        let Ok(n) = arg.parse::<i64>() else {
            return Ok(());
        };
        let now = self.engine.now_ms();
        if action == "later" {
            store.snooze_reminder(n, chat_id, now).await?;
            let text = match lang {
                Lang::Ru => "Хорошо, больше не напомним об этом до вашего следующего визита.",
                Lang::En => "All right, no more reminders about this until your next visit.",
            };
            return self.reply(chat_id, text, None).await;
        }
        let partner = PartnerId(n);
        let client = self
            .clients_of(chat_id)
            .await?
            .into_iter()
            .find(|c| c.partner_id == partner);
        let Some(client) = client else {
            return Ok(());
        };
        let salon = self.salon_name(partner).await?;
        let (granted, recorded, reply) = match (action, lang) {
            ("yes", Lang::Ru) => (
                true,
                opt_in_question(&salon, lang),
                format!(
                    "Спасибо! «{salon}» будет присылать напоминания и предложения. Отказаться можно кнопкой «Не присылать предложения» под любым из них."
                ),
            ),
            ("yes", Lang::En) => (
                true,
                opt_in_question(&salon, lang),
                format!(
                    "Thank you! {salon} will send you reminders and offers. Stop them with the \"Stop offers\" button under any of them."
                ),
            ),
            ("no", Lang::Ru) => (
                false,
                opt_in_question(&salon, lang),
                "Хорошо, предложений не будет. Сообщения о баллах и кодах по-прежнему придут сюда."
                    .to_owned(),
            ),
            ("no", Lang::En) => (
                false,
                opt_in_question(&salon, lang),
                "All right, no offers. Messages about your points and codes still come here."
                    .to_owned(),
            ),
            ("stop", Lang::Ru) => (
                false,
                "Не присылать предложения".to_owned(),
                format!(
                    "Готово: предложения от «{salon}» больше не придут. Сообщения о баллах и кодах останутся."
                ),
            ),
            ("stop", Lang::En) => (
                false,
                "Stop offers".to_owned(),
                format!(
                    "Done: no more offers from {salon}. Messages about your points and codes stay."
                ),
            ),
            _ => return Ok(()),
        };
        store
            .set_consent(
                partner,
                client.id,
                ConsentKind::Marketing,
                granted,
                &format!("telegram:{chat_id}"),
                &recorded,
                now,
            )
            .await?;
        self.reply(chat_id, &reply, None).await
    }
}
