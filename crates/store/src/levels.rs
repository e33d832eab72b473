//! Levels on sqlx: a client's level (compare-and-set), its floor, the log of changes, who is due
//! a review, and the level measure; and who has a birthday on given days.

use async_trait::async_trait;
use loyalty_core::level::{LevelReason, Measure};
use loyalty_core::store::LevelChange;
use loyalty_core::{BirthdayStore, Client, ClientId, LevelStore, LevelTx, PartnerId, StoreError};

use crate::rows::{self, client_columns, get};
use crate::{SqlStore, SqlTx, db_err};

#[async_trait]
impl LevelTx for SqlTx {
    async fn set_level(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        expected: Option<&str>,
        level: Option<&str>,
        since_ms: i64,
    ) -> Result<bool, StoreError> {
        // '' stands for "no level" on both sides: a level is never named ''.
        let done = sqlx::query(
            "UPDATE clients SET level = $4, level_since_ms = $5 \
             WHERE partner_id = $1 AND id = $2 AND COALESCE(level, '') = $3",
        )
        .bind(partner.0)
        .bind(client.0)
        .bind(expected.unwrap_or(""))
        .bind(level)
        .bind(since_ms)
        .execute(&mut *self.tx)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_level_floor(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        floor: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE clients SET level_floor = $3 WHERE partner_id = $1 AND id = $2")
            .bind(partner.0)
            .bind(client.0)
            .bind(floor)
            .execute(&mut *self.tx)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn insert_level_change(
        &mut self,
        partner: PartnerId,
        c: &LevelChange,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO level_changes (partner_id, client_id, from_level, to_level, reason, \
             measure, actor, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(partner.0)
        .bind(c.client_id.0)
        .bind(c.from.as_deref())
        .bind(c.to.as_deref())
        .bind(c.reason.as_str())
        .bind(c.measure)
        .bind(c.actor.as_deref())
        .bind(c.at_ms)
        .execute(&mut *self.tx)
        .await
        .map_err(db_err)?;
        let event = loyalty_core::hook::PartnerEvent::of_level(c);
        self.emit(partner, &event, c.at_ms).await
    }

    async fn measure(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        from_ms: i64,
    ) -> Result<Measure, StoreError> {
        rows::measure(&mut *self.tx, partner, client, from_ms).await
    }
}

#[async_trait]
impl LevelStore for SqlStore {
    async fn level_reviews_due(
        &self,
        partner: PartnerId,
        cutoff_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClientId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM clients WHERE partner_id = $1 AND level IS NOT NULL \
             AND level_since_ms <= $2 ORDER BY level_since_ms, id LIMIT $3",
        )
        .bind(partner.0)
        .bind(cutoff_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(ids.into_iter().map(ClientId).collect())
    }

    async fn level_changes(
        &self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Vec<LevelChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT client_id, from_level, to_level, reason, measure, actor, at_ms \
             FROM level_changes WHERE partner_id = $1 AND client_id = $2 ORDER BY id",
        )
        .bind(partner.0)
        .bind(client.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let reason: String = get(r, "reason")?;
                Ok(LevelChange {
                    client_id: ClientId(get(r, "client_id")?),
                    from: get(r, "from_level")?,
                    to: get(r, "to_level")?,
                    reason: LevelReason::parse(&reason)
                        .ok_or_else(|| StoreError::Corrupt(format!("level reason {reason:?}")))?,
                    measure: get(r, "measure")?,
                    actor: get(r, "actor")?,
                    at_ms: get(r, "at_ms")?,
                })
            })
            .collect()
    }

    async fn client_measure(
        &self,
        partner: PartnerId,
        client: ClientId,
        from_ms: i64,
    ) -> Result<Measure, StoreError> {
        rows::measure(&self.pool, partner, client, from_ms).await
    }
}

#[async_trait]
impl BirthdayStore for SqlStore {
    async fn clients_born_on(
        &self,
        partner: PartnerId,
        days: &[(u8, u8)],
    ) -> Result<Vec<Client>, StoreError> {
        if days.is_empty() {
            return Ok(Vec::new());
        }
        // A birth date is stored `YYYY-MM-DD` or `--MM-DD`: its last five characters are the day.
        let placeholders: Vec<String> = (0..days.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            concat!(
                "SELECT ",
                client_columns!(),
                " FROM clients WHERE partner_id = $1 AND birth_date IS NOT NULL \
                 AND substr(birth_date, length(birth_date) - 4) IN ({}) ORDER BY id"
            ),
            placeholders.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(partner.0);
        for (month, day) in days {
            query = query.bind(format!("{month:02}-{day:02}"));
        }
        let rows = query.fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(rows::client).collect()
    }
}
