//! The CRMs beyond the YCLIENTS platform, as the gateway stores and builds them: their
//! credentials' JSON in `connection_settings.crm_credentials`, their tokens in
//! `connection_settings.crm_tokens` (a [`crm_http::TokenStore`] shared by every instance).

use std::sync::Arc;

use async_trait::async_trait;
use crm_http::{StoredTokens, TokenStore};
use loyalty_core::{AdapterError, ConnectionId};
use loyalty_store::SqlStore;
use serde::{Deserialize, Serialize};

/// Arnica's login as stored: the integrator employee's e-mail and password, and the API base
/// when it is not [`crm_arnica::DEFAULT_BASE_URL`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArnicaLogin {
    pub email: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
}

impl std::fmt::Debug for ArnicaLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArnicaLogin")
            .field("email", &self.email)
            .field("password", &"***")
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// Beauty Pro's credentials as stored: our application's id and secret (the database code is
/// the connection's company id), and API roots that replace AI Helps' own (a proxy, a test).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeautyProApp {
    pub application_id: String,
    pub application_secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
}

impl std::fmt::Debug for BeautyProApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BeautyProApp")
            .field("application_id", &self.application_id)
            .field("application_secret", &"***")
            .field("api_url", &self.api_url)
            .finish()
    }
}

/// DIKIDI as stored: nothing secret (its public widget needs no login, and no DIKIDI password
/// is ever asked for), only another widget host when given (a proxy, a test).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DikidiWidget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
}

/// A connection's tokens in its settings row.
pub struct SqlTokens {
    pub store: Arc<SqlStore>,
    pub connection: ConnectionId,
}

#[async_trait]
impl TokenStore for SqlTokens {
    async fn load(&self) -> Result<StoredTokens, AdapterError> {
        let t = self
            .store
            .crm_tokens(self.connection)
            .await
            .map_err(|e| AdapterError::Transient(format!("the tokens cannot be read: {e}")))?;
        Ok(StoredTokens {
            json: t.json,
            version: t.version,
        })
    }

    async fn swap(&self, read_version: i64, json: &str) -> Result<bool, AdapterError> {
        self.store
            .swap_crm_tokens(self.connection, read_version, json)
            .await
            .map_err(|e| AdapterError::Transient(format!("the tokens cannot be saved: {e}")))
    }
}
