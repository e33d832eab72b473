//! The gateway's own rows, beside the [`loyalty_core::Store`] trait: connection settings (API
//! credentials, the company's clock), rejected webhook deliveries and delivery retention.
//! Embedders that do not run the gateway never need them.

use std::fmt;

use loyalty_core::engine::CardStore;
use loyalty_core::{Client, ConnectionId, Country, CrmConnection, PartnerId, StoreError};
use serde::Serialize;

use crate::rows::{self, get};
use crate::{SqlStore, db_err};

/// How many rejected deliveries are kept; older ones are deleted as new ones arrive.
pub const REJECTED_KEPT: i64 = 1_000;

/// What the gateway needs to call a connection's CRM. `Debug` hides the tokens.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ConnectionSettings {
    pub partner_token: Option<String>,
    pub user_token: Option<String>,
    /// The company's offset from UTC, for CRM times sent without one.
    pub utc_offset_minutes: i32,
    /// How rewards are written into the CRM, as JSON the CRM's crate reads; `None`: the
    /// gateway's own codes.
    pub reward_setup: Option<String>,
    /// The location's country when it is not the partner's; `None`: the partner's.
    pub country: Option<Country>,
    /// People who join through the bot and whom the CRM does not know are created there.
    pub create_clients: bool,
    /// A CRM's own credentials beyond the YCLIENTS platform's tokens, as JSON (Arnica's login,
    /// Beauty Pro's application and database). Secret.
    pub crm_credentials: Option<String>,
}

impl ConnectionSettings {
    /// Whether the gateway can call the connection's CRM (tokens or credentials given).
    pub fn has_api(&self) -> bool {
        self.partner_token.is_some() || self.crm_credentials.is_some()
    }
}

/// Tokens a CRM handed out for a connection (JSON its wiring reads) and their version: a save
/// names the version it read, and loses to any save in between.
#[derive(Clone, PartialEq, Eq)]
pub struct CrmTokens {
    pub json: Option<String>,
    pub version: i64,
}

impl fmt::Debug for CrmTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrmTokens")
            .field("json", &self.json.as_ref().map(|_| "***"))
            .field("version", &self.version)
            .finish()
    }
}

impl fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hide = |t: &Option<String>| t.as_ref().map(|_| "***");
        f.debug_struct("ConnectionSettings")
            .field("partner_token", &hide(&self.partner_token))
            .field("user_token", &hide(&self.user_token))
            .field("utc_offset_minutes", &self.utc_offset_minutes)
            .field("reward_setup", &self.reward_setup)
            .field("country", &self.country)
            .field("create_clients", &self.create_clients)
            .field("crm_credentials", &hide(&self.crm_credentials))
            .finish()
    }
}

/// A webhook delivery answered with a 4xx, as kept for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedDelivery {
    pub partner_id: PartnerId,
    pub connection_id: ConnectionId,
    pub crm: String,
    pub http_status: u16,
    pub reason: String,
    pub content_type: Option<String>,
    /// The body's full size.
    pub body_bytes: i64,
    /// The start of the body, already redacted by the caller.
    pub body_excerpt: String,
    pub received_at_ms: i64,
}

impl SqlStore {
    pub async fn save_connection_settings(
        &self,
        connection: ConnectionId,
        settings: &ConnectionSettings,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO connection_settings (connection_id, partner_token, user_token, \
             utc_offset_minutes, reward_setup, country, create_clients, crm_credentials) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (connection_id) DO UPDATE \
             SET partner_token = excluded.partner_token, user_token = excluded.user_token, \
             utc_offset_minutes = excluded.utc_offset_minutes, \
             reward_setup = excluded.reward_setup, country = excluded.country, \
             create_clients = excluded.create_clients, \
             crm_credentials = excluded.crm_credentials",
        )
        .bind(connection.0)
        .bind(settings.partner_token.as_deref())
        .bind(settings.user_token.as_deref())
        .bind(settings.utc_offset_minutes)
        .bind(settings.reward_setup.as_deref())
        .bind(settings.country.as_ref().map(Country::as_str))
        .bind(i16::from(settings.create_clients))
        .bind(settings.crm_credentials.as_deref())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    /// The connection's settings; `None` for a connection made without the gateway.
    pub async fn connection_settings(
        &self,
        connection: ConnectionId,
    ) -> Result<Option<ConnectionSettings>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT partner_token, user_token, utc_offset_minutes, reward_setup, country, \
             create_clients, crm_credentials FROM connection_settings WHERE connection_id = $1",
        )
        .bind(connection.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        else {
            return Ok(None);
        };
        Ok(Some(ConnectionSettings {
            partner_token: get(&row, "partner_token")?,
            user_token: get(&row, "user_token")?,
            utc_offset_minutes: get(&row, "utc_offset_minutes")?,
            reward_setup: get(&row, "reward_setup")?,
            country: get::<Option<String>>(&row, "country")?
                .map(|c| Country::parse(&c).map_err(|e| StoreError::Corrupt(e.to_string())))
                .transpose()?,
            create_clients: get::<i16>(&row, "create_clients")? != 0,
            crm_credentials: get(&row, "crm_credentials")?,
        }))
    }

    /// The tokens the connection's CRM handed out, with their version (`None` and 0 before
    /// any).
    pub async fn crm_tokens(&self, connection: ConnectionId) -> Result<CrmTokens, StoreError> {
        let row = sqlx::query(
            "SELECT crm_tokens, tokens_version FROM connection_settings WHERE connection_id = $1",
        )
        .bind(connection.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(match row {
            Some(row) => CrmTokens {
                json: get(&row, "crm_tokens")?,
                version: get(&row, "tokens_version")?,
            },
            None => CrmTokens {
                json: None,
                version: 0,
            },
        })
    }

    /// Saves new tokens only if the stored ones are still at `read_version` (compare and set):
    /// `true` when saved, as version `read_version + 1`; `false` when another save came first
    /// (the caller reads the newer tokens and uses them).
    pub async fn swap_crm_tokens(
        &self,
        connection: ConnectionId,
        read_version: i64,
        json: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE connection_settings SET crm_tokens = $1, tokens_version = tokens_version + 1 \
             WHERE connection_id = $2 AND tokens_version = $3",
        )
        .bind(json)
        .bind(connection.0)
        .bind(read_version)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    /// Every connection of the deployment, by id.
    pub async fn connections(&self) -> Result<Vec<CrmConnection>, StoreError> {
        sqlx::query(
            "SELECT id, partner_id, kind, company_id, credentials_ref, webhook_secret, points_since_ms \
             FROM crm_connections ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::connection)
        .collect()
    }

    /// Where the partner's rewards are written: its first connection (by id) with a reward
    /// setup, and that setup's JSON.
    pub async fn reward_setup_of(
        &self,
        partner: PartnerId,
    ) -> Result<Option<(ConnectionId, String)>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT c.id, s.reward_setup FROM crm_connections c \
             JOIN connection_settings s ON s.connection_id = c.id \
             WHERE c.partner_id = $1 AND s.reward_setup IS NOT NULL ORDER BY c.id LIMIT 1",
        )
        .bind(partner.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        else {
            return Ok(None);
        };
        Ok(Some((
            ConnectionId(get(&row, "id")?),
            get(&row, "reward_setup")?,
        )))
    }

    /// Keeps a rejected delivery, dropping the oldest beyond [`REJECTED_KEPT`].
    pub async fn record_rejected(&self, r: &RejectedDelivery) -> Result<(), StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO rejected_deliveries (partner_id, connection_id, crm, http_status, \
             reason, content_type, body_bytes, body_excerpt, received_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(r.partner_id.0)
        .bind(r.connection_id.0)
        .bind(r.crm.as_str())
        .bind(i32::from(r.http_status))
        .bind(r.reason.as_str())
        .bind(r.content_type.as_deref())
        .bind(r.body_bytes)
        .bind(r.body_excerpt.as_str())
        .bind(r.received_at_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        sqlx::query("DELETE FROM rejected_deliveries WHERE id <= $1")
            .bind(id - REJECTED_KEPT)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// The latest rejected deliveries, newest first.
    pub async fn rejected_deliveries(
        &self,
        limit: u32,
    ) -> Result<Vec<RejectedDelivery>, StoreError> {
        self.rejected_of(None, limit).await
    }

    /// The latest refused deliveries, of one partner or of all.
    pub async fn rejected_of(
        &self,
        partner: Option<PartnerId>,
        limit: u32,
    ) -> Result<Vec<RejectedDelivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT partner_id, connection_id, crm, http_status, reason, content_type, \
             body_bytes, body_excerpt, received_at_ms FROM rejected_deliveries \
             WHERE ($2 = 0 OR partner_id = $2) ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .bind(partner.map_or(0, |p| p.0))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                let status: i32 = get(row, "http_status")?;
                Ok(RejectedDelivery {
                    partner_id: PartnerId(get(row, "partner_id")?),
                    connection_id: ConnectionId(get(row, "connection_id")?),
                    crm: get(row, "crm")?,
                    http_status: u16::try_from(status)
                        .map_err(|_| StoreError::Corrupt(format!("http_status {status}")))?,
                    reason: get(row, "reason")?,
                    content_type: get(row, "content_type")?,
                    body_bytes: get(row, "body_bytes")?,
                    body_excerpt: get(row, "body_excerpt")?,
                    received_at_ms: get(row, "received_at_ms")?,
                })
            })
            .collect()
    }

    /// Deletes the delivery log older than `before_ms`; returns how many rows went.
    pub async fn prune_deliveries(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM deliveries WHERE received_at_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}

#[async_trait::async_trait]
impl CardStore for SqlStore {
    async fn cards_to_create(&self, limit: u32) -> Result<Vec<(ConnectionId, Client)>, StoreError> {
        let rows = sqlx::query(
            "SELECT k.id AS connection_id, c.id, c.partner_id, c.phone, c.name, \
               c.telegram_chat_id, c.notifications_off, c.email, c.birth_date, c.level, \
               c.level_floor, c.level_since_ms \
             FROM clients c JOIN crm_connections k ON k.partner_id = c.partner_id \
             WHERE c.telegram_chat_id IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM client_external_ids x \
                             WHERE x.partner_id = c.partner_id AND x.client_id = c.id) \
             AND k.id = (SELECT MIN(k2.id) FROM crm_connections k2 \
                         JOIN connection_settings s2 ON s2.connection_id = k2.id \
                         WHERE k2.partner_id = c.partner_id AND s2.create_clients = 1) \
             ORDER BY c.id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| Ok((ConnectionId(get(r, "connection_id")?), rows::client(r)?)))
            .collect()
    }
}
