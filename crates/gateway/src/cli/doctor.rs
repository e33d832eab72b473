//! `doctor phones`: stored phones re-read in each partner's country.

use loyalty_core::doctor::{self, PhoneReport};
use loyalty_core::{PartnerId, StoreError};
use loyalty_store::SqlStore;
use serde_json::{Value, json};

use super::Usage;

/// `doctor phones`: every stored client phone re-read in its partner's country.
pub async fn doctor_phones(
    store: &SqlStore,
    partner: Option<PartnerId>,
    apply: bool,
) -> anyhow::Result<Value> {
    let report = match doctor::phones(store, partner, apply).await {
        Err(StoreError::NotFound(what)) => {
            return Err(Usage(format!("{what} does not exist")).into());
        }
        other => other?,
    };
    Ok(doctor_json(&report, apply))
}

fn doctor_json(report: &PhoneReport, apply: bool) -> Value {
    json!({
        "applied": apply,
        "partners": report.partners,
        "checked": report.checked,
        "would_change": report.count("would_change"),
        "changed": report.count("changed"),
        "collisions": report.count("collision"),
        "skipped": report.count("skipped"),
        "invalid": report.count("invalid"),
        "findings": report.findings,
    })
}

/// The text rendering of `doctor phones`.
pub fn doctor_text(v: &Value) -> String {
    let mut out = format!(
        "{} phones of {} partners checked: {} to change, {} changed, {} collisions, {} invalid.",
        v["checked"], v["partners"], v["would_change"], v["changed"], v["collisions"], v["invalid"]
    );
    for f in v["findings"].as_array().into_iter().flatten() {
        let line = match f["verdict"].as_str().unwrap_or_default() {
            "would_change" => format!("would move to {}", f["to"].as_str().unwrap_or_default()),
            "changed" => format!("moved to {}", f["to"].as_str().unwrap_or_default()),
            "collision" => format!(
                "reads as {}, which client {} holds: one person? (left as is)",
                f["to"].as_str().unwrap_or_default(),
                f["holder"]
            ),
            "skipped" => "changed meanwhile; run again".to_owned(),
            _ => format!("cannot exist: {}", f["reason"].as_str().unwrap_or_default()),
        };
        out.push_str(&format!(
            "\n  partner {} client {}  {} ({}): {line}",
            f["partner_id"],
            f["client_id"],
            f["stored"].as_str().unwrap_or_default(),
            f["country"].as_str().unwrap_or_default()
        ));
    }
    if v["applied"] == json!(false) && v["would_change"].as_u64().unwrap_or(0) > 0 {
        out.push_str("\nRun again with --apply to move them.");
    }
    out
}
