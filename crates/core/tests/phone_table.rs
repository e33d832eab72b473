//! Every row of `fixtures/phones/table.csv`: a phone as typed at a salon in a country, and what
//! Google's libphonenumber answers for it (the E.164 number, or why there is none). The answers
//! were written by `fixtures/phones/generate.py` from libphonenumber's Python port at the same
//! metadata release, not by this code; see that script and the fixture's README.

use loyalty_core::phone::{Country, Phone};

const TABLE: &str = include_str!("../../../fixtures/phones/table.csv");

/// `country,input,expected` rows; the input may be quoted (it can hold commas or spaces).
fn rows() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (n, line) in TABLE.lines().enumerate().skip(1) {
        let (country, rest) = line
            .split_once(',')
            .unwrap_or_else(|| panic!("line {n}: {line}"));
        let (input, expected) = match rest.strip_prefix('"') {
            Some(quoted) => {
                let (input, tail) = quoted
                    .split_once("\",")
                    .unwrap_or_else(|| panic!("line {n}"));
                (input.replace("\"\"", "\""), tail)
            }
            None => {
                let (input, expected) = rest.rsplit_once(',').unwrap_or_else(|| panic!("line {n}"));
                (input.to_owned(), expected)
            }
        };
        out.push((country.to_owned(), input, expected.to_owned()));
    }
    out
}

#[test]
fn every_row_reads_as_libphonenumber_reads_it() {
    let rows = rows();
    let mut wrong = Vec::new();
    for (country, input, expected) in &rows {
        let country = Country::parse(country).unwrap();
        let got = match Phone::parse(input, country) {
            Ok(p) => p.as_str().to_owned(),
            Err(e) => format!("error:{}", e.kind()),
        };
        if &got != expected {
            wrong.push(format!(
                "{country} {input:?}: expected {expected}, got {got}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} rows differ:\n{}",
        wrong.len(),
        rows.len(),
        wrong.join("\n")
    );
}

#[test]
fn the_table_covers_what_the_issue_asks() {
    let rows = rows();
    assert!(rows.len() >= 60, "{} rows", rows.len());
    for country in ["RU", "KZ", "BY", "UA", "UZ", "KG", "GE", "AM"] {
        let of = |valid: bool| {
            rows.iter()
                .filter(|(c, _, e)| c == country && e.starts_with('+') == valid)
                .count()
        };
        assert!(of(true) >= 3, "{country}: valid forms");
        assert!(of(false) >= 1, "{country}: refused forms");
    }
    for (country, input, expected) in [
        ("BY", "8 029 123-45-67", "+375291234567"),
        ("RU", "+7 123 456 78 90", "error:not_in_use"),
        ("UA", "067 123 45 67", "+380671234567"),
    ] {
        assert!(
            rows.iter()
                .any(|r| r == &(country.into(), input.into(), expected.into())),
            "{country} {input}"
        );
    }
}
