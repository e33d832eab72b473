//! `inspect-webhook`: what a webhook body means, without a database. The operator's answer to
//! "why did this visit not accrue?".

use std::io::Read;
use std::path::PathBuf;

use crm_yclients::{Flavor, YclientsAdapter, YclientsConfig};
use loyalty_core::{Country, CrmAdapter, CrmEvent, CrmKind, Currency};
use serde_json::{Value, json};

/// Why the input could not be inspected (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("inspect-webhook understands yclients, altegio, arnica and beautypro, not {0}")]
    UnsupportedCrm(CrmKind),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Webhook(#[from] loyalty_core::WebhookError),
}

pub struct Request {
    pub crm: CrmKind,
    pub file: PathBuf,
    pub currency: Option<Currency>,
    pub utc_offset_minutes: Option<i32>,
    /// The company's country: phones are read as typed there.
    pub country: Country,
}

/// One JSON line per normalized event.
pub fn inspect(req: &Request) -> Result<Vec<Value>, InspectError> {
    let body = read(&req.file)?;
    let mut config = YclientsConfig::new(Flavor::of(req.crm).unwrap_or(Flavor::YCLIENTS), "");
    let mut ctx = match req.crm {
        CrmKind::Arnica => crm_arnica::ArnicaConfig::new("").context,
        CrmKind::Beautypro => crm_beautypro::BeautyProConfig::new("").context,
        _ => config.context,
    };
    ctx.currency = req.currency.unwrap_or(ctx.currency);
    ctx.utc_offset_minutes = req.utc_offset_minutes.unwrap_or(ctx.utc_offset_minutes);
    ctx.country = req.country;
    let events = match req.crm {
        CrmKind::Yclients | CrmKind::Altegio => {
            config.context = ctx;
            YclientsAdapter::new(config).parse_webhook(None, &body)?
        }
        CrmKind::Arnica => {
            let mut config = crm_arnica::ArnicaConfig::new("");
            config.context = ctx;
            crm_arnica::ArnicaAdapter::new(config).parse_webhook(None, &body)?
        }
        CrmKind::Beautypro => {
            let mut config = crm_beautypro::BeautyProConfig::new("");
            config.context = ctx;
            crm_beautypro::BeautyProAdapter::new(config).parse_webhook(None, &body)?
        }
        other => return Err(InspectError::UnsupportedCrm(other)),
    };
    Ok(events.iter().map(describe).collect())
}

fn read(file: &PathBuf) -> Result<Vec<u8>, InspectError> {
    let mut body = Vec::new();
    let result = if file.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut body).map(|_| ())
    } else {
        std::fs::read(file).map(|b| body = b)
    };
    result.map_err(|source| InspectError::Read {
        path: file.display().to_string(),
        source,
    })?;
    Ok(body)
}

/// The event as JSON; visits and sales also get the flat fields an operator looks for first.
fn describe(event: &CrmEvent) -> Value {
    let mut out = serde_json::to_value(event).unwrap_or_else(|e| json!({ "error": e.to_string() }));
    let (client, amount_minor) = match event {
        CrmEvent::Visit(v) => (v.client.as_ref(), v.paid_minor()),
        CrmEvent::Sale(s) => (s.client.as_ref(), s.as_visit().paid_minor()),
        _ => return out,
    };
    if let Value::Object(map) = &mut out {
        let phone = client.and_then(|c| c.phone.as_ref()).map(|p| p.to_string());
        map.insert("phone".into(), json!(phone));
        map.insert(
            "client_id".into(),
            json!(client.and_then(|c| c.external_id.clone())),
        );
        map.insert("amount_minor".into(), json!(amount_minor));
    }
    out
}
