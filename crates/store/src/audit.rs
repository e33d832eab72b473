//! The audit log and plans on sqlx.

use async_trait::async_trait;
use loyalty_core::audit::{Actor, AuditAction, AuditEntry, AuditStore, AuditTx, Plan};
use loyalty_core::{PartnerId, StoreError};
use serde_json::Value;

use crate::rows::get;
use crate::{SqlStore, SqlTx, db_err};

/// Appends one line to the log, on the pool or inside a transaction.
pub(crate) async fn append<'e, E>(
    executor: E,
    partner: PartnerId,
    actor: &Actor,
    action: AuditAction,
    detail: &Value,
    at_ms: i64,
) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO audit_log (partner_id, actor, via, action, detail, at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(partner.0)
    .bind(actor.name.as_str())
    .bind(actor.via.as_str())
    .bind(action.as_str())
    .bind(detail.to_string())
    .bind(at_ms)
    .execute(executor)
    .await
    .map_err(db_err)?;
    Ok(())
}

impl SqlStore {
    /// Appends one line to the audit log on its own, for what changes nothing else (an
    /// export of personal data).
    pub async fn audit_now(
        &self,
        partner: PartnerId,
        actor: &Actor,
        action: AuditAction,
        detail: &Value,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        append(&self.pool, partner, actor, action, detail, at_ms).await
    }
}

pub(crate) fn plan_from(text: &str) -> Result<Plan, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("plan {text:?}")))
}

#[async_trait]
impl AuditTx for SqlTx {
    async fn audit(
        &mut self,
        partner: PartnerId,
        actor: &Actor,
        action: AuditAction,
        detail: &Value,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        append(&mut *self.tx, partner, actor, action, detail, at_ms).await
    }
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn audit_log(
        &self,
        partner: PartnerId,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, actor, via, action, detail, at_ms FROM audit_log \
             WHERE partner_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(partner.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let action: String = get(r, "action")?;
                let detail: String = get(r, "detail")?;
                Ok(AuditEntry {
                    id: get(r, "id")?,
                    actor: Actor::new(get::<String>(r, "actor")?, get::<String>(r, "via")?),
                    action: AuditAction::parse(&action)
                        .ok_or_else(|| StoreError::Corrupt(format!("audit action {action:?}")))?,
                    detail: serde_json::from_str(&detail)
                        .map_err(|e| StoreError::Corrupt(format!("audit detail: {e}")))?,
                    at_ms: get(r, "at_ms")?,
                })
            })
            .collect()
    }

    async fn set_plan(
        &self,
        partner: PartnerId,
        plan: Plan,
        actor: &Actor,
        at_ms: i64,
    ) -> Result<Plan, StoreError> {
        let mut tx = self.begin_raw().await?;
        let before: String = sqlx::query_scalar("SELECT plan FROM partners WHERE id = $1")
            .bind(partner.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .ok_or_else(|| StoreError::NotFound(format!("partner {partner}")))?;
        let before = plan_from(&before)?;
        sqlx::query("UPDATE partners SET plan = $2 WHERE id = $1")
            .bind(partner.0)
            .bind(plan.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let detail = serde_json::json!({ "from": before.as_str(), "to": plan.as_str() });
        append(
            &mut *tx,
            partner,
            actor,
            AuditAction::PlanChanged,
            &detail,
            at_ms,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(before)
    }
}
