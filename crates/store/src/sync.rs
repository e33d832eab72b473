//! [`SyncStore`]: the reconciliation poller's cursors (`sync_cursors`).

use async_trait::async_trait;
use loyalty_core::sync::{PollReport, SyncCursor, SyncStore};
use loyalty_core::{ConnectionId, PartnerId, StoreError};
use sqlx::any::AnyRow;

use crate::rows::get;
use crate::{SqlStore, db_err};

macro_rules! cursor_columns {
    () => {
        "connection_id, partner_id, cursor_ms, last_started_ms, last_finished_ms, seen, applied, \
         queued, errors, last_error, interval_s, last_webhook_ms, last_found_ms"
    };
}

fn cursor(row: &AnyRow) -> Result<SyncCursor, StoreError> {
    let interval: Option<i32> = get(row, "interval_s")?;
    Ok(SyncCursor {
        connection_id: ConnectionId(get(row, "connection_id")?),
        partner_id: PartnerId(get(row, "partner_id")?),
        cursor_ms: get(row, "cursor_ms")?,
        last_started_ms: get(row, "last_started_ms")?,
        last_finished_ms: get(row, "last_finished_ms")?,
        seen: get(row, "seen")?,
        applied: get(row, "applied")?,
        queued: get(row, "queued")?,
        errors: get(row, "errors")?,
        last_error: get(row, "last_error")?,
        interval_s: interval.and_then(|i| u32::try_from(i).ok()),
        last_webhook_ms: get(row, "last_webhook_ms")?,
        last_found_ms: get(row, "last_found_ms")?,
    })
}

#[async_trait]
impl SyncStore for SqlStore {
    async fn lease_poll(
        &self,
        partner: PartnerId,
        connection: ConnectionId,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Option<SyncCursor>, StoreError> {
        let mut tx = self.begin_raw().await?;
        sqlx::query(
            "INSERT INTO sync_cursors (connection_id, partner_id) VALUES ($1, $2) \
             ON CONFLICT (connection_id) DO NOTHING",
        )
        .bind(connection.0)
        .bind(partner.0)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let row = sqlx::query(concat!(
            "UPDATE sync_cursors SET lease_owner = $2, lease_until_ms = $4, last_started_ms = $3 \
             WHERE connection_id = $1 \
             AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until_ms < $3) RETURNING ",
            cursor_columns!()
        ))
        .bind(connection.0)
        .bind(owner)
        .bind(now_ms)
        .bind(lease_until_ms)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        row.map(|r| cursor(&r)).transpose()
    }

    async fn finish_poll(
        &self,
        connection: ConnectionId,
        owner: &str,
        report: &PollReport,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sync_cursors SET \
               cursor_ms = CASE WHEN $3 = 1 THEN $4 ELSE cursor_ms END, \
               last_finished_ms = $5, seen = $6, applied = $7, queued = $8, errors = $9, \
               last_error = $10, lease_owner = NULL, lease_until_ms = NULL, \
               last_found_ms = CASE WHEN $7 > 0 THEN $5 ELSE last_found_ms END \
             WHERE connection_id = $1 AND lease_owner = $2",
        )
        .bind(connection.0)
        .bind(owner)
        .bind(i32::from(report.complete))
        .bind(report.started_ms)
        .bind(report.finished_ms)
        .bind(report.seen)
        .bind(report.applied)
        .bind(report.queued)
        .bind(report.errors)
        .bind(report.last_error.as_deref())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn sync_cursors(
        &self,
        connection: Option<ConnectionId>,
    ) -> Result<Vec<SyncCursor>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            cursor_columns!(),
            " FROM sync_cursors WHERE (CAST($1 AS BIGINT) IS NULL OR connection_id = $1) \
             ORDER BY connection_id"
        ))
        .bind(connection.map(|c| c.0))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(cursor)
        .collect()
    }

    async fn set_poll_interval(
        &self,
        partner: PartnerId,
        connection: ConnectionId,
        interval_s: Option<u32>,
    ) -> Result<(), StoreError> {
        let interval = interval_s.map(|s| i64::from(s.min(i32::MAX as u32)));
        sqlx::query(
            "INSERT INTO sync_cursors (connection_id, partner_id, interval_s) VALUES ($1, $2, $3) \
             ON CONFLICT (connection_id) DO UPDATE SET interval_s = excluded.interval_s",
        )
        .bind(connection.0)
        .bind(partner.0)
        .bind(interval)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}
