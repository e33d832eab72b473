//! [`QuotaStore`]: the shared CRM budget (`crm_budget_*`), decided in one transaction per
//! budget: an advisory lock on PostgreSQL, the write lock on SQLite.

use async_trait::async_trait;
use loyalty_core::quota::{Grant, Limits, Priority, QuotaStore};
use loyalty_core::{ConnectionId, StoreError};

use crate::rows::get;
use crate::{Backend, SqlStore, db_err};

/// How long after leaving the windows a call's row is kept (for round robin and `budget_calls`).
const KEEP_MS: i64 = 120_000;

#[async_trait]
impl QuotaStore for SqlStore {
    async fn join_budget(
        &self,
        budget: &str,
        priority: Priority,
        connection: Option<ConnectionId>,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO crm_budget_waiters (budget, priority, connection_id, joined_ms, seen_ms) \
             VALUES ($1, $2, $3, $4, $4) RETURNING id",
        )
        .bind(budget)
        .bind(priority.as_i16())
        .bind(connection.map(|c| c.0))
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn try_grant(
        &self,
        budget: &str,
        waiter: i64,
        limits: &Limits,
        now_ms: i64,
        stale_ms: i64,
    ) -> Result<Grant, StoreError> {
        let mut tx = self.begin_raw().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(budget)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        sqlx::query("DELETE FROM crm_budget_waiters WHERE budget = $1 AND seen_ms < $2")
            .bind(budget)
            .bind(now_ms - stale_ms)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let me = sqlx::query(
            "UPDATE crm_budget_waiters SET seen_ms = $2 WHERE id = $1 \
             RETURNING connection_id, priority",
        )
        .bind(waiter)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("budget waiter {waiter}")))?;
        let connection: Option<i64> = get(&me, "connection_id")?;
        let priority: i16 = get(&me, "priority")?;

        let paused: Option<i64> =
            sqlx::query_scalar("SELECT until_ms FROM crm_budget_pauses WHERE budget = $1")
                .bind(budget)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        let wait = |tx: sqlx::Transaction<'static, sqlx::Any>, ms: i64| async move {
            tx.commit().await.map_err(db_err)?;
            Ok(Grant::Wait { ms: ms.max(1) })
        };
        if let Some(until) = paused.filter(|u| *u > now_ms) {
            return wait(tx, until - now_ms).await;
        }
        let calls: Vec<i64> = sqlx::query_scalar(
            "SELECT started_ms FROM crm_budget_calls WHERE budget = $1 AND started_ms > $2",
        )
        .bind(budget)
        .bind(now_ms - limits.horizon_ms())
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let urgency = match priority {
            0 => Priority::Live,
            1 => Priority::WriteBack,
            2 => Priority::Poll,
            _ => Priority::Import,
        };
        let next = limits.next_start_for(urgency, &calls, now_ms);
        if next > now_ms {
            return wait(tx, next - now_ms).await;
        }
        // The queue in the order calls are given: priority, then the connection served longest
        // ago, then arrival. A waiter further back sleeps about as long as the calls ahead take.
        // "Longest ago" is by the order of grants (ids), not their times: grants made as a window
        // opens can share a millisecond, and a tie would fall to arrival, serving the earlier
        // connection twice in a row.
        let queue: Vec<i64> = sqlx::query_scalar(
            "SELECT w.id FROM crm_budget_waiters w WHERE w.budget = $1 \
             ORDER BY w.priority, \
               COALESCE((SELECT MAX(c.id) FROM crm_budget_calls c \
                         WHERE c.budget = w.budget AND c.connection_id = w.connection_id), 0), \
               w.joined_ms, w.id \
             LIMIT 200",
        )
        .bind(budget)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        match queue.iter().position(|w| *w == waiter) {
            Some(0) => {}
            ahead => {
                let ahead = ahead.unwrap_or(queue.len()) as i64;
                return wait(tx, (ahead * limits.spacing_ms()).clamp(20, 2_000)).await;
            }
        }
        sqlx::query(
            "INSERT INTO crm_budget_calls (budget, started_ms, connection_id, priority) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(budget)
        .bind(now_ms)
        .bind(connection)
        .bind(priority)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query("DELETE FROM crm_budget_waiters WHERE id = $1")
            .bind(waiter)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("DELETE FROM crm_budget_calls WHERE budget = $1 AND started_ms < $2")
            .bind(budget)
            .bind(now_ms - limits.horizon_ms() - KEEP_MS)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Grant::Go)
    }

    async fn leave_budget(&self, waiter: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM crm_budget_waiters WHERE id = $1")
            .bind(waiter)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn pause_budget(&self, budget: &str, until_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO crm_budget_pauses (budget, until_ms) VALUES ($1, $2) \
             ON CONFLICT (budget) DO UPDATE SET until_ms = \
               CASE WHEN excluded.until_ms > crm_budget_pauses.until_ms \
                    THEN excluded.until_ms ELSE crm_budget_pauses.until_ms END",
        )
        .bind(budget)
        .bind(until_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn budget_calls(
        &self,
        budget: &str,
        since_ms: i64,
    ) -> Result<Vec<(i64, Option<ConnectionId>, i16)>, StoreError> {
        let rows = sqlx::query(
            "SELECT started_ms, connection_id, priority FROM crm_budget_calls \
             WHERE budget = $1 AND started_ms >= $2 ORDER BY started_ms, id",
        )
        .bind(budget)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    get(r, "started_ms")?,
                    get::<Option<i64>>(r, "connection_id")?.map(ConnectionId),
                    get(r, "priority")?,
                ))
            })
            .collect()
    }
}
