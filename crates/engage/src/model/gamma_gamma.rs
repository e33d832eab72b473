//! Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV"; Fader & Hardie 2013): a customer's
//! purchase values are Gamma(p, ν) around her own mean, ν ~ Gamma(q, γ) across customers.
//! Fitted on the customers with at least one repeat purchase, from their number `x` and the
//! average value `m̄` of those purchases; independent of the purchase process.

use super::optimize::{Settings, minimize};
use super::special::ln_gamma;
use super::{Customer, FitError};

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct GammaGamma {
    pub p: f64,
    pub q: f64,
    pub v: f64,
    pub log_likelihood: f64,
    /// The customers it was fitted on (those with a repeat purchase and a positive value).
    pub customers: usize,
    pub evaluations: usize,
}

/// One customer's log-likelihood of her average value `m` over `x` purchases.
pub fn log_likelihood(p: f64, q: f64, v: f64, x: f64, m: f64) -> f64 {
    ln_gamma(p * x + q) - ln_gamma(p * x) - ln_gamma(q)
        + q * v.ln()
        + (p * x - 1.0) * m.ln()
        + (p * x) * x.ln()
        - (p * x + q) * (x * m + v).ln()
}

pub fn fit(customers: &[Customer]) -> Result<GammaGamma, FitError> {
    let used: Vec<(f64, f64)> = customers
        .iter()
        .filter_map(|c| Some((c.frequency, c.monetary?)))
        .filter(|(x, m)| *x > 0.0 && *m > 0.0)
        .collect();
    if used.len() < 10 {
        return Err(FitError::TooLittle(format!(
            "{} customers with a repeat purchase and its value; at least 10 needed",
            used.len()
        )));
    }
    // The `ln Γ` terms depend on `x` alone: once per distinct `x` and evaluation.
    let mut xs: Vec<f64> = used.iter().map(|(x, _)| *x).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let index: Vec<usize> = used
        .iter()
        .map(|(x, _)| xs.partition_point(|v| v < x))
        .collect();
    let objective = |w: &[f64]| {
        let (p, q, v) = (w[0].exp(), w[1].exp(), w[2].exp());
        let per_x: Vec<f64> = xs
            .iter()
            .map(|&x| ln_gamma(p * x + q) - ln_gamma(p * x) - ln_gamma(q) + (p * x) * x.ln())
            .collect();
        let qv = q * v.ln();
        -used
            .iter()
            .zip(&index)
            .map(|((x, m), &i)| {
                per_x[i] + qv + (p * x - 1.0) * m.ln() - (p * x + q) * (x * m + v).ln()
            })
            .sum::<f64>()
    };
    let mean = used.iter().map(|(_, m)| m).sum::<f64>() / used.len() as f64;
    let start = [0.0, 0.0, mean.max(1e-6).ln()];
    let m = minimize(objective, &start, Settings::default());
    let [p, q, v] = [m.x[0].exp(), m.x[1].exp(), m.x[2].exp()];
    if !m.converged || !m.value.is_finite() {
        return Err(FitError::NoConvergence {
            model: "Gamma-Gamma",
            evaluations: m.evaluations,
        });
    }
    if q <= 1.0 || [p, q, v].iter().any(|x| !x.is_finite() || *x > 1e8) {
        return Err(FitError::Degenerate {
            model: "Gamma-Gamma",
            why: format!("q must exceed 1 for a finite mean value (p {p}, q {q}, v {v})"),
        });
    }
    Ok(GammaGamma {
        p,
        q,
        v,
        log_likelihood: -m.value,
        customers: used.len(),
        evaluations: m.evaluations,
    })
}

impl GammaGamma {
    /// Her expected average purchase value, given `x` purchases averaging `m`:
    /// `p(γ + x·m̄) / (p·x + q − 1)`; the population's mean `p·γ/(q − 1)` without a repeat.
    pub fn expected_value(&self, c: &Customer) -> f64 {
        match c.monetary.filter(|m| *m > 0.0 && c.frequency > 0.0) {
            Some(m) => self.p * (self.v + c.frequency * m) / (self.p * c.frequency + self.q - 1.0),
            None => self.p * self.v / (self.q - 1.0),
        }
    }
}
