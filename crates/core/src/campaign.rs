//! Campaigns and limits: time-boxed rules on top of a program, and caps so no one farms it.
//!
//! The rules, pinned by the engine's tests and the property test's model:
//!
//! * A campaign is **in force at the visit's time** (its dates, weekdays and hours read in the
//!   salon's time, `Program::utc_offset_minutes`), in the program version in force then: a
//!   webhook delivered after a campaign ended still earns it; a visit booked in it and delivered
//!   before it starts does too.
//! * It pays on the visit's lines it covers (all, or given items and categories) and only for the
//!   levels it names (all when none): a **multiplier** (`percent` 200: double points) on those
//!   lines' points, an **extra rate** on their paid amount, or a fixed **bonus on the Nth visit**
//!   that came. A visit that earns nothing (did not come, below the minimum bill) gets nothing
//!   from a campaign either.
//! * **Stacking**: of the rate campaigns (multiplier, extra rate) that do not stack, only the one
//!   that gives most applies; those that stack add to it; bonuses always add. The visit's total
//!   is then capped by the program's `max_points_per_visit`.
//! * **Limits**: a campaign may give a client at most `limit.points` per day, week (from Monday)
//!   or month of the visit's time. Which campaigns apply, the visit's ordinal and each limited
//!   campaign's *allowance* (what it may still give this visit: the limit less what the client's
//!   other visits in the period reserved) are **fixed when the visit is first applied as one
//!   that came** ([`Earned`], kept with the record's terms). A re-delivery or an edit computes
//!   each campaign's points from the visit's current state, never above its allowance; a visit
//!   that later does not come keeps its reservation, so a limit is never exceeded whatever the
//!   order of deliveries.

pub use chrono::NaiveDate;
use chrono::{DateTime, Datelike, Days, Months, Timelike};
use serde::{Deserialize, Serialize};

use crate::event::{VisitEvent, VisitLine};
use crate::model::{Program, RuleTarget};
use crate::money::{Bps, MoneyError, Points};

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    fn of(day: chrono::Weekday) -> Weekday {
        match day {
            chrono::Weekday::Mon => Weekday::Mon,
            chrono::Weekday::Tue => Weekday::Tue,
            chrono::Weekday::Wed => Weekday::Wed,
            chrono::Weekday::Thu => Weekday::Thu,
            chrono::Weekday::Fri => Weekday::Fri,
            chrono::Weekday::Sat => Weekday::Sat,
            chrono::Weekday::Sun => Weekday::Sun,
        }
    }
}

/// What a campaign gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CampaignReward {
    /// The covered lines' points × `percent` / 100 in all (200: double points); the campaign
    /// gives the part above 100 %.
    Multiplier { percent: u32 },
    /// An extra rate on the covered lines' paid amount.
    ExtraRate { rate: Bps },
    /// A fixed bonus on the client's `n`-th visit that came.
    NthVisit { n: u32, points: Points },
}

/// The period a limit counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    /// Monday to Sunday.
    Week,
    Month,
}

/// The most points a campaign may give one client per period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignLimit {
    pub points: Points,
    pub per: Period,
}

/// A time-boxed rule on top of the program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    /// Unique within the program; limits are counted by it.
    pub name: String,
    /// First day (the salon's), inclusive; `None`: since ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_on: Option<NaiveDate>,
    /// Last day (the salon's), inclusive; `None`: open-ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_on: Option<NaiveDate>,
    /// The days it runs on; empty: every day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekdays: Vec<Weekday>,
    /// `[from, to)`: the hours (the salon's, 0..=24) it runs in; `None`: all day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<[u8; 2]>,
    /// The items and categories it covers; empty: every line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<RuleTarget>,
    /// The levels it is for; empty: every client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<String>,
    pub reward: CampaignReward,
    /// Whether a rate campaign adds to the others instead of competing with them.
    #[serde(default)]
    pub stacks: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<CampaignLimit>,
}

/// What a campaign's settings get wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CampaignError {
    #[error("a campaign needs a name")]
    NoName,
    #[error("two campaigns are named {0:?}")]
    DuplicateName(String),
    #[error("campaign {name:?} ends on {ends} before it starts on {starts}")]
    EndsBeforeStart {
        name: String,
        starts: NaiveDate,
        ends: NaiveDate,
    },
    #[error("campaign {0:?}: hours must be [from, to) with 0 <= from < to <= 24")]
    BadHours(String),
    #[error("campaign {0:?}: a multiplier's percent must be 101..=1000 (200 is double points)")]
    BadMultiplier(String),
    #[error("campaign {0:?}: {1} must be more than 0")]
    NotPositive(String, &'static str),
    #[error("campaign {name:?} is for level {level:?}, which the program does not have")]
    UnknownLevel { name: String, level: String },
    #[error("max_points_per_visit must be more than 0")]
    BadCap,
    #[error("utc_offset_minutes must be within -720..=840")]
    BadOffset,
}

/// What a record that came was first applied with: its ordinal among the client's visits that
/// came, the days since her visit before it, and the campaigns that apply to it with their
/// allowances. Kept with the record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Earned {
    pub ordinal: i64,
    /// Days from the client's visit that came before this one (`None`: a first visit, or
    /// no custom trigger reads it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_last_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub campaigns: Vec<CampaignUse>,
}

/// A campaign that applies to a record, and the most it may give it (`None`: no limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignUse {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowance: Option<Points>,
}

impl Campaign {
    /// Whether it runs at `at_ms`, read in the salon's time.
    pub fn in_force_at(&self, at_ms: i64, utc_offset_minutes: i32) -> bool {
        let Some(local) = local_time(at_ms, utc_offset_minutes) else {
            return false;
        };
        let day = local.date_naive();
        if self.starts_on.is_some_and(|s| day < s) || self.ends_on.is_some_and(|e| day > e) {
            return false;
        }
        if !self.weekdays.is_empty() && !self.weekdays.contains(&Weekday::of(day.weekday())) {
            return false;
        }
        match self.hours {
            Some([from, to]) => (u32::from(from)..u32::from(to)).contains(&local.hour()),
            None => true,
        }
    }

    /// Whether it is for a client at `level` (`None`: the program's first, or no levels).
    pub fn for_level(&self, level: Option<&str>, program: &Program) -> bool {
        if self.levels.is_empty() {
            return true;
        }
        let standing = program.level_of(level).map(|(_, name)| name);
        standing.is_some_and(|name| self.levels.iter().any(|l| l == name))
    }

    fn covers(&self, line: &VisitLine) -> bool {
        line_in(&self.items, line)
    }

    fn is_rate(&self) -> bool {
        !matches!(self.reward, CampaignReward::NthVisit { .. })
    }

    /// What it gives `visit` in its current state, before its allowance: `program` is the
    /// program at the record's level, `ordinal` the visit's among those that came.
    pub fn extra(
        &self,
        program: &Program,
        visit: &VisitEvent,
        ordinal: i64,
    ) -> Result<Points, MoneyError> {
        let Some(share) = qualifying_share(program, visit)? else {
            return Ok(Points::ZERO);
        };
        let pv = i128::from(program.point_value_minor);
        let lines = visit.lines.iter().filter(|l| self.covers(l));
        let full = match &self.reward {
            CampaignReward::NthVisit { n, points } => {
                return Ok(if ordinal == i64::from(*n) {
                    *points
                } else {
                    Points::ZERO
                });
            }
            CampaignReward::Multiplier { percent } => {
                let k = i128::from(*percent) - 100;
                let weighted: i128 = lines
                    .map(|l| {
                        let rate = program.rate_for(&l.item_id, l.category_id.as_deref());
                        i128::from(l.paid_minor) * i128::from(rate.value()) * k
                    })
                    .sum();
                weighted / (10_000 * 100 * pv)
            }
            CampaignReward::ExtraRate { rate } => {
                return rate_points(program, visit, |l| self.covers(l), *rate);
            }
        };
        scaled(full, share)
    }
}

/// `full` points for the whole bill, scaled to the share `(rest, paid)` not paid with points or
/// certificates, rounded down once.
fn scaled(full: i128, (rest, paid): (i64, i64)) -> Result<Points, MoneyError> {
    let scaled = if rest == paid {
        full
    } else {
        full * i128::from(rest) / i128::from(paid)
    };
    i64::try_from(scaled.max(0))
        .map(Points)
        .map_err(|_| MoneyError::Overflow)
}

/// An extra `rate` on the paid amount of the visit's lines `covers` takes, scaled by the share
/// of the bill not paid with points or certificates; zero when the visit earns nothing.
pub(crate) fn rate_points(
    program: &Program,
    visit: &VisitEvent,
    covers: impl Fn(&VisitLine) -> bool,
    rate: Bps,
) -> Result<Points, MoneyError> {
    let Some(share) = qualifying_share(program, visit)? else {
        return Ok(Points::ZERO);
    };
    let pv = i128::from(program.point_value_minor);
    let weighted: i128 = visit
        .lines
        .iter()
        .filter(|l| covers(l))
        .map(|l| i128::from(l.paid_minor) * i128::from(rate.value()))
        .sum();
    scaled(weighted / (10_000 * pv), share)
}

/// Whether `line` is one of `items` (services, goods, categories); every line when empty.
pub(crate) fn line_in(items: &[RuleTarget], line: &VisitLine) -> bool {
    items.is_empty()
        || items.iter().any(|t| match t {
            RuleTarget::Item(id) => *id == line.item_id,
            RuleTarget::Category(c) => line.category_id.as_deref() == Some(c.as_str()),
        })
}

/// The weekday and hour of `at_ms` in the salon's time.
pub(crate) fn weekday_and_hour(at_ms: i64, utc_offset_minutes: i32) -> Option<(Weekday, u32)> {
    let local = local_time(at_ms, utc_offset_minutes)?;
    Some((Weekday::of(local.date_naive().weekday()), local.hour()))
}

/// Whether the visit earns at all in its current state (came, and the part not paid with points
/// or certificates reaches the minimum bill).
pub fn qualifies(program: &Program, visit: &VisitEvent) -> Result<bool, MoneyError> {
    Ok(qualifying_share(program, visit)?.is_some())
}

/// `(paid − loyalty, paid)` when the visit earns at all (came, and the part not paid with
/// points or certificates reaches the minimum bill); `None` otherwise.
pub(crate) fn qualifying_share(
    program: &Program,
    visit: &VisitEvent,
) -> Result<Option<(i64, i64)>, MoneyError> {
    if visit.status != crate::event::VisitStatus::Came {
        return Ok(None);
    }
    let paid: i64 = visit
        .lines
        .iter()
        .try_fold(0i64, |acc, l| acc.checked_add(l.paid_minor))
        .ok_or(MoneyError::Overflow)?;
    let loyalty = match visit.loyalty_paid {
        crate::event::LoyaltyPaid::Minor(minor) => minor.clamp(0, paid),
        _ => 0,
    };
    let rest = paid - loyalty;
    if rest < program.min_paid_minor || paid <= 0 {
        return Ok(None);
    }
    Ok(Some((rest, paid)))
}

fn local_time(at_ms: i64, utc_offset_minutes: i32) -> Option<DateTime<chrono::Utc>> {
    DateTime::from_timestamp_millis(at_ms.checked_add(i64::from(utc_offset_minutes) * 60_000)?)
}

/// `[start, end)` in UTC milliseconds of the day, week (from Monday) or month that holds
/// `at_ms` in the salon's time.
pub fn period_bounds(at_ms: i64, per: Period, utc_offset_minutes: i32) -> Option<(i64, i64)> {
    let day = local_time(at_ms, utc_offset_minutes)?.date_naive();
    let (start, end) = match per {
        Period::Day => (day, day.checked_add_days(Days::new(1))?),
        Period::Week => {
            let monday =
                day.checked_sub_days(Days::new(u64::from(day.weekday().num_days_from_monday())))?;
            (monday, monday.checked_add_days(Days::new(7))?)
        }
        Period::Month => {
            let first = day.with_day(1)?;
            (first, first.checked_add_months(Months::new(1))?)
        }
    };
    let offset = i64::from(utc_offset_minutes) * 60_000;
    let ms = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis() - offset)
    };
    Some((ms(start)?, ms(end)?))
}

/// The campaigns of `program` that apply to a visit first applied as one that came: in force at
/// its time, for its level, giving something now; of the rate campaigns that do not stack only
/// the best (the first of equals). Allowances are the caller's to fill in.
pub fn candidates<'p>(
    program: &'p Program,
    visit: &VisitEvent,
    level: Option<&str>,
    at_ms: i64,
    ordinal: i64,
) -> Result<Vec<(&'p Campaign, Points)>, MoneyError> {
    let mut out: Vec<(&Campaign, Points)> = Vec::new();
    let mut best: Option<(&Campaign, Points)> = None;
    for c in &program.campaigns {
        if !c.in_force_at(at_ms, program.utc_offset_minutes) || !c.for_level(level, program) {
            continue;
        }
        let extra = c.extra(program, visit, ordinal)?;
        if !extra.is_positive() {
            continue;
        }
        if c.is_rate() && !c.stacks {
            if best.is_none_or(|(_, b)| extra > b) {
                best = Some((c, extra));
            }
        } else {
            out.push((c, extra));
        }
    }
    out.extend(best);
    Ok(out)
}

impl Earned {
    /// What a custom trigger reads of the record, for a client at `level`.
    pub fn context<'a>(&self, level: Option<&'a str>) -> crate::custom::VisitContext<'a> {
        crate::custom::VisitContext {
            level,
            ordinal: self.ordinal,
            since_last_days: self.since_last_days,
        }
    }

    /// What the record earns from its campaigns now: each listed campaign's points from the
    /// visit's current state, within its allowance.
    pub fn campaign_points(
        &self,
        program: &Program,
        visit: &VisitEvent,
    ) -> Result<Points, MoneyError> {
        let mut total = Points::ZERO;
        for used in &self.campaigns {
            let Some(c) = program.campaigns.iter().find(|c| c.name == used.name) else {
                continue;
            };
            let extra = c.extra(program, visit, self.ordinal)?;
            total += used.allowance.map_or(extra, |a| extra.min(a));
        }
        Ok(total)
    }
}

/// Checks a program's campaigns and caps.
pub fn validate(program: &Program) -> Result<(), CampaignError> {
    if program
        .max_points_per_visit
        .is_some_and(|cap| !cap.is_positive())
    {
        return Err(CampaignError::BadCap);
    }
    if !(-720..=840).contains(&program.utc_offset_minutes) {
        return Err(CampaignError::BadOffset);
    }
    for (i, c) in program.campaigns.iter().enumerate() {
        let name = c.name.trim();
        if name.is_empty() {
            return Err(CampaignError::NoName);
        }
        if program.campaigns[..i].iter().any(|o| o.name.trim() == name) {
            return Err(CampaignError::DuplicateName(c.name.clone()));
        }
        if let (Some(starts), Some(ends)) = (c.starts_on, c.ends_on)
            && ends < starts
        {
            return Err(CampaignError::EndsBeforeStart {
                name: c.name.clone(),
                starts,
                ends,
            });
        }
        if let Some([from, to]) = c.hours
            && !(from < to && to <= 24)
        {
            return Err(CampaignError::BadHours(c.name.clone()));
        }
        match &c.reward {
            CampaignReward::Multiplier { percent } if !(101..=1000).contains(percent) => {
                return Err(CampaignError::BadMultiplier(c.name.clone()));
            }
            CampaignReward::ExtraRate { rate } if rate.value() == 0 => {
                return Err(CampaignError::NotPositive(c.name.clone(), "rate"));
            }
            CampaignReward::NthVisit { n, .. } if *n == 0 => {
                return Err(CampaignError::NotPositive(c.name.clone(), "n"));
            }
            CampaignReward::NthVisit { points, .. } if !points.is_positive() => {
                return Err(CampaignError::NotPositive(c.name.clone(), "points"));
            }
            _ => {}
        }
        if c.limit.as_ref().is_some_and(|l| !l.points.is_positive()) {
            return Err(CampaignError::NotPositive(c.name.clone(), "limit.points"));
        }
        for level in &c.levels {
            let known = program
                .levels
                .as_ref()
                .is_some_and(|l| l.tiers.iter().any(|t| t.name == *level));
            if !known {
                return Err(CampaignError::UnknownLevel {
                    name: c.name.clone(),
                    level: level.clone(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{LineKind, VisitStatus};
    use crate::money::Currency;

    const DAY_MS: i64 = 86_400_000;

    // Monday 7 December 2026, 09:30 in Moscow (06:30 UTC).
    const MONDAY_0930: i64 = 1_796_625_000_000;

    fn visit(lines: &[(&str, i64)]) -> VisitEvent {
        VisitEvent {
            company_id: "1".into(),
            record_id: "r".into(),
            version: None,
            status: VisitStatus::Came,
            client: None,
            currency: Currency::Rub,
            lines: lines
                .iter()
                .map(|(item, paid)| VisitLine {
                    item_id: (*item).into(),
                    category_id: None,
                    kind: LineKind::Service,
                    title: (*item).into(),
                    paid_minor: *paid,
                })
                .collect(),
            staff_id: None,
            staff_name: None,
            visit_at_ms: Some(MONDAY_0930),
            needs_refetch: false,
            loyalty_paid: Default::default(),
        }
    }

    fn campaign(reward: CampaignReward) -> Campaign {
        Campaign {
            name: "Утро".into(),
            starts_on: NaiveDate::from_ymd_opt(2026, 12, 1),
            ends_on: NaiveDate::from_ymd_opt(2026, 12, 31),
            weekdays: vec![Weekday::Mon, Weekday::Tue],
            hours: Some([9, 12]),
            items: Vec::new(),
            levels: Vec::new(),
            reward,
            stacks: false,
            limit: None,
        }
    }

    #[test]
    fn in_force_by_the_salons_date_weekday_and_hour() {
        let c = campaign(CampaignReward::Multiplier { percent: 200 });
        assert!(c.in_force_at(MONDAY_0930, 180));
        // 09:30 UTC is 12:30 in Moscow: past the hours.
        assert!(!c.in_force_at(MONDAY_0930 + 3 * 3_600_000, 180));
        // In UTC it is 06:30: before them.
        assert!(!c.in_force_at(MONDAY_0930, 0));
        // Wednesday.
        assert!(!c.in_force_at(MONDAY_0930 + 2 * DAY_MS, 180));
        // Tuesday 5 January 2027: after the last day.
        assert!(!c.in_force_at(MONDAY_0930 + 29 * DAY_MS, 180));
    }

    #[test]
    fn a_multiplier_gives_the_part_above_one_and_an_extra_rate_its_rate() {
        let program = Program::with_cashback(Bps::new(500).unwrap());
        let v = visit(&[("cut", 200_000), ("dye", 100_000)]);
        let double = campaign(CampaignReward::Multiplier { percent: 200 });
        assert_eq!(double.extra(&program, &v, 1).unwrap(), Points(150));
        let mut only_dye = campaign(CampaignReward::ExtraRate {
            rate: Bps::new(1_000).unwrap(),
        });
        only_dye.items = vec![RuleTarget::Item("dye".into())];
        assert_eq!(only_dye.extra(&program, &v, 1).unwrap(), Points(100));
        let fifth = campaign(CampaignReward::NthVisit {
            n: 5,
            points: Points(300),
        });
        assert_eq!(fifth.extra(&program, &v, 4).unwrap(), Points::ZERO);
        assert_eq!(fifth.extra(&program, &v, 5).unwrap(), Points(300));
        let mut no_show = v.clone();
        no_show.status = VisitStatus::NoShow;
        assert_eq!(fifth.extra(&program, &no_show, 5).unwrap(), Points::ZERO);
    }

    #[test]
    fn periods_are_the_salons_day_week_and_month() {
        let h = 3_600_000;
        // Monday 7 December 2026 00:00 in Moscow is 6 December 21:00 UTC.
        let monday = MONDAY_0930 - 9 * h - 30 * 60_000;
        assert_eq!(
            period_bounds(MONDAY_0930, Period::Day, 180),
            Some((monday, monday + DAY_MS))
        );
        assert_eq!(
            period_bounds(MONDAY_0930 + 3 * DAY_MS, Period::Week, 180),
            Some((monday, monday + 7 * DAY_MS))
        );
        let first = monday - 6 * DAY_MS;
        assert_eq!(
            period_bounds(MONDAY_0930, Period::Month, 180),
            Some((first, first + 31 * DAY_MS))
        );
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let mut program = Program::with_cashback(Bps::new(500).unwrap());
        let mut c = campaign(CampaignReward::Multiplier { percent: 200 });
        c.ends_on = NaiveDate::from_ymd_opt(2026, 11, 30);
        program.campaigns = vec![c];
        assert_eq!(
            validate(&program).unwrap_err().to_string(),
            "campaign \"Утро\" ends on 2026-11-30 before it starts on 2026-12-01"
        );
        let mut c = campaign(CampaignReward::Multiplier { percent: 100 });
        c.levels = vec![];
        program.campaigns = vec![c];
        assert!(matches!(
            validate(&program),
            Err(CampaignError::BadMultiplier(_))
        ));
        let mut c = campaign(CampaignReward::Multiplier { percent: 150 });
        c.levels = vec!["Gold".into()];
        program.campaigns = vec![c];
        assert_eq!(
            validate(&program).unwrap_err().to_string(),
            "campaign \"Утро\" is for level \"Gold\", which the program does not have"
        );
        program.campaigns = vec![
            campaign(CampaignReward::Multiplier { percent: 150 }),
            campaign(CampaignReward::Multiplier { percent: 200 }),
        ];
        assert_eq!(
            validate(&program).unwrap_err().to_string(),
            "two campaigns are named \"Утро\""
        );
    }
}
