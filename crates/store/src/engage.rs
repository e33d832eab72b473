//! Reminders on sqlx: the scan's pages, the once-keyed decisions that are also the marketing
//! queue, consent, the scan lease, and the uplift's arms.

use std::collections::HashMap;

use async_trait::async_trait;
use loyalty_core::history::Rhythm;
use loyalty_core::hook::PartnerEvent;
use loyalty_core::{ClientId, ConnectionId, PartnerId, StoreError};
use loyalty_engage::risk::SalonModel;
use loyalty_engage::store::{
    ConsentEntry, ConsentKind, EngageStore, NewSend, Page, QueuedReminder, QueuedSms, Reminder,
    SendRow, Snapshots, TriggerArms,
};
use loyalty_engage::uplift::Arm;

use crate::rows::get;
use crate::{Backend, SqlStore, SqlTx, db_err};

/// Rows per multi-row INSERT (9 parameters each, far below either backend's limit).
const INSERT_CHUNK: usize = 500;

fn reminder_of(payload: &str) -> Result<Reminder, StoreError> {
    serde_json::from_str(payload).map_err(|e| StoreError::Corrupt(format!("reminder: {e}")))
}

#[async_trait]
impl EngageStore for SqlStore {
    async fn engage_salt(&self, partner: PartnerId) -> Result<u64, StoreError> {
        let salt: Option<i64> =
            sqlx::query_scalar("SELECT engage_salt FROM partners WHERE id = $1")
                .bind(partner.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        salt.map(|s| s as u64)
            .ok_or_else(|| StoreError::NotFound(format!("partner {partner}")))
    }

    async fn rhythms(
        &self,
        partner: PartnerId,
        page: Page,
    ) -> Result<Vec<(ClientId, Rhythm)>, StoreError> {
        let rows = sqlx::query(
            "SELECT client_id, recent FROM client_summaries WHERE partner_id = $1 \
             AND client_id > $2 ORDER BY client_id LIMIT $3",
        )
        .bind(partner.0)
        .bind(page.after.0)
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let recent: Option<String> = get(r, "recent")?;
                Ok((
                    ClientId(get(r, "client_id")?),
                    Rhythm::parse(recent.as_deref().unwrap_or_default()),
                ))
            })
            .collect()
    }

    async fn snapshots(
        &self,
        partner: PartnerId,
        now_ms: i64,
        expiring_until_ms: i64,
        page: Page,
        with_sms: bool,
    ) -> Result<Snapshots, StoreError> {
        crate::scan_pages::snapshots(self, partner, now_ms, expiring_until_ms, page, with_sms).await
    }

    async fn record_sends(&self, partner: PartnerId, sends: &[NewSend]) -> Result<u64, StoreError> {
        let mut added = 0;
        for chunk in sends.chunks(INSERT_CHUNK) {
            let mut sql = String::from(
                "INSERT INTO engage_sends (partner_id, client_id, trigger_name, cycle, status, \
                 why, payload, decided_at_ms, run_at_ms, channel) VALUES ",
            );
            for i in 0..chunk.len() {
                let p = i * 9 + 2;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "($1, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    p,
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5,
                    p + 6,
                    p + 7,
                    p + 8,
                ));
            }
            sql.push_str(" ON CONFLICT (partner_id, client_id, trigger_name, cycle) DO NOTHING");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(partner.0);
            for s in chunk {
                let payload = serde_json::to_string(&s.reminder)
                    .map_err(|e| StoreError::Backend(format!("reminder to JSON: {e}")))?;
                q = q
                    .bind(s.client.0)
                    .bind(s.trigger.clone())
                    .bind(s.cycle.clone())
                    .bind(if s.control { "control" } else { "queued" })
                    .bind(s.why.clone())
                    .bind(payload)
                    .bind(s.decided_at_ms)
                    .bind(s.decided_at_ms)
                    .bind(s.channel.as_str());
            }
            added += q.execute(&self.pool).await.map_err(db_err)?.rows_affected();
        }
        Ok(added)
    }

    async fn lease_scan(
        &self,
        partner: PartnerId,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO engage_scans (partner_id, owner, leased_until_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (partner_id) DO UPDATE SET owner = excluded.owner, \
               leased_until_ms = excluded.leased_until_ms \
             WHERE engage_scans.leased_until_ms <= $4 OR engage_scans.owner = $2",
        )
        .bind(partner.0)
        .bind(owner)
        .bind(now_ms.saturating_add(lease_ms))
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish_scan(
        &self,
        partner: PartnerId,
        owner: &str,
        now_ms: i64,
        report: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE engage_scans SET leased_until_ms = 0, owner = NULL, last_scan_ms = $3, \
             report = $4 WHERE partner_id = $1 AND owner = $2",
        )
        .bind(partner.0)
        .bind(owner)
        .bind(now_ms)
        .bind(report)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn last_scan(&self, partner: PartnerId) -> Result<Option<(i64, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT last_scan_ms, report FROM engage_scans WHERE partner_id = $1 \
             AND last_scan_ms IS NOT NULL",
        )
        .bind(partner.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|r| {
            Ok((
                get(&r, "last_scan_ms")?,
                get::<Option<String>>(&r, "report")?.unwrap_or_default(),
            ))
        })
        .transpose()
    }

    async fn offer_profiles(
        &self,
        partner: PartnerId,
        clients: &[ClientId],
        since_ms: i64,
    ) -> Result<HashMap<ClientId, loyalty_engage::offers::Profile>, StoreError> {
        crate::offers::offer_profiles(self, partner, clients, since_ms).await
    }

    async fn service_baskets(
        &self,
        partner: PartnerId,
        since_ms: i64,
    ) -> Result<loyalty_engage::offers::Cooccurrence, StoreError> {
        crate::offers::service_baskets(self, partner, since_ms).await
    }

    async fn offer_arms(
        &self,
        partner: PartnerId,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<Vec<loyalty_engage::offers::VariantArm>, StoreError> {
        crate::offers::offer_arms(self, partner, now_ms, window_ms).await
    }

    async fn offer_totals(
        &self,
        partner: PartnerId,
        since_ms: i64,
    ) -> Result<Vec<loyalty_engage::store::OfferTotals>, StoreError> {
        crate::offers::offer_totals(self, partner, since_ms).await
    }

    async fn client_offers(
        &self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Vec<loyalty_core::offer::Offer>, StoreError> {
        crate::offers::client_offers(self, partner, client).await
    }

    async fn salon_model(&self, partner: PartnerId) -> Result<Option<SalonModel>, StoreError> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT model FROM engage_models WHERE partner_id = $1")
                .bind(partner.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        text.map(|t| {
            serde_json::from_str(&t)
                .map_err(|e| StoreError::Corrupt(format!("partner {partner}'s model: {e}")))
        })
        .transpose()
    }

    async fn save_salon_model(
        &self,
        partner: PartnerId,
        model: &SalonModel,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(model)
            .map_err(|e| StoreError::Backend(format!("model to JSON: {e}")))?;
        sqlx::query(
            "INSERT INTO engage_models (partner_id, fitted_at_ms, model) VALUES ($1, $2, $3) \
             ON CONFLICT (partner_id) DO UPDATE SET fitted_at_ms = excluded.fitted_at_ms, \
               model = excluded.model",
        )
        .bind(partner.0)
        .bind(model.fitted_at_ms)
        .bind(text)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn set_consent(
        &self,
        partner: PartnerId,
        client: ClientId,
        kind: ConsentKind,
        granted: bool,
        channel: &str,
        text: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_raw().await?;
        let log_id: i64 = sqlx::query_scalar(
            "INSERT INTO consent_log (partner_id, client_id, kind, granted, channel, text, at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(partner.0)
        .bind(client.0)
        .bind(kind.as_str())
        .bind(i16::from(granted))
        .bind(channel)
        .bind(text)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let (table, channel) = match kind {
            ConsentKind::Marketing => ("marketing_consents", "%"),
            ConsentKind::MarketingSms => ("sms_consents", "sms"),
            ConsentKind::PersonalData => ("", ""),
        };
        if !table.is_empty() {
            let sql = format!(
                "INSERT INTO {table} (partner_id, client_id, granted, log_id, at_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (partner_id, client_id) DO UPDATE SET \
                 granted = excluded.granted, log_id = excluded.log_id, at_ms = excluded.at_ms"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(partner.0)
                .bind(client.0)
                .bind(i16::from(granted))
                .bind(log_id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            if !granted {
                // "Stop offers" stops at once: what is queued is not sent (every channel; a
                // withdrawn SMS opt-in, the SMS).
                sqlx::query(
                    "UPDATE engage_sends SET status = 'cancelled', last_error = 'consent withdrawn' \
                     WHERE partner_id = $1 AND client_id = $2 AND status = 'queued' \
                     AND channel LIKE $3",
                )
                .bind(partner.0)
                .bind(client.0)
                .bind(channel)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
        }
        tx.commit().await.map_err(db_err)
    }

    async fn consent_log(
        &self,
        partner: PartnerId,
        client: ClientId,
    ) -> Result<Vec<ConsentEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, granted, channel, text, at_ms FROM consent_log \
             WHERE partner_id = $1 AND client_id = $2 ORDER BY id",
        )
        .bind(partner.0)
        .bind(client.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(ConsentEntry {
                    kind: get(r, "kind")?,
                    granted: get::<i16>(r, "granted")? != 0,
                    channel: get(r, "channel")?,
                    text: get(r, "text")?,
                    at_ms: get(r, "at_ms")?,
                })
            })
            .collect()
    }

    async fn claim_reminders(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<QueuedReminder>, StoreError> {
        let mut tx = self.begin_raw().await?;
        // Consent withdrawn, or no chat to take it: the reminder is cancelled, not sent.
        sqlx::query(
            "UPDATE engage_sends SET status = 'cancelled', last_error = 'no consent or no chat' \
             WHERE status = 'queued' AND channel = 'telegram' AND run_at_ms <= $1 AND NOT EXISTS ( \
               SELECT 1 FROM clients c \
               JOIN telegram_chats t ON t.chat_id = c.telegram_chat_id AND t.active = 1 \
               JOIN marketing_consents m ON m.partner_id = c.partner_id AND m.client_id = c.id \
                 AND m.granted = 1 \
               WHERE c.id = engage_sends.client_id AND c.notifications_off = 0)",
        )
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let ids = claim(self, &mut tx, "telegram", now_ms, lease_ms, limit).await?;
        if ids.is_empty() {
            tx.commit().await.map_err(db_err)?;
            return Ok(Vec::new());
        }
        // The claimed rows with their chats, in one statement.
        let marks = marks(ids.len());
        let sql = format!(
            "SELECT e.id, e.partner_id, e.client_id, e.payload, e.attempts, t.chat_id, \
             t.language FROM engage_sends e JOIN clients c ON c.id = e.client_id \
             JOIN telegram_chats t ON t.chat_id = c.telegram_chat_id WHERE e.id IN ({marks}) \
             ORDER BY e.run_at_ms, e.id"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in &ids {
            q = q.bind(*id);
        }
        let rows = q.fetch_all(&mut *tx).await.map_err(db_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(QueuedReminder {
                id: get(r, "id")?,
                partner: PartnerId(get(r, "partner_id")?),
                client: ClientId(get(r, "client_id")?),
                chat_id: get(r, "chat_id")?,
                language: get(r, "language")?,
                reminder: reminder_of(&get::<String>(r, "payload")?)?,
                attempts: get(r, "attempts")?,
            });
        }
        tx.commit().await.map_err(db_err)?;
        Ok(out)
    }

    async fn claim_sms(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<QueuedSms>, StoreError> {
        let mut tx = self.begin_raw().await?;
        // The SMS opt-in withdrawn, or an invitation to someone who has linked a chat since.
        sqlx::query(
            "UPDATE engage_sends SET status = 'cancelled', \
               last_error = 'no SMS consent, or on Telegram now' \
             WHERE status = 'queued' AND channel = 'sms' AND run_at_ms <= $1 AND ( \
               NOT EXISTS (SELECT 1 FROM sms_consents s WHERE s.partner_id = engage_sends.partner_id \
                 AND s.client_id = engage_sends.client_id AND s.granted = 1) \
               OR (trigger_name = 'invite' AND EXISTS (SELECT 1 FROM clients c \
                 JOIN telegram_chats t ON t.chat_id = c.telegram_chat_id AND t.active = 1 \
                 WHERE c.id = engage_sends.client_id)))",
        )
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "UPDATE engage_sends SET status = 'dead', last_error = 'no CRM knows the client' \
             WHERE status = 'queued' AND channel = 'sms' AND run_at_ms <= $1 AND NOT EXISTS ( \
               SELECT 1 FROM client_external_ids x WHERE x.partner_id = engage_sends.partner_id \
               AND x.client_id = engage_sends.client_id)",
        )
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let ids = claim(self, &mut tx, "sms", now_ms, lease_ms, limit).await?;
        if ids.is_empty() {
            tx.commit().await.map_err(db_err)?;
            return Ok(Vec::new());
        }
        // Each with the first connection (by id) that knows the client.
        let sql = format!(
            "SELECT e.id, e.partner_id, e.client_id, e.payload, e.attempts, x.connection_id, \
             x.external_id FROM engage_sends e JOIN client_external_ids x \
             ON x.partner_id = e.partner_id AND x.client_id = e.client_id \
             AND x.connection_id = (SELECT MIN(y.connection_id) FROM client_external_ids y \
               WHERE y.partner_id = e.partner_id AND y.client_id = e.client_id) \
             WHERE e.id IN ({}) ORDER BY e.run_at_ms, e.id, x.external_id",
            marks(ids.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in &ids {
            q = q.bind(*id);
        }
        let rows = q.fetch_all(&mut *tx).await.map_err(db_err)?;
        let mut out: Vec<QueuedSms> = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = get(r, "id")?;
            // A client with two ids at one connection: the first.
            if out.last().is_some_and(|o| o.id == id) {
                continue;
            }
            out.push(QueuedSms {
                id,
                partner: PartnerId(get(r, "partner_id")?),
                client: ClientId(get(r, "client_id")?),
                connection: ConnectionId(get(r, "connection_id")?),
                external_id: get(r, "external_id")?,
                reminder: reminder_of(&get::<String>(r, "payload")?)?,
                attempts: get(r, "attempts")?,
            });
        }
        tx.commit().await.map_err(db_err)?;
        Ok(out)
    }

    async fn reminder_sent(&self, id: i64, now_ms: i64) -> Result<(), StoreError> {
        let mut sql_tx = SqlTx::new(self.begin_raw().await?, self.backend);
        let sent = sqlx::query(
            "UPDATE engage_sends SET status = 'sent', sent_at_ms = $2, last_error = NULL \
             WHERE id = $1 AND status = 'queued' \
             RETURNING partner_id, client_id, trigger_name, cycle, channel, payload",
        )
        .bind(id)
        .bind(now_ms)
        .fetch_optional(&mut *sql_tx.tx)
        .await
        .map_err(db_err)?;
        if let Some(row) = sent {
            let reminder = reminder_of(&get::<String>(&row, "payload")?)?;
            // The salon's partners are told, in this transaction (the outbox pattern).
            let event = PartnerEvent::of_engagement(
                ClientId(get(&row, "client_id")?),
                &get::<String>(&row, "trigger_name")?,
                &get::<String>(&row, "cycle")?,
                &get::<String>(&row, "channel")?,
                reminder.offer.is_some(),
            );
            let partner = PartnerId(get(&row, "partner_id")?);
            sql_tx.emit(partner, &event, now_ms).await?;
            let tx = &mut sql_tx.tx;
            if let Some(terms) = &reminder.offer {
                let text = serde_json::to_string(terms)
                    .map_err(|e| StoreError::Backend(format!("offer terms to JSON: {e}")))?;
                let until = now_ms.saturating_add(i64::from(terms.valid_days) * 86_400_000);
                sqlx::query(
                    "INSERT INTO offers (partner_id, client_id, send_id, trigger_name, variant, \
                       terms, sent_at_ms, valid_until_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (send_id) DO NOTHING",
                )
                .bind(get::<i64>(&row, "partner_id")?)
                .bind(get::<i64>(&row, "client_id")?)
                .bind(id)
                .bind(get::<String>(&row, "trigger_name")?)
                .bind(terms.variant.clone())
                .bind(text)
                .bind(now_ms)
                .bind(until)
                .execute(&mut **tx)
                .await
                .map_err(db_err)?;
            }
        }
        sql_tx.tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn reminder_failed(
        &self,
        id: i64,
        error: &str,
        retry_at_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let q = match retry_at_ms {
            Some(at) => sqlx::query(
                "UPDATE engage_sends SET run_at_ms = $3, last_error = $2 \
                 WHERE id = $1 AND status = 'queued'",
            )
            .bind(id)
            .bind(error)
            .bind(at),
            None => sqlx::query(
                "UPDATE engage_sends SET status = 'dead', last_error = $2 \
                 WHERE id = $1 AND status = 'queued'",
            )
            .bind(id)
            .bind(error),
        };
        q.execute(&self.pool).await.map_err(db_err)?;
        Ok(())
    }

    async fn reminder_later(&self, id: i64, run_at_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE engage_sends SET run_at_ms = $2, attempts = attempts - 1 \
             WHERE id = $1 AND status = 'queued'",
        )
        .bind(id)
        .bind(run_at_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn snooze_reminder(
        &self,
        id: i64,
        chat_id: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE engage_sends SET snoozed_at_ms = $3 WHERE id = $1 AND client_id IN ( \
               SELECT id FROM clients WHERE telegram_chat_id = $2)",
        )
        .bind(id)
        .bind(chat_id)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn sends(&self, partner: PartnerId, limit: u32) -> Result<Vec<SendRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, client_id, trigger_name, cycle, status, channel, why, decided_at_ms, \
             sent_at_ms, snoozed_at_ms FROM engage_sends WHERE partner_id = $1 \
             ORDER BY decided_at_ms DESC, id DESC LIMIT $2",
        )
        .bind(partner.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(SendRow {
                    id: get(r, "id")?,
                    client_id: ClientId(get(r, "client_id")?),
                    trigger: get(r, "trigger_name")?,
                    cycle: get(r, "cycle")?,
                    status: get(r, "status")?,
                    channel: get(r, "channel")?,
                    why: get(r, "why")?,
                    decided_at_ms: get(r, "decided_at_ms")?,
                    sent_at_ms: get(r, "sent_at_ms")?,
                    snoozed: get::<Option<i64>>(r, "snoozed_at_ms")?.is_some(),
                })
            })
            .collect()
    }

    async fn visit_histories(
        &self,
        partner: PartnerId,
        now_ms: i64,
    ) -> Result<Vec<(ClientId, loyalty_engage::model::Customer)>, StoreError> {
        const DAY: i64 = 86_400_000;
        let rows = sqlx::query(
            "SELECT client_id, COUNT(DISTINCT visit_at_ms / 86400000) AS days, \
               MIN(visit_at_ms) AS first_ms, MAX(visit_at_ms) AS last_ms, \
               CAST(SUM(paid_minor) AS BIGINT) AS paid \
             FROM crm_records WHERE partner_id = $1 AND status = 'came' \
               AND client_id IS NOT NULL AND visit_at_ms IS NOT NULL AND visit_at_ms < $2 \
             GROUP BY client_id ORDER BY client_id",
        )
        .bind(partner.0)
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let days: i64 = get(r, "days")?;
                let (first, last): (i64, i64) = (get(r, "first_ms")?, get(r, "last_ms")?);
                let paid: Option<i64> = get(r, "paid")?;
                // Whole days, so a repeat visit is never at recency 0.
                let (first_day, last_day, now_day) = (
                    first.div_euclid(DAY),
                    last.div_euclid(DAY),
                    now_ms.div_euclid(DAY),
                );
                Ok((
                    ClientId(get(r, "client_id")?),
                    loyalty_engage::model::Customer {
                        frequency: (days - 1).max(0) as f64,
                        recency: (last_day - first_day) as f64,
                        t: (now_day - first_day).max(last_day - first_day) as f64,
                        monetary: paid.map(|p| p as f64 / days.max(1) as f64),
                    },
                ))
            })
            .collect()
    }

    async fn came_visits(
        &self,
        partner: PartnerId,
    ) -> Result<Vec<(ClientId, loyalty_engage::backtest::Visits)>, StoreError> {
        let rows = sqlx::query(
            "SELECT client_id, visit_at_ms, categories FROM crm_records \
             WHERE partner_id = $1 AND status = 'came' AND client_id IS NOT NULL \
               AND visit_at_ms IS NOT NULL ORDER BY client_id, visit_at_ms",
        )
        .bind(partner.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut out: Vec<(ClientId, loyalty_engage::backtest::Visits)> = Vec::new();
        for r in &rows {
            let client = ClientId(get(r, "client_id")?);
            let visit = (
                get::<i64>(r, "visit_at_ms")?,
                get::<Option<String>>(r, "categories")?.unwrap_or_default(),
            );
            match out.last_mut() {
                Some((c, visits)) if *c == client => visits.push(visit),
                _ => out.push((client, vec![visit])),
            }
        }
        Ok(out)
    }

    async fn uplift_arms(
        &self,
        partner: Option<PartnerId>,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<Vec<TriggerArms>, StoreError> {
        // Intention to treat: every decision to send (whatever became of it) against every
        // client held out; those still queued are too recent to have their window.
        let rows = sqlx::query(
            "SELECT e.partner_id, e.trigger_name, \
               CASE WHEN e.status = 'control' THEN 1 ELSE 0 END AS held, \
               COUNT(*) AS n, \
               CAST(SUM(CASE WHEN EXISTS (SELECT 1 FROM crm_records r \
                 WHERE r.partner_id = e.partner_id AND r.client_id = e.client_id \
                 AND r.status = 'came' AND r.visit_at_ms > e.decided_at_ms \
                 AND r.visit_at_ms <= e.decided_at_ms + $3) THEN 1 ELSE 0 END) AS BIGINT) \
                 AS returned \
             FROM engage_sends e WHERE ($1 = 0 OR e.partner_id = $1) \
               AND e.decided_at_ms <= $2 - $3 \
             GROUP BY e.partner_id, e.trigger_name, \
               CASE WHEN e.status = 'control' THEN 1 ELSE 0 END \
             ORDER BY e.partner_id, e.trigger_name",
        )
        .bind(partner.map_or(0, |p| p.0))
        .bind(now_ms)
        .bind(window_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut out: Vec<TriggerArms> = Vec::new();
        for r in &rows {
            let partner = PartnerId(get(r, "partner_id")?);
            let trigger: String = get(r, "trigger_name")?;
            let arm = Arm {
                n: get::<i64>(r, "n")?.max(0) as u64,
                returned: get::<i64>(r, "returned")?.max(0) as u64,
            };
            let at = match out.last_mut() {
                Some(last) if last.partner == partner && last.trigger == trigger => last,
                _ => {
                    out.push(TriggerArms {
                        partner,
                        trigger,
                        treated: Arm::default(),
                        control: Arm::default(),
                    });
                    out.last_mut()
                        .ok_or_else(|| StoreError::Backend("arms".into()))?
                }
            };
            if get::<i64>(r, "held")? == 1 {
                at.control = arm;
            } else {
                at.treated = arm;
            }
        }
        Ok(out)
    }
}

/// `$1, $2, …, $n`.
fn marks(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Takes up to `limit` queued reminders of `channel` due by `now_ms`: each is pushed `lease_ms`
/// ahead with a try counted, so no other worker takes it meanwhile. Their ids.
async fn claim(
    store: &SqlStore,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    channel: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: u32,
) -> Result<Vec<i64>, StoreError> {
    let pick = match store.backend {
        Backend::Postgres => {
            "SELECT id FROM engage_sends WHERE status = 'queued' AND channel = $4 \
             AND run_at_ms <= $1 ORDER BY run_at_ms, id LIMIT $3 FOR UPDATE SKIP LOCKED"
        }
        Backend::Sqlite => {
            "SELECT id FROM engage_sends WHERE status = 'queued' AND channel = $4 \
             AND run_at_ms <= $1 ORDER BY run_at_ms, id LIMIT $3"
        }
    };
    let sql = format!(
        "UPDATE engage_sends SET run_at_ms = $2, attempts = attempts + 1 WHERE id IN ({pick}) \
         RETURNING id"
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(now_ms)
        .bind(now_ms.saturating_add(lease_ms))
        .bind(i64::from(limit))
        .bind(channel)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_err)
}
