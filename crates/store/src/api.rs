//! What the partner API reads beyond the core's traits: a client's entries a page at a time,
//! a redemption by its id, where a partner's rewards go, and a fresh code.

use loyalty_core::code::Code;
use loyalty_core::ledger::LedgerEntry;
use loyalty_core::redemption::{Redemption, Target};
use loyalty_core::{ClientId, PartnerId, StoreError};

use crate::rows::{self, entry_columns, redemption_columns};
use crate::{SqlStore, db_err};

/// Draws a redemption code from the OS's randomness (the clock's nanoseconds when there is
/// none; the database still refuses a code twice).
pub fn random_code() -> Code {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        bytes = nanos.to_le_bytes();
    }
    Code::from_entropy(bytes)
}

impl SqlStore {
    /// The client's entries newest first, `limit` of them from below entry `before` (from the
    /// newest without it): the id is a stable cursor, since entries are only ever added.
    pub async fn entries_page(
        &self,
        partner: PartnerId,
        client: ClientId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            entry_columns!(),
            " FROM ledger_entries WHERE partner_id = $1 AND client_id = $2 AND id < $3 \
             ORDER BY id DESC LIMIT $4"
        ))
        .bind(partner.0)
        .bind(client.0)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::entry)
        .collect()
    }

    /// The partner's redemption with this id.
    pub async fn redemption(
        &self,
        partner: PartnerId,
        id: i64,
    ) -> Result<Option<Redemption>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            redemption_columns!(),
            " FROM redemptions WHERE partner_id = $1 AND id = $2"
        ))
        .bind(partner.0)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|r| rows::redemption(&r))
        .transpose()
    }

    /// Where the partner's rewards go: the first connection with a reward setup (by id), else
    /// the gateway's own codes. A setup names its strategy (`{"strategy": "crm_certificate",
    /// …}`); what else it holds is the CRM crate's to read.
    pub async fn reward_target(&self, partner: PartnerId) -> Result<Target, StoreError> {
        #[derive(serde::Deserialize)]
        struct Named {
            strategy: loyalty_core::redemption::Strategy,
        }
        let Some((connection, json)) = self.reward_setup_of(partner).await? else {
            return Ok(Target::GATEWAY);
        };
        Ok(match serde_json::from_str::<Named>(&json) {
            Ok(named) => Target::crm(named.strategy, connection),
            Err(e) => {
                tracing::warn!(connection = connection.0, error = %e,
                    "the connection's reward setup does not read; rewards use gateway codes");
                Target::GATEWAY
            }
        })
    }
}
