//! A rule tried on a past visit before it is saved: "what would this trigger have done?"

use serde::Serialize;

use super::{Check, CustomError, CustomTrigger, VisitContext, When, validate};
use crate::history::Visit;
use crate::model::Program;
use crate::money::{MoneyError, Points};

const DAY_MS: i64 = 86_400_000;

/// What a trigger would have done on a past visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preview {
    /// Every condition held.
    pub fires: bool,
    pub checks: Vec<Check>,
    /// The points it would have added to the visit's.
    pub points: Points,
    /// The message it would have queued for the delivery policy, with `{level}` and
    /// `{master}` filled in (the name and balance are the client's when it goes out).
    pub message: Option<String>,
    pub webhook: bool,
    /// What the visit was, as the trigger read it.
    pub ordinal: i64,
    pub since_last_days: Option<i64>,
    pub level: Option<String>,
}

/// What `trigger` would have done on the past visit `visit`, given the client's `history`
/// (her other visits' rows, in any order) and her level (`None`: the first, or no levels):
/// the visit's ordinal and the days since her visit before it are read from that history.
pub fn preview(
    program: &Program,
    trigger: &CustomTrigger,
    visit: &Visit,
    history: &[Visit],
    level: Option<&str>,
) -> Result<Preview, PreviewError> {
    if trigger.when != When::Visit {
        return Err(PreviewError::NotVisit(trigger.when.as_str()));
    }
    let mut with = program.clone();
    with.custom_triggers = vec![trigger.clone()];
    validate(&with)?;
    let at = visit.visit_at_ms.unwrap_or(i64::MAX);
    let before = history.iter().filter(|v| {
        v.status == crate::event::VisitStatus::Came
            && !(v.connection_id == visit.connection_id && v.record_id == visit.record_id)
            && v.visit_at_ms.is_some_and(|t| t < at)
    });
    let ordinal = i64::try_from(before.clone().count()).unwrap_or(i64::MAX) + 1;
    let since_last_days = before
        .filter_map(|v| v.visit_at_ms)
        .max()
        .and_then(|last| visit.visit_at_ms.map(|at| (at - last) / DAY_MS));
    let event = visit.as_event(program.currency);
    let standing = program.level_of(level).map(|(_, n)| n.to_owned());
    let cx = VisitContext {
        level: standing.as_deref(),
        ordinal,
        since_last_days,
    };
    let at_level = program.at_level(standing.as_deref());
    let checks = trigger.visit_checks(&at_level, &event, cx)?;
    let fires = checks.iter().all(|c| c.holds);
    let points = trigger.visit_points(&at_level, &event, cx)?;
    let message = trigger.message().filter(|_| fires).map(|t| {
        t.ru.replace("{level}", standing.as_deref().unwrap_or_default())
            .replace("{master}", visit.staff_name.as_deref().unwrap_or_default())
    });
    Ok(Preview {
        fires,
        checks,
        points,
        message,
        webhook: fires && trigger.webhook(),
        ordinal,
        since_last_days,
        level: standing,
    })
}

/// Why a preview cannot run.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("a preview runs a trigger on a past visit; this one runs on {0}")]
    NotVisit(&'static str),
    #[error(transparent)]
    Invalid(#[from] CustomError),
    #[error(transparent)]
    Money(#[from] MoneyError),
}
