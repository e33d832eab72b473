//! What the bot says, in Russian (the default) and English.

use loyalty_core::outbox::Notification;
use loyalty_core::redemption::Strategy;
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
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(ch);
    }
    out
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
    fn accrual_message_names_points_visit_and_balance() {
        let n = Notification::Accrued {
            points: Points(200),
            paid_minor: 400_000,
            currency: Currency::Rub,
            balance: Points(350),
            record_id: "1".into(),
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
}
