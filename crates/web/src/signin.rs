//! Sign-in without a password: a staff member linked to a Telegram chat (`user chat`) sends
//! `/login` to the salon's bot, which answers with a link made here — usable once, for
//! [`SIGN_IN_MINUTES`] minutes. The link's page asks to press "Sign in" (a POST), so a messenger's
//! link preview fetching it uses nothing up.

use std::sync::Arc;

use askama::Template;
use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use loyalty_core::access::{AccessStore, LinkPurpose, SIGN_IN_MINUTES, SignInLink, SignInLinks};
use loyalty_core::{LoyaltyEngine, PartnerStore, StoreError};
use loyalty_store::SqlStore;

use crate::i18n::Lang;
use crate::pages::{Bare, html};
use crate::session::{self, new_token, token_hash};
use crate::{Dashboard, WebError};

/// The bot's side: links for the chat's users, on this base URL.
pub struct BotSignIn {
    store: Arc<SqlStore>,
    engine: LoyaltyEngine,
    base_url: String,
}

impl BotSignIn {
    /// `base_url`: where people open the dashboard (`https://loyalty.example.com`).
    pub fn new(store: Arc<SqlStore>, engine: LoyaltyEngine, base_url: &str) -> BotSignIn {
        BotSignIn {
            store,
            engine,
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }
}

#[async_trait]
impl SignInLinks for BotSignIn {
    async fn sign_in_links(&self, chat: i64) -> Result<Vec<SignInLink>, StoreError> {
        let now = self.engine.now_ms();
        let mut out = Vec::new();
        for user in self.store.users_by_chat(chat).await? {
            let token = new_token().map_err(|e| StoreError::Backend(e.to_string()))?;
            self.store
                .create_link(
                    &token_hash(&token),
                    user.id,
                    LinkPurpose::SignIn,
                    now + SIGN_IN_MINUTES * 60_000,
                )
                .await?;
            let salon = self
                .store
                .partner(user.partner)
                .await?
                .map(|p| p.name)
                .unwrap_or_default();
            out.push(SignInLink {
                salon,
                email: user.email,
                url: format!("{}/login/tg/{token}", self.base_url),
            });
        }
        Ok(out)
    }
}

#[derive(Template)]
#[template(path = "signin.html")]
struct Confirm {
    b: Bare,
    token: String,
    salon: String,
    email: String,
}

/// The link's page: who it signs in, and the button.
pub async fn confirm(
    State(dash): State<Arc<Dashboard>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let lang = Lang::of(&headers);
    let (user, salon) = session::link_holder(&dash, &token, LinkPurpose::SignIn, lang).await?;
    html(&Confirm {
        b: Bare::new(lang),
        token,
        salon,
        email: user.email,
    })
}

/// The button: the link used up, a session started.
pub async fn use_link(
    State(dash): State<Arc<Dashboard>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let lang = Lang::of(&headers);
    let Some(user) = dash
        .store
        .use_link(&token_hash(&token), LinkPurpose::SignIn, dash.now_ms())
        .await?
    else {
        return Err(WebError::BadInput(lang.words().link_dead.to_owned()));
    };
    session::start(&dash, &user).await
}
