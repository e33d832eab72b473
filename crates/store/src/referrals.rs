//! Referrals on sqlx: who invited whom, the visit that pays each, what a link has brought.

use async_trait::async_trait;
use loyalty_core::referral::{Referral, ReferralStats};
use loyalty_core::{ClientId, PartnerId, Points, ReferralStore, ReferralTx, StoreError};
use sqlx::any::AnyRow;

use crate::rows::get;
use crate::{Backend, SqlStore, SqlTx, db_err};

fn referral(row: &AnyRow) -> Result<Referral, StoreError> {
    Ok(Referral {
        id: get(row, "id")?,
        referrer_id: ClientId(get(row, "referrer_id")?),
        friend_id: ClientId(get(row, "friend_id")?),
        created_at_ms: get(row, "created_at_ms")?,
        record_key: get(row, "record_key")?,
        qualified_at_ms: get(row, "qualified_at_ms")?,
        referrer_points: Points(get(row, "referrer_points")?),
        friend_points: Points(get(row, "friend_points")?),
        postings: get(row, "postings")?,
    })
}

#[async_trait]
impl ReferralTx for SqlTx {
    async fn insert_referral(
        &mut self,
        partner: PartnerId,
        referrer: ClientId,
        friend: ClientId,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO referrals (partner_id, referrer_id, friend_id, created_at_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (partner_id, friend_id) DO NOTHING",
        )
        .bind(partner.0)
        .bind(referrer.0)
        .bind(friend.0)
        .bind(now_ms)
        .execute(&mut *self.tx)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn lock_referral_of(
        &mut self,
        partner: PartnerId,
        friend: ClientId,
    ) -> Result<Option<Referral>, StoreError> {
        let select = "SELECT id, referrer_id, friend_id, created_at_ms, record_key, \
             qualified_at_ms, referrer_points, friend_points, postings FROM referrals \
             WHERE partner_id = $1 AND friend_id = $2";
        let query = if self.backend == Backend::Postgres {
            sqlx::query(sqlx::AssertSqlSafe(format!("{select} FOR UPDATE")))
        } else {
            sqlx::query(sqlx::AssertSqlSafe(select.to_owned()))
        };
        query
            .bind(partner.0)
            .bind(friend.0)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(referral)
            .transpose()
    }

    async fn save_referral(&mut self, partner: PartnerId, r: &Referral) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE referrals SET record_key = $3, qualified_at_ms = $4, referrer_points = $5, \
             friend_points = $6, postings = $7 WHERE partner_id = $1 AND id = $2",
        )
        .bind(partner.0)
        .bind(r.id)
        .bind(r.record_key.as_deref())
        .bind(r.qualified_at_ms)
        .bind(r.referrer_points.value())
        .bind(r.friend_points.value())
        .bind(r.postings)
        .execute(&mut *self.tx)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn referrals_paid_in(
        &mut self,
        partner: PartnerId,
        referrer: ClientId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM referrals WHERE partner_id = $1 AND referrer_id = $2 \
             AND record_key IS NOT NULL AND qualified_at_ms >= $3 AND qualified_at_ms < $4",
        )
        .bind(partner.0)
        .bind(referrer.0)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(db_err)
    }
}

#[async_trait]
impl ReferralStore for SqlStore {
    async fn referral_stats(
        &self,
        partner: PartnerId,
        referrer: ClientId,
    ) -> Result<ReferralStats, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS invited, \
             CAST(COALESCE(SUM(CASE WHEN record_key IS NULL THEN 0 ELSE 1 END), 0) AS BIGINT) \
               AS qualified, \
             CAST(COALESCE(SUM(referrer_points), 0) AS BIGINT) AS earned \
             FROM referrals WHERE partner_id = $1 AND referrer_id = $2",
        )
        .bind(partner.0)
        .bind(referrer.0)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(ReferralStats {
            invited: get(&row, "invited")?,
            qualified: get(&row, "qualified")?,
            earned: Points(get(&row, "earned")?),
        })
    }
}
