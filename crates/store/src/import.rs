//! [`ImportStore`]: history import jobs (`import_jobs`) and the connections' points boundary.

use async_trait::async_trait;
use loyalty_core::import::{ImportJob, ImportPhase, ImportStore, NewImport};
use loyalty_core::{ConnectionId, PartnerId, StoreError};
use sqlx::any::AnyRow;

use crate::rows::get;
use crate::{SqlStore, db_err};

macro_rules! job_columns {
    () => {
        "id, partner_id, connection_id, phase, next_page, since_ms, until_ms, accrue_since_ms, \
         clients_seen, records_seen, records_applied, records_queued, errors, last_error, \
         total_clients, total_records, created_at_ms, updated_at_ms, finished_at_ms"
    };
}

fn job(row: &AnyRow) -> Result<ImportJob, StoreError> {
    let phase: String = get(row, "phase")?;
    let page: i32 = get(row, "next_page")?;
    let total = |col: &str| -> Result<Option<u64>, StoreError> {
        Ok(get::<Option<i64>>(row, col)?.and_then(|t| u64::try_from(t).ok()))
    };
    Ok(ImportJob {
        id: get(row, "id")?,
        partner_id: PartnerId(get(row, "partner_id")?),
        connection_id: ConnectionId(get(row, "connection_id")?),
        phase: ImportPhase::parse(&phase)
            .ok_or_else(|| StoreError::Corrupt(format!("import phase {phase:?}")))?,
        next_page: u32::try_from(page).unwrap_or(0),
        since_ms: get(row, "since_ms")?,
        until_ms: get(row, "until_ms")?,
        accrue_since_ms: get(row, "accrue_since_ms")?,
        clients_seen: get(row, "clients_seen")?,
        records_seen: get(row, "records_seen")?,
        records_applied: get(row, "records_applied")?,
        records_queued: get(row, "records_queued")?,
        errors: get(row, "errors")?,
        last_error: get(row, "last_error")?,
        total_clients: total("total_clients")?,
        total_records: total("total_records")?,
        created_at_ms: get(row, "created_at_ms")?,
        updated_at_ms: get(row, "updated_at_ms")?,
        finished_at_ms: get(row, "finished_at_ms")?,
    })
}

#[async_trait]
impl ImportStore for SqlStore {
    async fn queue_import(&self, new: &NewImport, now_ms: i64) -> Result<ImportJob, StoreError> {
        let mut tx = self.begin_raw().await?;
        let open = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM import_jobs WHERE connection_id = $1 AND phase <> 'done' ORDER BY id LIMIT 1"
        ))
        .bind(new.connection_id.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        if let Some(row) = open {
            tx.commit().await.map_err(db_err)?;
            return job(&row);
        }
        // No points for the past: by default the boundary is a day before the salon
        // connected (visits being closed as it connects still earn).
        let row = sqlx::query(concat!(
            "INSERT INTO import_jobs (partner_id, connection_id, phase, next_page, since_ms, \
               until_ms, accrue_since_ms, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, 'clients', 1, $3, $4, \
               COALESCE($5, (SELECT created_at_ms - 86400000 FROM crm_connections \
                             WHERE id = $2)), $6, $6) \
             RETURNING ",
            job_columns!()
        ))
        .bind(new.partner_id.0)
        .bind(new.connection_id.0)
        .bind(new.since_ms)
        .bind(new.until_ms)
        .bind(new.accrue_since_ms)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let queued = job(&row)?;
        // The boundary is in force from now on, before the import runs.
        sqlx::query("UPDATE crm_connections SET points_since_ms = $2 WHERE id = $1")
            .bind(new.connection_id.0)
            .bind(queued.accrue_since_ms)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(queued)
    }

    async fn lease_import(
        &self,
        job_id: Option<i64>,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Option<ImportJob>, StoreError> {
        let mut tx = self.begin_raw().await?;
        let candidate: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM import_jobs WHERE phase <> 'done' \
             AND (CAST($1 AS BIGINT) IS NULL OR id = $1) \
             AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until_ms < $3) \
             ORDER BY id LIMIT 1",
        )
        .bind(job_id)
        .bind(owner)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(id) = candidate else {
            tx.commit().await.map_err(db_err)?;
            return Ok(None);
        };
        let row = sqlx::query(concat!(
            "UPDATE import_jobs SET lease_owner = $2, lease_until_ms = $3 WHERE id = $1 \
             AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until_ms < $4) RETURNING ",
            job_columns!()
        ))
        .bind(id)
        .bind(owner)
        .bind(lease_until_ms)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        row.map(|r| job(&r)).transpose()
    }

    async fn save_import(
        &self,
        j: &ImportJob,
        owner: &str,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let to_i64 = |t: Option<u64>| t.and_then(|t| i64::try_from(t).ok());
        let done = sqlx::query(
            "UPDATE import_jobs SET phase = $3, next_page = $4, clients_seen = $5, \
               records_seen = $6, records_applied = $7, records_queued = $8, errors = $9, \
               last_error = $10, total_clients = $11, total_records = $12, updated_at_ms = $13, \
               finished_at_ms = $14, lease_until_ms = $15 \
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(j.id)
        .bind(owner)
        .bind(j.phase.as_str())
        .bind(i64::from(j.next_page))
        .bind(j.clients_seen)
        .bind(j.records_seen)
        .bind(j.records_applied)
        .bind(j.records_queued)
        .bind(j.errors)
        .bind(j.last_error.as_deref())
        .bind(to_i64(j.total_clients))
        .bind(to_i64(j.total_records))
        .bind(j.updated_at_ms)
        .bind(j.finished_at_ms)
        .bind(lease_until_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn release_import(&self, job_id: i64, owner: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE import_jobs SET lease_owner = NULL, lease_until_ms = NULL \
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(job_id)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn imports(
        &self,
        connection: Option<ConnectionId>,
    ) -> Result<Vec<ImportJob>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM import_jobs WHERE (CAST($1 AS BIGINT) IS NULL OR connection_id = $1) \
             ORDER BY id DESC"
        ))
        .bind(connection.map(|c| c.0))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(job)
        .collect()
    }

    async fn set_points_since(
        &self,
        connection: ConnectionId,
        points_since_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE crm_connections SET points_since_ms = $2 WHERE id = $1")
            .bind(connection.0)
            .bind(points_since_ms)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
