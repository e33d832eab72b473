//! `/visit +7 916 123-45-67 3500 [service]` for the salon's staff: a visit entered at the desk,
//! for salons whose CRM tells us nothing. The same gating as `/use` (to anyone else the command
//! does not exist). The visit is keyed by the staff message, so Telegram delivering the update
//! again enters it once; the answer carries a button that cancels it (a reversal, never an edit
//! of history).

use std::sync::Arc;

use frankenstein::types::{InlineKeyboardButton, InlineKeyboardMarkup, ReplyMarkup};
use loyalty_core::audit::Actor;
use loyalty_core::engine::{DeskChange, DeskVisit};
use loyalty_core::history::HistoryStore;
use loyalty_core::{EngineError, Outcome, PartnerId, Phone};

use super::{BotError, ClientBot};
use crate::text::{self, Lang};

/// `typed` read as a phone (one or more words), an amount and, the rest, a service.
pub(super) fn read_visit(
    typed: &str,
    country: loyalty_core::Country,
    currency: loyalty_core::Currency,
) -> Option<(Phone, i64, Option<String>)> {
    let words: Vec<&str> = typed.split_whitespace().collect();
    // The longest run of words that is a phone and is followed by an amount.
    for split in (1..words.len()).rev() {
        let Ok(phone) = Phone::parse(&words[..split].join(" "), country) else {
            continue;
        };
        let Some(paid) = text::parse_money(words[split], currency) else {
            continue;
        };
        let service = words[split + 1..].join(" ");
        return Some((phone, paid, Some(service).filter(|s| !s.is_empty())));
    }
    None
}

impl ClientBot {
    /// Reads desk visits' rows (to cancel one); `/visit` answers only with it set.
    pub fn with_desk(mut self, history: Arc<dyn HistoryStore>) -> ClientBot {
        self.desk = Some(history);
        self
    }

    pub(super) async fn desk_visit(
        &self,
        chat_id: i64,
        message_id: i32,
        typed: &str,
        lang: Lang,
    ) -> Result<(), BotError> {
        let salons = self.staff_salons(chat_id).await?;
        if self.desk.is_none() || salons.is_empty() {
            return self.help(chat_id, lang).await;
        }
        let [partner] = salons[..] else {
            let text = match lang {
                Lang::Ru => {
                    "Этот чат — сотрудник нескольких салонов: визит нельзя отнести к одному. Внесите его в панели или командой visit add."
                }
                Lang::En => {
                    "This chat is staff at several salons: the visit cannot be placed. Enter it in the dashboard or with visit add."
                }
            };
            return self.reply(chat_id, text, None).await;
        };
        let store = self.engine.store();
        let Some(salon) = store.partner(partner).await? else {
            return self.help(chat_id, lang).await;
        };
        let program = &salon.program;
        let Some((phone, paid_minor, service)) =
            read_visit(typed, program.country, program.currency)
        else {
            let text = match lang {
                Lang::Ru => {
                    "Не понял визит. Напишите телефон, сумму и услугу: /visit +7 916 123-45-67 3500 стрижка"
                }
                Lang::En => {
                    "Could not read the visit. Write the phone, the bill and the service: /visit +7 916 123-45-67 3500 haircut"
                }
            };
            return self.reply(chat_id, text, None).await;
        };
        let staff = self
            .engine
            .acting_as(Actor::new(format!("chat {chat_id}"), "telegram"));
        let desk = match staff.desk(partner, false).await {
            Ok(desk) => desk,
            Err(EngineError::CrmReportsVisits { crm, .. }) => {
                let text = match lang {
                    Lang::Ru => format!(
                        "Визиты этого салона приходят из CRM ({crm}): внесённый здесь визит засчитался бы дважды. Проверьте, что он есть в CRM."
                    ),
                    Lang::En => format!(
                        "This salon's visits come from its CRM ({crm}): entered here too, a visit would count twice. Check it is in the CRM."
                    ),
                };
                return self.reply(chat_id, &text, None).await;
            }
            Err(e) => return Err(e.into()),
        };
        // Telegram may deliver the same update again: the message names the visit.
        let key = format!("tg{chat_id}-{message_id}");
        let visit = DeskVisit {
            phone: phone.clone(),
            name: None,
            paid_minor,
            service: service.clone(),
            master: None,
            key: key.clone(),
        };
        let outcome = staff.desk_visit(&desk, &visit).await?;
        let client = store.client_by_phone(partner, &phone).await?;
        let balance = match &client {
            Some(c) => store.balance(partner, c.id).await?,
            None => loyalty_core::Points::ZERO,
        };
        let bill = text::money(paid_minor, program.currency, lang);
        let what = service.map(|s| format!(", {s}")).unwrap_or_default();
        let earned = text::points(outcome.delta(), lang);
        let total = text::points(balance, lang);
        let masked = phone.masked();
        let text = match (&outcome, lang) {
            (Outcome::Duplicate, Lang::Ru) => {
                format!("Этот визит уже внесён: {masked}, {bill}{what}.")
            }
            (Outcome::Duplicate, Lang::En) => {
                format!("This visit is already entered: {masked}, {bill}{what}.")
            }
            (_, Lang::Ru) => format!(
                "✅ Визит внесён: {masked}, {bill}{what}. Начислено {earned}, баланс {total}."
            ),
            (_, Lang::En) => format!(
                "✅ Visit entered: {masked}, {bill}{what}. Earned {earned}, balance {total}."
            ),
        };
        let cancel = match lang {
            Lang::Ru => "↩️ Отменить визит",
            Lang::En => "↩️ Cancel the visit",
        };
        let button = InlineKeyboardButton::builder()
            .text(cancel)
            .callback_data(format!("dv:{partner}:{key}"))
            .build();
        let markup = ReplyMarkup::InlineKeyboardMarkup(
            InlineKeyboardMarkup::builder()
                .inline_keyboard(vec![vec![button]])
                .build(),
        );
        self.reply(chat_id, &text, Some(markup)).await
    }

    /// The "Cancel the visit" button: `dv:<partner>:<key>`, checked again (the data comes from
    /// the user's side): only the salon's staff cancel its desk visits. Pressed twice, the
    /// second press changes nothing.
    pub(super) async fn on_desk_button(
        &self,
        chat_id: i64,
        rest: &str,
        lang: Lang,
    ) -> Result<(), BotError> {
        let (partner, key) = rest.split_once(':').unwrap_or((rest, ""));
        let partner = partner.parse::<i64>().ok().map(PartnerId);
        let salons = self.staff_salons(chat_id).await?;
        let (Some(partner), Some(history)) = (partner, self.desk.as_deref()) else {
            return self.help(chat_id, lang).await;
        };
        if !salons.contains(&partner) {
            return self.help(chat_id, lang).await;
        }
        let staff = self
            .engine
            .acting_as(Actor::new(format!("chat {chat_id}"), "telegram"));
        let reason = format!("cancelled in the bot by staff chat {chat_id}");
        let done = staff
            .desk_change_by_key(history, partner, key, DeskChange::Cancel, &reason)
            .await;
        let text = match (done, lang) {
            (Ok(Some((_, Outcome::Duplicate))), Lang::Ru) => "Этот визит уже отменён.".to_owned(),
            (Ok(Some((_, Outcome::Duplicate))), Lang::En) => {
                "This visit is already cancelled.".to_owned()
            }
            (Ok(Some((_, outcome))), Lang::Ru) => format!(
                "↩️ Визит отменён, списано {}.",
                text::points(-outcome.delta(), lang)
            ),
            (Ok(Some((_, outcome))), Lang::En) => format!(
                "↩️ Visit cancelled, {} taken back.",
                text::points(-outcome.delta(), lang)
            ),
            (Ok(None), Lang::Ru) => "Такого визита нет.".to_owned(),
            (Ok(None), Lang::En) => "There is no such visit.".to_owned(),
            (Err(EngineError::Conflict { .. }), Lang::Ru) => {
                "Визит изменился, пока вы смотрели: попробуйте ещё раз.".to_owned()
            }
            (Err(EngineError::Conflict { .. }), Lang::En) => {
                "The visit changed meanwhile: try again.".to_owned()
            }
            (Err(e), _) => return Err(e.into()),
        };
        self.reply(chat_id, &text, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loyalty_core::{Country, Currency};

    #[test]
    fn a_visit_is_read_as_staff_type_it() {
        let ru = Country::parse("RU").unwrap();
        let read = |t| read_visit(t, ru, Currency::Rub);
        let (phone, paid, service) = read("+7 916 123-45-67 3500 стрижка и укладка").unwrap();
        assert_eq!(phone.as_str(), "+79161234567");
        assert_eq!(paid, 350_000);
        assert_eq!(service.as_deref(), Some("стрижка и укладка"));
        let (phone, paid, service) = read("8 (916) 123 45 67 2499,50").unwrap();
        assert_eq!(phone.as_str(), "+79161234567");
        assert_eq!(paid, 249_950);
        assert_eq!(service, None);
        assert_eq!(read("89161234567"), None, "no amount");
        assert_eq!(read("3500 +79161234567"), None, "amount first");
        assert_eq!(read("+7 916 123 3500"), None, "a phone too short");
        assert_eq!(read(""), None);
    }
}
