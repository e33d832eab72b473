//! Reading CRM JSON leniently. The CRMs send ids and prices as numbers or strings (YCLIENTS,
//! Arnica), phones as strings or numbers, booleans as `0/1`, `"0"/"1"` or `true/false`, empty
//! objects as `[]`, and timestamps with `+05:00`, `+0500`, `Z` or no offset at all
//! (company-local). Every reader here returns `None` for "absent, null or empty" and an error only
//! for a value that is present and cannot mean what the field means.

use chrono::{DateTime, NaiveDateTime};
use serde_json::{Map, Value};

/// A field that is present but unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field:?}: {problem}")]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

fn bad(field: &str, problem: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

/// The object itself, or `None` for `null`, `[]` and `{}` (the platform's "empty").
pub fn object(value: Option<&Value>) -> Option<&Map<String, Value>> {
    match value {
        Some(Value::Object(map)) if !map.is_empty() => Some(map),
        _ => None,
    }
}

/// The array's items, or nothing for `null`, `{}` or a missing field.
pub fn items(value: Option<&Value>) -> &[Value] {
    match value {
        Some(Value::Array(items)) => items,
        _ => &[],
    }
}

/// An id given as a number or a string; `0`, `""` and `null` mean none.
pub fn id(map: &Map<String, Value>, field: &str) -> Result<Option<String>, FieldError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(0) => Ok(None),
            Some(i) => Ok(Some(i.to_string())),
            None => Err(bad(field, format!("{n} is not a whole number"))),
        },
        Some(Value::String(s)) => {
            let s = s.trim();
            Ok((!s.is_empty() && s != "0").then(|| s.to_owned()))
        }
        Some(other) => Err(bad(field, format!("expected an id, got {}", kind(other)))),
    }
}

/// An integer given as a number or a numeric string.
pub fn int(map: &Map<String, Value>, field: &str) -> Result<Option<i64>, FieldError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| bad(field, format!("{n} is not a whole number"))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| bad(field, format!("{s:?} is not a whole number"))),
        Some(other) => Err(bad(
            field,
            format!("expected a number, got {}", kind(other)),
        )),
    }
}

/// A flag given as `true/false`, `0/1` or `"0"/"1"`.
pub fn flag(map: &Map<String, Value>, field: &str) -> Result<Option<bool>, FieldError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(0) => Ok(Some(false)),
            Some(1) => Ok(Some(true)),
            _ => Err(bad(field, format!("{n} is not 0 or 1"))),
        },
        Some(Value::String(s)) => match s.trim() {
            "0" | "false" | "" => Ok(Some(false)),
            "1" | "true" => Ok(Some(true)),
            other => Err(bad(field, format!("{other:?} is not a flag"))),
        },
        Some(other) => Err(bad(field, format!("expected a flag, got {}", kind(other)))),
    }
}

/// Text; numbers are turned into their digits (a phone sent as a number).
pub fn text(map: &Map<String, Value>, field: &str) -> Option<String> {
    match map.get(field)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An amount of money in major units (`1500`, `1500.5`, `"1500.50"`) as minor units, exactly:
/// the number's decimal text is read, never a float. More than two decimals are cut (toward
/// zero); a negative amount is an error.
pub fn money_minor(map: &Map<String, Value>, field: &str) -> Result<Option<i64>, FieldError> {
    match amount_text(map, field)? {
        None => Ok(None),
        Some(raw) => decimal_to_minor(&raw).map(Some).map_err(|p| bad(field, p)),
    }
}

/// Like [`money_minor`], but a balance may be negative (a debt).
pub fn signed_money_minor(
    map: &Map<String, Value>,
    field: &str,
) -> Result<Option<i64>, FieldError> {
    let Some(raw) = amount_text(map, field)? else {
        return Ok(None);
    };
    let (sign, digits) = match raw.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, raw.as_str()),
    };
    decimal_to_minor(digits)
        .map(|m| Some(sign * m))
        .map_err(|p| bad(field, p))
}

/// The decimal text of an amount given as a number or a string (`,` read as `.`).
fn amount_text(map: &Map<String, Value>, field: &str) -> Result<Option<String>, FieldError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().replace(',', "."))),
        Some(other) => Err(bad(
            field,
            format!("expected an amount, got {}", kind(other)),
        )),
    }
}

/// A non-negative decimal amount in major units (`1500`, `1500.5`, `1500,50`) as minor units,
/// exactly (more than two decimals cut toward zero); why not, when it is not one.
pub fn decimal_to_minor(raw: &str) -> Result<i64, String> {
    if raw.starts_with('-') {
        return Err(format!("{raw} is negative"));
    }
    if raw.contains(['e', 'E']) {
        return Err(format!("{raw} is not a plain decimal"));
    }
    let (whole, frac) = raw.split_once('.').unwrap_or((raw, ""));
    let whole = whole.strip_prefix('+').unwrap_or(whole);
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{raw:?} is not an amount"));
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{raw:?} is not an amount"));
    }
    let cents: i64 = match frac.len() {
        0 => 0,
        1 => i64::from(frac.as_bytes()[0] - b'0') * 10,
        _ => i64::from(frac.as_bytes()[0] - b'0') * 10 + i64::from(frac.as_bytes()[1] - b'0'),
    };
    whole
        .parse::<i64>()
        .ok()
        .and_then(|w| w.checked_mul(100))
        .and_then(|w| w.checked_add(cents))
        .ok_or_else(|| format!("{raw} is too large"))
}

/// A timestamp as Unix milliseconds: `2019-01-17T19:44:14+0900`, `…+09:00`,
/// `2019-01-17T10:44:14.000Z`, or company-local `2019-01-01 12:00:00` / `2019-01-01T12:00:00`,
/// read with `utc_offset_minutes`.
pub fn timestamp_ms(
    map: &Map<String, Value>,
    field: &str,
    utc_offset_minutes: i32,
) -> Result<Option<i64>, FieldError> {
    let Some(raw) = text(map, field) else {
        return Ok(None);
    };
    parse_time(&raw, utc_offset_minutes)
        .map(Some)
        .ok_or_else(|| bad(field, format!("{raw:?} is not a date and time")))
}

/// [`timestamp_ms`] of a text already taken out of its field.
pub fn parse_time(raw: &str, utc_offset_minutes: i32) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%z") {
        return Some(t.timestamp_millis());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.timestamp_millis());
    }
    let naive = NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    Some(naive.and_utc().timestamp_millis() - i64::from(utc_offset_minutes) * 60_000)
}

/// Every non-empty string under `keys` of an error body, however nested (`{"message": …}`,
/// `{"errors": {"phone": ["…"]}}`, `{"code": "SlotUnavailableError"}`), in key order.
pub fn messages(body: &Value, keys: &[&str]) -> Vec<String> {
    fn strings(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) if !s.is_empty() => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
            Value::Object(map) => map.values().for_each(|i| strings(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for key in keys {
        if let Some(v) = body.get(*key) {
            strings(v, &mut out);
        }
    }
    out
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("object expected"),
        }
    }

    #[test]
    fn ids_as_numbers_or_strings() {
        let m = map(json!({"a": 42, "b": "42", "c": 0, "d": "", "e": null, "f": 1.5, "g": []}));
        assert_eq!(id(&m, "a").unwrap().as_deref(), Some("42"));
        assert_eq!(id(&m, "b").unwrap().as_deref(), Some("42"));
        assert_eq!(id(&m, "c").unwrap(), None);
        assert_eq!(id(&m, "d").unwrap(), None);
        assert_eq!(id(&m, "e").unwrap(), None);
        assert_eq!(id(&m, "missing").unwrap(), None);
        assert!(id(&m, "f").is_err());
        assert!(id(&m, "g").is_err());
    }

    #[test]
    fn flags_in_every_spelling() {
        let m = map(json!({"a": 1, "b": "0", "c": true, "d": "1", "e": 2, "f": "yes"}));
        assert_eq!(flag(&m, "a").unwrap(), Some(true));
        assert_eq!(flag(&m, "b").unwrap(), Some(false));
        assert_eq!(flag(&m, "c").unwrap(), Some(true));
        assert_eq!(flag(&m, "d").unwrap(), Some(true));
        assert!(flag(&m, "e").is_err());
        assert!(flag(&m, "f").is_err());
    }

    #[test]
    fn money_is_read_exactly_from_the_decimal_text() {
        let m = map(json!({
            "a": 1500, "b": 1500.5, "c": "1500.50", "d": 0.03, "e": "99,99",
            "f": -10, "g": "abc", "h": 19.999, "i": 1e3, "j": "", "k": 0.1
        }));
        assert_eq!(money_minor(&m, "a").unwrap(), Some(150_000));
        assert_eq!(money_minor(&m, "b").unwrap(), Some(150_050));
        assert_eq!(money_minor(&m, "c").unwrap(), Some(150_050));
        assert_eq!(money_minor(&m, "d").unwrap(), Some(3));
        assert_eq!(money_minor(&m, "e").unwrap(), Some(9_999));
        assert!(money_minor(&m, "f").is_err());
        assert!(money_minor(&m, "g").is_err());
        assert_eq!(money_minor(&m, "h").unwrap(), Some(1_999));
        assert_eq!(money_minor(&m, "i").unwrap(), Some(100_000));
        assert_eq!(money_minor(&m, "j").unwrap(), None);
        assert_eq!(money_minor(&m, "k").unwrap(), Some(10));
        assert_eq!(signed_money_minor(&m, "f").unwrap(), Some(-1_000));
        assert_eq!(signed_money_minor(&m, "b").unwrap(), Some(150_050));
    }

    #[test]
    fn timestamps_with_and_without_offsets() {
        let m = map(json!({
            "a": "2019-01-17T19:44:14+0900",
            "b": "2019-01-17T19:44:14+09:00",
            "c": "2019-01-17 19:44:14",
            "d": "yesterday"
        }));
        let a = timestamp_ms(&m, "a", 0).unwrap().unwrap();
        assert_eq!(timestamp_ms(&m, "b", 0).unwrap(), Some(a));
        // Company-local time in UTC+9 is the same instant.
        assert_eq!(timestamp_ms(&m, "c", 540).unwrap(), Some(a));
        assert_eq!(a, 1_547_721_854_000);
        assert!(timestamp_ms(&m, "d", 0).is_err());
        let utc = map(json!({"z": "2019-01-17T10:44:14.000Z"}));
        assert_eq!(timestamp_ms(&utc, "z", 180).unwrap(), Some(a));
        assert_eq!(timestamp_ms(&m, "missing", 0).unwrap(), None);
    }

    #[test]
    fn empty_objects_come_as_arrays() {
        let v = json!({"client": [], "staff": {"id": 1}, "list": {}});
        let m = map(v);
        assert!(object(m.get("client")).is_none());
        assert!(object(m.get("staff")).is_some());
        assert!(items(m.get("list")).is_empty());
        assert_eq!(
            text(&map(json!({"phone": 79161234567u64})), "phone").as_deref(),
            Some("79161234567")
        );
    }
}
