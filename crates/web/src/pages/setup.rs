//! Onboarding, the five minutes (owners): a new salon signs up (when the operator opens
//! sign-up), chooses its CRM and enters its credentials; "check connection" calls the CRM and
//! says plainly what works; the webhook is subscribed through the CRM's API where it has one
//! (the address and where to paste it where it has not; DIKIDI: imports and the desk); the
//! first delivery and the history import show live; then the program's first settings and the
//! clients' link with its QR code. The connection is green only once a real delivery came.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use loyalty_core::access::{AccessStore, AddUserError, Role, normal_email};
use loyalty_core::audit::{Actor, AuditStore, Capability, Plan};
use loyalty_core::import::ImportStore;
use loyalty_core::model::NewPartner;
use loyalty_core::sync::SyncStore;
use loyalty_core::{AdapterError, Bps, Country, CrmConnection, CrmKind, PartnerStore, Program};
use serde::Deserialize;

use super::health::import_line;
use super::login::Peer;
use super::{Bare, Chrome, html, when};
use crate::i18n::{Lang, Words};
use crate::onboard::{ConnectError, Connector, Hooks, NewCrm, Probe, Step};
use crate::session::{self, Staff};
use crate::{Dashboard, WebError, password};

/// The connector, or 404 when this process has none.
fn connector(dash: &Dashboard) -> Result<&Arc<dyn Connector>, WebError> {
    dash.connector.as_ref().ok_or(WebError::NotFound)
}

/// A new salon's program until the owner changes it: 5 % back, points kept a year, at most
/// half a bill paid in points (a point is a rouble).
pub fn first_program(country: Country) -> Program {
    Program {
        points_ttl_days: Some(365),
        country,
        ..Program::with_cashback(Bps::new(500).unwrap_or(Bps::ZERO))
    }
}

// ---- sign-up -------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    b: Bare,
    error: Option<String>,
    name: String,
    email: String,
}

fn open_plan(dash: &Dashboard) -> Result<Plan, WebError> {
    dash.settings.signup.ok_or(WebError::NotFound)
}

pub async fn signup_form(
    State(dash): State<Arc<Dashboard>>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    open_plan(&dash)?;
    html(&SignupPage {
        b: Bare::new(Lang::of(&headers)),
        error: None,
        name: String::new(),
        email: String::new(),
    })
}

#[derive(Deserialize)]
pub struct SignupForm {
    name: String,
    email: String,
    password: String,
}

/// Creates the salon on the operator's sign-up plan with [`first_program`], its owner, and a
/// session; then the setup. At most as many salons per address as sign-ins it may fail.
pub async fn signup(
    State(dash): State<Arc<Dashboard>>,
    Peer(address): Peer,
    headers: HeaderMap,
    Form(f): Form<SignupForm>,
) -> Result<Response, WebError> {
    let plan = open_plan(&dash)?;
    let lang = Lang::of(&headers);
    let w = lang.words();
    let name = f.name.trim().to_owned();
    let email = normal_email(&f.email);
    let again = |status: StatusCode, error: String| -> Result<Response, WebError> {
        let mut r = html(&SignupPage {
            b: Bare::new(lang),
            error: Some(error),
            name: name.clone(),
            email: f.email.trim().to_owned(),
        })?;
        *r.status_mut() = status;
        Ok(r)
    };
    let now = dash.now_ms();
    let key = format!("signup:{address}");
    if dash.limiter.blocked(&key, &address, now).is_some() {
        return again(StatusCode::TOO_MANY_REQUESTS, w.too_many.into());
    }
    if name.is_empty() || name.chars().count() > 120 {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{}: {}", w.fill_in, w.salon_name),
        );
    }
    let Some(email) = email else {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{}: {}", w.fill_in, w.email),
        );
    };
    if dash.store.user_by_email(&email).await?.is_some() {
        return again(StatusCode::CONFLICT, w.email_taken.into());
    }
    let hash = match password::hash_blocking(f.password).await {
        Ok(h) => h,
        Err(password::PasswordError::Hash(e)) => return Err(WebError::Internal(e)),
        Err(_) => return again(StatusCode::UNPROCESSABLE_ENTITY, w.password_rule.into()),
    };
    dash.limiter.failed(&key, &address, now);
    let partner = dash
        .store
        .create_partner(
            &NewPartner {
                name: name.clone(),
                program: first_program(Country::RU),
            },
            now,
        )
        .await?;
    let actor = Actor::new(email.clone(), "sign-up");
    if partner.plan != plan {
        dash.store.set_plan(partner.id, plan, &actor, now).await?;
    }
    let user = match dash
        .store
        .add_user(partner.id, &email, Role::Owner, Some(&hash), &actor, now)
        .await
    {
        Ok(u) => u,
        // Taken between the check and now: the salon stays empty, nobody signs in to it.
        Err(AddUserError::EmailTaken(_)) => {
            return again(StatusCode::CONFLICT, w.email_taken.into());
        }
        Err(AddUserError::Store(e)) => return Err(e.into()),
    };
    session::start_at(&dash, &user, "/setup").await
}

// ---- choosing and connecting the CRM -------------------------------------------------------

pub struct ConnectionLink {
    pub id: i64,
    pub crm: &'static str,
    pub company: String,
}

/// The fields the chosen CRM's form shows.
pub struct Fields {
    pub tokens: bool,
    pub login: bool,
    pub app: bool,
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    c: Chrome,
    connections: Vec<ConnectionLink>,
    crms: Vec<(&'static str, &'static str)>,
    chosen: Option<&'static str>,
    fields: Fields,
    error: Option<String>,
    company: String,
    email: String,
    base_url: String,
    app_id: String,
}

fn crm_name(k: CrmKind) -> &'static str {
    match k {
        CrmKind::Yclients => "YCLIENTS",
        CrmKind::Altegio => "Altegio",
        CrmKind::Arnica => "Arnica",
        CrmKind::Dikidi => "DIKIDI",
        CrmKind::Beautypro => "Beauty Pro",
        CrmKind::Desk => "—",
    }
}

fn fields(crm: Option<CrmKind>) -> Fields {
    Fields {
        tokens: matches!(crm, Some(CrmKind::Yclients | CrmKind::Altegio)),
        login: crm == Some(CrmKind::Arnica),
        app: crm == Some(CrmKind::Beautypro),
    }
}

#[derive(Deserialize, Default)]
pub struct Choice {
    #[serde(default)]
    crm: String,
}

async fn setup_page(
    dash: &Dashboard,
    staff: &Staff,
    crm: Option<CrmKind>,
    form: Option<(&ConnectForm, String)>,
) -> Result<Response, WebError> {
    let connections = dash
        .store
        .connections_of(staff.partner.id)
        .await?
        .into_iter()
        .filter(|c| c.kind != CrmKind::Desk)
        .map(|c| ConnectionLink {
            id: c.id.0,
            crm: crm_name(c.kind),
            company: c.company_id,
        })
        .collect();
    let typed = |f: fn(&ConnectForm) -> &str| {
        form.as_ref()
            .map(|(c, _)| f(c).to_owned())
            .unwrap_or_default()
    };
    let mut r = html(&SetupPage {
        c: Chrome::new(staff, "setup"),
        connections,
        crms: CrmKind::ALL
            .into_iter()
            .map(|k| (k.as_str(), crm_name(k)))
            .collect(),
        chosen: crm.map(CrmKind::as_str),
        fields: fields(crm),
        error: form.as_ref().map(|(_, e)| e.clone()),
        company: typed(|c| &c.company_id),
        email: typed(|c| &c.email),
        base_url: typed(|c| &c.base_url),
        app_id: typed(|c| &c.app_id),
    })?;
    if form.is_some() {
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

pub async fn page(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Query(choice): Query<Choice>,
) -> Result<Response, WebError> {
    staff.owner()?;
    connector(&dash)?;
    let crm = choice
        .crm
        .parse::<CrmKind>()
        .ok()
        .filter(|k| *k != CrmKind::Desk);
    setup_page(&dash, &staff, crm, None).await
}

#[derive(Deserialize)]
pub struct ConnectForm {
    crm: String,
    #[serde(default)]
    company_id: String,
    #[serde(default)]
    partner_token: String,
    #[serde(default)]
    user_token: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    app_id: String,
    #[serde(default)]
    app_secret: String,
}

/// A typed value, or nothing when left empty.
fn given(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

/// What the form asks of the chosen CRM, checked before any call: the first missing field.
fn missing(crm: CrmKind, f: &ConnectForm, w: &Words) -> Option<String> {
    let company = f.company_id.trim();
    if company.is_empty() {
        return Some(format!("{}: {}", w.fill_in, w.company_id));
    }
    if !company.chars().all(|c| c.is_ascii_digit()) {
        return Some(w.company_digits.into());
    }
    let need: &[(&str, &str)] = match crm {
        CrmKind::Yclients | CrmKind::Altegio => &[
            (&f.partner_token, w.partner_token),
            (&f.user_token, w.user_token),
        ],
        CrmKind::Arnica => &[(&f.email, w.crm_email), (&f.password, w.crm_password)],
        CrmKind::Beautypro => &[(&f.app_id, w.app_id), (&f.app_secret, w.app_secret)],
        CrmKind::Dikidi | CrmKind::Desk => &[],
    };
    need.iter()
        .find(|(v, _)| v.trim().is_empty())
        .map(|(_, name)| format!("{}: {name}", w.fill_in))
}

pub async fn connect(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Form(f): Form<ConnectForm>,
) -> Result<Response, WebError> {
    staff.owner()?;
    let connector = connector(&dash)?;
    staff.plan(Capability::CrmIntegration)?;
    let w = staff.lang.words();
    let Some(crm) = f
        .crm
        .parse::<CrmKind>()
        .ok()
        .filter(|k| *k != CrmKind::Desk)
    else {
        return Err(WebError::BadInput(format!(
            "{}: {}",
            w.fill_in, w.choose_crm
        )));
    };
    if let Some(why) = missing(crm, &f, w) {
        return setup_page(&dash, &staff, Some(crm), Some((&f, why))).await;
    }
    let new = NewCrm {
        crm,
        company_id: f.company_id.trim().to_owned(),
        partner_token: given(&f.partner_token),
        user_token: given(&f.user_token),
        email: given(&f.email),
        password: (!f.password.is_empty()).then(|| f.password.clone()),
        base_url: given(&f.base_url),
        app_id: given(&f.app_id),
        app_secret: (!f.app_secret.is_empty()).then(|| f.app_secret.clone()),
    };
    match connector
        .connect(staff.partner.id, &new, &staff.actor())
        .await
    {
        Ok(id) => Ok(Redirect::to(&format!("/setup/{}", id.0)).into_response()),
        Err(ConnectError::AlreadyConnected) => {
            let why = w.already_connected.to_owned();
            setup_page(&dash, &staff, Some(crm), Some((&f, why))).await
        }
        Err(ConnectError::Refused(why)) => {
            setup_page(&dash, &staff, Some(crm), Some((&f, why))).await
        }
        Err(ConnectError::Internal(e)) => Err(WebError::Internal(e)),
    }
}

// ---- one connection: check, webhook, live status, program, the clients' link ---------------

pub struct ProbeLine {
    pub what: &'static str,
    pub ok: bool,
    pub text: String,
}

/// What the webhook step shows.
pub enum HookView {
    /// Not subscribed from this page yet: the address, and the button that subscribes it.
    Address {
        url: String,
    },
    Registered {
        url: String,
        tables: String,
    },
    Paste {
        url: String,
    },
    NoWebhooks,
    Failed {
        url: String,
        why: String,
    },
}

#[derive(Template)]
#[template(path = "setup_connection.html")]
struct ConnectionPage {
    c: Chrome,
    id: i64,
    crm: &'static str,
    company: String,
    probes: Option<Vec<ProbeLine>>,
    hook: HookView,
    s: StatusView,
    cashback: String,
    ttl_days: String,
    join: Option<String>,
    qr: Option<String>,
}

/// The live part: the first delivery and the history import.
pub struct StatusView {
    pub id: i64,
    pub webhooks: bool,
    pub delivery: Option<String>,
    pub import: Option<String>,
    pub import_done: bool,
    pub api: bool,
}

#[derive(Template)]
#[template(path = "setup_status.html")]
struct StatusFragment {
    c: super::Words,
    s: StatusView,
}

/// The salon's own connection, or 404.
async fn own(dash: &Dashboard, staff: &Staff, id: i64) -> Result<CrmConnection, WebError> {
    dash.store
        .connections_of(staff.partner.id)
        .await?
        .into_iter()
        .find(|c| c.id.0 == id && c.kind != CrmKind::Desk)
        .ok_or(WebError::NotFound)
}

/// A CRM's answer in the owner's words.
pub fn plain(e: &AdapterError, w: &Words) -> String {
    match e {
        AdapterError::Auth(_) => w.crm_auth.into(),
        AdapterError::Forbidden(m) if m.is_empty() => w.crm_forbidden.into(),
        AdapterError::Forbidden(m) => format!("{} ({m})", w.crm_forbidden),
        AdapterError::NotFound(_) => w.crm_not_found.into(),
        AdapterError::RateLimited { .. } => w.crm_rate.into(),
        AdapterError::Transient(_) => w.crm_down.into(),
        AdapterError::Unsupported(_) => w.crm_cannot.into(),
        AdapterError::Validation(m) => format!("{} {}", w.crm_odd, m.join("; ")),
        AdapterError::Unexpected(m) => format!("{} {m}", w.crm_odd),
    }
}

async fn status(
    dash: &Dashboard,
    staff: &Staff,
    c: &CrmConnection,
) -> Result<StatusView, WebError> {
    let offset = staff.partner.program.utc_offset_minutes;
    let w = staff.lang.words();
    let cursor = dash
        .store
        .sync_cursors(Some(c.id))
        .await?
        .into_iter()
        .next();
    let import = dash.store.imports(Some(c.id)).await?.into_iter().last();
    Ok(StatusView {
        id: c.id.0,
        webhooks: c.kind != CrmKind::Dikidi,
        delivery: cursor
            .and_then(|k| k.last_webhook_ms)
            .max(
                dash.connector
                    .as_ref()
                    .and_then(|k| k.recent_delivery(c.id)),
            )
            .map(|t| when(t, offset)),
        import_done: import
            .as_ref()
            .is_some_and(|j| j.phase == loyalty_core::import::ImportPhase::Done),
        api: import.is_some(),
        import: import.map(|j| import_line(&j, w)),
    })
}

async fn connection_page(
    dash: &Dashboard,
    staff: &Staff,
    c: CrmConnection,
    probes: Option<Vec<Probe>>,
    hook: Option<HookView>,
) -> Result<Response, WebError> {
    let connector = connector(dash)?;
    let w = staff.lang.words();
    let url = connector.webhook_url(&c);
    let hook = match hook {
        Some(h) => h,
        None if c.kind == CrmKind::Dikidi => HookView::NoWebhooks,
        None => HookView::Address { url },
    };
    let probes = probes.map(|list| {
        list.into_iter()
            .map(|p| ProbeLine {
                what: match p.step {
                    Step::Records => w.step_records,
                    Step::Clients => w.step_clients,
                    Step::Services => w.step_services,
                },
                ok: p.answer.is_ok(),
                text: match &p.answer {
                    Ok(n) => format!("{} {n}", w.step_ok),
                    Err(e) => plain(e, w),
                },
            })
            .collect()
    });
    let program = &staff.partner.program;
    let join = connector.join_link(staff.partner.id).await;
    let qr = join
        .as_deref()
        .and_then(|link| crate::svg::qr(link, w.join_title));
    html(&ConnectionPage {
        c: Chrome::new(staff, "setup"),
        id: c.id.0,
        crm: crm_name(c.kind),
        company: c.company_id.clone(),
        probes,
        hook,
        s: status(dash, staff, &c).await?,
        cashback: format!("{} %", program.cashback.value() as f64 / 100.0),
        ttl_days: program
            .points_ttl_days
            .map_or_else(|| "—".to_owned(), |d| d.to_string()),
        join,
        qr,
    })
}

pub async fn connection(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    staff.owner()?;
    connector(&dash)?;
    let c = own(&dash, &staff, id).await?;
    connection_page(&dash, &staff, c, None, None).await
}

pub async fn check(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    staff.owner()?;
    let connector = connector(&dash)?;
    let c = own(&dash, &staff, id).await?;
    let probes = connector
        .check(c.id)
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    connection_page(&dash, &staff, c, Some(probes), None).await
}

pub async fn webhooks(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    staff.owner()?;
    let connector = connector(&dash)?;
    staff.plan(Capability::CrmIntegration)?;
    let c = own(&dash, &staff, id).await?;
    let url = connector.webhook_url(&c);
    let hook = match connector.register_webhooks(c.id, &staff.actor()).await {
        Ok(Hooks::Registered(tables)) => HookView::Registered {
            url,
            tables: tables.join(", "),
        },
        Ok(Hooks::Paste) | Err(AdapterError::Unsupported(_)) => HookView::Paste { url },
        Ok(Hooks::None) => HookView::NoWebhooks,
        Err(e) => HookView::Failed {
            url,
            why: plain(&e, staff.lang.words()),
        },
    };
    connection_page(&dash, &staff, c, None, Some(hook)).await
}

/// The live fragment htmx polls every few seconds until the delivery came and the import
/// finished.
pub async fn live(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    staff.owner()?;
    connector(&dash)?;
    let c = own(&dash, &staff, id).await?;
    html(&StatusFragment {
        c: super::Words {
            w: staff.lang.words(),
        },
        s: status(&dash, &staff, &c).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What "check connection" says when the CRM is down, slow (a timeout is transient), asks
    /// to wait, refuses the token, lacks a right, or does not know the location.
    #[test]
    fn every_crm_answer_reads_plainly() {
        let w = Lang::Ru.words();
        let said = |e: AdapterError| plain(&e, w);
        assert_eq!(
            said(AdapterError::Transient("HTTP 503".into())),
            "CRM сейчас не отвечает: проверьте позже."
        );
        assert_eq!(
            said(AdapterError::RateLimited { retry_after: None }),
            "CRM просит подождать (лимит запросов): проверьте через минуту."
        );
        assert_eq!(
            said(AdapterError::Auth("401".into())),
            "CRM не приняла данные входа: проверьте токен или пароль."
        );
        assert!(said(AdapterError::Forbidden("нет лицензии".into())).ends_with("(нет лицензии)"));
        assert_eq!(
            said(AdapterError::NotFound(String::new())),
            "CRM не знает такого филиала или адреса."
        );
        assert!(said(AdapterError::Validation(vec!["a".into(), "b".into()])).ends_with("a; b"));
    }
}
