//! Custom triggers (issue 18): what fired, once per trigger and event, written in the event's
//! transaction; the messages they queue, claimed by the gateway's worker for the delivery
//! policy; and the log a salon reads.

use async_trait::async_trait;
use loyalty_core::audit::Plan;
use loyalty_core::custom::{Fired, TriggerMessage};
use loyalty_core::hook::PartnerEvent;
use loyalty_core::{ClientId, ConnectionId, PartnerId, Points, StoreError, TriggerTx};
use serde::Serialize;
use sqlx::any::AnyRow;

use crate::audit::plan_from;
use crate::rows::get;
use crate::{SqlStore, SqlTx, db_err};

/// A trigger's message waiting for the delivery policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedTriggerMessage {
    pub id: i64,
    pub partner: PartnerId,
    pub client: ClientId,
    pub trigger: String,
    pub event_key: String,
    pub fired_at_ms: i64,
    pub message: TriggerMessage,
}

/// One firing, as the salon's log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FireRow {
    pub id: i64,
    pub trigger: String,
    pub event: String,
    pub event_key: String,
    pub client_id: ClientId,
    pub points: Points,
    pub record_id: Option<String>,
    pub fired_at_ms: i64,
    /// What became of its message: `pending`, `send`, `control`, `unreachable`,
    /// `no_consent`, `expired`; `None` when it has none.
    pub message: Option<String>,
    pub webhook: bool,
}

#[async_trait]
impl TriggerTx for SqlTx {
    async fn plan(&mut self, partner: PartnerId) -> Result<Plan, StoreError> {
        if let Some((p, plan)) = self.plan
            && p == partner
        {
            return Ok(plan);
        }
        let row = sqlx::query("SELECT plan FROM partners WHERE id = $1")
            .bind(partner.0)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(db_err)?
            .ok_or_else(|| StoreError::NotFound(format!("partner {partner}")))?;
        let plan = plan_from(&get::<String>(&row, "plan")?)?;
        self.plan = Some((partner, plan));
        Ok(plan)
    }

    async fn came_before(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        before_ms: i64,
        connection: ConnectionId,
        record_id: &str,
    ) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "SELECT MAX(visit_at_ms) AS at FROM crm_records WHERE partner_id = $1 \
             AND client_id = $2 AND status = 'came' AND visit_at_ms < $3 \
             AND NOT (connection_id = $4 AND record_id = $5)",
        )
        .bind(partner.0)
        .bind(client.0)
        .bind(before_ms)
        .bind(connection.0)
        .bind(record_id)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(db_err)?;
        get(&row, "at")
    }

    async fn fire_trigger(
        &mut self,
        partner: PartnerId,
        fired: &Fired,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let message = fired
            .message
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("trigger message: {e}")))?;
        let pending = message.as_ref().map(|_| "pending");
        let due = message.as_ref().map(|_| now_ms);
        let inserted = sqlx::query(
            "INSERT INTO trigger_fires (partner_id, trigger_name, event, event_key, client_id, \
             points, record_id, fired_at_ms, message, message_state, next_at_ms, webhook) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (partner_id, trigger_name, event_key) DO NOTHING",
        )
        .bind(partner.0)
        .bind(&fired.trigger)
        .bind(fired.when.as_str())
        .bind(&fired.event_key)
        .bind(fired.client_id.0)
        .bind(fired.points.0)
        .bind(fired.record_id.as_deref())
        .bind(now_ms)
        .bind(message.as_deref())
        .bind(pending)
        .bind(due)
        .bind(i64::from(fired.webhook))
        .execute(&mut *self.tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            > 0;
        if inserted && fired.webhook {
            self.emit(partner, &PartnerEvent::of_fired(fired), now_ms)
                .await?;
        }
        Ok(inserted)
    }
}

fn fire_row(r: &AnyRow) -> Result<FireRow, StoreError> {
    Ok(FireRow {
        id: get(r, "id")?,
        trigger: get(r, "trigger_name")?,
        event: get(r, "event")?,
        event_key: get(r, "event_key")?,
        client_id: ClientId(get(r, "client_id")?),
        points: Points(get(r, "points")?),
        record_id: get(r, "record_id")?,
        fired_at_ms: get(r, "fired_at_ms")?,
        message: get(r, "message_state")?,
        webhook: get::<i64>(r, "webhook")? != 0,
    })
}

impl SqlStore {
    /// Claims up to `limit` trigger messages due at `now_ms`, leased for `lease_ms` (another
    /// instance leaves them alone until then), oldest first.
    pub async fn claim_trigger_messages(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<QueuedTriggerMessage>, StoreError> {
        let sql = self.sql(
            "UPDATE trigger_fires SET next_at_ms = $2 WHERE id IN (SELECT id FROM trigger_fires \
             WHERE message_state = 'pending' AND next_at_ms <= $1 ORDER BY next_at_ms, id \
             LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING id, partner_id, client_id, trigger_name, event_key, fired_at_ms, message",
            "UPDATE trigger_fires SET next_at_ms = $2 WHERE id IN (SELECT id FROM trigger_fires \
             WHERE message_state = 'pending' AND next_at_ms <= $1 ORDER BY next_at_ms, id \
             LIMIT $3) \
             RETURNING id, partner_id, client_id, trigger_name, event_key, fired_at_ms, message",
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
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let text: String = get(r, "message")?;
            let message = serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("trigger message: {e}")))?;
            out.push(QueuedTriggerMessage {
                id: get(r, "id")?,
                partner: PartnerId(get(r, "partner_id")?),
                client: ClientId(get(r, "client_id")?),
                trigger: get(r, "trigger_name")?,
                event_key: get(r, "event_key")?,
                fired_at_ms: get(r, "fired_at_ms")?,
                message,
            });
        }
        out.sort_by_key(|m| m.id);
        Ok(out)
    }

    /// What the delivery policy made of a trigger's message: `state` (`send`, `control`,
    /// `unreachable`, `no_consent`, `expired`) ends it; `None` keeps it pending until
    /// `next_at_ms` (quiet hours, a cap).
    pub async fn trigger_message_decided(
        &self,
        id: i64,
        state: Option<&str>,
        next_at_ms: i64,
    ) -> Result<(), StoreError> {
        let query = match state {
            Some(state) => sqlx::query(
                "UPDATE trigger_fires SET message_state = $2, next_at_ms = NULL WHERE id = $1",
            )
            .bind(id)
            .bind(state),
            None => sqlx::query("UPDATE trigger_fires SET next_at_ms = $2 WHERE id = $1")
                .bind(id)
                .bind(next_at_ms),
        };
        query.execute(&self.pool).await.map_err(db_err)?;
        Ok(())
    }

    /// The partner's firings, newest first: a page below `before` (an id), when given.
    pub async fn trigger_fires(
        &self,
        partner: PartnerId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<FireRow>, StoreError> {
        sqlx::query(
            "SELECT id, trigger_name, event, event_key, client_id, points, record_id, \
             fired_at_ms, message_state, webhook FROM trigger_fires WHERE partner_id = $1 \
             AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(partner.0)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(fire_row)
        .collect()
    }
}
