//! One module per area of the dashboard; each page a template in `templates/` with its struct
//! here. [`Chrome`] is what every signed-in page's frame shows.

pub mod analytics;
pub mod analytics_csv;
pub mod api_keys;
pub mod audit;
pub mod clients;
pub mod desk;
pub mod health;
pub mod home;
pub mod login;
pub mod program;
pub mod reminders;
pub mod rewards;
pub mod setup;
pub mod team;

use askama::Template;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use chrono::DateTime;
use loyalty_core::{Currency, Money};

use crate::WebError;
use crate::assets;
use crate::i18n::Lang;
use crate::session::Staff;

/// The frame around a signed-in page: the salon, the person, the sections their role opens.
pub struct Chrome {
    pub w: &'static crate::i18n::Words,
    pub salon: String,
    pub email: String,
    pub role: &'static str,
    pub plan: &'static str,
    /// The section shown: `home`, `clients`, `desk`, `team`, `audit`.
    pub section: &'static str,
    pub desk: bool,
    pub owner: bool,
    pub css: String,
    pub htmx: String,
}

impl Chrome {
    pub fn new(staff: &Staff, section: &'static str) -> Chrome {
        let lang = staff.lang;
        Chrome {
            w: lang.words(),
            salon: staff.partner.name.clone(),
            email: staff.user.email.clone(),
            role: lang.role(staff.user.role),
            plan: lang.plan(staff.partner.plan),
            section,
            desk: staff.user.role.works_desk(),
            owner: staff.user.role.runs_salon(),
            css: assets::css_url(),
            htmx: assets::htmx_url(),
        }
    }

    /// `aria-current` for a navigation link.
    pub fn current(&self, section: &str) -> &'static str {
        if self.section == section {
            "page"
        } else {
            "false"
        }
    }
}

/// The words alone, for a fragment htmx swaps into a page (named `c` like the frame, so the
/// fragment's template is shared with the page's).
pub struct Words {
    pub w: &'static crate::i18n::Words,
}

/// The frame of a page nobody is signed in to.
pub struct Bare {
    pub w: &'static crate::i18n::Words,
    pub css: String,
}

impl Bare {
    pub fn new(lang: Lang) -> Bare {
        Bare {
            w: lang.words(),
            css: assets::css_url(),
        }
    }
}

/// A template as an HTML answer.
pub fn html(t: &impl Template) -> Result<Response, WebError> {
    Ok(Html(t.render()?).into_response())
}

/// Whether htmx asked (it swaps a fragment, not the page).
pub fn htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

/// A moment in the salon's time: `04.12.2026 15:30`.
pub fn when(at_ms: i64, utc_offset_minutes: i32) -> String {
    at_ms
        .checked_add(i64::from(utc_offset_minutes) * 60_000)
        .and_then(DateTime::from_timestamp_millis)
        .map(|t| t.format("%d.%m.%Y %H:%M").to_string())
        .unwrap_or_default()
}

/// A day in the salon's time: `04.12.2026`.
pub fn day(at_ms: i64, utc_offset_minutes: i32) -> String {
    at_ms
        .checked_add(i64::from(utc_offset_minutes) * 60_000)
        .and_then(DateTime::from_timestamp_millis)
        .map(|t| t.format("%d.%m.%Y").to_string())
        .unwrap_or_default()
}

/// Money as people read it: `1 500 ₽`.
pub fn money(minor: i64, currency: Currency) -> String {
    Money::new(minor, currency)
        .map(Money::display)
        .unwrap_or_else(|_| format!("{minor}"))
}

/// A whole number with narrow spaces between thousands: `12 345`, `-1 200` (as the bot
/// writes them).
pub fn number(n: i64) -> String {
    loyalty_core::money::grouped(n, '\u{202f}')
}

/// Money typed by a person (`1500`, `1 500,50`, `1500.5`) in minor units.
pub use loyalty_core::money::parse_typed as parse_money;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_money_read_as_people_write_them() {
        assert_eq!(number(0), "0");
        assert_eq!(number(1234567), "1\u{202f}234\u{202f}567");
        assert_eq!(number(-1200), "-1\u{202f}200");
        assert_eq!(parse_money("1 500", Currency::Rub), Some(150_000));
        assert_eq!(parse_money("1500,5", Currency::Rub), Some(150_050));
        assert_eq!(parse_money("0.07", Currency::Rub), Some(7));
        for bad in ["", "-5", "1.234", "abc", "1,2,3", ".5"] {
            assert_eq!(parse_money(bad, Currency::Rub), None, "{bad}");
        }
        assert_eq!(when(0, 180), "01.01.1970 03:00");
        assert_eq!(day(86_399_000, 180), "02.01.1970");
    }
}
