//! Setting a salon up: `partner add|set`, `connection add|rewards`, `staff-add`.

use crm_yclients::RewardSetup;
use loyalty_core::ChatStore;
use loyalty_core::PartnerStore;
use loyalty_core::audit::{Actor, AuditStore, Capability, Plan};
use loyalty_core::import::ImportStore;
use loyalty_core::model::{NewConnection, NewPartner};
use loyalty_core::redemption::Strategy;
use loyalty_core::{
    Bps, Clock, ConnectionId, Country, CrmKind, Currency, PartnerId, Points, Program, SystemClock,
};
use loyalty_store::{ConnectionSettings, SqlStore};
use serde_json::{Value, json};

use crate::config::Config;

use super::{Usage, known_partner};

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
    /// The plan; a deployment's default is `Config::default_plan`.
    pub plan: Plan,
}

pub async fn partner_add(
    store: &SqlStore,
    req: &PartnerAdd,
    actor: &Actor,
    now_ms: i64,
) -> anyhow::Result<Value> {
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
        ..Program::with_cashback(Bps::ZERO)
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
    if req.plan != partner.plan {
        store.set_plan(partner.id, req.plan, actor, now_ms).await?;
    }
    Ok(json!({
        "id": partner.id,
        "name": partner.name,
        "plan": req.plan.as_str(),
        "program": partner.program,
    }))
}

/// `partner plan`: what the product serves the partner, logged with who changed it.
pub async fn partner_plan(
    store: &SqlStore,
    partner: i64,
    plan: Plan,
    actor: &Actor,
) -> anyhow::Result<Value> {
    let partner = known_partner(store, partner).await?;
    let before = store
        .set_plan(partner, plan, actor, SystemClock.now_ms())
        .await?;
    Ok(json!({ "id": partner, "plan": plan.as_str(), "was": before.as_str() }))
}

/// `audit`: the latest lines of the partner's audit log, newest first.
pub async fn audit(store: &SqlStore, partner: i64, limit: u32) -> anyhow::Result<Value> {
    let partner = known_partner(store, partner).await?;
    let entries = store.audit_log(partner, limit).await?;
    Ok(json!({ "partner_id": partner, "entries": entries }))
}

pub fn audit_text(v: &Value) -> String {
    let mut lines = Vec::new();
    for e in v["entries"].as_array().into_iter().flatten() {
        let at = e["at_ms"]
            .as_i64()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default();
        lines.push(format!(
            "{at}  {} via {}  {}  {}",
            e["actor"]["name"].as_str().unwrap_or_default(),
            e["actor"]["via"].as_str().unwrap_or_default(),
            e["action"].as_str().unwrap_or_default(),
            e["detail"]
        ));
    }
    if lines.is_empty() {
        format!("partner {}: nothing in the audit log yet", v["partner_id"])
    } else {
        lines.join("\n")
    }
}

/// `partner set`: changes the program's settings that may change without touching what
/// visits already earned (today: the country phones are read in).
pub async fn partner_set(
    store: &SqlStore,
    partner: PartnerId,
    country: Option<Country>,
    actor: &Actor,
) -> anyhow::Result<Value> {
    let Some(mut found) = store.partner(partner).await? else {
        return Err(Usage(format!("partner {partner} does not exist")).into());
    };
    let Some(country) = country else {
        return Err(Usage("nothing to change: give --country".into()).into());
    };
    found.program.country = country;
    store
        .set_program(partner, &found.program, SystemClock.now_ms(), actor)
        .await?;
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
    /// A CRM's login beyond the YCLIENTS platform's tokens (Arnica).
    pub login: CrmLogin,
    pub utc_offset_minutes: Option<i32>,
    /// The location's country when it is not the partner's.
    pub country: Option<Country>,
}

/// A CRM's login on `connection add` beyond the YCLIENTS platform's tokens — Arnica: the
/// integrator's e-mail and password, and the API base when it is not the default; Beauty Pro:
/// our application's id and secret, and an API root that replaces AI Helps' own. `Debug` hides
/// the secrets.
#[derive(Clone, Default)]
pub struct CrmLogin {
    pub email: Option<String>,
    pub password: Option<String>,
    pub base_url: Option<String>,
    pub app_id: Option<String>,
    pub app_secret: Option<String>,
    pub api_url: Option<String>,
}

impl std::fmt::Debug for CrmLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrmLogin")
            .field("email", &self.email)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("base_url", &self.base_url)
            .field("app_id", &self.app_id)
            .field("app_secret", &self.app_secret.as_ref().map(|_| "***"))
            .field("api_url", &self.api_url)
            .finish()
    }
}

impl CrmLogin {
    /// Arnica's own flags were given. (Secrets are left out: they may come from the
    /// environment, set for another connection.)
    fn arnica(&self) -> bool {
        self.email.is_some() || self.base_url.is_some()
    }

    /// Beauty Pro's own flags were given (its secret left out, as above).
    fn beautypro(&self) -> bool {
        self.app_id.is_some() || self.api_url.is_some()
    }
}

/// An `http(s)://` URL without its trailing slash.
fn url(flag: &str, value: Option<&str>) -> Result<Option<String>, Usage> {
    let Some(v) = value.map(str::trim) else {
        return Ok(None);
    };
    if !(v.starts_with("https://") || v.starts_with("http://")) {
        return Err(Usage(format!("{flag} must be an http(s) URL, got {v:?}")));
    }
    Ok(Some(v.trim_end_matches('/').to_owned()))
}

/// What `connection add` stores for the CRM: the YCLIENTS platform's tokens, or another CRM's
/// credentials as JSON, and the company's default offset from UTC.
fn credentials_for(req: &ConnectionAdd) -> Result<(Option<String>, i32), Usage> {
    match req.crm {
        CrmKind::Yclients | CrmKind::Altegio => {
            if req.login.arnica() || req.login.beautypro() {
                return Err(Usage(format!(
                    "{} connects with --partner-token and --user-token only",
                    req.crm
                )));
            }
            if req.user_token.is_some() && req.partner_token.is_none() {
                return Err(Usage("--user-token needs --partner-token".into()));
            }
            let flavor =
                crm_yclients::Flavor::of(req.crm).unwrap_or(crm_yclients::Flavor::YCLIENTS);
            let offset = crm_yclients::YclientsConfig::new(flavor, "")
                .context
                .utc_offset_minutes;
            Ok((None, offset))
        }
        CrmKind::Arnica => {
            if req.partner_token.is_some() || req.user_token.is_some() || req.login.beautypro() {
                return Err(Usage(
                    "arnica connects with --email and --password (and --base-url), not tokens"
                        .into(),
                ));
            }
            let offset = crm_arnica::ArnicaConfig::new("").context.utc_offset_minutes;
            let login = &req.login;
            let base_url = url("--base-url", login.base_url.as_deref())?;
            match (&login.email, &login.password) {
                (None, None) if base_url.is_none() => Ok((None, offset)),
                (Some(email), Some(password)) if email.contains('@') && !password.is_empty() => {
                    let stored = crate::crms::ArnicaLogin {
                        email: email.trim().to_owned(),
                        password: password.clone(),
                        base_url,
                    };
                    let json = serde_json::to_string(&stored)
                        .map_err(|e| Usage(format!("the login does not serialize: {e}")))?;
                    Ok((Some(json), offset))
                }
                (Some(email), Some(_)) if !email.contains('@') => {
                    Err(Usage(format!("--email must be an e-mail address, got {email:?}")))
                }
                _ => Err(Usage(
                    "arnica's API needs both --email and --password (CRM_PASSWORD), or neither for webhooks only".into(),
                )),
            }
        }
        CrmKind::Beautypro => {
            if req.partner_token.is_some() || req.user_token.is_some() || req.login.arnica() {
                return Err(Usage(
                    "beautypro connects with --app-id and --app-secret (and --api-url) only".into(),
                ));
            }
            let offset = crm_beautypro::BeautyProConfig::new("")
                .context
                .utc_offset_minutes;
            let login = &req.login;
            let api_url = url("--api-url", login.api_url.as_deref())?;
            match (&login.app_id, &login.app_secret) {
                (None, None) if api_url.is_none() => Ok((None, offset)),
                (Some(id), Some(secret)) if !id.trim().is_empty() && !secret.is_empty() => {
                    let stored = crate::crms::BeautyProApp {
                        application_id: id.trim().to_owned(),
                        application_secret: secret.clone(),
                        api_url,
                    };
                    let json = serde_json::to_string(&stored)
                        .map_err(|e| Usage(format!("the application does not serialize: {e}")))?;
                    Ok((Some(json), offset))
                }
                _ => Err(Usage(
                    "beautypro's API needs both --app-id and --app-secret (CRM_APP_SECRET), or neither for webhooks only".into(),
                )),
            }
        }
        CrmKind::Dikidi => {
            if req.partner_token.is_some()
                || req.user_token.is_some()
                || req.login.email.is_some()
                || req.login.password.is_some()
                || req.login.beautypro()
            {
                return Err(Usage(
                    "dikidi connects with --company-id (and --base-url) only: its public booking widget needs no login, and a DIKIDI password is never asked for".into(),
                ));
            }
            let base_url = url("--base-url", req.login.base_url.as_deref())?;
            let stored = crate::crms::DikidiWidget { base_url };
            let json = serde_json::to_string(&stored)
                .map_err(|e| Usage(format!("the widget's settings do not serialize: {e}")))?;
            // Moscow: DIKIDI's own home, and where its prices are in roubles.
            Ok((Some(json), 180))
        }
        CrmKind::Desk => Err(Usage(
            "the desk is no CRM to connect: `visit add` and `import file` keep the partner's own visits".into(),
        )),
    }
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
    let Some(found) = store.partner(partner).await? else {
        return Err(Usage(format!("partner {partner} does not exist")).into());
    };
    found
        .plan
        .check(partner, Capability::CrmIntegration)
        .map_err(|e| Usage(format!("{e} (loyalty-gateway partner plan)")))?;
    let (crm_credentials, default_offset) = credentials_for(req)?;
    let company = req.company_id.trim();
    if company.is_empty() || !company.chars().all(|c| c.is_ascii_digit()) {
        return Err(Usage(format!(
            "--company-id must be the CRM's numeric id, got {company:?}"
        ))
        .into());
    }
    let offset = req.utc_offset_minutes.unwrap_or(default_offset);
    if !(-720..=840).contains(&offset) {
        return Err(Usage(format!(
            "--utc-offset-minutes must be -720..=840, got {offset}"
        ))
        .into());
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
                create_clients: false,
                crm_credentials: crm_credentials.clone(),
            },
        )
        .await?;
    // DIKIDI's settings are no API access: nothing to import from it.
    let api =
        req.crm != CrmKind::Dikidi && (req.partner_token.is_some() || crm_credentials.is_some());
    // With API access the salon's history is imported in the background of `serve` (no points
    // for the past); `import status` follows it.
    let import = match api {
        true => Some(
            store
                .queue_import(
                    &super::default_import(partner, connection.id, now_ms),
                    now_ms,
                )
                .await?
                .id,
        ),
        false => None,
    };
    Ok(json!({
        "id": connection.id,
        "partner": partner,
        "crm": req.crm,
        "company_id": company,
        "country": req.country,
        "import": import,
        "api": api,
        "webhook_url": match req.crm {
            CrmKind::Dikidi => None,
            crm => Some(webhook_url(config, crm, &secret)),
        },
        "next": (req.crm == CrmKind::Dikidi).then(|| format!(
            "DIKIDI sends no webhooks and has no API for visits: import its exports with `import file --partner {partner} --preset dikidi --visits FILE`, enter visits with `visit add` or /visit in the bot; rewards are the gateway's codes, checked by staff with /check and /use. `services sync --connection {}` reads its services and masters from the booking widget.",
            connection.id
        )),
    }))
}

/// `connection webhooks`: the connection's webhook URL subscribed through its CRM's API. A
/// salon that has not granted access yet, or a CRM without such an API, is a usage error that
/// says what to do.
pub async fn connection_webhooks(
    store: std::sync::Arc<SqlStore>,
    config: &Config,
    connection: i64,
) -> anyhow::Result<Value> {
    use loyalty_core::quota::Priority;
    let id = ConnectionId(connection);
    let Some(conn) = store.connection(id).await? else {
        return Err(Usage(format!("there is no connection {connection}")).into());
    };
    let connections = crate::connections::Connections::new(
        std::sync::Arc::clone(&store),
        config,
        std::sync::Arc::new(crate::metrics::Metrics::new(None)),
    )?;
    let Some(found) = connections.by_id(id, Priority::Live).await? else {
        return Err(Usage(format!("there is no connection {connection}")).into());
    };
    let url = webhook_url(config, conn.kind, &conn.webhook_secret);
    let api = store
        .connection_settings(id)
        .await?
        .is_some_and(|s| s.has_api());
    if !api {
        return Err(Usage(format!(
            "connection {connection} has no API credentials: paste {url} into the CRM's webhook settings"
        ))
        .into());
    }
    match found.adapter.register_webhooks(&url).await {
        Ok(tables) => Ok(json!({
            "connection": id,
            "crm": conn.kind,
            "tables": tables,
            "webhook_url": url,
        })),
        Err(loyalty_core::AdapterError::Unsupported(_)) => Err(Usage(format!(
            "{} webhooks are set in the CRM itself: paste {url} there",
            conn.kind
        ))
        .into()),
        Err(
            e @ (loyalty_core::AdapterError::Forbidden(_) | loyalty_core::AdapterError::Auth(_)),
        ) => Err(Usage(format!("{}: {e}", conn.kind)).into()),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", conn.kind)),
    }
}

/// The flags `connection rewards` takes for the YCLIENTS platform's setups.
#[derive(Debug, Clone, Default)]
pub struct RewardFlags {
    pub chain: Option<String>,
    pub card_type: Option<String>,
    pub good: Option<String>,
    pub storage: Option<String>,
}

/// `connection rewards`: how the connection writes rewards into its CRM (`gateway-code`: the
/// gateway's own codes, checked by staff). YCLIENTS/Altegio: a loyalty-card top-up or a
/// certificate sale, with the CRM objects they need; Beauty Pro: a certificate, nothing more to
/// name; Arnica: gateway codes only.
pub async fn connection_rewards(
    store: &SqlStore,
    connection: i64,
    strategy: &str,
    flags: RewardFlags,
) -> anyhow::Result<Value> {
    let id = ConnectionId(connection);
    let Some(conn) = store.connection(id).await? else {
        return Err(Usage(format!("there is no connection {connection}")).into());
    };
    let Some(mut settings) = store.connection_settings(id).await? else {
        return Err(Usage(format!("connection {connection} has no API settings")).into());
    };
    let (json, chosen, setup) = match (conn.kind, strategy) {
        (_, "gateway-code") => (None, Strategy::GatewayCode, Value::Null),
        (CrmKind::Yclients | CrmKind::Altegio, _) => {
            let setup = reward_setup(
                strategy,
                flags.chain,
                flags.card_type,
                flags.good,
                flags.storage,
            )?
            .ok_or_else(|| Usage(format!("--strategy {strategy} is not a CRM strategy")))?;
            if settings.partner_token.is_none() || settings.user_token.is_none() {
                return Err(Usage(format!(
                    "connection {connection} needs a partner and a user token to write rewards"
                ))
                .into());
            }
            setup
                .validate()
                .map_err(|e| Usage(format!("reward setup: {e}")))?;
            (
                Some(serde_json::to_string(&setup)?),
                setup.strategy(),
                serde_json::to_value(&setup)?,
            )
        }
        (CrmKind::Beautypro, "certificate") => {
            if !settings.has_api() {
                return Err(Usage(format!(
                    "connection {connection} needs the application's id and secret to write certificates"
                ))
                .into());
            }
            let setup = json!({ "strategy": Strategy::CrmCertificate });
            (Some(setup.to_string()), Strategy::CrmCertificate, setup)
        }
        (kind, other) => {
            return Err(Usage(format!(
                "{kind} cannot write rewards as {other:?} (it can: {})",
                match kind {
                    CrmKind::Beautypro => "certificate, gateway-code",
                    _ => "gateway-code",
                }
            ))
            .into());
        }
    };
    settings.reward_setup = json;
    store.save_connection_settings(id, &settings).await?;
    Ok(json!({
        "connection": connection,
        "strategy": chosen,
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

/// `connection set ID --create-clients on|off`: whether people who join through the bot and
/// whom the CRM does not know are created there (name and phone).
pub async fn connection_set(
    store: &SqlStore,
    connection: i64,
    create_clients: Option<bool>,
) -> anyhow::Result<Value> {
    let id = ConnectionId(connection);
    let Some(mut settings) = store.connection_settings(id).await? else {
        return Err(Usage(format!("connection {connection} does not exist")).into());
    };
    let Some(create) = create_clients else {
        return Err(Usage("nothing to change: give --create-clients on|off".into()).into());
    };
    if create && !settings.has_api() {
        return Err(Usage(format!(
            "connection {connection} has no API tokens: the CRM cannot be written to"
        ))
        .into());
    }
    settings.create_clients = create;
    store.save_connection_settings(id, &settings).await?;
    Ok(json!({ "connection": id, "create_clients": create }))
}
