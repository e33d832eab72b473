//! # crm-dikidi
//!
//! The Loyalty Bridge adapter for **DIKIDI**, which has no public API: no webhooks, no
//! documented REST, only its web app's own calls behind the owner's password. What this crate
//! does, it does without a login:
//!
//! - the **public booking widget's JSON** — what any visitor of the salon's booking page gets:
//!   the services by category with their prices (`company_services`) and the masters
//!   (`to_master_get_masters`), so service rewards and "favourite master" work on DIKIDI too;
//! - the salon's booking link (`https://dikidi.net/{company}`).
//!
//! Everything else — webhooks, records, clients, certificates, cards — is
//! [`AdapterError::Unsupported`]: a DIKIDI salon's visits come from its exports (`import file
//! --preset dikidi`) and from the desk (`visit add`, the bot's `/visit`), and its redemptions are
//! the gateway's own codes checked by staff. Logging in to the DIKIDI back office with the
//! owner's password is deliberately not done (docs/crm/dikidi.md says why).
//!
//! The widget's calls are unofficial: their shapes are those a public booking client reads
//! (docs/crm/dikidi.md names it), and every field is read leniently.

use std::sync::Arc;

use async_trait::async_trait;
use crm_http::{Reply, Transport, lenient};
use loyalty_core::adapter::{CrmNamed, CrmService, CrmStaff};
use loyalty_core::quota::CallGate;
use loyalty_core::{
    AdapterError, Capabilities, CrmAdapter, CrmEvent, CrmKind, Currency, Money, WebhookError,
};
use serde_json::Value;

/// Where the widget's calls go.
pub const DEFAULT_BASE_URL: &str = "https://dikidi.ru";

/// One DIKIDI salon (a "company" in DIKIDI's words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DikidiConfig {
    /// The company's number, as in its booking link `dikidi.net/{company}`.
    pub company_id: String,
    /// The widget's host, without a trailing slash.
    pub base_url: String,
    /// The salon's currency: the widget's prices carry none.
    pub currency: Currency,
}

impl DikidiConfig {
    /// A salon in roubles at [`DEFAULT_BASE_URL`].
    pub fn new(company_id: impl Into<String>) -> DikidiConfig {
        DikidiConfig {
            company_id: company_id.into(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            currency: Currency::Rub,
        }
    }
}

/// The adapter for one salon.
#[derive(Clone)]
pub struct DikidiAdapter {
    config: DikidiConfig,
    http: reqwest::Client,
    gate: Arc<dyn CallGate>,
    transport: Transport,
}

impl std::fmt::Debug for DikidiAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DikidiAdapter")
            .field("config", &self.config)
            .finish()
    }
}

impl DikidiAdapter {
    /// The widget through the process's HTTP client and a gate pacing the calls.
    pub fn new(
        config: DikidiConfig,
        http: reqwest::Client,
        gate: Arc<dyn CallGate>,
    ) -> DikidiAdapter {
        DikidiAdapter {
            config,
            http,
            gate,
            transport: Transport::default(),
        }
    }

    /// Other retry and timeout settings.
    pub fn with_transport(mut self, transport: Transport) -> DikidiAdapter {
        self.transport = transport;
        self
    }

    pub fn config(&self) -> &DikidiConfig {
        &self.config
    }

    /// `GET {base}{path}?{query}` as the widget asks it (an XHR accepting JSON).
    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, AdapterError> {
        let req = self
            .http
            .get(format!("{}{path}", self.config.base_url))
            .header(reqwest::header::ACCEPT, "application/json")
            .header("X-Requested-With", "XMLHttpRequest");
        let req = crm_http::json_request(req, query, None)?;
        let reply = crm_http::send(&self.http, &self.gate, self.transport, req, true).await?;
        answer(self.transport, reply)
    }

    /// The widget's service list: categories, each with its services.
    async fn catalog(&self) -> Result<Value, AdapterError> {
        let query = [
            ("lang", "ru".to_owned()),
            ("array", "1".to_owned()),
            ("company", self.config.company_id.clone()),
            ("master", String::new()),
            ("share", String::new()),
        ];
        self.get("/mobile/ajax/newrecord/company_services/", &query)
            .await
    }
}

/// An answer's JSON, or the typed error its status (or the widget's own `error`) means.
fn answer(transport: Transport, reply: Reply) -> Result<Value, AdapterError> {
    let status = reply.status;
    if transport.is_rate_limited(status) {
        return Err(AdapterError::RateLimited {
            retry_after: reply.retry_after,
        });
    }
    let body: Option<Value> = serde_json::from_slice(&reply.body).ok();
    let message = body
        .as_ref()
        .map(|b| lenient::messages(b, &["message"]).join("; "))
        .unwrap_or_default();
    match status {
        200..=299 => {
            let body = body.ok_or_else(|| {
                AdapterError::Unexpected(format!("HTTP {status}: the widget answered no JSON"))
            })?;
            // `{"error": {"code": 0, "message": null}, "data": …}`: a code other than 0 is
            // the widget refusing (a company it does not know, a closed booking page).
            let code = body
                .get("error")
                .and_then(|e| e.get("code"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if code != 0 {
                let why = body
                    .get("error")
                    .and_then(|e| e.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("refused")
                    .to_owned();
                return Err(AdapterError::Validation(vec![format!(
                    "DIKIDI's widget: {why} (code {code})"
                )]));
            }
            Ok(body)
        }
        401 => Err(AdapterError::Auth(message)),
        402 | 403 => Err(AdapterError::Forbidden(message)),
        404 => Err(AdapterError::NotFound(message)),
        500..=599 => Err(AdapterError::Transient(format!("HTTP {status}: {message}"))),
        _ => Err(AdapterError::Unexpected(format!(
            "HTTP {status}: {message}"
        ))),
    }
}

/// The categories of the widget's list, each with its services.
fn categories(catalog: &Value) -> &[Value] {
    lenient::items(catalog.get("data").and_then(|d| d.get("list")))
}

/// A price as the widget gives it: a number, `"1500"`, or a range (`"1500 - 2500"`, `"от
/// 1500"`): its lowest and highest amounts.
fn price_range(value: Option<&Value>, currency: Currency) -> (Option<Money>, Option<Money>) {
    let text = match value {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => return (None, None),
    };
    let amounts: Vec<Money> = text
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .filter(|part| part.chars().any(|c| c.is_ascii_digit()))
        .filter_map(|part| lenient::decimal_to_minor(&part.replace(',', ".")).ok())
        .filter_map(|minor| Money::new(minor, currency).ok())
        .collect();
    (amounts.first().copied(), amounts.last().copied())
}

#[async_trait]
impl CrmAdapter for DikidiAdapter {
    fn kind(&self) -> CrmKind {
        CrmKind::Dikidi
    }

    /// Nothing the engine relies on: no webhooks, no records, no client writes, no
    /// certificates, promo codes or cards.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    fn parse_webhook(
        &self,
        _content_type: Option<&str>,
        _body: &[u8],
    ) -> Result<Vec<CrmEvent>, WebhookError> {
        Err(WebhookError::Shape(
            "DIKIDI sends no webhooks: its visits come from files and the desk".into(),
        ))
    }

    async fn list_services(&self) -> Result<Vec<CrmService>, AdapterError> {
        let catalog = self.catalog().await?;
        let mut out = Vec::new();
        for category in categories(&catalog) {
            let Some(cat) = category.as_object() else {
                continue;
            };
            let category_id = lenient::id(cat, "id").ok().flatten();
            for service in lenient::items(cat.get("services")) {
                let Some(s) = service.as_object() else {
                    continue;
                };
                let Ok(Some(id)) = lenient::id(s, "id") else {
                    continue;
                };
                let (price_min, price_max) = price_range(s.get("cost"), self.config.currency);
                out.push(CrmService {
                    external_id: id,
                    title: lenient::text(s, "name").unwrap_or_default(),
                    category_id: category_id.clone(),
                    price_min,
                    price_max,
                });
            }
        }
        Ok(out)
    }

    async fn list_categories(&self) -> Result<Vec<CrmNamed>, AdapterError> {
        let catalog = self.catalog().await?;
        Ok(categories(&catalog)
            .iter()
            .filter_map(Value::as_object)
            .filter_map(|c| {
                Some(CrmNamed {
                    external_id: lenient::id(c, "id").ok().flatten()?,
                    name: lenient::text(c, "name").unwrap_or_default(),
                })
            })
            .collect())
    }

    async fn list_staff(&self) -> Result<Vec<CrmStaff>, AdapterError> {
        let query = [("company_id", self.config.company_id.clone())];
        let answer = self
            .get("/ru/ajax/newrecord/to_master_get_masters/", &query)
            .await?;
        let masters = answer.get("masters").and_then(Value::as_object);
        let Some(masters) = masters else {
            return Ok(Vec::new());
        };
        // In the widget's order; any master the order leaves out after it.
        let mut order: Vec<String> = lenient::items(answer.get("masters_order"))
            .iter()
            .filter_map(|id| match id {
                Value::Number(n) => Some(n.to_string()),
                Value::String(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        for key in masters.keys() {
            if !order.contains(key) {
                order.push(key.clone());
            }
        }
        Ok(order
            .iter()
            .filter_map(|key| masters.get(key).and_then(Value::as_object))
            .filter_map(|m| {
                Some(CrmStaff {
                    external_id: lenient::id(m, "id").ok().flatten()?,
                    name: lenient::text(m, "username").unwrap_or_default(),
                })
            })
            .collect())
    }

    async fn booking_link(&self) -> Result<String, AdapterError> {
        Ok(format!("https://dikidi.net/{}", self.config.company_id))
    }
}
