//! The fixed salon generator, and the backtest that compares the personal cadence with the fixed
//! 30-day rule on it.
//!
//! The generator (fixed here, so the backtest's figures can be reproduced): per client,
//! * 80% regulars: gaps Erlang-`k` with `k` uniform in 2–6 and a mean uniform in 21–60 days;
//! * 20% irregulars: Poisson visits (exponential gaps), mean uniform in 21–60 days;
//! * a primary service category (`hair`, `nails`, `brows`) and, for 30%, a second one with its
//!   own rhythm;
//! * 30% churn: they stop at a time uniform within the last year of the history;
//! * the first visit uniform within one mean gap of the history's start.
//!
//! Everything comes from one seeded generator (`fastrand`), so a seed is a salon.

use loyalty_core::history::Rhythm;

use crate::cadence::{DAY_MS, SalonRhythm, SalonRhythmBuilder, cadence};

pub const CATEGORIES: [&str; 3] = ["hair", "nails", "brows"];

/// How a simulated client visits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Regular { k: u32, mean_days: f64 },
    Irregular { mean_days: f64 },
}

/// One simulated visit that came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimVisit {
    pub at_ms: i64,
    pub category: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimClient {
    pub kind: Kind,
    /// Oldest first.
    pub visits: Vec<SimVisit>,
    /// When they stopped coming, for the 30% who do.
    pub churn_ms: Option<i64>,
}

impl SimClient {
    /// Their visits before `until_ms` as the summary keeps them (the text the store writes,
    /// read back the way a scan reads it).
    pub fn rhythm(&self, until_ms: i64) -> Rhythm {
        Rhythm::parse(&self.recent(until_ms))
    }

    /// The summary's `recent` text: the latest [`Rhythm::RECENT`] visits before `until_ms`.
    pub fn recent(&self, until_ms: i64) -> String {
        self.visits
            .iter()
            .rev()
            .filter(|v| v.at_ms < until_ms)
            .take(Rhythm::RECENT)
            .map(|v| format!("{}:{}", v.at_ms, v.category))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn last_before(&self, until_ms: i64) -> Option<i64> {
        self.visits
            .iter()
            .rev()
            .find(|v| v.at_ms < until_ms)
            .map(|v| v.at_ms)
    }
}

fn erlang(rng: &mut fastrand::Rng, k: u32, mean_days: f64) -> f64 {
    // A sum of k exponentials of mean mean/k; 1 − U keeps ln away from 0.
    (0..k)
        .map(|_| -(1.0 - rng.f64()).ln() * mean_days / f64::from(k))
        .sum()
}

/// `clients` clients whose visits fall in `[start_ms, end_ms)`.
pub fn generate(seed: u64, clients: usize, start_ms: i64, end_ms: i64) -> Vec<SimClient> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let year = 365 * DAY_MS;
    (0..clients)
        .map(|_| {
            let mean = |rng: &mut fastrand::Rng| 21.0 + 39.0 * rng.f64();
            let kind = if rng.f64() < 0.8 {
                Kind::Regular {
                    k: rng.u32(2..=6),
                    mean_days: mean(&mut rng),
                }
            } else {
                Kind::Irregular {
                    mean_days: mean(&mut rng),
                }
            };
            let churn_ms = (rng.f64() < 0.3)
                .then(|| end_ms - (rng.f64() * year as f64) as i64)
                .map(|c| c.max(start_ms));
            let stop = churn_ms.unwrap_or(end_ms);
            let primary = CATEGORIES[rng.usize(..CATEGORIES.len())];
            let mut series = vec![(primary, kind)];
            if rng.f64() < 0.3 {
                let other = CATEGORIES
                    .iter()
                    .copied()
                    .filter(|c| *c != primary)
                    .nth(rng.usize(..CATEGORIES.len() - 1))
                    .unwrap_or(primary);
                let second = match kind {
                    Kind::Regular { k, .. } => Kind::Regular {
                        k,
                        mean_days: mean(&mut rng),
                    },
                    Kind::Irregular { .. } => Kind::Irregular {
                        mean_days: mean(&mut rng),
                    },
                };
                series.push((other, second));
            }
            let mut visits = Vec::new();
            for (category, kind) in series {
                let (k, m) = match kind {
                    Kind::Regular { k, mean_days } => (k, mean_days),
                    Kind::Irregular { mean_days } => (1, mean_days),
                };
                let mut t = start_ms + (rng.f64() * m * DAY_MS as f64) as i64;
                while t < stop {
                    visits.push(SimVisit { at_ms: t, category });
                    t += ((erlang(&mut rng, k, m) * DAY_MS as f64) as i64).max(DAY_MS);
                }
            }
            visits.sort_by_key(|v| v.at_ms);
            SimClient {
                kind,
                visits,
                churn_ms,
            }
        })
        .collect()
}

/// The salon's rhythm as a scan at `now_ms` measures it.
pub fn salon_at(clients: &[SimClient], now_ms: i64) -> SalonRhythm {
    let mut b = SalonRhythmBuilder::default();
    for c in clients {
        b.add(&c.rhythm(now_ms));
    }
    b.finish()
}

/// Who each rule calls "away too long" at one moment, against who had really stopped coming.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backtest {
    /// Clients with a visit before the moment, and those of them who had stopped.
    pub clients: usize,
    pub churned: usize,
    /// The fixed rule: no visit for `fixed_days`.
    pub fixed_flagged: usize,
    pub fixed_recall: f64,
    pub fixed_precision: f64,
    /// The personal cadence: clients ranked by how late they are for their own rhythm (the
    /// overdue share), cut where it first reaches the fixed rule's recall.
    pub cadence_share: f64,
    pub cadence_flagged: usize,
    pub cadence_recall: f64,
    pub cadence_precision: f64,
    /// The cadence's lapse score ([`crate::lapse`]: how unusual the absence is for the client's
    /// own rhythm), cut the same way.
    pub lapse_flagged: usize,
    pub lapse_recall: f64,
    pub lapse_precision: f64,
}

/// Ranks `(stopped, score)` rows, highest score first, and flags from the top until `hits`
/// stopped clients are flagged: how many flagged, how many of them stopped, the last score.
fn cut_at(rows: &mut [(bool, f64)], hits: usize) -> (usize, usize, f64) {
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (mut flagged, mut found, mut last) = (0usize, 0usize, f64::INFINITY);
    for r in rows.iter() {
        if found >= hits {
            break;
        }
        flagged += 1;
        found += usize::from(r.0);
        last = r.1;
    }
    (flagged, found, last)
}

/// Both rules at `now_ms`; `None` when nobody had stopped.
pub fn backtest(clients: &[SimClient], now_ms: i64, fixed_days: u32) -> Option<Backtest> {
    let salon = salon_at(clients, now_ms);
    // (stopped, flagged by the fixed rule, overdue share, lapse score)
    let mut rows: Vec<(bool, bool, f64, f64)> = Vec::new();
    for c in clients {
        let Some(last) = c.last_before(now_ms) else {
            continue;
        };
        let stopped = c.churn_ms.is_some_and(|t| t <= now_ms);
        let fixed = now_ms - last >= i64::from(fixed_days) * DAY_MS;
        let rhythm = c.rhythm(now_ms);
        let late =
            cadence(&rhythm, &salon).map_or(f64::NEG_INFINITY, |cad| cad.overdue_share(now_ms));
        let lapse =
            crate::lapse::lapse(&rhythm, &salon, now_ms).map_or(f64::NEG_INFINITY, |l| l.score);
        rows.push((stopped, fixed, late, lapse));
    }
    let churned = rows.iter().filter(|r| r.0).count();
    if churned == 0 {
        return None;
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let fixed_flagged = rows.iter().filter(|r| r.1).count();
    let fixed_hits = rows.iter().filter(|r| r.0 && r.1).count();
    let mut by_share: Vec<(bool, f64)> = rows.iter().map(|r| (r.0, r.2)).collect();
    let (flagged, hits, share) = cut_at(&mut by_share, fixed_hits);
    let mut by_lapse: Vec<(bool, f64)> = rows.iter().map(|r| (r.0, r.3)).collect();
    let (lapse_flagged, lapse_hits, _) = cut_at(&mut by_lapse, fixed_hits);
    Some(Backtest {
        clients: rows.len(),
        churned,
        fixed_flagged,
        fixed_recall: ratio(fixed_hits, churned),
        fixed_precision: ratio(fixed_hits, fixed_flagged),
        cadence_share: share,
        cadence_flagged: flagged,
        cadence_recall: ratio(hits, churned),
        cadence_precision: ratio(hits, flagged),
        lapse_flagged,
        lapse_recall: ratio(lapse_hits, churned),
        lapse_precision: ratio(lapse_hits, lapse_flagged),
    })
}

/// When each rule reminds clients who had *not* stopped, over the year before `end_ms`: every
/// absence (a visit to the next) of a client with one rhythm gets the reminder once, when the
/// rule's condition is first met before the next visit — the fixed rule at `fixed_days`, the
/// cadence at `share` of the client's typical gap (as known at the visit) past it. A reminder is
/// *early* when it reaches the client before their true mean gap (they were not late yet).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub absences: usize,
    pub fixed_sent: usize,
    pub fixed_early: usize,
    pub cadence_sent: usize,
    pub cadence_early: usize,
}

pub fn timing(clients: &[SimClient], end_ms: i64, fixed_days: u32, share: f64) -> Timing {
    let year_start = end_ms - 365 * DAY_MS;
    let salon = salon_at(clients, year_start);
    let mut t = Timing {
        absences: 0,
        fixed_sent: 0,
        fixed_early: 0,
        cadence_sent: 0,
        cadence_early: 0,
    };
    for c in clients {
        let one_rhythm = c.visits.iter().all(|v| v.category == c.visits[0].category);
        if c.churn_ms.is_some() || !one_rhythm {
            continue;
        }
        let mean_ms = match c.kind {
            Kind::Regular { mean_days, .. } | Kind::Irregular { mean_days } => {
                mean_days * DAY_MS as f64
            }
        };
        for pair in c.visits.windows(2) {
            let (v, next) = (pair[0].at_ms, pair[1].at_ms);
            if v < year_start || next > end_ms {
                continue;
            }
            t.absences += 1;
            let fixed_at = v + i64::from(fixed_days) * DAY_MS;
            if fixed_at < next {
                t.fixed_sent += 1;
                t.fixed_early += usize::from(((fixed_at - v) as f64) < mean_ms);
            }
            if let Some(cad) = cadence(&c.rhythm(v + 1), &salon) {
                let at = cad.due_ms() + (share * cad.gap.days * DAY_MS as f64) as i64;
                if at < next {
                    t.cadence_sent += 1;
                    t.cadence_early += usize::from(((at - v) as f64) < mean_ms);
                }
            }
        }
    }
    t
}

/// A CDNOW-like salon, as BG/NBD supposes one: each client's first visit uniform in the first
/// quarter of `[start_ms, end_ms)`; while active she comes as a Poisson process of rate
/// λ ~ Gamma(r, α) (per day), and after each repeat visit leaves with probability p ~ Beta(a, b).
pub fn generate_bgnbd(
    seed: u64,
    clients: usize,
    start_ms: i64,
    end_ms: i64,
    (r, alpha, a, b): (f64, f64, f64, f64),
) -> Vec<SimClient> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let span = (end_ms - start_ms) as f64;
    (0..clients)
        .map(|_| {
            let lambda = gamma(&mut rng, r) / alpha;
            let (ga, gb) = (gamma(&mut rng, a), gamma(&mut rng, b));
            let p = ga / (ga + gb);
            let mut t = start_ms + (rng.f64() * span / 4.0) as i64;
            let mut visits = vec![SimVisit {
                at_ms: t,
                category: CATEGORIES[0],
            }];
            let mut churn_ms = None;
            loop {
                let gap_days = -(1.0 - rng.f64()).ln() / lambda;
                t = t.saturating_add(((gap_days * DAY_MS as f64) as i64).max(DAY_MS));
                if t >= end_ms {
                    break;
                }
                visits.push(SimVisit {
                    at_ms: t,
                    category: CATEGORIES[0],
                });
                if rng.f64() < p {
                    churn_ms = Some(t);
                    break;
                }
            }
            SimClient {
                kind: Kind::Irregular {
                    mean_days: 1.0 / lambda,
                },
                visits,
                churn_ms,
            }
        })
        .collect()
}

/// Gamma(shape, 1) by Marsaglia & Tsang (boosted below shape 1).
pub fn gamma(rng: &mut fastrand::Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        return gamma(rng, shape + 1.0) * rng.f64().powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let z = (-2.0 * (1.0 - rng.f64()).ln()).sqrt() * (std::f64::consts::TAU * rng.f64()).cos();
        let v = (1.0 + c * z).powi(3);
        if v > 0.0 && (1.0 - rng.f64()).ln() < 0.5 * z * z + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// The clients' visits as [`crate::backtest::compare`] reads them.
pub fn visits_of(clients: &[SimClient]) -> Vec<crate::backtest::Visits> {
    clients
        .iter()
        .map(|c| {
            c.visits
                .iter()
                .map(|v| (v.at_ms, v.category.to_owned()))
                .collect()
        })
        .collect()
}
