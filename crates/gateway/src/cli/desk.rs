//! At the desk: `client show`, `redeem`, `code show|use|resolve`.

use loyalty_core::code::Code;
use loyalty_core::engine::Resolution;
use loyalty_core::history::HistoryStore;
use loyalty_core::redemption::{Redemption, RedemptionStatus};
use loyalty_core::{EngineError, LoyaltyEngine, Points, RewardId};
use loyalty_store::SqlStore;
use serde_json::{Value, json};

use super::{Usage, desk_client, desk_phone, new_secret, not_a_client, refused};

/// `client show`.
/// `client show`: balance, the latest ledger entries and visits, and the visits' summary.
pub async fn client_show(
    engine: &LoyaltyEngine,
    history: &dyn HistoryStore,
    partner: i64,
    phone: &str,
    limit: u32,
) -> anyhow::Result<Value> {
    let (partner, phone) = desk_phone(engine.store().as_ref(), partner, phone).await?;
    let Some(statement) = engine.statement(partner, &phone, limit).await? else {
        return Err(not_a_client(partner, &phone));
    };
    let ledger: Vec<Value> = statement
        .history
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "kind": e.kind,
                "points": e.shown_delta(),
                "pending": e.is_pending(),
                "reason": e.reason,
                "at_ms": e.created_at_ms,
            })
        })
        .collect();
    let client = statement.client.id;
    let visits: Vec<Value> = history
        .visits_of(partner, client, limit)
        .await?
        .iter()
        .map(|v| {
            json!({
                "connection_id": v.connection_id,
                "record_id": v.record_id,
                "at_ms": v.visit_at_ms,
                "status": v.status,
                "staff_id": v.staff_id,
                "staff_name": v.staff_name,
                "paid_minor": v.paid_minor,
                "loyalty_paid_minor": v.loyalty_paid_minor,
                "services": v.lines.iter().map(|l| l.title.as_str()).collect::<Vec<_>>(),
                "source": v.source,
            })
        })
        .collect();
    let summary = history.summary(partner, client).await?.unwrap_or_default();
    let level = engine.client_level(partner, &statement.client).await?;
    Ok(json!({
        "phone": statement.client.phone,
        "name": statement.client.name,
        "telegram_linked": statement.client.telegram_chat_id.is_some(),
        "balance": statement.balance,
        "pending": engine.store().pending(partner, client).await?,
        "history": ledger,
        "summary": summary,
        "visits": visits,
        "level": level,
    }))
}

pub use loyalty_store::random_code;

fn redemption_json(r: &Redemption, reward: Option<&loyalty_core::Reward>) -> Value {
    json!({
        "code": r.code,
        "status": r.status,
        "partner": r.partner_id,
        "reward": reward.map(|w| w.title.clone()),
        "points": r.cost,
        "strategy": r.strategy,
        "expires_at_ms": r.expires_at_ms,
        "crm_id": r.write_back.external_id,
        "crm_attempts": r.write_back.attempts,
        "crm_error": r.write_back.last_error,
    })
}

/// `redeem`: a client at the desk exchanges points for a reward; prints the code.
pub async fn redeem(
    engine: &LoyaltyEngine,
    sql: &SqlStore,
    partner: i64,
    phone: &str,
    reward: i64,
    key: Option<String>,
) -> anyhow::Result<Value> {
    let store = engine.store();
    let (partner, _, client) = desk_client(store.as_ref(), partner, phone).await?;
    let Some(reward) = store.reward(partner, RewardId(reward)).await? else {
        return Err(Usage(format!("partner {partner} has no reward {reward}")).into());
    };
    let key = match key {
        Some(k) => format!("desk:{k}"),
        None => format!("desk:{}", new_secret()?),
    };
    let r = engine
        .redeem(
            partner,
            client.id,
            &reward,
            &key,
            crate::connections::reward_target(sql, partner).await?,
            &random_code,
        )
        .await
        .map_err(refused)?;
    let mut out = redemption_json(&r, Some(&reward));
    out["balance"] = json!(store.balance(partner, client.id).await?);
    Ok(out)
}

/// What `code` does with a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeAction {
    /// `code show`: what it is for and whether it can be used.
    Show,
    /// `code use [--bill-minor N]`: spend it at the desk. A gateway code for a money
    /// certificate needs the bill it pays (points pay at most the program's share of one).
    Use { bill_minor: Option<i64> },
}

/// `code show` / `code use`. For a gateway code worth money, the answer also says what it is
/// worth (`value_minor`) and the smallest bill it may pay (`min_bill_minor`).
pub async fn code(
    engine: &LoyaltyEngine,
    typed: &str,
    action: CodeAction,
) -> anyhow::Result<Value> {
    let code = Code::parse(typed).map_err(|e| Usage(format!("{typed:?}: {e}")))?;
    let store = engine.store();
    let r = match action {
        CodeAction::Use { bill_minor } => engine
            .use_code_at_desk(&code, bill_minor)
            .await
            .map_err(|e| match e {
                EngineError::BillNeeded { min_bill_minor, .. } => {
                    anyhow::Error::from(Usage(match min_bill_minor {
                        Some(min) => format!(
                            "{e}: add --bill-minor with the bill in minor units (at least {min})"
                        ),
                        None => format!("{e}; this program lets points pay no part of a bill"),
                    }))
                }
                other => refused(other),
            })?,
        CodeAction::Show => store
            .redemption_by_code(&code)
            .await?
            .ok_or_else(|| Usage(format!("no redemption has the code {code}")))?,
    };
    if action != CodeAction::Show && r.status == RedemptionStatus::Expired {
        return Err(Usage(format!(
            "code {code} expired unused; its {} points went back to the client",
            r.cost
        ))
        .into());
    }
    let reward = store.reward(r.partner_id, r.reward_id).await?;
    let mut out = redemption_json(&r, reward.as_ref());
    let terms = match &reward {
        Some(w) => engine.bill_terms(&r, w).await?,
        None => None,
    };
    if let Some(terms) = terms {
        out["value_minor"] = json!(terms.value_minor);
        out["min_bill_minor"] = json!(terms.min_bill_minor);
    }
    Ok(out)
}

/// `code resolve`: the operator's answer for a reward the gateway could not confirm in the
/// CRM.
pub async fn code_resolve(
    engine: &LoyaltyEngine,
    typed: &str,
    written: bool,
) -> anyhow::Result<Value> {
    let code = Code::parse(typed).map_err(|e| Usage(format!("{typed:?}: {e}")))?;
    let resolution = if written {
        Resolution::Written
    } else {
        Resolution::NotWritten
    };
    let r = engine
        .resolve_write_back(&code, resolution)
        .await
        .map_err(refused)?;
    let reward = engine.store().reward(r.partner_id, r.reward_id).await?;
    Ok(redemption_json(&r, reward.as_ref()))
}

pub fn code_text(v: &Value) -> String {
    let mut out = format!(
        "{}  {}  {} points  {}",
        v["code"].as_str().unwrap_or_default(),
        v["status"].as_str().unwrap_or_default(),
        v["points"],
        v["reward"].as_str().unwrap_or_default()
    );
    if let Some(balance) = v.get("balance") {
        out.push_str(&format!("\nbalance left: {balance} points"));
    }
    if let Some(value) = v.get("value_minor") {
        match v["min_bill_minor"].as_i64() {
            Some(min) => out.push_str(&format!(
                "\nworth {value} (minor units); pays a bill of at least {min}"
            )),
            None => out.push_str(&format!(
                "\nworth {value} (minor units); points may pay no part of a bill"
            )),
        }
    }
    if v["strategy"] != "gateway_code" {
        out.push_str(&format!(
            "\n{}: CRM id {}, {} tries",
            v["strategy"].as_str().unwrap_or_default(),
            v["crm_id"].as_str().unwrap_or("-"),
            v["crm_attempts"]
        ));
    }
    if let Some(error) = v["crm_error"].as_str() {
        out.push_str(&format!("\nlast CRM error: {error}"));
    }
    out
}

pub fn client_text(v: &Value) -> String {
    let mut out = format!(
        "{} {}: balance {}",
        v["phone"].as_str().unwrap_or_default(),
        v["name"].as_str().unwrap_or_default(),
        v["balance"]
    );
    if let Some(level) = v["level"]["progress"]["level"].as_str() {
        out.push_str(&format!(", level {level}"));
    }
    for h in v["history"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n  {:>+6}  {}  {}",
            h["points"].as_i64().unwrap_or_default(),
            h["kind"].as_str().unwrap_or_default(),
            h["reason"].as_str().unwrap_or_default()
        ));
    }
    let summary = &v["summary"];
    out.push_str(&format!(
        "\nvisits that came: {}, their bills {} (minor units)",
        summary["visits"], summary["paid_minor"]
    ));
    for visit in v["visits"].as_array().into_iter().flatten() {
        let services: Vec<&str> = visit["services"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        out.push_str(&format!(
            "\n  record {}  {}  {}  {}  {}",
            visit["record_id"].as_str().unwrap_or_default(),
            visit["status"].as_str().unwrap_or_default(),
            visit["paid_minor"],
            visit["staff_name"].as_str().unwrap_or("-"),
            services.join(", ")
        ));
    }
    out
}

/// Which way `client accrue` / `client debit` moves points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manual {
    Accrue,
    Debit,
}

/// `client accrue|debit`: points added or written off by hand (the Basic plan's way of working,
/// and corrections on any plan). The client is told in Telegram. `key` makes a retry safe: the
/// same key again returns the first posting, the same key with other input is refused; without
/// one, each run is a new posting.
pub async fn client_manual(
    engine: &LoyaltyEngine,
    direction: Manual,
    partner: i64,
    phone: &str,
    points: i64,
    reason: &str,
    key: Option<String>,
) -> anyhow::Result<Value> {
    if reason.trim().is_empty() {
        return Err(Usage("--reason: say why, the client and the audit see it".into()).into());
    }
    let store = engine.store();
    let (partner, phone, client) = desk_client(store.as_ref(), partner, phone).await?;
    let key = match key {
        Some(k) if k.trim().is_empty() => return Err(Usage("--key is empty".into()).into()),
        Some(k) => format!("cli:{k}"),
        None => format!("cli:{}", new_secret()?),
    };
    let points = Points(points);
    let posting = match direction {
        Manual::Accrue => {
            engine
                .manual_accrual(partner, client.id, points, reason.trim(), &key)
                .await
        }
        Manual::Debit => {
            engine
                .manual_debit(partner, client.id, points, reason.trim(), &key)
                .await
        }
    }
    .map_err(refused)?;
    Ok(json!({
        "partner_id": partner,
        "client_id": client.id,
        "phone": phone.masked(),
        "entry_id": posting.entry_id,
        "points": posting.delta,
        "balance": posting.balance,
        "reason": reason.trim(),
    }))
}

pub fn manual_text(v: &Value) -> String {
    format!(
        "{} {:+} points ({}): balance {}",
        v["phone"].as_str().unwrap_or_default(),
        v["points"].as_i64().unwrap_or_default(),
        v["reason"].as_str().unwrap_or_default(),
        v["balance"]
    )
}
