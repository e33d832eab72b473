//! Personal offers on sqlx: made when the reminder carrying one is sent, locked and saved by the
//! visit that qualifies (its benefit posted through the ledger), read by the bot and the offers'
//! report.

use async_trait::async_trait;
use loyalty_core::offer::{Offer, OfferTerms};
use loyalty_core::{ClientId, OfferTx, PartnerId, Points, StoreError};
use sqlx::any::AnyRow;

use crate::rows::get;
use crate::{Backend, SqlTx, db_err};

pub(crate) const OFFER_COLUMNS: &str = "id, partner_id, client_id, send_id, trigger_name, terms, \
     sent_at_ms, valid_until_ms, record_key, posted, postings";

pub(crate) fn offer(row: &AnyRow) -> Result<Offer, StoreError> {
    let terms: String = get(row, "terms")?;
    let id: i64 = get(row, "id")?;
    Ok(Offer {
        id,
        partner_id: PartnerId(get(row, "partner_id")?),
        client_id: ClientId(get(row, "client_id")?),
        send_id: get(row, "send_id")?,
        trigger: get(row, "trigger_name")?,
        terms: serde_json::from_str::<OfferTerms>(&terms)
            .map_err(|e| StoreError::Corrupt(format!("offer {id}'s terms: {e}")))?,
        sent_at_ms: get(row, "sent_at_ms")?,
        valid_until_ms: get(row, "valid_until_ms")?,
        record_key: get(row, "record_key")?,
        posted: Points(get(row, "posted")?),
        postings: get(row, "postings")?,
    })
}

#[async_trait]
impl OfferTx for SqlTx {
    async fn lock_offers_for(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        record_key: &str,
        at_ms: i64,
    ) -> Result<Vec<Offer>, StoreError> {
        let select = format!(
            "SELECT {OFFER_COLUMNS} FROM offers WHERE partner_id = $1 AND client_id = $2 \
             AND (record_key = $3 OR (record_key IS NULL AND sent_at_ms <= $4 \
                                      AND valid_until_ms >= $4)) \
             ORDER BY CASE WHEN record_key = $3 THEN 0 ELSE 1 END, id"
        );
        let sql = if self.backend == Backend::Postgres {
            format!("{select} FOR UPDATE")
        } else {
            select
        };
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(partner.0)
            .bind(client.0)
            .bind(record_key)
            .bind(at_ms)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(db_err)?
            .iter()
            .map(offer)
            .collect()
    }

    async fn save_offer(&mut self, o: &Offer) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE offers SET record_key = $3, posted = $4, postings = $5 \
             WHERE partner_id = $1 AND id = $2",
        )
        .bind(o.partner_id.0)
        .bind(o.id)
        .bind(o.record_key.as_deref())
        .bind(o.posted.value())
        .bind(o.postings)
        .execute(&mut *self.tx)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}
