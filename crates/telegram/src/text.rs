//! What the bot says, in Russian (the default) and English.

use loyalty_core::health::{Incident, StaffNotice};
use loyalty_core::level::{LevelMeasure, Progress};
use loyalty_core::outbox::Notification;
use loyalty_core::redemption::Strategy;
use loyalty_core::referral::ReferralStats;
use loyalty_core::{Currency, Points};

/// The two languages the bot speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ru,
    En,
}

impl Lang {
    /// English for users whose Telegram is in English, Russian for everyone else.
    pub fn from_code(code: Option<&str>) -> Lang {
        match code {
            Some(c) if c.to_ascii_lowercase().starts_with("en") => Lang::En,
            _ => Lang::Ru,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }
}

/// `1 балл`, `2 балла`, `5 баллов`; `1 point`, `2 points`.
pub fn points(n: Points, lang: Lang) -> String {
    let v = n.value();
    let abs = v.unsigned_abs();
    let word = match lang {
        Lang::En => {
            if abs == 1 {
                "point"
            } else {
                "points"
            }
        }
        Lang::Ru => match (abs % 10, abs % 100) {
            (1, r) if r != 11 => "балл",
            (2..=4, r) if !(12..=14).contains(&r) => "балла",
            _ => "баллов",
        },
    };
    format!("{} {word}", group(v))
}

/// Money in minor units as people write it: `4 000 ₽`, `4 000,50 ₽`; `$12.50` in English.
pub fn money(minor: i64, currency: Currency, lang: Lang) -> String {
    let per = currency.minor_per_major();
    let major = minor / per;
    let cents = (minor % per).abs();
    let whole = group(major);
    let amount = match (cents, lang) {
        (0, _) => whole,
        (c, Lang::Ru) => format!("{whole},{c:02}"),
        (c, Lang::En) => format!("{whole}.{c:02}"),
    };
    format!("{amount} {}", currency.symbol())
}

/// An amount typed by a person (`3 500`, `3500,50 ₽`) as minor units.
pub use loyalty_core::money::parse_typed as parse_money;

/// `/use CODE BILL` split into the code and what follows it: a code has nine characters
/// besides spaces and dashes, however it was typed (`ABCD-EFGH-K`, `abcd efgh k`).
pub fn split_code(typed: &str) -> (&str, &str) {
    let mut seen = 0;
    for (i, c) in typed.char_indices() {
        if c.is_whitespace() || c == '-' {
            continue;
        }
        seen += 1;
        if seen == 9 {
            let end = i + c.len_utf8();
            return (&typed[..end], typed[end..].trim());
        }
    }
    (typed, "")
}

/// A day as people write it: `24.02.2027` (UTC).
pub fn date(ms: i64, lang: Lang) -> String {
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else {
        return String::from("?");
    };
    match lang {
        Lang::Ru => t.format("%d.%m.%Y").to_string(),
        Lang::En => t.format("%Y-%m-%d").to_string(),
    }
}

/// Thousands separated by a narrow space: `12 345`.
fn group(n: i64) -> String {
    loyalty_core::money::grouped(n, '\u{202f}')
}

/// A client's level and what the next one needs, under her balance:
/// `🏅 Уровень Silver: кешбэк 7%. До Gold — ещё 68 000 ₽`.
pub fn level(p: &Progress, currency: Currency, lang: Lang) -> String {
    let ru = lang == Lang::Ru;
    let head = if ru {
        format!("🏅 Уровень {}: кешбэк {}", p.level, p.cashback)
    } else {
        format!("🏅 Level {}: {} cashback", p.level, p.cashback)
    };
    let Some((next, more)) = &p.next else {
        return if ru {
            format!("{head}. Это высший уровень")
        } else {
            format!("{head}. This is the top level")
        };
    };
    let more = match p.measure {
        LevelMeasure::Paid => money(*more, currency, lang),
        LevelMeasure::Visits => visits(*more, lang),
        LevelMeasure::Referrals => referrals(*more, lang),
    };
    if ru {
        format!("{head}. До {next} — ещё {more}")
    } else {
        format!("{head}. {next} after {more} more")
    }
}

/// `2 рекомендации`, `1 referral`.
fn referrals(n: i64, lang: Lang) -> String {
    let abs = n.unsigned_abs();
    let word = match lang {
        Lang::En if abs == 1 => "referral",
        Lang::En => "referrals",
        Lang::Ru => match (abs % 10, abs % 100) {
            (1, r) if r != 11 => "рекомендация",
            (2..=4, r) if !(12..=14).contains(&r) => "рекомендации",
            _ => "рекомендаций",
        },
    };
    format!("{} {word}", group(n))
}

/// `3 визита`, `1 visit`.
fn visits(n: i64, lang: Lang) -> String {
    let abs = n.unsigned_abs();
    let word = match lang {
        Lang::En if abs == 1 => "visit",
        Lang::En => "visits",
        Lang::Ru => match (abs % 10, abs % 100) {
            (1, r) if r != 11 => "визит",
            (2..=4, r) if !(12..=14).contains(&r) => "визита",
            _ => "визитов",
        },
    };
    format!("{} {word}", group(n))
}

/// The balance's pending line: points earned, not spendable before the refund window ends.
pub fn pending(p: Points, lang: Lang) -> String {
    match lang {
        Lang::Ru => format!(
            "⏳ ещё {} станут доступны после периода возврата",
            points(p, lang)
        ),
        Lang::En => format!(
            "⏳ {} more become spendable after the refund window",
            points(p, lang)
        ),
    }
}

/// A client's referral link at `salon`, what it pays and what it has brought.
pub fn invite(
    salon: &str,
    friend_gets: Points,
    you_get: Points,
    link: &str,
    stats: &ReferralStats,
    lang: Lang,
) -> String {
    match lang {
        Lang::Ru => format!(
            "🤝 «{salon}»: пригласите друзей по этой ссылке. После первого визита друг получит {}, \
             а вы — {}.\n{link}\nПо ссылке пришли: {} из {}, вы получили {}",
            points(friend_gets, lang),
            points(you_get, lang),
            stats.qualified,
            stats.invited,
            points(stats.earned, lang)
        ),
        Lang::En => format!(
            "🤝 {salon}: invite friends with this link. After a friend's first visit they get {} \
             and you get {}.\n{link}\nCame by your link: {} of {}, you earned {}",
            points(friend_gets, lang),
            points(you_get, lang),
            stats.qualified,
            stats.invited,
            points(stats.earned, lang)
        ),
    }
}

/// The message a client gets for a notification from `salon`.
pub fn notification(n: &Notification, salon: &str, lang: Lang) -> String {
    let pts = |p: &Points| points(*p, lang);
    let ru = lang == Lang::Ru;
    match n {
        Notification::Accrued {
            points: p,
            paid_minor,
            currency,
            balance,
            pending_until_ms: Some(until),
            ..
        } => {
            let paid = money(*paid_minor, *currency, lang);
            let from = date(*until, lang);
            if ru {
                format!(
                    "💎 +{} за визит на {paid} в «{salon}». Их можно будет потратить с {from}. \
                     Баланс: {}",
                    pts(p),
                    pts(balance)
                )
            } else {
                format!(
                    "💎 +{} for your visit of {paid} at {salon}, spendable from {from}. \
                     Balance: {}",
                    pts(p),
                    pts(balance)
                )
            }
        }
        Notification::Accrued {
            points: p,
            paid_minor,
            currency,
            balance,
            ..
        } => {
            let paid = money(*paid_minor, *currency, lang);
            if ru {
                format!(
                    "💎 +{} за визит на {paid} в «{salon}». Баланс: {}",
                    pts(p),
                    pts(balance)
                )
            } else {
                format!(
                    "💎 +{} for your visit of {paid} at {salon}. Balance: {}",
                    pts(p),
                    pts(balance)
                )
            }
        }
        Notification::Reversed {
            points: p,
            unbacked,
            balance,
            ..
        } => {
            let debt = unbacked.is_positive();
            if ru {
                format!(
                    "↩️ −{} в «{salon}»: визит отменён или изменён. Баланс: {}{}",
                    pts(p),
                    pts(balance),
                    if debt {
                        ". Часть баллов уже была потрачена — их вернут будущие начисления."
                    } else {
                        ""
                    }
                )
            } else {
                format!(
                    "↩️ −{} at {salon}: the visit was cancelled or changed. Balance: {}{}",
                    pts(p),
                    pts(balance),
                    if debt {
                        ". Some of them were already spent; future visits will make up for it."
                    } else {
                        ""
                    }
                )
            }
        }
        Notification::Manual {
            points: p,
            balance,
            reason,
        } => {
            let sign = if p.is_positive() { "+" } else { "" };
            if ru {
                format!(
                    "✍️ {sign}{} в «{salon}»: {reason}. Баланс: {}",
                    pts(p),
                    pts(balance)
                )
            } else {
                format!(
                    "✍️ {sign}{} at {salon}: {reason}. Balance: {}",
                    pts(p),
                    pts(balance)
                )
            }
        }
        Notification::Welcome { points: p, balance } => {
            if ru {
                format!(
                    "🎉 Добро пожаловать в программу «{salon}»! Приветственный бонус: +{}. Баланс: {}",
                    pts(p),
                    pts(balance)
                )
            } else {
                format!(
                    "🎉 Welcome to the {salon} loyalty program! Welcome bonus: +{}. Balance: {}",
                    pts(p),
                    pts(balance)
                )
            }
        }
        Notification::Expired { points: p, balance } => {
            if ru {
                format!(
                    "⌛ Сгорели {} в «{salon}». Баланс: {}",
                    pts(p),
                    pts(balance)
                )
            } else {
                format!(
                    "⌛ {} expired at {salon}. Balance: {}",
                    pts(p),
                    pts(balance)
                )
            }
        }
        Notification::Referral {
            points: p,
            balance,
            friend,
        } => match (p.is_positive(), friend, ru) {
            (true, true, true) => format!(
                "🤝 +{} в «{salon}» за первый визит по рекомендации. Баланс: {}",
                pts(p),
                pts(balance)
            ),
            (true, true, false) => format!(
                "🤝 +{} at {salon} for your first visit on a friend's recommendation. Balance: {}",
                pts(p),
                pts(balance)
            ),
            (true, false, true) => format!(
                "🤝 +{} в «{salon}»: по вашей рекомендации пришёл новый клиент. Баланс: {}",
                pts(p),
                pts(balance)
            ),
            (true, false, false) => format!(
                "🤝 +{} at {salon}: a friend you invited came for their first visit. Balance: {}",
                pts(p),
                pts(balance)
            ),
            (false, _, true) => format!(
                "↩️ −{} в «{salon}»: визит по рекомендации не состоялся. Баланс: {}",
                pts(&-*p),
                pts(balance)
            ),
            (false, _, false) => format!(
                "↩️ −{} at {salon}: the recommended visit did not take place. Balance: {}",
                pts(&-*p),
                pts(balance)
            ),
        },
        Notification::Offer { points: p, balance } => match (p.is_positive(), ru) {
            (true, true) => format!(
                "🎁 +{} в «{salon}» по вашему персональному предложению. Баланс: {}",
                pts(p),
                pts(balance)
            ),
            (true, false) => format!(
                "🎁 +{} at {salon} from your personal offer. Balance: {}",
                pts(p),
                pts(balance)
            ),
            (false, true) => format!(
                "↩️ −{} в «{salon}»: визит больше не подходит под персональное предложение. Баланс: {}",
                pts(&-*p),
                pts(balance)
            ),
            (false, false) => format!(
                "↩️ −{} at {salon}: the visit no longer meets your personal offer. Balance: {}",
                pts(&-*p),
                pts(balance)
            ),
        },
        Notification::Matured { points: p, balance } => {
            if ru {
                format!(
                    "✅ {} в «{salon}» теперь можно тратить. Баланс: {}",
                    pts(p),
                    pts(balance)
                )
            } else {
                format!(
                    "✅ {} at {salon} can be spent now. Balance: {}",
                    pts(p),
                    pts(balance)
                )
            }
        }
        Notification::RewardReady {
            title,
            code,
            strategy,
            value_minor,
            currency,
            expires_at_ms,
        } => {
            let value = money(*value_minor, *currency, lang);
            let until = date(*expires_at_ms, lang);
            match (strategy, ru) {
                (Strategy::LoyaltyCard, true) => format!(
                    "🎁 «{title}»: {value} зачислены на вашу карту лояльности в «{salon}». \
                     Администратор спишет их при оплате."
                ),
                (Strategy::LoyaltyCard, false) => format!(
                    "🎁 \"{title}\": {value} is on your loyalty card at {salon}. \
                     The administrator takes it off your bill at checkout."
                ),
                (_, true) => format!(
                    "🎁 «{title}» в «{salon}» готов: сертификат {code} на {value}, до {until}. \
                     Назовите код администратору при оплате."
                ),
                (_, false) => format!(
                    "🎁 \"{title}\" at {salon} is ready: certificate {code} for {value}, valid \
                     until {until}. Give the code to the administrator when you pay."
                ),
            }
        }
        Notification::RewardFailed {
            title,
            points: p,
            balance,
        } => {
            if ru {
                format!(
                    "⚠️ «{title}» в «{salon}» оформить не удалось. {} вернулись на счёт. Баланс: {}",
                    pts(p),
                    pts(balance)
                )
            } else {
                format!(
                    "⚠️ \"{title}\" at {salon} could not be issued. Your {} are back. Balance: {}",
                    pts(p),
                    pts(balance)
                )
            }
        }
        Notification::Birthday {
            points: p,
            balance,
            expires_at_ms,
        } => {
            let until = date(*expires_at_ms, lang);
            if ru {
                format!(
                    "🎂 С наступающим днём рождения! «{salon}» дарит вам {}, они действуют до \
                     {until}. Баланс: {}",
                    pts(p),
                    pts(balance)
                )
            } else {
                format!(
                    "🎂 Happy birthday from {salon}! {} for you, valid until {until}. Balance: {}",
                    pts(p),
                    pts(balance)
                )
            }
        }
        Notification::LevelChanged {
            from,
            to,
            rose,
            cashback,
            max_redeem_share,
        } => match (rose, ru) {
            (true, true) => format!(
                "🏅 Новый уровень в «{salon}»: {to} (был {from}). Теперь кешбэк {cashback}, \
                 баллами можно оплатить до {max_redeem_share} счёта."
            ),
            (true, false) => format!(
                "🏅 New level at {salon}: {to} (was {from}). Your cashback is now {cashback}, and \
                 points can pay up to {max_redeem_share} of a bill."
            ),
            (false, true) => format!(
                "Уровень в «{salon}» пересмотрен: {to} (был {from}). Кешбэк {cashback}, баллами \
                 можно оплатить до {max_redeem_share} счёта."
            ),
            (false, false) => format!(
                "Your level at {salon} was reviewed: {to} (was {from}). Cashback {cashback}, and \
                 points can pay up to {max_redeem_share} of a bill."
            ),
        },
    }
}

/// What a salon's staff chat is told of its CRM connection.
pub fn staff_notice(n: &StaffNotice, salon: &str, lang: Lang) -> String {
    let ru = lang == Lang::Ru;
    match n {
        StaffNotice::Opened {
            connection_id,
            crm,
            incident,
            detail,
        } => {
            let what = match (incident, ru) {
                (Incident::CrmRefused, true) => format!(
                    "{crm} не принимает ключ API или лицензию интеграции. Визиты из вебхуков \
                     учитываются, но те, что требуют запроса в {crm}, ждут. Проверьте права \
                     пользователя API и оплату интеграции в {crm}."
                ),
                (Incident::CrmRefused, false) => format!(
                    "{crm} refuses the API key or the integration's licence. Visits that come \
                     complete by webhook are counted; those that need {crm} wait. Check the API \
                     user's rights and the integration's payment in {crm}."
                ),
                (Incident::DeadLetters, true) => format!(
                    "Некоторые визиты из {crm} не удалось дополнить данными {crm} за несколько \
                     дней. Они сохранены; попросите оператора повторить их."
                ),
                (Incident::DeadLetters, false) => format!(
                    "Some visits from {crm} could not be completed from {crm} for days. They \
                     are kept; ask the operator to replay them."
                ),
                (Incident::WebhooksSilent, true) => format!(
                    "Вебхуки от {crm} не приходят больше суток, а сверка находит новые визиты: \
                     баллы начисляются с опозданием. Проверьте адрес вебхука в настройках \
                     интеграции {crm}."
                ),
                (Incident::WebhooksSilent, false) => format!(
                    "No webhook from {crm} for over a day while the reconciliation finds new \
                     visits: points arrive late. Check the webhook address in {crm}'s \
                     integration settings."
                ),
            };
            if ru {
                format!("⚠️ «{salon}», подключение {connection_id}: {what}\n({detail})")
            } else {
                format!("⚠️ {salon}, connection {connection_id}: {what}\n({detail})")
            }
        }
        StaffNotice::Closed {
            connection_id,
            crm,
            incident,
        } => {
            let what = match (incident, ru) {
                (Incident::CrmRefused, true) => format!("{crm} снова принимает ключ API."),
                (Incident::CrmRefused, false) => format!("{crm} accepts the API key again."),
                (Incident::DeadLetters, true) => "отложенные визиты разобраны.".to_owned(),
                (Incident::DeadLetters, false) => {
                    "the visits left aside are dealt with.".to_owned()
                }
                (Incident::WebhooksSilent, true) => format!("вебхуки от {crm} снова приходят."),
                (Incident::WebhooksSilent, false) => format!("webhooks from {crm} arrive again."),
            };
            if ru {
                format!("✅ «{salon}», подключение {connection_id}: {what}")
            } else {
                format!("✅ {salon}, connection {connection_id}: {what}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn russian_plurals_and_grouping() {
        let ru = |n| points(Points(n), Lang::Ru);
        assert_eq!(ru(1), "1 балл");
        assert_eq!(ru(2), "2 балла");
        assert_eq!(ru(5), "5 баллов");
        assert_eq!(ru(11), "11 баллов");
        assert_eq!(ru(12), "12 баллов");
        assert_eq!(ru(21), "21 балл");
        assert_eq!(ru(104), "104 балла");
        assert_eq!(ru(1_000), "1\u{202f}000 баллов");
        assert_eq!(points(Points(1), Lang::En), "1 point");
        assert_eq!(points(Points(-3), Lang::En), "-3 points");
        assert_eq!(money(400_000, Currency::Rub, Lang::Ru), "4\u{202f}000 ₽");
        assert_eq!(money(400_050, Currency::Rub, Lang::Ru), "4\u{202f}000,50 ₽");
        assert_eq!(money(1_250, Currency::Usd, Lang::En), "12.50 $");
    }

    #[test]
    fn typed_amounts_and_codes() {
        let rub = |t| parse_money(t, Currency::Rub);
        assert_eq!(rub("3500"), Some(350_000));
        assert_eq!(rub(" 3 500 ₽"), Some(350_000));
        assert_eq!(rub("3\u{a0}500,5"), Some(350_050));
        assert_eq!(rub("3500.05"), Some(350_005));
        assert_eq!(rub("0"), Some(0));
        for bad in [
            "",
            "-5",
            "3,500.00",
            "35e2",
            "3500,505",
            "три",
            ",5",
            "99999999999999999",
        ] {
            assert_eq!(rub(bad), None, "{bad:?}");
        }
        assert_eq!(split_code("ABCD-EFGH-K 3500"), ("ABCD-EFGH-K", "3500"));
        assert_eq!(split_code("abcd efgh 7 3 500"), ("abcd efgh 7", "3 500"));
        assert_eq!(split_code("ABCD-EFGH-K"), ("ABCD-EFGH-K", ""));
        assert_eq!(split_code("ABC"), ("ABC", ""));
        assert_eq!(split_code("АБВГ-ДЕЖЗ-И 10"), ("АБВГ-ДЕЖЗ-И", "10"));
    }

    #[test]
    fn accrual_message_names_points_visit_and_balance() {
        let n = Notification::Accrued {
            points: Points(200),
            paid_minor: 400_000,
            currency: Currency::Rub,
            balance: Points(350),
            record_id: "1".into(),
            pending_until_ms: None,
        };
        assert_eq!(
            notification(&n, "Лотос", Lang::Ru),
            "💎 +200 баллов за визит на 4\u{202f}000 ₽ в «Лотос». Баланс: 350 баллов"
        );
        assert_eq!(
            notification(&n, "Lotus", Lang::En),
            "💎 +200 points for your visit of 4\u{202f}000 ₽ at Lotus. Balance: 350 points"
        );
        assert_eq!(Lang::from_code(Some("en-GB")), Lang::En);
        assert_eq!(Lang::from_code(Some("uk")), Lang::Ru);
        assert_eq!(Lang::from_code(None), Lang::Ru);
    }

    #[test]
    fn pending_points_say_when_they_become_spendable() {
        let n = Notification::Accrued {
            points: Points(200),
            paid_minor: 400_000,
            currency: Currency::Rub,
            balance: Points(0),
            record_id: "1".into(),
            // 15 January 2026, 03:00 UTC.
            pending_until_ms: Some(1_768_446_000_000),
        };
        assert_eq!(
            notification(&n, "Лотос", Lang::Ru),
            "💎 +200 баллов за визит на 4\u{202f}000 ₽ в «Лотос». Их можно будет потратить с \
             15.01.2026. Баланс: 0 баллов"
        );
        let n = Notification::Matured {
            points: Points(200),
            balance: Points(250),
        };
        assert_eq!(
            notification(&n, "Лотос", Lang::Ru),
            "✅ 200 баллов в «Лотос» теперь можно тратить. Баланс: 250 баллов"
        );
    }

    #[test]
    fn referral_bonuses_and_their_reversal() {
        let n = |points: i64, friend: bool| Notification::Referral {
            points: Points(points),
            balance: Points(500),
            friend,
        };
        assert_eq!(
            notification(&n(300, false), "Lotus", Lang::En),
            "🤝 +300 points at Lotus: a friend you invited came for their first visit. Balance: \
             500 points"
        );
        assert_eq!(
            notification(&n(200, true), "Lotus", Lang::En),
            "🤝 +200 points at Lotus for your first visit on a friend's recommendation. Balance: \
             500 points"
        );
        assert_eq!(
            notification(&n(-300, false), "Лотос", Lang::Ru),
            "↩️ −300 баллов в «Лотос»: визит по рекомендации не состоялся. Баланс: 500 баллов"
        );
    }

    #[test]
    fn referrals_are_counted_in_words() {
        let ru: Vec<String> = [1, 2, 5, 11, 21].map(|n| referrals(n, Lang::Ru)).into();
        assert_eq!(
            ru,
            [
                "1 рекомендация",
                "2 рекомендации",
                "5 рекомендаций",
                "11 рекомендаций",
                "21 рекомендация"
            ]
        );
        assert_eq!(referrals(1, Lang::En), "1 referral");
        assert_eq!(referrals(3, Lang::En), "3 referrals");
    }
}
