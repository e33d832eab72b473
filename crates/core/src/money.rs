//! Money, points and rates: integers only.
//!
//! * [`Money`] is an amount in minor units (kopecks, tiyn) with its [`Currency`]; it is never
//!   negative.
//! * [`Points`] are whole loyalty points. By default one point is worth one major unit of the
//!   salon's currency (`point_value_minor = 100`).
//! * [`Bps`] is a rate in basis points: 500 bps = 5 %.
//!
//! Rounding is explicit and done once per visit, down: see [`accrual_points`].

use std::fmt;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Errors for amounts and rates coming from outside.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount {0} is negative")]
    Negative(i64),
    #[error("unknown currency {0:?}")]
    UnknownCurrency(String),
    #[error("rate of {0} basis points is outside 0..=10000")]
    RateOutOfRange(i64),
    #[error("point value must be at least 1 minor unit, got {0}")]
    BadPointValue(i64),
    #[error("amount overflows")]
    Overflow,
}

/// ISO 4217 currencies of the markets the supported CRMs serve. All have two minor digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Currency {
    Rub,
    Kzt,
    Byn,
    Uah,
    Uzs,
    Kgs,
    Amd,
    Gel,
    Azn,
    Try,
    Usd,
    Eur,
}

const CURRENCIES: &[(Currency, &str, &str)] = &[
    (Currency::Rub, "RUB", "₽"),
    (Currency::Kzt, "KZT", "₸"),
    (Currency::Byn, "BYN", "Br"),
    (Currency::Uah, "UAH", "₴"),
    (Currency::Uzs, "UZS", "сўм"),
    (Currency::Kgs, "KGS", "сом"),
    (Currency::Amd, "AMD", "֏"),
    (Currency::Gel, "GEL", "₾"),
    (Currency::Azn, "AZN", "₼"),
    (Currency::Try, "TRY", "₺"),
    (Currency::Usd, "USD", "$"),
    (Currency::Eur, "EUR", "€"),
];

impl Currency {
    /// The ISO 4217 code, e.g. `RUB`.
    pub fn code(self) -> &'static str {
        self.entry().1
    }

    /// The sign salons and clients know, e.g. `₽`.
    pub fn symbol(self) -> &'static str {
        self.entry().2
    }

    /// Minor units in one major unit.
    pub fn minor_per_major(self) -> i64 {
        100
    }

    fn entry(self) -> &'static (Currency, &'static str, &'static str) {
        // Every variant is listed in CURRENCIES; the fallback is unreachable but not a panic.
        CURRENCIES
            .iter()
            .find(|(c, _, _)| *c == self)
            .unwrap_or(&CURRENCIES[0])
    }

    /// Parses an ISO code (any case) or the rouble's common spellings `RUR`, `руб`, `₽`.
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        let code = code.trim();
        if matches!(code, "RUR" | "rur" | "руб" | "руб." | "₽") {
            return Ok(Currency::Rub);
        }
        CURRENCIES
            .iter()
            .find(|(_, c, _)| c.eq_ignore_ascii_case(code))
            .map(|(c, _, _)| *c)
            .ok_or_else(|| MoneyError::UnknownCurrency(code.to_owned()))
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::parse(s)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Currency::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A non-negative amount of money in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Result<Money, MoneyError> {
        if minor < 0 {
            return Err(MoneyError::Negative(minor));
        }
        Ok(Money { minor, currency })
    }

    pub fn zero(currency: Currency) -> Money {
        Money { minor: 0, currency }
    }

    pub fn minor(self) -> i64 {
        self.minor
    }

    pub fn currency(self) -> Currency {
        self.currency
    }

    /// `4 000,50 ₽`-style text for messages; whole amounts drop the fraction.
    pub fn display(self) -> String {
        let per = self.currency.minor_per_major();
        let major = group_thousands(self.minor / per);
        let frac = self.minor % per;
        if frac == 0 {
            format!("{major} {}", self.currency.symbol())
        } else {
            format!("{major},{frac:02} {}", self.currency.symbol())
        }
    }
}

fn group_thousands(n: i64) -> String {
    grouped(n, '\u{a0}')
}

/// A whole number with `separator` between thousands: `12 345`, `-1 200`.
pub fn grouped(n: i64, separator: char) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(separator);
        }
        out.push(ch);
    }
    out
}

/// An amount typed by a person in major units, as minor units: `3500`, `3 500`, `3500,50`,
/// `3500.5 ₽`. Spaces and the currency's symbol are ignored; at most two decimals; `None` for
/// anything else (a sign, letters, too large). The bot, the dashboard and the desk read
/// amounts with it.
pub fn parse_typed(typed: &str, currency: Currency) -> Option<i64> {
    let cleaned: String = typed
        .trim()
        .trim_end_matches(currency.symbol())
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let (whole, frac) = match cleaned.split_once([',', '.']) {
        Some((w, f)) => (w, f),
        None => (cleaned.as_str(), ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || frac.len() > 2 || !digits(whole) || !digits(frac) {
        return None;
    }
    let per = currency.minor_per_major();
    let cents = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().ok()? * per / 10,
        _ => frac.parse::<i64>().ok()? * per / 100,
    };
    whole
        .parse::<i64>()
        .ok()?
        .checked_mul(per)?
        .checked_add(cents)
}

/// Whole loyalty points. Signed: a client's balance may show a debt after a logged reversal.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Points(pub i64);

impl Points {
    pub const ZERO: Points = Points(0);

    pub fn value(self) -> i64 {
        self.0
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }
}

impl fmt::Display for Points {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&group_thousands(self.0))
    }
}

impl Add for Points {
    type Output = Points;
    fn add(self, rhs: Points) -> Points {
        Points(self.0 + rhs.0)
    }
}

impl Sub for Points {
    type Output = Points;
    fn sub(self, rhs: Points) -> Points {
        Points(self.0 - rhs.0)
    }
}

impl Neg for Points {
    type Output = Points;
    fn neg(self) -> Points {
        Points(-self.0)
    }
}

impl AddAssign for Points {
    fn add_assign(&mut self, rhs: Points) {
        self.0 += rhs.0;
    }
}

impl SubAssign for Points {
    fn sub_assign(&mut self, rhs: Points) {
        self.0 -= rhs.0;
    }
}

impl std::iter::Sum for Points {
    fn sum<I: Iterator<Item = Points>>(iter: I) -> Points {
        Points(iter.map(|p| p.0).sum())
    }
}

/// A rate in basis points, 0 to 10 000 (0 % to 100 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Bps(u16);

impl Bps {
    pub const ZERO: Bps = Bps(0);
    pub const FULL: Bps = Bps(10_000);

    pub fn new(bps: i64) -> Result<Bps, MoneyError> {
        if (0..=10_000).contains(&bps) {
            Ok(Bps(bps as u16))
        } else {
            Err(MoneyError::RateOutOfRange(bps))
        }
    }

    pub fn value(self) -> i64 {
        i64::from(self.0)
    }
}

impl<'de> Deserialize<'de> for Bps {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Bps::new(i64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Bps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 100;
        let frac = self.0 % 100;
        if frac == 0 {
            write!(f, "{whole}%")
        } else {
            write!(f, "{whole}.{frac:02}%")
        }
    }
}

/// Points for one visit: `floor(Σ paidᵢ × rateᵢ / (10 000 × point_value_minor))`.
///
/// Each line's paid amount (minor units) is weighed by its own rate, the products are summed
/// exactly in 128-bit integers and the division rounds **down once per visit**, so splitting a
/// visit into lines never loses a point to per-line rounding. 5 % of 4 000,00 ₽ with the default
/// point value of 100 kopecks is 200 points.
pub fn accrual_points(
    lines: impl IntoIterator<Item = (i64, Bps)>,
    point_value_minor: i64,
) -> Result<Points, MoneyError> {
    if point_value_minor < 1 {
        return Err(MoneyError::BadPointValue(point_value_minor));
    }
    let mut weighted: i128 = 0;
    for (paid_minor, rate) in lines {
        if paid_minor < 0 {
            return Err(MoneyError::Negative(paid_minor));
        }
        weighted += i128::from(paid_minor) * i128::from(rate.value());
    }
    let points = weighted / (10_000 * i128::from(point_value_minor));
    i64::try_from(points)
        .map(Points)
        .map_err(|_| MoneyError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_percent_of_four_thousand_is_two_hundred_points() {
        let p = accrual_points([(400_000, Bps::new(500).unwrap())], 100).unwrap();
        assert_eq!(p, Points(200));
    }

    #[test]
    fn rounding_is_down_once_per_visit() {
        let rate = Bps::new(500).unwrap();
        // 3 lines of 99,99 ₽ at 5 %: each alone is 4.9995 points; together 14.9985 → 14.
        let p = accrual_points([(9_999, rate); 3], 100).unwrap();
        assert_eq!(p, Points(14));
        // Per-line rounding would have given 4 + 4 + 4 = 12.
        assert_eq!(accrual_points([(9_999, rate)], 100).unwrap(), Points(4));
    }

    #[test]
    fn mixed_rates_and_point_value() {
        let lines = [
            (100_000, Bps::new(1_000).unwrap()),
            (50_000, Bps::ZERO),
            (20_000, Bps::new(250).unwrap()),
        ];
        // 100 000 × 1000 + 20 000 × 250 = 105 000 000 / 10 000 = 10 500 kopecks = 105 points.
        assert_eq!(accrual_points(lines, 100).unwrap(), Points(105));
        // Point worth 10 ₽: 10.5 → 10.
        assert_eq!(accrual_points(lines, 1_000).unwrap(), Points(10));
    }

    #[test]
    fn bad_input_is_typed() {
        assert_eq!(Money::new(-1, Currency::Rub), Err(MoneyError::Negative(-1)));
        assert_eq!(
            Currency::parse("XYZ"),
            Err(MoneyError::UnknownCurrency("XYZ".into()))
        );
        assert_eq!(Bps::new(10_001), Err(MoneyError::RateOutOfRange(10_001)));
        assert_eq!(Bps::new(-5), Err(MoneyError::RateOutOfRange(-5)));
        assert_eq!(
            accrual_points([(-100, Bps::FULL)], 100),
            Err(MoneyError::Negative(-100))
        );
        assert_eq!(
            accrual_points([(100, Bps::FULL)], 0),
            Err(MoneyError::BadPointValue(0))
        );
        assert!(serde_json::from_str::<Bps>("20000").is_err());
        assert!(serde_json::from_str::<Currency>("\"ABC\"").is_err());
    }

    #[test]
    fn huge_amounts_do_not_overflow() {
        let p = accrual_points([(i64::MAX, Bps::FULL); 2], 1).unwrap_err();
        assert_eq!(p, MoneyError::Overflow);
        let p = accrual_points([(i64::MAX, Bps::FULL)], 100).unwrap();
        assert_eq!(p, Points(i64::MAX / 100));
    }

    #[test]
    fn currency_codes_and_display() {
        assert_eq!(Currency::parse("rub").unwrap(), Currency::Rub);
        assert_eq!(Currency::parse("RUR").unwrap(), Currency::Rub);
        assert_eq!(Currency::parse("KZT").unwrap().symbol(), "₸");
        let m = Money::new(400_050, Currency::Rub).unwrap();
        assert_eq!(m.display(), "4\u{a0}000,50 ₽");
        assert_eq!(
            Money::new(123_456_700, Currency::Rub).unwrap().display(),
            "1\u{a0}234\u{a0}567 ₽"
        );
        assert_eq!(Bps::new(250).unwrap().to_string(), "2.50%");
        assert_eq!(Bps::new(500).unwrap().to_string(), "5%");
    }
}
