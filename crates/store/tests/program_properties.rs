//! The program's rules against a model written from their text (issue 12), on both backends:
//! random levels (by paid total or by visits), program versions changed between deliveries,
//! reviews, and random delivery orders of records edited, flipped and repeated. After every step:
//!
//! * the books balance and the client's balance is what the model says;
//! * her level is the model's: up as soon as a visit's measure reaches a threshold, down only at
//!   a review, to what the measure supports then;
//! * each record earns by its final state at the level and program version it was first applied
//!   with — the version in force at the visit's time, the level she had when it first arrived;
//! * with a refund window (that version's `pending_days`), what a record gains is pending until
//!   the window ends and a maturing pass runs; what it loses comes out of its own pending points
//!   first, then out of the balance; the pending total is the model's;
//! * campaigns pay by the rule in force at the visit's time: a multiplier on the days it runs
//!   (in the version of the visit's time), within a daily limit whose use each visit reserves
//!   when it first earns, a bonus on the Nth visit that came, all under a per-visit cap; the
//!   campaigns, ordinal and reservations fixed when the record first earns — and no day's limit
//!   is exceeded;
//! * the salon's custom triggers (issue 18) add to a record's points by its state: a visit
//!   trigger (a least bill, maybe the Nth visit) adds a bonus and an extra rate while its
//!   conditions hold on the record's applied state, read with the ordinal fixed when it first
//!   earned, under the same cap; it fires — its webhook owed — once per record, the first time
//!   they hold, whatever the order, duplicates and flips; a level trigger credits its bonus
//!   each time a level is reached.
//!
//! The model replays the delivery order and shares no rule code with the engine: its thresholds,
//! rates and rounding are written here from the rules' text.
//!
//! 1 000 cases per backend unless `PROPTEST_CASES` says otherwise.

mod common;

use std::collections::HashMap;

use common::{TestDb, salon};
use loyalty_core::audit::Actor;
use loyalty_core::audit::{AuditStore, Plan};
use loyalty_core::campaign::{Campaign, CampaignLimit, CampaignReward, NaiveDate, Period};
use loyalty_core::custom::{Action, Conditions, CustomTrigger, When};
use loyalty_core::event::{ClientRef, LineKind, VisitLine};
use loyalty_core::level::{LevelMeasure, Levels, Tier};
use loyalty_core::{
    Bps, ClientStore, Clock, CrmConnection, CrmEvent, Currency, LedgerStore, LoyaltyEngine,
    ManualClock, PartnerId, PartnerStore, Phone, Points, Program, VisitEvent, VisitStatus,
};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

const DAY: i64 = 86_400_000;
const PHONE: &str = "+79161234567";
const NAMES: [&str; 3] = ["Bronze", "Silver", "Gold"];
/// Days a level holds before its review.
const GRACE_DAYS: i64 = 2;

/// One version of the program as the model sees it: three levels, each a threshold and a rate.
#[derive(Debug, Clone, Copy)]
struct Spec {
    by_visits: bool,
    /// Thresholds of the second and third level (the first is at 0).
    thresholds: [i64; 2],
    rates: [i64; 3],
    /// Days an accrual stays pending.
    pending_days: i64,
    /// A multiplier campaign: the first and last visit day it runs, its percent, and the most
    /// points it may give a client a day.
    double: Option<(i64, i64, i64, Option<i64>)>,
    /// A bonus on the `n`-th visit that came: (n, points).
    bonus: Option<(i64, i64)>,
    /// The most points a visit may earn.
    cap: Option<i64>,
    /// A custom visit trigger: the least bill, the visit it is for (`None`: any), its bonus
    /// and extra rate (basis points).
    trigger: Option<(i64, Option<i64>, i64, i64)>,
    /// A custom trigger's bonus on every level reached.
    level_bonus: Option<i64>,
}

impl Spec {
    /// The highest level whose threshold the measure reaches ("a client rises as soon as a
    /// visit crosses a threshold").
    fn level_for(&self, paid: i64, visits: i64) -> usize {
        let measure = if self.by_visits { visits } else { paid };
        if measure >= self.thresholds[1] {
            2
        } else if measure >= self.thresholds[0] {
            1
        } else {
            0
        }
    }

    /// The program the engine is given for this version, in a case that started at `start`
    /// (visit day `d` is `start + d` days).
    fn program(&self, start: i64) -> Program {
        let tier = |i: usize| Tier {
            name: NAMES[i].into(),
            threshold: if i == 0 { 0 } else { self.thresholds[i - 1] },
            cashback: Bps::new(self.rates[i]).expect("rate"),
            max_redeem_share: Bps::new(5_000).expect("cap"),
        };
        let mut p = Program::with_cashback(Bps::new(100).expect("base"));
        p.pending_days = self.pending_days as u32;
        // The salon's date of visit day d (UTC+3; 719 163 days from 1 January of year 1 to
        // 1 January 1970).
        let date = |d: i64| {
            let local = start + d * DAY + 3 * 3_600_000;
            NaiveDate::from_num_days_from_ce_opt(719_163 + local.div_euclid(DAY) as i32)
        };
        let campaign = |name: &str, reward| Campaign {
            name: name.into(),
            starts_on: None,
            ends_on: None,
            weekdays: Vec::new(),
            hours: None,
            items: Vec::new(),
            levels: Vec::new(),
            reward,
            stacks: false,
            limit: None,
        };
        if let Some((from, to, percent, limit)) = self.double {
            p.campaigns.push(Campaign {
                starts_on: date(from),
                ends_on: date(to),
                limit: limit.map(|points| CampaignLimit {
                    points: Points(points),
                    per: Period::Day,
                }),
                ..campaign(
                    "Double",
                    CampaignReward::Multiplier {
                        percent: percent as u32,
                    },
                )
            });
        }
        if let Some((n, points)) = self.bonus {
            p.campaigns.push(campaign(
                "Bonus",
                CampaignReward::NthVisit {
                    n: n as u32,
                    points: Points(points),
                },
            ));
        }
        p.max_points_per_visit = self.cap.map(Points);
        if let Some((min_paid, n, bonus, rate)) = self.trigger {
            p.custom_triggers.push(CustomTrigger {
                name: "Visit".into(),
                when: When::Visit,
                conditions: Conditions {
                    min_paid_minor: Some(min_paid),
                    visit_number: n.map(|n| n as u32),
                    ..Conditions::default()
                },
                then: vec![
                    Action::Bonus {
                        points: Points(bonus),
                    },
                    Action::ExtraRate {
                        rate: Bps::new(rate).expect("rate"),
                    },
                    Action::Webhook,
                ],
            });
        }
        if let Some(bonus) = self.level_bonus {
            p.custom_triggers.push(CustomTrigger {
                name: "Level".into(),
                when: When::LevelReached,
                conditions: Conditions::default(),
                then: vec![Action::Bonus {
                    points: Points(bonus),
                }],
            });
        }
        p.levels = Some(Levels {
            measure: if self.by_visits {
                LevelMeasure::Visits
            } else {
                LevelMeasure::Paid
            },
            window_days: None,
            grace_days: GRACE_DAYS as u32,
            tiers: (0..3).map(tier).collect(),
        });
        p
    }
}

fn spec(by_visits: bool) -> impl Strategy<Value = Spec> {
    let thresholds = if by_visits {
        (1i64..=3, 1i64..=2).boxed()
    } else {
        (1i64..=1_500_000, 1i64..=1_500_000).boxed()
    };
    let pending = prop_oneof![2 => Just(0i64), 1 => 1i64..=2];
    let double = prop::option::of((
        0i64..=4,
        0i64..=4,
        prop::sample::select(vec![150i64, 200, 300]),
        prop::option::of(1i64..=3_000),
    ))
    .prop_map(|d| d.map(|(a, b, pct, limit)| (a.min(b), a.max(b), pct, limit)));
    let bonus = prop::option::of((1i64..=3, 1i64..=1_000));
    let cap = prop::option::weighted(0.3, 1i64..=3_000);
    let trigger = prop::option::weighted(
        0.6,
        (
            0i64..=800_000,
            prop::option::of(1i64..=3),
            1i64..=500,
            1i64..=1_000,
        ),
    );
    let level_bonus = prop::option::weighted(0.3, 1i64..=300);
    (
        thresholds,
        prop::array::uniform3(0i64..=2_000),
        pending,
        (double, bonus, cap),
        (trigger, level_bonus),
    )
        .prop_map(
            move |(
                (t1, gap),
                rates,
                pending_days,
                (double, bonus, cap),
                (trigger, level_bonus),
            )| {
                Spec {
                    by_visits,
                    thresholds: [t1, t1 + gap],
                    rates,
                    pending_days,
                    double,
                    bonus,
                    cap,
                    trigger,
                    level_bonus,
                }
            },
        )
}

#[derive(Debug, Clone)]
enum Step {
    /// Deliver version `version` (1-based) of record `record`.
    Deliver { record: usize, version: usize },
    /// A new program version, in force from now.
    NewVersion(Spec),
    /// Time passes beyond the grace period and the review runs.
    Review,
    /// A day passes.
    Tomorrow,
    /// The maturing pass runs.
    Mature,
}

#[derive(Debug, Clone)]
struct Case {
    first: Spec,
    /// Each record's visit day (from the case's start) and successive states (came?, paid).
    records: Vec<(i64, Vec<(bool, i64)>)>,
    steps: Vec<Step>,
}

fn case() -> impl Strategy<Value = Case> {
    any::<bool>().prop_flat_map(|by_visits| {
        let history = prop::collection::vec((prop::bool::weighted(0.75), 0i64..=1_000_000), 1..=3);
        let records = prop::collection::vec((0i64..=4, history), 1..=5);
        (spec(by_visits), records).prop_flat_map(move |(first, records)| {
            let delivers: Vec<Step> = records
                .iter()
                .enumerate()
                .flat_map(|(r, (_, h))| {
                    (1..=h.len()).map(move |v| Step::Deliver {
                        record: r,
                        version: v,
                    })
                })
                .collect();
            let dups = prop::collection::vec(prop::sample::select(delivers.clone()), 0..=3);
            let others = prop::collection::vec(
                prop_oneof![
                    spec(by_visits).prop_map(Step::NewVersion),
                    Just(Step::Review),
                    Just(Step::Tomorrow),
                    Just(Step::Mature),
                ],
                0..=6,
            );
            (Just(records), (Just(delivers), dups, others))
                .prop_flat_map(|(records, (mut d, dups, others))| {
                    d.extend(dups);
                    d.extend(others);
                    (Just(records), Just(d).prop_shuffle())
                })
                .prop_map(move |(records, steps)| Case {
                    first,
                    records,
                    steps,
                })
        })
    })
}

/// What the engine should hold, replayed from the rules' text.
struct Model {
    /// (in force from, spec), oldest first.
    versions: Vec<(i64, Spec)>,
    level: usize,
    /// When the level was reached or last confirmed (`None` at the first level).
    since: Option<i64>,
    /// Per record: the newest version applied, and the (version index, level) it was first
    /// applied with.
    applied: HashMap<usize, usize>,
    terms: HashMap<usize, (usize, usize)>,
    /// Per record: the points it holds now.
    accrued: HashMap<usize, i64>,
    /// Per record that earned: its ordinal, and the multiplier's allowance (`Some(None)`: no
    /// limit) and whether the bonus applies, as fixed when it first earned.
    first_earned: HashMap<usize, (i64, Option<Option<i64>>, bool)>,
    /// What each record reserved of the multiplier's daily limit: (record, visit day, points).
    reserved: Vec<(usize, i64, i64)>,
    /// Records whose visit trigger fired, and how many levels were reached.
    fired: std::collections::BTreeSet<usize>,
    levels_reached: usize,
    /// The spendable balance, and the pending lots: (record, matures at, remaining), oldest
    /// first.
    spendable: i64,
    pending: Vec<(usize, i64, i64)>,
}

impl Model {
    /// The version in force at `at`: the newest from then or earlier, else the first.
    fn version_at(&self, at: i64) -> usize {
        self.versions
            .iter()
            .rposition(|(from, _)| *from <= at)
            .unwrap_or(0)
    }

    fn current(&self) -> &Spec {
        &self.versions[self.versions.len() - 1].1
    }

    /// What came: the paid total and the number of records whose applied state came.
    fn measure(&self, case: &Case) -> (i64, i64) {
        self.applied
            .iter()
            .map(|(&r, &v)| case.records[r].1[v - 1])
            .filter(|(came, _)| *came)
            .fold((0, 0), |(p, n), (_, paid)| (p + paid, n + 1))
    }

    /// What a record's applied state is: came, paid, and whether it earns at all (it came and
    /// paid something).
    fn state(&self, case: &Case, r: usize) -> (bool, i64, bool) {
        let (came, paid) = case.records[r].1[self.applied[&r] - 1];
        (came, paid, came && paid > 0)
    }

    /// The record's base points and its multiplier's extra in its applied state, at its terms.
    fn points(&self, case: &Case, r: usize) -> (i64, i64) {
        let (_, paid, earns) = self.state(case, r);
        if !earns {
            return (0, 0);
        }
        let (version, level) = self.terms[&r];
        let spec = &self.versions[version].1;
        let rate = spec.rates[level];
        let base = paid * rate / 1_000_000;
        let extra = spec
            .double
            .map_or(0, |(_, _, pct, _)| paid * rate * (pct - 100) / 100_000_000);
        (base, extra)
    }

    /// Fixes what a record that earns for the first time gets from campaigns: its ordinal
    /// among the visits that came, the multiplier when it runs on the visit's day and gives
    /// something (reserving what the day's limit has left), the bonus when this is its visit.
    fn first_earn(&mut self, case: &Case, r: usize) {
        let (version, _) = self.terms[&r];
        let spec = self.versions[version].1;
        if self.first_earned.contains_key(&r) || !self.state(case, r).2 {
            return;
        }
        if spec.double.is_none() && spec.bonus.is_none() && spec.trigger.is_none() {
            return;
        }
        let ordinal = 1 + self
            .applied
            .keys()
            .filter(|&&o| o != r && self.state(case, o).0)
            .count() as i64;
        let day = case.records[r].0;
        let (_, extra) = self.points(case, r);
        let double = match spec.double {
            Some((from, to, _, limit)) if (from..=to).contains(&day) && extra > 0 => match limit {
                None => Some(None),
                Some(limit) => {
                    let used: i64 = self
                        .reserved
                        .iter()
                        .filter(|(_, d, _)| *d == day)
                        .map(|(_, _, p)| p)
                        .sum();
                    let allowance = extra.min(limit - used);
                    if allowance > 0 {
                        self.reserved.push((r, day, allowance));
                        assert!(used + allowance <= limit, "the model broke its limit");
                        Some(Some(allowance))
                    } else {
                        None
                    }
                }
            },
            _ => None,
        };
        let bonus = spec.bonus.is_some_and(|(n, _)| n == ordinal);
        self.first_earned.insert(r, (ordinal, double, bonus));
    }

    /// Whether the record's version has a visit trigger and its conditions hold on the
    /// applied state (it earns, the bill reaches the trigger's, and it is the trigger's visit
    /// by the ordinal fixed when it first earned); the trigger's points then.
    fn trigger(&self, case: &Case, r: usize) -> Option<i64> {
        let spec = &self.versions[self.terms[&r].0].1;
        let (min_paid, n, bonus, rate) = spec.trigger?;
        let (ordinal, _, _) = self.first_earned.get(&r)?;
        let (_, paid, earns) = self.state(case, r);
        let holds = earns && paid >= min_paid && n.is_none_or(|n| n == *ordinal);
        holds.then(|| bonus + paid * rate / 1_000_000)
    }

    /// What a record earns in its applied state: the paid amount at its terms' rate, rounded
    /// down (one point is one rouble), plus its campaigns within their allowances and its
    /// trigger, under the cap of its version.
    fn earned(&self, case: &Case, r: usize) -> i64 {
        let (base, extra) = self.points(case, r);
        let spec = &self.versions[self.terms[&r].0].1;
        let mut total = base + self.trigger(case, r).unwrap_or(0);
        if let Some((_, double, bonus)) = self.first_earned.get(&r) {
            if let Some(allowance) = double {
                total += allowance.map_or(extra, |a| extra.min(a));
            }
            if *bonus && self.state(case, r).2 {
                total += spec.bonus.map_or(0, |(_, points)| points);
            }
        }
        spec.cap.map_or(total, |cap| total.min(cap))
    }

    /// Moves record `r` to what it earns now: a gain is pending for its version's window (or
    /// spendable at once without one); a loss takes the record's own pending points first.
    fn settle(&mut self, case: &Case, r: usize, now: i64) {
        let target = self.earned(case, r);
        let held = self.accrued.insert(r, target).unwrap_or(0);
        let delta = target - held;
        let days = self.versions[self.terms[&r].0].1.pending_days;
        if delta > 0 && days > 0 {
            self.pending.push((r, now + days * DAY, delta));
        } else if delta > 0 {
            self.spendable += delta;
        } else {
            let mut left = -delta;
            for lot in self.pending.iter_mut().filter(|l| l.0 == r) {
                let take = left.min(lot.2);
                lot.2 -= take;
                left -= take;
            }
            self.spendable -= left;
        }
    }

    /// The maturing pass at `now`.
    fn mature(&mut self, now: i64) {
        for lot in self.pending.iter_mut().filter(|l| l.1 <= now) {
            self.spendable += lot.2;
            lot.2 = 0;
        }
    }

    /// A level reached: the level trigger of the version in force now credits its bonus.
    fn reached(&mut self) {
        if let Some(bonus) = self.current().level_bonus {
            self.spendable += bonus;
            self.levels_reached += 1;
        }
    }

    fn pending_total(&self) -> i64 {
        self.pending.iter().map(|l| l.2).sum()
    }
}

fn event(
    conn: &CrmConnection,
    record: usize,
    version: usize,
    came: bool,
    paid: i64,
    at: i64,
) -> CrmEvent {
    CrmEvent::Visit(VisitEvent {
        company_id: conn.company_id.clone(),
        record_id: format!("rec-{record}"),
        version: Some(version as i64),
        status: if came {
            VisitStatus::Came
        } else {
            VisitStatus::NoShow
        },
        client: Some(ClientRef {
            external_id: None,
            phone: Some(Phone::parse_international(PHONE).expect("phone")),
            name: None,
        }),
        currency: Currency::Rub,
        lines: vec![VisitLine {
            item_id: "svc".into(),
            category_id: None,
            kind: LineKind::Service,
            title: "Окрашивание".into(),
            paid_minor: paid,
        }],
        staff_id: None,
        staff_name: None,
        visit_at_ms: Some(at),
        needs_refetch: false,
        loyalty_paid: Default::default(),
    })
}

async fn run_case(
    db: &TestDb,
    engine: &LoyaltyEngine,
    clock: &ManualClock,
    case: Case,
) -> Result<(), TestCaseError> {
    let store = db.store.as_ref();
    let start = clock.now_ms();
    let (partner, conn) = salon(store, case.first.program(start)).await;
    let p: PartnerId = partner.id;
    store
        .set_plan(p, Plan::Enterprise, &Actor::system(), start)
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut model = Model {
        // The first version is in force for all of the past.
        versions: vec![(0, case.first)],
        level: 0,
        since: None,
        applied: HashMap::new(),
        terms: HashMap::new(),
        accrued: HashMap::new(),
        first_earned: HashMap::new(),
        fired: Default::default(),
        levels_reached: 0,
        reserved: Vec::new(),
        spendable: 0,
        pending: Vec::new(),
    };
    let fail = |e: &dyn std::fmt::Display| TestCaseError::fail(e.to_string());
    for step in &case.steps {
        let now = clock.now_ms();
        match step {
            Step::Deliver { record, version } => {
                let (day, states) = &case.records[*record];
                let (came, paid) = states[version - 1];
                let at = start + day * DAY;
                engine
                    .apply_event(&conn, &event(&conn, *record, *version, came, paid, at))
                    .await
                    .map_err(|e| fail(&e))?;
                // An older version than the one applied is stale; the same one a duplicate.
                let newest = model.applied.get(record).copied().unwrap_or(0);
                if *version > newest {
                    model.applied.insert(*record, *version);
                    if !model.terms.contains_key(record) {
                        let v = model.version_at(at);
                        model.terms.insert(*record, (v, model.level));
                    }
                    model.first_earn(&case, *record);
                    if model.trigger(&case, *record).is_some() {
                        model.fired.insert(*record);
                    }
                    model.settle(&case, *record, now);
                    let (paid, visits) = model.measure(&case);
                    let reach = model.current().level_for(paid, visits);
                    if reach > model.level {
                        model.level = reach;
                        model.since = Some(now);
                        model.reached();
                    }
                }
            }
            Step::NewVersion(spec) => {
                store
                    .set_program(p, &spec.program(start), now, &Actor::system())
                    .await
                    .map_err(|e| fail(&e))?;
                model.versions.push((now, *spec));
            }
            Step::Review => {
                clock.advance_ms((GRACE_DAYS + 1) * DAY);
                let now = clock.now_ms();
                engine.review_levels(p).await.map_err(|e| fail(&e))?;
                if model.level > 0 {
                    let (paid, visits) = model.measure(&case);
                    let was = model.level;
                    model.level = model.current().level_for(paid, visits);
                    model.since = (model.level > 0).then_some(now);
                    if model.level > was {
                        model.reached();
                    }
                }
            }
            Step::Tomorrow => clock.advance_ms(DAY),
            Step::Mature => {
                engine.mature_due(p).await.map_err(|e| fail(&e))?;
                model.mature(now);
            }
        }
        let totals = store.account_totals(p).await.map_err(|e| fail(&e))?;
        prop_assert!(totals.is_balanced(), "unbalanced: {:?}", totals);
        let fires = db
            .store
            .trigger_fires(p, None, 100)
            .await
            .map_err(|e| fail(&e))?;
        let visits: Vec<usize> = fires
            .iter()
            .filter(|f| f.trigger == "Visit")
            .filter_map(|f| f.record_id.as_deref()?.strip_prefix("rec-")?.parse().ok())
            .collect();
        let once: std::collections::BTreeSet<usize> = visits.iter().copied().collect();
        prop_assert_eq!(
            once.len(),
            visits.len(),
            "a record fired twice: {:?}",
            visits
        );
        prop_assert_eq!(&once, &model.fired, "fired after {:?}", step);
        prop_assert!(
            fires
                .iter()
                .filter(|f| f.trigger == "Visit")
                .all(|f| f.webhook)
        );
        let levels = fires.iter().filter(|f| f.trigger == "Level").count();
        prop_assert_eq!(levels, model.levels_reached, "levels after {:?}", step);
        let phone = Phone::parse_international(PHONE).expect("phone");
        let Some(client) = store
            .client_by_phone(p, &phone)
            .await
            .map_err(|e| fail(&e))?
        else {
            prop_assert!(model.applied.is_empty(), "no client after a delivery");
            continue;
        };
        prop_assert_eq!(
            store.balance(p, client.id).await.map_err(|e| fail(&e))?,
            Points(model.spendable),
            "after {:?}",
            step
        );
        prop_assert_eq!(
            store.pending(p, client.id).await.map_err(|e| fail(&e))?,
            Points(model.pending_total()),
            "pending after {:?}",
            step
        );
        let level = client
            .level
            .as_deref()
            .and_then(|n| NAMES.iter().position(|x| *x == n))
            .unwrap_or(0);
        prop_assert_eq!(level, model.level, "level after {:?}", step);
        if model.level > 0 {
            prop_assert_eq!(client.level_since_ms, model.since, "since after {:?}", step);
        }
    }
    Ok(())
}

fn run(db: TestDb, rt: &tokio::runtime::Runtime) {
    let (engine, clock) = db.engine();
    let mut runner = TestRunner::new(common::proptest_config(1000));
    let result = runner.run(&case(), |case| {
        rt.block_on(run_case(&db, &engine, &clock, case))
    });
    rt.block_on(db.finish());
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn sqlite_levels_and_versions_follow_the_rules_text() {
    let rt = common::runtime();
    let db = rt.block_on(TestDb::sqlite());
    run(db, &rt);
}

#[test]
fn postgres_levels_and_versions_follow_the_rules_text() {
    let rt = common::runtime();
    let db = rt.block_on(TestDb::postgres());
    run(db, &rt);
}
