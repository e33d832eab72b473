//! A client's personal data on request (152-FZ, issue 19): all of it exported as JSON, or
//! removed. Removal keeps the client's row under its id — the ledger's amounts, the visits'
//! points, the books — with a number no real phone can be ([`Phone::forgotten`]) and no name,
//! e-mail, birth date, chat or CRM ids; a later visit for the real phone, from a CRM or the
//! desk, finds no one and starts a new client, who links Telegram again.
//!
//! Where the rest lives: the client's own rows (consents to marketing, the outbox's messages,
//! the reminders' payloads, the Telegram chat's link) are removed or scrubbed by the client's
//! id; rows that carry the client only as text (the CRM inbox's events, rejected deliveries,
//! staff notices, kept API answers, the audit log, error texts) are found by the phone — as
//! E.164 and as the bare digits CRMs use — and the chat id.

use loyalty_core::audit::{Actor, AuditAction};
use loyalty_core::history::HistoryStore;
use loyalty_core::{ClientId, LedgerStore, LevelStore, PartnerId, Phone, StoreError};
use loyalty_engage::store::EngageStore;
use serde::Serialize;
use serde_json::{Value, json};

use crate::rows::{client_columns, get};
use crate::{Backend, SqlStore, db_err};

/// What removing a client's personal data did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forgotten {
    pub client_id: i64,
    /// The number the row keeps.
    pub phone: String,
    /// Rows removed or scrubbed, beside the client's own.
    pub rows: u64,
}

/// The most of a client's history an export holds per kind.
const EXPORT_LIMIT: u32 = 100_000;

/// Texts that may name a client by her number: scrubbed of it.
const NUMBER_IN: [(&str, &str); 6] = [
    ("audit_log", "detail"),
    ("connection_incidents", "detail"),
    ("import_jobs", "last_error"),
    ("crm_inbox", "last_error"),
    ("redemptions", "wb_last_error"),
    ("engage_sends", "last_error"),
];

/// Where the bot wrote a client's chat id: her consents' channel, her keys, send errors.
const CHAT_IN: [(&str, &str); 5] = [
    ("consent_log", "channel"),
    ("holds", "idempotency_key"),
    ("redemptions", "idempotency_key"),
    ("ledger_entries", "idempotency_key"),
    ("engage_sends", "last_error"),
];

/// `column` contains the text bound at `$n`.
fn contains(backend: Backend, column: &str, n: u8) -> String {
    match backend {
        Backend::Postgres => format!("strpos(COALESCE({column}, ''), ${n}) > 0"),
        Backend::Sqlite => format!("instr(COALESCE({column}, ''), ${n}) > 0"),
    }
}

impl SqlStore {
    /// Everything the deployment keeps of one client, as JSON: the client's card, CRM ids,
    /// Telegram link, balance, ledger, visits, redemptions, level changes, consents and
    /// referrals. Logged in the audit log.
    pub async fn export_client(
        &self,
        partner: PartnerId,
        client: ClientId,
        actor: &Actor,
        now_ms: i64,
    ) -> Result<Value, StoreError> {
        let card = loyalty_core::ClientStore::client(self, partner, client)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("client {client}")))?;
        let crm_ids: Vec<Value> = sqlx::query(
            "SELECT connection_id, external_id FROM client_external_ids \
             WHERE partner_id = $1 AND client_id = $2 ORDER BY connection_id, external_id",
        )
        .bind(partner.0)
        .bind(client.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| {
            Ok(json!({
                "connection_id": get::<i64>(r, "connection_id")?,
                "external_id": get::<String>(r, "external_id")?,
            }))
        })
        .collect::<Result<_, StoreError>>()?;
        let chat = match card.telegram_chat_id {
            Some(chat) => sqlx::query(
                "SELECT chat_id, language, updated_at_ms FROM telegram_chats WHERE chat_id = $1",
            )
            .bind(chat)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(|r| {
                Ok::<_, StoreError>(json!({
                    "chat_id": get::<i64>(&r, "chat_id")?,
                    "language": get::<String>(&r, "language")?,
                    "linked_at_ms": get::<i64>(&r, "updated_at_ms")?,
                }))
            })
            .transpose()?,
            None => None,
        };
        let referrals: Vec<Value> = sqlx::query(
            "SELECT referrer_id, friend_id, created_at_ms, qualified_at_ms, referrer_points, \
             friend_points FROM referrals \
             WHERE partner_id = $1 AND (referrer_id = $2 OR friend_id = $2) ORDER BY id",
        )
        .bind(partner.0)
        .bind(client.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| {
            let referrer: i64 = get(r, "referrer_id")?;
            Ok(json!({
                "role": if referrer == client.0 { "referrer" } else { "friend" },
                "other_client_id": if referrer == client.0 { get::<i64>(r, "friend_id")? } else { referrer },
                "at_ms": get::<i64>(r, "created_at_ms")?,
                "qualified_at_ms": get::<Option<i64>>(r, "qualified_at_ms")?,
                "points": if referrer == client.0 { get::<i64>(r, "referrer_points")? } else { get::<i64>(r, "friend_points")? },
            }))
        })
        .collect::<Result<_, StoreError>>()?;
        let export = json!({
            "exported_at_ms": now_ms,
            "partner_id": partner.0,
            "client": card,
            "crm_ids": crm_ids,
            "telegram": chat,
            "balance": self.balance(partner, client).await?.0,
            "ledger": LedgerStore::history(self, partner, client, EXPORT_LIMIT).await?,
            "visits": self.visits_of(partner, client, EXPORT_LIMIT).await?,
            "redemptions": loyalty_core::RewardStore::redemptions_of(self, partner, client).await?,
            "level_changes": self.level_changes(partner, client).await?,
            "consents": self.consent_log(partner, client).await?,
            "referrals": referrals,
        });
        crate::audit::append(
            &self.pool,
            partner,
            actor,
            AuditAction::ClientExported,
            &json!({"client": client.0}),
            now_ms,
        )
        .await?;
        Ok(export)
    }

    /// Removes the client's personal data in one transaction, logged in the audit log (by id
    /// only). A client forgotten already is [`StoreError::NotFound`].
    pub async fn forget_client(
        &self,
        partner: PartnerId,
        client: ClientId,
        actor: &Actor,
        now_ms: i64,
    ) -> Result<Forgotten, StoreError> {
        let b = self.backend;
        let mut tx = self.begin_raw().await?;
        let lock = crate::pick(b, " FOR UPDATE", "");
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            concat!(
                "SELECT ",
                client_columns!(),
                " FROM clients WHERE partner_id = $1 AND id = $2 AND forgotten_at_ms IS NULL{}"
            ),
            lock
        )))
        .bind(partner.0)
        .bind(client.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("client {client}")))?;
        let card = crate::rows::client(&row)?;
        let phone = card.phone.as_str().to_owned();
        let digits = card.phone.digits().to_owned();
        let anonymous = Phone::forgotten(client.0);
        let chat = card.telegram_chat_id.map(|c| c.to_string());
        let mut rows = 0u64;
        macro_rules! run {
            ($sql:expr $(, $bind:expr)*) => {{
                rows += sqlx::query(sqlx::AssertSqlSafe($sql))
                    $(.bind($bind))*
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?
                    .rows_affected();
            }};
        }

        // The client's own row and the rows kept by her id.
        sqlx::query(
            "UPDATE clients SET phone = $3, name = NULL, email = NULL, birth_date = NULL, \
             telegram_chat_id = NULL, chat_bot_id = 0, notifications_off = 1, \
             forgotten_at_ms = $4 WHERE partner_id = $1 AND id = $2",
        )
        .bind(partner.0)
        .bind(client.0)
        .bind(anonymous.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let crm_ids: Vec<String> = sqlx::query_scalar(
            "SELECT external_id FROM client_external_ids WHERE partner_id = $1 AND client_id = $2",
        )
        .bind(partner.0)
        .bind(client.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        // A record's fingerprint names its client (`|c:<CRM id>:<phone>`): a delivery of the
        // record after this no longer matches it, and is applied as a change.
        for id in &crm_ids {
            run!(
                "UPDATE crm_records SET fingerprint = replace(fingerprint, $3, '|c::') \
                 WHERE partner_id = $1 AND client_id = $2",
                partner.0,
                client.0,
                format!("|c:{id}:")
            );
        }
        run!(
            "UPDATE crm_records SET fingerprint = replace(fingerprint, $3, $4) \
             WHERE partner_id = $1 AND client_id = $2",
            partner.0,
            client.0,
            phone.as_str(),
            anonymous.as_str()
        );
        for id in &crm_ids {
            run!(
                "DELETE FROM deliveries WHERE partner_id = $1 AND resource = 'client' \
                 AND resource_id = $2",
                partner.0,
                id.as_str()
            );
        }
        for table in [
            "client_external_ids",
            "marketing_consents",
            "sms_consents",
            "outbox",
        ] {
            run!(
                format!("DELETE FROM {table} WHERE partner_id = $1 AND client_id = $2"),
                partner.0,
                client.0
            );
        }
        if let Some(name) = card.name.as_deref().filter(|n| !n.is_empty()) {
            for (table, column) in [("engage_sends", "payload"), ("trigger_fires", "message")] {
                run!(
                    format!(
                        "UPDATE {table} SET {column} = replace({column}, $3, '-') \
                         WHERE partner_id = $1 AND client_id = $2 AND {}",
                        contains(b, column, 3)
                    ),
                    partner.0,
                    client.0,
                    name
                );
            }
        }
        // The Telegram chat's link to the number, unless another salon's client still has it.
        if let Some(chat) = card.telegram_chat_id {
            run!(
                "DELETE FROM telegram_chats WHERE (chat_id = $1 OR phone = $2) \
                 AND NOT EXISTS (SELECT 1 FROM clients c \
                   WHERE c.telegram_chat_id = telegram_chats.chat_id OR c.phone = $2)",
                chat,
                phone.as_str()
            );
        } else {
            run!(
                "DELETE FROM telegram_chats WHERE phone = $1 \
                 AND NOT EXISTS (SELECT 1 FROM clients c WHERE c.phone = $1)",
                phone.as_str()
            );
        }

        // Rows that name the client only in their text, found by the number.
        for needle in [phone.as_str(), digits.as_str()] {
            for (table, column) in [
                ("crm_inbox", "event"),
                ("rejected_deliveries", "body_excerpt"),
                ("staff_messages", "payload"),
            ] {
                run!(
                    format!(
                        "DELETE FROM {table} WHERE partner_id = $1 AND {}",
                        contains(b, column, 2)
                    ),
                    partner.0,
                    needle
                );
            }
            run!(
                format!(
                    "DELETE FROM api_requests WHERE key_id IN \
                     (SELECT id FROM api_keys WHERE partner_id = $1) AND {}",
                    contains(b, "answer_body", 2)
                ),
                partner.0,
                needle
            );
        }
        // Texts that may hold her number, and keys and channels the bot wrote with her chat id.
        let mark = format!("forgotten-{}", client.0);
        let mut scrubs = vec![
            (phone.as_str(), anonymous.as_str(), &NUMBER_IN[..]),
            (digits.as_str(), anonymous.as_str(), &NUMBER_IN[..]),
        ];
        if let Some(chat) = &chat {
            scrubs.push((chat.as_str(), mark.as_str(), &CHAT_IN[..]));
        }
        for (needle, with, columns) in scrubs {
            for (table, column) in columns {
                run!(
                    format!(
                        "UPDATE {table} SET {column} = replace({column}, $2, $3) \
                         WHERE partner_id = $1 AND {}",
                        contains(b, column, 2)
                    ),
                    partner.0,
                    needle,
                    with
                );
            }
        }
        // Kept figures may list clients: computed again when next asked for.
        run!(
            "DELETE FROM analytics_snapshots WHERE partner_id = $1",
            partner.0
        );
        crate::audit::append(
            &mut *tx,
            partner,
            actor,
            AuditAction::ClientForgotten,
            &json!({"client": client.0, "rows": rows}),
            now_ms,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Forgotten {
            client_id: client.0,
            phone: anonymous.as_str().to_owned(),
            rows,
        })
    }
}
