//! The partner API's OpenAPI document as served: at `/api/v1/openapi.json` without a key and
//! equal to the one generated from the code; every operation in it is routed (none answers
//! the catch-all's "route not found") and every path the router serves under `/api/v1` is in
//! it (anything else is the catch-all); the reference page lists every operation; and
//! schemathesis (from PyPI, installed by `cargo xtask test`) runs every operation against the
//! running gateway — valid and invalid requests — and finds no 5xx and no answer the document
//! does not allow.

mod common;

use std::process::Command;

use common::api::{Api, enterprise, key, tool, unlimited};
use common::browser::Browser;
use common::web::{PASSWORD, salons};
use loyalty_core::LedgerStore;
use loyalty_core::audit::{AuditAction, AuditStore};
use reqwest::StatusCode;
use serde_json::Value;

/// The path with its parameters filled in.
fn filled(path: &str) -> String {
    path.replace("{id}", "1").replace("{code}", "ABCD-EFGHJ")
}

fn is_catch_all(body: &Value) -> bool {
    body["code"] == "not_found" && body["detail"] == "route not found"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented_and_every_operation_routed() {
    let s = salons(unlimited(10_000.0)).await;
    enterprise(&s, &[s.a]);
    let w = key(&s, s.a, "write");
    let api = Api::of(&s);

    let (status, served, headers) = api.get(None, "/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let generated: Value =
        serde_json::from_str(&loyalty_web::api::openapi().to_json().unwrap()).unwrap();
    assert_eq!(served, generated);

    let paths = served["paths"].as_object().unwrap();
    let mut operations = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            operations.push((method.clone(), path.clone()));
        }
    }
    assert_eq!(operations.len(), 29);
    for (method, path) in &operations {
        let url = format!("{}{}", api.base, filled(path));
        let req = match method.as_str() {
            "get" => api.http.get(&url),
            "post" => api.http.post(&url).body("{}"),
            "delete" => api.http.delete(&url),
            other => panic!("{other} {path}"),
        };
        let r = req.bearer_auth(&w).send().await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!(!is_catch_all(&body), "{method} {path}: not routed");
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
    }
    // Paths the document does not name are the catch-all's, whatever the method.
    for path in [
        "/api/v1",
        "/api/v1/",
        "/api/v1/client",
        "/api/v1/clients/1/points/x",
        "/api/v1/webhooks",
    ] {
        for method in ["GET", "POST", "DELETE"] {
            let r = api
                .http
                .request(method.parse().unwrap(), format!("{}{path}", api.base))
                .bearer_auth(&w)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{method} {path}");
            assert!(is_catch_all(&r.json().await.unwrap()), "{method} {path}");
        }
    }

    // The reference page, from the binary alone.
    let page = api
        .http
        .get(format!("{}/api/v1/docs", api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (method, path) in &operations {
        let shown = format!("{} {}", method.to_uppercase(), path);
        assert!(page.contains(&shown), "{shown} on the page");
    }
    assert!(page.contains("Idempotency-Key") && page.contains("ProblemDoc"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing fetched from outside"
    );
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing() {
    let st = tool("schemathesis");
    let s = salons(unlimited(10_000.0)).await;
    enterprise(&s, &[s.a]);
    let w = key(&s, s.a, "write");
    let schema = format!("http://{}/api/v1/openapi.json", s.gateway.addr);
    let auth = format!("Authorization: Bearer {w}");
    // Its own cache and reports stay out of the repository.
    let scratch = tempfile::tempdir().unwrap();
    let cwd = scratch.path().to_owned();
    let run = tokio::task::spawn_blocking(move || {
        Command::new(st)
            .current_dir(cwd)
            .args([
                "run",
                &schema,
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
                 response_schema_conformance,response_headers_conformance",
                "--max-examples",
                "25",
                "--generation-deterministic",
                "--no-color",
                "-H",
                &auth,
            ])
            .env("SCHEMATHESIS_TELEMETRY", "false")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "schemathesis failed:\n{out}\n{err}");
    // Every operation was exercised.
    assert!(out.contains("29/29"), "{out}");
    let totals = s
        .gateway
        .store
        .account_totals(loyalty_core::PartnerId(s.a))
        .await
        .unwrap();
    assert!(totals.is_balanced(), "{totals:?}");
    s.finish().await;
}

/// The owner's side in headless Chromium: the API page of a Pro salon says which plan has the
/// API and offers no key; on Enterprise the owner makes a write key, sees it once, the key
/// works, the audit log names her; revoked from the page, the key stops at once. The
/// reference page opens from the API page and lists the operations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_made_and_revoked_on_the_dashboard() {
    let s = salons(unlimited(10_000.0)).await;
    let base = format!("http://{}", s.gateway.addr);
    let api = Api::of(&s);
    let b = Browser::start("api_keys", false).await;
    b.sign_in(&base, "owner@lotos.ru", PASSWORD).await;
    b.goto(&format!("{base}/api-keys")).await;
    b.wait_text("#api-plan", "Enterprise").await;
    assert!(!b.exists("#api-add").await);
    // The server refuses too, not only the page.
    let mut web = s.web("owner@lotos.ru").await;
    let refused = web.post("/api-keys/add", &[("scope", "write")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    enterprise(&s, &[s.a]);
    b.goto(&format!("{base}/api-keys")).await;
    b.find("#api-scope option[value=write]")
        .await
        .click()
        .await
        .unwrap();
    b.click("#api-add button").await;
    let key = b.text("#api-key-made code").await;
    assert!(key.starts_with("lb_live_"), "{key}");
    b.shot("made").await;
    let (status, _, _) = api
        .get(Some(&key), &format!("/api/v1/clients/{}", s.a_client))
        .await;
    assert_eq!(status, StatusCode::OK);
    // Shown once: the list names it by prefix only.
    b.goto(&format!("{base}/api-keys")).await;
    assert!(!b.driver.source().await.unwrap().contains(&key));
    assert!(b.text("#api-keys").await.contains(&key[..16]));
    let log = s
        .gateway
        .store
        .audit_log(loyalty_core::PartnerId(s.a), 5)
        .await
        .unwrap();
    assert!(
        log.iter().any(|e| e.action == AuditAction::ApiKeyCreated
            && e.actor.name == "owner@lotos.ru"
            && !e.detail.to_string().contains(&key)),
        "{log:?}"
    );

    b.click("#api-keys form button").await;
    b.wait_text("#api-keys", "отозван").await;
    let (status, _, _) = api
        .get(Some(&key), &format!("/api/v1/clients/{}", s.a_client))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    b.click("a[href='/api/v1/docs']").await;
    b.wait_text("h1", "Loyalty Bridge partner API").await;
    assert!(b.text("nav").await.contains("POST /api/v1/visits"));
    b.shot("reference").await;
    b.quit().await;
    s.finish().await;
}
