//! The AI Helps `Database` token: obtained with the application's id and secret and the
//! salon's database code once the salon granted access, valid 24 hours, renewed with its
//! refresh token — which rotates: a refresh answers a new access *and* refresh token, and the
//! old refresh token stops working. Several gateway instances share one pair through a
//! [`TokenStore`] saved by compare-and-set:
//!
//! - a token close to its end (5 minutes) or answered `EXPIRED` is refreshed;
//! - before refreshing, the store is read: a newer pair saved by another instance is used as it
//!   is;
//! - a refresh the API refuses (the refresh token was just used by another instance) waits a
//!   moment for that instance's save and uses it; failing that, the application asks for a new
//!   pair (`/auth/database`), which the salon's grant still allows;
//! - a save that loses the compare-and-set reads the winner's pair and uses it, so no instance
//!   ever writes an older pair over a newer one.
//!
//! Access not granted yet (`{"status": "pending"}`) or refused is a clear error
//! ([`AdapterError::Forbidden`] naming what the salon must do), remembered for a minute so the
//! stricter auth endpoints are not asked in a loop.

use std::sync::Arc;
use std::time::Duration;

use crm_http::{StoredTokens, TokenStore, lenient};
use loyalty_core::AdapterError;
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

/// A token this close to its end is refreshed before use.
pub const REFRESH_AHEAD_MS: i64 = 5 * 60_000;
/// How long "access pending" is believed before `/auth/database` is asked again.
const PENDING_FOR_MS: i64 = 60_000;

/// The pair in use, as stored (`crm_tokens`): plus the data server and the update replay's
/// cursor, which ride in the same row.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    pub access: String,
    pub refresh: Option<String>,
    pub expires_at_ms: i64,
    /// The data server's index (`server` in the database token's answer).
    pub server: i64,
    /// The last update id the replay has handed to the engine.
    pub update_id: Option<i64>,
    /// The store's version these were read or saved as.
    pub version: i64,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_at_ms", &self.expires_at_ms)
            .field("server", &self.server)
            .field("update_id", &self.update_id)
            .field("version", &self.version)
            .finish()
    }
}

impl Tokens {
    fn json(&self) -> String {
        json!({
            "access_token": self.access,
            "refresh_token": self.refresh,
            "expires_at_ms": self.expires_at_ms,
            "server": self.server,
            "update_id": self.update_id,
        })
        .to_string()
    }

    fn read(stored: &StoredTokens) -> Option<Tokens> {
        let v: Value = serde_json::from_str(stored.json.as_deref()?).ok()?;
        let m = v.as_object()?;
        Some(Tokens {
            access: lenient::text(m, "access_token")?,
            refresh: lenient::text(m, "refresh_token"),
            expires_at_ms: lenient::int(m, "expires_at_ms").ok().flatten().unwrap_or(0),
            server: lenient::int(m, "server").ok().flatten().unwrap_or(1),
            update_id: lenient::int(m, "update_id").ok().flatten(),
            version: stored.version,
        })
    }
}

/// What the auth endpoints answered, read by [`crate::api`].
pub enum Granted {
    /// A new pair (`/auth/database`, `/auth/refresh`): access, refresh, expiry, server.
    Pair {
        access: String,
        refresh: Option<String>,
        expires_at_ms: i64,
        server: Option<i64>,
    },
    /// `{"status": "pending" | "refused"}`.
    NotGranted(String),
}

/// Reads an auth endpoint's answer.
pub fn granted(answer: &Value) -> Result<Granted, AdapterError> {
    let m = answer
        .as_object()
        .ok_or_else(|| AdapterError::Unexpected("the auth answer is not an object".into()))?;
    if let Some(status) = lenient::text(m, "status")
        && lenient::text(m, "access_token").is_none()
    {
        return Ok(Granted::NotGranted(status));
    }
    let access = lenient::text(m, "access_token")
        .ok_or_else(|| AdapterError::Unexpected("the auth answer has no access_token".into()))?;
    let expires_at_ms = lenient::timestamp_ms(m, "expires_at", 0)
        .map_err(|e| AdapterError::Unexpected(e.to_string()))?
        .ok_or_else(|| AdapterError::Unexpected("the auth answer has no expires_at".into()))?;
    Ok(Granted::Pair {
        access,
        refresh: lenient::text(m, "refresh_token"),
        expires_at_ms,
        server: lenient::int(m, "server").ok().flatten(),
    })
}

/// How the client asks the auth endpoints (implemented by [`crate::api::BeautyProClient`]).
#[async_trait::async_trait]
pub trait AuthCalls: Send + Sync {
    /// `GET /auth/database?application_id&application_secret&database_code`.
    async fn database_token(&self) -> Result<Granted, AdapterError>;
    /// `GET /auth/refresh?application_id&refresh_token`; `Ok(None)` when the refresh token is
    /// refused (used already, or revoked).
    async fn refresh_token(&self, refresh: &str) -> Result<Option<Granted>, AdapterError>;
    fn now_ms(&self) -> i64;
}

/// The connection's tokens: the pair in hand, and the store every instance shares.
pub struct Auth {
    store: Arc<dyn TokenStore>,
    held: Mutex<Option<Tokens>>,
    pending_until: Mutex<Option<(i64, String)>>,
}

impl Auth {
    pub fn new(store: Arc<dyn TokenStore>) -> Auth {
        Auth {
            store,
            held: Mutex::new(None),
            pending_until: Mutex::new(None),
        }
    }

    /// A pair fit to use now: the one in hand, else the stored one, else a new one; refreshed
    /// first when it ends within five minutes.
    pub async fn current(&self, calls: &dyn AuthCalls) -> Result<Tokens, AdapterError> {
        let held = self.held.lock().await.clone();
        let tokens = match held {
            Some(t) => t,
            None => {
                let stored = self.store.load().await?;
                match Tokens::read(&stored) {
                    Some(t) => t,
                    None => return self.authorize(calls, &stored).await,
                }
            }
        };
        *self.held.lock().await = Some(tokens.clone());
        if tokens.expires_at_ms - calls.now_ms() < REFRESH_AHEAD_MS {
            return self.renew(calls, &tokens).await;
        }
        Ok(tokens)
    }

    /// The API said the pair in use is expired or unknown: a newer stored pair, else a
    /// refresh, else a new pair.
    pub async fn renew(
        &self,
        calls: &dyn AuthCalls,
        stale: &Tokens,
    ) -> Result<Tokens, AdapterError> {
        // Another instance may have renewed it already.
        let stored = self.store.load().await?;
        let now = calls.now_ms();
        if let Some(newer) = Tokens::read(&stored)
            .filter(|t| t.access != stale.access && t.expires_at_ms - now >= REFRESH_AHEAD_MS)
        {
            *self.held.lock().await = Some(newer.clone());
            return Ok(newer);
        }
        let base = Tokens::read(&stored).unwrap_or_else(|| stale.clone());
        if let Some(refresh) = base.refresh.clone() {
            match calls.refresh_token(&refresh).await? {
                Some(Granted::Pair {
                    access,
                    refresh,
                    expires_at_ms,
                    server,
                }) => {
                    let fresh = Tokens {
                        access,
                        refresh,
                        expires_at_ms,
                        server: server.unwrap_or(base.server),
                        update_id: base.update_id,
                        version: stored.version,
                    };
                    return self.keep(fresh).await;
                }
                Some(Granted::NotGranted(status)) => return Err(not_granted(&status)),
                None => {
                    // Refused: most likely another instance used it a moment ago; its save
                    // is on the way (waited for up to 3 s, then a new pair is asked for).
                    for _ in 0..30 {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        let now = self.store.load().await?;
                        if let Some(newer) = Tokens::read(&now)
                            .filter(|t| t.version > stored.version && t.access != stale.access)
                        {
                            *self.held.lock().await = Some(newer.clone());
                            return Ok(newer);
                        }
                    }
                }
            }
        }
        self.authorize(calls, &stored).await
    }

    /// A new pair from `/auth/database` (which ends the previous one at the API), saved over
    /// `stored` (the row as last read: its version, and the replay's cursor kept).
    async fn authorize(
        &self,
        calls: &dyn AuthCalls,
        stored: &StoredTokens,
    ) -> Result<Tokens, AdapterError> {
        let now = calls.now_ms();
        if let Some((until, status)) = self.pending_until.lock().await.clone()
            && now < until
        {
            return Err(not_granted(&status));
        }
        match calls.database_token().await? {
            Granted::Pair {
                access,
                refresh,
                expires_at_ms,
                server,
            } => {
                *self.pending_until.lock().await = None;
                self.keep(Tokens {
                    access,
                    refresh,
                    expires_at_ms,
                    server: server.unwrap_or(1),
                    update_id: Tokens::read(stored).and_then(|t| t.update_id),
                    version: stored.version,
                })
                .await
            }
            Granted::NotGranted(status) => {
                *self.pending_until.lock().await = Some((now + PENDING_FOR_MS, status.clone()));
                Err(not_granted(&status))
            }
        }
    }

    /// Saves a new pair over the version it was based on; a lost race uses the winner's.
    async fn keep(&self, fresh: Tokens) -> Result<Tokens, AdapterError> {
        let kept = if self.store.swap(fresh.version, &fresh.json()).await? {
            Tokens {
                version: fresh.version + 1,
                ..fresh
            }
        } else {
            Tokens::read(&self.store.load().await?).unwrap_or(fresh)
        };
        *self.held.lock().await = Some(kept.clone());
        Ok(kept)
    }

    /// The replay's cursor as stored.
    pub async fn update_id(&self) -> Result<Option<i64>, AdapterError> {
        Ok(Tokens::read(&self.store.load().await?).and_then(|t| t.update_id))
    }

    /// Moves the replay's cursor forward (never back), keeping whatever pair is stored.
    pub async fn save_update_id(&self, update_id: i64) -> Result<(), AdapterError> {
        for _ in 0..5 {
            let stored = self.store.load().await?;
            let Some(mut t) = Tokens::read(&stored) else {
                return Ok(());
            };
            if t.update_id.is_some_and(|u| u >= update_id) {
                return Ok(());
            }
            t.update_id = Some(update_id);
            if self.store.swap(stored.version, &t.json()).await? {
                return Ok(());
            }
        }
        Err(AdapterError::Transient(
            "the replay's cursor could not be saved: the tokens keep changing".into(),
        ))
    }
}

fn not_granted(status: &str) -> AdapterError {
    AdapterError::Forbidden(match status {
        "refused" => "the salon refused the application access to its database (Beauty Pro → \
                      Settings → Marketplace → Grant access)"
            .to_owned(),
        other => format!(
            "access to the salon's database is {other}: a manager grants it in Beauty Pro → \
             Settings → Marketplace → Grant access"
        ),
    })
}

/// The error object of a failed call: `{status, type, message, unblockAfter}`.
pub fn error_type(body: &Map<String, Value>) -> Option<String> {
    lenient::text(body, "type")
}
