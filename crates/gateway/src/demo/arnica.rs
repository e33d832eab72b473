//! The demo's second salon: a clinic on Arnica, so a newcomer sees that the product is not
//! YCLIENTS-only.

use loyalty_core::{ClientStore, LedgerStore, PartnerId, Phone};
use serde_json::{Value, json};

use super::{ANNA, Standin, drain, post_json, wait_until};
use crate::cli::{self, ConnectionAdd};
use crate::config::Config;

/// «Арника», a clinic on Arnica with webhooks only: Анна's visit there accrues at its own rate
/// and she is told in the same bot; the hook delivered twice counts once; its reward would be a
/// gateway code (Arnica's API writes no certificates).
pub(super) async fn salon(
    gateway: &crate::Gateway,
    config: &Config,
    standin: &Standin,
    http: &reqwest::Client,
    say: &impl Fn(String),
) -> anyhow::Result<Value> {
    let partner = cli::partner_add(
        &gateway.store,
        &super::salon("Арника", 700),
        &loyalty_core::audit::Actor::system(),
        gateway.engine.now_ms(),
    )
    .await?;
    let arnica_id = PartnerId(partner["id"].as_i64().unwrap_or_default());
    let connection = cli::connection_add(
        &gateway.store,
        config,
        &ConnectionAdd {
            partner: arnica_id.0,
            crm: loyalty_core::CrmKind::Arnica,
            company_id: "7781".into(),
            partner_token: None,
            user_token: None,
            login: cli::CrmLogin::default(),
            utc_offset_minutes: None,
            country: None,
        },
        gateway.engine.now_ms(),
    )
    .await?;
    let hook = connection["webhook_url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    say(format!(
        "\n19:50  Across town, «Арника», a clinic on Arnica (SQNS), joins with 7 % cashback:\n      $ loyalty-gateway connection add --partner {arnica_id} --crm arnica --company-id 7781\n      webhook URL for Arnica: {hook}"
    ));
    let body = crate::sample::arnica_visit_webhook(&crate::sample::ArnicaVisit {
        org_id: 7781,
        visit_id: 90817,
        client_id: 4471,
        client_name: ANNA.name,
        phone: "+7(916)111-00-01",
        pay_sum: "3000.00",
        attendance: 1,
        changed_at_s: 39_000,
    });
    let mut deliveries = Vec::new();
    for (time, what) in [
        ("20:10", "Анна came; haircut, 3 000 ₽"),
        ("20:10", "the same hook delivered again"),
    ] {
        let before = standin.sent_count();
        let answer = post_json(http, &hook, &body).await?;
        let outcome = answer["events"][0]["outcome"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        let points = answer["events"][0]["points"].as_i64().unwrap_or_default();
        say(format!(
            "{time}  Arnica → visit 90817 of Анна: {what}\n      gateway: {outcome}{}",
            if points != 0 {
                format!(" {points:+} points")
            } else {
                String::new()
            }
        ));
        deliveries.push(format!("{time} {outcome} {points:+}"));
        if points != 0 {
            wait_until(|| standin.sent_count() > before).await;
        }
    }
    drain(gateway.store.as_ref()).await;
    let phone = Phone::parse_international(ANNA.phone)?;
    let balance = match gateway.store.client_by_phone(arnica_id, &phone).await? {
        Some(c) => gateway.store.balance(arnica_id, c.id).await?.value(),
        None => 0,
    };
    Ok(json!({
        "salon": "Арника",
        "crm": "arnica",
        "anna_balance": balance,
        "deliveries": deliveries,
    }))
}
