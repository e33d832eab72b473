//! # crm-yclients
//!
//! The Loyalty Bridge adapter for **YCLIENTS** and **Altegio**, its international edition: one
//! platform, one code path, two [`Flavor`]s (base URL and `Accept` header differ; paths, fields
//! and webhooks are the same).
//!
//! This step covers webhook parsing ([`parse_webhook`], [`YclientsAdapter`]'s
//! [`CrmAdapter::parse_webhook`]); the HTTP client comes next. What the vendors document and
//! what is only assumed is in `docs/crm/yclients.md`.

pub mod lenient;
mod webhook;

use loyalty_core::{Capabilities, CrmAdapter, CrmEvent, CrmKind, Currency, WebhookError};

pub use webhook::{ParseContext, parse as parse_webhook};

/// Which edition of the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flavor {
    pub kind: CrmKind,
    /// REST base, without a trailing slash.
    pub base_url: &'static str,
    /// The `Accept` header that selects the v2 response envelope.
    pub accept: &'static str,
    /// The currency most of its companies use, when the company's is not known yet.
    pub default_currency: Currency,
}

impl Flavor {
    pub const YCLIENTS: Flavor = Flavor {
        kind: CrmKind::Yclients,
        base_url: "https://api.yclients.com/api/v1",
        accept: "application/vnd.yclients.v2+json",
        default_currency: Currency::Rub,
    };

    pub const ALTEGIO: Flavor = Flavor {
        kind: CrmKind::Altegio,
        base_url: "https://api.alteg.io/api/v1",
        accept: "application/vnd.api.v2+json",
        default_currency: Currency::Usd,
    };

    /// The flavor of a CRM kind, if it is this platform.
    pub fn of(kind: CrmKind) -> Option<Flavor> {
        match kind {
            CrmKind::Yclients => Some(Flavor::YCLIENTS),
            CrmKind::Altegio => Some(Flavor::ALTEGIO),
            _ => None,
        }
    }
}

/// One connected company (location).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YclientsConfig {
    pub flavor: Flavor,
    pub company_id: String,
    pub context: ParseContext,
}

impl YclientsConfig {
    /// A company of the given flavor in its default currency, timestamps without an offset read
    /// as UTC+3 (Moscow) on YCLIENTS and UTC on Altegio until the company's zone is known.
    pub fn new(flavor: Flavor, company_id: impl Into<String>) -> YclientsConfig {
        let utc_offset_minutes = if flavor.kind == CrmKind::Yclients {
            180
        } else {
            0
        };
        YclientsConfig {
            flavor,
            company_id: company_id.into(),
            context: ParseContext {
                currency: flavor.default_currency,
                utc_offset_minutes,
            },
        }
    }
}

/// The adapter for one company.
#[derive(Debug, Clone)]
pub struct YclientsAdapter {
    config: YclientsConfig,
}

impl YclientsAdapter {
    pub fn new(config: YclientsConfig) -> YclientsAdapter {
        YclientsAdapter { config }
    }

    pub fn config(&self) -> &YclientsConfig {
        &self.config
    }
}

/// `application/json`, `…+json`, or nothing said.
fn is_json(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return true };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

#[async_trait::async_trait]
impl CrmAdapter for YclientsAdapter {
    fn kind(&self) -> CrmKind {
        self.config.flavor.kind
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            webhooks: true,
            ..Capabilities::default()
        }
    }

    fn parse_webhook(
        &self,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<CrmEvent>, WebhookError> {
        if !is_json(content_type) {
            return Err(WebhookError::ContentType(
                content_type.unwrap_or_default().to_owned(),
            ));
        }
        parse_webhook(&self.config.context, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert!(is_json(None));
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON; charset=utf-8")));
        assert!(is_json(Some("application/vnd.api.v2+json")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(Some("application/x-www-form-urlencoded")));
    }

    #[test]
    fn flavors_differ_only_in_base_and_accept() {
        assert_eq!(Flavor::of(CrmKind::Altegio), Some(Flavor::ALTEGIO));
        assert_eq!(Flavor::of(CrmKind::Arnica), None);
        assert_eq!(Flavor::YCLIENTS.accept, "application/vnd.yclients.v2+json");
        assert_eq!(Flavor::ALTEGIO.accept, "application/vnd.api.v2+json");
    }
}
