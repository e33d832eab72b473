//! The personal cadence: each client's typical gap between visits, per service category, and
//! from it when they are due again.
//!
//! Salon visits are regular (a colour every five weeks, nails every three), not the random
//! arrivals BG/NBD assumes. [`SalonRhythm`] measures how regular a salon's clients are with the
//! Wheat–Morrison estimator: for each client with three visits or more, `M = g₁ / (g₁ + g₂)`
//! from their last two gaps; `M ~ Beta(k, k)` under Erlang-`k` gaps, so
//! `k̂ = (1 − 4·Var M) / (8·Var M)` — about 1 for random visits, well above it for regular ones.
//!
//! A client's typical gap in a category is the median of their last [`RECENT_GAPS`] gaps in it
//! (one odd gap does not move it), shrunk towards the salon's typical gap for that category when
//! they have few: `(n·own + PRIOR_GAPS·salon) / (n + PRIOR_GAPS)` over their `n` own gaps; a
//! client with one visit in a category has the salon's gap. They are due again a typical gap
//! after their last visit in the category; of the categories they still keep (their last visit
//! in it is within [`KEPT_GAPS`] typical gaps of their last visit at all), the earliest due wins.

use std::collections::BTreeMap;

use loyalty_core::history::Rhythm;

pub const DAY_MS: i64 = 86_400_000;
/// The gaps a client's own median is taken over, newest first.
pub const RECENT_GAPS: usize = 5;
/// How many gaps the salon's typical gap counts for beside a client's own.
pub const PRIOR_GAPS: f64 = 2.0;
/// A category the client has not had for this many of its typical gaps before their last
/// visit is one they dropped; it no longer makes them due.
pub const KEPT_GAPS: f64 = 2.0;

/// Days between consecutive visits of a series kept newest first.
pub fn gaps_days(series: &[i64]) -> Vec<f64> {
    series
        .windows(2)
        .map(|w| (w[0] - w[1]) as f64 / DAY_MS as f64)
        .collect()
}

/// The median; `None` for no values. NaN never reaches here (gaps are differences of integers).
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// A client's own typical gap in a series: the median of their latest gaps, and how many.
pub fn own_gap(series: &[i64]) -> Option<(f64, usize)> {
    let mut gaps = gaps_days(series);
    gaps.truncate(RECENT_GAPS);
    let n = gaps.len();
    median(&mut gaps).map(|m| (m, n))
}

/// What a salon's history says about its clients' rhythm.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SalonRhythm {
    /// The median of clients' own typical gaps, over all visits (days).
    pub all: Option<f64>,
    /// The same per service category.
    pub categories: BTreeMap<String, f64>,
    /// Clients with three visits or more (two gaps): what the estimates stand on.
    pub regulars: usize,
    /// The Wheat–Morrison regularity `k̂`; `None` below [`SalonRhythm::MIN_REGULARS`] clients,
    /// [`SalonRhythm::K_MAX`] when every client's last two gaps were alike.
    pub k: Option<f64>,
}

impl SalonRhythm {
    /// Below this many clients with three visits, the salon's gaps say too little: reminders
    /// fall back to the fixed rules.
    pub const MIN_REGULARS: usize = 20;
    pub const K_MAX: f64 = 100.0;

    /// Why the personal cadence cannot be used, in words the salon reads; `None` when it can.
    pub fn too_little(&self) -> Option<String> {
        (self.regulars < Self::MIN_REGULARS).then(|| {
            format!(
                "too little history for personal rhythms: {} clients with 3 visits or more, {} needed",
                self.regulars,
                Self::MIN_REGULARS
            )
        })
    }
}

/// Builds a [`SalonRhythm`] one client at a time (a scan streams its rows through it).
#[derive(Debug, Default)]
pub struct SalonRhythmBuilder {
    all: Vec<f64>,
    categories: BTreeMap<String, Vec<f64>>,
    ms: Vec<f64>,
}

impl SalonRhythmBuilder {
    pub fn add(&mut self, r: &Rhythm) {
        if let Some((g, _)) = own_gap(&r.all) {
            self.all.push(g);
        }
        for (cat, series) in &r.categories {
            if let Some((g, _)) = own_gap(series) {
                self.categories.entry(cat.clone()).or_default().push(g);
            }
        }
        if let [a, b, c, ..] = r.all[..] {
            let (last, before) = ((a - b) as f64, (b - c) as f64);
            if last + before > 0.0 {
                self.ms.push(before / (before + last));
            }
        }
    }

    pub fn finish(mut self) -> SalonRhythm {
        let regulars = self.ms.len();
        let k = (regulars >= SalonRhythm::MIN_REGULARS).then(|| wheat_morrison(&self.ms));
        SalonRhythm {
            all: median(&mut self.all),
            categories: self
                .categories
                .into_iter()
                .filter_map(|(c, mut v)| median(&mut v).map(|m| (c, m)))
                .collect(),
            regulars,
            k,
        }
    }
}

/// `k̂ = (1 − 4·Var M) / (8·Var M)` over the `M`s, capped at [`SalonRhythm::K_MAX`].
pub fn wheat_morrison(ms: &[f64]) -> f64 {
    let n = ms.len() as f64;
    if n < 2.0 {
        return SalonRhythm::K_MAX;
    }
    let mean = ms.iter().sum::<f64>() / n;
    let var = ms.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (n - 1.0);
    if var <= 0.0 {
        return SalonRhythm::K_MAX;
    }
    ((1.0 - 4.0 * var) / (8.0 * var)).clamp(0.0, SalonRhythm::K_MAX)
}

/// A client's typical gap and where it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gap {
    pub days: f64,
    /// The client's own gaps it stands on (0: the salon's gap alone).
    pub own_gaps: usize,
}

/// The typical gap of a client's series given the salon's for it.
pub fn typical_gap(series: &[i64], salon: Option<f64>) -> Option<Gap> {
    let days = match (own_gap(series), salon) {
        (Some((own, n)), Some(g)) => {
            let n = n as f64;
            (n * own + PRIOR_GAPS * g) / (n + PRIOR_GAPS)
        }
        (Some((own, _)), None) => own,
        (None, Some(g)) => g,
        (None, None) => return None,
    };
    // A typical gap under a day would make a client due at once: a day at least.
    Some(Gap {
        days: days.max(1.0),
        own_gaps: own_gap(series).map_or(0, |(_, n)| n),
    })
}

/// When a client is due again, and by which category.
#[derive(Debug, Clone, PartialEq)]
pub struct Cadence {
    /// The category that is due first; `None`: their visits at all.
    pub category: Option<String>,
    /// Their last visit in it.
    pub last_ms: i64,
    pub gap: Gap,
}

impl Cadence {
    pub fn due_ms(&self) -> i64 {
        self.last_ms + (self.gap.days * DAY_MS as f64) as i64
    }

    /// Days past the due date (negative before it).
    pub fn overdue_days(&self, now_ms: i64) -> f64 {
        (now_ms - self.due_ms()) as f64 / DAY_MS as f64
    }

    /// How late they are as a share of their own gap: 0 on the due date, 1 a whole gap late.
    pub fn overdue_share(&self, now_ms: i64) -> f64 {
        self.overdue_days(now_ms) / self.gap.days
    }
}

/// A client's cadence: the earliest due of the categories they keep, else their visits at all.
/// `None` without a visit or without any gap to go by.
pub fn cadence(r: &Rhythm, salon: &SalonRhythm) -> Option<Cadence> {
    let last_any = *r.all.first()?;
    let mut best: Option<Cadence> = None;
    for (cat, series) in &r.categories {
        let (Some(&last), Some(gap)) = (
            series.first(),
            typical_gap(series, salon.categories.get(cat).copied()),
        ) else {
            continue;
        };
        if (last_any - last) as f64 > KEPT_GAPS * gap.days * DAY_MS as f64 {
            continue;
        }
        let c = Cadence {
            category: Some(cat.clone()),
            last_ms: last,
            gap,
        };
        if best.as_ref().is_none_or(|b| c.due_ms() < b.due_ms()) {
            best = Some(c);
        }
    }
    best.or_else(|| {
        typical_gap(&r.all, salon.all).map(|gap| Cadence {
            category: None,
            last_ms: last_any,
            gap,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: i64 = DAY_MS;

    fn series(days_ago: &[i64], now: i64) -> Vec<i64> {
        days_ago.iter().map(|d| now - d * D).collect()
    }

    #[test]
    fn the_median_shrugs_off_one_odd_gap() {
        let now = 1_000 * D;
        // Every 35 days, once 90 (a holiday).
        let s = series(&[0, 35, 70, 160, 195, 230], now);
        assert_eq!(own_gap(&s), Some((35.0, 5)));
    }

    #[test]
    fn few_visits_lean_on_the_salon() {
        let now = 1_000 * D;
        let one_gap = series(&[0, 20], now);
        let g = typical_gap(&one_gap, Some(50.0)).unwrap();
        assert_eq!(g.own_gaps, 1);
        assert!((g.days - 40.0).abs() < 1e-9, "{g:?}"); // (1·20 + 2·50) / 3
        let none = series(&[0], now);
        assert_eq!(typical_gap(&none, Some(50.0)).unwrap().days, 50.0);
        assert_eq!(typical_gap(&none, None), None);
        let five = series(&[0, 20, 40, 60, 80, 100], now);
        let g = typical_gap(&five, Some(50.0)).unwrap();
        assert!((g.days - (5.0 * 20.0 + 100.0) / 7.0).abs() < 1e-9);
    }

    #[test]
    fn the_earliest_kept_category_is_due_first() {
        let now = 1_000 * D;
        let mut r = Rhythm {
            all: series(&[0, 21, 35, 42, 63, 70, 84], now),
            ..Rhythm::default()
        };
        r.categories
            .insert("hair".into(), series(&[0, 35, 70], now));
        r.categories
            .insert("nails".into(), series(&[0, 21, 42, 63, 84], now));
        // Brows, dropped a year ago.
        r.categories
            .insert("brows".into(), series(&[400, 430, 460], now));
        let salon = SalonRhythm::default();
        let c = cadence(&r, &salon).unwrap();
        assert_eq!(c.category.as_deref(), Some("nails"));
        assert_eq!(c.due_ms(), now + 21 * D);
        assert!((c.overdue_share(now + 21 * D + 21 * D / 4) - 0.25).abs() < 1e-6);
    }

    #[test]
    fn regular_and_random_salons_read_apart() {
        // Two gaps alike for everyone: k at its cap; M spread uniformly (k = 1 exactly for
        // Beta(1, 1), whose variance is 1/12).
        assert_eq!(wheat_morrison(&[0.5; 30]), SalonRhythm::K_MAX);
        let uniform: Vec<f64> = (0..1000).map(|i| (f64::from(i) + 0.5) / 1000.0).collect();
        let k = wheat_morrison(&uniform);
        assert!((k - 1.0).abs() < 0.01, "{k}");
    }

    #[test]
    fn a_small_salon_says_why_it_falls_back() {
        let now = 1_000 * D;
        let mut b = SalonRhythmBuilder::default();
        for i in 0..5 {
            let r = Rhythm {
                all: series(&[i, 30 + i, 60 + i], now),
                ..Rhythm::default()
            };
            b.add(&r);
        }
        let s = b.finish();
        assert_eq!(s.regulars, 5);
        assert_eq!(s.k, None);
        assert!(
            s.too_little()
                .unwrap()
                .contains("5 clients with 3 visits or more")
        );
        assert_eq!(s.all, Some(30.0));
    }
}
