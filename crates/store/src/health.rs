//! [`HealthStore`]: connection incidents (`connection_incidents`), the staff chats' message
//! queue (`staff_messages`) and when each connection's last webhook arrived.

use async_trait::async_trait;
use loyalty_core::health::{HealthStore, Incident, IncidentRow, StaffMessage, StaffNotice};
use loyalty_core::{ConnectionId, PartnerId, StoreError};
use sqlx::any::AnyRow;

use crate::rows::get;
use crate::{SqlStore, db_err};

fn incident(row: &AnyRow) -> Result<IncidentRow, StoreError> {
    let kind: String = get(row, "kind")?;
    Ok(IncidentRow {
        id: get(row, "id")?,
        connection_id: ConnectionId(get(row, "connection_id")?),
        partner_id: PartnerId(get(row, "partner_id")?),
        incident: Incident::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("incident kind {kind:?}")))?,
        detail: get(row, "detail")?,
        opened_at_ms: get(row, "opened_at_ms")?,
        closed_at_ms: get(row, "closed_at_ms")?,
    })
}

fn staff_message(row: &AnyRow) -> Result<StaffMessage, StoreError> {
    let payload: String = get(row, "payload")?;
    Ok(StaffMessage {
        id: get(row, "id")?,
        partner_id: PartnerId(get(row, "partner_id")?),
        chat_id: get(row, "chat_id")?,
        notice: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("staff message payload: {e}")))?,
        attempts: get(row, "attempts")?,
    })
}

fn payload(notice: &StaffNotice) -> Result<String, StoreError> {
    serde_json::to_string(notice).map_err(|e| StoreError::Corrupt(format!("staff notice: {e}")))
}

/// Queues `notice` for every staff chat of `partner`, in `tx`.
async fn tell_staff(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    partner: PartnerId,
    notice: &StaffNotice,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO staff_messages (partner_id, chat_id, payload, status, run_at_ms, \
         created_at_ms) SELECT partner_id, chat_id, $2, 'pending', $3, $3 FROM staff_chats \
         WHERE partner_id = $1",
    )
    .bind(partner.0)
    .bind(payload(notice)?)
    .bind(now_ms)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl HealthStore for SqlStore {
    async fn open_incident(
        &self,
        partner: PartnerId,
        connection: ConnectionId,
        kind: Incident,
        detail: &str,
        notice: &StaffNotice,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_raw().await?;
        // The partial unique index keeps one open incident per connection and kind, whichever
        // instance gets here first.
        let opened = sqlx::query(
            "INSERT INTO connection_incidents (connection_id, partner_id, kind, detail, \
             opened_at_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (connection_id, kind) WHERE closed_at_ms IS NULL DO NOTHING",
        )
        .bind(connection.0)
        .bind(partner.0)
        .bind(kind.as_str())
        .bind(detail)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            == 1;
        if opened {
            tell_staff(&mut tx, partner, notice, now_ms).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(opened)
    }

    async fn close_incident(
        &self,
        connection: ConnectionId,
        kind: Incident,
        notice: &StaffNotice,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_raw().await?;
        let closed: Option<i64> = sqlx::query_scalar(
            "UPDATE connection_incidents SET closed_at_ms = $3 \
             WHERE connection_id = $1 AND kind = $2 AND closed_at_ms IS NULL RETURNING partner_id",
        )
        .bind(connection.0)
        .bind(kind.as_str())
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        if let Some(partner) = closed {
            tell_staff(&mut tx, PartnerId(partner), notice, now_ms).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(closed.is_some())
    }

    async fn incidents(
        &self,
        connection: Option<ConnectionId>,
        closed_too: bool,
    ) -> Result<Vec<IncidentRow>, StoreError> {
        sqlx::query(
            "SELECT id, connection_id, partner_id, kind, detail, opened_at_ms, closed_at_ms \
             FROM connection_incidents \
             WHERE (CAST($1 AS BIGINT) IS NULL OR connection_id = $1) \
             AND ($2 = 1 OR closed_at_ms IS NULL) ORDER BY id DESC LIMIT 200",
        )
        .bind(connection.map(|c| c.0))
        .bind(i32::from(closed_too))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(incident)
        .collect()
    }

    async fn claim_staff_messages(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<StaffMessage>, StoreError> {
        let sql = self.sql(
            "UPDATE staff_messages SET run_at_ms = $2, attempts = attempts + 1 WHERE id IN ( \
               SELECT id FROM staff_messages WHERE status = 'pending' AND run_at_ms <= $1 \
               ORDER BY run_at_ms, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING id, partner_id, chat_id, payload, attempts",
            "UPDATE staff_messages SET run_at_ms = $2, attempts = attempts + 1 WHERE id IN ( \
               SELECT id FROM staff_messages WHERE status = 'pending' AND run_at_ms <= $1 \
               ORDER BY run_at_ms, id LIMIT $3) \
             RETURNING id, partner_id, chat_id, payload, attempts",
        );
        let mut tx = self.begin_raw().await?;
        let rows = sqlx::query(sql)
            .bind(now_ms)
            .bind(now_ms.saturating_add(lease_ms))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        let mut claimed = rows
            .iter()
            .map(staff_message)
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|m| m.id);
        Ok(claimed)
    }

    async fn staff_message_sent(&self, id: i64, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE staff_messages SET status = 'sent', sent_at_ms = $2, last_error = NULL \
             WHERE id = $1",
        )
        .bind(id)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn staff_message_failed(
        &self,
        id: i64,
        retry_at_ms: Option<i64>,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE staff_messages SET \
               status = CASE WHEN CAST($2 AS BIGINT) IS NULL THEN 'dead' ELSE status END, \
               run_at_ms = COALESCE(CAST($2 AS BIGINT), run_at_ms), last_error = $3 \
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(retry_at_ms)
        .bind(error)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn note_webhook(
        &self,
        partner: PartnerId,
        connection: ConnectionId,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sync_cursors (connection_id, partner_id, last_webhook_ms) \
             VALUES ($1, $2, $3) ON CONFLICT (connection_id) DO UPDATE SET last_webhook_ms = \
               CASE WHEN sync_cursors.last_webhook_ms IS NULL \
                      OR sync_cursors.last_webhook_ms < excluded.last_webhook_ms \
                    THEN excluded.last_webhook_ms ELSE sync_cursors.last_webhook_ms END",
        )
        .bind(connection.0)
        .bind(partner.0)
        .bind(at_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn dead_letters(&self) -> Result<Vec<(ConnectionId, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT connection_id, COUNT(*) AS n FROM crm_inbox WHERE dead = 1 \
             GROUP BY connection_id ORDER BY connection_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| Ok((ConnectionId(get(r, "connection_id")?), get::<i64>(r, "n")?)))
            .collect()
    }
}

impl SqlStore {
    /// When each connection was added.
    pub async fn connections_added(&self) -> Result<Vec<(ConnectionId, i64)>, StoreError> {
        let rows = sqlx::query("SELECT id, created_at_ms FROM crm_connections ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| Ok((ConnectionId(get(r, "id")?), get::<i64>(r, "created_at_ms")?)))
            .collect()
    }
}
