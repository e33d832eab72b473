//! Signing in and out, and the language switch.

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use loyalty_core::access::{AccessStore, normal_email};
use serde::Deserialize;

use super::{Bare, html};
use crate::i18n::{LANG_COOKIE, Lang};
use crate::session::{self, Staff};
use crate::{Dashboard, WebError, password};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    b: Bare,
    error: Option<&'static str>,
    email: String,
}

pub async fn form(headers: HeaderMap) -> Result<Response, WebError> {
    html(&LoginPage {
        b: Bare::new(Lang::of(&headers)),
        error: None,
        email: String::new(),
    })
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
}

/// The address a request came from, as the listener saw it (`unknown` without one).
pub struct Peer(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Peer, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string()),
        ))
    }
}

pub async fn submit(
    State(dash): State<Arc<Dashboard>>,
    Peer(address): Peer,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, WebError> {
    let lang = Lang::of(&headers);
    let w = lang.words();
    let email = normal_email(&f.email).unwrap_or_else(|| f.email.trim().to_lowercase());
    let again = |status: StatusCode, error: &'static str| -> Result<Response, WebError> {
        let mut r = html(&LoginPage {
            b: Bare::new(lang),
            error: Some(error),
            email: email.clone(),
        })?;
        *r.status_mut() = status;
        Ok(r)
    };
    let now = dash.now_ms();
    if let Some(wait) = dash.limiter.blocked(&email, &address, now) {
        let mut r = again(StatusCode::TOO_MANY_REQUESTS, w.too_many)?;
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(r);
    }
    let found = dash.store.user_by_email(&email).await?;
    let phc = found.as_ref().and_then(|(_, h)| h.clone());
    let matches = password::verify_blocking(f.password, phc).await;
    let Some((user, _)) = found.filter(|_| matches) else {
        dash.limiter.failed(&email, &address, now);
        tracing::info!(%address, "dashboard sign-in refused");
        return again(StatusCode::UNAUTHORIZED, w.bad_login);
    };
    dash.limiter.succeeded(&email);
    session::start(&dash, &user).await
}

pub async fn logout(
    State(dash): State<Arc<Dashboard>>,
    staff: Result<Staff, WebError>,
) -> Result<Response, WebError> {
    if let Ok(staff) = staff {
        dash.store
            .revoke_session(&staff.token_hash, dash.now_ms())
            .await?;
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session::ended_cookie(&dash.settings));
    Ok(r)
}

/// The switch: the choice kept in a cookie for a year; back to the page it was pressed on.
pub async fn switch_lang(Path(lang): Path<String>, headers: HeaderMap) -> Response {
    let Some(lang) = Lang::parse(&lang) else {
        return WebError::NotFound.into_response();
    };
    let code = lang.words().code;
    let back = headers
        .get(header::REFERER)
        .and_then(|r| r.to_str().ok())
        .and_then(|r| r.split_once("://").map(|(_, rest)| rest))
        .and_then(|rest| rest.find('/').map(|i| rest[i..].to_owned()))
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or_else(|| "/".to_owned());
    let mut r = Redirect::to(&back).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{LANG_COOKIE}={code}; Path=/; SameSite=Lax; Max-Age=31536000"
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}
