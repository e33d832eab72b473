//! The dashboard's people, sessions and one-time links on sqlx.

use async_trait::async_trait;
use loyalty_core::access::{AccessStore, AddUserError, LinkPurpose, Role, StaffSession, StaffUser};
use loyalty_core::audit::{Actor, AuditAction};
use loyalty_core::{PartnerId, StoreError};
use serde_json::json;
use sqlx::any::AnyRow;

use crate::audit;

use crate::rows::get;
use crate::{SqlStore, db_err};

/// A user's columns, for a query on `staff_users` alone.
const COLUMNS: &str = "id, partner_id, email, role, password_hash, telegram_chat_id, created_at_ms";
/// The same, for a join where `staff_users` is `u`.
const USER_COLUMNS: &str =
    "u.id, u.partner_id, u.email, u.role, u.password_hash, u.telegram_chat_id, u.created_at_ms";

fn user(r: &AnyRow) -> Result<StaffUser, StoreError> {
    let role: String = get(r, "role")?;
    Ok(StaffUser {
        id: get(r, "id")?,
        partner: PartnerId(get(r, "partner_id")?),
        email: get(r, "email")?,
        role: role
            .parse::<Role>()
            .map_err(|_| StoreError::Corrupt(format!("role {role:?}")))?,
        has_password: get::<Option<String>>(r, "password_hash")?.is_some(),
        telegram_chat_id: get(r, "telegram_chat_id")?,
        created_at_ms: get(r, "created_at_ms")?,
    })
}

#[async_trait]
impl AccessStore for SqlStore {
    async fn add_user(
        &self,
        partner: PartnerId,
        email: &str,
        role: Role,
        password_hash: Option<&str>,
        actor: &Actor,
        now_ms: i64,
    ) -> Result<StaffUser, AddUserError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO staff_users (partner_id, email, role, password_hash, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
        )))
        .bind(partner.0)
        .bind(email)
        .bind(role.as_str())
        .bind(password_hash)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)
        .map_err(|e| match e {
            StoreError::Duplicate(_) => AddUserError::EmailTaken(email.to_owned()),
            other => AddUserError::Store(other),
        })?;
        let added = user(&row)?;
        let detail = json!({"email": added.email, "role": role.as_str()});
        audit::append(
            &mut *tx,
            partner,
            actor,
            AuditAction::UserAdded,
            &detail,
            now_ms,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(added)
    }

    async fn remove_user(
        &self,
        partner: PartnerId,
        email: &str,
        actor: &Actor,
        now_ms: i64,
    ) -> Result<Option<StaffUser>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE staff_users SET removed_at_ms = $3 \
             WHERE partner_id = $1 AND email = $2 AND removed_at_ms IS NULL \
             RETURNING {COLUMNS}"
        )))
        .bind(partner.0)
        .bind(email)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?
        else {
            return Ok(None);
        };
        let removed = user(&row)?;
        sqlx::query(
            "UPDATE staff_sessions SET revoked_at_ms = $2 \
             WHERE user_id = $1 AND revoked_at_ms IS NULL",
        )
        .bind(removed.id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let detail = json!({"email": removed.email, "role": removed.role.as_str()});
        audit::append(
            &mut *tx,
            partner,
            actor,
            AuditAction::UserRemoved,
            &detail,
            now_ms,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some(removed))
    }

    async fn users_of(&self, partner: PartnerId) -> Result<Vec<StaffUser>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM staff_users \
             WHERE partner_id = $1 AND removed_at_ms IS NULL ORDER BY email"
        )))
        .bind(partner.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut users = rows.iter().map(user).collect::<Result<Vec<_>, _>>()?;
        users.sort_by(|a, b| b.role.cmp(&a.role).then_with(|| a.email.cmp(&b.email)));
        Ok(users)
    }

    async fn user_by_email(
        &self,
        email: &str,
    ) -> Result<Option<(StaffUser, Option<String>)>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM staff_users WHERE email = $1 AND removed_at_ms IS NULL"
        )))
        .bind(email)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|r| Ok((user(&r)?, get(&r, "password_hash")?)))
            .transpose()
    }

    async fn set_password(&self, user: i64, hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE staff_users SET password_hash = $2 WHERE id = $1")
            .bind(user)
            .bind(hash)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn set_user_chat(&self, user: i64, chat: Option<i64>) -> Result<(), StoreError> {
        sqlx::query("UPDATE staff_users SET telegram_chat_id = $2 WHERE id = $1")
            .bind(user)
            .bind(chat)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn users_by_chat(&self, chat: i64) -> Result<Vec<StaffUser>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM staff_users \
             WHERE telegram_chat_id = $1 AND removed_at_ms IS NULL ORDER BY partner_id"
        )))
        .bind(chat)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(user).collect()
    }

    async fn create_session(
        &self,
        token_hash: &str,
        user: i64,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO staff_sessions (token_hash, user_id, created_at_ms, expires_at_ms, \
             last_seen_ms) VALUES ($1, $2, $3, $4, $3)",
        )
        .bind(token_hash)
        .bind(user)
        .bind(now_ms)
        .bind(expires_at_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<StaffSession>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS}, s.created_at_ms AS s_created, s.expires_at_ms, s.last_seen_ms \
             FROM staff_sessions s JOIN staff_users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.revoked_at_ms IS NULL AND s.expires_at_ms > $2 \
               AND u.removed_at_ms IS NULL"
        )))
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|r| {
            Ok(StaffSession {
                user: user(&r)?,
                created_at_ms: get(&r, "s_created")?,
                expires_at_ms: get(&r, "expires_at_ms")?,
                last_seen_ms: get(&r, "last_seen_ms")?,
            })
        })
        .transpose()
    }

    async fn touch_session(&self, token_hash: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE staff_sessions SET last_seen_ms = $2 WHERE token_hash = $1")
            .bind(token_hash)
            .bind(now_ms)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn revoke_session(&self, token_hash: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE staff_sessions SET revoked_at_ms = $2 \
             WHERE token_hash = $1 AND revoked_at_ms IS NULL",
        )
        .bind(token_hash)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn revoke_sessions_of(&self, user: i64, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE staff_sessions SET revoked_at_ms = $2 \
             WHERE user_id = $1 AND revoked_at_ms IS NULL",
        )
        .bind(user)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn create_link(
        &self,
        token_hash: &str,
        user: i64,
        purpose: LinkPurpose,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO staff_links (token_hash, user_id, purpose, expires_at_ms) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(user)
        .bind(purpose.as_str())
        .bind(expires_at_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn use_link(
        &self,
        token_hash: &str,
        purpose: LinkPurpose,
        now_ms: i64,
    ) -> Result<Option<StaffUser>, StoreError> {
        // One UPDATE decides who uses it: a second request finds used_at_ms set.
        let used = sqlx::query(
            "UPDATE staff_links SET used_at_ms = $3 \
             WHERE token_hash = $1 AND purpose = $2 AND used_at_ms IS NULL \
               AND expires_at_ms > $3 RETURNING user_id",
        )
        .bind(token_hash)
        .bind(purpose.as_str())
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        let Some(row) = used else {
            return Ok(None);
        };
        let id: i64 = get(&row, "user_id")?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM staff_users WHERE id = $1 AND removed_at_ms IS NULL"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|r| user(&r)).transpose()
    }

    async fn peek_link(
        &self,
        token_hash: &str,
        purpose: LinkPurpose,
        now_ms: i64,
    ) -> Result<Option<StaffUser>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM staff_links l JOIN staff_users u ON u.id = l.user_id \
             WHERE l.token_hash = $1 AND l.purpose = $2 AND l.used_at_ms IS NULL \
               AND l.expires_at_ms > $3 AND u.removed_at_ms IS NULL"
        )))
        .bind(token_hash)
        .bind(purpose.as_str())
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|r| user(&r)).transpose()
    }
}
