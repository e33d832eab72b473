//! Which way of spotting clients who will stay away works at this salon: the fixed 30-day rule,
//! a fixed interval per service (what the incumbents do), the personal cadence (the lapse
//! score) and BG/NBD — judged on the salon's own history. Everything but the last `horizon`
//! days is what the methods know; who came back in those days is the truth they are judged by.
//!
//! Each method ranks clients by how likely they are to stay away; the fixed rule flags those
//! away `fixed_days` or more, and every other method is cut where it first finds as many who
//! stayed away as the fixed rule did: its precision at the fixed rule's recall (when the fixed
//! rule found none of them, at as many flagged). BG/NBD's
//! expected visits over the horizon are also set against the visits that came (calibration).

use loyalty_core::history::Rhythm;
use serde::Serialize;

use crate::cadence::{DAY_MS, SalonRhythmBuilder};
use crate::lapse::lapse;
use crate::model::{BgNbd, Customer, bgnbd};

/// One method's flagged clients, at the fixed rule's recall for the others.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Flagged {
    pub flagged: usize,
    pub recall: f64,
    pub precision: f64,
}

/// Expected against actual visits in the horizon, for clients with this many repeat visits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    pub repeat_visits: String,
    pub clients: usize,
    pub expected: f64,
    pub actual: usize,
}

/// The four methods on one salon.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Clients with a visit before the horizon, and those of them with none in it.
    pub clients: usize,
    pub stayed_away: usize,
    pub fixed_days: u32,
    pub horizon_days: u32,
    pub fixed: Flagged,
    pub per_service_interval: Flagged,
    pub personal_cadence: Flagged,
    /// `Err` when BG/NBD could not be fitted (the reason): it is then not a candidate.
    pub bgnbd: Result<Flagged, String>,
    pub calibration: Vec<Calibration>,
    /// The method with the best precision (the fixed rule on a tie).
    pub winner: &'static str,
}

/// A client's visits that came: time (Unix ms) and categories (`a|b`), in any order.
pub type Visits = Vec<(i64, String)>;

/// Compares the methods at `cutoff_ms`, the start of the `horizon_days` they are judged on;
/// `None` when no client had a visit before it, or none stayed away.
pub fn compare(
    clients: &[Visits],
    cutoff_ms: i64,
    horizon_days: u32,
    fixed_days: u32,
) -> Option<Comparison> {
    let end = cutoff_ms + i64::from(horizon_days) * DAY_MS;
    struct Row {
        away: bool,
        rhythm: Rhythm,
        customer: Customer,
        came_in: usize,
    }
    let mut rows = Vec::new();
    for visits in clients {
        let mut before: Vec<&(i64, String)> = visits.iter().filter(|v| v.0 < cutoff_ms).collect();
        if before.is_empty() {
            continue;
        }
        before.sort_by_key(|v| std::cmp::Reverse(v.0));
        let recent: Vec<String> = before
            .iter()
            .take(Rhythm::RECENT)
            .map(|(ms, c)| format!("{ms}:{c}"))
            .collect();
        let mut days: Vec<i64> = before.iter().map(|v| v.0.div_euclid(DAY_MS)).collect();
        days.dedup();
        let (last_day, first_day) = (days[0], days[days.len() - 1]);
        let mut after: Vec<i64> = visits
            .iter()
            .filter(|v| v.0 >= cutoff_ms && v.0 < end)
            .map(|v| v.0.div_euclid(DAY_MS))
            .collect();
        after.sort_unstable();
        after.dedup();
        rows.push(Row {
            away: after.is_empty(),
            rhythm: Rhythm::parse(&recent.join(",")),
            customer: Customer {
                frequency: (days.len() - 1) as f64,
                recency: (last_day - first_day) as f64,
                t: (cutoff_ms.div_euclid(DAY_MS) - first_day).max(last_day - first_day) as f64,
                monetary: None,
            },
            came_in: after.len(),
        });
    }
    let stayed_away = rows.iter().filter(|r| r.away).count();
    if rows.is_empty() || stayed_away == 0 {
        return None;
    }
    let mut salon = SalonRhythmBuilder::default();
    for r in &rows {
        salon.add(&r.rhythm);
    }
    let salon = salon.finish();
    let away_days = |r: &Row| {
        r.rhythm
            .all
            .first()
            .map_or(0.0, |l| (cutoff_ms - l) as f64 / DAY_MS as f64)
    };
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let fixed_flagged = rows
        .iter()
        .filter(|r| away_days(r) >= f64::from(fixed_days));
    let (fixed_n, fixed_hits) =
        fixed_flagged.fold((0, 0), |(n, h), r| (n + 1, h + usize::from(r.away)));
    let fixed = Flagged {
        flagged: fixed_n,
        recall: ratio(fixed_hits, stayed_away),
        precision: ratio(fixed_hits, fixed_n),
    };
    let at_recall = |scores: Vec<(bool, f64)>| -> Flagged {
        let mut scores = scores;
        scores.sort_by(|a, b| b.1.total_cmp(&a.1));
        let (mut n, mut hits) = (0usize, 0usize);
        for (away, _) in &scores {
            // At the fixed rule's recall; when it found nobody who stayed away, as many flagged.
            let done = if fixed_hits > 0 {
                hits >= fixed_hits
            } else {
                n >= fixed_n
            };
            if done {
                break;
            }
            n += 1;
            hits += usize::from(*away);
        }
        Flagged {
            flagged: n,
            recall: ratio(hits, stayed_away),
            precision: ratio(hits, n),
        }
    };
    // A fixed interval per service: the salon's typical gap in the category of her last visit.
    let interval = at_recall(
        rows.iter()
            .map(|r| {
                let last = r.rhythm.all.first().copied();
                let gap = r
                    .rhythm
                    .categories
                    .iter()
                    .filter(|(_, s)| s.first().copied() == last)
                    .filter_map(|(c, _)| salon.categories.get(c).copied())
                    .fold(None, |m: Option<f64>, g| Some(m.map_or(g, |m| m.min(g))))
                    .or(salon.all)
                    .unwrap_or(30.0)
                    .max(1.0);
                (r.away, away_days(r) / gap)
            })
            .collect(),
    );
    let cadence = at_recall(
        rows.iter()
            .map(|r| {
                let score =
                    lapse(&r.rhythm, &salon, cutoff_ms).map_or(f64::NEG_INFINITY, |l| l.score);
                (r.away, score)
            })
            .collect(),
    );
    let customers: Vec<Customer> = rows.iter().map(|r| r.customer).collect();
    let model: Result<BgNbd, String> = bgnbd::fit(&customers).map_err(|e| e.to_string());
    let horizon = f64::from(horizon_days);
    let mut calibration = Vec::new();
    let bg = model.and_then(|m| {
        let expected: Vec<f64> = customers
            .iter()
            .map(|c| m.expected_visits(c, horizon))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        for (label, lo, hi) in [
            ("0", 0.0, 0.0),
            ("1", 1.0, 1.0),
            ("2–3", 2.0, 3.0),
            ("4–6", 4.0, 6.0),
            ("7+", 7.0, f64::INFINITY),
        ] {
            let (mut n, mut e, mut a) = (0usize, 0.0f64, 0usize);
            for ((r, c), x) in rows.iter().zip(&customers).zip(&expected) {
                if c.frequency >= lo && c.frequency <= hi {
                    n += 1;
                    e += x;
                    a += r.came_in;
                }
            }
            if n > 0 {
                calibration.push(Calibration {
                    repeat_visits: label.to_owned(),
                    clients: n,
                    expected: e,
                    actual: a,
                });
            }
        }
        Ok(at_recall(
            rows.iter()
                .zip(&expected)
                .map(|(r, x)| (r.away, -x))
                .collect(),
        ))
    });
    let mut winner = ("fixed_30_days", fixed.precision);
    for (name, p) in [
        ("per_service_interval", Some(interval.precision)),
        ("personal_cadence", Some(cadence.precision)),
        ("bgnbd", bg.as_ref().ok().map(|f| f.precision)),
    ] {
        if let Some(p) = p.filter(|p| *p > winner.1) {
            winner = (name, p);
        }
    }
    Some(Comparison {
        clients: rows.len(),
        stayed_away,
        fixed_days,
        horizon_days,
        fixed,
        per_service_interval: interval,
        personal_cadence: cadence,
        bgnbd: bg,
        calibration,
        winner: winner.0,
    })
}
