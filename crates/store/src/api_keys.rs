//! The partner API's keys (migration 0032): one row per key, its SHA-256 alone kept.

use loyalty_core::audit::{Actor, AuditAction};
use loyalty_core::{PartnerId, StoreError};
use serde::Serialize;
use sqlx::any::AnyRow;

use crate::audit::append;
use crate::rows::get;
use crate::{SqlStore, db_err};

/// What a key may do: `read` sees, `write` also changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyScope {
    Read,
    Write,
}

impl KeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Read => "read",
            KeyScope::Write => "write",
        }
    }

    pub fn parse(s: &str) -> Option<KeyScope> {
        match s {
            "read" => Some(KeyScope::Read),
            "write" => Some(KeyScope::Write),
            _ => None,
        }
    }
}

/// A key as kept (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: i64,
    pub partner_id: PartnerId,
    /// The key's visible start, to tell keys apart (`lb_live_3f9a…`).
    pub prefix: String,
    pub scope: KeyScope,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

fn key(r: &AnyRow) -> Result<ApiKey, StoreError> {
    let scope: String = get(r, "scope")?;
    Ok(ApiKey {
        id: get(r, "id")?,
        partner_id: PartnerId(get(r, "partner_id")?),
        prefix: get(r, "prefix")?,
        scope: KeyScope::parse(&scope)
            .ok_or_else(|| StoreError::Corrupt(format!("api key scope {scope:?}")))?,
        created_at_ms: get(r, "created_at_ms")?,
        revoked_at_ms: get(r, "revoked_at_ms")?,
    })
}

const COLUMNS: &str =
    "SELECT id, partner_id, prefix, scope, created_at_ms, revoked_at_ms FROM api_keys";

impl SqlStore {
    /// Keeps a new key by its hash and prefix; the audit log names who made it.
    pub async fn create_api_key(
        &self,
        partner: PartnerId,
        prefix: &str,
        key_hash: &str,
        scope: KeyScope,
        actor: &Actor,
        now_ms: i64,
    ) -> Result<ApiKey, StoreError> {
        let mut tx = self.begin_raw().await?;
        sqlx::query(
            "INSERT INTO api_keys (partner_id, prefix, key_hash, scope, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(partner.0)
        .bind(prefix)
        .bind(key_hash)
        .bind(scope.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let sql = format!("{COLUMNS} WHERE prefix = $1");
        let made = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(prefix)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)
            .and_then(|r| key(&r))?;
        let detail = serde_json::json!({ "prefix": prefix, "scope": scope.as_str() });
        append(
            &mut *tx,
            partner,
            actor,
            AuditAction::ApiKeyCreated,
            &detail,
            now_ms,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(made)
    }

    /// The live key with this hash and its salon, in one read (every API request asks).
    pub async fn api_caller(
        &self,
        key_hash: &str,
    ) -> Result<Option<(ApiKey, loyalty_core::Partner)>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT k.id, k.partner_id, k.prefix, k.scope, k.created_at_ms, k.revoked_at_ms, \
             p.name, p.program, p.plan FROM api_keys k JOIN partners p ON p.id = k.partner_id \
             WHERE k.key_hash = $1 AND k.revoked_at_ms IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        else {
            return Ok(None);
        };
        let made = key(&row)?;
        // The partner's columns under the names `rows::partner` reads.
        let partner = crate::rows::partner_with_id(&row, made.partner_id)?;
        Ok(Some((made, partner)))
    }

    /// Revokes the partner's key with this prefix; `None` when it has no live one. The audit
    /// log names who revoked it.
    pub async fn revoke_api_key(
        &self,
        partner: PartnerId,
        prefix: &str,
        actor: &Actor,
        now_ms: i64,
    ) -> Result<Option<ApiKey>, StoreError> {
        let mut tx = self.begin_raw().await?;
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at_ms = $3 \
             WHERE partner_id = $1 AND prefix = $2 AND revoked_at_ms IS NULL",
        )
        .bind(partner.0)
        .bind(prefix)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let sql = format!("{COLUMNS} WHERE prefix = $1");
        let revoked = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(prefix)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .map(|r| key(&r))
            .transpose()?;
        let detail = serde_json::json!({ "prefix": prefix });
        append(
            &mut *tx,
            partner,
            actor,
            AuditAction::ApiKeyRevoked,
            &detail,
            now_ms,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(revoked)
    }

    /// The partner's keys, newest first.
    pub async fn api_keys(&self, partner: PartnerId) -> Result<Vec<ApiKey>, StoreError> {
        let sql = format!("{COLUMNS} WHERE partner_id = $1 ORDER BY id DESC");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(partner.0)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(key)
            .collect()
    }
}
