//! The partner API from a test: requests with a key, answers as (status, JSON, headers), and
//! keys made through the CLI for salons moved to the Enterprise plan.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::web::Salons;

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
