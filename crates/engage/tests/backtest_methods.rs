//! The four ways of spotting who will stay away, on the two kinds of salon (issue 14): a
//! regular one (the reminders' fixed generator: Erlang rhythms) and a CDNOW-like one (Poisson
//! visits, drop-out after a visit — BG/NBD's own story). Each is judged on the last 90 days.

use loyalty_engage::backtest::compare;
use loyalty_engage::cadence::DAY_MS;
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
