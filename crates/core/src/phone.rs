//! Phone numbers as salons type them and CRMs send them, normalized to E.164.
//!
//! Accepted forms (separators ` `, `-`, `.`, `(`, `)` are ignored):
//!
//! | input                  | result          | why                                      |
//! |------------------------|-----------------|------------------------------------------|
//! | `+7 (916) 123-45-67`   | `+79161234567`  | international form                       |
//! | `79161234567`          | `+79161234567`  | country code without `+`                 |
//! | `8 916 123 45 67`      | `+79161234567`  | Russian/Kazakh trunk prefix 8            |
//! | `9161234567`           | `+79161234567`  | 10 national digits of the +7 zone        |
//! | `8 701 123 45 67`      | `+77011234567`  | Kazakhstan is in the +7 zone too         |
//! | `375 29 123 45 67`     | `+375291234567` | Belarus, country code without `+`        |
//! | `00 380 50 123 45 67`  | `+380501234567` | `00` international prefix                |
//!
//! Countries whose number length is fixed (+7, +375, +380, +998) are checked for it; any other
//! `+` number must have 8 to 15 digits (the E.164 maximum). Everything else is a [`PhoneError`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A phone number in E.164 form: `+` and 8 to 15 digits, the first not `0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("phone number contains {0:?}, which is not a digit or a separator")]
    InvalidCharacter(char),
    #[error("phone number has {digits} digits, which fits no known format")]
    BadLength { digits: usize },
    #[error("phone number +{country_code}… must have {expected} digits, has {actual}")]
    WrongLengthForCountry {
        country_code: &'static str,
        expected: usize,
        actual: usize,
    },
}

/// Country codes whose full international number has a fixed number of digits.
const FIXED_LENGTHS: &[(&str, usize)] = &[("375", 12), ("380", 12), ("998", 12), ("7", 11)];

impl Phone {
    /// Parses and normalizes a phone number. See the module documentation for accepted forms.
    pub fn parse(input: &str) -> Result<Phone, PhoneError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        let mut plus = false;
        let mut digits = String::with_capacity(trimmed.len());
        for (i, c) in trimmed.chars().enumerate() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if i == 0 => plus = true,
                ' ' | '-' | '.' | '(' | ')' | '\u{a0}' => {}
                other => return Err(PhoneError::InvalidCharacter(other)),
            }
        }
        if digits.is_empty() {
            return Err(PhoneError::Empty);
        }
        let international = if plus {
            digits
        } else if let Some(rest) = digits.strip_prefix("00") {
            rest.to_owned()
        } else {
            national_to_international(&digits)?
        };
        Self::check_international(international)
    }

    fn check_international(digits: String) -> Result<Phone, PhoneError> {
        let len = digits.len();
        if !(8..=15).contains(&len) || digits.starts_with('0') {
            return Err(PhoneError::BadLength { digits: len });
        }
        for (code, expected) in FIXED_LENGTHS {
            if digits.starts_with(code) {
                if len != *expected {
                    return Err(PhoneError::WrongLengthForCountry {
                        country_code: code,
                        expected: *expected,
                        actual: len,
                    });
                }
                break;
            }
        }
        Ok(Phone(format!("+{digits}")))
    }

    /// The E.164 form, e.g. `+79161234567`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without `+`, the form several CRMs search by.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// The number with all but the last four digits hidden, for logs: `+7******4567`.
    pub fn masked(&self) -> String {
        let digits = self.digits();
        let keep = digits.len().min(4);
        let cc = if digits.starts_with('7') {
            1
        } else {
            3.min(digits.len() - keep)
        };
        let hidden = digits.len() - keep - cc;
        format!(
            "+{}{}{}",
            &digits[..cc],
            "*".repeat(hidden),
            &digits[digits.len() - keep..]
        )
    }
}

/// Digits typed without `+` or `00`: decide the country.
fn national_to_international(digits: &str) -> Result<String, PhoneError> {
    let len = digits.len();
    let first = digits.as_bytes()[0];
    match (len, first) {
        // 916 123 45 67, 701 123 45 67, 495 123 45 67: national digits of the +7 zone.
        (10, b'3' | b'4' | b'7' | b'8' | b'9') => Ok(format!("7{digits}")),
        // 8 916 123 45 67: the trunk prefix of Russia and Kazakhstan.
        (11, b'8') => Ok(format!("7{}", &digits[1..])),
        // 7 916…, 375 29…, 380 50…, 998 90…: a full number without the plus.
        (11..=15, b'1'..=b'9') => Ok(digits.to_owned()),
        _ => Err(PhoneError::BadLength { digits: len }),
    }
}

impl FromStr for Phone {
    type Err = PhoneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phone::parse(s)
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Phone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Phone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Phone::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> String {
        match Phone::parse(input) {
            Ok(p) => p.as_str().to_owned(),
            Err(e) => panic!("{input:?} should parse, got {e}"),
        }
    }

    #[test]
    fn russian_forms_normalize_to_one_number() {
        for input in [
            "79161234567",
            "+7 (916) 123-45-67",
            "8 916 123 45 67",
            "9161234567",
            "+79161234567",
            "8(916)123-45-67",
            " 7.916.123.45.67 ",
            "0079161234567",
        ] {
            assert_eq!(ok(input), "+79161234567", "input {input:?}");
        }
    }

    #[test]
    fn neighbouring_countries() {
        assert_eq!(ok("+7 701 123 45 67"), "+77011234567"); // Kazakhstan
        assert_eq!(ok("8 701 123 45 67"), "+77011234567");
        assert_eq!(ok("7011234567"), "+77011234567");
        assert_eq!(ok("+375 29 123-45-67"), "+375291234567"); // Belarus
        assert_eq!(ok("375291234567"), "+375291234567");
        assert_eq!(ok("+380 50 123 45 67"), "+380501234567"); // Ukraine
        assert_eq!(ok("+998 90 123 45 67"), "+998901234567"); // Uzbekistan
        assert_eq!(ok("998901234567"), "+998901234567");
        assert_eq!(ok("+49 30 1234567"), "+49301234567"); // any other + number
        assert_eq!(ok("+1 (415) 555-0100"), "+14155550100");
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert_eq!(Phone::parse(""), Err(PhoneError::Empty));
        assert_eq!(Phone::parse("  "), Err(PhoneError::Empty));
        assert_eq!(Phone::parse("+"), Err(PhoneError::Empty));
        assert_eq!(
            Phone::parse("916-abc"),
            Err(PhoneError::InvalidCharacter('a'))
        );
        assert_eq!(
            Phone::parse("12345"),
            Err(PhoneError::BadLength { digits: 5 })
        );
        assert_eq!(
            Phone::parse("+7 916 123 45 6"),
            Err(PhoneError::WrongLengthForCountry {
                country_code: "7",
                expected: 11,
                actual: 10
            })
        );
        assert_eq!(
            Phone::parse("+375 29 123 45"),
            Err(PhoneError::WrongLengthForCountry {
                country_code: "375",
                expected: 12,
                actual: 10
            })
        );
        assert!(Phone::parse("+0123456789").is_err());
        assert!(Phone::parse("1234567890123456").is_err());
        assert!(Phone::parse("79+161234567").is_err());
        assert!(Phone::parse("0501234567").is_err()); // domestic Ukrainian: country unknown
    }

    #[test]
    fn masked_keeps_country_and_last_four() {
        let p = Phone::parse("+79161234567").unwrap();
        assert_eq!(p.masked(), "+7******4567");
        let p = Phone::parse("+375291234567").unwrap();
        assert_eq!(p.masked(), "+375*****4567");
    }

    #[test]
    fn serde_round_trip_validates() {
        let p: Phone = serde_json::from_str("\"8 916 123-45-67\"").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"+79161234567\"");
        assert!(serde_json::from_str::<Phone>("\"hello\"").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_output_is_e164(s in "\\PC{0,24}") {
            if let Ok(p) = Phone::parse(&s) {
                let d = p.digits();
                proptest::prop_assert!(p.as_str().starts_with('+'));
                proptest::prop_assert!((8..=15).contains(&d.len()));
                proptest::prop_assert!(d.bytes().all(|b| b.is_ascii_digit()));
                // Normalization is idempotent.
                proptest::prop_assert_eq!(Phone::parse(p.as_str()), Ok(p.clone()));
            }
        }
    }
}
