//! Has she stopped coming? How unusual a client's absence is for her own rhythm.
//!
//! A client's visits (all services together) are read as a renewal process with Erlang-`k` gaps
//! of mean `m`: `m` the mean of her recent gaps, shrunk towards the salon's typical gap when she
//! has few (`(n·own + PRIOR_GAPS·salon) / (n + PRIOR_GAPS)`), `k` her regularity from her gaps'
//! spread (`round(mean² / variance)`, 1 = random to [`K_MAX`] = very regular; the salon's `k̂`
//! while she has fewer than three gaps).
//!
//! Away `t` days, the chance of an absence at least this long were she still coming is the
//! gaps' survival `S(t)`. If instead she stopped at a time uniform over a long stretch, the
//! chance of her last visit being `t` ago with nothing since is proportional to `∫₀ᵗ S(u) du`;
//! so the odds that she stopped grow as `∫₀ᵗ S(u) du / S(t)`, the same factor for everyone
//! aside. Its logarithm ranks clients for a win-back message (the `lapsed` trigger) — in closed
//! form, in log space so a long absence does not underflow.

use loyalty_core::history::Rhythm;

use crate::cadence::{DAY_MS, PRIOR_GAPS, SalonRhythm, gaps_days};

/// The most regular a client is read as (an Erlang shape above it changes little).
pub const K_MAX: u32 = 8;
/// Her gaps read for her mean and spread, newest first (the summary keeps 30 visits).
pub const LAPSE_GAPS: usize = 29;

/// A client's absence against her own rhythm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lapse {
    /// Her mean gap (days).
    pub mean_days: f64,
    /// Her regularity (the Erlang shape).
    pub k: u32,
    /// Her own gaps the figures stand on.
    pub own_gaps: usize,
    pub away_days: f64,
    /// The chance of an absence at least this long were she still coming at her rhythm.
    pub chance: f64,
    /// `ln(∫₀ᵗ S(u) du / S(t))`: higher, more likely she stopped.
    pub score: f64,
}

/// Her absence at `now_ms`; `None` without a visit, or without a gap of hers or the salon's to
/// go by.
pub fn lapse(r: &Rhythm, salon: &SalonRhythm, now_ms: i64) -> Option<Lapse> {
    let last = *r.all.first()?;
    let mut gaps: Vec<f64> = gaps_days(&r.all)
        .into_iter()
        .filter(|g| *g >= 0.5)
        .collect();
    gaps.truncate(LAPSE_GAPS);
    let n = gaps.len();
    let own_mean = (n > 0).then(|| gaps.iter().sum::<f64>() / n as f64);
    let mean = match (own_mean, salon.all) {
        (Some(own), Some(s)) => (n as f64 * own + PRIOR_GAPS * s) / (n as f64 + PRIOR_GAPS),
        (Some(own), None) => own,
        (None, Some(s)) => s,
        (None, None) => return None,
    }
    .max(1.0);
    let k = match own_mean {
        Some(own) if n >= 3 => {
            let var = gaps.iter().map(|g| (g - own).powi(2)).sum::<f64>() / (n - 1) as f64;
            if var <= 0.0 {
                K_MAX
            } else {
                ((own * own / var).round() as u32).clamp(1, K_MAX)
            }
        }
        _ => salon.k.map_or(2, |k| (k.round() as u32).clamp(1, K_MAX)),
    };
    let away_days = ((now_ms - last) as f64 / DAY_MS as f64).max(0.0);
    let (ln_s, ln_integral) = erlang_logs(k, mean, away_days);
    Some(Lapse {
        mean_days: mean,
        k,
        own_gaps: n,
        away_days,
        chance: ln_s.exp(),
        score: ln_integral - ln_s,
    })
}

/// `ln S(t)` and `ln ∫₀ᵗ S(u) du` for Erlang-`k` gaps of mean `m`, with `x = k·t/m`:
/// `S(t) = e^{−x} Σ_{i<k} xⁱ/i!` and `∫₀ᵗ S = (m/k) Σ_{i<k} (1 − e^{−x} Σ_{j≤i} xʲ/j!)`.
pub fn erlang_logs(k: u32, mean_days: f64, t_days: f64) -> (f64, f64) {
    let lambda = f64::from(k) / mean_days;
    let x = lambda * t_days;
    // Partial sums of xʲ/j!, j < k.
    let mut partial = Vec::with_capacity(k as usize);
    let (mut term, mut sum) = (1.0f64, 0.0f64);
    for j in 0..k {
        if j > 0 {
            term *= x / f64::from(j);
        }
        sum += term;
        partial.push(sum);
    }
    let ln_s = -x + sum.ln();
    let integral: f64 = partial.iter().map(|p| 1.0 - (-x).exp() * p).sum::<f64>() / lambda;
    (ln_s, integral.max(f64::MIN_POSITIVE).ln())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: i64 = DAY_MS;

    #[test]
    fn survival_and_its_integral_in_closed_form() {
        // k = 1: S(t) = e^{−t/m}, ∫₀ᵗ S = m(1 − e^{−t/m}).
        let (ln_s, ln_i) = erlang_logs(1, 30.0, 30.0);
        assert!((ln_s - (-1.0)).abs() < 1e-12);
        assert!((ln_i.exp() - 30.0 * (1.0 - (-1.0f64).exp())).abs() < 1e-9);
        // k = 2, m = 30, t = 30: x = 2, S = e^{−2}(1 + 2) = 0.40601.
        let (ln_s, ln_i) = erlang_logs(2, 30.0, 30.0);
        assert!((ln_s.exp() - 3.0 * (-2.0f64).exp()).abs() < 1e-12);
        // Against a midpoint sum of S.
        let s = |u: f64| (-(u / 15.0)).exp() * (1.0 + u / 15.0);
        let numeric: f64 = (0..30_000)
            .map(|i| s((f64::from(i) + 0.5) / 1000.0) / 1000.0)
            .sum();
        assert!(
            (ln_i.exp() - numeric).abs() < 1e-6,
            "{} {numeric}",
            ln_i.exp()
        );
        // A year away for a 3-week rhythm: no underflow, a finite and large score.
        let (ln_s, ln_i) = erlang_logs(6, 21.0, 365.0);
        assert!(ln_s.is_finite() && ln_s < -50.0 && ln_i.is_finite());
    }

    #[test]
    fn the_same_absence_reads_by_her_own_rhythm() {
        let now = 1_000 * D;
        let every = |days: i64| Rhythm {
            all: (0..10).map(|i| now - 40 * D - i * days * D).collect(),
            ..Rhythm::default()
        };
        let salon = SalonRhythm::default();
        // Forty days away: long for a three-week client, nothing for a two-month one.
        let weekly = lapse(&every(21), &salon, now).unwrap();
        let slow = lapse(&every(60), &salon, now).unwrap();
        assert_eq!(weekly.k, K_MAX);
        assert!(weekly.chance < 0.02, "{weekly:?}");
        assert!(slow.chance > 0.8, "{slow:?}");
        assert!(weekly.score > slow.score);
        // One visit only: the salon's gap and regularity stand in.
        let once = Rhythm {
            all: vec![now - 40 * D],
            ..Rhythm::default()
        };
        let salon = SalonRhythm {
            all: Some(30.0),
            k: Some(3.4),
            ..SalonRhythm::default()
        };
        let l = lapse(&once, &salon, now).unwrap();
        assert_eq!((l.mean_days, l.k, l.own_gaps), (30.0, 3, 0));
        assert_eq!(lapse(&once, &SalonRhythm::default(), now), None);
    }
}
