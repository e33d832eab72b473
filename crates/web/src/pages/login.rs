//! Signing in and out, and the language switch.

use std::net::{IpAddr, SocketAddr};
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
    /// Sign-up is open: a link to create a salon.
    signup: bool,
}

pub async fn form(
    State(dash): State<Arc<Dashboard>>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    html(&LoginPage {
        b: Bare::new(Lang::of(&headers)),
        error: None,
        email: String::new(),
        signup: dash.settings.signup.is_some(),
    })
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
}

/// The address a request came from: the TCP peer, or — when the peer is a trusted reverse
/// proxy — the nearest address in `X-Forwarded-For` that is not one (`unknown` without any).
pub struct Peer(pub String);

/// The client behind `peer`: walking `X-Forwarded-For` from the right past trusted proxies.
fn client_address(peer: Option<IpAddr>, forwarded: &[&str], trusted: &[IpAddr]) -> String {
    let Some(peer) = peer else {
        return "unknown".to_owned();
    };
    if !trusted.contains(&peer) {
        return peer.to_string();
    }
    let hops = forwarded.iter().flat_map(|v| v.split(',')).map(str::trim);
    let mut client = peer;
    for hop in hops.rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => client = ip,
            Ok(ip) => return ip.to_string(),
            // A hop we cannot read: the nearest trusted one answers for it.
            Err(_) => break,
        }
    }
    client.to_string()
}

impl FromRequestParts<Arc<Dashboard>> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        dash: &Arc<Dashboard>,
    ) -> Result<Peer, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        Ok(Peer(client_address(
            peer,
            &forwarded,
            &dash.settings.trusted_proxies,
        )))
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
            signup: dash.settings.signup.is_some(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trusted_proxy_names_the_client_an_untrusted_peer_does_not() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let edge: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted = [proxy, edge];
        let peer = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // Not trusted: whatever it says about others is ignored.
        assert_eq!(
            client_address(peer("203.0.113.9"), &["1.2.3.4"], &trusted),
            "203.0.113.9"
        );
        // Trusted: the rightmost untrusted hop, however many proxies stand before it.
        assert_eq!(
            client_address(peer("10.0.0.1"), &["5.6.7.8, 1.2.3.4"], &trusted),
            "1.2.3.4"
        );
        assert_eq!(
            client_address(peer("10.0.0.1"), &["1.2.3.4", "10.0.0.2"], &trusted),
            "1.2.3.4"
        );
        assert_eq!(client_address(peer("10.0.0.1"), &[], &trusted), "10.0.0.1");
        assert_eq!(
            client_address(peer("10.0.0.1"), &["garbage, 10.0.0.2"], &trusted),
            "10.0.0.2"
        );
        assert_eq!(client_address(None, &["1.2.3.4"], &trusted), "unknown");
    }
}
