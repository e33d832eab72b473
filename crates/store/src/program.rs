//! The program's accounts beside the balance, on sqlx: pending points (the client's pending
//! total, a column of its balance row locked with it, and the pending lots that mature into
//! ordinary lots) and what visits reserved of limited campaigns.

use async_trait::async_trait;
use loyalty_core::ledger::{LotId, NewPendingLot, PendingLot};
use loyalty_core::{CampaignTx, ClientId, PartnerId, PendingTx, Points, StoreError};
use sqlx::any::AnyRow;

use crate::rows::get;
use crate::{SqlTx, db_err};

macro_rules! select_pending {
    ($where:literal) => {
        concat!(
            "SELECT id, client_id, source, amount, remaining, matures_at_ms, expires_at_ms \
             FROM pending_lots WHERE ",
            $where
        )
    };
}

fn pending_lot(row: &AnyRow) -> Result<PendingLot, StoreError> {
    Ok(PendingLot {
        id: get(row, "id")?,
        client_id: ClientId(get(row, "client_id")?),
        source: get(row, "source")?,
        amount: Points(get(row, "amount")?),
        remaining: Points(get(row, "remaining")?),
        matures_at_ms: get(row, "matures_at_ms")?,
        expires_at_ms: get(row, "expires_at_ms")?,
    })
}

#[async_trait]
impl PendingTx for SqlTx {
    async fn pending_points(
        &mut self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Points, StoreError> {
        let pending: Option<i64> = sqlx::query_scalar(
            "SELECT pending FROM balances WHERE partner_id = $1 AND client_id = $2",
        )
        .bind(partner.0)
        .bind(client.0)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(db_err)?;
        Ok(Points(pending.unwrap_or(0)))
    }

    async fn set_pending_points(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        pending: Points,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE balances SET pending = $3 WHERE partner_id = $1 AND client_id = $2")
            .bind(partner.0)
            .bind(client.0)
            .bind(pending.value())
            .execute(&mut *self.tx)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn insert_pending_lot(
        &mut self,
        partner: PartnerId,
        lot: &NewPendingLot,
        now_ms: i64,
    ) -> Result<LotId, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO pending_lots (partner_id, client_id, entry_id, source, amount, \
             remaining, matures_at_ms, expires_at_ms, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8) RETURNING id",
        )
        .bind(partner.0)
        .bind(lot.client_id.0)
        .bind(lot.entry_id.0)
        .bind(lot.source.as_deref())
        .bind(lot.amount.value())
        .bind(lot.matures_at_ms)
        .bind(lot.expires_at_ms)
        .bind(now_ms)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(db_err)
    }

    async fn open_pending_lots(
        &mut self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Vec<PendingLot>, StoreError> {
        sqlx::query(select_pending!(
            "partner_id = $1 AND client_id = $2 AND remaining > 0 ORDER BY matures_at_ms, id"
        ))
        .bind(partner.0)
        .bind(client.0)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(db_err)?
        .iter()
        .map(pending_lot)
        .collect()
    }

    async fn draw_pending_lots(
        &mut self,
        partner: PartnerId,
        draws: &[(LotId, Points)],
    ) -> Result<(), StoreError> {
        for (lot, amount) in draws {
            sqlx::query(
                "UPDATE pending_lots SET remaining = remaining - $3 \
                 WHERE partner_id = $1 AND id = $2",
            )
            .bind(partner.0)
            .bind(*lot)
            .bind(amount.value())
            .execute(&mut *self.tx)
            .await
            .map_err(db_err)?;
        }
        Ok(())
    }

    async fn due_pending_lots(
        &mut self,
        partner: PartnerId,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<PendingLot>, StoreError> {
        sqlx::query(select_pending!(
            "partner_id = $1 AND remaining > 0 AND matures_at_ms <= $2 \
             ORDER BY matures_at_ms, id LIMIT $3"
        ))
        .bind(partner.0)
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(db_err)?
        .iter()
        .map(pending_lot)
        .collect()
    }
}

#[async_trait]
impl CampaignTx for SqlTx {
    async fn campaign_used(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        campaign: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Points, StoreError> {
        let used: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(points), 0) AS BIGINT) FROM campaign_uses \
             WHERE partner_id = $1 AND client_id = $2 AND campaign = $3 \
             AND visit_at_ms >= $4 AND visit_at_ms < $5",
        )
        .bind(partner.0)
        .bind(client.0)
        .bind(campaign)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(db_err)?;
        Ok(Points(used))
    }

    async fn reserve_campaign(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        campaign: &str,
        record_key: &str,
        visit_at_ms: i64,
        points: Points,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO campaign_uses (partner_id, client_id, campaign, record_key, \
             visit_at_ms, points) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (partner_id, record_key, campaign) DO NOTHING",
        )
        .bind(partner.0)
        .bind(client.0)
        .bind(campaign)
        .bind(record_key)
        .bind(visit_at_ms)
        .bind(points.value())
        .execute(&mut *self.tx)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}
