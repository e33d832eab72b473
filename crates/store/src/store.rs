//! [`Store`] and its capability traits on sqlx: partners, connections, clients, reads of the
//! books, the outbox worker's calls, chats, rewards.

use async_trait::async_trait;
use loyalty_core::audit::{Actor, AuditAction};
use loyalty_core::engine::DESK_COMPANY;
use loyalty_core::ledger::{Account, AccountTotals, LedgerEntry};
use loyalty_core::model::{HoldId, NewConnection, NewPartner};
use loyalty_core::outbox::OutboxMessage;
use loyalty_core::store::{DeliveryRecord, Hold};
use loyalty_core::{
    ChatStore, Client, ClientId, ClientStore, ConnectionId, CrmConnection, LedgerStore,
    OutboxStore, Partner, PartnerId, PartnerStore, Phone, Points, Program, ProgramVersion,
    RewardStore, Store, StoreError, StoreTx,
};

use loyalty_core::model::RewardId;
use loyalty_core::store::{OutboxStats, TelegramChat};
use loyalty_core::{NewReward, Reward};

use crate::rows::{
    self, client_columns, entry_columns, get, outbox_columns, redemption_columns, reward_columns,
};
use crate::{Backend, SqlStore, SqlTx, db_err, found};
use loyalty_core::code::Code;
use loyalty_core::redemption::Redemption;

#[async_trait]
impl Store for SqlStore {
    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError> {
        let tx = self.begin_raw().await?;
        Ok(Box::new(SqlTx::new(tx, self.backend)))
    }
}

#[async_trait]
impl PartnerStore for SqlStore {
    async fn create_partner(
        &self,
        partner: &NewPartner,
        now_ms: i64,
    ) -> Result<Partner, StoreError> {
        let program = serde_json::to_string(&partner.program)
            .map_err(|e| StoreError::Backend(format!("program to JSON: {e}")))?;
        let mut tx = self.begin_raw().await?;
        let row = sqlx::query(
            "INSERT INTO partners (name, program, created_at_ms, engage_salt) \
             VALUES ($1, $2, $3, $4) RETURNING id, name, program, plan",
        )
        .bind(partner.name.as_str())
        .bind(program.as_str())
        .bind(now_ms)
        // The control group's draw: random per salon, never changed.
        .bind((fastrand::u64(..) >> 12) as i64)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let created = rows::partner(&row)?;
        // The first version is in force for all of the past: an imported history is computed
        // with it.
        sqlx::query(
            "INSERT INTO program_versions (partner_id, version, effective_from_ms, program, \
             created_at_ms) VALUES ($1, 1, 0, $2, $3)",
        )
        .bind(created.id.0)
        .bind(program.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(created)
    }

    async fn partner(&self, id: PartnerId) -> Result<Option<Partner>, StoreError> {
        sqlx::query("SELECT id, name, program, plan FROM partners WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(|r| rows::partner(&r))
            .transpose()
    }

    async fn set_program(
        &self,
        partner: PartnerId,
        program: &Program,
        effective_from_ms: i64,
        actor: &Actor,
    ) -> Result<ProgramVersion, StoreError> {
        let json = serde_json::to_string(program)
            .map_err(|e| StoreError::Backend(format!("program to JSON: {e}")))?;
        let mut tx = self.begin_raw().await?;
        // The partner's row is the lock: two changes at once get consecutive versions.
        let row = sqlx::query(
            "UPDATE partners SET program = $2, program_version = program_version + 1, \
             program_from_ms = CASE WHEN $3 > program_from_ms THEN $3 ELSE program_from_ms END \
             WHERE id = $1 RETURNING program_version, program_from_ms",
        )
        .bind(partner.0)
        .bind(json.as_str())
        .bind(effective_from_ms)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("partner {partner}")))?;
        let version: i64 = get(&row, "program_version")?;
        let from: i64 = get(&row, "program_from_ms")?;
        sqlx::query(
            "INSERT INTO program_versions (partner_id, version, effective_from_ms, program, \
             created_at_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(partner.0)
        .bind(version)
        .bind(from)
        .bind(json.as_str())
        .bind(effective_from_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let detail = serde_json::json!({ "version": version, "effective_from_ms": from });
        crate::audit::append(
            &mut *tx,
            partner,
            actor,
            AuditAction::ProgramChanged,
            &detail,
            effective_from_ms,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(ProgramVersion {
            version,
            effective_from_ms: from,
            program: program.clone(),
        })
    }

    async fn partner_ids(&self) -> Result<Vec<PartnerId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM partners ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(ids.into_iter().map(PartnerId).collect())
    }

    async fn program_versions(
        &self,
        partner: PartnerId,
    ) -> Result<Vec<ProgramVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT version, effective_from_ms, program FROM program_versions \
             WHERE partner_id = $1 ORDER BY version",
        )
        .bind(partner.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(rows::program_version).collect()
    }

    async fn create_connection(
        &self,
        c: &NewConnection,
        now_ms: i64,
    ) -> Result<CrmConnection, StoreError> {
        let row = sqlx::query(
            "INSERT INTO crm_connections (partner_id, kind, company_id, credentials_ref, \
             webhook_secret, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6) \
             RETURNING id, partner_id, kind, company_id, credentials_ref, webhook_secret, points_since_ms",
        )
        .bind(c.partner_id.0)
        .bind(c.kind.as_str())
        .bind(c.company_id.as_str())
        .bind(c.credentials_ref.as_str())
        .bind(c.webhook_secret.as_str())
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        rows::connection(&row)
    }

    async fn connections_of(&self, partner: PartnerId) -> Result<Vec<CrmConnection>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, partner_id, kind, company_id, credentials_ref, webhook_secret, points_since_ms \
             FROM crm_connections WHERE partner_id = $1 ORDER BY id",
        )
        .bind(partner.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(rows::connection).collect()
    }

    async fn desk_connection(
        &self,
        partner: PartnerId,
        now_ms: i64,
    ) -> Result<CrmConnection, StoreError> {
        // No webhook comes to the desk: its secret only has to be unique, and names it.
        sqlx::query(
            "INSERT INTO crm_connections (partner_id, kind, company_id, credentials_ref, \
             webhook_secret, created_at_ms) VALUES ($1, 'desk', $2, '', $3, $4) \
             ON CONFLICT (partner_id, kind, company_id) DO NOTHING",
        )
        .bind(partner.0)
        .bind(DESK_COMPANY)
        .bind(format!("desk-of-partner-{}", partner.0))
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "SELECT id, partner_id, kind, company_id, credentials_ref, webhook_secret, points_since_ms \
             FROM crm_connections WHERE partner_id = $1 AND kind = 'desk' AND company_id = $2",
        )
        .bind(partner.0)
        .bind(DESK_COMPANY)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
        .and_then(|r| rows::connection(&r))
    }

    async fn connection(&self, id: ConnectionId) -> Result<Option<CrmConnection>, StoreError> {
        sqlx::query(
            "SELECT id, partner_id, kind, company_id, credentials_ref, webhook_secret, points_since_ms \
             FROM crm_connections WHERE id = $1",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|r| rows::connection(&r))
        .transpose()
    }

    async fn connection_by_secret(
        &self,
        secret: &str,
    ) -> Result<Option<CrmConnection>, StoreError> {
        sqlx::query(
            "SELECT id, partner_id, kind, company_id, credentials_ref, webhook_secret, points_since_ms \
             FROM crm_connections WHERE webhook_secret = $1",
        )
        .bind(secret)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|r| rows::connection(&r))
        .transpose()
    }
}

#[async_trait]
impl ClientStore for SqlStore {
    async fn client_by_phone(
        &self,
        partner: PartnerId,
        phone: &Phone,
    ) -> Result<Option<Client>, StoreError> {
        rows::client_by_phone(&self.pool, partner, phone).await
    }

    async fn client(
        &self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Option<Client>, StoreError> {
        rows::client_by_id(&self.pool, partner, client).await
    }

    async fn set_telegram_chat(
        &self,
        partner: PartnerId,
        client: ClientId,
        chat_id: Option<i64>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE clients SET telegram_chat_id = $3 WHERE partner_id = $1 AND id = $2",
        )
        .bind(partner.0)
        .bind(client.0)
        .bind(chat_id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        found(done.rows_affected(), || format!("client {client}"))
    }

    async fn set_notifications_off(
        &self,
        partner: PartnerId,
        client: ClientId,
        off: bool,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE clients SET notifications_off = $3 WHERE partner_id = $1 AND id = $2",
        )
        .bind(partner.0)
        .bind(client.0)
        .bind(i64::from(off))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        found(done.rows_affected(), || format!("client {client}"))
    }
}

#[async_trait]
impl LedgerStore for SqlStore {
    async fn balance(&self, partner: PartnerId, client: ClientId) -> Result<Points, StoreError> {
        let balance: Option<i64> = sqlx::query_scalar(
            "SELECT balance FROM balances WHERE partner_id = $1 AND client_id = $2",
        )
        .bind(partner.0)
        .bind(client.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(Points(balance.unwrap_or(0)))
    }

    async fn pending(&self, partner: PartnerId, client: ClientId) -> Result<Points, StoreError> {
        let pending: Option<i64> = sqlx::query_scalar(
            "SELECT pending FROM balances WHERE partner_id = $1 AND client_id = $2",
        )
        .bind(partner.0)
        .bind(client.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(Points(pending.unwrap_or(0)))
    }

    async fn partners_with_due_pending(&self, now_ms: i64) -> Result<Vec<PartnerId>, StoreError> {
        // One probe of the `pending_lots_due` index per partner.
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT p.id FROM partners p WHERE EXISTS (SELECT 1 FROM pending_lots l \
             WHERE l.partner_id = p.id AND l.remaining > 0 AND l.matures_at_ms <= $1) \
             ORDER BY p.id",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(ids.into_iter().map(PartnerId).collect())
    }

    async fn history(
        &self,
        partner: PartnerId,
        client: ClientId,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            entry_columns!(),
            " FROM ledger_entries WHERE partner_id = $1 AND client_id = $2 \
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(partner.0)
        .bind(client.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::entry)
        .collect()
    }

    async fn ledger_balance(
        &self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Points, StoreError> {
        let account = Account::Client(client).name();
        let sum: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(CASE WHEN credit_account = $3 THEN amount \
             WHEN debit_account = $3 THEN -amount ELSE 0 END), 0) AS BIGINT) \
             FROM ledger_entries WHERE partner_id = $1 AND client_id = $2",
        )
        .bind(partner.0)
        .bind(client.0)
        .bind(account)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(Points(sum))
    }

    async fn lots_remaining(
        &self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Points, StoreError> {
        let sum: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(remaining), 0) AS BIGINT) FROM lots \
             WHERE partner_id = $1 AND client_id = $2",
        )
        .bind(partner.0)
        .bind(client.0)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(Points(sum))
    }

    async fn account_totals(&self, partner: PartnerId) -> Result<AccountTotals, StoreError> {
        let rows = sqlx::query(
            "SELECT account, CAST(SUM(delta) AS BIGINT) AS balance FROM ( \
               SELECT credit_account AS account, amount AS delta FROM ledger_entries \
                 WHERE partner_id = $1 \
               UNION ALL \
               SELECT debit_account AS account, -amount AS delta FROM ledger_entries \
                 WHERE partner_id = $1 \
             ) moves GROUP BY account",
        )
        .bind(partner.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut totals = AccountTotals::default();
        for row in &rows {
            let name: String = get(row, "account")?;
            let balance = Points(get(row, "balance")?);
            match Account::parse(&name) {
                Some(Account::Issued) => totals.issued = -balance,
                Some(Account::Client(_)) => totals.outstanding += balance,
                Some(Account::Hold(_)) => totals.held += balance,
                Some(Account::Pending(_)) => totals.pending += balance,
                Some(Account::Redeemed) => totals.spent = balance,
                Some(Account::Expired) => totals.expired = balance,
                None => return Err(StoreError::Corrupt(format!("account {name:?}"))),
            }
        }
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) AS balances, \
             CAST(COALESCE(SUM(pending), 0) AS BIGINT) AS pending \
             FROM balances WHERE partner_id = $1",
        )
        .bind(partner.0)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        totals.balances_sum = Points(get(&row, "balances")?);
        totals.pending_sum = Points(get(&row, "pending")?);
        Ok(totals)
    }

    async fn entry_count(&self, partner: PartnerId) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM ledger_entries WHERE partner_id = $1")
            .bind(partner.0)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn partners_with_due_lots(&self, now_ms: i64) -> Result<Vec<PartnerId>, StoreError> {
        // One probe of the `lots_due` index per partner.
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT p.id FROM partners p WHERE EXISTS (SELECT 1 FROM lots l \
             WHERE l.partner_id = p.id AND l.remaining > 0 AND l.expires_at_ms <= $1) \
             ORDER BY p.id",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(ids.into_iter().map(PartnerId).collect())
    }

    async fn hold(&self, partner: PartnerId, hold: HoldId) -> Result<Option<Hold>, StoreError> {
        rows::hold_by_id(&self.pool, partner, hold, false).await
    }

    async fn recent_deliveries(
        &self,
        partner: PartnerId,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        sqlx::query(
            "SELECT connection_id, resource, resource_id, outcome, delta, received_at_ms \
             FROM deliveries WHERE partner_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(partner.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| {
            Ok(DeliveryRecord {
                connection_id: ConnectionId(get(r, "connection_id")?),
                resource: get(r, "resource")?,
                resource_id: get(r, "resource_id")?,
                outcome: get(r, "outcome")?,
                delta: Points(get(r, "delta")?),
                received_at_ms: get(r, "received_at_ms")?,
            })
        })
        .collect()
    }
}

#[async_trait]
impl OutboxStore for SqlStore {
    async fn outbox_of(&self, partner: PartnerId) -> Result<Vec<OutboxMessage>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            outbox_columns!(),
            " FROM outbox WHERE partner_id = $1 ORDER BY id"
        ))
        .bind(partner.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::outbox)
        .collect()
    }

    async fn claim_outbox(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        // Only the oldest pending message of each partition is eligible, so a client's
        // messages go out in order; a claimed message stays pending with run_at pushed to the
        // end of its lease, which keeps the rest of its partition waiting behind it and makes it
        // claimable again if the worker dies.
        let sql = self.sql(
            concat!(
                "UPDATE outbox SET run_at_ms = $2, attempts = attempts + 1 WHERE id IN ( \
                   SELECT o.id FROM outbox o WHERE o.status = 'pending' AND o.run_at_ms <= $1 \
                   AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.partition_key = o.partition_key \
                                   AND p.status = 'pending' AND p.id < o.id) \
                   ORDER BY o.run_at_ms, o.id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 RETURNING ",
                outbox_columns!()
            ),
            concat!(
                "UPDATE outbox SET run_at_ms = $2, attempts = attempts + 1 WHERE id IN ( \
                   SELECT o.id FROM outbox o WHERE o.status = 'pending' AND o.run_at_ms <= $1 \
                   AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.partition_key = o.partition_key \
                                   AND p.status = 'pending' AND p.id < o.id) \
                   ORDER BY o.run_at_ms, o.id LIMIT $3) \
                 RETURNING ",
                outbox_columns!()
            ),
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
        let mut claimed = rows
            .iter()
            .map(rows::outbox)
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|m| m.id);
        Ok(claimed)
    }

    async fn outbox_sent(&self, id: i64, now_ms: i64) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE outbox SET status = 'sent', sent_at_ms = $2, last_error = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        found(done.rows_affected(), || format!("outbox message {id}"))
    }

    async fn outbox_failed(
        &self,
        id: i64,
        retry_at_ms: Option<i64>,
        error: &str,
    ) -> Result<(), StoreError> {
        let done = match retry_at_ms {
            Some(at) => sqlx::query(
                "UPDATE outbox SET run_at_ms = $2, last_error = $3 \
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(at)
            .bind(error),
            None => sqlx::query(
                "UPDATE outbox SET status = 'dead', last_error = $2 \
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(error),
        }
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        found(done.rows_affected(), || {
            format!("pending outbox message {id}")
        })
    }

    async fn outbox_later(&self, id: i64, run_at_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET run_at_ms = $2, \
               attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END \
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(run_at_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn outbox_replay(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE outbox SET status = 'pending', attempts = 0, run_at_ms = $2 \
             WHERE id = $1 AND status = 'dead'",
        )
        .bind(id)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        let row = sqlx::query(
            "SELECT \
               (SELECT COUNT(*) FROM outbox WHERE status = 'pending') AS pending, \
               (SELECT COUNT(*) FROM outbox WHERE status = 'dead') AS dead, \
               (SELECT MIN(created_at_ms) FROM outbox WHERE status = 'pending') AS oldest",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(OutboxStats {
            pending: get(&row, "pending")?,
            dead: get(&row, "dead")?,
            oldest_pending_created_ms: get(&row, "oldest")?,
        })
    }
}

#[async_trait]
impl ChatStore for SqlStore {
    async fn telegram_chat(&self, chat_id: i64) -> Result<Option<TelegramChat>, StoreError> {
        sqlx::query(
            "SELECT chat_id, phone, language, active, joined_partner_id, referrer_client_id \
             FROM telegram_chats WHERE chat_id = $1",
        )
        .bind(chat_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|r| rows::telegram_chat(&r))
        .transpose()
    }

    async fn save_telegram_chat(&self, chat: &TelegramChat, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO telegram_chats (chat_id, phone, language, active, updated_at_ms, \
             joined_partner_id, referrer_client_id) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (chat_id) DO UPDATE SET \
             phone = excluded.phone, language = excluded.language, active = excluded.active, \
             updated_at_ms = excluded.updated_at_ms, joined_partner_id = excluded.joined_partner_id, \
             referrer_client_id = excluded.referrer_client_id",
        )
        .bind(chat.chat_id)
        .bind(chat.phone.as_ref().map(Phone::as_str))
        .bind(chat.language.as_str())
        .bind(i64::from(chat.active))
        .bind(now_ms)
        .bind(chat.joined_partner.map(|p| p.0))
        .bind(chat.referred_by.map(|c| c.0))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn link_chat(&self, phone: &Phone, chat_id: i64) -> Result<Vec<Client>, StoreError> {
        let mut sql_tx = SqlTx::new(self.begin_raw().await?, self.backend);
        let before = crate::hooks::linked_before(&mut sql_tx, phone, chat_id, 0).await?;
        let tx = &mut sql_tx.tx;
        sqlx::query(
            "UPDATE clients SET telegram_chat_id = NULL \
             WHERE telegram_chat_id = $1 AND chat_bot_id = 0 AND phone <> $2",
        )
        .bind(chat_id)
        .bind(phone.as_str())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
        // A salon with its own bot links its clients through it, never through ours.
        let linked = sqlx::query(concat!(
            "UPDATE clients SET telegram_chat_id = $2, chat_bot_id = 0 WHERE phone = $1 \
             AND partner_id NOT IN (SELECT partner_id FROM salon_bots) RETURNING ",
            client_columns!()
        ))
        .bind(phone.as_str())
        .bind(chat_id)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_err)?;
        let mut clients = linked
            .iter()
            .map(rows::client)
            .collect::<Result<Vec<_>, _>>()?;
        crate::hooks::tell_linked(&mut sql_tx, &clients, &before).await?;
        sql_tx.tx.commit().await.map_err(db_err)?;
        clients.sort_by_key(|c| (c.partner_id, c.id));
        Ok(clients)
    }

    async fn link_chat_via(
        &self,
        bot: i64,
        partner: PartnerId,
        phone: &Phone,
        chat_id: i64,
    ) -> Result<Vec<Client>, StoreError> {
        let mut sql_tx = SqlTx::new(self.begin_raw().await?, self.backend);
        let before = crate::hooks::linked_before(&mut sql_tx, phone, chat_id, bot).await?;
        let tx = &mut sql_tx.tx;
        sqlx::query(
            "UPDATE clients SET telegram_chat_id = NULL, chat_bot_id = 0 \
             WHERE partner_id = $1 AND telegram_chat_id = $2 AND chat_bot_id = $3 AND phone <> $4",
        )
        .bind(partner.0)
        .bind(chat_id)
        .bind(bot)
        .bind(phone.as_str())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
        let linked = sqlx::query(concat!(
            "UPDATE clients SET telegram_chat_id = $3, chat_bot_id = $4 \
             WHERE partner_id = $1 AND phone = $2 RETURNING ",
            client_columns!()
        ))
        .bind(partner.0)
        .bind(phone.as_str())
        .bind(chat_id)
        .bind(bot)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_err)?;
        let clients = linked
            .iter()
            .map(rows::client)
            .collect::<Result<Vec<_>, _>>()?;
        crate::hooks::tell_linked(&mut sql_tx, &clients, &before).await?;
        sql_tx.tx.commit().await.map_err(db_err)?;
        Ok(clients)
    }

    async fn clients_of_chat_via(&self, chat_id: i64, bot: i64) -> Result<Vec<Client>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients WHERE telegram_chat_id = $1 AND chat_bot_id = $2 \
             ORDER BY partner_id, id"
        ))
        .bind(chat_id)
        .bind(bot)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::client)
        .collect()
    }

    async fn chat_bot_of(&self, partner: PartnerId, client: ClientId) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT chat_bot_id FROM clients WHERE partner_id = $1 AND id = $2")
            .bind(partner.0)
            .bind(client.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        match row {
            Some(r) => get(&r, "chat_bot_id"),
            None => Ok(0),
        }
    }

    async fn unlink_chat(&self, partner: PartnerId, client: ClientId) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE clients SET telegram_chat_id = NULL, chat_bot_id = 0 \
             WHERE partner_id = $1 AND id = $2",
        )
        .bind(partner.0)
        .bind(client.0)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn add_staff_chat(
        &self,
        partner: PartnerId,
        chat_id: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO staff_chats (partner_id, chat_id, added_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (partner_id, chat_id) DO NOTHING",
        )
        .bind(partner.0)
        .bind(chat_id)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn staff_partners(&self, chat_id: i64) -> Result<Vec<PartnerId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT partner_id FROM staff_chats WHERE chat_id = $1 ORDER BY partner_id",
        )
        .bind(chat_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(ids.into_iter().map(PartnerId).collect())
    }
}

#[async_trait]
impl RewardStore for SqlStore {
    async fn create_reward(
        &self,
        partner: PartnerId,
        reward: &NewReward,
        now_ms: i64,
    ) -> Result<Reward, StoreError> {
        let kind = serde_json::to_string(&reward.kind)
            .map_err(|e| StoreError::Backend(format!("reward kind to JSON: {e}")))?;
        let row = sqlx::query(concat!(
            "INSERT INTO rewards (partner_id, title, cost, kind, active, created_at_ms) \
             VALUES ($1, $2, $3, $4, 1, $5) RETURNING ",
            reward_columns!()
        ))
        .bind(partner.0)
        .bind(reward.title.trim())
        .bind(reward.cost.value())
        .bind(kind)
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        rows::reward(&row)
    }

    async fn rewards(
        &self,
        partner: PartnerId,
        include_removed: bool,
    ) -> Result<Vec<Reward>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            reward_columns!(),
            " FROM rewards WHERE partner_id = $1 AND (active = 1 OR $2 = 1) ORDER BY id"
        ))
        .bind(partner.0)
        .bind(i64::from(include_removed))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::reward)
        .collect()
    }

    async fn reward(&self, partner: PartnerId, id: RewardId) -> Result<Option<Reward>, StoreError> {
        rows::reward_by_id(&self.pool, partner, id).await
    }

    async fn remove_reward(&self, partner: PartnerId, id: RewardId) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE rewards SET active = 0 WHERE partner_id = $1 AND id = $2 AND active = 1",
        )
        .bind(partner.0)
        .bind(id.0)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn redemption_by_code(&self, code: &Code) -> Result<Option<Redemption>, StoreError> {
        rows::redemption_by_code(&self.pool, code, false).await
    }

    async fn issued_certificates(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<Redemption>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            redemption_columns!(),
            " FROM redemptions WHERE status = 'issued' AND strategy = 'crm_certificate' \
             AND id > $1 ORDER BY id LIMIT $2"
        );
        self.redemptions_by(SQL, after_id, i64::from(limit)).await
    }

    async fn due_write_backs(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<Redemption>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            redemption_columns!(),
            " FROM redemptions WHERE wb_next_at_ms IS NOT NULL AND wb_next_at_ms <= $1 \
             AND status = 'pending' ORDER BY wb_next_at_ms, id LIMIT $2"
        );
        self.redemptions_by(SQL, now_ms, i64::from(limit)).await
    }

    async fn due_codes(&self, now_ms: i64, limit: u32) -> Result<Vec<Code>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT code FROM redemptions WHERE status = 'issued' AND strategy = 'gateway_code' \
             AND expires_at_ms < $1 ORDER BY expires_at_ms, id LIMIT $2",
        )
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|c| Code::parse(c).map_err(|_| StoreError::Corrupt(format!("code {c:?}"))))
            .collect()
    }

    async fn redemptions_of(
        &self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Vec<Redemption>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            redemption_columns!(),
            " FROM redemptions WHERE partner_id = $1 AND client_id = $2 ORDER BY id DESC"
        );
        self.redemptions_by(SQL, partner.0, client.0).await
    }
}

impl SqlStore {
    /// The redemptions a query with two integer parameters selects.
    async fn redemptions_by(
        &self,
        sql: &'static str,
        a: i64,
        b: i64,
    ) -> Result<Vec<Redemption>, StoreError> {
        sqlx::query(sql)
            .bind(a)
            .bind(b)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(rows::redemption)
            .collect()
    }

    pub(crate) async fn begin_raw(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        match self.backend {
            Backend::Postgres => self.pool.begin().await,
            // Take the write lock up front: a deferred transaction that reads and then writes
            // can fail with SQLITE_BUSY when another writer got in between.
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
        }
        .map_err(db_err)
    }
}
