//! The team (owners only): who signs in to the salon and with what role; invitations by a
//! one-time link the owner passes on, where the invited person sets a password.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use loyalty_core::access::{AccessStore, AddUserError, LinkPurpose, Role, normal_email};
use serde::Deserialize;

use super::{Bare, Chrome, html};
use crate::i18n::Lang;
use crate::session::{self, Staff, new_token, token_hash};
use crate::{Dashboard, WebError, password};

/// How long an invitation works.
const INVITE_MS: i64 = 7 * 24 * 3600 * 1000;

pub struct UserRow {
    pub email: String,
    pub role: &'static str,
    pub invited: bool,
    pub telegram: bool,
    pub me: bool,
}

#[derive(Template)]
#[template(path = "team.html")]
struct Team {
    c: Chrome,
    users: Vec<UserRow>,
    invite_link: Option<String>,
    roles: Vec<(&'static str, &'static str)>,
}

async fn team(
    dash: &Dashboard,
    staff: &Staff,
    invite_link: Option<String>,
) -> Result<Response, WebError> {
    let lang = staff.lang;
    let users = dash
        .store
        .users_of(staff.partner.id)
        .await?
        .into_iter()
        .map(|u| UserRow {
            me: u.id == staff.user.id,
            role: lang.role(u.role),
            invited: !u.has_password,
            telegram: u.telegram_chat_id.is_some(),
            email: u.email,
        })
        .collect();
    html(&Team {
        c: Chrome::new(staff, "team"),
        users,
        invite_link,
        roles: [Role::Admin, Role::Viewer, Role::Owner]
            .into_iter()
            .map(|r| (r.as_str(), lang.role(r)))
            .collect(),
    })
}

pub async fn page(State(dash): State<Arc<Dashboard>>, staff: Staff) -> Result<Response, WebError> {
    staff.owner()?;
    team(&dash, &staff, None).await
}

#[derive(Deserialize)]
pub struct InviteForm {
    email: String,
    role: String,
}

/// The address people open: the configured public URL, else the host this request came to.
fn base_url(dash: &Dashboard, headers: &HeaderMap) -> String {
    if let Some(p) = &dash.settings.public_url {
        return p.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

pub async fn invite(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    headers: HeaderMap,
    Form(f): Form<InviteForm>,
) -> Result<Response, WebError> {
    staff.owner()?;
    let email = normal_email(&f.email)
        .ok_or_else(|| WebError::BadInput(format!("{:?}", f.email.trim())))?;
    let role: Role = f.role.parse().map_err(WebError::BadInput)?;
    let now = dash.now_ms();
    let user = dash
        .store
        .add_user(staff.partner.id, &email, role, None, &staff.actor(), now)
        .await
        .map_err(|e| match e {
            AddUserError::EmailTaken(_) => WebError::BadInput(e.to_string()),
            AddUserError::Store(s) => WebError::Store(s),
        })?;
    let token = new_token().map_err(|e| WebError::Internal(e.to_string()))?;
    dash.store
        .create_link(
            &token_hash(&token),
            user.id,
            LinkPurpose::Invite,
            now + INVITE_MS,
        )
        .await?;
    let link = format!("{}/invite/{token}", base_url(&dash, &headers));
    team(&dash, &staff, Some(link)).await
}

#[derive(Deserialize)]
pub struct RemoveForm {
    email: String,
}

pub async fn remove(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Form(f): Form<RemoveForm>,
) -> Result<Response, WebError> {
    staff.owner()?;
    let email = f.email.trim().to_lowercase();
    if email == staff.user.email {
        return Err(WebError::BadInput(email));
    }
    dash.store
        .remove_user(staff.partner.id, &email, &staff.actor(), dash.now_ms())
        .await?
        .ok_or(WebError::NotFound)?;
    Ok(Redirect::to("/team").into_response())
}

#[derive(Template)]
#[template(path = "invite.html")]
struct InvitePage {
    b: Bare,
    token: String,
    salon: String,
    email: String,
    error: Option<String>,
}

async fn invite_page(
    dash: &Dashboard,
    lang: Lang,
    token: &str,
    error: Option<String>,
) -> Result<Response, WebError> {
    let (user, salon) = session::link_holder(dash, token, LinkPurpose::Invite, lang).await?;
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let mut r = html(&InvitePage {
        b: Bare::new(lang),
        token: token.to_owned(),
        salon,
        email: user.email,
        error,
    })?;
    *r.status_mut() = status;
    Ok(r)
}

pub async fn invite_form(
    State(dash): State<Arc<Dashboard>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    invite_page(&dash, Lang::of(&headers), &token, None).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    password: String,
}

/// The invited person's password set; the link used up; signed in.
pub async fn invite_accept(
    State(dash): State<Arc<Dashboard>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(f): Form<PasswordForm>,
) -> Result<Response, WebError> {
    let lang = Lang::of(&headers);
    let hash = match password::hash_blocking(f.password).await {
        Ok(h) => h,
        Err(password::PasswordError::Hash(e)) => return Err(WebError::Internal(e)),
        Err(_) => {
            return invite_page(&dash, lang, &token, Some(lang.words().password_rule.into())).await;
        }
    };
    let Some(user) = dash
        .store
        .use_link(&token_hash(&token), LinkPurpose::Invite, dash.now_ms())
        .await?
    else {
        return Err(WebError::BadInput(lang.words().link_dead.to_owned()));
    };
    dash.store.set_password(user.id, &hash).await?;
    session::start(&dash, &user).await
}
