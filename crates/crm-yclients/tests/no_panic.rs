//! The webhook parser's fuzz target, run as a bounded property test on stable Rust: arbitrary
//! bytes, byte-level damage to real payloads, and structure-aware mutations of every fixture
//! (values swapped for other JSON types, keys removed). No input may panic; whatever parses
//! must be well-formed.

use crm_yclients::{ParseContext, parse_webhook};
use loyalty_core::{Country, CrmEvent, Currency};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::Value;

const CTX: ParseContext = ParseContext {
    currency: Currency::Rub,
    utc_offset_minutes: 180,
    country: Country::RU,
};

/// Every fixture, read once for all cases.
fn fixtures() -> &'static [Vec<u8>] {
    static ALL: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    ALL.get_or_init(read_fixtures)
}

fn read_fixtures() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for crm in ["yclients", "altegio"] {
        let dir = format!("{}/../../fixtures/{crm}", env!("CARGO_MANIFEST_DIR"));
        for entry in std::fs::read_dir(&dir).expect("fixtures dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                out.push(std::fs::read(&path).expect("fixture"));
            }
        }
    }
    assert!(out.len() >= 15, "fixtures missing");
    out
}

fn config() -> Config {
    Config {
        cases: 3_000,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Checks what a successful parse returned.
fn well_formed(events: &[CrmEvent]) {
    assert!(!events.is_empty());
    for e in events {
        assert!(!e.company_id().is_empty());
        if let CrmEvent::Visit(v) = e {
            assert!(!v.record_id.is_empty());
            assert!(v.lines.iter().all(|l| l.paid_minor >= 0));
        }
    }
}

fn replacement() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        Just(Some(Value::Array(vec![]))),
        Just(Some(serde_json::json!({}))),
        any::<bool>().prop_map(|b| Some(Value::Bool(b))),
        any::<i64>().prop_map(|n| Some(n.into())),
        any::<f64>().prop_map(|f| Some(serde_json::json!(f))),
        "\\PC{0,12}".prop_map(|s| Some(Value::String(s))),
        Just(Some(Value::String("+7 (916) 123-45-67".into()))),
        Just(Some(Value::String("2024-02-30T25:61:00+9999".into()))),
    ]
}

/// Replaces (or with `None` removes) the `target`-th node in preorder.
fn mutate(value: &mut Value, target: &mut usize, with: &Option<Value>) -> bool {
    let children: Vec<String> = match value {
        Value::Object(map) => map.keys().cloned().collect(),
        Value::Array(items) => (0..items.len()).map(|i| i.to_string()).collect(),
        _ => Vec::new(),
    };
    for key in children {
        if *target == 0 {
            match (value, with) {
                (Value::Object(map), None) => {
                    map.remove(&key);
                }
                (Value::Object(map), Some(v)) => {
                    map.insert(key, v.clone());
                }
                (Value::Array(items), Some(v)) => {
                    if let Ok(i) = key.parse::<usize>() {
                        items[i] = v.clone();
                    }
                }
                (Value::Array(items), None) => {
                    if let Ok(i) = key.parse::<usize>() {
                        items.remove(i);
                    }
                }
                _ => {}
            }
            return true;
        }
        *target -= 1;
        let child = match value {
            Value::Object(map) => map.get_mut(&key),
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        };
        if let Some(child) = child
            && mutate(child, target, with)
        {
            return true;
        }
    }
    false
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(events) = parse_webhook(&CTX, &body) {
            well_formed(&events);
        }
    }

    #[test]
    fn damaged_payloads_never_panic(
        pick in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let all = fixtures();
        let mut body = all[pick.index(all.len())].clone();
        for (at, byte) in flips {
            let i = at.index(body.len());
            body[i] = byte;
        }
        if let Ok(events) = parse_webhook(&CTX, &body) {
            well_formed(&events);
        }
    }

    #[test]
    fn mutated_payloads_never_panic(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((0usize..400, replacement()), 1..5),
    ) {
        let all = fixtures();
        let mut value: Value = serde_json::from_slice(&all[pick.index(all.len())]).expect("fixture");
        for (target, with) in &edits {
            let mut t = *target;
            mutate(&mut value, &mut t, with);
        }
        let body = value.to_string();
        if let Ok(events) = parse_webhook(&CTX, body.as_bytes()) {
            well_formed(&events);
        }
    }
}
