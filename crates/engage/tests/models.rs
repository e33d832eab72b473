//! BG/NBD and Gamma-Gamma against the published CDNOW fits (Fader, Hardie & Lee 2005; the
//! summary from the `lifetimes` package, fixtures/cdnow/README.md), a customer's published
//! expectation, and a simulation that recovers known parameters.

use loyalty_engage::model::summary::parse;
use loyalty_engage::model::{Customer, FitError, bgnbd, gamma_gamma};
use loyalty_engage::sim::gamma;

fn cdnow() -> Vec<Customer> {
    let path = format!(
        "{}/../../fixtures/cdnow/cdnow_summary.csv",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).expect("fixture");
    let (customers, values) = parse(&text).expect("the CDNOW summary reads");
    assert!(values);
    assert_eq!(customers.len(), 2_357);
    customers
}

#[test]
fn cdnow_reproduces_the_published_fits() {
    let customers = cdnow();
    let m = bgnbd::fit(&customers).expect("BG/NBD fits CDNOW");
    println!("{m:?}");
    assert_eq!(format!("{:.3}", m.r), "0.243");
    assert_eq!(format!("{:.3}", m.alpha), "4.414");
    assert_eq!(format!("{:.3}", m.a), "0.793");
    assert_eq!(format!("{:.3}", m.b), "2.426");
    assert_eq!(format!("{:.1}", m.log_likelihood), "-9582.4");

    // Customer 1 (x = 2, t_x = 30.43, T = 38.86 weeks): 1.226 purchases expected in the next 39
    // weeks (FHL 2005, section 5).
    let first = customers[0];
    let e = m.expected_visits(&first, 39.0).expect("expectation");
    assert_eq!(format!("{e:.3}"), "1.226");
    // P(alive) from its closed form, by hand: 1 / (1 + a/(b+x−1) · ((α+T)/(α+t_x))^(r+x)).
    let by_hand =
        1.0 / (1.0 + m.a / (m.b + 1.0) * ((m.alpha + 38.86) / (m.alpha + 30.43)).powf(m.r + 2.0));
    assert!((m.p_alive(&first) - by_hand).abs() < 1e-12);
    // Someone who never came back is alive by the model's assumption (no drop-out before a
    // repeat purchase), and her expectation is the population's for her age.
    assert_eq!(m.p_alive(&customers[2]), 1.0);

    let gg = gamma_gamma::fit(&customers).expect("Gamma-Gamma fits CDNOW");
    println!("{gg:?}");
    assert_eq!(gg.customers, 946);
    assert_eq!(format!("{:.2}", gg.p), "6.25");
    assert_eq!(format!("{:.2}", gg.q), "3.74");
    // The published 15.44 is the maximum's 15.4478 cut, not rounded (lifetimes prints 15.45):
    // the likelihood there is below the maximum's, and the maximum is one (a step either way
    // in v, with p and q held, lowers it).
    assert_eq!(format!("{:.2}", (gg.v * 100.0).trunc() / 100.0), "15.44");
    let ll = |p: f64, q: f64, v: f64| -> f64 {
        customers
            .iter()
            .filter(|c| c.frequency > 0.0 && c.monetary.is_some_and(|m| m > 0.0))
            .map(|c| gamma_gamma::log_likelihood(p, q, v, c.frequency, c.monetary.unwrap_or(0.0)))
            .sum()
    };
    println!(
        "Gamma-Gamma log-likelihood: at the fit {:.6}, at the published (6.25, 3.74, 15.44) {:.6}",
        gg.log_likelihood,
        ll(6.25, 3.74, 15.44)
    );
    assert!(gg.log_likelihood > ll(6.25, 3.74, 15.44));
    assert!(gg.log_likelihood > ll(gg.p, gg.q, gg.v - 0.005));
    assert!(gg.log_likelihood > ll(gg.p, gg.q, gg.v + 0.005));
}

/// Customers drawn from BG/NBD: λ ~ Gamma(r, α), p ~ Beta(a, b); purchases a Poisson process
/// of rate λ from time 0 to T, dropping out with probability p after each repeat purchase.
fn simulate(seed: u64, n: usize, (r, alpha, a, b): (f64, f64, f64, f64)) -> Vec<Customer> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n)
        .map(|_| {
            let lambda = gamma(&mut rng, r) / alpha;
            let (ga, gb) = (gamma(&mut rng, a), gamma(&mut rng, b));
            let p = ga / (ga + gb);
            let t_end = 26.0 + 26.0 * rng.f64();
            let (mut t, mut x, mut t_x) = (0.0, 0.0, 0.0);
            loop {
                t += -(1.0 - rng.f64()).ln() / lambda;
                if t > t_end {
                    break;
                }
                x += 1.0;
                t_x = t;
                if rng.f64() < p {
                    break;
                }
            }
            Customer {
                frequency: x,
                recency: t_x,
                t: t_end,
                monetary: None,
            }
        })
        .collect()
}

#[test]
fn a_simulated_population_gives_back_its_parameters() {
    let truth = (0.5, 6.0, 0.7, 2.5);
    let customers = simulate(7, 8_000, truth);
    let m = bgnbd::fit(&customers).expect("fits");
    println!("{m:?}");
    let (r, alpha, a, b) = truth;
    for (got, want, name) in [
        (m.r, r, "r"),
        (m.alpha, alpha, "α"),
        (m.a, a, "a"),
        (m.b, b, "b"),
    ] {
        assert!((got - want).abs() / want < 0.2, "{name}: {got} for {want}");
    }
    // The maximum is a maximum: the true parameters explain the sample no better.
    let at_truth: f64 = customers
        .iter()
        .map(|c| bgnbd::log_likelihood(r, alpha, a, b, c))
        .sum();
    assert!(
        m.log_likelihood >= at_truth,
        "{} < {at_truth}",
        m.log_likelihood
    );
}

#[test]
fn what_cannot_be_fitted_says_why() {
    let once = Customer {
        frequency: 0.0,
        recency: 0.0,
        t: 30.0,
        monetary: None,
    };
    assert!(matches!(
        bgnbd::fit(&[once; 50]),
        Err(FitError::TooLittle(why)) if why.contains("nobody came back")
    ));
    assert!(matches!(bgnbd::fit(&[]), Err(FitError::TooLittle(_))));
    let bad = Customer {
        frequency: 2.0,
        recency: 40.0,
        t: 30.0,
        monetary: None,
    };
    assert!(matches!(
        bgnbd::fit(&[once, bad]),
        Err(FitError::BadCustomer { index: 1, .. })
    ));
    assert!(matches!(
        gamma_gamma::fit(&[once; 5]),
        Err(FitError::TooLittle(_))
    ));
}
