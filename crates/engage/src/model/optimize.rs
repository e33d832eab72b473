//! Nelder–Mead minimisation: no derivatives, which the likelihoods here would need through
//! `ln Γ`; robust on their few, log-scaled parameters. Restarted from its best point until a
//! restart no longer improves it (a simplex can collapse early on a ridge).

/// How a minimisation ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Minimum {
    pub x: Vec<f64>,
    pub value: f64,
    /// Function evaluations, over every restart.
    pub evaluations: usize,
    /// The simplex shrank to the tolerance before the evaluation budget ran out.
    pub converged: bool,
}

/// The budget and tolerance of a minimisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub max_evaluations: usize,
    /// The spread of the simplex's values, and its size in every coordinate, below which it
    /// stops.
    pub tolerance: f64,
    /// The initial simplex's step in every coordinate.
    pub step: f64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            max_evaluations: 20_000,
            tolerance: 1e-10,
            step: 0.5,
        }
    }
}

/// Minimises `f` from `start`. A non-finite value counts as +∞ (a step outside the function's
/// domain is never taken).
pub fn minimize(f: impl Fn(&[f64]) -> f64, start: &[f64], settings: Settings) -> Minimum {
    let g = |x: &[f64]| {
        let v = f(x);
        if v.is_finite() { v } else { f64::INFINITY }
    };
    let mut best = Minimum {
        x: start.to_vec(),
        value: g(start),
        evaluations: 1,
        converged: false,
    };
    for _ in 0..10 {
        let budget = settings.max_evaluations.saturating_sub(best.evaluations);
        let run = simplex(&g, &best.x, settings, budget);
        let improved = run.value < best.value - settings.tolerance;
        best = Minimum {
            evaluations: best.evaluations + run.evaluations,
            converged: run.converged,
            ..run
        };
        if !improved || !best.converged || best.evaluations >= settings.max_evaluations {
            break;
        }
    }
    best
}

fn simplex(f: &impl Fn(&[f64]) -> f64, start: &[f64], s: Settings, budget: usize) -> Minimum {
    let n = start.len();
    let mut points: Vec<Vec<f64>> = vec![start.to_vec()];
    for i in 0..n {
        let mut p = start.to_vec();
        p[i] += s.step;
        points.push(p);
    }
    let mut values: Vec<f64> = points.iter().map(|p| f(p)).collect();
    let mut evaluations = n + 1;
    let mut converged = false;
    while evaluations < budget {
        let mut order: Vec<usize> = (0..=n).collect();
        order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
        points = order.iter().map(|&i| points[i].clone()).collect();
        values = order.iter().map(|&i| values[i]).collect();
        let spread = (values[n] - values[0]).abs();
        let size = (1..=n)
            .flat_map(|i| (0..n).map(move |k| (i, k)))
            .map(|(i, k)| (points[i][k] - points[0][k]).abs())
            .fold(0.0f64, f64::max);
        if spread <= s.tolerance * (1.0 + values[0].abs()) && size <= s.tolerance.sqrt() {
            converged = true;
            break;
        }
        let centroid: Vec<f64> = (0..n)
            .map(|k| points[..n].iter().map(|p| p[k]).sum::<f64>() / n as f64)
            .collect();
        let towards = |t: f64| -> Vec<f64> {
            (0..n)
                .map(|k| centroid[k] + t * (points[n][k] - centroid[k]))
                .collect()
        };
        let reflected = towards(-1.0);
        let fr = f(&reflected);
        evaluations += 1;
        if fr < values[0] {
            let expanded = towards(-2.0);
            let fe = f(&expanded);
            evaluations += 1;
            (points[n], values[n]) = if fe < fr {
                (expanded, fe)
            } else {
                (reflected, fr)
            };
        } else if fr < values[n - 1] {
            (points[n], values[n]) = (reflected, fr);
        } else {
            let contracted = if fr < values[n] {
                towards(-0.5)
            } else {
                towards(0.5)
            };
            let fc = f(&contracted);
            evaluations += 1;
            if fc < values[n].min(fr) {
                (points[n], values[n]) = (contracted, fc);
            } else {
                // Shrink everything towards the best point.
                for i in 1..=n {
                    points[i] = (0..n)
                        .map(|k| points[0][k] + 0.5 * (points[i][k] - points[0][k]))
                        .collect();
                    values[i] = f(&points[i]);
                }
                evaluations += n;
            }
        }
    }
    let best = (0..=n)
        .min_by(|&i, &j| values[i].total_cmp(&values[j]))
        .unwrap_or(0);
    Minimum {
        x: points[best].clone(),
        value: values[best],
        evaluations,
        converged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rosenbrocks_valley_floor() {
        let rosenbrock = |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        let m = minimize(rosenbrock, &[-1.2, 1.0], Settings::default());
        assert!(m.converged, "{m:?}");
        assert!(
            (m.x[0] - 1.0).abs() < 1e-4 && (m.x[1] - 1.0).abs() < 1e-4,
            "{m:?}"
        );
    }

    #[test]
    fn a_budget_too_small_is_reported_as_not_converged() {
        let bowl = |x: &[f64]| x.iter().map(|v| (v - 3.0).powi(2)).sum::<f64>();
        let m = minimize(
            bowl,
            &[0.0; 4],
            Settings {
                max_evaluations: 30,
                ..Settings::default()
            },
        );
        assert!(!m.converged);
        // Outside the domain counts as +∞: never chosen.
        let half = |x: &[f64]| {
            if x[0] < 0.0 {
                f64::NAN
            } else {
                (x[0] - 0.1).powi(2)
            }
        };
        let m = minimize(half, &[1.0], Settings::default());
        assert!((m.x[0] - 0.1).abs() < 1e-4, "{m:?}");
    }
}
