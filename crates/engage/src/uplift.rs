//! Proof, not hope: the control group and the uplift it measures.
//!
//! A deterministic share of a salon's clients ([`in_control`]: a hash of the client id and the
//! salon's salt) gets no marketing message; where one would have gone, it is recorded. The
//! uplift of a trigger is the return rate (a visit that came within 30 days) of those sent the
//! message minus that of those held out, with a 95% interval by Newcombe's hybrid score method
//! (the difference of two Wilson intervals; it keeps its coverage for small arms and rates near
//! 0 or 1, where the textbook Wald interval does not). One salon is usually too small for the
//! interval to exclude zero; [`pooled`] combines salons, each a stratum, with Mantel–Haenszel
//! weights `n₁n₀/(n₁+n₀)` and the Wald variance of the weighted difference.

use loyalty_core::ClientId;

/// Whether a client is in the salon's control group: `percent` of clients, drawn by a hash of
/// the client id and the salon's salt (splitmix64), the same in every scan, report and instance.
pub fn in_control(salt: u64, client: ClientId, percent: u8) -> bool {
    let h = splitmix64(salt ^ splitmix64(client.0 as u64));
    h % 10_000 < u64::from(percent) * 100
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One arm: how many got (or would have got) the message, and how many came back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Arm {
    pub n: u64,
    pub returned: u64,
}

impl Arm {
    pub fn rate(self) -> Option<f64> {
        (self.n > 0).then(|| self.returned as f64 / self.n as f64)
    }
}

/// A difference in return rates, treated − control, with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Uplift {
    pub treated: f64,
    pub control: f64,
    pub difference: f64,
    pub low: f64,
    pub high: f64,
}

impl Uplift {
    /// Whether the interval leaves zero out: the data says the messages changed something.
    pub fn excludes_zero(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

const Z95: f64 = 1.959_963_984_540_054;

/// The Wilson score interval of a proportion.
pub fn wilson(arm: Arm) -> Option<(f64, f64)> {
    let p = arm.rate()?;
    let n = arm.n as f64;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// Newcombe's hybrid score interval for `treated − control`; `None` when an arm is empty.
pub fn newcombe(treated: Arm, control: Arm) -> Option<Uplift> {
    let (p1, p0) = (treated.rate()?, control.rate()?);
    let ((l1, u1), (l0, u0)) = (wilson(treated)?, wilson(control)?);
    let d = p1 - p0;
    Some(Uplift {
        treated: p1,
        control: p0,
        difference: d,
        low: d - ((p1 - l1).powi(2) + (u0 - p0).powi(2)).sqrt(),
        high: d + ((u1 - p1).powi(2) + (p0 - l0).powi(2)).sqrt(),
    })
}

/// Salons pooled, each a stratum `(treated, control)`: the Mantel–Haenszel weighted difference
/// and its Wald 95% interval. Strata with an empty arm carry no weight; `None` if all do.
pub fn pooled(strata: &[(Arm, Arm)]) -> Option<Uplift> {
    let (mut w_sum, mut d_sum, mut var_sum) = (0.0, 0.0, 0.0);
    let (mut t, mut c) = (Arm::default(), Arm::default());
    for &(t1, c0) in strata {
        let (Some(p1), Some(p0)) = (t1.rate(), c0.rate()) else {
            continue;
        };
        let (n1, n0) = (t1.n as f64, c0.n as f64);
        let w = n1 * n0 / (n1 + n0);
        w_sum += w;
        d_sum += w * (p1 - p0);
        var_sum += w * w * (p1 * (1.0 - p1) / n1 + p0 * (1.0 - p0) / n0);
        t.n += t1.n;
        t.returned += t1.returned;
        c.n += c0.n;
        c.returned += c0.returned;
    }
    if w_sum == 0.0 {
        return None;
    }
    let d = d_sum / w_sum;
    let se = var_sum.sqrt() / w_sum;
    Some(Uplift {
        treated: t.rate()?,
        control: c.rate()?,
        difference: d,
        low: d - Z95 * se,
        high: d + Z95 * se,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holdout_is_the_share_asked_and_stable() {
        let held = (1..=100_000)
            .filter(|&i| in_control(42, ClientId(i), 10))
            .count();
        assert!((9_500..=10_500).contains(&held), "{held}");
        assert!(
            (1..=1000).all(|i| in_control(42, ClientId(i), 10) == in_control(42, ClientId(i), 10))
        );
        assert!((1..=1000).all(|i| !in_control(42, ClientId(i), 0)));
        // Another salon's salt draws another group.
        let same = (1..=10_000)
            .filter(|&i| in_control(42, ClientId(i), 10) && in_control(43, ClientId(i), 10))
            .count();
        assert!(same < 200, "{same}");
    }

    #[test]
    fn newcombe_matches_the_published_example() {
        // Newcombe (1998), Statistics in Medicine 17, table II, example (a): 56/70 − 48/80,
        // method 10: 0.0524 to 0.3339.
        let u = newcombe(
            Arm {
                n: 70,
                returned: 56,
            },
            Arm {
                n: 80,
                returned: 48,
            },
        )
        .unwrap();
        assert!((u.difference - 0.2).abs() < 1e-9);
        assert!((u.low - 0.0524).abs() < 5e-5, "{u:?}");
        assert!((u.high - 0.3339).abs() < 5e-5, "{u:?}");
        assert!(u.excludes_zero());
        assert_eq!(newcombe(Arm::default(), Arm { n: 3, returned: 1 }), None);
    }
}
