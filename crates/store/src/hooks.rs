//! Partners' webhook endpoints and the deliveries owed to them (migration 0034): events written
//! in the transaction of the change they tell ([`SqlTx::emit`]), claimed by a sender with a
//! lease (a sender that dies leaves them to the next), delivered or scheduled again, dead at
//! the schedule's end and replayable.

use loyalty_core::hook::{EventType, PartnerEvent};
use loyalty_core::{Client, ClientId, PartnerId, Phone, StoreError};
use serde::Serialize;
use sqlx::any::AnyRow;

use crate::rows::get;
use crate::{SqlStore, SqlTx, db_err, found};

/// An endpoint as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub id: i64,
    pub partner_id: PartnerId,
    pub url: String,
    /// The event types it wants; empty: all.
    pub events: Vec<EventType>,
    /// `whsec_…`.
    #[serde(skip)]
    pub secret: String,
    /// The secret before a rotation, still signing until `previous_until_ms`.
    #[serde(skip)]
    pub previous_secret: Option<String>,
    pub previous_until_ms: Option<i64>,
    pub created_at_ms: i64,
    /// Failing since then (no success after it).
    pub failing_since_ms: Option<i64>,
    pub disabled_at_ms: Option<i64>,
    pub disabled_reason: Option<String>,
}

impl Endpoint {
    /// The secrets that sign a message sent at `now_ms`: the current one, and the previous one
    /// during a rotation.
    pub fn signing_secrets(&self, now_ms: i64) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(old), Some(until)) = (&self.previous_secret, self.previous_until_ms)
            && now_ms < until
        {
            secrets.push(old);
        }
        secrets
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// The schedule ran out (or the endpoint was disabled): listed for the partner to replay.
    Dead,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryState> {
        [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Dead,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// One message owed to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub partner_id: PartnerId,
    pub endpoint_id: i64,
    pub event_type: String,
    /// The JSON sent, byte for byte on every attempt.
    pub body: String,
    pub created_at_ms: i64,
    /// Attempts begun (a claim counts one).
    pub attempts: i64,
    pub next_at_ms: Option<i64>,
    pub state: DeliveryState,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub done_at_ms: Option<i64>,
}

impl Delivery {
    /// The `webhook-id`: the same on every attempt and replay.
    pub fn message_id(&self) -> String {
        format!("msg_{}_{}", self.partner_id.0, self.id)
    }
}

fn events_text(events: &[EventType]) -> String {
    if events.is_empty() {
        "*".to_owned()
    } else {
        events
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn endpoint(r: &AnyRow) -> Result<Endpoint, StoreError> {
    let events: String = get(r, "events")?;
    let events = if events == "*" {
        Vec::new()
    } else {
        events
            .split(' ')
            .map(|e| {
                EventType::parse(e).ok_or_else(|| StoreError::Corrupt(format!("event type {e:?}")))
            })
            .collect::<Result<_, _>>()?
    };
    Ok(Endpoint {
        id: get(r, "id")?,
        partner_id: PartnerId(get(r, "partner_id")?),
        url: get(r, "url")?,
        events,
        secret: get(r, "secret")?,
        previous_secret: get(r, "previous_secret")?,
        previous_until_ms: get(r, "previous_until_ms")?,
        created_at_ms: get(r, "created_at_ms")?,
        failing_since_ms: get(r, "failing_since_ms")?,
        disabled_at_ms: get(r, "disabled_at_ms")?,
        disabled_reason: get(r, "disabled_reason")?,
    })
}

fn delivery(r: &AnyRow) -> Result<Delivery, StoreError> {
    let state: String = get(r, "state")?;
    Ok(Delivery {
        id: get(r, "id")?,
        partner_id: PartnerId(get(r, "partner_id")?),
        endpoint_id: get(r, "endpoint_id")?,
        event_type: get(r, "event_type")?,
        body: get(r, "body")?,
        created_at_ms: get(r, "created_at_ms")?,
        attempts: get(r, "attempts")?,
        next_at_ms: get(r, "next_at_ms")?,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("delivery state {state:?}")))?,
        last_status: get(r, "last_status")?,
        last_error: get(r, "last_error")?,
        done_at_ms: get(r, "done_at_ms")?,
    })
}

const ENDPOINT: &str = "SELECT id, partner_id, url, events, secret, previous_secret, \
     previous_until_ms, created_at_ms, failing_since_ms, disabled_at_ms, disabled_reason \
     FROM webhook_endpoints";

macro_rules! delivery_columns {
    () => {
        "id, partner_id, endpoint_id, event_type, body, created_at_ms, attempts, next_at_ms, \
         state, last_status, last_error, done_at_ms"
    };
}

/// Counts the partner's live endpoints again, in the transaction that changed them.
async fn recount(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    partner: PartnerId,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE partners SET webhook_endpoints = (SELECT COUNT(*) FROM webhook_endpoints \
         WHERE partner_id = $1 AND disabled_at_ms IS NULL) WHERE id = $1",
    )
    .bind(partner.0)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

impl SqlStore {
    /// Adds an endpoint; events from now on are owed to it.
    pub async fn create_endpoint(
        &self,
        partner: PartnerId,
        url: &str,
        events: &[EventType],
        secret: &str,
        now_ms: i64,
    ) -> Result<Endpoint, StoreError> {
        let mut tx = self.begin_raw().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhook_endpoints (partner_id, url, events, secret, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(partner.0)
        .bind(url)
        .bind(events_text(events))
        .bind(secret)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        recount(&mut tx, partner).await?;
        tx.commit().await.map_err(db_err)?;
        self.endpoint(partner, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("endpoint {id}")))
    }

    pub async fn endpoints(&self, partner: PartnerId) -> Result<Vec<Endpoint>, StoreError> {
        let sql = format!("{ENDPOINT} WHERE partner_id = $1 ORDER BY id");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(partner.0)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(endpoint)
            .collect()
    }

    pub async fn endpoint(
        &self,
        partner: PartnerId,
        id: i64,
    ) -> Result<Option<Endpoint>, StoreError> {
        let sql = format!("{ENDPOINT} WHERE partner_id = $1 AND id = $2");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(partner.0)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(|r| endpoint(&r))
            .transpose()
    }

    /// A new secret; the current one keeps signing beside it until `previous_until_ms`.
    pub async fn rotate_secret(
        &self,
        partner: PartnerId,
        id: i64,
        secret: &str,
        previous_until_ms: i64,
    ) -> Result<Option<Endpoint>, StoreError> {
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret = secret, secret = $3, \
             previous_until_ms = $4 WHERE partner_id = $1 AND id = $2",
        )
        .bind(partner.0)
        .bind(id)
        .bind(secret)
        .bind(previous_until_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.endpoint(partner, id).await
    }

    /// Disables (`Some(reason)`) or enables an endpoint. A disabled endpoint is owed nothing
    /// new; what it was owed is dead (replayable). Enabled again, it starts with a clean slate.
    pub async fn set_endpoint_disabled(
        &self,
        partner: PartnerId,
        id: i64,
        reason: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<Endpoint>, StoreError> {
        let mut tx = self.begin_raw().await?;
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET disabled_at_ms = $3, disabled_reason = $4, \
             failing_since_ms = NULL WHERE partner_id = $1 AND id = $2",
        )
        .bind(partner.0)
        .bind(id)
        .bind(reason.map(|_| now_ms))
        .bind(reason)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        if reason.is_some() {
            sqlx::query(
                "UPDATE webhook_deliveries SET state = 'dead', next_at_ms = NULL, \
                 lease_until_ms = NULL, done_at_ms = $2, \
                 last_error = COALESCE(last_error, 'the endpoint was disabled') \
                 WHERE endpoint_id = $1 AND state = 'pending'",
            )
            .bind(id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        recount(&mut tx, partner).await?;
        tx.commit().await.map_err(db_err)?;
        self.endpoint(partner, id).await
    }

    /// Claims up to `limit` deliveries due at `now_ms` with their endpoints: each counts an
    /// attempt and is left alone by other senders until `now_ms + lease_ms` — after which a
    /// sender that died is taken over (the message goes again, with the same id).
    pub async fn claim_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<(Delivery, Endpoint)>, StoreError> {
        let sql = self.sql(
            concat!(
                "UPDATE webhook_deliveries SET next_at_ms = $2, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM webhook_deliveries WHERE state = 'pending' \
                 AND next_at_ms <= $1 ORDER BY next_at_ms, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 RETURNING ",
                delivery_columns!()
            ),
            concat!(
                "UPDATE webhook_deliveries SET next_at_ms = $2, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM webhook_deliveries WHERE state = 'pending' \
                 AND next_at_ms <= $1 ORDER BY next_at_ms, id LIMIT $3) RETURNING ",
                delivery_columns!()
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
        // One read per endpoint, however many of its deliveries came due together.
        let mut endpoints: std::collections::HashMap<i64, Endpoint> = Default::default();
        let mut claimed = Vec::with_capacity(rows.len());
        for r in &rows {
            let d = delivery(r)?;
            let e = match endpoints.get(&d.endpoint_id) {
                Some(e) => e.clone(),
                None => {
                    let e = self
                        .endpoint(d.partner_id, d.endpoint_id)
                        .await?
                        .ok_or_else(|| {
                            StoreError::Corrupt(format!("endpoint {}", d.endpoint_id))
                        })?;
                    endpoints.insert(d.endpoint_id, e.clone());
                    e
                }
            };
            claimed.push((d, e));
        }
        claimed.sort_by_key(|(d, _)| d.id);
        Ok(claimed)
    }

    /// The endpoint answered 2xx: delivered, and the endpoint is well again.
    pub async fn delivery_done(
        &self,
        d: &Delivery,
        status: u16,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_raw().await?;
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'delivered', next_at_ms = NULL, \
             last_status = $2, last_error = NULL, done_at_ms = $3 WHERE id = $1",
        )
        .bind(d.id)
        .bind(i64::from(status))
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        found(done.rows_affected(), || format!("delivery {}", d.id))?;
        sqlx::query("UPDATE webhook_endpoints SET failing_since_ms = NULL WHERE id = $1")
            .bind(d.endpoint_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    /// The attempt failed: due again at `next_at_ms`, or dead without one. The endpoint is
    /// failing since its first failure after a success.
    pub async fn delivery_failed(
        &self,
        d: &Delivery,
        status: Option<u16>,
        error: &str,
        next_at_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_raw().await?;
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET state = $2, next_at_ms = $3, last_status = $4, \
             last_error = $5, done_at_ms = $6 WHERE id = $1",
        )
        .bind(d.id)
        .bind(if next_at_ms.is_some() {
            "pending"
        } else {
            "dead"
        })
        .bind(next_at_ms)
        .bind(status.map(i64::from))
        .bind(error)
        .bind(next_at_ms.is_none().then_some(now_ms))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        found(done.rows_affected(), || format!("delivery {}", d.id))?;
        sqlx::query(
            "UPDATE webhook_endpoints SET failing_since_ms = COALESCE(failing_since_ms, $2) \
             WHERE id = $1",
        )
        .bind(d.endpoint_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    /// The partner's deliveries in `state`, newest first, below id `before`.
    pub async fn deliveries(
        &self,
        partner: PartnerId,
        state: DeliveryState,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM webhook_deliveries WHERE partner_id = $1 AND state = $2 AND id < $3 \
             ORDER BY id DESC LIMIT $4"
        ))
        .bind(partner.0)
        .bind(state.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(delivery)
        .collect()
    }

    pub async fn delivery(
        &self,
        partner: PartnerId,
        id: i64,
    ) -> Result<Option<Delivery>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM webhook_deliveries WHERE partner_id = $1 AND id = $2"
        ))
        .bind(partner.0)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|r| delivery(&r))
        .transpose()
    }

    /// A dead delivery sent again from now, on a fresh schedule; `None` when the partner has
    /// no dead delivery with this id (or its endpoint is disabled).
    pub async fn replay_delivery(
        &self,
        partner: PartnerId,
        id: i64,
        now_ms: i64,
    ) -> Result<Option<Delivery>, StoreError> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'pending', next_at_ms = $3, attempts = 0, \
             done_at_ms = NULL WHERE partner_id = $1 AND id = $2 AND state = 'dead' \
             AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE disabled_at_ms IS NULL)",
        )
        .bind(partner.0)
        .bind(id)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.delivery(partner, id).await
    }

    /// Live endpoints failing since before `cutoff_ms` (the operator's five days).
    pub async fn endpoints_failing_since(
        &self,
        cutoff_ms: i64,
    ) -> Result<Vec<Endpoint>, StoreError> {
        let sql = format!(
            "{ENDPOINT} WHERE disabled_at_ms IS NULL AND failing_since_ms IS NOT NULL \
             AND failing_since_ms <= $1 ORDER BY id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(cutoff_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(endpoint)
            .collect()
    }
}

/// From a partners row with `webhook_endpoints` and `plan`: whether its events are owed to
/// anyone. A salon that left the Enterprise plan keeps its endpoints, but nothing is sent.
pub(crate) fn hooked_row(r: &AnyRow) -> Result<bool, StoreError> {
    let live: i64 = get(r, "webhook_endpoints")?;
    let plan = crate::audit::plan_from(&get::<String>(r, "plan")?)?;
    Ok(live > 0 && plan.allows(loyalty_core::audit::Capability::Api))
}

impl SqlTx {
    /// Whether the partner's events are owed to anyone: live endpoints on a plan with the API,
    /// as this transaction read it (with the program) or reads it now.
    async fn hooked(&mut self, partner: PartnerId) -> Result<bool, StoreError> {
        if let Some(&(p, hooked)) = self.hooked.as_ref()
            && p == partner
        {
            return Ok(hooked);
        }
        let row = sqlx::query("SELECT webhook_endpoints, plan FROM partners WHERE id = $1")
            .bind(partner.0)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(db_err)?;
        let hooked = match row {
            Some(r) => hooked_row(&r)?,
            None => false,
        };
        self.hooked = Some((partner, hooked));
        Ok(hooked)
    }

    /// Owes `event` to each of the partner's live endpoints that wants it, in this
    /// transaction: it is sent if and only if the change commits. Nothing is written for a
    /// partner without endpoints.
    pub(crate) async fn emit(
        &mut self,
        partner: PartnerId,
        event: &PartnerEvent,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if !self.hooked(partner).await? {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO webhook_deliveries (partner_id, endpoint_id, event_type, body, \
             created_at_ms, next_at_ms) SELECT $1, id, $2, $3, $4, $4 FROM webhook_endpoints \
             WHERE partner_id = $1 AND disabled_at_ms IS NULL \
             AND (events = '*' OR (' ' || events || ' ') LIKE $5)",
        )
        .bind(partner.0)
        .bind(event.kind.as_str())
        .bind(event.body(now_ms).to_string())
        .bind(now_ms)
        .bind(format!("% {} %", event.kind.as_str()))
        .execute(&mut *self.tx)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

/// The clients with `phone` already linked to `chat_id` through `bot` (0: the deployment's):
/// linking them again tells no one.
pub(crate) async fn linked_before(
    tx: &mut SqlTx,
    phone: &Phone,
    chat_id: i64,
    bot: i64,
) -> Result<Vec<ClientId>, StoreError> {
    sqlx::query(
        "SELECT id FROM clients WHERE phone = $1 AND telegram_chat_id = $2 AND chat_bot_id = $3",
    )
    .bind(phone.as_str())
    .bind(chat_id)
    .bind(bot)
    .fetch_all(&mut *tx.tx)
    .await
    .map_err(db_err)?
    .iter()
    .map(|r| get(r, "id").map(ClientId))
    .collect()
}

/// Owes each newly linked client's salon a `client.linked` event, in the linking transaction.
pub(crate) async fn tell_linked(
    tx: &mut SqlTx,
    clients: &[Client],
    before: &[ClientId],
) -> Result<(), StoreError> {
    for c in clients.iter().filter(|c| !before.contains(&c.id)) {
        let now = loyalty_core::Clock::now_ms(&loyalty_core::SystemClock);
        tx.emit(c.partner_id, &PartnerEvent::of_linked(c.id), now)
            .await?;
    }
    Ok(())
}
