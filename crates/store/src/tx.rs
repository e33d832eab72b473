//! One write transaction: [`StoreTx`] and its parts on sqlx.

use async_trait::async_trait;
use loyalty_core::hook::PartnerEvent;
use loyalty_core::ledger::{LedgerEntry, Lot, LotId, NewEntry, NewLot};
use loyalty_core::model::{EntryId, HoldId};
use loyalty_core::outbox::{NewOutbox, OutboxStatus};
use loyalty_core::store::{CardUpdate, DeliveryRecord, Hold, HoldStatus, RecordState};
use loyalty_core::{
    Client, ClientId, ClientTx, ConnectionId, HoldTx, LedgerTx, OutboxTx, PartnerId, Phone, Points,
    ProgramVersion, RecordTx, RedemptionTx, Reward, RewardId, StoreError, StoreTx, VisitStatus,
};
use sqlx::{Any, Transaction};

use loyalty_core::code::Code;
use loyalty_core::history::Visit;
use loyalty_core::level::Measure;
use loyalty_core::redemption::{NewRedemption, Redemption, RedemptionStatus, WriteBack};

use crate::rows::{
    self, client_columns, entry_columns, get, hold_columns, lot_columns, redemption_columns,
};
use crate::{Backend, db_err};

/// A transaction on either backend. Dropped without commit, it rolls back.
pub struct SqlTx {
    pub(crate) tx: Transaction<'static, Any>,
    pub(crate) backend: Backend,
    /// Whether the partner this transaction works for has live webhook endpoints, once read
    /// (with the program): events are written only then.
    pub(crate) hooked: Option<(PartnerId, bool)>,
    /// The partner's plan, once read (with the program).
    pub(crate) plan: Option<(PartnerId, loyalty_core::audit::Plan)>,
}

impl SqlTx {
    pub(crate) fn new(tx: Transaction<'static, Any>, backend: Backend) -> SqlTx {
        SqlTx {
            tx,
            backend,
            hooked: None,
            plan: None,
        }
    }
}

fn status_from(s: Option<String>) -> Result<Option<VisitStatus>, StoreError> {
    let Some(s) = s else { return Ok(None) };
    VisitStatus::parse(&s)
        .map(Some)
        .ok_or_else(|| StoreError::Corrupt(format!("record status {s:?}")))
}

#[async_trait]
impl StoreTx for SqlTx {
    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(db_err)
    }
}

#[async_trait]
impl RecordTx for SqlTx {
    async fn lock_record(
        &mut self,
        partner: PartnerId,
        connection: ConnectionId,
        record_id: &str,
    ) -> Result<RecordState, StoreError> {
        // The no-op DO UPDATE takes the row lock on PostgreSQL (SQLite holds the whole file
        // since BEGIN IMMEDIATE), so one record's deliveries are applied one at a time.
        let row = sqlx::query(
            "INSERT INTO crm_records (partner_id, connection_id, record_id, updated_at_ms) \
             VALUES ($1, $2, $3, 0) \
             ON CONFLICT (partner_id, connection_id, record_id) \
             DO UPDATE SET updated_at_ms = crm_records.updated_at_ms \
             RETURNING version, fingerprint, status, client_id, accrued, postings, last_accrual, \
               terms",
        )
        .bind(partner.0)
        .bind(connection.0)
        .bind(record_id)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(db_err)?;
        Ok(RecordState {
            version: get(&row, "version")?,
            fingerprint: get(&row, "fingerprint")?,
            status: status_from(get(&row, "status")?)?,
            client_id: get::<Option<i64>>(&row, "client_id")?.map(ClientId),
            accrued: Points(get(&row, "accrued")?),
            postings: get(&row, "postings")?,
            last_accrual: get::<Option<i64>>(&row, "last_accrual")?.map(EntryId),
            terms: get::<Option<String>>(&row, "terms")?
                .map(|t| {
                    serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("terms: {e}")))
                })
                .transpose()?,
        })
    }

    async fn save_record(&mut self, state: &RecordState, visit: &Visit) -> Result<(), StoreError> {
        let lines = serde_json::to_string(&visit.lines)
            .map_err(|e| StoreError::Backend(format!("visit lines to JSON: {e}")))?;
        let terms = state
            .terms
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Backend(format!("terms to JSON: {e}")))?;
        let sql = crate::pick(self.backend, SAVE_RECORD_POSTGRES, SAVE_RECORD_SQLITE);
        sqlx::query(sql)
            .bind(visit.partner_id.0)
            .bind(visit.connection_id.0)
            .bind(visit.record_id.as_str())
            .bind(state.version)
            .bind(state.fingerprint.as_deref())
            .bind(state.status.map(VisitStatus::as_str))
            .bind(state.client_id.map(|c| c.0))
            .bind(state.accrued.value())
            .bind(state.postings)
            .bind(state.last_accrual.map(|e| e.0))
            .bind(visit.updated_at_ms)
            .bind(visit.visit_at_ms)
            .bind(visit.staff_id.as_deref())
            .bind(visit.staff_name.as_deref())
            .bind(visit.paid_minor)
            .bind(visit.loyalty_paid_minor)
            .bind(lines)
            .bind(visit.source.as_str())
            .bind(terms)
            .bind(loyalty_core::history::record_categories(&visit.lines))
            .bind(service_ids(&visit.lines))
            .execute(&mut *self.tx)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn refresh_summary(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        level_from_ms: i64,
    ) -> Result<Measure, StoreError> {
        let sql = crate::pick(self.backend, SUMMARY_POSTGRES, SUMMARY_SQLITE);
        let row = sqlx::query(sql)
            .bind(partner.0)
            .bind(client.0)
            .bind(level_from_ms)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(db_err)?;
        Ok(Measure {
            visits: get(&row, "level_visits")?,
            paid_minor: get(&row, "level_paid_minor")?,
            referrals: 0,
        })
    }

    async fn record_delivery(
        &mut self,
        partner: PartnerId,
        d: &DeliveryRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO deliveries (partner_id, connection_id, resource, resource_id, outcome, \
             delta, received_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(partner.0)
        .bind(d.connection_id.0)
        .bind(d.resource.as_str())
        .bind(d.resource_id.as_deref())
        .bind(d.outcome.as_str())
        .bind(d.delta.value())
        .bind(d.received_at_ms)
        .execute(&mut *self.tx)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

#[async_trait]
impl ClientTx for SqlTx {
    async fn client(
        &mut self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Option<Client>, StoreError> {
        rows::client_by_id(&mut *self.tx, partner, client).await
    }

    async fn client_by_phone(
        &mut self,
        partner: PartnerId,
        phone: &Phone,
    ) -> Result<Option<Client>, StoreError> {
        rows::client_by_phone(&mut *self.tx, partner, phone).await
    }

    async fn client_by_external_id(
        &mut self,
        partner: PartnerId,
        connection: ConnectionId,
        external_id: &str,
    ) -> Result<Option<Client>, StoreError> {
        sqlx::query(
            "SELECT c.id, c.partner_id, c.phone, c.name, c.telegram_chat_id, c.notifications_off, \
             c.email, c.birth_date, c.level, c.level_floor, c.level_since_ms \
             FROM client_external_ids x JOIN clients c ON c.id = x.client_id \
             WHERE x.partner_id = $1 AND x.connection_id = $2 AND x.external_id = $3 \
             AND c.partner_id = $1",
        )
        .bind(partner.0)
        .bind(connection.0)
        .bind(external_id)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(db_err)?
        .map(|r| rows::client(&r))
        .transpose()
    }

    async fn insert_client(
        &mut self,
        partner: PartnerId,
        phone: &Phone,
        name: Option<&str>,
        now_ms: i64,
    ) -> Result<(Client, bool), StoreError> {
        let inserted = sqlx::query(concat!(
            // A chat that already shared this phone with the bot is linked at once.
            "INSERT INTO clients (partner_id, phone, name, created_at_ms, telegram_chat_id) \
             VALUES ($1, $2, $3, $4, \
               (SELECT chat_id FROM telegram_chats WHERE phone = $2 \
                  AND NOT EXISTS (SELECT 1 FROM salon_bots b WHERE b.partner_id = $1) \
                ORDER BY updated_at_ms DESC LIMIT 1)) \
             ON CONFLICT (partner_id, phone) DO NOTHING RETURNING ",
            client_columns!()
        ))
        .bind(partner.0)
        .bind(phone.as_str())
        .bind(name)
        .bind(now_ms)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(db_err)?;
        if let Some(row) = inserted {
            return Ok((rows::client(&row)?, true));
        }
        let existing = self
            .client_by_phone(partner, phone)
            .await?
            .ok_or_else(|| StoreError::Retryable(format!("client {} vanished", phone.masked())))?;
        Ok((existing, false))
    }

    async fn update_card(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        card: &CardUpdate,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE clients SET name = COALESCE($3, name), email = COALESCE($4, email), \
             birth_date = COALESCE($5, birth_date) WHERE partner_id = $1 AND id = $2",
        )
        .bind(partner.0)
        .bind(client.0)
        .bind(card.name.as_deref())
        .bind(card.email.as_deref())
        .bind(card.birth_date.map(|b| b.to_iso()))
        .execute(&mut *self.tx)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn set_client_phone(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        phone: &Phone,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE clients SET phone = $3, chat_bot_id = 0, telegram_chat_id = \
               (SELECT chat_id FROM telegram_chats WHERE phone = $3 \
                  AND NOT EXISTS (SELECT 1 FROM salon_bots b WHERE b.partner_id = $1) \
                ORDER BY updated_at_ms DESC LIMIT 1) \
             WHERE partner_id = $1 AND id = $2",
        )
        .bind(partner.0)
        .bind(client.0)
        .bind(phone.as_str())
        .execute(&mut *self.tx)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn relink_external_id(
        &mut self,
        partner: PartnerId,
        connection: ConnectionId,
        external_id: &str,
        client: ClientId,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO client_external_ids (partner_id, connection_id, external_id, client_id) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (partner_id, connection_id, external_id) \
             DO UPDATE SET client_id = excluded.client_id",
        )
        .bind(partner.0)
        .bind(connection.0)
        .bind(external_id)
        .bind(client.0)
        .execute(&mut *self.tx)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn link_external_id(
        &mut self,
        partner: PartnerId,
        connection: ConnectionId,
        external_id: &str,
        client: ClientId,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO client_external_ids (partner_id, connection_id, external_id, client_id) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (partner_id, connection_id, external_id) DO NOTHING",
        )
        .bind(partner.0)
        .bind(connection.0)
        .bind(external_id)
        .bind(client.0)
        .execute(&mut *self.tx)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

#[async_trait]
impl LedgerTx for SqlTx {
    async fn program(&mut self, partner: PartnerId) -> Result<ProgramVersion, StoreError> {
        let row = sqlx::query(
            "SELECT program_version AS version, program_from_ms AS effective_from_ms, program, \
             webhook_endpoints, plan FROM partners WHERE id = $1",
        )
        .bind(partner.0)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("partner {partner}")))?;
        self.hooked = Some((partner, crate::hooks::hooked_row(&row)?));
        let plan = crate::audit::plan_from(&get::<String>(&row, "plan")?)?;
        self.plan = Some((partner, plan));
        rows::program_version(&row)
    }

    async fn program_in_force(
        &mut self,
        partner: PartnerId,
        at_ms: i64,
    ) -> Result<ProgramVersion, StoreError> {
        rows::program_in_force(&mut self.tx, partner, at_ms).await
    }

    async fn program_version(
        &mut self,
        partner: PartnerId,
        version: i64,
    ) -> Result<ProgramVersion, StoreError> {
        let row = sqlx::query(
            "SELECT version, effective_from_ms, program FROM program_versions \
             WHERE partner_id = $1 AND version = $2",
        )
        .bind(partner.0)
        .bind(version)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("partner {partner}'s program v{version}")))?;
        rows::program_version(&row)
    }

    async fn lock_balance(
        &mut self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Points, StoreError> {
        let balance: i64 = sqlx::query_scalar(
            "INSERT INTO balances (partner_id, client_id, balance) VALUES ($1, $2, 0) \
             ON CONFLICT (partner_id, client_id) DO UPDATE SET balance = balances.balance \
             RETURNING balance",
        )
        .bind(partner.0)
        .bind(client.0)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(db_err)?;
        Ok(Points(balance))
    }

    async fn set_balance(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        balance: Points,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE balances SET balance = $3 WHERE partner_id = $1 AND client_id = $2")
            .bind(partner.0)
            .bind(client.0)
            .bind(balance.value())
            .execute(&mut *self.tx)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn open_lots(
        &mut self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Vec<Lot>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            lot_columns!(),
            " FROM lots WHERE partner_id = $1 AND client_id = $2 AND remaining > 0 ORDER BY id"
        ))
        .bind(partner.0)
        .bind(client.0)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::lot)
        .collect()
    }

    async fn insert_lot(
        &mut self,
        partner: PartnerId,
        lot: &NewLot,
        now_ms: i64,
    ) -> Result<LotId, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO lots (partner_id, client_id, entry_id, source, amount, remaining, \
             expires_at_ms, created_at_ms) VALUES ($1, $2, $3, $4, $5, $5, $6, $7) RETURNING id",
        )
        .bind(partner.0)
        .bind(lot.client_id.0)
        .bind(lot.entry_id.0)
        .bind(lot.source.as_deref())
        .bind(lot.amount.value())
        .bind(lot.expires_at_ms)
        .bind(now_ms)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(db_err)
    }

    async fn draw_lots(
        &mut self,
        partner: PartnerId,
        entry: EntryId,
        draws: &[(LotId, Points)],
    ) -> Result<(), StoreError> {
        for (lot, amount) in draws {
            sqlx::query(
                "UPDATE lots SET remaining = remaining - $3 WHERE partner_id = $1 AND id = $2",
            )
            .bind(partner.0)
            .bind(*lot)
            .bind(amount.value())
            .execute(&mut *self.tx)
            .await
            .map_err(db_err)?;
            sqlx::query(
                "INSERT INTO lot_draws (partner_id, entry_id, lot_id, amount) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(partner.0)
            .bind(entry.0)
            .bind(*lot)
            .bind(amount.value())
            .execute(&mut *self.tx)
            .await
            .map_err(db_err)?;
        }
        Ok(())
    }

    async fn restore_lots(
        &mut self,
        partner: PartnerId,
        draws: &[(LotId, Points)],
    ) -> Result<(), StoreError> {
        for (lot, amount) in draws {
            sqlx::query(
                "UPDATE lots SET remaining = remaining + $3 WHERE partner_id = $1 AND id = $2",
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

    async fn draws_of(
        &mut self,
        partner: PartnerId,
        entry: EntryId,
    ) -> Result<Vec<(LotId, Points)>, StoreError> {
        sqlx::query(
            "SELECT lot_id, amount FROM lot_draws WHERE partner_id = $1 AND entry_id = $2 \
             ORDER BY lot_id",
        )
        .bind(partner.0)
        .bind(entry.0)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| Ok((get(r, "lot_id")?, Points(get(r, "amount")?))))
        .collect()
    }

    async fn entry_by_key(
        &mut self,
        partner: PartnerId,
        key: &str,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            entry_columns!(),
            " FROM ledger_entries WHERE partner_id = $1 AND idempotency_key = $2"
        ))
        .bind(partner.0)
        .bind(key)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(db_err)?
        .map(|r| rows::entry(&r))
        .transpose()
    }

    async fn insert_entry(
        &mut self,
        partner: PartnerId,
        entry: &NewEntry,
        now_ms: i64,
    ) -> Result<EntryId, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO ledger_entries (partner_id, idempotency_key, kind, debit_account, \
             credit_account, amount, client_id, reverses_entry_id, reason, fingerprint, \
             created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(partner.0)
        .bind(entry.idempotency_key.as_str())
        .bind(entry.kind.as_str())
        .bind(entry.debit.name())
        .bind(entry.credit.name())
        .bind(entry.amount.value())
        .bind(entry.client_id.0)
        .bind(entry.reverses.map(|e| e.0))
        .bind(entry.reason.as_deref())
        .bind(entry.fingerprint())
        .bind(now_ms)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(db_err)?;
        for event in PartnerEvent::of_entry(entry, EntryId(id)) {
            self.emit(partner, &event, now_ms).await?;
        }
        Ok(EntryId(id))
    }

    async fn due_lots(
        &mut self,
        partner: PartnerId,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<Lot>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            lot_columns!(),
            " FROM lots WHERE partner_id = $1 AND remaining > 0 AND expires_at_ms <= $2 \
             ORDER BY expires_at_ms, id LIMIT $3"
        ))
        .bind(partner.0)
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::lot)
        .collect()
    }
}

#[async_trait]
impl HoldTx for SqlTx {
    async fn hold_by_key(
        &mut self,
        partner: PartnerId,
        key: &str,
    ) -> Result<Option<Hold>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            hold_columns!(),
            " FROM holds WHERE partner_id = $1 AND idempotency_key = $2"
        ))
        .bind(partner.0)
        .bind(key)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(db_err)?
        .map(|r| rows::hold(&r))
        .transpose()
    }

    async fn insert_hold(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        amount: Points,
        key: &str,
        now_ms: i64,
    ) -> Result<Hold, StoreError> {
        let row = sqlx::query(concat!(
            "INSERT INTO holds (partner_id, client_id, amount, status, idempotency_key, \
             created_at_ms) VALUES ($1, $2, $3, 'pending', $4, $5) RETURNING ",
            hold_columns!()
        ))
        .bind(partner.0)
        .bind(client.0)
        .bind(amount.value())
        .bind(key)
        .bind(now_ms)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(db_err)?;
        rows::hold(&row)
    }

    async fn lock_hold(
        &mut self,
        partner: PartnerId,
        hold: HoldId,
    ) -> Result<Option<Hold>, StoreError> {
        let for_update = self.backend == Backend::Postgres;
        rows::hold_by_id(&mut *self.tx, partner, hold, for_update).await
    }

    async fn set_hold_status(
        &mut self,
        partner: PartnerId,
        hold: HoldId,
        status: HoldStatus,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE holds SET status = $3, resolved_at_ms = $4 WHERE partner_id = $1 AND id = $2",
        )
        .bind(partner.0)
        .bind(hold.0)
        .bind(status.as_str())
        .bind(now_ms)
        .execute(&mut *self.tx)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

#[async_trait]
impl RedemptionTx for SqlTx {
    async fn redemption_by_key(
        &mut self,
        partner: PartnerId,
        key: &str,
    ) -> Result<Option<Redemption>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            redemption_columns!(),
            " FROM redemptions WHERE partner_id = $1 AND idempotency_key = $2"
        ))
        .bind(partner.0)
        .bind(key)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(db_err)?
        .map(|r| rows::redemption(&r))
        .transpose()
    }

    async fn reward(
        &mut self,
        partner: PartnerId,
        id: RewardId,
    ) -> Result<Option<Reward>, StoreError> {
        rows::reward_by_id(&mut *self.tx, partner, id).await
    }

    async fn lock_redemption(&mut self, code: &Code) -> Result<Option<Redemption>, StoreError> {
        let for_update = self.backend == Backend::Postgres;
        rows::redemption_by_code(&mut *self.tx, code, for_update).await
    }

    async fn insert_redemption(
        &mut self,
        partner: PartnerId,
        r: &NewRedemption,
        now_ms: i64,
    ) -> Result<Redemption, StoreError> {
        let row = sqlx::query(concat!(
            "INSERT INTO redemptions (partner_id, client_id, reward_id, hold_id, code, strategy, \
             status, cost, idempotency_key, expires_at_ms, created_at_ms, updated_at_ms, \
             connection_id, wb_next_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13) RETURNING ",
            redemption_columns!()
        ))
        .bind(partner.0)
        .bind(r.client_id.0)
        .bind(r.reward_id.0)
        .bind(r.hold_id.0)
        .bind(r.code.as_str())
        .bind(r.strategy.as_str())
        .bind(r.status.as_str())
        .bind(r.cost.value())
        .bind(r.idempotency_key.as_str())
        .bind(r.expires_at_ms)
        .bind(now_ms)
        .bind(r.connection_id.map(|c| c.0))
        // A reward for the CRM is due to be written at once.
        .bind((r.status == RedemptionStatus::Pending).then_some(now_ms))
        .fetch_one(&mut *self.tx)
        .await
        .map_err(db_err)?;
        let made = rows::redemption(&row)?;
        if let Some(event) = PartnerEvent::of_redemption(&made, made.status) {
            self.emit(partner, &event, now_ms).await?;
        }
        Ok(made)
    }

    async fn set_redemption_status(
        &mut self,
        partner: PartnerId,
        id: i64,
        status: RedemptionStatus,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let row = sqlx::query(concat!(
            "UPDATE redemptions SET status = $3, updated_at_ms = $4 \
             WHERE partner_id = $1 AND id = $2 RETURNING ",
            redemption_columns!()
        ))
        .bind(partner.0)
        .bind(id)
        .bind(status.as_str())
        .bind(now_ms)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("redemption {id}")))?;
        let r = rows::redemption(&row)?;
        if let Some(event) = PartnerEvent::of_redemption(&r, status) {
            self.emit(partner, &event, now_ms).await?;
        }
        Ok(())
    }

    async fn set_write_back(
        &mut self,
        partner: PartnerId,
        id: i64,
        wb: &WriteBack,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE redemptions SET wb_attempts = $3, wb_next_at_ms = $4, wb_external_id = $5, \
             wb_witness_minor = $6, wb_last_error = $7, updated_at_ms = $8 \
             WHERE partner_id = $1 AND id = $2",
        )
        .bind(partner.0)
        .bind(id)
        .bind(i64::from(wb.attempts))
        .bind(wb.next_attempt_at_ms)
        .bind(wb.external_id.as_deref())
        .bind(wb.witness_minor)
        .bind(wb.last_error.as_deref())
        .bind(now_ms)
        .execute(&mut *self.tx)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("redemption {id}")));
        }
        Ok(())
    }
}

#[async_trait]
impl OutboxTx for SqlTx {
    async fn enqueue(&mut self, partner: PartnerId, msg: &NewOutbox) -> Result<(), StoreError> {
        let payload = serde_json::to_string(&msg.notification)
            .map_err(|e| StoreError::Backend(format!("notification to JSON: {e}")))?;
        sqlx::query(
            "INSERT INTO outbox (partner_id, client_id, partition_key, payload, status, \
             attempts, run_at_ms, created_at_ms) VALUES ($1, $2, $3, $4, $5, 0, $6, $6)",
        )
        .bind(partner.0)
        .bind(msg.client_id.0)
        .bind(msg.partition_key.as_str())
        .bind(payload)
        .bind(OutboxStatus::Pending.as_str())
        .bind(msg.run_at_ms)
        .execute(&mut *self.tx)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

/// The client's summary in one statement: the aggregates, the latest no-show and booking, and
/// the latest visits that came as the text `Rhythm::parse` reads (`$recent`, the only part the
/// backends spell differently).
macro_rules! summary_sql {
    ($recent:literal) => {
        concat!(
            "INSERT INTO client_summaries (partner_id, client_id, first_visit_ms, last_visit_ms, \
               visits, paid_minor, level_visits, level_paid_minor, missed_ms, booked_ms, recent) \
             SELECT $1, $2, \
               MIN(CASE WHEN status = 'came' THEN visit_at_ms END), \
               MAX(CASE WHEN status = 'came' THEN visit_at_ms END), \
               COALESCE(SUM(CASE WHEN status = 'came' THEN 1 ELSE 0 END), 0), \
               COALESCE(SUM(CASE WHEN status = 'came' THEN paid_minor ELSE 0 END), 0), \
               COALESCE(SUM(CASE WHEN status = 'came' AND visit_at_ms >= $3 THEN 1 ELSE 0 END), 0), \
               COALESCE(SUM(CASE WHEN status = 'came' AND visit_at_ms >= $3 THEN paid_minor \
                 ELSE 0 END), 0), \
               MAX(CASE WHEN status IN ('no_show', 'deleted') THEN visit_at_ms END), \
               MAX(CASE WHEN status IN ('waiting', 'confirmed') THEN visit_at_ms END), ",
            $recent,
            " FROM crm_records WHERE partner_id = $1 AND client_id = $2 \
             ON CONFLICT (partner_id, client_id) DO UPDATE SET \
               first_visit_ms = excluded.first_visit_ms, last_visit_ms = excluded.last_visit_ms, \
               visits = excluded.visits, paid_minor = excluded.paid_minor, \
               level_visits = excluded.level_visits, level_paid_minor = excluded.level_paid_minor, \
               missed_ms = excluded.missed_ms, booked_ms = excluded.booked_ms, \
               recent = excluded.recent \
             RETURNING level_visits, level_paid_minor"
        )
    };
}

/// `id|id|…`: the visit's service ids, for looking up their categories in the synced price
/// list; `None` without a service line.
fn service_ids(lines: &[loyalty_core::event::VisitLine]) -> Option<String> {
    let ids: Vec<&str> = lines
        .iter()
        .filter(|l| l.kind == loyalty_core::event::LineKind::Service && !l.item_id.is_empty())
        .map(|l| l.item_id.as_str())
        .collect();
    (!ids.is_empty()).then(|| ids.join("|"))
}

/// A record's write. Its service categories are those its lines carry or, when they carry none
/// (YCLIENTS records name a service's id, not its category), those the connection's synced
/// price list gives its services — so clients' rhythms are per category on every CRM. Category
/// ids are cleaned as `loyalty_core::history::record_categories` cleans them.
macro_rules! save_record_sql {
    ($categories:literal) => {
        concat!(
            "UPDATE crm_records SET version = $4, fingerprint = $5, status = $6, client_id = $7, \
             accrued = $8, postings = $9, last_accrual = $10, updated_at_ms = $11, \
             visit_at_ms = $12, staff_id = $13, staff_name = $14, paid_minor = $15, \
             loyalty_paid_minor = $16, lines = $17, source = $18, terms = $19, \
             categories = COALESCE($20, ",
            $categories,
            ") WHERE partner_id = $1 AND connection_id = $2 AND record_id = $3"
        )
    };
}

const SAVE_RECORD_POSTGRES: &str = save_record_sql!(
    "(SELECT string_agg(c.id, '|' ORDER BY c.id) FROM (SELECT DISTINCT \
       replace(replace(replace(s.category_id, ',', '_'), ':', '_'), '|', '_') AS id \
       FROM crm_services s WHERE s.connection_id = $2 AND s.category_id IS NOT NULL \
       AND s.category_id <> '' AND s.service_id = ANY(string_to_array($21, '|'))) c)"
);

const SAVE_RECORD_SQLITE: &str = save_record_sql!(
    "(SELECT group_concat(c.id, '|') FROM (SELECT DISTINCT \
       replace(replace(replace(s.category_id, ',', '_'), ':', '_'), '|', '_') AS id \
       FROM crm_services s WHERE s.connection_id = $2 AND s.category_id IS NOT NULL \
       AND s.category_id <> '' AND instr('|' || $21 || '|', '|' || s.service_id || '|') > 0 \
       ORDER BY id) c)"
);

const SUMMARY_POSTGRES: &str = summary_sql!(
    "(SELECT string_agg(r.visit_at_ms::TEXT || ':' || COALESCE(r.categories, ''), ',' \
       ORDER BY r.visit_at_ms DESC) FROM (SELECT visit_at_ms, categories FROM crm_records \
       WHERE partner_id = $1 AND client_id = $2 AND status = 'came' \
       AND visit_at_ms IS NOT NULL ORDER BY visit_at_ms DESC LIMIT 30) r)"
);

const SUMMARY_SQLITE: &str = summary_sql!(
    "(SELECT group_concat(r.visit_at_ms || ':' || COALESCE(r.categories, ''), ',' \
       ORDER BY r.visit_at_ms DESC) FROM (SELECT visit_at_ms, categories FROM crm_records \
       WHERE partner_id = $1 AND client_id = $2 AND status = 'came' \
       AND visit_at_ms IS NOT NULL ORDER BY visit_at_ms DESC LIMIT 30) r)"
);

// The summary keeps as many visits as the rhythm reads.
const _: () = assert!(loyalty_core::history::Rhythm::RECENT == 30);
