//! Redemption codes people read aloud and type at a desk: 8 characters from an alphabet without
//! look-alikes, then a check character, shown as `ABCD-EFGH-K`.
//!
//! The alphabet has 31 characters (digits 2–9 and the letters without I, L and O), a prime, so
//! the check character — Σ (position + 1) · value mod 31 — catches every single mistyped
//! character and every swap of two neighbours. 31⁸ ≈ 8.5 · 10¹¹ codes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The characters a code is made of.
pub const ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
const BODY: usize = 8;

/// A redemption code, valid by construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(String);

/// Why a typed code is not a code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("a code has {expected} characters, got {got}")]
    Length { expected: usize, got: usize },
    #[error("{0:?} is not used in codes (they have no 0, 1, I, L or O)")]
    Character(char),
    #[error("the code's check character does not match: a character is mistyped")]
    Check,
}

fn value(c: u8) -> Option<u32> {
    ALPHABET
        .iter()
        .position(|&a| a == c)
        .and_then(|p| u32::try_from(p).ok())
}

fn check_char(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .zip(1u32..)
        .map(|(&c, w)| value(c).unwrap_or(0) * w)
        .sum();
    ALPHABET[(sum % 31) as usize]
}

impl Code {
    /// A code from 8 random bytes (the caller brings the randomness: the OS's, or a test's).
    pub fn from_entropy(random: [u8; 8]) -> Code {
        let mut n = u64::from_le_bytes(random);
        let mut body = [0u8; BODY];
        for slot in &mut body {
            *slot = ALPHABET[(n % 31) as usize];
            n /= 31;
        }
        let mut text = String::with_capacity(BODY + 1);
        text.extend(body.iter().map(|&b| char::from(b)));
        text.push(char::from(check_char(&body)));
        Code(text)
    }

    /// Reads a typed code: any case, spaces and dashes ignored, the check character verified.
    pub fn parse(typed: &str) -> Result<Code, CodeError> {
        let cleaned: String = typed
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let len = cleaned.chars().count();
        if len != BODY + 1 {
            return Err(CodeError::Length {
                expected: BODY + 1,
                got: len,
            });
        }
        if let Some(bad) = cleaned
            .chars()
            .find(|c| !c.is_ascii() || value(*c as u8).is_none())
        {
            return Err(CodeError::Character(bad));
        }
        let bytes = cleaned.as_bytes();
        if check_char(&bytes[..BODY]) != bytes[BODY] {
            return Err(CodeError::Check);
        }
        Ok(Code(cleaned))
    }

    /// The 9 characters without separators, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `ABCD-EFGH-K`.
impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.0;
        write!(f, "{}-{}-{}", &s[..4], &s[4..8], &s[8..])
    }
}

impl FromStr for Code {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Code::parse(s)
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Code::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn format_and_forgiving_input() {
        let code = Code::from_entropy([1, 2, 3, 4, 5, 6, 7, 8]);
        let shown = code.to_string();
        assert_eq!(shown.len(), 11);
        assert_eq!(&shown[4..5], "-");
        assert_eq!(Code::parse(&shown), Ok(code.clone()));
        assert_eq!(
            Code::parse(&shown.to_lowercase().replace('-', " ")),
            Ok(code.clone())
        );
        assert_eq!(
            Code::parse("ABCD"),
            Err(CodeError::Length {
                expected: 9,
                got: 4
            })
        );
        assert_eq!(Code::parse("ABCD-EFG0-2"), Err(CodeError::Character('0')));
        assert_eq!(Code::parse("ÄBCD-EFGH-2"), Err(CodeError::Character('Ä')));
        let json = serde_json::to_string(&code).unwrap();
        assert_eq!(serde_json::from_str::<Code>(&json).unwrap(), code);
        assert!(ALPHABET.iter().all(|c| !b"01ILO".contains(c)));
    }

    proptest! {
        #[test]
        fn any_single_typo_or_neighbour_swap_is_caught(
            random in any::<[u8; 8]>(),
            pos in 0usize..9,
            shift in 1u32..31,
        ) {
            let code = Code::from_entropy(random);
            let mut bytes = code.as_str().as_bytes().to_vec();
            let v = value(bytes[pos]).unwrap();
            bytes[pos] = ALPHABET[((v + shift) % 31) as usize];
            let typo = String::from_utf8(bytes).unwrap();
            prop_assert_eq!(Code::parse(&typo), Err(CodeError::Check));

            let mut swapped = code.as_str().as_bytes().to_vec();
            let p = pos.min(7);
            if swapped[p] != swapped[p + 1] {
                swapped.swap(p, p + 1);
                let swapped = String::from_utf8(swapped).unwrap();
                prop_assert_eq!(Code::parse(&swapped), Err(CodeError::Check));
            }
        }
    }
}
