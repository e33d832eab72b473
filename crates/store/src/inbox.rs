//! [`IntakeStore`]: the CRM inbox (`crm_inbox`) and the credit question that decides whether
//! a settled bill is worth asking the CRM about.

use async_trait::async_trait;
use loyalty_core::event::CrmEvent;
use loyalty_core::inbox::{InboxItem, InboxStats, IntakeStore, Source};
use loyalty_core::{ConnectionId, PartnerId, Phone, StoreError};
use sqlx::any::AnyRow;

use crate::rows::get;
use crate::{SqlStore, db_err};

macro_rules! inbox_columns {
    () => {
        "id, partner_id, connection_id, event, source, attempts, next_at_ms, last_error, dead, \
         received_at_ms"
    };
}

macro_rules! claim_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE crm_inbox SET attempts = attempts + 1, next_at_ms = $3, leased = 1 \
             WHERE id IN (SELECT id FROM crm_inbox WHERE dead = 0 AND next_at_ms <= $1 \
                          ORDER BY next_at_ms, id LIMIT $2",
            $lock,
            ") RETURNING ",
            inbox_columns!()
        )
    };
}

fn item(row: &AnyRow) -> Result<InboxItem, StoreError> {
    let event: String = get(row, "event")?;
    let source: String = get(row, "source")?;
    let attempts: i32 = get(row, "attempts")?;
    let dead: i16 = get(row, "dead")?;
    Ok(InboxItem {
        id: get(row, "id")?,
        partner_id: PartnerId(get(row, "partner_id")?),
        connection_id: ConnectionId(get(row, "connection_id")?),
        event: serde_json::from_str::<CrmEvent>(&event)
            .map_err(|e| StoreError::Corrupt(format!("inbox event: {e}")))?,
        source: Source::parse(&source)
            .ok_or_else(|| StoreError::Corrupt(format!("inbox source {source:?}")))?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_at_ms: get(row, "next_at_ms")?,
        last_error: get(row, "last_error")?,
        received_at_ms: get(row, "received_at_ms")?,
        dead: dead != 0,
    })
}

#[async_trait]
impl IntakeStore for SqlStore {
    async fn enqueue_inbox(
        &self,
        partner: PartnerId,
        connection: ConnectionId,
        event: &CrmEvent,
        source: Source,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let json = serde_json::to_string(event)
            .map_err(|e| StoreError::Backend(format!("event to JSON: {e}")))?;
        sqlx::query_scalar(
            "INSERT INTO crm_inbox (partner_id, connection_id, event, source, next_at_ms, \
             received_at_ms) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
        )
        .bind(partner.0)
        .bind(connection.0)
        .bind(json)
        .bind(source.as_str())
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn claim_inbox(
        &self,
        now_ms: i64,
        limit: u32,
        lease_until_ms: i64,
    ) -> Result<Vec<InboxItem>, StoreError> {
        let sql = self.sql(claim_sql!(" FOR UPDATE SKIP LOCKED"), claim_sql!(""));
        let mut tx = self.begin_raw().await?;
        let rows = sqlx::query(sql)
            .bind(now_ms)
            .bind(i64::from(limit))
            .bind(lease_until_ms)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        let mut items = rows.iter().map(item).collect::<Result<Vec<_>, _>>()?;
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    async fn inbox_done(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM crm_inbox WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn inbox_renew(&self, ids: &[i64], lease_until_ms: i64) -> Result<(), StoreError> {
        // A few dozen ids every few seconds: one statement each, in one transaction.
        let mut tx = self.begin_raw().await?;
        for id in ids {
            sqlx::query("UPDATE crm_inbox SET next_at_ms = $2 WHERE id = $1 AND leased = 1")
                .bind(id)
                .bind(lease_until_ms)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn inbox_wake_connection(
        &self,
        connection: ConnectionId,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        // Only items waiting out a back-off: a leased one is being worked on.
        let done = sqlx::query(
            "UPDATE crm_inbox SET next_at_ms = $2 WHERE connection_id = $1 AND dead = 0 \
             AND leased = 0 AND next_at_ms > $2",
        )
        .bind(connection.0)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn inbox_failed(
        &self,
        id: i64,
        error: &str,
        retry_at_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let error: String = error.chars().take(1_000).collect();
        sqlx::query(
            "UPDATE crm_inbox SET last_error = $2, dead = $3, leased = 0, \
             next_at_ms = COALESCE($4, next_at_ms) WHERE id = $1",
        )
        .bind(id)
        .bind(error)
        .bind(i16::from(retry_at_ms.is_none()))
        .bind(retry_at_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn inbox_replay(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE crm_inbox SET dead = 0, leased = 0, attempts = 0, next_at_ms = $2 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn inbox_items(&self, dead: bool, limit: u32) -> Result<Vec<InboxItem>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            inbox_columns!(),
            " FROM crm_inbox WHERE dead = $1 ORDER BY id LIMIT $2"
        ))
        .bind(i16::from(dead))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(item)
        .collect()
    }

    async fn inbox_stats(&self) -> Result<InboxStats, StoreError> {
        let row = sqlx::query(
            "SELECT SUM(CASE WHEN dead = 0 THEN 1 ELSE 0 END) AS queued, \
             MIN(CASE WHEN dead = 0 THEN received_at_ms END) AS oldest, \
             SUM(CASE WHEN dead = 1 THEN 1 ELSE 0 END) AS dead FROM crm_inbox",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(InboxStats {
            queued: get::<Option<i64>>(&row, "queued")?.unwrap_or(0),
            oldest_received_at_ms: get(&row, "oldest")?,
            dead: get::<Option<i64>>(&row, "dead")?.unwrap_or(0),
        })
    }

    async fn holds_crm_credit(
        &self,
        partner: PartnerId,
        connection: ConnectionId,
        external_id: Option<&str>,
        phone: Option<&Phone>,
        used_since_ms: i64,
    ) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT r.id FROM redemptions r WHERE r.partner_id = $1 AND r.client_id IN ( \
               SELECT e.client_id FROM client_external_ids e \
               WHERE e.partner_id = $1 AND e.connection_id = $2 AND e.external_id = $3 \
               UNION ALL SELECT c.id FROM clients c WHERE c.partner_id = $1 AND c.phone = $4) \
             AND ((r.strategy = 'loyalty_card' AND r.status IN ('pending', 'issued', 'used')) \
               OR (r.strategy = 'crm_certificate' AND (r.status IN ('pending', 'issued') \
                   OR (r.status = 'used' AND r.updated_at_ms >= $5)))) \
             LIMIT 1",
        )
        .bind(partner.0)
        .bind(connection.0)
        .bind(external_id)
        .bind(phone.map(Phone::as_str))
        .bind(used_since_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(found.is_some())
    }
}
