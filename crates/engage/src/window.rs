//! The send window: the local hours in the salon's IANA zone when marketing messages may go out.
//! A message due outside it waits for the next opening; one that could not go out before the
//! window closed waits for the next day's.

use chrono::{Days, NaiveDate, NaiveTime, TimeZone, Timelike};
use chrono_tz::Tz;
use loyalty_core::engage::SendWindow;

/// The salon's local date and hour at `ms`.
pub fn local(tz: Tz, ms: i64) -> Option<chrono::DateTime<Tz>> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.with_timezone(&tz))
}

/// Whether `ms` falls inside the window in `tz`.
pub fn open_at(tz: Tz, w: SendWindow, ms: i64) -> bool {
    local(tz, ms).is_some_and(|t| {
        let h = t.hour();
        h >= u32::from(w.from_hour) && h < u32::from(w.to_hour)
    })
}

/// The instant of local `hour:00` on `date` in `tz`: the earlier of two when clocks go back, the
/// first instant after the gap when they go forward.
fn at_hour(tz: Tz, date: NaiveDate, hour: u8) -> Option<i64> {
    let naive = if hour >= 24 {
        date.checked_add_days(Days::new(1))?
            .and_time(NaiveTime::MIN)
    } else {
        date.and_hms_opt(u32::from(hour), 0, 0)?
    };
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => Some(t.timestamp_millis()),
        chrono::LocalResult::Ambiguous(a, _) => Some(a.timestamp_millis()),
        // A gap (spring forward): the hour after it exists.
        chrono::LocalResult::None => tz
            .from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()
            .map(|t| t.timestamp_millis()),
    }
}

/// The window that is open at `ms` or opens next: `[start, end)` in Unix ms.
pub fn current_or_next(tz: Tz, w: SendWindow, ms: i64) -> Option<(i64, i64)> {
    let today = local(tz, ms)?.date_naive();
    for k in 0..3u64 {
        let day = today.checked_add_days(Days::new(k))?;
        let (start, end) = (at_hour(tz, day, w.from_hour)?, at_hour(tz, day, w.to_hour)?);
        if end > ms && start < end {
            return Some((start.max(ms), end));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(tz: Tz, y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
        tz.with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn night_in_vladivostok_is_day_in_kaliningrad() {
        let w = SendWindow::default();
        // 2026-12-02 00:30 UTC: 10:30 in Vladivostok (+10), 02:30 in Kaliningrad (+2).
        let t = ms(chrono_tz::UTC, 2026, 12, 2, 0, 30);
        assert!(open_at(chrono_tz::Asia::Vladivostok, w, t));
        assert!(!open_at(chrono_tz::Europe::Kaliningrad, w, t));
        let (start, end) = current_or_next(chrono_tz::Europe::Kaliningrad, w, t).unwrap();
        assert_eq!(
            start,
            ms(chrono_tz::Europe::Kaliningrad, 2026, 12, 2, 10, 0)
        );
        assert_eq!(end, ms(chrono_tz::Europe::Kaliningrad, 2026, 12, 2, 21, 0));
    }

    #[test]
    fn after_closing_the_next_day_opens() {
        let tz = chrono_tz::Europe::Moscow;
        let w = SendWindow::default();
        let late = ms(tz, 2026, 12, 2, 21, 0);
        assert!(!open_at(tz, w, late));
        assert_eq!(
            current_or_next(tz, w, late),
            Some((ms(tz, 2026, 12, 3, 10, 0), ms(tz, 2026, 12, 3, 21, 0)))
        );
        let open = ms(tz, 2026, 12, 2, 12, 15);
        assert_eq!(
            current_or_next(tz, w, open),
            Some((open, ms(tz, 2026, 12, 2, 21, 0)))
        );
    }

    #[test]
    fn almaty_moved_an_hour_in_2024() {
        // Asia/Almaty went from +6 to +5 on 2024-03-01: 04:30 UTC is 10:30 before and 09:30
        // after — the window follows the zone's rules, not a fixed offset.
        let w = SendWindow::default();
        let tz = chrono_tz::Asia::Almaty;
        assert!(open_at(tz, w, ms(chrono_tz::UTC, 2024, 2, 15, 4, 30)));
        assert!(!open_at(tz, w, ms(chrono_tz::UTC, 2024, 3, 15, 4, 30)));
    }

    #[test]
    fn a_window_to_midnight_closes_at_midnight() {
        let tz = chrono_tz::Europe::Berlin;
        let w = SendWindow {
            from_hour: 8,
            to_hour: 24,
        };
        let t = ms(tz, 2026, 3, 29, 23, 0);
        assert_eq!(
            current_or_next(tz, w, t).unwrap().1,
            ms(tz, 2026, 3, 30, 0, 0)
        );
        // 02:00 does not exist in Berlin on 2026-03-29: a window from 2 opens at 03:00.
        let w2 = SendWindow {
            from_hour: 2,
            to_hour: 5,
        };
        let night = ms(tz, 2026, 3, 29, 1, 0);
        assert_eq!(
            current_or_next(tz, w2, night).unwrap().0,
            ms(tz, 2026, 3, 29, 3, 0)
        );
    }
}
