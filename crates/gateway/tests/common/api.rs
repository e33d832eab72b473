//! The partner API from a test: requests with a key, answers as (status, JSON, headers), and
//! keys made through the CLI for salons moved to the Enterprise plan.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::web::Salons;

/// Start options whose API allows `per_second` requests a second per key (and a burst as
/// large): tests that make many requests are not limited.
pub fn unlimited(per_second: f64) -> loyalty_gateway::StartOptions {
    loyalty_gateway::StartOptions {
        dashboard: Some(loyalty_web::Settings {
            api_rate: loyalty_web::api::RateLimit {
                per_second,
                burst: per_second,
            },
            ..Default::default()
        }),
        ..loyalty_gateway::StartOptions::default()
    }
}

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn of(s: &Salons) -> Api {
        Api {
            base: format!("http://{}", s.gateway.addr),
            http: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, key: Option<&str>, path: &str) -> (StatusCode, Value, HeaderMap) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let r = req.send().await.unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        (status, r.json().await.unwrap_or(Value::Null), headers)
    }

    /// A POST with a JSON body and, if given, an Idempotency-Key.
    pub async fn post_full(
        &self,
        key: &str,
        path: &str,
        idem: Option<&str>,
        body: &Value,
    ) -> (StatusCode, Value, HeaderMap) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(body);
        if let Some(i) = idem {
            req = req.header("idempotency-key", i);
        }
        let r = req.send().await.unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        (status, r.json().await.unwrap_or(Value::Null), headers)
    }

    pub async fn delete(&self, key: &str, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .delete(format!("{}{path}", self.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(
        &self,
        key: &str,
        path: &str,
        idem: Option<&str>,
        body: &Value,
    ) -> (StatusCode, Value) {
        let (status, body, _) = self.post_full(key, path, idem, body).await;
        (status, body)
    }
}

/// Moves the salons to the Enterprise plan.
pub fn enterprise(s: &Salons, partners: &[i64]) {
    for p in partners {
        s.env.cli(&[
            "partner",
            "plan",
            "--partner",
            &p.to_string(),
            "--plan",
            "enterprise",
        ]);
    }
}

/// A new key of the salon (`read` or `write`), as `api-key add` shows it once.
pub fn key(s: &Salons, partner: i64, scope: &str) -> String {
    s.env.cli(&[
        "api-key",
        "add",
        "--partner",
        &partner.to_string(),
        "--scope",
        scope,
    ])["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// An executable of the Python tools `cargo xtask test` installs (schemathesis,
/// standardwebhooks' python): beside `SCHEMATHESIS`, else under `target/tools`.
pub fn tool(name: &str) -> std::path::PathBuf {
    use std::path::PathBuf;
    let bin = match std::env::var_os("SCHEMATHESIS") {
        Some(p) => PathBuf::from(p)
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default(),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
            .join("tools/schemathesis/bin"),
    };
    let exe = bin.join(name);
    assert!(
        exe.exists(),
        "{} is missing: `cargo xtask test` installs the Python tools (or set SCHEMATHESIS to \
         the schemathesis executable of a virtualenv that also has standardwebhooks)",
        exe.display()
    );
    exe
}

/// Checks a delivery's signature with the Standard Webhooks reference library (PyPI's
/// `standardwebhooks`), not with our own code: `Err` says why it refused.
pub fn verify_reference(
    secret: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<(), String> {
    use std::io::Write;
    let script = "import sys\n\
        from standardwebhooks.webhooks import Webhook\n\
        secret, msg_id, ts, sig = sys.argv[1:5]\n\
        body = sys.stdin.buffer.read().decode()\n\
        Webhook(secret).verify(body, {'webhook-id': msg_id, 'webhook-timestamp': ts, 'webhook-signature': sig})\n\
        print('verified')\n";
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut child = std::process::Command::new(tool("python"))
        .args(["-c", script, secret])
        .arg(get("webhook-id"))
        .arg(get("webhook-timestamp"))
        .arg(get("webhook-signature"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("verified") {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
