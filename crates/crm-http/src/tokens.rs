//! Where a connection's CRM tokens live between calls and between instances.
//!
//! A CRM that hands out tokens (Arnica's JWT, Beauty Pro's rotating access and refresh pair)
//! keeps them in a [`TokenStore`]: the gateway's is the connection's settings row, shared by
//! every instance; [`MemoryTokens`] serves an embedder with one process. Every save names the
//! version it read and loses to any save in between, so two instances that refresh at once
//! never write an older pair over a newer one: the loser reads the winner's tokens and uses
//! them.

use async_trait::async_trait;
use loyalty_core::AdapterError;
use tokio::sync::Mutex;

/// Tokens as stored: the CRM crate's own JSON, and its version (0 before any save).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct StoredTokens {
    pub json: Option<String>,
    pub version: i64,
}

impl std::fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTokens")
            .field("json", &self.json.as_ref().map(|_| "***"))
            .field("version", &self.version)
            .finish()
    }
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The tokens stored now.
    async fn load(&self) -> Result<StoredTokens, AdapterError>;

    /// Saves `json` as version `read_version + 1` if the stored version is still
    /// `read_version`; `false` when another save came first.
    async fn swap(&self, read_version: i64, json: &str) -> Result<bool, AdapterError>;
}

/// Tokens kept in this process only.
#[derive(Debug, Default)]
pub struct MemoryTokens(Mutex<StoredTokens>);

impl MemoryTokens {
    pub fn new() -> MemoryTokens {
        MemoryTokens::default()
    }
}

#[async_trait]
impl TokenStore for MemoryTokens {
    async fn load(&self) -> Result<StoredTokens, AdapterError> {
        Ok(self.0.lock().await.clone())
    }

    async fn swap(&self, read_version: i64, json: &str) -> Result<bool, AdapterError> {
        let mut stored = self.0.lock().await;
        if stored.version != read_version {
            return Ok(false);
        }
        *stored = StoredTokens {
            json: Some(json.to_owned()),
            version: read_version + 1,
        };
        Ok(true)
    }
}
