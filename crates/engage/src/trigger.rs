//! When each trigger is due for a client, and why — in words the salon can read.
//!
//! A trigger fires once per *absence*: its cycle key starts with the client's last visit that
//! came, so a client who stays away is not reminded daily and one who comes back starts a new
//! cycle. Points expiring add the expiry date to the key (another batch of points is another
//! reason); the birthday is keyed by the year.

use chrono::{Datelike, NaiveDate};
use chrono_tz::Tz;
use loyalty_core::engage::{Engagement, TriggerRule};
use loyalty_core::{BirthDate, Points};

use crate::Snapshot;
use crate::cadence::{DAY_MS, SalonRhythm, cadence};
use crate::lapse::lapse;
use crate::risk::{SalonModel, customer};
use crate::window::local;

/// A trigger due for a client.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    /// The trigger's name (`inactive`, `due`, …).
    pub trigger: &'static str,
    /// Its position in the program's list: lower goes first.
    pub rank: usize,
    /// What makes this occurrence one: `{last visit ms}` (with more after a `:` for some).
    pub cycle: String,
    pub why: Why,
}

/// Why a trigger is due.
#[derive(Debug, Clone, PartialEq)]
pub enum Why {
    Inactive {
        days: i64,
        balance: Points,
    },
    /// Overdue by the client's own rhythm.
    Rhythm {
        category: Option<String>,
        typical_gap_days: i64,
        own_gaps: usize,
        overdue_days: i64,
    },
    /// Likely stopped coming: an absence this long is rare for their own rhythm.
    Lapsed {
        days: i64,
        usual_days: i64,
        /// The chance of an absence this long were they still coming, in percent.
        chance_percent: f64,
    },
    /// Likely lost, by the salon's BG/NBD, and among its most valuable clients.
    AtRisk {
        days: i64,
        /// Her chance of still being a client, in percent.
        p_alive_percent: f64,
        /// Her 12-month value were she still coming (minor units), and the salon's top share
        /// it is in.
        at_stake_minor: i64,
        top_percent: u32,
    },
    /// The salon's history is too thin for rhythms: the fixed number of days instead.
    Fallback {
        days: i64,
        reason: String,
    },
    Expiring {
        points: Points,
        on: NaiveDate,
    },
    Missed {
        days: i64,
    },
    WelcomeBack {
        days: i64,
    },
    Birthday {
        on: NaiveDate,
    },
    /// Not on Telegram: an SMS inviting them to the salon's bot (once).
    Invite,
    /// One of the salon's custom triggers fired for her (its message).
    Custom {
        name: String,
    },
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Inactive { days, balance } => write!(
                f,
                "no visit for {days} days with {} points",
                balance.value()
            ),
            Why::Rhythm {
                category,
                typical_gap_days,
                own_gaps,
                overdue_days,
            } => {
                let what = category
                    .as_deref()
                    .map_or_else(|| "visits".to_owned(), |c| format!("category {c}"));
                let gaps = match own_gaps {
                    0 => "the salon's gap".to_owned(),
                    1 => "1 gap of their own".to_owned(),
                    n => format!("{n} gaps of their own"),
                };
                write!(
                    f,
                    "{overdue_days} days past their usual {typical_gap_days}-day rhythm ({what}; {gaps})"
                )
            }
            Why::Lapsed {
                days,
                usual_days,
                chance_percent,
            } => write!(
                f,
                "away {days} days; at their usual {usual_days}-day rhythm an absence this long happens {chance_percent:.1} % of the time"
            ),
            Why::AtRisk {
                days,
                p_alive_percent,
                at_stake_minor,
                top_percent,
            } => write!(
                f,
                "away {days} days; the salon's model gives {p_alive_percent:.1} % that they still come, and what they would bring in 12 months, {}.{:02}, is in the salon's top {top_percent} %",
                at_stake_minor / 100,
                at_stake_minor % 100
            ),
            Why::Fallback { days, reason } => write!(f, "no visit for {days} days ({reason})"),
            Why::Expiring { points, on } => {
                write!(f, "{} points expire on {on}", points.value())
            }
            Why::Missed { days: 0 } => write!(f, "missed a visit today and booked nothing since"),
            Why::Missed { days } => {
                write!(f, "missed a visit {days} days ago and booked nothing since")
            }
            Why::WelcomeBack { days } => {
                write!(f, "first visit {days} days ago and not back yet")
            }
            Why::Birthday { on } => write!(f, "birthday on {on}"),
            Why::Invite => write!(f, "not on Telegram: an SMS invitation to the bot"),
            Why::Custom { name } => write!(f, "the salon's trigger {name:?} fired"),
        }
    }
}

/// What the triggers need beside the client's row.
pub struct Context<'a> {
    pub now_ms: i64,
    pub tz: Tz,
    pub salon: &'a SalonRhythm,
    /// The salon's churn and value model, when one was built (`at_risk` needs it on).
    pub model: Option<&'a SalonModel>,
}

/// Every trigger of `settings` due for `s` now, in the program's order.
pub fn due(s: &Snapshot, settings: &Engagement, ctx: &Context<'_>) -> Vec<Due> {
    let mut out = Vec::new();
    for (rank, t) in settings.triggers.iter().enumerate() {
        if let Some((cycle, why)) = one(s, &t.rule, ctx) {
            out.push(Due {
                trigger: t.rule.name(),
                rank,
                cycle,
                why,
            });
        }
    }
    out
}

/// The invitation to the bot by SMS, for a client the policy reaches by SMS: its name in keys
/// and reports, and its one cycle (a client is invited once).
pub const INVITE: &str = "invite";
pub const INVITE_CYCLE: &str = "once";

/// The invitation as a due trigger, ranked before every trigger of the program.
pub fn invite() -> Due {
    Due {
        trigger: INVITE,
        rank: 0,
        cycle: INVITE_CYCLE.to_owned(),
        why: Why::Invite,
    }
}

fn days_between(from_ms: i64, to_ms: i64) -> i64 {
    (to_ms - from_ms).div_euclid(DAY_MS)
}

fn one(s: &Snapshot, rule: &TriggerRule, ctx: &Context<'_>) -> Option<(String, Why)> {
    let now = ctx.now_ms;
    let absence = || {
        s.last_visit_ms
            .map_or_else(|| "none".to_owned(), |l| l.to_string())
    };
    let booked = s.booked_ms.is_some_and(|b| b > now);
    match rule {
        TriggerRule::Inactive { days, min_balance } => {
            let last = s.last_visit_ms?;
            let away = days_between(last, now);
            let fires = away >= i64::from(*days) && s.balance >= *min_balance && !booked;
            fires.then(|| {
                (
                    last.to_string(),
                    Why::Inactive {
                        days: away,
                        balance: s.balance,
                    },
                )
            })
        }
        TriggerRule::Due {
            overdue_percent,
            fallback_days,
        } => {
            let last = s.last_visit_ms?;
            if booked {
                return None;
            }
            if let Some(reason) = ctx.salon.too_little() {
                let away = days_between(last, now);
                return (away >= i64::from(*fallback_days))
                    .then(|| (last.to_string(), Why::Fallback { days: away, reason }));
            }
            let c = cadence(&s.rhythm, ctx.salon)?;
            let share = f64::from(*overdue_percent) / 100.0;
            (c.overdue_share(now) >= share).then(|| {
                (
                    last.to_string(),
                    Why::Rhythm {
                        typical_gap_days: c.gap.days.round() as i64,
                        own_gaps: c.gap.own_gaps,
                        overdue_days: c.overdue_days(now).floor() as i64,
                        category: c.category.clone(),
                    },
                )
            })
        }
        TriggerRule::Lapsed { below_percent } => {
            let last = s.last_visit_ms?;
            if booked {
                return None;
            }
            let l = lapse(&s.rhythm, ctx.salon, now)?;
            let percent = l.chance * 100.0;
            (percent < f64::from(*below_percent)).then(|| {
                (
                    last.to_string(),
                    Why::Lapsed {
                        days: days_between(last, now),
                        usual_days: l.mean_days.round() as i64,
                        chance_percent: percent,
                    },
                )
            })
        }
        TriggerRule::AtRisk {
            below_percent,
            top_percent,
        } => {
            let model = ctx.model.filter(|m| m.on())?;
            let last = s.last_visit_ms?;
            if booked {
                return None;
            }
            let c = customer(s, now)?;
            // The cheap test first: most clients are not at risk, and their value is not asked.
            if model.p_alive(&c)? * 100.0 >= f64::from(*below_percent) {
                return None;
            }
            let risk = model.risk(&c)?;
            (risk.at_stake_minor >= model.top_cut(*top_percent)).then(|| {
                (
                    last.to_string(),
                    Why::AtRisk {
                        days: days_between(last, now),
                        p_alive_percent: risk.p_alive * 100.0,
                        at_stake_minor: risk.at_stake_minor,
                        top_percent: *top_percent,
                    },
                )
            })
        }
        TriggerRule::Expiring {
            within_days,
            min_points,
        } => {
            let e = s.expiring?;
            let horizon = now + i64::from(*within_days) * DAY_MS;
            if e.at_ms > horizon || e.at_ms <= now || e.points < *min_points || booked {
                return None;
            }
            let on = local(ctx.tz, e.at_ms)?.date_naive();
            Some((
                format!("{}:{on}", absence()),
                Why::Expiring {
                    points: e.points,
                    on,
                },
            ))
        }
        TriggerRule::Missed { after_days } => {
            let missed = s.missed_ms?;
            if s.last_visit_ms.is_some_and(|l| l >= missed) || booked || missed > now {
                return None;
            }
            let ago = days_between(missed, now);
            (ago >= i64::from(*after_days))
                .then(|| (format!("{}:{missed}", absence()), Why::Missed { days: ago }))
        }
        TriggerRule::WelcomeBack { days } => {
            let first = s.first_visit_ms?;
            let last = s.last_visit_ms?;
            let away = days_between(first, now);
            (s.visits == 1 && away >= i64::from(*days) && !booked)
                .then(|| (last.to_string(), Why::WelcomeBack { days: away }))
        }
        TriggerRule::Birthday { days_before } => {
            let b = s.birthday?;
            let today = local(ctx.tz, now)?.date_naive();
            let on = next_birthday(b, today)?;
            let ahead = (on - today).num_days();
            (ahead <= i64::from(*days_before))
                .then(|| (on.year().to_string(), Why::Birthday { on }))
        }
    }
}

/// The next date (today included) a birthday falls on; 29 February on the 28th in other years.
pub fn next_birthday(b: BirthDate, today: NaiveDate) -> Option<NaiveDate> {
    let on = |y: i32| {
        NaiveDate::from_ymd_opt(y, u32::from(b.month), u32::from(b.day)).or_else(|| {
            (b.month == 2 && b.day == 29)
                .then(|| NaiveDate::from_ymd_opt(y, 2, 28))
                .flatten()
        })
    };
    let this = on(today.year())?;
    if this >= today {
        Some(this)
    } else {
        on(today.year() + 1)
    }
}
