//! A webhook parser's fuzz target, run as a bounded property test on stable Rust: arbitrary
//! bytes, byte-level damage to the CRM's fixtures, and structure-aware mutations of them
//! (values swapped for other JSON types, keys removed). No input may panic; whatever parses
//! must be well-formed (a company, a record id, no negative line).

use loyalty_core::{CrmEvent, WebhookError};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;

/// The parser under test.
pub type Parse<'a> = &'a dyn Fn(&[u8]) -> Result<Vec<CrmEvent>, WebhookError>;

/// Every `.json` file of `fixtures/{crm}` for each CRM named, read whole.
pub fn fixtures(crms: &[&str]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for crm in crms {
        let dir = format!("{}/../../fixtures/{crm}", env!("CARGO_MANIFEST_DIR"));
        let Ok(entries) = std::fs::read_dir(&dir) else {
            panic!("no fixtures directory {dir}");
        };
        for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
            if path.extension().is_some_and(|e| e == "json")
                && let Ok(body) = std::fs::read(&path)
            {
                out.push(body);
            }
        }
    }
    out
}

/// Runs the three targets, `cases` inputs each, and panics on the first input that panics the
/// parser or parses into something ill-formed (proptest shrinks it first).
pub fn never_panics(fixtures: &[Vec<u8>], parse: Parse<'_>, cases: u32) {
    assert!(!fixtures.is_empty(), "no fixtures to mutate");
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let check = |body: &[u8]| -> Result<(), TestCaseError> {
        if let Ok(events) = parse(body) {
            well_formed(&events)?;
        }
        Ok(())
    };
    let mut runner = TestRunner::new(config.clone());
    let outcome = runner.run(&proptest::collection::vec(any::<u8>(), 0..512), |body| {
        check(&body)
    });
    if let Err(e) = outcome {
        panic!("arbitrary bytes: {e}");
    }
    let mut runner = TestRunner::new(config.clone());
    let damage = (
        any::<prop::sample::Index>(),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    );
    let outcome = runner.run(&damage, |(pick, flips)| {
        let mut body = fixtures[pick.index(fixtures.len())].clone();
        for (at, byte) in flips {
            if !body.is_empty() {
                let i = at.index(body.len());
                body[i] = byte;
            }
        }
        check(&body)
    });
    if let Err(e) = outcome {
        panic!("damaged fixtures: {e}");
    }
    let mut runner = TestRunner::new(config);
    let edits = (
        any::<prop::sample::Index>(),
        proptest::collection::vec((0usize..400, replacement()), 1..5),
    );
    let outcome = runner.run(&edits, |(pick, edits)| {
        let Ok(mut value) = serde_json::from_slice::<Value>(&fixtures[pick.index(fixtures.len())])
        else {
            return Ok(());
        };
        for (target, with) in &edits {
            let mut t = *target;
            mutate(&mut value, &mut t, with);
        }
        check(value.to_string().as_bytes())
    });
    if let Err(e) = outcome {
        panic!("mutated fixtures: {e}");
    }
}

fn well_formed(events: &[CrmEvent]) -> Result<(), TestCaseError> {
    prop_assert!(!events.is_empty());
    for e in events {
        prop_assert!(!e.company_id().is_empty());
        if let CrmEvent::Visit(v) = e {
            prop_assert!(!v.record_id.is_empty());
            prop_assert!(v.lines.iter().all(|l| l.paid_minor >= 0));
        }
    }
    Ok(())
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
        Just(Some(serde_json::json!([1, 2]))),
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
                    if let Some(slot) = key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                        *slot = v.clone();
                    }
                }
                (Value::Array(items), None) => {
                    if let Ok(i) = key.parse::<usize>()
                        && i < items.len()
                    {
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
