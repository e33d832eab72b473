//! The four ways of spotting who will stay away, on the two kinds of salon (issue 14): a
//! regular one (the reminders' fixed generator: Erlang rhythms) and a CDNOW-like one (Poisson
//! visits, drop-out after a visit — BG/NBD's own story). Each is judged on the last 90 days.

use loyalty_engage::backtest::compare;
use loyalty_engage::cadence::DAY_MS;
use loyalty_engage::model::Customer;
use loyalty_engage::risk::build;
use loyalty_engage::sim::{generate, generate_bgnbd, visits_of};

const YEAR: i64 = 365 * DAY_MS;

fn show(name: &str, c: &loyalty_engage::backtest::Comparison) {
    println!(
        "{name}: {} clients, {} stayed away; fixed {}: recall {:.3} precision {:.3}; at that recall — per-service interval {:.3}, personal cadence {:.3}, BG/NBD {}; winner {}",
        c.clients,
        c.stayed_away,
        c.fixed_days,
        c.fixed.recall,
        c.fixed.precision,
        c.per_service_interval.precision,
        c.personal_cadence.precision,
        c.bgnbd.as_ref().map_or_else(
            |e| format!("not fitted ({e})"),
            |f| format!("{:.3}", f.precision)
        ),
        c.winner
    );
    for k in &c.calibration {
        println!(
            "    {} repeat visits: {} clients, expected {:.0}, came {}",
            k.repeat_visits, k.clients, k.expected, k.actual
        );
    }
}

#[test]
fn the_regular_salon_is_the_cadences() {
    let start = 1_700_000_000_000;
    let end = start + 2 * YEAR;
    for seed in [1u64, 2, 3] {
        let clients = generate(seed, 2_000, start, end);
        let c = compare(&visits_of(&clients), end - 90 * DAY_MS, 90, 30).expect("compared");
        show(&format!("regular salon, seed {seed}"), &c);
        assert_eq!(c.winner, "personal_cadence", "{c:?}");
    }
}

#[test]
fn the_poisson_salon_is_bgnbds() {
    let start = 1_700_000_000_000;
    let end = start + 78 * 7 * DAY_MS;
    for seed in [1u64, 2, 3] {
        // CDNOW's fit in days: r 0.243, α 4.414 weeks = 30.9 days, a 0.793, b 2.426.
        let clients = generate_bgnbd(seed, 2_500, start, end, (0.243, 30.9, 0.793, 2.426));
        let c = compare(&visits_of(&clients), end - 90 * DAY_MS, 90, 30).expect("compared");
        show(&format!("Poisson salon, seed {seed}"), &c);
        assert_eq!(c.winner, "bgnbd", "{c:?}");
        // Calibrated: the expected visits of each group within a third of those that came, or
        // within 15 visits for small groups.
        for k in &c.calibration {
            let gap = (k.expected - k.actual as f64).abs();
            assert!(gap <= (k.actual as f64 / 3.0).max(15.0), "{k:?}");
        }
    }
}

/// The clients' summaries at `now_ms` as the store gives them to the fit: days with a visit,
/// each visit worth `value(i)` minor units.
fn customers_at(
    clients: &[loyalty_engage::sim::SimClient],
    now_ms: i64,
    value: impl Fn(usize, usize) -> f64,
) -> Vec<Customer> {
    clients
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let mut days: Vec<i64> = c
                .visits
                .iter()
                .filter(|v| v.at_ms < now_ms)
                .map(|v| v.at_ms.div_euclid(DAY_MS))
                .collect();
            days.dedup();
            let (first, last) = (*days.first()?, *days.last()?);
            Some(Customer {
                frequency: (days.len() - 1) as f64,
                recency: (last - first) as f64,
                t: (now_ms.div_euclid(DAY_MS) - first) as f64,
                monetary: Some(value(i, days.len())),
            })
        })
        .collect()
}

/// The `at_risk` trigger's model follows the backtest: off at the regular salon (the rules
/// win there, and the salon reads why), on at the Poisson salon, where the clients it calls at
/// risk are the valuable ones BG/NBD thinks gone.
#[test]
fn the_model_is_used_only_where_it_wins() {
    let start = 1_700_000_000_000;
    let end = start + 2 * YEAR;
    let regular = generate(1, 2_000, start, end);
    let m = build(
        &visits_of(&regular),
        &customers_at(&regular, end, |_, _| 250_000.0),
        end,
    );
    assert_eq!(m.winner.as_deref(), Some("personal_cadence"));
    assert!(!m.on());
    let why = m.off.clone().unwrap();
    assert!(why.contains("the rules predict better here"), "{why}");
    assert!(why.contains("personal_cadence had precision"), "{why}");

    let end = start + 78 * 7 * DAY_MS;
    let poisson = generate_bgnbd(1, 2_500, start, end, (0.243, 30.9, 0.793, 2.426));
    // Three price levels, so value ranks clients apart; each bill 50–150 % of its client's
    // level (a client whose bills are all alike leaves Gamma-Gamma nothing to fit: its p runs
    // off).
    let value = |i: usize, visits: usize| {
        let level = [150_000.0, 300_000.0, 600_000.0][i % 3];
        (0..visits)
            .map(|k| level * (0.5 + ((i * 7_919 + k * 104_729) % 1_000) as f64 / 1_000.0))
            .sum::<f64>()
            / visits as f64
    };
    let customers = customers_at(&poisson, end, value);
    let m = build(&visits_of(&poisson), &customers, end);
    assert_eq!(m.winner.as_deref(), Some("bgnbd"), "{m:?}");
    assert!(m.on(), "{m:?}");
    assert!(m.gamma_gamma.is_some(), "{m:?}");
    assert_eq!(m.clv_percentiles.len(), 101);
    assert!(m.clv_percentiles.windows(2).all(|w| w[0] <= w[1]));
    let cut = m.top_cut(20);
    let risks: Vec<_> = customers.iter().map(|c| m.risk(c).unwrap()).collect();
    let top = risks.iter().filter(|r| r.at_stake_minor >= cut).count();
    assert!(
        (customers.len() / 6..=customers.len() / 4).contains(&top),
        "{top} of {} in the top 20 %",
        customers.len()
    );
    // The value follows the price a client pays and the visits she is expected to make.
    let (a, b) = (
        Customer {
            frequency: 4.0,
            recency: 300.0,
            t: 320.0,
            monetary: Some(600_000.0),
        },
        Customer {
            frequency: 4.0,
            recency: 300.0,
            t: 320.0,
            monetary: Some(150_000.0),
        },
    );
    assert!(m.risk(&a).unwrap().clv_minor > m.risk(&b).unwrap().clv_minor);
    let gone = Customer { recency: 40.0, ..a };
    let (gone, a) = (m.risk(&gone).unwrap(), m.risk(&a).unwrap());
    assert!(gone.p_alive < a.p_alive);
    // Her expected value falls with P(alive); what she would bring were she coming does not.
    assert!(gone.clv_minor < a.clv_minor);
    assert!(gone.at_stake_minor >= a.at_stake_minor);

    // Too little history: off, saying so.
    let m = build(&[], &[], end);
    assert!(!m.on());
    assert!(m.off.unwrap().contains("too little history"));
}
