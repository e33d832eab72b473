//! [`PhoneStore`]: the stored phones `doctor phones` reads, and the move it applies.

use async_trait::async_trait;
use loyalty_core::doctor::{PhoneMove, PhoneStore};
use loyalty_core::{ClientId, PartnerId, Phone, StoreError};

use crate::rows::{self, get};
use crate::{SqlStore, db_err};

#[async_trait]
impl PhoneStore for SqlStore {
    async fn stored_phones(
        &self,
        partner: PartnerId,
    ) -> Result<Vec<(ClientId, String)>, StoreError> {
        sqlx::query("SELECT id, phone FROM clients WHERE partner_id = $1 ORDER BY id")
            .bind(partner.0)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(|row| Ok((ClientId(get(row, "id")?), get(row, "phone")?)))
            .collect()
    }

    async fn move_phone(
        &self,
        partner: PartnerId,
        client: ClientId,
        from: &str,
        to: &Phone,
    ) -> Result<PhoneMove, StoreError> {
        let mut tx = self.begin_raw().await?;
        if let Some(holder) = rows::client_by_phone(&mut *tx, partner, to).await?
            && holder.id != client
        {
            return Ok(PhoneMove::Taken { holder: holder.id });
        }
        // The chat linked to the client is the one that shared the client's number: after the
        // move, the one that shared the new number (a client created with it would get it).
        let moved = sqlx::query(
            "UPDATE clients SET phone = $4, chat_bot_id = 0, telegram_chat_id = \
               (SELECT chat_id FROM telegram_chats WHERE phone = $4 \
                  AND NOT EXISTS (SELECT 1 FROM salon_bots b WHERE b.partner_id = $1) \
                ORDER BY updated_at_ms DESC LIMIT 1) \
             WHERE partner_id = $1 AND id = $2 AND phone = $3",
        )
        .bind(partner.0)
        .bind(client.0)
        .bind(from)
        .bind(to.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_err);
        let moved = match moved {
            Ok(done) => done.rows_affected(),
            // Taken between the check and the update (PostgreSQL, another writer).
            Err(StoreError::Duplicate(_)) => {
                drop(tx);
                return Ok(
                    match rows::client_by_phone(&self.pool, partner, to).await? {
                        Some(holder) => PhoneMove::Taken { holder: holder.id },
                        None => PhoneMove::Stale,
                    },
                );
            }
            Err(e) => return Err(e),
        };
        if moved == 0 {
            return Ok(PhoneMove::Stale);
        }
        tx.commit().await.map_err(db_err)?;
        Ok(PhoneMove::Moved)
    }
}
