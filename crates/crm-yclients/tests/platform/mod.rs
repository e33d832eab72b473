//! The YCLIENTS platform's side of the adapter conformance story (`crm-conformance`), for
//! either flavor: YCLIENTS runs it in `crm-yclients`, Altegio in `crm-altegio` (which includes
//! this file). Webhooks come from each flavor's fixtures; API answers from the official spec's
//! examples (`fixtures/yclients/api_*.json`, the same platform for both).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crm_conformance::{Hook, Lookup, Subject};
use crm_yclients::{Credentials, Flavor, RateLimiter, Transport, YclientsAdapter, YclientsConfig};
use loyalty_core::{CrmAdapter, Phone};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockBuilder, ResponseTemplate};

pub struct Platform {
    pub flavor: Flavor,
    pub company: &'static str,
    /// The flavor's webhook of a visit that came (`fixtures/{crm}/record_came.json`).
    pub came: &'static str,
}

#[allow(dead_code)]
pub const YCLIENTS: Platform = Platform {
    flavor: Flavor::YCLIENTS,
    company: "4564",
    came: "yclients/record_came.json",
};

#[allow(dead_code)]
pub const ALTEGIO: Platform = Platform {
    flavor: Flavor::ALTEGIO,
    company: "778899",
    came: "altegio/record_came.json",
};

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("JSON fixture")
}

impl Platform {
    fn auth(&self, builder: MockBuilder) -> MockBuilder {
        builder
            .and(header("accept", self.flavor.accept))
            .and(crate::platform::Exactly(
                "authorization",
                "Bearer partner-token, User user-token",
            ))
    }

    fn hook(&self, hook: Hook) -> Value {
        let mut came = fixture(self.came);
        came["company_id"] = json!(self.company.parse::<i64>().unwrap_or(0));
        match hook {
            Hook::Came => {}
            Hook::NoShow => came["data"]["attendance"] = json!(-1),
            Hook::Edited => {
                let cost = came["data"]["services"][0]["cost"].as_i64().unwrap_or(0);
                came["data"]["services"][0]["cost"] = json!(cost - 500);
                came["data"]["last_change_date"] = json!("2026-11-20T15:40:00+0300");
            }
            Hook::Deleted => came["status"] = json!("delete"),
        }
        came
    }

    fn record(&self, id: i64) -> Value {
        let mut r = fixture("yclients/api_record_came.json")["data"].clone();
        r["id"] = json!(id);
        r
    }
}

/// The header's raw value, exactly (wiremock's `header` splits values at commas, and the
/// platform's `Bearer <partner>, User <user>` is one value with a comma in it).
pub struct Exactly(pub &'static str, pub &'static str);

impl wiremock::Match for Exactly {
    fn matches(&self, request: &wiremock::Request) -> bool {
        let values: Vec<_> = request.headers.get_all(self.0).iter().collect();
        values.len() == 1 && values[0].to_str().ok() == Some(self.1)
    }
}

#[async_trait]
impl Subject for Platform {
    fn name(&self) -> String {
        self.flavor.kind.to_string()
    }

    fn adapter(&self, base_url: &str, timeout: Duration) -> Arc<dyn CrmAdapter> {
        let mut config = YclientsConfig::new(self.flavor, self.company);
        config.base_url = Some(base_url.to_owned());
        let adapter = YclientsAdapter::with_api(
            config,
            crm_yclients::http_client().expect("http client"),
            Arc::new(RateLimiter::new(1_000, 100_000)),
            Credentials {
                partner_token: "partner-token".into(),
                user_token: Some("user-token".into()),
                login: None,
            },
        )
        .with_transport(Transport {
            timeout,
            max_attempts: 1,
            page_size: 1,
            ..Transport::default()
        });
        Arc::new(adapter)
    }

    fn webhook(&self, hook: Hook) -> (Option<&'static str>, Vec<u8>) {
        (
            Some("application/json"),
            self.hook(hook).to_string().into_bytes(),
        )
    }

    fn record_id(&self) -> String {
        "2".into()
    }

    fn phone(&self) -> Phone {
        Phone::parse_international("+79001234567").expect("phone")
    }

    fn find_client(&self) -> MockBuilder {
        self.auth(Mock::given(method("POST")))
            .and(path(format!("/company/{}/clients/search", self.company)))
            .and(body_json(json!({
                "page": 1,
                "page_size": 50,
                "fields": ["id", "name", "phone", "email"],
                "filters": [{ "type": "quick_search", "state": { "value": "79001234567" } }],
            })))
    }

    fn find_client_answer(&self, lookup: Lookup) -> ResponseTemplate {
        let data = match lookup {
            Lookup::Found => json!([{ "id": 18936825, "name": "Анна", "phone": "79001234567" }]),
            Lookup::NotFound => json!([]),
            Lookup::TwoCards => json!([
                { "id": 18936825, "name": "Анна", "phone": "+7 900 123-45-67" },
                { "id": 1200, "name": "Анна К.", "phone": 79001234567u64 },
            ]),
        };
        ResponseTemplate::new(200)
            .set_body_json(json!({ "success": true, "data": data, "meta": { "total_count": 2 } }))
    }

    fn expected_client(&self, lookup: Lookup) -> String {
        match lookup {
            Lookup::TwoCards => "1200".into(),
            _ => "18936825".into(),
        }
    }

    fn get_record(&self) -> MockBuilder {
        self.auth(Mock::given(method("GET")))
            .and(path(format!("/record/{}/2", self.company)))
    }

    fn get_record_answer(&self) -> ResponseTemplate {
        ResponseTemplate::new(200)
            .set_body_json(json!({ "success": true, "data": self.record(2), "meta": [] }))
    }

    fn changes(&self) -> Vec<(MockBuilder, ResponseTemplate)> {
        // SINCE_MS is 2025-11-24 19:00 in Moscow: that company-local day (Altegio's default
        // offset is UTC: 16:00 the same day). Pages of one, two in all.
        [1u32, 2]
            .into_iter()
            .map(|page| {
                (
                    self.auth(Mock::given(method("GET")))
                        .and(path(format!("/records/{}", self.company)))
                        .and(query_param("changed_after", "2025-11-24"))
                        .and(query_param("with_deleted", "1"))
                        .and(query_param("page", page.to_string()))
                        .and(query_param("count", "1")),
                    ResponseTemplate::new(200).set_body_json(json!({
                        "success": true,
                        "data": [self.record(i64::from(page) + 10)],
                        "meta": { "page": page, "total_count": 2 }
                    })),
                )
            })
            .collect()
    }
}
