//! Cells as salons type them: amounts (`3 500,00`, `3500.00`, `3 500 ₽`), dates (`DD.MM.YYYY`,
//! `DD.MM.YY`, ISO, with or without a time), times, points and visit statuses in Russian or
//! English.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use loyalty_core::event::VisitStatus;

/// An amount in minor units (two decimals): `3 500,00`, `3500.00`, `3 500 ₽`, `3,500.00`,
/// `3.500,50`. `None` when it is not a number; negative amounts are read (and refused by the
/// caller, who says why).
pub fn amount_minor(cell: &str) -> Option<i64> {
    let mut s: String = cell
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{a0}' && *c != '\u{202f}' && *c != '\'')
        .collect();
    for suffix in ["₽", "руб.", "руб", "р.", "р", "rub", "RUB", "$", "€"] {
        if let Some(rest) = s.strip_suffix(suffix) {
            s = rest.to_owned();
            break;
        }
    }
    let negative = s.starts_with('-') || s.starts_with('−');
    let s = s.trim_start_matches(['-', '−', '+']);
    if s.is_empty() {
        return None;
    }
    // The last separator followed by one or two digits to the end is the decimal one; every
    // other separator groups thousands (and must be followed by three digits).
    let last = s.rfind([',', '.']);
    let (whole, frac) = match last {
        Some(i) if (1..=2).contains(&(s.len() - i - 1)) => (&s[..i], &s[i + 1..]),
        _ => (s, ""),
    };
    let mut digits = String::with_capacity(whole.len());
    for (n, group) in whole.split([',', '.']).enumerate() {
        if n > 0 && group.len() != 3 {
            return None;
        }
        digits.push_str(group);
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let cents = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().ok()? * 10,
        _ => frac.parse::<i64>().ok()?,
    };
    let minor = digits
        .parse::<i64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(cents)?;
    Some(if negative { -minor } else { minor })
}

/// Whole points: `1500`, `1 500`, `1500.00`. `None` for fractions or text.
pub fn points(cell: &str) -> Option<i64> {
    let minor = amount_minor(cell)?;
    (minor % 100 == 0).then_some(minor / 100)
}

/// A date, and a time when the cell has one: `31.01.2025`, `31.01.25`, `31/01/2025`,
/// `2025-01-31`, `2025-01-31 14:30`, `2025-01-31T14:30:00`, `31.01.2025 14:30`.
pub fn date_time(cell: &str) -> Option<(NaiveDate, Option<NaiveTime>)> {
    let s = cell.trim().trim_end_matches('Z');
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d.trim(), Some(t.trim())),
        None => (s, None),
    };
    // A year of two digits is this century's (chrono's %Y would read it as year 25).
    let mut groups = date.split(['.', '/', '-']);
    let short_year = groups.next().is_some_and(|d| d.len() <= 2)
        && groups.next_back().is_some_and(|y| y.len() == 2);
    let formats: &[&str] = if short_year {
        &["%d.%m.%y", "%d/%m/%y"]
    } else {
        &["%d.%m.%Y", "%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%Y.%m.%d"]
    };
    let date = formats
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(date, f).ok())
        .filter(|d| chrono::Datelike::year(d) >= 1900)?;
    let time = match time {
        None | Some("") => None,
        Some(t) => Some(time_of_day(t)?),
    };
    Some((date, time))
}

/// `14:30`, `14:30:00`, `9:05`, `14.30`.
pub fn time_of_day(cell: &str) -> Option<NaiveTime> {
    let t = cell.trim();
    // Fractions of a second and an offset are of no use for a visit's time.
    let t = t
        .split(['.', '+'])
        .next()
        .filter(|p| p.contains(':'))
        .unwrap_or(t);
    ["%H:%M:%S", "%H:%M", "%H.%M"]
        .iter()
        .find_map(|f| NaiveTime::parse_from_str(t, f).ok())
}

/// A local date and time in Unix milliseconds, at the salon's offset from UTC.
pub fn local_ms(date: NaiveDate, time: Option<NaiveTime>, utc_offset_minutes: i32) -> i64 {
    let at = NaiveDateTime::new(date, time.unwrap_or(NaiveTime::MIN));
    at.and_utc().timestamp_millis() - i64::from(utc_offset_minutes) * 60_000
}

/// A visit's status in the words salons' exports use. `None`: not a status we know.
pub fn status(cell: &str) -> Option<VisitStatus> {
    let s = cell.trim().to_lowercase().replace('ё', "е");
    let s = s.trim_end_matches(['.', '!']);
    Some(match s {
        "пришел"
        | "пришла"
        | "пришли"
        | "клиент пришел"
        | "визит состоялся"
        | "состоялся"
        | "оплачен"
        | "оплачено"
        | "выполнен"
        | "выполнено"
        | "завершен"
        | "завершено"
        | "came"
        | "arrived"
        | "visited"
        | "completed"
        | "done"
        | "paid"
        | "1" => VisitStatus::Came,
        "не пришел"
        | "не пришла"
        | "не пришли"
        | "клиент не пришел"
        | "неявка"
        | "no-show"
        | "no show"
        | "noshow"
        | "did not come"
        | "2" => VisitStatus::NoShow,
        "отменен" | "отменена" | "отменено" | "отмена" | "удален" | "удалена" | "удалено"
        | "cancelled" | "canceled" | "deleted" => VisitStatus::Deleted,
        "ожидание"
        | "ожидает"
        | "ожидание клиента"
        | "записан"
        | "новая"
        | "новый"
        | "waiting"
        | "pending"
        | "booked"
        | "0" => VisitStatus::Waiting,
        "подтвержден" | "подтверждена" | "подтверждено" | "confirmed" => {
            VisitStatus::Confirmed
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_as_salons_type_them() {
        for (typed, minor) in [
            ("3500", 350_000),
            ("3 500,00", 350_000),
            ("3\u{a0}500,00 ₽", 350_000),
            ("3500.00", 350_000),
            ("3,500.00", 350_000),
            ("3.500,50", 350_050),
            ("3500,5", 350_050),
            ("3 500 руб.", 350_000),
            ("0", 0),
            ("1 234 567,89", 123_456_789),
            ("-150,00", -15_000),
        ] {
            assert_eq!(amount_minor(typed), Some(minor), "{typed}");
        }
        for bad in ["", "три тысячи", "3,50,0", "35,0000", "12ab", "₽", "1.2.3"] {
            assert_eq!(amount_minor(bad), None, "{bad}");
        }
        assert_eq!(points("1 500"), Some(1500));
        assert_eq!(points("15,5"), None);
    }

    #[test]
    fn dates_and_times() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0);
        assert_eq!(date_time("31.01.2025"), Some((d(2025, 1, 31), None)));
        assert_eq!(date_time("31.01.25"), Some((d(2025, 1, 31), None)));
        assert_eq!(date_time("2025-01-31"), Some((d(2025, 1, 31), None)));
        assert_eq!(
            date_time("2025-01-31 14:30"),
            Some((d(2025, 1, 31), t(14, 30)))
        );
        assert_eq!(
            date_time("2025-01-31T14:30:00"),
            Some((d(2025, 1, 31), t(14, 30)))
        );
        assert_eq!(
            date_time("31.01.2025 9:05"),
            Some((d(2025, 1, 31), t(9, 5)))
        );
        assert_eq!(date_time("31/01/2025"), Some((d(2025, 1, 31), None)));
        for bad in ["", "вчера", "31.02.2025", "2025-13-01", "31.01.2025 25:00"] {
            assert_eq!(date_time(bad), None, "{bad}");
        }
        // 14:30 in Moscow (UTC+3) is 11:30 UTC.
        let ms = local_ms(d(2025, 1, 31), t(14, 30), 180);
        assert_eq!(ms, 1_738_323_000_000);
    }

    #[test]
    fn statuses_in_both_languages() {
        assert_eq!(status("Пришёл"), Some(VisitStatus::Came));
        assert_eq!(status("пришел"), Some(VisitStatus::Came));
        assert_eq!(status("Не пришёл"), Some(VisitStatus::NoShow));
        assert_eq!(status("Отменена"), Some(VisitStatus::Deleted));
        assert_eq!(status("отменён"), Some(VisitStatus::Deleted));
        assert_eq!(status("came"), Some(VisitStatus::Came));
        assert_eq!(status("No-show"), Some(VisitStatus::NoShow));
        assert_eq!(status("Cancelled"), Some(VisitStatus::Deleted));
        assert_eq!(status("может быть"), None);
    }
}
