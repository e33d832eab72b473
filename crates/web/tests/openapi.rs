//! The partner API's OpenAPI document: committed beside the code (a change to the API shows in
//! review: `UPDATE_OPENAPI=1 cargo test -p loyalty-web --test openapi` writes it again), and
//! concrete — every operation answers a shape with named fields, every error a problem
//! document, every POST needs an Idempotency-Key — so a loose schema cannot let schemathesis
//! pass. That every route the router serves is in it is checked over HTTP in the gateway's
//! `api_document` test.

use serde_json::Value;

fn doc() -> Value {
    let json = loyalty_web::api::openapi().to_pretty_json().unwrap();
    serde_json::from_str(&json).unwrap()
}

/// The schema a `$ref` names, or the schema itself.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// A shape with fields: an object with properties, an array of such, or all of such.
/// The POSTs that change nothing: a rule tried on a past visit.
const READ_BY_POST: [&str; 1] = ["preview_custom_trigger"];

fn concrete(doc: &Value, schema: &Value) -> bool {
    let s = resolve(doc, schema);
    if s["type"] == "array" {
        return concrete(doc, &s["items"]);
    }
    if let Some(parts) = s["allOf"].as_array() {
        return !parts.is_empty() && parts.iter().all(|p| concrete(doc, p));
    }
    s["type"] == "object" && s["properties"].as_object().is_some_and(|p| !p.is_empty())
}

#[test]
fn the_document_is_committed() {
    let now = loyalty_web::api::openapi().to_pretty_json().unwrap() + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &now).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == now,
        "the API changed: UPDATE_OPENAPI=1 cargo test -p loyalty-web --test openapi, and \
         review crates/web/openapi.json"
    );
}

#[test]
fn every_operation_is_concrete() {
    let doc = doc();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(doc["info"]["title"], "Loyalty Bridge partner API");
    assert_eq!(doc["security"][0]["bearer"], serde_json::json!([]));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let mut ids = std::collections::BTreeSet::new();
    let mut count = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with("/api/v1/"), "{path}");
        for (method, op) in item.as_object().unwrap() {
            count += 1;
            let at = format!("{method} {path}");
            assert!(
                ids.insert(op["operationId"].as_str().unwrap().to_owned()),
                "{at}"
            );
            assert!(op["tags"][0].is_string(), "{at}: a tag");
            assert!(
                !op["summary"].as_str().unwrap_or("").is_empty(),
                "{at}: a summary"
            );
            let responses = op["responses"].as_object().unwrap();
            let ok: Vec<_> = responses.keys().filter(|s| s.starts_with('2')).collect();
            assert!(!ok.is_empty(), "{at}: a success answer");
            for (status, r) in responses {
                let content = r["content"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{at} {status}: a body"));
                if status.starts_with('2') {
                    let schema = &content["application/json"]["schema"];
                    assert!(concrete(&doc, schema), "{at} {status}: {schema}");
                } else {
                    let schema = &content["application/problem+json"]["schema"];
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/ProblemDoc",
                        "{at} {status}"
                    );
                }
            }
            for common in ["401", "403", "429", "500", "503"] {
                assert!(responses.contains_key(common), "{at}: {common}");
            }
            assert_eq!(
                responses["429"]["headers"]["Retry-After"]["schema"]["type"],
                "integer"
            );
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            for p in &params {
                assert!(!p["schema"].is_null(), "{at}: {p}");
            }
            // A POST that only reads takes no key (and meets no 409); every other needs one.
            if method == "post" && READ_BY_POST.contains(&op["operationId"].as_str().unwrap_or(""))
            {
                assert!(
                    !params.iter().any(|p| p["name"] == "Idempotency-Key")
                        && !responses.contains_key("409"),
                    "{at}"
                );
            } else if method == "post" {
                let idem = params
                    .iter()
                    .find(|p| p["name"] == "Idempotency-Key")
                    .unwrap_or_else(|| panic!("{at}: an Idempotency-Key"));
                assert_eq!(
                    (&idem["in"], &idem["required"]),
                    (&"header".into(), &true.into())
                );
                assert!(
                    responses.contains_key("400") && responses.contains_key("409"),
                    "{at}"
                );
                if let Some(body) = op.get("requestBody") {
                    let schema = &body["content"]["application/json"]["schema"];
                    assert!(concrete(&doc, schema), "{at} body: {schema}");
                }
            }
        }
    }
    assert_eq!(count, 29, "operations");
    // Every field of every shape has a type.
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        for (field, s) in schema["properties"].as_object().into_iter().flatten() {
            let typed = s.get("type").is_some()
                || s.get("$ref").is_some()
                || s.get("oneOf").is_some()
                || s.get("enum").is_some();
            assert!(typed, "{name}.{field}: {s}");
        }
    }
}
