//! Salons' own Telegram bots: one per salon, one salon per bot (migration 0031).

use loyalty_core::{PartnerId, StoreError};
use sqlx::any::AnyRow;

use crate::rows::get;
use crate::{SqlStore, db_err};

/// A salon's own bot. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct SalonBot {
    pub partner_id: PartnerId,
    /// Telegram's id of the bot.
    pub bot_id: i64,
    pub username: String,
    pub token: String,
    /// The last part of its webhook's path (`/telegram/{webhook_secret}`), and the secret
    /// Telegram echoes in `X-Telegram-Bot-Api-Secret-Token`.
    pub webhook_secret: String,
}

impl std::fmt::Debug for SalonBot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalonBot")
            .field("partner_id", &self.partner_id)
            .field("bot_id", &self.bot_id)
            .field("username", &self.username)
            .field("token", &"***")
            .finish()
    }
}

fn bot(r: &AnyRow) -> Result<SalonBot, StoreError> {
    Ok(SalonBot {
        partner_id: PartnerId(get(r, "partner_id")?),
        bot_id: get(r, "bot_id")?,
        username: get(r, "username")?,
        token: get(r, "token")?,
        webhook_secret: get(r, "webhook_secret")?,
    })
}

const COLUMNS: &str = "SELECT partner_id, bot_id, username, token, webhook_secret FROM salon_bots";

impl SqlStore {
    /// Sets the salon's bot (replacing the one it had). Another salon's bot is
    /// [`StoreError::Duplicate`].
    pub async fn set_salon_bot(&self, b: &SalonBot, now_ms: i64) -> Result<(), StoreError> {
        if let Some(other) = self.salon_bot_by_id(b.bot_id).await?
            && other.partner_id != b.partner_id
        {
            return Err(StoreError::Duplicate(format!(
                "bot @{} serves another salon",
                other.username
            )));
        }
        sqlx::query(
            "INSERT INTO salon_bots (partner_id, bot_id, username, token, webhook_secret, \
               created_at_ms) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (partner_id) DO UPDATE SET bot_id = excluded.bot_id, \
               username = excluded.username, token = excluded.token, \
               webhook_secret = excluded.webhook_secret, created_at_ms = excluded.created_at_ms",
        )
        .bind(b.partner_id.0)
        .bind(b.bot_id)
        .bind(b.username.as_str())
        .bind(b.token.as_str())
        .bind(b.webhook_secret.as_str())
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    /// Takes the salon's bot off; its clients' chats linked through it are forgotten (they
    /// link again through the deployment's bot). `None` when it had none.
    pub async fn remove_salon_bot(
        &self,
        partner: PartnerId,
    ) -> Result<Option<SalonBot>, StoreError> {
        let Some(found) = self.salon_bot(partner).await? else {
            return Ok(None);
        };
        let mut tx = self.begin_raw().await?;
        sqlx::query(
            "UPDATE clients SET telegram_chat_id = NULL, chat_bot_id = 0 \
             WHERE partner_id = $1 AND chat_bot_id = $2",
        )
        .bind(partner.0)
        .bind(found.bot_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query("DELETE FROM salon_bots WHERE partner_id = $1")
            .bind(partner.0)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some(found))
    }

    pub async fn salon_bot(&self, partner: PartnerId) -> Result<Option<SalonBot>, StoreError> {
        let sql = format!("{COLUMNS} WHERE partner_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(partner.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(|r| bot(&r))
            .transpose()
    }

    pub async fn salon_bot_by_id(&self, bot_id: i64) -> Result<Option<SalonBot>, StoreError> {
        let sql = format!("{COLUMNS} WHERE bot_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(bot_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(|r| bot(&r))
            .transpose()
    }

    pub async fn salon_bot_by_secret(&self, secret: &str) -> Result<Option<SalonBot>, StoreError> {
        let sql = format!("{COLUMNS} WHERE webhook_secret = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(secret)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(|r| bot(&r))
            .transpose()
    }

    /// Every salon's bot, by salon.
    pub async fn salon_bots(&self) -> Result<Vec<SalonBot>, StoreError> {
        let sql = format!("{COLUMNS} ORDER BY partner_id");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(bot)
            .collect()
    }
}
