//! Custom triggers (issue 18, the Enterprise plan): rules a salon writes — *when* an event
//! happens, *if* its conditions hold, *then* its actions run.
//!
//! The rules, pinned by the engine's tests and the property test's model:
//!
//! * **Events**: a visit that came (`visit`; the Nth visit, a service or category bought, a
//!   bill over an amount are its conditions), a birthday (`birthday`, on the day the program's
//!   birthday points are granted), a level reached (`level_reached`), a referral rewarded
//!   (`referral_rewarded`, for the client who invited).
//! * **Conditions** of a visit read its current state (what was paid, past the part paid with
//!   points or certificates; its lines; its weekday and hour in the salon's time) and what the
//!   record was first applied with as a visit that came ([`crate::campaign::Earned`]: the
//!   client's level, the visit's ordinal, the days since her visit before it) — so a delivery
//!   repeated or reordered reads the same facts. A visit below the program's minimum bill earns
//!   nothing, from a trigger either.
//! * **Points** (a bonus, an extra rate on the visit's lines, or on the lines the trigger's
//!   `items` name) are part of the visit's own points: they follow its state — a no-show takes
//!   them back, a corrected bill moves them — and the program's `max_points_per_visit` caps the
//!   whole. For the other events a bonus is a ledger entry keyed by the trigger and the event.
//! * **Side effects** (a Telegram message, an outbound webhook) happen once per trigger and
//!   event: the first time its conditions hold, recorded under `(trigger, event key)` in the
//!   transaction that applies the event. A message is marketing: it goes out through the
//!   reminders' delivery policy (consent, quiet hours, caps, the control group) like every
//!   reminder.

mod preview;
mod tx;

pub use preview::{Preview, PreviewError, preview};
pub use tx::{Fired, TriggerMessage, TriggerTx};

use serde::{Deserialize, Serialize};

use crate::campaign::{Weekday, line_in, qualifying_share, rate_points, weekday_and_hour};
use crate::engage::Texts;
use crate::event::{VisitEvent, VisitLine};
use crate::model::{Program, RuleTarget};
use crate::money::{Bps, MoneyError, Points};

/// The most points one trigger may give at once.
pub const MAX_BONUS: i64 = 1_000_000;

/// What a trigger waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// A visit that came.
    Visit,
    /// The client's birthday (when the program grants birthday points).
    Birthday,
    /// The client reached a level (`conditions.levels`: which ones).
    LevelReached,
    /// A friend the client invited came: the referral paid its bonus.
    ReferralRewarded,
}

impl When {
    pub fn as_str(self) -> &'static str {
        match self {
            When::Visit => "visit",
            When::Birthday => "birthday",
            When::LevelReached => "level_reached",
            When::ReferralRewarded => "referral_rewarded",
        }
    }
}

/// What must hold. Empty: always.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// The bill, past the part paid with points or certificates, at least this (minor units).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_paid_minor: Option<i64>,
    /// One of the visit's lines is one of these services, goods or categories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<RuleTarget>,
    /// The visit's day, in the salon's time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekdays: Vec<Weekday>,
    /// `[from, to)`: the visit's hour, in the salon's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<[u8; 2]>,
    /// The client's level (for `level_reached`: the level reached).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<String>,
    /// Exactly the client's `n`-th visit that came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visit_number: Option<u32>,
    /// At least her `n`-th visit that came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_visits: Option<u32>,
    /// At least this many days since her visit before this one (a first visit has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_days_since_last_visit: Option<u32>,
}

/// What a trigger does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Points on top.
    Bonus { points: Points },
    /// An extra rate on the visit's paid amount (on the lines `conditions.items` names, when
    /// it names some).
    ExtraRate { rate: Bps },
    /// A Telegram message: `{name}`, `{balance}`, `{level}`, `{master}`, `{salon}` are filled
    /// in, and the salon's booking link is its button.
    Message { text: Texts },
    /// A `trigger.fired` event to the salon's webhook endpoints.
    Webhook,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomTrigger {
    /// Unique within the program: what fired is recorded by it.
    pub name: String,
    pub when: When,
    #[serde(default)]
    pub conditions: Conditions,
    pub then: Vec<Action>,
}

/// What a trigger's settings get wrong, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("custom_triggers[{index}].{field}: {problem}")]
pub struct CustomError {
    pub index: usize,
    pub field: String,
    pub problem: String,
}

/// What a visit's record was first applied with, as a trigger reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VisitContext<'a> {
    pub level: Option<&'a str>,
    /// Its ordinal among the client's visits that came.
    pub ordinal: i64,
    /// Days from her visit before it; `None` for a first visit.
    pub since_last_days: Option<i64>,
}

/// One condition, as a preview tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub condition: &'static str,
    pub holds: bool,
    pub detail: String,
}

impl CustomTrigger {
    /// Whether it needs the visit's ordinal.
    pub fn counts_visits(&self) -> bool {
        self.conditions.visit_number.is_some() || self.conditions.min_visits.is_some()
    }

    /// Whether it needs the days since the visit before.
    pub fn reads_gap(&self) -> bool {
        self.conditions.min_days_since_last_visit.is_some()
    }

    /// Whether it sends anything (a message or a webhook) when it fires.
    pub fn has_side_effects(&self) -> bool {
        self.then
            .iter()
            .any(|a| matches!(a, Action::Message { .. } | Action::Webhook))
    }

    /// The message it sends, if any.
    pub fn message(&self) -> Option<&Texts> {
        self.then.iter().find_map(|a| match a {
            Action::Message { text } => Some(text),
            _ => None,
        })
    }

    /// Whether it sends a webhook.
    pub fn webhook(&self) -> bool {
        self.then.iter().any(|a| matches!(a, Action::Webhook))
    }

    /// Its bonus (the sum of its bonus actions).
    pub fn bonus(&self) -> Points {
        self.then
            .iter()
            .map(|a| match a {
                Action::Bonus { points } => *points,
                _ => Points::ZERO,
            })
            .fold(Points::ZERO, |a, b| a + b)
    }

    fn covers(&self, line: &VisitLine) -> bool {
        line_in(&self.conditions.items, line)
    }

    /// Each condition on a visit in its current state, in order: `program` is the record's,
    /// at its level. The visit earning at all comes first.
    pub fn visit_checks(
        &self,
        program: &Program,
        visit: &VisitEvent,
        cx: VisitContext<'_>,
    ) -> Result<Vec<Check>, MoneyError> {
        let c = &self.conditions;
        let share = qualifying_share(program, visit)?;
        let mut out = vec![Check {
            condition: "earns",
            holds: share.is_some(),
            detail: format!(
                "the visit is {} and its bill counts toward points",
                visit.status
            ),
        }];
        if let Some(min) = c.min_paid_minor {
            let rest = share.map_or(0, |(rest, _)| rest);
            out.push(Check {
                condition: "min_paid_minor",
                holds: rest >= min,
                detail: format!("paid {rest} (minor units), at least {min} asked"),
            });
        }
        if !c.items.is_empty() {
            let hit: Vec<&str> = visit
                .lines
                .iter()
                .filter(|l| self.covers(l))
                .map(|l| l.title.as_str())
                .collect();
            out.push(Check {
                condition: "items",
                holds: !hit.is_empty(),
                detail: if hit.is_empty() {
                    "no line is one of the items".to_owned()
                } else {
                    format!("bought {}", hit.join(", "))
                },
            });
        }
        let when = visit
            .visit_at_ms
            .and_then(|at| weekday_and_hour(at, program.utc_offset_minutes));
        if !c.weekdays.is_empty() {
            out.push(Check {
                condition: "weekdays",
                holds: when.is_some_and(|(d, _)| c.weekdays.contains(&d)),
                detail: match when {
                    Some((d, _)) => format!("on {d:?}"),
                    None => "the visit has no time".to_owned(),
                },
            });
        }
        if let Some([from, to]) = c.hours {
            out.push(Check {
                condition: "hours",
                holds: when.is_some_and(|(_, h)| (u32::from(from)..u32::from(to)).contains(&h)),
                detail: match when {
                    Some((_, h)) => format!("at {h}:00–{h}:59, {from}–{to} asked"),
                    None => "the visit has no time".to_owned(),
                },
            });
        }
        if !c.levels.is_empty() {
            let standing = program.level_of(cx.level).map(|(_, n)| n);
            out.push(Check {
                condition: "levels",
                holds: standing.is_some_and(|n| c.levels.iter().any(|l| l == n)),
                detail: format!("at level {}", standing.unwrap_or("none")),
            });
        }
        if let Some(n) = c.visit_number {
            out.push(Check {
                condition: "visit_number",
                holds: cx.ordinal == i64::from(n),
                detail: format!("visit number {}, {n} asked", cx.ordinal),
            });
        }
        if let Some(n) = c.min_visits {
            out.push(Check {
                condition: "min_visits",
                holds: cx.ordinal >= i64::from(n),
                detail: format!("visit number {}, at least {n} asked", cx.ordinal),
            });
        }
        if let Some(d) = c.min_days_since_last_visit {
            out.push(Check {
                condition: "min_days_since_last_visit",
                holds: cx.since_last_days.is_some_and(|s| s >= i64::from(d)),
                detail: match cx.since_last_days {
                    Some(s) => format!("{s} days since the visit before, at least {d} asked"),
                    None => "no visit before".to_owned(),
                },
            });
        }
        Ok(out)
    }

    /// Whether it fires for a visit in its current state.
    pub fn holds_for_visit(
        &self,
        program: &Program,
        visit: &VisitEvent,
        cx: VisitContext<'_>,
    ) -> Result<bool, MoneyError> {
        Ok(self.when == When::Visit
            && self
                .visit_checks(program, visit, cx)?
                .iter()
                .all(|c| c.holds))
    }

    /// What it adds to a visit's points in its current state (zero when it does not hold).
    pub fn visit_points(
        &self,
        program: &Program,
        visit: &VisitEvent,
        cx: VisitContext<'_>,
    ) -> Result<Points, MoneyError> {
        if !self.holds_for_visit(program, visit, cx)? {
            return Ok(Points::ZERO);
        }
        let mut total = Points::ZERO;
        for a in &self.then {
            total += match a {
                Action::Bonus { points } => *points,
                Action::ExtraRate { rate } => {
                    rate_points(program, visit, |l| self.covers(l), *rate)?
                }
                _ => Points::ZERO,
            };
        }
        Ok(total)
    }

    /// Whether it fires for a level reached (`level`) or another event of a client at `level`.
    pub fn holds_for(&self, when: When, level: Option<&str>) -> bool {
        self.when == when
            && (self.conditions.levels.is_empty()
                || level.is_some_and(|l| self.conditions.levels.iter().any(|x| x == l)))
    }
}

/// What the visit triggers of `program` add to a visit's points in its current state.
pub fn visit_points(
    program: &Program,
    visit: &VisitEvent,
    cx: VisitContext<'_>,
) -> Result<Points, MoneyError> {
    let mut total = Points::ZERO;
    for t in &program.custom_triggers {
        total += t.visit_points(program, visit, cx)?;
    }
    Ok(total)
}

/// Whether a partner on `plan` may save `new` over `current`: custom triggers are the
/// Enterprise plan's; a salon off it keeps the ones it had (run by none) and may change the
/// rest of its program, but not add or change a trigger.
pub fn check_plan(
    partner: crate::model::PartnerId,
    plan: crate::audit::Plan,
    new: &Program,
    current: &Program,
) -> Result<(), crate::audit::NotInPlan> {
    if new.custom_triggers.is_empty() || current.custom_triggers == new.custom_triggers {
        return Ok(());
    }
    plan.check(partner, crate::audit::Capability::CustomTriggers)
}

/// Checks a program's custom triggers.
pub fn validate(program: &Program) -> Result<(), CustomError> {
    for (index, t) in program.custom_triggers.iter().enumerate() {
        let err = |field: &str, problem: &str| CustomError {
            index,
            field: field.to_owned(),
            problem: problem.to_owned(),
        };
        let name = t.name.trim();
        if name.is_empty() {
            return Err(err("name", "a trigger needs a name"));
        }
        if name.len() > 100 {
            return Err(err("name", "at most 100 characters"));
        }
        if program.custom_triggers[..index]
            .iter()
            .any(|o| o.name.trim() == name)
        {
            return Err(err("name", &format!("two triggers are named {name:?}")));
        }
        let c = &t.conditions;
        if t.when != When::Visit {
            let visit_only = [
                ("min_paid_minor", c.min_paid_minor.is_some()),
                ("items", !c.items.is_empty()),
                ("weekdays", !c.weekdays.is_empty()),
                ("hours", c.hours.is_some()),
                ("visit_number", c.visit_number.is_some()),
                ("min_visits", c.min_visits.is_some()),
                (
                    "min_days_since_last_visit",
                    c.min_days_since_last_visit.is_some(),
                ),
            ];
            if let Some((field, _)) = visit_only.iter().find(|(_, set)| *set) {
                return Err(err(
                    &format!("conditions.{field}"),
                    &format!("only a visit has it, not {}", t.when.as_str()),
                ));
            }
        }
        if c.min_paid_minor.is_some_and(|m| m < 0) {
            return Err(err("conditions.min_paid_minor", "must not be negative"));
        }
        if let Some([from, to]) = c.hours
            && !(from < to && to <= 24)
        {
            return Err(err(
                "conditions.hours",
                "[from, to) with 0 <= from < to <= 24",
            ));
        }
        if c.visit_number == Some(0) || c.min_visits == Some(0) {
            return Err(err("conditions", "a visit's number starts at 1"));
        }
        for level in &c.levels {
            let known = program
                .levels
                .as_ref()
                .is_some_and(|l| l.tiers.iter().any(|x| x.name == *level));
            if !known {
                return Err(err(
                    "conditions.levels",
                    &format!("the program has no level {level:?}"),
                ));
            }
        }
        if t.when == When::Birthday && program.birthday.is_none() {
            return Err(err(
                "when",
                "a birthday trigger runs with the program's birthday points; set `birthday`",
            ));
        }
        if t.when == When::ReferralRewarded && program.referral.is_none() {
            return Err(err(
                "when",
                "a referral trigger needs the program's `referral`",
            ));
        }
        if t.when == When::LevelReached && program.levels.is_none() {
            return Err(err("when", "a level trigger needs the program's `levels`"));
        }
        if t.then.is_empty() {
            return Err(err("then", "a trigger needs at least one action"));
        }
        for (i, a) in t.then.iter().enumerate() {
            let field = format!("then[{i}]");
            match a {
                Action::Bonus { points } if !(1..=MAX_BONUS).contains(&points.value()) => {
                    return Err(err(&format!("{field}.points"), &format!("1..={MAX_BONUS}")));
                }
                Action::ExtraRate { .. } if t.when != When::Visit => {
                    return Err(err(&field, "an extra rate is only for a visit"));
                }
                Action::ExtraRate { rate } if rate.value() == 0 => {
                    return Err(err(&format!("{field}.rate"), "must be more than 0"));
                }
                Action::Message { text } if text.ru.trim().is_empty() => {
                    return Err(err(&format!("{field}.text.ru"), "the message is empty"));
                }
                Action::Message { .. } if program.engage.is_none() => {
                    return Err(err(
                        &field,
                        "a message is marketing and goes out by the reminders' delivery \
                         policy: set `engage` (consent, send window, caps, control group)",
                    ));
                }
                _ => {}
            }
            if t.then[..i]
                .iter()
                .any(|o| std::mem::discriminant(o) == std::mem::discriminant(a))
            {
                return Err(err(&field, "one action of each kind"));
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

    // Monday 7 December 2026, 09:30 in Moscow.
    const MONDAY_0930: i64 = 1_796_625_000_000;

    fn visit(paid: i64) -> VisitEvent {
        VisitEvent {
            company_id: "1".into(),
            record_id: "r".into(),
            version: None,
            status: VisitStatus::Came,
            client: None,
            currency: Currency::Rub,
            lines: vec![
                VisitLine {
                    item_id: "cut".into(),
                    category_id: Some("hair".into()),
                    kind: LineKind::Service,
                    title: "Стрижка".into(),
                    paid_minor: paid,
                },
                VisitLine {
                    item_id: "wax".into(),
                    category_id: None,
                    kind: LineKind::Good,
                    title: "Воск".into(),
                    paid_minor: 50_000,
                },
            ],
            staff_id: None,
            staff_name: None,
            visit_at_ms: Some(MONDAY_0930),
            needs_refetch: false,
            loyalty_paid: Default::default(),
        }
    }

    fn trigger(conditions: Conditions, then: Vec<Action>) -> CustomTrigger {
        CustomTrigger {
            name: "t".into(),
            when: When::Visit,
            conditions,
            then,
        }
    }

    #[test]
    fn a_visit_trigger_reads_the_bill_lines_time_and_ordinal() {
        let program = Program::with_cashback(Bps::new(500).unwrap());
        let t = trigger(
            Conditions {
                min_paid_minor: Some(200_000),
                items: vec![RuleTarget::Category("hair".into())],
                weekdays: vec![Weekday::Mon],
                hours: Some([9, 12]),
                visit_number: Some(3),
                ..Conditions::default()
            },
            vec![
                Action::Bonus {
                    points: Points(100),
                },
                Action::ExtraRate {
                    rate: Bps::new(1_000).unwrap(),
                },
            ],
        );
        let third = VisitContext {
            ordinal: 3,
            ..VisitContext::default()
        };
        // 100 bonus + 10 % of the hair line (2 000 ₽) = 300 points.
        assert_eq!(
            t.visit_points(&program, &visit(200_000), third).unwrap(),
            Points(300)
        );
        // The bill is 1 500 + 500 = 2 000 ₽ in all: enough; but the 2nd visit is not the 3rd.
        let second = VisitContext {
            ordinal: 2,
            ..third
        };
        assert_eq!(
            t.visit_points(&program, &visit(150_000), second).unwrap(),
            Points::ZERO
        );
        let mut no_show = visit(200_000);
        no_show.status = VisitStatus::NoShow;
        assert_eq!(
            t.visit_points(&program, &no_show, third).unwrap(),
            Points::ZERO
        );
        let mut late = visit(200_000);
        late.visit_at_ms = Some(MONDAY_0930 + 3 * 3_600_000);
        let checks = t.visit_checks(&program, &late, third).unwrap();
        let failed: Vec<_> = checks.iter().filter(|c| !c.holds).collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].condition, "hours");
    }

    #[test]
    fn days_since_the_visit_before_and_a_first_visit() {
        let program = Program::with_cashback(Bps::new(500).unwrap());
        let t = trigger(
            Conditions {
                min_days_since_last_visit: Some(60),
                ..Conditions::default()
            },
            vec![Action::Bonus {
                points: Points(500),
            }],
        );
        let back = VisitContext {
            ordinal: 4,
            since_last_days: Some(75),
            level: None,
        };
        assert_eq!(
            t.visit_points(&program, &visit(100_000), back).unwrap(),
            Points(500)
        );
        let first = VisitContext {
            ordinal: 1,
            since_last_days: None,
            level: None,
        };
        assert_eq!(
            t.visit_points(&program, &visit(100_000), first).unwrap(),
            Points::ZERO
        );
    }

    #[test]
    fn settings_that_cannot_work_are_refused_naming_the_field() {
        let mut program = Program::with_cashback(Bps::new(500).unwrap());
        let mut t = trigger(
            Conditions {
                items: vec![RuleTarget::Item("cut".into())],
                ..Conditions::default()
            },
            vec![Action::Webhook],
        );
        t.when = When::ReferralRewarded;
        program.custom_triggers = vec![t];
        assert_eq!(
            validate(&program).unwrap_err().to_string(),
            "custom_triggers[0].conditions.items: only a visit has it, not referral_rewarded"
        );
        program.custom_triggers = vec![trigger(
            Conditions::default(),
            vec![Action::Message {
                text: Texts {
                    ru: "Спасибо, {name}!".into(),
                    en: None,
                },
            }],
        )];
        assert_eq!(
            validate(&program).unwrap_err().field,
            "then[0]",
            "a message without the delivery policy"
        );
        program.custom_triggers = vec![trigger(
            Conditions::default(),
            vec![Action::Bonus { points: Points(0) }],
        )];
        assert_eq!(
            validate(&program).unwrap_err().to_string(),
            "custom_triggers[0].then[0].points: 1..=1000000"
        );
        program.custom_triggers = vec![
            trigger(Conditions::default(), vec![Action::Webhook]),
            trigger(Conditions::default(), vec![Action::Webhook]),
        ];
        assert_eq!(
            validate(&program).unwrap_err().to_string(),
            "custom_triggers[1].name: two triggers are named \"t\""
        );
        program.custom_triggers = vec![trigger(
            Conditions {
                levels: vec!["Gold".into()],
                ..Conditions::default()
            },
            vec![Action::Webhook],
        )];
        assert_eq!(
            validate(&program).unwrap_err().to_string(),
            "custom_triggers[0].conditions.levels: the program has no level \"Gold\""
        );
    }

    #[test]
    fn a_trigger_reads_from_json_and_refuses_unknown_fields() {
        let t: CustomTrigger = serde_json::from_str(
            r#"{"name": "Пятый визит", "when": "visit",
                "conditions": {"visit_number": 5},
                "then": [{"kind": "bonus", "points": 500}, {"kind": "webhook"}]}"#,
        )
        .unwrap();
        assert_eq!(t.bonus(), Points(500));
        assert!(t.webhook() && t.counts_visits() && !t.reads_gap());
        assert!(
            serde_json::from_str::<CustomTrigger>(
                r#"{"name": "x", "when": "visit", "conditions": {"paid": 1}, "then": []}"#
            )
            .is_err()
        );
    }
}
