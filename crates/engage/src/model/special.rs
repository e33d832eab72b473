//! The special functions the models need, written here (no maintained permissively licensed
//! crate has ₂F₁): `ln Γ` by Lanczos' approximation, `ln B`, and the Gauss hypergeometric
//! function ₂F₁ by its power series.

/// Lanczos' approximation with g = 7 and nine coefficients: about 15 significant digits for
/// `x > 0` (the published coefficient set; see Press et al., *Numerical Recipes*, §6.1).
const LANCZOS_G: f64 = 7.0;
const LANCZOS: [f64; 9] = [
    0.999_999_999_999_809_9,
    676.520_368_121_885_1,
    -1_259.139_216_722_402_8,
    771.323_428_777_653_1,
    -176.615_029_162_140_6,
    12.507_343_278_686_905,
    -0.138_571_095_265_720_12,
    9.984_369_578_019_572e-6,
    1.505_632_735_149_311_6e-7,
];

/// `ln Γ(x)` for `x > 0`; NaN otherwise.
pub fn ln_gamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 || x.is_infinite() {
        return f64::NAN;
    }
    if x < 0.5 {
        // Reflection keeps the approximation where it is accurate: Γ(x)Γ(1−x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = LANCZOS[0];
    for (i, c) in LANCZOS.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + LANCZOS_G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// `ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b)`.
pub fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// Why ₂F₁ has no value here.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum Hyp2f1Error {
    #[error("₂F₁ is summed for 0 ≤ z < 1 only (z = {0})")]
    OutOfRange(f64),
    #[error("₂F₁'s series did not converge in {0} terms")]
    NoConvergence(usize),
}

/// The most terms the series may take (enough for `z` up to about 0.999).
pub const HYP2F1_TERMS: usize = 200_000;

/// `₂F₁(a, b; c; z) = Σₙ (a)ₙ (b)ₙ / (c)ₙ · zⁿ / n!` for `0 ≤ z < 1` and `c > 0`, summed until a
/// term no longer changes the sum in the 16th digit.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> Result<f64, Hyp2f1Error> {
    if !(0.0..1.0).contains(&z) || c <= 0.0 {
        return Err(Hyp2f1Error::OutOfRange(z));
    }
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for n in 0..HYP2F1_TERMS {
        let n = n as f64;
        term *= (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
        sum += term;
        if term.abs() <= 1e-16 * sum.abs() {
            return Ok(sum);
        }
        if !sum.is_finite() {
            break;
        }
    }
    Err(Hyp2f1Error::NoConvergence(HYP2F1_TERMS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_at_known_points() {
        // Γ(1) = Γ(2) = 1, Γ(5) = 24, Γ(1/2) = √π, Γ(10.5) = 1133278.3889487855…
        assert!(ln_gamma(1.0).abs() < 1e-14);
        assert!(ln_gamma(2.0).abs() < 1e-14);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-13);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-14);
        assert!((ln_gamma(10.5) - 1_133_278.388_948_785_5f64.ln()).abs() < 1e-12);
        // Γ(0.1) = 9.513507698668731…
        assert!((ln_gamma(0.1) - 9.513_507_698_668_732f64.ln()).abs() < 1e-13);
        // Stirling's territory: ln Γ(1000) = 5905.220423209181…
        assert!((ln_gamma(1000.0) - 5_905.220_423_209_181).abs() < 1e-9);
        assert!(ln_gamma(0.0).is_nan() && ln_gamma(-1.0).is_nan());
    }

    #[test]
    fn hyp2f1_against_closed_forms_and_an_integral() {
        // ₂F₁(1, 1; 2; z) = −ln(1 − z)/z.
        let z = 0.7;
        assert!((hyp2f1(1.0, 1.0, 2.0, z).unwrap() - (-(1.0f64 - z).ln() / z)).abs() < 1e-13);
        // ₂F₁(a, b; b; z) = (1 − z)^(−a).
        assert!((hyp2f1(2.5, 3.0, 3.0, 0.4).unwrap() - 0.6f64.powf(-2.5)).abs() < 1e-12);
        // Euler's integral, by a midpoint sum: ₂F₁(a,b;c;z) = Γ(c)/(Γ(b)Γ(c−b)) ∫₀¹
        // t^(b−1) (1−t)^(c−b−1) (1−zt)^(−a) dt, for c > b > 0.
        let (a, b, c, z) = (2.243, 4.426, 6.5, 0.45);
        let n = 2_000_000;
        let h = 1.0 / n as f64;
        let integral: f64 = (0..n)
            .map(|i| {
                let t = (i as f64 + 0.5) * h;
                t.powf(b - 1.0) * (1.0 - t).powf(c - b - 1.0) * (1.0 - z * t).powf(-a) * h
            })
            .sum();
        let euler = (ln_gamma(c) - ln_gamma(b) - ln_gamma(c - b)).exp() * integral;
        let series = hyp2f1(a, b, c, z).unwrap();
        assert!((series - euler).abs() / euler < 1e-5, "{series} {euler}");
        assert!(hyp2f1(1.0, 1.0, 2.0, 1.0).is_err());
    }
}
