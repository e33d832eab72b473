//! The desk: a client's code checked (what it is, whether it still works, the smallest bill it
//! pays) and used with the bill. Only the salon's own codes are found.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use loyalty_core::code::Code;
use loyalty_core::redemption::{Redemption, RedemptionStatus};
use loyalty_core::{ClientStore, PartnerStore, RewardStore};
use serde::Deserialize;

use super::{Chrome, html, money, parse_money, when};
use crate::session::{Staff, new_token};
use crate::{Dashboard, WebError};

#[derive(Deserialize, Default)]
pub struct DeskQuery {
    #[serde(default)]
    code: String,
    #[serde(default)]
    used: Option<String>,
}

pub struct CodeCard {
    pub code: String,
    pub status: String,
    pub usable: bool,
    pub reward: String,
    pub cost: String,
    pub worth: String,
    pub min_bill: String,
    /// The form asks for the bill (a money certificate).
    pub needs_bill: bool,
    pub valid_until: String,
    pub client: String,
}

#[derive(Template)]
#[template(path = "desk.html")]
struct Desk {
    c: Chrome,
    /// The visit form, with its key, where no CRM of the salon reports visits.
    visit_key: Option<String>,
    typed: String,
    card: Option<CodeCard>,
    unknown: bool,
    used: bool,
}

/// A redemption of this salon by the code typed; another salon's code is not found.
async fn own_code(
    dash: &Dashboard,
    staff: &Staff,
    typed: &str,
) -> Result<Option<(Code, Redemption)>, WebError> {
    let Ok(code) = Code::parse(typed) else {
        return Ok(None);
    };
    let found = RewardStore::redemption_by_code(dash.store.as_ref(), &code).await?;
    Ok(found
        .filter(|r| r.partner_id == staff.partner.id)
        .map(|r| (code, r)))
}

pub async fn page(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Query(q): Query<DeskQuery>,
) -> Result<Response, WebError> {
    staff.desk()?;
    let typed = q.code.trim().to_owned();
    let mut card = None;
    let mut unknown = false;
    if !typed.is_empty() {
        match own_code(&dash, &staff, &typed).await? {
            None => unknown = true,
            Some((code, r)) => card = Some(code_card(&dash, &staff, code, &r).await?),
        }
    }
    let reported = PartnerStore::connections_of(dash.store.as_ref(), staff.partner.id)
        .await?
        .iter()
        .any(|c| c.kind.reports_visits());
    let visit_key = if reported {
        None
    } else {
        let token = new_token().map_err(|e| WebError::Internal(e.to_string()))?;
        Some(token[..24].to_owned())
    };
    html(&Desk {
        c: Chrome::new(&staff, "desk"),
        visit_key,
        typed,
        card,
        unknown,
        used: q.used.is_some(),
    })
}

async fn code_card(
    dash: &Dashboard,
    staff: &Staff,
    code: Code,
    r: &Redemption,
) -> Result<CodeCard, WebError> {
    let lang = staff.lang;
    let program = &staff.partner.program;
    let store = dash.store.as_ref();
    let reward = RewardStore::reward(store, staff.partner.id, r.reward_id).await?;
    let terms = match &reward {
        Some(w) => dash.engine.bill_terms(r, w).await?,
        None => None,
    };
    let client = ClientStore::client(store, staff.partner.id, r.client_id)
        .await?
        .map(|c| c.phone.masked())
        .unwrap_or_default();
    Ok(CodeCard {
        code: code.to_string(),
        status: lang.redemption(r.status).to_owned(),
        usable: r.status == RedemptionStatus::Issued,
        reward: reward.map(|w| w.title).unwrap_or_default(),
        cost: r.cost.0.to_string(),
        worth: terms
            .as_ref()
            .map(|t| money(t.value_minor, t.currency))
            .unwrap_or_default(),
        min_bill: terms
            .as_ref()
            .and_then(|t| t.min_bill_minor.map(|m| money(m, t.currency)))
            .unwrap_or_default(),
        needs_bill: terms.is_some(),
        valid_until: when(r.expires_at_ms, program.utc_offset_minutes),
        client,
    })
}

#[derive(Deserialize)]
pub struct UseForm {
    code: String,
    #[serde(default)]
    bill: String,
}

/// Uses the code at the desk, with the bill when it is a money certificate; the audit log
/// names who used it.
pub async fn use_code(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Form(f): Form<UseForm>,
) -> Result<Response, WebError> {
    staff.desk()?;
    let Some((code, _)) = own_code(&dash, &staff, &f.code).await? else {
        return Err(WebError::NotFound);
    };
    let bill = match f.bill.trim() {
        "" => None,
        typed => Some(
            parse_money(typed, staff.partner.program.currency)
                .ok_or_else(|| WebError::BadInput(format!("{typed:?}")))?,
        ),
    };
    staff.engine(&dash).use_code_at_desk(&code, bill).await?;
    Ok(Redirect::to(&format!("/desk?code={code}&used=1")).into_response())
}

#[derive(Deserialize)]
pub struct VisitForm {
    phone: String,
    bill: String,
    #[serde(default)]
    service: String,
    #[serde(default)]
    name: String,
    key: String,
}

/// A visit entered at the desk, for salons whose CRM reports none (DIKIDI, paper): the same
/// engine path as `visit add` and the bot's `/visit`; the form's key makes a second press the
/// same visit. Then the client's card.
pub async fn visit(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Form(f): Form<VisitForm>,
) -> Result<Response, WebError> {
    staff.desk()?;
    let program = &staff.partner.program;
    let phone = loyalty_core::Phone::parse(&f.phone, program.country)
        .map_err(|e| WebError::BadInput(format!("{}: {e}", f.phone.trim())))?;
    let paid_minor = parse_money(&f.bill, program.currency)
        .ok_or_else(|| WebError::BadInput(format!("{:?}", f.bill.trim())))?;
    let key = f.key.trim();
    if key.is_empty() || key.len() > 64 || key.contains(char::is_whitespace) {
        return Err(WebError::BadInput("key".into()));
    }
    let optional = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let engine = staff.engine(&dash);
    let desk = engine.desk(staff.partner.id, false).await?;
    engine
        .desk_visit(
            &desk,
            &loyalty_core::engine::DeskVisit {
                phone: phone.clone(),
                name: optional(&f.name),
                paid_minor,
                service: optional(&f.service),
                master: None,
                key: format!("dash-{key}"),
            },
        )
        .await?;
    let client = ClientStore::client_by_phone(dash.store.as_ref(), staff.partner.id, &phone)
        .await?
        .ok_or(WebError::NotFound)?;
    Ok(Redirect::to(&format!("/clients/{}?posted=1", client.id.0)).into_response())
}
