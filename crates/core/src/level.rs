//! Levels (tiers): an ordered list per program, each raising the cashback and the share of a bill
//! points may pay, reached by a qualifying measure over a rolling window or all time.
//!
//! The rules, pinned by the engine's tests:
//!
//! * **Rising** is immediate: when a visit is applied and the client's measure (after that visit)
//!   supports a higher level, she rises at once and is told. The visit that crosses the threshold
//!   earns at the level she had when it was first applied; the next visit earns at the new one.
//! * **Falling** happens only at a review, `grace_days` after the level was reached or last
//!   confirmed. A reversal or a late delivery that takes the measure below a threshold changes
//!   nothing until then. At the review she takes the level her measure then supports (she is
//!   told when that is lower), and the grace period starts again.
//! * A level **set by hand** is a floor: neither a review nor anything else takes her below it.
//! * A record's level is **fixed when it is first applied** to a client and kept with the record
//!   ([`Terms`]): a re-delivery, an edit or a flip computes with the level it was first given.
//! * The first level's threshold is 0: everyone is at least there. Its cashback and cap replace
//!   the program's own while levels are on; item rules still override a line's rate.

use serde::{Deserialize, Serialize};

use crate::money::Bps;

/// What levels are reached by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LevelMeasure {
    /// The paid total (minor units) of visits that came.
    Paid,
    /// The number of visits that came.
    Visits,
    /// The number of effective referrals: friends whose first visit came (see
    /// [`crate::referral`]), by that visit's time.
    Referrals,
}

impl LevelMeasure {
    pub fn as_str(self) -> &'static str {
        match self {
            LevelMeasure::Paid => "paid",
            LevelMeasure::Visits => "visits",
            LevelMeasure::Referrals => "referrals",
        }
    }
}

/// One level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub name: String,
    /// The measure from which the level is reached: minor units for `paid`, a count for
    /// `visits`.
    pub threshold: i64,
    /// Cashback on lines no item rule covers.
    pub cashback: Bps,
    /// The largest share of a bill points may pay at this level.
    pub max_redeem_share: Bps,
}

/// A program's levels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Levels {
    pub measure: LevelMeasure,
    /// The rolling window the measure counts, in days; `None`: all time.
    #[serde(default)]
    pub window_days: Option<u32>,
    /// Days a level holds before it is reviewed for a fall.
    #[serde(default = "default_grace_days")]
    pub grace_days: u32,
    /// Ordered by threshold, the first at 0.
    pub tiers: Vec<Tier>,
}

fn default_grace_days() -> u32 {
    365
}

const DAY_MS: i64 = 86_400_000;

/// What a program's level list gets wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LevelError {
    #[error("levels need at least one level")]
    NoTiers,
    #[error("the first level ({0}) must start at 0: everyone is at least there")]
    FirstNotZero(String),
    #[error("level {name} starts at {threshold}, not above the level before it ({previous})")]
    OutOfOrder {
        name: String,
        threshold: i64,
        previous: i64,
    },
    #[error("a level needs a name")]
    NoName,
    #[error("two levels are named {0}")]
    DuplicateName(String),
    #[error("no level is named {0}")]
    Unknown(String),
}

/// A client's measure: what came, over the program's window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Measure {
    pub paid_minor: i64,
    pub visits: i64,
    /// Effective referrals; counted where a referral can change it (a friend's visit, the
    /// review, the level's view), zero in a visit's own summary.
    #[serde(default)]
    pub referrals: i64,
}

impl Levels {
    pub fn validate(&self) -> Result<(), LevelError> {
        let first = self.tiers.first().ok_or(LevelError::NoTiers)?;
        if first.threshold != 0 {
            return Err(LevelError::FirstNotZero(first.name.clone()));
        }
        for (i, t) in self.tiers.iter().enumerate() {
            if t.name.trim().is_empty() {
                return Err(LevelError::NoName);
            }
            if self.tiers[..i].iter().any(|o| o.name == t.name) {
                return Err(LevelError::DuplicateName(t.name.clone()));
            }
            if let Some(prev) = i.checked_sub(1).map(|p| &self.tiers[p])
                && t.threshold <= prev.threshold
            {
                return Err(LevelError::OutOfOrder {
                    name: t.name.clone(),
                    threshold: t.threshold,
                    previous: prev.threshold,
                });
            }
        }
        Ok(())
    }

    /// The position of the level named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.tiers.iter().position(|t| t.name == name)
    }

    /// The level named `name`, or the error that names it.
    pub fn find(&self, name: &str) -> Result<usize, LevelError> {
        self.index_of(name)
            .ok_or_else(|| LevelError::Unknown(name.to_owned()))
    }

    /// The measure's value in the program's unit.
    pub fn value(&self, m: Measure) -> i64 {
        match self.measure {
            LevelMeasure::Paid => m.paid_minor,
            LevelMeasure::Visits => m.visits,
            LevelMeasure::Referrals => m.referrals,
        }
    }

    /// The highest level the measure reaches.
    pub fn supported(&self, m: Measure) -> usize {
        let v = self.value(m);
        self.tiers
            .iter()
            .rposition(|t| t.threshold <= v)
            .unwrap_or(0)
    }

    /// Where the window starts at `now_ms`: visits at or after it count.
    pub fn window_from(&self, now_ms: i64) -> i64 {
        match self.window_days {
            Some(days) => now_ms.saturating_sub(i64::from(days) * DAY_MS),
            None => i64::MIN,
        }
    }

    /// How long a level holds before its review.
    pub fn grace_ms(&self) -> i64 {
        i64::from(self.grace_days) * DAY_MS
    }

    /// The level a client stands at: the stored one (by name), the base level when none is
    /// stored or its name is no longer in the list.
    pub fn standing(&self, stored: Option<&str>) -> usize {
        stored.and_then(|n| self.index_of(n)).unwrap_or(0)
    }
}

/// What the next level needs, for the bot and the CLI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub level: String,
    pub cashback: Bps,
    pub max_redeem_share: Bps,
    pub measure: LevelMeasure,
    /// The measure now, in the program's unit.
    pub value: i64,
    /// The next level and how much more of the measure reaches it.
    pub next: Option<(String, i64)>,
}

impl Progress {
    pub fn of(levels: &Levels, level: usize, m: Measure) -> Progress {
        let tier = &levels.tiers[level.min(levels.tiers.len() - 1)];
        let value = levels.value(m);
        let next = levels
            .tiers
            .get(level + 1)
            .map(|t| (t.name.clone(), (t.threshold - value).max(0)));
        Progress {
            level: tier.name.clone(),
            cashback: tier.cashback,
            max_redeem_share: tier.max_redeem_share,
            measure: levels.measure,
            value,
            next,
        }
    }
}

/// What a record was given when it was first applied to a client, kept with it so every later
/// delivery of the record computes the same target: the program's version in force at the
/// visit's time and the client's level then.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Terms {
    /// The program version (see [`crate::model::ProgramVersion`]).
    pub version: i64,
    /// The level's name, when the program had levels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// Fixed when the record is first applied as a visit that came: its ordinal, campaigns and
    /// their allowances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earned: Option<crate::campaign::Earned>,
}

/// Why a client's level changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LevelReason {
    /// A visit took the measure over a threshold.
    Rise,
    /// The review after the grace period.
    Review,
    /// Staff set it by hand (a floor).
    Hand,
}

impl LevelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LevelReason::Rise => "rise",
            LevelReason::Review => "review",
            LevelReason::Hand => "hand",
        }
    }

    pub fn parse(s: &str) -> Option<LevelReason> {
        [LevelReason::Rise, LevelReason::Review, LevelReason::Hand]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bps(v: i64) -> Bps {
        Bps::new(v).unwrap()
    }

    fn salon() -> Levels {
        Levels {
            measure: LevelMeasure::Paid,
            window_days: Some(365),
            grace_days: 90,
            tiers: vec![
                Tier {
                    name: "Base".into(),
                    threshold: 0,
                    cashback: bps(300),
                    max_redeem_share: bps(1_000),
                },
                Tier {
                    name: "Silver".into(),
                    threshold: 3_000_000,
                    cashback: bps(700),
                    max_redeem_share: bps(2_000),
                },
                Tier {
                    name: "Gold".into(),
                    threshold: 10_000_000,
                    cashback: bps(1_500),
                    max_redeem_share: bps(3_000),
                },
            ],
        }
    }

    #[test]
    fn a_threshold_is_reached_at_exactly_its_value() {
        let l = salon();
        let at = |paid| {
            l.supported(Measure {
                paid_minor: paid,
                ..Measure::default()
            })
        };
        assert_eq!(at(0), 0);
        assert_eq!(at(2_999_999), 0);
        assert_eq!(at(3_000_000), 1);
        assert_eq!(at(10_000_000), 2);
        assert_eq!(at(i64::MAX), 2);
    }

    #[test]
    fn lists_out_of_order_or_without_a_base_are_refused() {
        let mut l = salon();
        assert_eq!(l.validate(), Ok(()));
        l.tiers[2].threshold = 3_000_000;
        assert!(matches!(l.validate(), Err(LevelError::OutOfOrder { .. })));
        let mut l = salon();
        l.tiers[0].threshold = 1;
        assert_eq!(
            l.validate(),
            Err(LevelError::FirstNotZero("Base".to_owned()))
        );
        let mut l = salon();
        l.tiers[1].name = "Base".into();
        assert_eq!(
            l.validate(),
            Err(LevelError::DuplicateName("Base".to_owned()))
        );
        l.tiers.clear();
        assert_eq!(l.validate(), Err(LevelError::NoTiers));
    }

    #[test]
    fn progress_names_what_the_next_level_needs() {
        let l = salon();
        let p = Progress::of(
            &l,
            0,
            Measure {
                paid_minor: 2_500_000,
                visits: 4,
                referrals: 0,
            },
        );
        assert_eq!(p.next, Some(("Silver".to_owned(), 500_000)));
        let top = Progress::of(&l, 2, Measure::default());
        assert_eq!(top.next, None);
        assert_eq!(top.level, "Gold");
    }

    #[test]
    fn an_unknown_stored_level_stands_at_the_base() {
        let l = salon();
        assert_eq!(l.standing(Some("Silver")), 1);
        assert_eq!(l.standing(Some("Platinum")), 0);
        assert_eq!(l.standing(None), 0);
    }
}
