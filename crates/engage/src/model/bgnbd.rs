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
    let objective = |p: &[f64]| {
        // Beyond e^±25 a parameter has run off (the data cannot pin it): out of the domain, so
        // the search stops at the edge and the fit is reported degenerate, not searched on.
        if p.iter().any(|v| v.abs() > LOG_BOUND) {
            return f64::INFINITY;
        }
        let (r, alpha, a, b) = (p[0].exp(), p[1].exp(), p[2].exp(), p[3].exp());
        -customers
            .iter()
            .map(|c| log_likelihood(r, alpha, a, b, c))
            .sum::<f64>()
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
        let (r, alpha, a, b) = (self.r, self.alpha, self.a, self.b);
        let x = c.frequency;
        let z = horizon / (alpha + c.t + horizon);
        let f = hyp2f1(r + x, b + x, a + b + x - 1.0, z)?;
        let ratio = ((alpha + c.t) / (alpha + c.t + horizon)).powf(r + x);
        let head = (a + b + x - 1.0) / (a - 1.0) * (1.0 - ratio * f);
        Ok(head / (1.0 + self.odds_gone(c)))
    }

    /// Expected purchases of a new customer over `t` (FHL 2005, eq. 7): the calibration's
    /// check against the whole population.
    pub fn expected_visits_new(&self, t: f64) -> Result<f64, Hyp2f1Error> {
        let (r, alpha, a, b) = (self.r, self.alpha, self.a, self.b);
        let f = hyp2f1(r, b, a + b - 1.0, t / (alpha + t))?;
        Ok((a + b - 1.0) / (a - 1.0) * (1.0 - (alpha / (alpha + t)).powf(r) * f))
    }
}
