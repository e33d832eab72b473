//! Sessions: a random token in an HttpOnly, SameSite=Lax cookie (Secure, and named with the
//! `__Host-` prefix, when the public URL is https); the database keeps its SHA-256, when it
//! ends and when it was last used. [`Staff`] is the signed-in person of a request and their
//! salon — the only place a page learns which salon it serves.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use loyalty_core::access::{AccessStore, LinkPurpose, StaffUser};
use loyalty_core::audit::{Actor, Capability};
use loyalty_core::{LoyaltyEngine, Partner, PartnerStore};
use sha2::{Digest, Sha256};

use crate::i18n::{Lang, cookie};
use crate::{Dashboard, Settings, WebError};

/// The session cookie's name over plain http (tests, a local demo).
pub const SESSION_COOKIE: &str = "lb_session";
/// Its name over https: the browser then refuses it from a subdomain or without `Secure`.
const SECURE_SESSION_COOKIE: &str = "__Host-lb_session";
/// `last_seen_ms` is written at most this often per session.
const TOUCH_EVERY_MS: i64 = 60_000;

/// A new random token: 32 bytes from the OS, hex.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex(&bytes))
}

/// What the database keeps of a token.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn cookie_name(settings: &Settings) -> &'static str {
    if settings.secure_cookies() {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// The `Set-Cookie` value that starts a session.
pub(crate) fn session_cookie(settings: &Settings, token: &str) -> Result<HeaderValue, WebError> {
    let secure = if settings.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        cookie_name(settings),
        settings.session_ttl.as_secs()
    ))
    .map_err(|e| WebError::Internal(e.to_string()))
}

/// The `Set-Cookie` value that ends it in the browser.
pub(crate) fn ended_cookie(settings: &Settings) -> HeaderValue {
    let secure = if settings.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}",
        cookie_name(settings)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("lb_session=; Path=/; Max-Age=0"))
}

/// Starts a session for `user`: the answer that sets its cookie and goes to the overview.
pub(crate) async fn start(dash: &Dashboard, user: &StaffUser) -> Result<Response, WebError> {
    start_at(dash, user, "/").await
}

/// [`start`], then to `to`.
pub(crate) async fn start_at(
    dash: &Dashboard,
    user: &StaffUser,
    to: &str,
) -> Result<Response, WebError> {
    let token = new_token().map_err(|e| WebError::Internal(e.to_string()))?;
    let now = dash.now_ms();
    let ttl = i64::try_from(dash.settings.session_ttl.as_millis()).unwrap_or(i64::MAX / 2);
    dash.store
        .create_session(&token_hash(&token), user.id, now, now.saturating_add(ttl))
        .await?;
    let mut r = Redirect::to(to).into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&dash.settings, &token)?);
    Ok(r)
}

/// Whom a live one-time link is for, and their salon's name, without using it; a dead link
/// (unknown, used, expired, its user removed) is said so in the reader's language.
pub(crate) async fn link_holder(
    dash: &Dashboard,
    token: &str,
    purpose: LinkPurpose,
    lang: Lang,
) -> Result<(StaffUser, String), WebError> {
    let Some(user) = dash
        .store
        .peek_link(&token_hash(token), purpose, dash.now_ms())
        .await?
    else {
        return Err(WebError::BadInput(lang.words().link_dead.to_owned()));
    };
    let salon = PartnerStore::partner(dash.store.as_ref(), user.partner)
        .await?
        .map(|p| p.name)
        .unwrap_or_default();
    Ok((user, salon))
}

/// The signed-in person of a request, their salon and their language.
pub struct Staff {
    pub user: StaffUser,
    pub partner: Partner,
    pub lang: Lang,
    pub(crate) token_hash: String,
}

impl Staff {
    /// Refused unless the role works at the desk.
    pub fn desk(&self) -> Result<(), WebError> {
        if self.user.role.works_desk() {
            Ok(())
        } else {
            Err(WebError::Forbidden)
        }
    }

    /// Refused unless the role runs the salon.
    pub fn owner(&self) -> Result<(), WebError> {
        if self.user.role.runs_salon() {
            Ok(())
        } else {
            Err(WebError::Forbidden)
        }
    }

    /// Refused unless the salon's plan serves it (the server refuses; the page only says so).
    pub fn plan(&self, c: Capability) -> Result<(), WebError> {
        if self.partner.plan.allows(c) {
            Ok(())
        } else {
            Err(WebError::Plan(c.least_plan()))
        }
    }

    /// Who the audit log names for what this person does.
    pub fn actor(&self) -> Actor {
        Actor::new(self.user.email.clone(), "dashboard")
    }

    /// The engine acting as this person.
    pub fn engine(&self, dash: &Dashboard) -> LoyaltyEngine {
        dash.engine.acting_as(self.actor())
    }
}

impl FromRequestParts<Arc<Dashboard>> for Staff {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        dash: &Arc<Dashboard>,
    ) -> Result<Staff, WebError> {
        let lang = Lang::of(&parts.headers);
        let Some(token) = cookie(&parts.headers, cookie_name(&dash.settings)) else {
            return Err(WebError::SignIn);
        };
        let hash = token_hash(&token);
        let now = dash.now_ms();
        let Some(session) = dash.store.session(&hash, now).await? else {
            return Err(WebError::SignIn);
        };
        let idle = i64::try_from(dash.settings.idle_timeout.as_millis()).unwrap_or(i64::MAX / 2);
        if now.saturating_sub(session.last_seen_ms) > idle {
            dash.store.revoke_session(&hash, now).await?;
            return Err(WebError::SignIn);
        }
        if now - session.last_seen_ms > TOUCH_EVERY_MS {
            dash.store.touch_session(&hash, now).await?;
        }
        let partner = PartnerStore::partner(dash.store.as_ref(), session.user.partner)
            .await?
            .ok_or(WebError::SignIn)?;
        Ok(Staff {
            user: session.user,
            partner,
            lang,
            token_hash: hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_stored_only_hashed() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
        // SHA-256 of "abc".
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn the_cookie_is_secure_and_host_prefixed_under_https() {
        let plain = Settings::default();
        let v = session_cookie(&plain, "t").unwrap();
        let v = v.to_str().unwrap();
        assert!(
            v.starts_with("lb_session=t; Path=/; HttpOnly; SameSite=Lax"),
            "{v}"
        );
        assert!(!v.contains("Secure"));
        let https = Settings {
            public_url: Some("https://loyalty.example.com".into()),
            ..Settings::default()
        };
        let v = session_cookie(&https, "t").unwrap();
        let v = v.to_str().unwrap();
        assert!(
            v.starts_with("__Host-lb_session=t;") && v.ends_with("; Secure"),
            "{v}"
        );
    }
}
