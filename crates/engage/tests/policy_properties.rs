//! The delivery policy's promises, over random salons, clocks, time zones and settings: no
//! marketing message in quiet hours, above a cap, without an opt-in on its channel (a chat and a
//! marketing opt-in for Telegram; an SMS opt-in, no chat and a salon that sends SMS for SMS),
//! after "Stop offers", or to the control group; the SMS invitation at most once; a trigger's cycle recorded once; one message per trigger
//! per absence. Scans are replayed the way the store records them (a decision is recorded
//! under its once key only if that key is new).

use loyalty_core::engage::{Caps, Engagement, SendWindow, SmsReach, TriggerRule, TriggerSetting};
use loyalty_core::history::Rhythm;
use loyalty_core::{BirthDate, ClientId, Points};
use loyalty_engage::cadence::DAY_MS;
use loyalty_engage::risk::{BgNbdParams, SalonModel};
use loyalty_engage::uplift::in_control;
use loyalty_engage::window::open_at;
use loyalty_engage::{
    Channel, Context, Expiring, Recorded, SalonRhythmBuilder, Scan, Snapshot, Verdict, decide,
};
use proptest::prelude::*;

const ZONES: [&str; 6] = [
    "Europe/Kaliningrad",
    "Europe/Moscow",
    "Asia/Yekaterinburg",
    "Asia/Almaty",
    "Asia/Vladivostok",
    "Asia/Kamchatka",
];

#[derive(Debug, Clone)]
enum Step {
    /// The scheduler's next scan, this many minutes later.
    Scan(u32),
    /// A client comes (and pays).
    Visit(usize),
    /// A client taps "Stop offers".
    Stop(usize),
    /// A client opts in again.
    OptIn(usize),
    /// A client's SMS opt-in is given or withdrawn at the desk.
    Sms(usize, bool),
    /// A client answers "Not now" to their latest message.
    NotNow(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (30u32..2_000).prop_map(Step::Scan),
        1 => (0usize..12).prop_map(Step::Visit),
        1 => (0usize..12).prop_map(Step::Stop),
        1 => (0usize..12).prop_map(Step::OptIn),
        1 => (0usize..12, any::<bool>()).prop_map(|(i, on)| Step::Sms(i, on)),
        1 => (0usize..12).prop_map(Step::NotNow),
    ]
}

fn settings() -> impl Strategy<Value = Engagement> {
    (
        0usize..ZONES.len(),
        0u8..12,
        13u8..=24,
        1u32..3,
        3u32..6,
        prop_oneof![Just(0u8), Just(10), Just(50)],
        proptest::sample::subsequence(vec![0usize, 1, 2, 3, 4, 5, 6, 7], 1..=8),
        proptest::option::of((any::<bool>(), any::<bool>())),
    )
        .prop_map(|(zone, from, to, c7, c30, holdout, which, sms)| {
            let all = [
                TriggerRule::Inactive {
                    days: 20,
                    min_balance: Points(0),
                },
                TriggerRule::Due {
                    overdue_percent: 25,
                    fallback_days: 30,
                },
                TriggerRule::Expiring {
                    within_days: 14,
                    min_points: Points(1),
                },
                TriggerRule::Missed { after_days: 1 },
                TriggerRule::WelcomeBack { days: 10 },
                TriggerRule::Birthday { days_before: 3 },
                TriggerRule::Lapsed { below_percent: 10 },
                TriggerRule::AtRisk {
                    below_percent: 60,
                    top_percent: 100,
                },
            ];
            Engagement {
                time_zone: ZONES[zone].into(),
                send_window: SendWindow {
                    from_hour: from,
                    to_hour: to,
                },
                caps: Caps {
                    per_7_days: c7,
                    per_30_days: c30,
                },
                holdout_percent: holdout,
                booking_url: None,
                booking_master_url: None,
                triggers: which
                    .into_iter()
                    .map(|i| TriggerSetting {
                        rule: all[i].clone(),
                        text: None,
                        offer: None,
                    })
                    .collect(),
                sms: sms.map(|(invite, reminders)| SmsReach {
                    invite,
                    reminders,
                    invite_text: None,
                }),
            }
        })
}

/// A client: gaps between visits (days, newest first), consent, a chat, a birthday, a balance,
/// points expiring in so many days, an SMS opt-in.
type ClientSpec = (
    Vec<i64>,
    bool,
    bool,
    Option<(u8, u8)>,
    i64,
    Option<i64>,
    bool,
);

fn client() -> impl Strategy<Value = ClientSpec> {
    (
        proptest::collection::vec(1i64..80, 0..8),
        any::<bool>(),
        any::<bool>(),
        proptest::option::of((1u8..=12, 1u8..=28)),
        0i64..500,
        proptest::option::of(1i64..40),
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_policy_keeps_its_promises(
        settings in settings(),
        clients in proptest::collection::vec(client(), 12),
        steps in proptest::collection::vec(step(), 1..120),
        start_hours in 0i64..24 * 365,
        salt in any::<u64>(),
        salon_sms in any::<bool>(),
    ) {
        let tz = settings.zone().expect("known zone");
        // A salon whose model is on, with every client in its top part: who is at risk is
        // BG/NBD's call alone.
        let model = SalonModel {
            fitted_at_ms: 0,
            winner: Some("bgnbd".into()),
            backtest: Vec::new(),
            bgnbd: Some(BgNbdParams { r: 0.8, alpha: 20.0, a: 0.6, b: 2.0, log_likelihood: 0.0 }),
            gamma_gamma: None,
            clv_percentiles: vec![0; 101],
            mean_visit_minor: 250_000,
            clients: 12,
            off: None,
            suggest: None,
        };
        let mut now = 1_760_000_000_000 + start_hours * 3_600_000;
        let mut snaps: Vec<Snapshot> = clients
            .iter()
            .enumerate()
            .map(|(i, (gaps, consent, telegram, birthday, balance, expiring, sms))| {
                let mut t = now - 3 * DAY_MS;
                let mut visits = Vec::new();
                for g in gaps {
                    visits.push(t);
                    t -= g * DAY_MS;
                }
                Snapshot {
                    sms: *sms,
                    ..snapshot(i, &visits, *consent, *telegram, *birthday, *balance, expiring.map(|d| now + d * DAY_MS))
                }
            })
            .collect();
        let mut visits: Vec<Vec<i64>> = snaps.iter().map(|s| s.rhythm.all.clone()).collect();
        for st in steps {
            match st {
                Step::Visit(i) => {
                    visits[i].insert(0, now);
                    let s = &snaps[i];
                    snaps[i] = Snapshot {
                        recorded: s.recorded.clone(),
                        sms: s.sms,
                        ..snapshot(i, &visits[i], s.consent, s.telegram, s.birthday.map(|b| (b.month, b.day)), s.balance.value(), s.expiring.map(|e| e.at_ms))
                    };
                }
                Step::Stop(i) => snaps[i].consent = false,
                Step::OptIn(i) => snaps[i].consent = true,
                Step::Sms(i, on) => snaps[i].sms = on,
                Step::NotNow(i) => {
                    if let Some(r) = snaps[i].recorded.last_mut() {
                        r.snoozed = true;
                    }
                }
                Step::Scan(minutes) => {
                    now += i64::from(minutes) * 60_000;
                    let mut b = SalonRhythmBuilder::default();
                    for s in &snaps {
                        b.add(&s.rhythm);
                    }
                    let salon = b.finish();
                    let scan = Scan {
                        settings: &settings,
                        tz,
                        salt,
                        context: Context { now_ms: now, tz, salon: &salon, model: Some(&model) },
                        sms: salon_sms,
                    };
                    for s in &mut snaps {
                        let Some(d) = decide(s, &scan) else { continue };
                        let key_seen = s.recorded.iter().any(|r| r.trigger == d.due.trigger && r.cycle == d.due.cycle);
                        prop_assert!(!key_seen, "decided again on a recorded cycle: {d:?}");
                        if d.verdict == Verdict::Send {
                            prop_assert!(open_at(tz, settings.send_window, now), "sent in quiet hours");
                            match d.channel {
                                Channel::Telegram => {
                                    prop_assert!(s.consent && s.telegram, "sent without consent or chat");
                                    prop_assert!(d.due.trigger != "invite", "invited in Telegram");
                                }
                                Channel::Sms => {
                                    let reach = settings.sms.as_ref();
                                    prop_assert!(s.sms && !s.telegram && salon_sms && reach.is_some(), "an SMS without its opt-in, or to a chat");
                                    prop_assert!(d.due.trigger == "invite" || reach.is_some_and(|r| r.reminders), "a reminder by SMS the salon did not ask for");
                                    prop_assert!(d.due.trigger != "invite" || reach.is_some_and(|r| r.invite), "an invitation the salon did not ask for");
                                }
                            }
                            prop_assert!(!in_control(salt, s.client, settings.holdout_percent), "sent to control");
                            prop_assert!(now < d.window_end_ms && d.window_end_ms <= d.next_window_ms);
                        }
                        if d.verdict.recorded() {
                            for (days, cap) in [(7, settings.caps.per_7_days), (30, settings.caps.per_30_days)] {
                                let inside = s.recorded.iter().filter(|r| r.at_ms > now - days * DAY_MS).count();
                                prop_assert!(inside < cap as usize, "over the {days}-day cap");
                            }
                            s.recorded.push(Recorded {
                                trigger: d.due.trigger.to_owned(),
                                cycle: d.due.cycle.clone(),
                                at_ms: now,
                                snoozed: false,
                                counts: true,
                            });
                        }
                    }
                }
            }
        }
        // One message per trigger per absence (the birthday is per year, expiring per date).
        for s in &snaps {
            let mut seen = std::collections::BTreeSet::new();
            for r in &s.recorded {
                prop_assert!(seen.insert((r.trigger.clone(), r.cycle.clone())), "twice: {r:?}");
                if ["inactive", "due", "welcome_back", "lapsed", "at_risk"].contains(&r.trigger.as_str()) {
                    prop_assert!(!r.cycle.contains(':'));
                }
            }
        }
    }
}

fn snapshot(
    i: usize,
    visits: &[i64],
    consent: bool,
    telegram: bool,
    birthday: Option<(u8, u8)>,
    balance: i64,
    expiring_at: Option<i64>,
) -> Snapshot {
    let recent: Vec<String> = visits
        .iter()
        .enumerate()
        .map(|(k, t)| format!("{t}:{}", if k % 2 == 0 { "hair" } else { "nails" }))
        .collect();
    Snapshot {
        client: ClientId(i as i64 + 1),
        first_visit_ms: visits.last().copied(),
        last_visit_ms: visits.first().copied(),
        visits: visits.len() as i64,
        paid_minor: visits.len() as i64 * 250_000,
        rhythm: Rhythm::parse(&recent.join(",")),
        missed_ms: None,
        booked_ms: None,
        balance: Points(balance),
        expiring: expiring_at.map(|at_ms| Expiring {
            points: Points(balance.max(1)),
            at_ms,
        }),
        birthday: birthday.map(|(month, day)| BirthDate {
            year: None,
            month,
            day,
        }),
        telegram,
        consent,
        sms: false,
        recorded: Vec::new(),
    }
}
