//! The operator's commands on partners, connections and clients. Each returns one JSON object
//! (printed as is with `--json`) and a text rendering.

use std::sync::Arc;

use crm_yclients::RewardSetup;
use loyalty_core::code::Code;
use loyalty_core::doctor::{self, PhoneReport};
use loyalty_core::engine::Resolution;
use loyalty_core::model::{NewConnection, NewPartner};
use loyalty_core::redemption::{Redemption, RedemptionStatus, Strategy};
use loyalty_core::{
    Bps, ConnectionId, Country, CrmKind, Currency, EngineError, LoyaltyEngine, NewReward,
    PartnerId, Phone, Points, Program, RewardId, RewardKind, Store, StoreError,
};
use loyalty_store::{ConnectionSettings, SqlStore};
use serde_json::{Value, json};

use crate::config::Config;

/// `partner add`.
#[derive(Debug, Clone)]
pub struct PartnerAdd {
    pub name: String,
    pub cashback_bps: u32,
    pub currency: Currency,
    pub min_paid_minor: i64,
    pub points_ttl_days: Option<u32>,
    pub welcome_bonus: i64,
    pub point_value_minor: i64,
    pub max_redeem_share_bps: u32,
    pub code_ttl_days: u32,
    pub country: Country,
}

/// An operator's mistake, reported as such (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

pub async fn partner_add(store: &SqlStore, req: &PartnerAdd, now_ms: i64) -> anyhow::Result<Value> {
    let name = req.name.trim();
    if name.is_empty() {
        return Err(Usage("--name must not be empty".into()).into());
    }
    let bps = |v: u32, flag: &str| {
        Bps::new(i64::from(v))
            .map_err(|_| Usage(format!("{flag} must be 0..=10000 (basis points), got {v}")))
    };
    let program = Program {
        currency: req.currency,
        cashback: bps(req.cashback_bps, "--cashback-bps")?,
        min_paid_minor: req.min_paid_minor,
        rules: Vec::new(),
        points_ttl_days: req.points_ttl_days,
        max_redeem_share: bps(req.max_redeem_share_bps, "--max-redeem-share-bps")?,
        welcome_bonus: Points(req.welcome_bonus),
        point_value_minor: req.point_value_minor,
        code_ttl_days: req.code_ttl_days,
        country: req.country,
    };
    program
        .validate()
        .map_err(|e| Usage(format!("invalid program: {e}")))?;
    let partner = store
        .create_partner(
            &NewPartner {
                name: name.to_owned(),
                program,
            },
            now_ms,
        )
        .await?;
    Ok(json!({ "id": partner.id, "name": partner.name, "program": partner.program }))
}

/// `partner set`: changes the program's settings that may change without touching what
/// visits already earned (today: the country phones are read in).
pub async fn partner_set(
    store: &SqlStore,
    partner: PartnerId,
    country: Option<Country>,
) -> anyhow::Result<Value> {
    let Some(mut found) = store.partner(partner).await? else {
        return Err(Usage(format!("partner {partner} does not exist")).into());
    };
    let Some(country) = country else {
        return Err(Usage("nothing to change: give --country".into()).into());
    };
    found.program.country = country;
    store.set_program(partner, &found.program).await?;
    Ok(json!({ "id": found.id, "name": found.name, "program": found.program }))
}

/// `connection add`.
#[derive(Debug, Clone)]
pub struct ConnectionAdd {
    pub partner: i64,
    pub crm: CrmKind,
    pub company_id: String,
    pub partner_token: Option<String>,
    pub user_token: Option<String>,
    pub utc_offset_minutes: Option<i32>,
    /// The location's country when it is not the partner's.
    pub country: Option<Country>,
}

/// An unguessable webhook secret: 160 random bits as hex.
pub fn new_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub fn webhook_url(config: &Config, crm: CrmKind, secret: &str) -> String {
    format!("{}/webhooks/{crm}/{secret}", config.base_url())
}

pub async fn connection_add(
    store: &SqlStore,
    config: &Config,
    req: &ConnectionAdd,
    now_ms: i64,
) -> anyhow::Result<Value> {
    let partner = PartnerId(req.partner);
    if store.partner(partner).await?.is_none() {
        return Err(Usage(format!("partner {partner} does not exist")).into());
    }
    let Some(flavor) = crm_yclients::Flavor::of(req.crm) else {
        return Err(Usage(format!(
            "{} is not supported by this gateway yet (yclients, altegio)",
            req.crm
        ))
        .into());
    };
    let company = req.company_id.trim();
    if company.is_empty() || !company.chars().all(|c| c.is_ascii_digit()) {
        return Err(Usage(format!(
            "--company-id must be the CRM's numeric id, got {company:?}"
        ))
        .into());
    }
    let offset = req.utc_offset_minutes.unwrap_or_else(|| {
        crm_yclients::YclientsConfig::new(flavor, company)
            .context
            .utc_offset_minutes
    });
    if !(-720..=840).contains(&offset) {
        return Err(Usage(format!(
            "--utc-offset-minutes must be -720..=840, got {offset}"
        ))
        .into());
    }
    if req.user_token.is_some() && req.partner_token.is_none() {
        return Err(Usage("--user-token needs --partner-token".into()).into());
    }
    let secret = new_secret()?;
    let connection = store
        .create_connection(
            &NewConnection {
                partner_id: partner,
                kind: req.crm,
                company_id: company.to_owned(),
                credentials_ref: "db:connection_settings".into(),
                webhook_secret: secret.clone(),
            },
            now_ms,
        )
        .await
        .map_err(|e| match e {
            loyalty_core::StoreError::Duplicate(_) => anyhow::Error::from(Usage(format!(
                "partner {partner} is already connected to {} company {company}",
                req.crm
            ))),
            other => other.into(),
        })?;
    store
        .save_connection_settings(
            connection.id,
            &ConnectionSettings {
                partner_token: req.partner_token.clone(),
                user_token: req.user_token.clone(),
                utc_offset_minutes: offset,
                reward_setup: None,
                country: req.country,
            },
        )
        .await?;
    Ok(json!({
        "id": connection.id,
        "partner": partner,
        "crm": req.crm,
        "company_id": company,
        "country": req.country,
        "api": req.partner_token.is_some(),
        "webhook_url": webhook_url(config, req.crm, &secret),
    }))
}

/// `connection rewards`: how the connection writes rewards into its CRM (`None`: the
/// gateway's own codes, checked by staff).
pub async fn connection_rewards(
    store: &SqlStore,
    connection: i64,
    setup: Option<RewardSetup>,
) -> anyhow::Result<Value> {
    let id = ConnectionId(connection);
    let Some(conn) = store.connection(id).await? else {
        return Err(Usage(format!("there is no connection {connection}")).into());
    };
    let Some(mut settings) = store.connection_settings(id).await? else {
        return Err(Usage(format!("connection {connection} has no API settings")).into());
    };
    if let Some(setup) = &setup {
        if crm_yclients::Flavor::of(conn.kind).is_none() {
            return Err(Usage(format!("{} has no reward write-back yet", conn.kind)).into());
        }
        if settings.partner_token.is_none() || settings.user_token.is_none() {
            return Err(Usage(format!(
                "connection {connection} needs a partner and a user token to write rewards"
            ))
            .into());
        }
        setup
            .validate()
            .map_err(|e| Usage(format!("reward setup: {e}")))?;
    }
    settings.reward_setup = setup.as_ref().map(serde_json::to_string).transpose()?;
    store.save_connection_settings(id, &settings).await?;
    Ok(json!({
        "connection": connection,
        "strategy": setup.as_ref().map_or(Strategy::GatewayCode, RewardSetup::strategy),
        "setup": setup,
    }))
}

/// The setup `connection rewards` flags describe.
pub fn reward_setup(
    strategy: &str,
    chain: Option<String>,
    card_type: Option<String>,
    good: Option<String>,
    storage: Option<String>,
) -> anyhow::Result<Option<RewardSetup>> {
    let need = |v: Option<String>, flag: &str| {
        v.filter(|s| !s.trim().is_empty())
            .ok_or_else(|| Usage(format!("--strategy {strategy} needs {flag}")))
    };
    let setup = match strategy {
        "loyalty-card" => Some(RewardSetup::LoyaltyCard {
            chain_id: need(chain, "--chain")?,
            card_type_id: need(card_type, "--card-type")?,
        }),
        "certificate" => Some(RewardSetup::CrmCertificate {
            good_id: need(good, "--good")?,
            storage_id: need(storage, "--storage")?,
        }),
        "gateway-code" => None,
        other => {
            return Err(Usage(format!(
                "--strategy must be loyalty-card, certificate or gateway-code, got {other:?}"
            ))
            .into());
        }
    };
    Ok(setup)
}

/// `staff-add`: a staff member's chat may check and use the partner's codes in the bot.
pub async fn staff_add(
    store: &SqlStore,
    partner: i64,
    chat: i64,
    now_ms: i64,
) -> anyhow::Result<Value> {
    let partner = known_partner(store, partner).await?;
    if chat == 0 {
        return Err(Usage("--chat must be a Telegram chat id".into()).into());
    }
    store.add_staff_chat(partner, chat, now_ms).await?;
    Ok(json!({ "partner": partner, "chat": chat }))
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
        .map_err(|e| match e {
            EngineError::UnknownCode(_) | EngineError::CodeNotUsable { .. } => {
                anyhow::Error::from(Usage(e.to_string()))
            }
            other => other.into(),
        })?;
    let reward = engine.store().reward(r.partner_id, r.reward_id).await?;
    Ok(redemption_json(&r, reward.as_ref()))
}

/// `client show`.
pub async fn client_show(
    engine: &LoyaltyEngine,
    partner: i64,
    phone: &str,
    limit: u32,
) -> anyhow::Result<Value> {
    let (partner, phone) = desk_phone(engine.store().as_ref(), partner, phone).await?;
    let Some(statement) = engine.statement(partner, &phone, limit).await? else {
        return Err(Usage(format!(
            "{} is not a client of partner {partner}",
            phone.masked()
        ))
        .into());
    };
    let history: Vec<Value> = statement
        .history
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "kind": e.kind,
                "points": e.client_delta(),
                "reason": e.reason,
                "at_ms": e.created_at_ms,
            })
        })
        .collect();
    Ok(json!({
        "phone": statement.client.phone,
        "name": statement.client.name,
        "telegram_linked": statement.client.telegram_chat_id.is_some(),
        "balance": statement.balance,
        "history": history,
    }))
}

/// `reward add`: a certificate (`value_minor`) or a CRM service (`service_id` + `price_minor`).
#[derive(Debug, Clone)]
pub struct RewardAdd {
    pub partner: i64,
    pub title: String,
    pub points: i64,
    pub certificate_minor: Option<i64>,
    pub service_id: Option<String>,
    pub price_minor: Option<i64>,
}

async fn known_partner(store: &dyn Store, partner: i64) -> anyhow::Result<PartnerId> {
    let id = PartnerId(partner);
    if store.partner(id).await?.is_none() {
        return Err(Usage(format!("partner {id} does not exist")).into());
    }
    Ok(id)
}

/// A partner that exists and a phone typed at its desk, read in the partner's country.
async fn desk_phone(
    store: &dyn Store,
    partner: i64,
    phone: &str,
) -> anyhow::Result<(PartnerId, Phone)> {
    let id = PartnerId(partner);
    let Some(found) = store.partner(id).await? else {
        return Err(Usage(format!("partner {id} does not exist")).into());
    };
    let country = found.program.country;
    let phone = Phone::parse(phone, country)
        .map_err(|e| Usage(format!("--phone: {e} (read as a number in {country})")))?;
    Ok((id, phone))
}

pub async fn reward_add(store: &SqlStore, req: &RewardAdd, now_ms: i64) -> anyhow::Result<Value> {
    let partner = known_partner(store, req.partner).await?;
    let kind = match (&req.certificate_minor, &req.service_id, req.price_minor) {
        (Some(value), None, None) => RewardKind::Certificate {
            value_minor: *value,
        },
        (None, Some(service), price) => {
            let service_id = service.trim().to_owned();
            let price_minor = service_price(store, partner, &service_id, price).await?;
            RewardKind::Service {
                service_id,
                price_minor,
            }
        }
        _ => {
            return Err(Usage(
                "give either --certificate-minor, or --service-id (with --price-minor when the \
                 CRM gives the service no single price)"
                    .into(),
            )
            .into());
        }
    };
    let reward = NewReward {
        title: req.title.trim().to_owned(),
        cost: Points(req.points),
        kind,
    };
    reward
        .validate()
        .map_err(|e| Usage(format!("invalid reward: {e}")))?;
    let created = store.create_reward(partner, &reward, now_ms).await?;
    Ok(json!({ "id": created.id, "reward": created }))
}

/// What a service reward is worth. A service the catalog knows must be buyable, and its price
/// is the CRM's unless `--price-minor` says otherwise (required for a price range). One no sync
/// has seen (a CRM without a service list) needs `--price-minor`.
async fn service_price(
    store: &SqlStore,
    partner: PartnerId,
    service_id: &str,
    price: Option<i64>,
) -> anyhow::Result<i64> {
    let Some(known) = store.service_of(partner, service_id).await? else {
        return price.ok_or_else(|| {
            Usage(format!(
                "service {service_id:?} is not in the synced service list: run `services sync \
                 --connection ID` first, or give --price-minor"
            ))
            .into()
        });
    };
    if !known.in_crm {
        return Err(Usage(format!(
            "service {service_id:?} ({}) is no longer in the CRM's list",
            known.title
        ))
        .into());
    }
    if !known.redeemable {
        return Err(Usage(format!(
            "points may not buy service {service_id:?} ({}): `services allow` it first",
            known.title
        ))
        .into());
    }
    price.or(known.price_minor()).ok_or_else(|| {
        Usage(format!(
            "service {service_id:?} ({}) has no single price in the CRM ({}–{}): give --price-minor",
            known.title,
            known.price_min_minor.map_or("?".into(), |p| p.to_string()),
            known.price_max_minor.map_or("?".into(), |p| p.to_string()),
        ))
        .into()
    })
}

/// `services sync`: the connection's service list, read from its CRM into the catalog.
pub async fn services_sync(
    sql: Arc<SqlStore>,
    config: &Config,
    connection: i64,
) -> anyhow::Result<Value> {
    let metrics = Arc::new(crate::metrics::Metrics::new(None));
    let connections = crate::connections::Connections::new(Arc::clone(&sql), config, metrics)?;
    let id = ConnectionId(connection);
    let report = crate::services::sync(&connections, &sql, id).await?;
    Ok(json!({ "connection": connection, "sync": report }))
}

/// `services list`: the connection's services as last synced (with `all`, gone ones too).
pub async fn services_list(store: &SqlStore, connection: i64, all: bool) -> anyhow::Result<Value> {
    let id = ConnectionId(connection);
    if store.connection(id).await?.is_none() {
        return Err(Usage(format!("connection {id} does not exist")).into());
    }
    let services = store.services(id, all).await?;
    Ok(json!({ "connection": connection, "services": services }))
}

/// `services allow|deny`: whether points may buy the partner's service.
pub async fn services_allow(
    store: &SqlStore,
    partner: i64,
    service_id: &str,
    allow: bool,
) -> anyhow::Result<Value> {
    let partner = known_partner(store, partner).await?;
    let Some(stopped) = store
        .set_service_redeemable(partner, service_id.trim(), allow)
        .await?
    else {
        return Err(Usage(format!(
            "partner {partner} has no service {service_id:?} in its synced service list"
        ))
        .into());
    };
    Ok(json!({
        "partner": partner,
        "service": service_id.trim(),
        "redeemable": allow,
        "rewards_stopped": stopped,
    }))
}

pub async fn reward_list(store: &SqlStore, partner: i64, all: bool) -> anyhow::Result<Value> {
    let partner = known_partner(store, partner).await?;
    Ok(json!({ "rewards": store.rewards(partner, all).await? }))
}

pub async fn reward_remove(store: &SqlStore, partner: i64, reward: i64) -> anyhow::Result<Value> {
    let partner = known_partner(store, partner).await?;
    let id = RewardId(reward);
    if !store.remove_reward(partner, id).await? {
        return Err(Usage(format!(
            "partner {partner} has no reward {id} in the catalog"
        ))
        .into());
    }
    Ok(json!({ "removed": id }))
}

/// A code from the OS's randomness.
pub fn random_code() -> Code {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: fall back to the clock's nanoseconds; still checked for uniqueness
        // by the database.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        bytes = nanos.to_le_bytes();
    }
    Code::from_entropy(bytes)
}

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
    let (partner, phone) = desk_phone(store.as_ref(), partner, phone).await?;
    let Some(client) = store.client_by_phone(partner, &phone).await? else {
        return Err(Usage(format!(
            "{} is not a client of partner {partner}",
            phone.masked()
        ))
        .into());
    };
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
        .map_err(|e| match e {
            EngineError::InsufficientBalance { .. }
            | EngineError::RewardUnavailable(_)
            | EngineError::Conflict { .. } => anyhow::Error::from(Usage(e.to_string())),
            other => other.into(),
        })?;
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
                EngineError::UnknownCode(_)
                | EngineError::CodeNotUsable { .. }
                | EngineError::NonPositiveAmount(_)
                | EngineError::BillTooSmall { .. } => anyhow::Error::from(Usage(e.to_string())),
                EngineError::BillNeeded { min_bill_minor, .. } => {
                    anyhow::Error::from(Usage(match min_bill_minor {
                        Some(min) => format!(
                            "{e}: add --bill-minor with the bill in minor units (at least {min})"
                        ),
                        None => format!("{e}; this program lets points pay no part of a bill"),
                    }))
                }
                other => other.into(),
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

/// `rejected`: the latest refused webhook deliveries.
pub async fn rejected(store: &SqlStore, limit: u32) -> anyhow::Result<Value> {
    let rows = store.rejected_deliveries(limit).await?;
    Ok(json!({ "rejected": rows }))
}

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
