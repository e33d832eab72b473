//! Reminders' scans on both backends, over random salons, clocks, time zones and settings
//! (issue 13): scans run one after another, two at once (each under the salon's lease, as
//! `serve` runs them) and cut off at random points; clients come back, stop offers and opt in
//! again between them. After every step, every recorded reminder:
//!
//! * went out (or was held out) inside the send window in the salon's zone;
//! * kept the 7- and 30-day caps, counted with everything recorded for the client before it;
//! * was sent only to a client with a chat and consent at that moment, never after "Stop
//!   offers", and never to the control group (held out ones are exactly the control group);
//! * is the only one of its (client, trigger, cycle);
//!
//! and at the end a clean scan in the window leaves nothing due unrecorded: one more records
//! nothing. `PROPTEST_CASES` cases per backend (20 by default: each case is a salon of its own).

mod common;

use std::time::Duration;

use common::{TestDb, by_phone, five_percent, salon, visit};
use loyalty_core::engage::{Caps, Engagement, SendWindow, TriggerRule, TriggerSetting};
use loyalty_core::{
    ChatStore, ClientStore, Clock, CrmEvent, PartnerId, Phone, Points, TelegramChat, VisitStatus,
};
use loyalty_engage::scan::{Salon, scan};
use loyalty_engage::store::{ConsentKind, EngageStore};
use loyalty_engage::uplift::in_control;
use loyalty_engage::window::open_at;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

const DAY: i64 = 86_400_000;
const LEASE_MS: i64 = 600_000;
const ZONES: [&str; 4] = [
    "Europe/Kaliningrad",
    "Europe/Moscow",
    "Asia/Novosibirsk",
    "Asia/Kamchatka",
];

#[derive(Debug, Clone)]
enum Step {
    Scan(u32),
    TwoAtOnce(u32),
    CutOff(u32, u64),
    Visit(usize),
    Stop(usize),
    OptIn(usize),
}

#[derive(Debug, Clone)]
struct Case {
    zone: usize,
    window: (u8, u8),
    caps: (u32, u32),
    holdout: u8,
    triggers: Vec<usize>,
    /// Per client: days between visits (newest first), a chat, consent.
    clients: Vec<(Vec<i64>, bool, bool)>,
    steps: Vec<Step>,
}

fn case() -> impl Strategy<Value = Case> {
    let step = prop_oneof![
        4 => (30u32..3_000).prop_map(Step::Scan),
        2 => (30u32..3_000).prop_map(Step::TwoAtOnce),
        2 => (30u32..3_000, 0u64..4_000).prop_map(|(m, us)| Step::CutOff(m, us)),
        1 => (0usize..8).prop_map(Step::Visit),
        1 => (0usize..8).prop_map(Step::Stop),
        1 => (0usize..8).prop_map(Step::OptIn),
    ];
    (
        0usize..ZONES.len(),
        (0u8..12, 13u8..=24),
        (1u32..3, 2u32..5),
        prop_oneof![Just(0u8), Just(30)],
        proptest::sample::subsequence(vec![0usize, 1, 2, 3], 1..=4),
        proptest::collection::vec(
            (
                proptest::collection::vec(10i64..70, 0..5),
                any::<bool>(),
                any::<bool>(),
            ),
            8,
        ),
        proptest::collection::vec(step, 1..25),
    )
        .prop_map(
            |(zone, window, caps, holdout, triggers, clients, steps)| Case {
                zone,
                window,
                caps: (caps.0, caps.1.max(caps.0)),
                holdout,
                triggers,
                clients,
                steps,
            },
        )
}

fn settings(c: &Case) -> Engagement {
    let all = [
        TriggerRule::Inactive {
            days: 20,
            min_balance: Points(0),
        },
        TriggerRule::Due {
            overdue_percent: 25,
            fallback_days: 30,
        },
        TriggerRule::WelcomeBack { days: 10 },
        TriggerRule::Lapsed { below_percent: 20 },
    ];
    Engagement {
        time_zone: ZONES[c.zone].into(),
        send_window: SendWindow {
            from_hour: c.window.0,
            to_hour: c.window.1,
        },
        caps: Caps {
            per_7_days: c.caps.0,
            per_30_days: c.caps.1,
        },
        holdout_percent: c.holdout,
        booking_url: None,
        booking_master_url: None,
        triggers: c
            .triggers
            .iter()
            .map(|i| TriggerSetting {
                rule: all[*i].clone(),
                text: None,
                offer: None,
            })
            .collect(),
        sms: None,
    }
}

/// Unique per salon: a chat linked in an earlier case must not link a later case's client.
fn phone(p: PartnerId, i: usize) -> String {
    format!("+7916{:03}{i:04}", p.0 % 1000)
}

/// A scan as `serve` runs it: under the salon's lease, given back at the end.
async fn leased_scan(db: &TestDb, salon: &Salon<'_>, owner: &str, now: i64) {
    let store = db.store.as_ref();
    if store
        .lease_scan(salon.partner, owner, now, LEASE_MS)
        .await
        .expect("lease")
    {
        scan(store, salon, now, true, None, 0).await.expect("scan");
        store
            .finish_scan(salon.partner, owner, now, "{}")
            .await
            .expect("finish");
    }
}

async fn run_case(db: &TestDb, c: Case) -> Result<(), TestCaseError> {
    let (engine, clock) = db.engine();
    let mut program = five_percent();
    let engage = settings(&c);
    program.engage = Some(engage.clone());
    let (partner, conn) = salon(db.store.as_ref(), program).await;
    let p = partner.id;
    let tz = engage.zone().expect("zone");
    let store = db.store.as_ref();
    let start = clock.now_ms();
    let mut ids = Vec::new();
    // Consent as it was over time, per client: (from, granted).
    let mut consent: Vec<Vec<(i64, bool)>> = Vec::new();
    let mut chats = Vec::new();
    for (i, (gaps, chat, opted)) in c.clients.iter().enumerate() {
        let mut at = start - 2 * DAY;
        let mut times = vec![at];
        for g in gaps {
            at -= g * DAY;
            times.push(at);
        }
        for (k, t) in times.iter().enumerate() {
            let mut e = visit(
                &conn,
                &format!("r{i}-{k}"),
                1,
                VisitStatus::Came,
                100_000,
                Some(by_phone(&phone(p, i))),
            );
            if let CrmEvent::Visit(v) = &mut e {
                v.visit_at_ms = Some(*t);
            }
            engine.apply_event(&conn, &e).await.expect("visit");
        }
        let id = store
            .client_by_phone(p, &Phone::parse_international(&phone(p, i)).expect("phone"))
            .await
            .expect("read")
            .expect("client")
            .id;
        if *chat {
            let chat_id = 9_000_000 + p.0 * 100 + i as i64;
            store
                .save_telegram_chat(
                    &TelegramChat {
                        chat_id,
                        phone: Some(Phone::parse_international(&phone(p, i)).expect("phone")),
                        language: "ru".into(),
                        active: true,
                        joined_partner: None,
                        referred_by: None,
                    },
                    start,
                )
                .await
                .expect("chat");
            store
                .set_telegram_chat(p, id, Some(chat_id))
                .await
                .expect("link");
        }
        let mut history = vec![(i64::MIN, false)];
        if *opted {
            store
                .set_consent(p, id, ConsentKind::Marketing, true, "test", "yes", start)
                .await
                .expect("consent");
            history.push((start, true));
        }
        consent.push(history);
        chats.push(*chat);
        ids.push(id);
    }
    let salt = store.engage_salt(p).await.expect("salt");
    let salon = Salon {
        partner: p,
        name: None,
        settings: &engage,
        birthday_points: None,
        currency: loyalty_core::Currency::Rub,
        sms: false,
        model: None,
    };
    let mut now = start;
    for (n, st) in c.steps.iter().enumerate() {
        match st {
            Step::Scan(min) => {
                now += i64::from(*min) * 60_000;
                leased_scan(db, &salon, "a", now).await;
            }
            Step::TwoAtOnce(min) => {
                now += i64::from(*min) * 60_000;
                tokio::join!(
                    leased_scan(db, &salon, "a", now),
                    leased_scan(db, &salon, "b", now)
                );
            }
            Step::CutOff(min, us) => {
                now += i64::from(*min) * 60_000;
                let _ = tokio::time::timeout(
                    Duration::from_micros(*us),
                    leased_scan(db, &salon, &format!("cut{n}"), now),
                )
                .await;
                // A killed instance's lease runs out before anyone scans again.
                now += LEASE_MS;
            }
            Step::Visit(i) => {
                clock.advance_ms((now - clock.now_ms()).max(0));
                let mut e = visit(
                    &conn,
                    &format!("back{n}"),
                    1,
                    VisitStatus::Came,
                    100_000,
                    Some(by_phone(&phone(p, *i))),
                );
                if let CrmEvent::Visit(v) = &mut e {
                    v.visit_at_ms = Some(now);
                }
                engine.apply_event(&conn, &e).await.expect("visit");
            }
            Step::Stop(i) | Step::OptIn(i) => {
                let granted = matches!(st, Step::OptIn(_));
                now += 1;
                store
                    .set_consent(
                        p,
                        ids[*i],
                        ConsentKind::Marketing,
                        granted,
                        "test",
                        "t",
                        now,
                    )
                    .await
                    .expect("consent");
                consent[*i].push((now, granted));
            }
        }
        check(db, p, &engage, salt, &ids, &consent, &chats).await?;
    }
    // A clean scan in the window, then one more: nothing left due unrecorded.
    let mut t = now + 60_000;
    while !open_at(tz, engage.send_window, t) {
        t += 3_600_000;
    }
    leased_scan(db, &salon, "a", t).await;
    check(db, p, &engage, salt, &ids, &consent, &chats).await?;
    let again = scan(store, &salon, t + 1, true, None, 0)
        .await
        .expect("again");
    prop_assert_eq!(again.recorded, 0, "{:?}", again.counts);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn check(
    db: &TestDb,
    p: PartnerId,
    e: &Engagement,
    salt: u64,
    ids: &[loyalty_core::ClientId],
    consent: &[Vec<(i64, bool)>],
    chats: &[bool],
) -> Result<(), TestCaseError> {
    let tz = e.zone().expect("zone");
    let rows = db.store.sends(p, 10_000).await.expect("sends");
    let mut keys = std::collections::BTreeSet::new();
    for r in &rows {
        prop_assert!(keys.insert((r.client_id, r.trigger.clone(), r.cycle.clone())));
        let i = ids.iter().position(|c| *c == r.client_id).expect("ours");
        let at = r.decided_at_ms;
        prop_assert!(open_at(tz, e.send_window, at), "outside the window: {r:?}");
        let held = in_control(salt, r.client_id, e.holdout_percent);
        prop_assert_eq!(r.status == "control", held, "{:?}", r);
        let granted = consent[i]
            .iter()
            .rfind(|(from, _)| *from <= at)
            .is_some_and(|(_, g)| *g);
        prop_assert!(granted && chats[i], "no consent or chat at {at}: {r:?}");
        for (days, cap) in [(7, e.caps.per_7_days), (30, e.caps.per_30_days)] {
            let inside = rows
                .iter()
                .filter(|o| o.client_id == r.client_id && o.status != "cancelled")
                .filter(|o| o.decided_at_ms > at - days * DAY && o.decided_at_ms <= at)
                .count();
            prop_assert!(inside <= cap as usize, "over the {days}-day cap: {r:?}");
        }
    }
    Ok(())
}

fn run(db: TestDb, rt: &tokio::runtime::Runtime) {
    let mut runner = TestRunner::new(common::proptest_config(20));
    let result = runner.run(&case(), |c| rt.block_on(run_case(&db, c)));
    rt.block_on(db.finish());
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn sqlite_scans_keep_every_promise() {
    let rt = common::runtime();
    let db = rt.block_on(TestDb::sqlite());
    run(db, &rt);
}

#[test]
fn postgres_scans_keep_every_promise() {
    let rt = common::runtime();
    let db = rt.block_on(TestDb::postgres());
    run(db, &rt);
}
