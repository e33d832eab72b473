//! The partner API's answers kept by `Idempotency-Key` (migration 0033): the first answer is
//! replayed to the same request for a day; another request under the key is a conflict; a
//! request still being answered is said so (a concurrent retry waits for it).
//!
//! These rows are a cache of answers, not the guarantee: the effect's own key (the ledger's,
//! the redemption's, the record's) keeps a second effect out. So on PostgreSQL they are
//! written without waiting for the disk ([`SqlStore::relaxed`]): a crash may lose the last of
//! them, and a retry then runs into the effect's key. The effect's own commit waits for the
//! disk and with it every earlier write, these included.

use async_trait::async_trait;
use loyalty_core::StoreError;
use loyalty_core::seal::{AnswerTx, KeptAnswer};

use crate::rows::get;
use crate::tx::SqlTx;
use crate::{SqlStore, db_err};

/// How long an answer is replayed.
pub const REPLAY_MS: i64 = 24 * 3_600_000;

/// A request begun this long ago and never answered (its instance died) may be taken over.
pub const ABANDONED_MS: i64 = 60_000;

/// What a request under an `Idempotency-Key` may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The first (or, past a day, a new) request under the key: answer it, then
    /// [`SqlStore::finish_api_request`] or [`SqlStore::release_api_request`].
    New,
    /// The same request was answered so.
    Replay { status: u16, body: String },
    /// The same request is being answered now.
    InProgress,
    /// The key was used with another request.
    Conflict,
}

impl SqlStore {
    /// Claims `idem` of API key `key_id` for the request `fingerprint` names.
    pub async fn claim_api_request(
        &self,
        key_id: i64,
        idem: &str,
        fingerprint: &str,
        now_ms: i64,
    ) -> Result<Claim, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO api_requests (key_id, idem_key, fingerprint, created_at_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (key_id, idem_key) DO NOTHING",
        )
        .bind(key_id)
        .bind(idem)
        .bind(fingerprint)
        .bind(now_ms)
        .execute(self.relaxed())
        .await
        .map_err(db_err)?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim::New);
        }
        let Some(row) = sqlx::query(
            "SELECT fingerprint, answer_status, answer_body, created_at_ms FROM api_requests \
             WHERE key_id = $1 AND idem_key = $2",
        )
        .bind(key_id)
        .bind(idem)
        .fetch_optional(self.relaxed())
        .await
        .map_err(db_err)?
        else {
            // Released between the two statements: the caller may simply try again.
            return Ok(Claim::InProgress);
        };
        let seen: String = get(&row, "fingerprint")?;
        let status: Option<i64> = get(&row, "answer_status")?;
        let created: i64 = get(&row, "created_at_ms")?;
        let expired = created < now_ms.saturating_sub(REPLAY_MS);
        let abandoned = status.is_none() && created < now_ms.saturating_sub(ABANDONED_MS);
        if expired || (abandoned && seen == fingerprint) {
            // Taken over by whoever changes the row first.
            let taken = sqlx::query(
                "UPDATE api_requests SET fingerprint = $3, answer_status = NULL, \
                 answer_body = NULL, created_at_ms = $4 \
                 WHERE key_id = $1 AND idem_key = $2 AND created_at_ms = $5",
            )
            .bind(key_id)
            .bind(idem)
            .bind(fingerprint)
            .bind(now_ms)
            .bind(created)
            .execute(self.relaxed())
            .await
            .map_err(db_err)?;
            return Ok(if taken.rows_affected() == 1 {
                Claim::New
            } else {
                Claim::InProgress
            });
        }
        if seen != fingerprint {
            return Ok(Claim::Conflict);
        }
        match status {
            None => Ok(Claim::InProgress),
            Some(s) => Ok(Claim::Replay {
                status: u16::try_from(s)
                    .map_err(|_| StoreError::Corrupt(format!("kept answer status {s}")))?,
                body: get::<Option<String>>(&row, "answer_body")?.unwrap_or_default(),
            }),
        }
    }

    /// Keeps the answer to a claimed request, to replay.
    pub async fn finish_api_request(
        &self,
        key_id: i64,
        idem: &str,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE api_requests SET answer_status = $3, answer_body = $4 \
             WHERE key_id = $1 AND idem_key = $2",
        )
        .bind(key_id)
        .bind(idem)
        .bind(i64::from(status))
        .bind(body)
        .execute(self.relaxed())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    /// Lets a claimed request go unanswered (it failed on our side or was limited): the same
    /// key may be sent again.
    pub async fn release_api_request(&self, key_id: i64, idem: &str) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM api_requests WHERE key_id = $1 AND idem_key = $2 \
             AND answer_status IS NULL",
        )
        .bind(key_id)
        .bind(idem)
        .execute(self.relaxed())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    /// Forgets answers older than [`REPLAY_MS`]; how many.
    pub async fn forget_api_requests(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM api_requests WHERE created_at_ms < $1")
            .bind(now_ms.saturating_sub(REPLAY_MS))
            .execute(self.relaxed())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}

/// The claim and the answer in the effect's own transaction (its last statement): a row of
/// another request — answered within a day, or begun less than a minute ago — stays, and the
/// caller rolls its effect back; an expired or abandoned one of the same request is taken over.
/// A concurrent transaction that wrote the key is waited for by the unique index.
#[async_trait]
impl AnswerTx for SqlTx {
    async fn keep_answer(&mut self, kept: &KeptAnswer<'_>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO api_requests \
               (key_id, idem_key, fingerprint, answer_status, answer_body, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (key_id, idem_key) DO UPDATE SET \
               fingerprint = excluded.fingerprint, answer_status = excluded.answer_status, \
               answer_body = excluded.answer_body, created_at_ms = excluded.created_at_ms \
             WHERE api_requests.created_at_ms < $7 \
               OR (api_requests.answer_status IS NULL AND api_requests.created_at_ms < $8 \
                   AND api_requests.fingerprint = excluded.fingerprint)",
        )
        .bind(kept.key_id)
        .bind(kept.idem)
        .bind(kept.fingerprint)
        .bind(kept.answer.map(|(status, _)| i64::from(status)))
        .bind(kept.answer.map(|(_, body)| body))
        .bind(kept.now_ms)
        .bind(kept.now_ms.saturating_sub(REPLAY_MS))
        .bind(kept.now_ms.saturating_sub(ABANDONED_MS))
        .execute(&mut *self.tx)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
}
