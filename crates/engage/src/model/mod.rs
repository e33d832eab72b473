//! Churn and value models fitted per salon: BG/NBD (who is still a client, how many visits to
//! expect) and Gamma-Gamma (what a visit is worth), with the special functions and the
//! optimiser they need. Pure functions over one summary row per customer.

pub mod bgnbd;
pub mod gamma_gamma;
pub mod optimize;
pub mod special;
pub mod summary;

pub use bgnbd::BgNbd;
pub use gamma_gamma::GammaGamma;

/// One customer as the models read her: repeat purchases `x`, the time of her last purchase
/// since her first `t_x`, the time since her first `T` (any unit, the same for all), and the
/// average value of her repeat purchases.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Customer {
    pub frequency: f64,
    pub recency: f64,
    pub t: f64,
    pub monetary: Option<f64>,
}

/// Why a model could not be fitted — never a silently wrong model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    #[error("too little history to fit: {0}")]
    TooLittle(String),
    #[error("customer {index}: {why}")]
    BadCustomer { index: usize, why: String },
    #[error("the {model} fit did not converge in {evaluations} evaluations")]
    NoConvergence {
        model: &'static str,
        evaluations: usize,
    },
    #[error("the {model} fit is degenerate: {why}")]
    Degenerate { model: &'static str, why: String },
}

/// Every customer is one the models can read: `0 ≤ t_x ≤ T`, `x ≥ 0` whole, `t_x > 0` when
/// `x > 0`.
pub(crate) fn check(customers: &[Customer]) -> Result<(), FitError> {
    if customers.is_empty() {
        return Err(FitError::TooLittle("no customers".into()));
    }
    for (index, c) in customers.iter().enumerate() {
        let bad = |why: &str| {
            Err(FitError::BadCustomer {
                index,
                why: why.to_owned(),
            })
        };
        if !(c.frequency >= 0.0 && c.frequency.fract() == 0.0 && c.frequency.is_finite()) {
            return bad("frequency must be a whole number ≥ 0");
        }
        if !(c.recency >= 0.0 && c.t.is_finite() && c.recency <= c.t) {
            return bad("recency must be within 0..=T");
        }
        if c.frequency > 0.0 && c.recency == 0.0 {
            return bad("a customer with repeat purchases has recency > 0");
        }
    }
    Ok(())
}
