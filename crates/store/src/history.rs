//! [`HistoryStore`]: the visit history as the engine wrote it in `crm_records`, and the
//! clients' summaries.

use async_trait::async_trait;
use loyalty_core::event::{VisitLine, VisitStatus};
use loyalty_core::history::{ClientSummary, HistoryStore, Visit};
use loyalty_core::inbox::Source;
use loyalty_core::{ClientId, ConnectionId, PartnerId, StoreError};
use sqlx::any::AnyRow;

use crate::rows::get;
use crate::{SqlStore, db_err};

macro_rules! visit_columns {
    () => {
        "partner_id, connection_id, record_id, client_id, visit_at_ms, status, staff_id, \
         staff_name, paid_minor, loyalty_paid_minor, lines, source, updated_at_ms"
    };
}

fn visit(row: &AnyRow) -> Result<Visit, StoreError> {
    let status: String = get(row, "status")?;
    let lines: Option<String> = get(row, "lines")?;
    let source: Option<String> = get(row, "source")?;
    Ok(Visit {
        partner_id: PartnerId(get(row, "partner_id")?),
        connection_id: ConnectionId(get(row, "connection_id")?),
        record_id: get(row, "record_id")?,
        client_id: get::<Option<i64>>(row, "client_id")?.map(ClientId),
        visit_at_ms: get(row, "visit_at_ms")?,
        status: VisitStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("record status {status:?}")))?,
        staff_id: get(row, "staff_id")?,
        staff_name: get(row, "staff_name")?,
        paid_minor: get(row, "paid_minor")?,
        loyalty_paid_minor: get(row, "loyalty_paid_minor")?,
        lines: match lines {
            Some(json) => serde_json::from_str::<Vec<VisitLine>>(&json)
                .map_err(|e| StoreError::Corrupt(format!("visit lines: {e}")))?,
            None => Vec::new(),
        },
        source: source
            .as_deref()
            .and_then(Source::parse)
            .unwrap_or(Source::Webhook),
        updated_at_ms: get(row, "updated_at_ms")?,
    })
}

#[async_trait]
impl HistoryStore for SqlStore {
    async fn visits_of(
        &self,
        partner: PartnerId,
        client: ClientId,
        limit: u32,
    ) -> Result<Vec<Visit>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            visit_columns!(),
            " FROM crm_records WHERE partner_id = $1 AND client_id = $2 AND status IS NOT NULL \
             ORDER BY COALESCE(visit_at_ms, 0) DESC, record_id DESC LIMIT $3"
        ))
        .bind(partner.0)
        .bind(client.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(visit)
        .collect()
    }

    async fn visit(
        &self,
        partner: PartnerId,
        connection: ConnectionId,
        record_id: &str,
    ) -> Result<Option<Visit>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            visit_columns!(),
            " FROM crm_records WHERE partner_id = $1 AND connection_id = $2 AND record_id = $3 \
             AND status IS NOT NULL"
        ))
        .bind(partner.0)
        .bind(connection.0)
        .bind(record_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|r| visit(&r))
        .transpose()
    }

    async fn summary(
        &self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Option<ClientSummary>, StoreError> {
        sqlx::query(
            "SELECT first_visit_ms, last_visit_ms, visits, paid_minor FROM client_summaries \
             WHERE partner_id = $1 AND client_id = $2",
        )
        .bind(partner.0)
        .bind(client.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|row| {
            Ok(ClientSummary {
                first_visit_ms: get(&row, "first_visit_ms")?,
                last_visit_ms: get(&row, "last_visit_ms")?,
                visits: get(&row, "visits")?,
                paid_minor: get(&row, "paid_minor")?,
            })
        })
        .transpose()
    }
}
