//! Phone numbers, read in the salon's country with libphonenumber's metadata and kept as E.164.
//!
//! A client *is* a phone number here: the CRM's card, the bot's shared contact and a desk entry
//! meet in one balance through it. So a number is never guessed: every reading goes through
//! Google's libphonenumber rules (the `rlibphonenumber` port, differential-tested against the
//! C++ library) for the country the number was typed in, and a number that cannot exist there is
//! a [`PhoneError`] that says why.
//!
//! | where the number comes from | reader | `8 029 123-45-67` at a salon in BY |
//! |---|---|---|
//! | typed by a person (desk, CLI, a file of domestic numbers) | [`Phone::parse`] | `+375291234567` |
//! | a CRM's field or API answer | [`Phone::parse_crm`] | `+375291234567` |
//! | Telegram's shared contact (international digits, often without `+`) | [`Phone::parse_international`] | — |
//! | our own database (already E.164) | [`Phone::from_e164`] | — |
//!
//! The same person typed three ways at a Kazakh salon — `8 701 234 56 78`, `+7 (701) 234-56-78`,
//! `77012345678` — is `+77012345678` each time.

use std::fmt;
use std::str::FromStr;

use rlibphonenumber::enums::Region;
use rlibphonenumber::{
    NumberLengthType, PHONE_NUMBER_UTIL, ParseError, PhoneNumber, PhoneNumberFormat,
    ValidationError,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A country whose numbering plan libphonenumber knows, as ISO 3166-1 alpha-2 (`RU`, `KZ`, `BY`…).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Country {
    region: Region,
    code: [u8; 2],
}

/// A country code that is not two letters of a country with a numbering plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a country code libphonenumber knows (ISO 3166-1 alpha-2, e.g. RU, KZ, BY)")]
pub struct UnknownCountry(pub String);

impl Country {
    /// Russia, the default.
    pub const RU: Country = Country {
        region: Region::RU,
        code: *b"RU",
    };

    /// `RU`, `kz`, ` by `: two letters of a country with a numbering plan.
    pub fn parse(input: &str) -> Result<Country, UnknownCountry> {
        let unknown = || UnknownCountry(input.to_owned());
        let trimmed = input.trim();
        let bytes = trimmed.as_bytes();
        if bytes.len() != 2 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return Err(unknown());
        }
        let code = [bytes[0].to_ascii_uppercase(), bytes[1].to_ascii_uppercase()];
        let region = Region::from_code(trimmed).map_err(|_| unknown())?;
        PHONE_NUMBER_UTIL
            .get_country_code_for_region(region)
            .ok_or_else(unknown)?;
        Ok(Country { region, code })
    }

    /// The two letters, upper case.
    pub fn as_str(&self) -> &str {
        // Two ASCII letters, checked in `parse`.
        std::str::from_utf8(&self.code).unwrap_or("??")
    }

    /// The country's calling code: 7 for RU and KZ, 375 for BY.
    pub fn calling_code(&self) -> i32 {
        PHONE_NUMBER_UTIL
            .get_country_code_for_region(self.region)
            .unwrap_or_default()
    }
}

impl Default for Country {
    fn default() -> Self {
        Country::RU
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Country({})", self.as_str())
    }
}

impl FromStr for Country {
    type Err = UnknownCountry;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Country::parse(s)
    }
}

impl Serialize for Country {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Country::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A phone number in E.164 form: `+` and its digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

/// Why a phone number was refused. The messages name the reason, never the number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("not a phone number")]
    NotANumber,
    #[error("no country has this calling code")]
    UnknownCountryCode,
    #[error("too few digits for a phone number{}", of(*.calling_code))]
    TooShort { calling_code: Option<i32> },
    #[error("too many digits for a phone number{}", of(*.calling_code))]
    TooLong { calling_code: Option<i32> },
    #[error("no phone number{} has this many digits", of(*.calling_code))]
    InvalidLength { calling_code: Option<i32> },
    #[error("a local number without its area code{}", of(*.calling_code))]
    LocalOnly { calling_code: Option<i32> },
    #[error("no phone number{} begins with these digits", of(Some(*.calling_code)))]
    NotInUse { calling_code: i32 },
    #[error("a stored phone number is not E.164 (+ and up to 15 digits)")]
    NotE164,
}

fn of(calling_code: Option<i32>) -> String {
    calling_code.map_or_else(String::new, |c| format!(" of +{c}"))
}

impl PhoneError {
    /// A short name for the reason, stable for reports and tests: `too_short`, `not_in_use`…
    pub fn kind(&self) -> &'static str {
        match self {
            PhoneError::Empty => "empty",
            PhoneError::NotANumber => "not_a_number",
            PhoneError::UnknownCountryCode => "invalid_country_code",
            PhoneError::TooShort { .. } => "too_short",
            PhoneError::TooLong { .. } => "too_long",
            PhoneError::InvalidLength { .. } => "invalid_length",
            PhoneError::LocalOnly { .. } => "local_only",
            PhoneError::NotInUse { .. } => "not_in_use",
            PhoneError::NotE164 => "not_e164",
        }
    }
}

/// A CRM field with this many digits or more and no `+` may be international digits (`79161234567`
/// at a salon in Belarus). Shorter ones are domestic forms, whose international reading would
/// be a guess (`4951234567`, a Moscow number typed without its 8, is a valid German number).
const CRM_INTERNATIONAL_MIN_DIGITS: usize = 11;

impl Phone {
    /// A number as a person types it in `country` (the desk, the CLI, a file of domestic
    /// numbers): domestic forms with the country's trunk prefix (`8 916…` in RU, `0 67…` in UA,
    /// `8 029…` in BY), international forms with `+` or the country's international prefix
    /// (`810` in RU), and the international digits of the country's own numbers. Exactly
    /// libphonenumber's reading; a number it does not find valid is an error.
    pub fn parse(input: &str, country: Country) -> Result<Phone, PhoneError> {
        read(input, Some(country.region))
    }

    /// A number from a CRM's field or API answer. CRMs keep numbers as international digits
    /// without `+` (`79161234567`), which is also what a Russian client's number looks like at
    /// a salon in another country; some keep what the administrator typed. So: read as typed in
    /// `country`, and when that finds no valid number, an input of 11 digits or more without
    /// `+` is read as international digits.
    pub fn parse_crm(input: &str, country: Country) -> Result<Phone, PhoneError> {
        let domestic = Phone::parse(input, country);
        let Err(error) = domestic else {
            return domestic;
        };
        let trimmed = input.trim_start();
        let digits = trimmed.chars().filter(char::is_ascii_digit).count();
        if trimmed.starts_with('+') || digits < CRM_INTERNATIONAL_MIN_DIGITS {
            return Err(error);
        }
        Phone::parse_international(trimmed).map_err(|_| error)
    }

    /// A number in international form, with or without its `+`: what Telegram sends in a
    /// shared contact (`77012345678`). No country is assumed.
    pub fn parse_international(input: &str) -> Result<Phone, PhoneError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        if trimmed.starts_with('+') {
            read(trimmed, None)
        } else {
            read(&format!("+{trimmed}"), None)
        }
    }

    /// A number this program stored, already E.164: checked for its shape only (`+` and 1 to
    /// 15 digits, the first not `0`), so a number read under older rules can still be loaded
    /// and repaired (see `doctor phones`).
    pub fn from_e164(stored: &str) -> Result<Phone, PhoneError> {
        let digits = stored.strip_prefix('+').ok_or(PhoneError::NotE164)?;
        let shaped = (1..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if shaped {
            Ok(Phone(stored.to_owned()))
        } else {
            Err(PhoneError::NotE164)
        }
    }

    /// The number a forgotten client keeps (152-FZ): `+999`, a country code never assigned, so
    /// no number read from outside is ever one, then the client's id.
    pub fn forgotten(client: i64) -> Phone {
        Phone(format!("+999{:012}", client.rem_euclid(1_000_000_000_000)))
    }

    /// Whether this is a forgotten client's number.
    pub fn is_forgotten(&self) -> bool {
        self.0.starts_with("+999")
    }

    /// Whether libphonenumber finds this number valid (a stored one may predate its rules).
    pub fn check(&self) -> Result<(), PhoneError> {
        read(&self.0, None).map(|_| ())
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

/// libphonenumber's parse and validity check, its reasons mapped to [`PhoneError`].
fn read(input: &str, region: Option<Region>) -> Result<Phone, PhoneError> {
    if input.trim().is_empty() {
        return Err(PhoneError::Empty);
    }
    let number = PhoneNumber::parse(input, region).map_err(|e| match e {
        ParseError::InvalidCountryCode => PhoneError::UnknownCountryCode,
        ParseError::NotANumber(_) => PhoneError::NotANumber,
        ParseError::TooShortAfterIdd | ParseError::TooShortNsn => {
            PhoneError::TooShort { calling_code: None }
        }
        ParseError::TooLongNsn => PhoneError::TooLong { calling_code: None },
    })?;
    if number.is_valid() {
        return Ok(Phone(
            number.format_as(PhoneNumberFormat::E164).into_owned(),
        ));
    }
    let code = Some(number.country_code);
    Err(match number.is_possible_with_reason() {
        Ok(NumberLengthType::IsPossible) => PhoneError::NotInUse {
            calling_code: number.country_code,
        },
        Ok(NumberLengthType::IsPossibleLocalOnly) => PhoneError::LocalOnly { calling_code: code },
        Err(ValidationError::InvalidCountryCode) => PhoneError::UnknownCountryCode,
        Err(ValidationError::TooShort) => PhoneError::TooShort { calling_code: code },
        Err(ValidationError::TooLong) => PhoneError::TooLong { calling_code: code },
        Err(_) => PhoneError::InvalidLength { calling_code: code },
    })
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

/// Deserializes what [`Serialize`] wrote: an E.164 string ([`Phone::from_e164`]). A number from
/// outside is read with [`Phone::parse`] and its country instead.
impl<'de> Deserialize<'de> for Phone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Phone::from_e164(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(country: &str) -> Country {
        Country::parse(country).unwrap()
    }

    fn ok(input: &str, country: &str) -> String {
        match Phone::parse(input, at(country)) {
            Ok(p) => p.as_str().to_owned(),
            Err(e) => panic!("{input:?} in {country} should parse, got {e}"),
        }
    }

    #[test]
    fn the_three_cases_the_old_reader_got_wrong() {
        // A Belarusian administrator's domestic form.
        assert_eq!(ok("8 029 123-45-67", "BY"), "+375291234567");
        // Russian numbers do not start with 1.
        assert_eq!(
            Phone::parse("+7 123 456 78 90", Country::RU),
            Err(PhoneError::NotInUse { calling_code: 7 })
        );
        // A Ukrainian domestic number, known to be one because the salon is in Ukraine.
        assert_eq!(ok("067 123 45 67", "UA"), "+380671234567");
    }

    #[test]
    fn a_kazakh_client_typed_three_ways_is_one_number() {
        let kz = at("kz");
        assert_eq!(
            Phone::parse("8 701 234 56 78", kz).unwrap().as_str(),
            "+77012345678"
        );
        assert_eq!(
            Phone::parse("+7 (701) 234-56-78", kz).unwrap().as_str(),
            "+77012345678"
        );
        assert_eq!(
            Phone::parse_international("77012345678").unwrap().as_str(),
            "+77012345678"
        );
    }

    #[test]
    fn crm_fields_fall_back_to_international_digits_only_when_long_enough() {
        let by = at("BY");
        // A Russian client of a Belarusian salon, as YCLIENTS keeps her number.
        assert_eq!(
            Phone::parse_crm("79161234567", by).unwrap().as_str(),
            "+79161234567"
        );
        assert_eq!(
            Phone::parse_crm("8 029 123-45-67", by).unwrap().as_str(),
            "+375291234567"
        );
        // Ten digits are a domestic form: no German guess for a Moscow number.
        assert!(Phone::parse_crm("4951234567", by).is_err());
        // The domestic reading wins when it is valid.
        assert_eq!(
            Phone::parse_crm("77012345678", at("KZ")).unwrap().as_str(),
            "+77012345678"
        );
        // `+` means international: no second reading.
        assert_eq!(
            Phone::parse_crm("+7 000 123 45 67", Country::RU),
            Err(PhoneError::NotInUse { calling_code: 7 })
        );
    }

    #[test]
    fn telegram_contacts_are_international() {
        assert_eq!(
            Phone::parse_international("+375 29 123 45 67")
                .unwrap()
                .as_str(),
            "+375291234567"
        );
        assert_eq!(
            Phone::parse_international("380671234567").unwrap().as_str(),
            "+380671234567"
        );
        assert_eq!(Phone::parse_international(" "), Err(PhoneError::Empty));
        assert!(Phone::parse_international("0671234567").is_err());
    }

    #[test]
    fn errors_name_the_reason_not_the_number() {
        let e = Phone::parse("+7 123 456 78 90", Country::RU).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no phone number of +7 begins with these digits"
        );
        assert_eq!(e.kind(), "not_in_use");
        let e = Phone::parse("+375 29 123", at("BY")).unwrap_err();
        assert!(!e.to_string().contains("123"), "{e}");
        assert_eq!(Phone::parse("", Country::RU), Err(PhoneError::Empty));
        assert_eq!(
            Phone::parse("not a phone", Country::RU),
            Err(PhoneError::NotANumber)
        );
    }

    #[test]
    fn stored_numbers_are_checked_for_shape_only() {
        // The old reader stored this Belarusian number as a Russian one; it still loads.
        let stored = Phone::from_e164("+70291234567").unwrap();
        assert_eq!(
            stored.check(),
            Err(PhoneError::NotInUse { calling_code: 7 })
        );
        assert_eq!(Phone::from_e164("+79161234567").unwrap().check(), Ok(()));
        for bad in ["79161234567", "+", "+0123", "+7916abc", "+1234567890123456"] {
            assert_eq!(Phone::from_e164(bad), Err(PhoneError::NotE164), "{bad}");
        }
    }

    #[test]
    fn countries() {
        assert_eq!(at(" by ").as_str(), "BY");
        assert_eq!(at("KZ").calling_code(), 7);
        assert_eq!(at("AM").calling_code(), 374);
        assert_eq!(Country::default(), Country::RU);
        for bad in ["", "R", "RUS", "1A", "ZZ", "001"] {
            assert!(Country::parse(bad).is_err(), "{bad}");
        }
        let json = serde_json::to_string(&at("uz")).unwrap();
        assert_eq!(json, "\"UZ\"");
        assert_eq!(serde_json::from_str::<Country>(&json).unwrap(), at("UZ"));
    }

    #[test]
    fn masked_keeps_country_and_last_four() {
        let p = Phone::parse("+79161234567", Country::RU).unwrap();
        assert_eq!(p.masked(), "+7******4567");
        let p = Phone::parse("+375291234567", Country::RU).unwrap();
        assert_eq!(p.masked(), "+375*****4567");
    }

    #[test]
    fn serde_round_trip_is_e164() {
        let p = Phone::parse("8 916 123-45-67", Country::RU).unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"+79161234567\"");
        assert_eq!(
            serde_json::from_str::<Phone>("\"+79161234567\"").unwrap(),
            p
        );
        assert!(serde_json::from_str::<Phone>("\"8 916 123-45-67\"").is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        #[test]
        fn never_panics_and_output_is_valid_e164(
            s in proptest::prop_oneof!["\\PC{0,24}", "[+]?[0-9 ()-]{5,20}"],
            c in 0usize..4,
        ) {
            let country = at(["RU", "BY", "UA", "KZ"][c]);
            let reads = [
                Phone::parse(&s, country),
                Phone::parse_crm(&s, country),
                Phone::parse_international(&s),
            ];
            for p in reads.into_iter().flatten() {
                proptest::prop_assert!(Phone::from_e164(p.as_str()).is_ok());
                proptest::prop_assert_eq!(p.check(), Ok(()));
                // Reading the E.164 form again gives the same number, in any country.
                proptest::prop_assert_eq!(Phone::parse(p.as_str(), country), Ok(p.clone()));
            }
        }
    }
}
