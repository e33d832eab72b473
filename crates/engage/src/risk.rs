//! The salon's churn and value model, kept only where it predicts: the `at_risk` trigger's
//! ground.
//!
//! [`build`] first judges the methods on the salon's own last [`BACKTEST_DAYS`] days
//! ([`crate::backtest::compare`]). Only when BG/NBD wins there is it fitted on the whole
//! history, with Gamma-Gamma for the value of a visit, and each client's 12-month value (CLV:
//! expected visits in [`CLV_DAYS`] days × expected value of a visit, undiscounted, in minor
//! units) is ranked against the salon's. Otherwise the model is *off*, with the reason the
//! salon reads, and the rules (the fixed rule, the personal cadence) do the work.
//!
//! A scan then asks [`SalonModel::risk`] of a client's summary row: her chance of still being a
//! client and her 12-month value — no query per client.
//!
//! Which value makes a client "valuable" for the `at_risk` trigger: her 12-month value *were she
//! still coming* (BG/NBD's expected visits without the P(alive) factor, times a visit's value),
//! what the salon stands to lose. The plain expectation already multiplies by P(alive), so a
//! client likely gone is never among the top by it: "P(alive) low and CLV high" would almost
//! never hold (on a 1,000-client CDNOW-like salon none of the top hundred by CLV had P(alive)
//! below 0.2). Both are reported.

use serde::{Deserialize, Serialize};

use crate::Snapshot;
use crate::backtest::{Visits, compare};
use crate::cadence::DAY_MS;
use crate::model::{BgNbd, Customer, GammaGamma, bgnbd, gamma_gamma};

/// The backtest's horizon: fitted on all but these last days, judged on who came in them.
pub const BACKTEST_DAYS: u32 = 90;
/// The fixed rule the backtest judges against.
pub const FIXED_DAYS: u32 = 30;
/// The value horizon.
pub const CLV_DAYS: f64 = 365.0;

/// BG/NBD's parameters (time in days).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgNbdParams {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
    pub log_likelihood: f64,
}

/// Gamma-Gamma's parameters (values in minor units).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GammaGammaParams {
    pub p: f64,
    pub q: f64,
    pub v: f64,
    pub log_likelihood: f64,
}

/// One method's precision in the salon's backtest (`None`: it could not be fitted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    pub method: String,
    pub precision: Option<f64>,
}

/// A salon's model as [`build`] left it: stored, and read by every scan until the next build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SalonModel {
    pub fitted_at_ms: i64,
    /// The backtest's winner, when there was anything to judge.
    pub winner: Option<String>,
    pub backtest: Vec<Judged>,
    pub bgnbd: Option<BgNbdParams>,
    pub gamma_gamma: Option<GammaGammaParams>,
    /// The salon's clients' 12-month values were they still coming (minor units) at the
    /// percentiles 0, 1, …, 100: what `top_percent` is measured on.
    pub clv_percentiles: Vec<i64>,
    /// The salon's average visit (minor units): a visit's value where Gamma-Gamma is not fitted.
    pub mean_visit_minor: i64,
    pub clients: usize,
    /// Why the `at_risk` trigger is off at this salon; `None` when it is on.
    pub off: Option<String>,
    /// Which services the salon's clients buy together, for offers that suggest one (built
    /// with the model where a trigger's offer needs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggest: Option<crate::offers::Cooccurrence>,
}

/// One client under the model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Risk {
    /// Her chance of still being a client.
    pub p_alive: f64,
    /// Her expected visits in the next [`CLV_DAYS`] days.
    pub expected_visits: f64,
    /// Her 12-month value, minor units.
    pub clv_minor: i64,
    /// Her 12-month value were she still coming, minor units.
    pub at_stake_minor: i64,
}

impl SalonModel {
    /// The model is used (the `at_risk` trigger fires) at this salon.
    pub fn on(&self) -> bool {
        self.off.is_none() && self.bgnbd.is_some()
    }

    fn bgnbd(&self) -> Option<BgNbd> {
        self.bgnbd.map(|p| BgNbd {
            r: p.r,
            alpha: p.alpha,
            a: p.a,
            b: p.b,
            log_likelihood: p.log_likelihood,
            evaluations: 0,
        })
    }

    fn gamma_gamma(&self) -> Option<GammaGamma> {
        self.gamma_gamma.map(|p| GammaGamma {
            p: p.p,
            q: p.q,
            v: p.v,
            log_likelihood: p.log_likelihood,
            customers: 0,
            evaluations: 0,
        })
    }

    /// Her chance of still being a client, without the value (the cheap part a scan asks
    /// first).
    pub fn p_alive(&self, c: &Customer) -> Option<f64> {
        Some(self.bgnbd()?.p_alive(c))
    }

    /// Her chance of still being a client, expected visits and 12-month value; `None` without
    /// a fitted BG/NBD or where its series does not converge for her.
    pub fn risk(&self, c: &Customer) -> Option<Risk> {
        let m = self.bgnbd()?;
        let if_alive = m.expected_visits_if_alive(c, CLV_DAYS).ok()?;
        let p_alive = m.p_alive(c);
        let visit = match self.gamma_gamma() {
            Some(g) => g.expected_value(c),
            None => c.monetary.unwrap_or(self.mean_visit_minor as f64),
        };
        let minor = |v: f64| if v.is_finite() { v.round() as i64 } else { 0 };
        Some(Risk {
            p_alive,
            expected_visits: if_alive * p_alive,
            clv_minor: minor(if_alive * p_alive * visit),
            at_stake_minor: minor(if_alive * visit),
        })
    }

    /// The least 12-month value at stake in the salon's top `top_percent` %.
    pub fn top_cut(&self, top_percent: u32) -> i64 {
        let at = 100usize.saturating_sub(top_percent.min(100) as usize);
        self.clv_percentiles.get(at).copied().unwrap_or(i64::MAX)
    }
}

/// A client's summary row as the models read it, in days: repeat visits (days with a visit
/// that came, the first not counted), the last visit's day since the first, the days since the
/// first, and her average visit. Her recent visits (the summary keeps up to
/// [`loyalty_core::history::Rhythm::RECENT`]) tell how many share a day; visits older than those
/// count a day each.
pub fn customer(s: &Snapshot, now_ms: i64) -> Option<Customer> {
    let (first, last) = (s.first_visit_ms?, s.last_visit_ms?);
    if s.visits <= 0 {
        return None;
    }
    let recent = &s.rhythm.all;
    let mut days: Vec<i64> = recent.iter().map(|ms| ms.div_euclid(DAY_MS)).collect();
    days.dedup();
    let older = (s.visits - recent.len() as i64).max(0);
    let distinct = (days.len() as i64 + older).max(1);
    let (first_day, last_day, now_day) = (
        first.div_euclid(DAY_MS),
        last.div_euclid(DAY_MS),
        now_ms.div_euclid(DAY_MS),
    );
    let recency = (last_day - first_day).max(0);
    // A client whose visits all fall on one day has no repeat, whatever the count says.
    let frequency = if recency == 0 { 0 } else { distinct - 1 };
    Some(Customer {
        frequency: frequency as f64,
        recency: recency as f64,
        t: (now_day - first_day).max(recency) as f64,
        monetary: (s.paid_minor > 0).then(|| s.paid_minor as f64 / distinct as f64),
    })
}

/// Judges the methods on the salon's last [`BACKTEST_DAYS`] days, and fits BG/NBD and
/// Gamma-Gamma on the whole history where BG/NBD wins. `visits` are the clients' visits that
/// came (for the backtest); `customers` the same clients' summaries at `now_ms` (for the fit).
pub fn build(visits: &[Visits], customers: &[Customer], now_ms: i64) -> SalonModel {
    let mut model = SalonModel {
        fitted_at_ms: now_ms,
        winner: None,
        backtest: Vec::new(),
        bgnbd: None,
        gamma_gamma: None,
        clv_percentiles: Vec::new(),
        mean_visit_minor: mean_visit(customers),
        clients: customers.len(),
        off: None,
        suggest: None,
    };
    let cutoff = now_ms - i64::from(BACKTEST_DAYS) * DAY_MS;
    let Some(c) = compare(visits, cutoff, BACKTEST_DAYS, FIXED_DAYS) else {
        model.off = Some(format!(
            "too little history to judge a model: no client came before the last {BACKTEST_DAYS} days, or none stayed away in them; the rules work meanwhile"
        ));
        return model;
    };
    model.winner = Some(c.winner.to_owned());
    model.backtest = vec![
        judged("fixed_30_days", Some(c.fixed.precision)),
        judged(
            "per_service_interval",
            Some(c.per_service_interval.precision),
        ),
        judged("personal_cadence", Some(c.personal_cadence.precision)),
        judged("bgnbd", c.bgnbd.as_ref().ok().map(|f| f.precision)),
    ];
    if c.winner != "bgnbd" {
        let bg = match &c.bgnbd {
            Ok(f) => format!("BG/NBD {:.3}", f.precision),
            Err(e) => format!("BG/NBD not fitted: {e}"),
        };
        let best = model
            .backtest
            .iter()
            .find(|j| j.method == c.winner)
            .and_then(|j| j.precision)
            .unwrap_or_default();
        model.off = Some(format!(
            "the rules predict better here: over the last {BACKTEST_DAYS} days {} had precision {best:.3}, {bg}",
            c.winner
        ));
        return model;
    }
    let m = match bgnbd::fit(customers) {
        Ok(m) => m,
        Err(e) => {
            model.off = Some(format!("BG/NBD on the whole history: {e}"));
            return model;
        }
    };
    model.bgnbd = Some(BgNbdParams {
        r: m.r,
        alpha: m.alpha,
        a: m.a,
        b: m.b,
        log_likelihood: m.log_likelihood,
    });
    // Gamma-Gamma is optional: without it a visit is worth her own average (or the salon's).
    if let Ok(g) = gamma_gamma::fit(customers) {
        model.gamma_gamma = Some(GammaGammaParams {
            p: g.p,
            q: g.q,
            v: g.v,
            log_likelihood: g.log_likelihood,
        });
    }
    let mut values: Vec<i64> = customers
        .iter()
        .filter_map(|c| model.risk(c))
        .map(|r| r.at_stake_minor)
        .collect();
    values.sort_unstable();
    model.clv_percentiles = percentiles(&values);
    model
}

fn judged(method: &str, precision: Option<f64>) -> Judged {
    Judged {
        method: method.to_owned(),
        precision,
    }
}

fn mean_visit(customers: &[Customer]) -> i64 {
    let values: Vec<f64> = customers.iter().filter_map(|c| c.monetary).collect();
    if values.is_empty() {
        return 0;
    }
    (values.iter().sum::<f64>() / values.len() as f64).round() as i64
}

/// The values at the percentiles 0..=100 of a sorted list (nearest rank); empty for none.
fn percentiles(sorted: &[i64]) -> Vec<i64> {
    if sorted.is_empty() {
        return Vec::new();
    }
    (0..=100usize)
        .map(|p| sorted[(p * (sorted.len() - 1) + 50) / 100])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use loyalty_core::history::Rhythm;

    #[test]
    fn a_summary_row_becomes_days() {
        let day = DAY_MS;
        let s = Snapshot {
            first_visit_ms: Some(10 * day),
            last_visit_ms: Some(40 * day + 5),
            visits: 4,
            paid_minor: 400_000,
            // Two records on day 40: three days with a visit.
            rhythm: Rhythm {
                all: vec![40 * day + 5, 40 * day, 25 * day, 10 * day],
                ..Rhythm::default()
            },
            ..Snapshot::default()
        };
        let c = customer(&s, 100 * day).unwrap();
        assert_eq!((c.frequency, c.recency, c.t), (2.0, 30.0, 90.0));
        assert_eq!(c.monetary, Some(400_000.0 / 3.0));
        let once = Snapshot {
            first_visit_ms: Some(10 * day),
            last_visit_ms: Some(10 * day + 7),
            visits: 2,
            ..Snapshot::default()
        };
        let c = customer(&once, 12 * day).unwrap();
        assert_eq!((c.frequency, c.recency, c.t), (0.0, 0.0, 2.0));
        assert_eq!(customer(&Snapshot::default(), 0), None);
    }

    #[test]
    fn percentiles_and_the_top_cut() {
        let values: Vec<i64> = (1..=1000).collect();
        let p = percentiles(&values);
        assert_eq!((p[0], p[50], p[100]), (1, 501, 1000));
        let m = SalonModel {
            fitted_at_ms: 0,
            winner: None,
            backtest: Vec::new(),
            bgnbd: None,
            gamma_gamma: None,
            clv_percentiles: p,
            mean_visit_minor: 0,
            clients: 1000,
            off: None,
            suggest: None,
        };
        assert_eq!(m.top_cut(20), 800);
        assert_eq!(m.top_cut(100), 1);
        assert!(!m.on(), "no BG/NBD, not on");
    }
}
