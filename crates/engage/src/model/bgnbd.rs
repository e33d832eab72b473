//! BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): while active, a
//! customer buys as a Poisson process of rate λ ~ Gamma(r, α); after each purchase she drops out
//! with probability p ~ Beta(a, b). Fitted by maximum likelihood on `(x, t_x, T)` per customer —
//! repeat purchases, the time of the last since the first, the time since the first — with the
//! parameters on the log scale.

use super::optimize::{Settings, minimize};
use super::special::{Hyp2f1Error, hyp2f1, ln_beta, ln_gamma};
use super::{Customer, FitError};

/// The log-parameters' box: `e^25` ≈ 7·10¹⁰, far beyond any parameter a fit that holds has.
const LOG_BOUND: f64 = 25.0;

/// A fitted BG/NBD model (time in the unit of the data it was fitted on).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BgNbd {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
    pub log_likelihood: f64,
    /// Function evaluations the fit took.
    pub evaluations: usize,
}

/// One customer's log-likelihood.
pub fn log_likelihood(r: f64, alpha: f64, a: f64, b: f64, c: &Customer) -> f64 {
    let x = c.frequency;
    let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln();
    let a2 = ln_beta(a, b + x) - ln_beta(a, b);
    let a3 = -(r + x) * (alpha + c.t).ln();
    if x > 0.0 {
        let a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + c.recency).ln();
        // ln(e^a3 + e^a4) without overflow.
        let m = a3.max(a4);
        a1 + a2 + m + ((a3 - m).exp() + (a4 - m).exp()).ln()
    } else {
        a1 + a2 + a3
    }
}

/// Fits the model; an error when the data cannot fit one, or the fit does not converge.
pub fn fit(customers: &[Customer]) -> Result<BgNbd, FitError> {
    super::check(customers)?;
    if customers.iter().all(|c| c.frequency == 0.0) {
        return Err(FitError::TooLittle(
            "nobody came back: no repeat purchase to learn from".into(),
        ));
    }
    let groups = Groups::of(customers);
    let objective = |p: &[f64]| {
        // Beyond e^±25 a parameter has run off (the data cannot pin it): out of the domain, so
        // the search stops at the edge and the fit is reported degenerate, not searched on.
        if p.iter().any(|v| v.abs() > LOG_BOUND) {
            return f64::INFINITY;
        }
        -groups.log_likelihood(p[0].exp(), p[1].exp(), p[2].exp(), p[3].exp())
    };
    // Start where the published fits of purchase data sit (r, α from the mean rate; a, b 1).
    let mean_t = customers.iter().map(|c| c.t).sum::<f64>() / customers.len() as f64;
    let start = [0.0, mean_t.max(1e-3).ln() - 2.0, 0.0, 0.0];
    let m = minimize(objective, &start, Settings::default());
    let [r, alpha, a, b] = [m.x[0].exp(), m.x[1].exp(), m.x[2].exp(), m.x[3].exp()];
    if m.x.iter().any(|v| v.abs() > LOG_BOUND - 2.0) {
        return Err(FitError::Degenerate {
            model: "BG/NBD",
            why: format!("parameters ran off (r {r:.3e}, α {alpha:.3e}, a {a:.3e}, b {b:.3e})"),
        });
    }
    if !m.converged || !m.value.is_finite() {
        return Err(FitError::NoConvergence {
            model: "BG/NBD",
            evaluations: m.evaluations,
        });
    }
    Ok(BgNbd {
        r,
        alpha,
        a,
        b,
        log_likelihood: -m.value,
        evaluations: m.evaluations,
    })
}

/// The customers as the likelihood reads them: each distinct `(x, t_x, T)` once with how many
/// share it, and the distinct `x` apart, so the terms that depend on `x` alone (`ln Γ`, `ln B`)
/// are computed once per value of `x` and evaluation, not once per customer. The sum is the
/// same as [`log_likelihood`] over every customer, in far fewer operations: a salon's customers
/// share few frequencies, and whole days make many share all three.
struct Groups {
    /// The distinct frequencies.
    xs: Vec<f64>,
    /// (index into `xs`, t_x, T, how many).
    rows: Vec<(usize, f64, f64, f64)>,
}

impl Groups {
    fn of(customers: &[Customer]) -> Groups {
        let mut keyed: Vec<(f64, f64, f64)> = customers
            .iter()
            .map(|c| (c.frequency, c.recency, c.t))
            .collect();
        keyed.sort_unstable_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then(a.2.total_cmp(&b.2))
        });
        let mut xs: Vec<f64> = Vec::new();
        let mut rows: Vec<(usize, f64, f64, f64)> = Vec::new();
        for (x, tx, t) in keyed {
            if xs.last() != Some(&x) {
                xs.push(x);
            }
            let i = xs.len() - 1;
            match rows.last_mut() {
                Some(last) if last.0 == i && last.1 == tx && last.2 == t => last.3 += 1.0,
                _ => rows.push((i, tx, t, 1.0)),
            }
        }
        Groups { xs, rows }
    }

    fn log_likelihood(&self, r: f64, alpha: f64, a: f64, b: f64) -> f64 {
        // Per frequency: ln Γ(r+x) − ln Γ(r) + r ln α + ln B(a, b+x) − ln B(a, b), and
        // ln a − ln(b+x−1) for the drop-out term.
        let base = -ln_gamma(r) + r * alpha.ln() - ln_beta(a, b);
        let per_x: Vec<(f64, f64)> = self
            .xs
            .iter()
            .map(|&x| {
                let head = base + ln_gamma(r + x) + ln_beta(a, b + x);
                let drop = if x > 0.0 {
                    a.ln() - (b + x - 1.0).ln()
                } else {
                    f64::NEG_INFINITY
                };
                (head, drop)
            })
            .collect();
        let mut sum = 0.0;
        for &(i, tx, t, n) in &self.rows {
            let x = self.xs[i];
            let (head, drop) = per_x[i];
            let a3 = -(r + x) * (alpha + t).ln();
            let one = if x > 0.0 {
                let a4 = drop - (r + x) * (alpha + tx).ln();
                let m = a3.max(a4);
                head + m + ((a3 - m).exp() + (a4 - m).exp()).ln()
            } else {
                head + a3
            };
            sum += n * one;
        }
        sum
    }
}

impl BgNbd {
    /// The chance she is still active, given her history.
    pub fn p_alive(&self, c: &Customer) -> f64 {
        if c.frequency == 0.0 {
            return 1.0;
        }
        1.0 / (1.0 + self.odds_gone(c))
    }

    /// `a/(b+x−1) · ((α+T)/(α+t_x))^(r+x)`: the odds that she has dropped out.
    fn odds_gone(&self, c: &Customer) -> f64 {
        let x = c.frequency;
        if x == 0.0 {
            return 0.0;
        }
        (self.a.ln() - (self.b + x - 1.0).ln()
            + (self.r + x) * ((self.alpha + c.t).ln() - (self.alpha + c.recency).ln()))
        .exp()
    }

    /// Her expected purchases in the next `horizon`, given her history (FHL 2005, eq. 10).
    pub fn expected_visits(&self, c: &Customer, horizon: f64) -> Result<f64, Hyp2f1Error> {
        Ok(self.expected_visits_if_alive(c, horizon)? * self.p_alive(c))
    }

    /// Her expected purchases in the next `horizon` were she still active: eq. 10 without its
    /// P(alive) factor — what the business stands to lose if she has gone.
    pub fn expected_visits_if_alive(&self, c: &Customer, horizon: f64) -> Result<f64, Hyp2f1Error> {
        let (r, alpha, a, b) = (self.r, self.alpha, self.a, self.b);
        let x = c.frequency;
        let z = horizon / (alpha + c.t + horizon);
        let f = hyp2f1(r + x, b + x, a + b + x - 1.0, z)?;
        let ratio = ((alpha + c.t) / (alpha + c.t + horizon)).powf(r + x);
        Ok((a + b + x - 1.0) / (a - 1.0) * (1.0 - ratio * f))
    }

    /// Expected purchases of a new customer over `t` (FHL 2005, eq. 7): the calibration's
    /// check against the whole population.
    pub fn expected_visits_new(&self, t: f64) -> Result<f64, Hyp2f1Error> {
        let (r, alpha, a, b) = (self.r, self.alpha, self.a, self.b);
        let f = hyp2f1(r, b, a + b - 1.0, t / (alpha + t))?;
        Ok((a + b - 1.0) / (a - 1.0) * (1.0 - (alpha / (alpha + t)).powf(r) * f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grouped_likelihood_is_the_sum_over_customers() {
        let c = |frequency: f64, recency: f64, t: f64| Customer {
            frequency,
            recency,
            t,
            monetary: None,
        };
        let customers = [
            c(0.0, 0.0, 30.0),
            c(2.0, 20.0, 30.0),
            c(0.0, 0.0, 30.0),
            c(2.0, 20.0, 30.0),
            c(2.0, 25.0, 30.0),
            c(5.0, 10.0, 50.0),
            c(0.0, 0.0, 12.0),
        ];
        let groups = Groups::of(&customers);
        assert_eq!(groups.xs, vec![0.0, 2.0, 5.0]);
        assert_eq!(groups.rows.len(), 5);
        for (r, alpha, a, b) in [(0.243, 4.414, 0.793, 2.426), (2.0, 30.0, 0.1, 9.0)] {
            let each: f64 = customers
                .iter()
                .map(|c| log_likelihood(r, alpha, a, b, c))
                .sum();
            let grouped = groups.log_likelihood(r, alpha, a, b);
            assert!(
                (each - grouped).abs() < 1e-9 * each.abs(),
                "{each} {grouped}"
            );
        }
    }
}
