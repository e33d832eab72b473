//! Turning rows into domain types. A row that does not decode is [`StoreError::Corrupt`].

use loyalty_core::ledger::{Account, EntryKind, LedgerEntry, Lot};
use loyalty_core::model::{EntryId, HoldId};
use loyalty_core::outbox::{OutboxMessage, OutboxStatus};
use loyalty_core::store::{Hold, HoldStatus};
use loyalty_core::{
    BirthDate, Client, ClientId, ConnectionId, CrmConnection, Partner, PartnerId, Phone, Points,
    ProgramVersion, StoreError,
};
use sqlx::Row;
use sqlx::any::AnyRow;

pub(crate) fn get<'r, T>(row: &'r AnyRow, col: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(col)
        .map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} {value:?}"))
}

macro_rules! client_columns {
    () => {
        "id, partner_id, phone, name, telegram_chat_id, notifications_off, email, birth_date, \
         level, level_floor, level_since_ms"
    };
}
pub(crate) use client_columns;

/// The partner's client with this phone, on the pool or inside a transaction.
pub(crate) async fn client_by_phone<'e, E>(
    executor: E,
    partner: PartnerId,
    phone: &Phone,
) -> Result<Option<Client>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(concat!(
        "SELECT ",
        client_columns!(),
        " FROM clients WHERE partner_id = $1 AND phone = $2"
    ))
    .bind(partner.0)
    .bind(phone.as_str())
    .fetch_optional(executor)
    .await
    .map_err(crate::db_err)?
    .map(|r| client(&r))
    .transpose()
}

macro_rules! redemption_columns {
    () => {
        "id, partner_id, client_id, reward_id, hold_id, code, strategy, status, cost, \
         idempotency_key, expires_at_ms, created_at_ms, connection_id, wb_attempts, \
         wb_next_at_ms, wb_external_id, wb_witness_minor, wb_last_error"
    };
}
pub(crate) use redemption_columns;

pub(crate) fn redemption(row: &AnyRow) -> Result<loyalty_core::redemption::Redemption, StoreError> {
    use loyalty_core::redemption::{RedemptionStatus, Strategy};
    let code: String = get(row, "code")?;
    let strategy: String = get(row, "strategy")?;
    let status: String = get(row, "status")?;
    Ok(loyalty_core::redemption::Redemption {
        id: get(row, "id")?,
        partner_id: PartnerId(get(row, "partner_id")?),
        client_id: ClientId(get(row, "client_id")?),
        reward_id: loyalty_core::RewardId(get(row, "reward_id")?),
        hold_id: HoldId(get(row, "hold_id")?),
        code: loyalty_core::code::Code::parse(&code).map_err(|_| corrupt("code", &code))?,
        strategy: Strategy::parse(&strategy).ok_or_else(|| corrupt("strategy", &strategy))?,
        status: RedemptionStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        cost: Points(get(row, "cost")?),
        idempotency_key: get(row, "idempotency_key")?,
        expires_at_ms: get(row, "expires_at_ms")?,
        created_at_ms: get(row, "created_at_ms")?,
        write_back: loyalty_core::redemption::WriteBack {
            connection_id: get::<Option<i64>>(row, "connection_id")?.map(ConnectionId),
            attempts: u32::try_from(get::<i64>(row, "wb_attempts")?).unwrap_or(u32::MAX),
            next_attempt_at_ms: get(row, "wb_next_at_ms")?,
            external_id: get(row, "wb_external_id")?,
            witness_minor: get(row, "wb_witness_minor")?,
            last_error: get(row, "wb_last_error")?,
        },
    })
}

macro_rules! reward_columns {
    () => {
        "id, partner_id, title, cost, kind, active"
    };
}
pub(crate) use reward_columns;

pub(crate) fn reward(row: &AnyRow) -> Result<loyalty_core::Reward, StoreError> {
    let kind: String = get(row, "kind")?;
    Ok(loyalty_core::Reward {
        id: loyalty_core::RewardId(get(row, "id")?),
        partner_id: PartnerId(get(row, "partner_id")?),
        title: get(row, "title")?,
        cost: Points(get(row, "cost")?),
        kind: serde_json::from_str(&kind).map_err(|_| corrupt("reward kind", &kind))?,
        active: get::<i64>(row, "active")? != 0,
    })
}

/// A reward of the partner's catalog by id, removed or not.
pub(crate) async fn reward_by_id<'e, E>(
    executor: E,
    partner: PartnerId,
    id: loyalty_core::RewardId,
) -> Result<Option<loyalty_core::Reward>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(concat!(
        "SELECT ",
        reward_columns!(),
        " FROM rewards WHERE partner_id = $1 AND id = $2"
    ))
    .bind(partner.0)
    .bind(id.0)
    .fetch_optional(executor)
    .await
    .map_err(crate::db_err)?
    .map(|r| reward(&r))
    .transpose()
}

pub(crate) fn telegram_chat(row: &AnyRow) -> Result<loyalty_core::TelegramChat, StoreError> {
    let phone: Option<String> = get(row, "phone")?;
    let phone = phone
        .map(|p| Phone::from_e164(&p).map_err(|_| corrupt("phone", &p)))
        .transpose()?;
    Ok(loyalty_core::TelegramChat {
        chat_id: get(row, "chat_id")?,
        phone,
        language: get(row, "language")?,
        active: get::<i64>(row, "active")? != 0,
        joined_partner: get::<Option<i64>>(row, "joined_partner_id")?.map(PartnerId),
        referred_by: get::<Option<i64>>(row, "referrer_client_id")?.map(ClientId),
    })
}

/// The partner's client with this id, on the pool or inside a transaction.
pub(crate) async fn client_by_id<'e, E>(
    executor: E,
    partner: PartnerId,
    client: ClientId,
) -> Result<Option<Client>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(concat!(
        "SELECT ",
        client_columns!(),
        " FROM clients WHERE partner_id = $1 AND id = $2"
    ))
    .bind(partner.0)
    .bind(client.0)
    .fetch_optional(executor)
    .await
    .map_err(crate::db_err)?
    .map(|r| self::client(&r))
    .transpose()
}

/// A hold by id; with `for_update` (PostgreSQL inside a transaction) its row stays locked.
pub(crate) async fn hold_by_id<'e, E>(
    executor: E,
    partner: PartnerId,
    hold_id: HoldId,
    for_update: bool,
) -> Result<Option<Hold>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    const PLAIN: &str = concat!(
        "SELECT ",
        hold_columns!(),
        " FROM holds WHERE partner_id = $1 AND id = $2"
    );
    const LOCKED: &str = concat!(
        "SELECT ",
        hold_columns!(),
        " FROM holds WHERE partner_id = $1 AND id = $2 FOR UPDATE"
    );
    sqlx::query(if for_update { LOCKED } else { PLAIN })
        .bind(partner.0)
        .bind(hold_id.0)
        .fetch_optional(executor)
        .await
        .map_err(crate::db_err)?
        .map(|r| hold(&r))
        .transpose()
}

/// A redemption by code, at any partner; with `for_update` its row stays locked.
pub(crate) async fn redemption_by_code<'e, E>(
    executor: E,
    code: &loyalty_core::code::Code,
    for_update: bool,
) -> Result<Option<loyalty_core::redemption::Redemption>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    const PLAIN: &str = concat!(
        "SELECT ",
        redemption_columns!(),
        " FROM redemptions WHERE code = $1"
    );
    const LOCKED: &str = concat!(
        "SELECT ",
        redemption_columns!(),
        " FROM redemptions WHERE code = $1 FOR UPDATE"
    );
    sqlx::query(if for_update { LOCKED } else { PLAIN })
        .bind(code.as_str())
        .fetch_optional(executor)
        .await
        .map_err(crate::db_err)?
        .map(|r| redemption(&r))
        .transpose()
}

pub(crate) fn client(row: &AnyRow) -> Result<Client, StoreError> {
    let phone: String = get(row, "phone")?;
    Ok(Client {
        id: ClientId(get(row, "id")?),
        partner_id: PartnerId(get(row, "partner_id")?),
        phone: Phone::from_e164(&phone).map_err(|_| corrupt("phone", &phone))?,
        name: get(row, "name")?,
        telegram_chat_id: get(row, "telegram_chat_id")?,
        notifications_off: get::<i64>(row, "notifications_off")? != 0,
        email: get(row, "email")?,
        birth_date: get::<Option<String>>(row, "birth_date")?
            .as_deref()
            .and_then(BirthDate::from_iso),
        level: get(row, "level")?,
        level_floor: get(row, "level_floor")?,
        level_since_ms: get(row, "level_since_ms")?,
    })
}

/// The program version in force at `at_ms`: the newest in force from then or earlier, else the
/// first.
pub(crate) async fn program_in_force(
    conn: &mut sqlx::AnyConnection,
    partner: PartnerId,
    at_ms: i64,
) -> Result<ProgramVersion, StoreError> {
    let in_force = sqlx::query(
        "SELECT version, effective_from_ms, program FROM program_versions \
         WHERE partner_id = $1 AND effective_from_ms <= $2 \
         ORDER BY effective_from_ms DESC, version DESC LIMIT 1",
    )
    .bind(partner.0)
    .bind(at_ms)
    .fetch_optional(&mut *conn)
    .await
    .map_err(crate::db_err)?;
    let row = match in_force {
        Some(row) => row,
        None => sqlx::query(
            "SELECT version, effective_from_ms, program FROM program_versions \
             WHERE partner_id = $1 ORDER BY version LIMIT 1",
        )
        .bind(partner.0)
        .fetch_optional(&mut *conn)
        .await
        .map_err(crate::db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("partner {partner}")))?,
    };
    program_version(&row)
}

/// What came for the client at or after `from_ms`, and her referrals paid by a visit then: the
/// level measure.
pub(crate) async fn measure<'e, E>(
    executor: E,
    partner: PartnerId,
    client: ClientId,
    from_ms: i64,
) -> Result<loyalty_core::level::Measure, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(
        "SELECT COUNT(*) AS visits, CAST(COALESCE(SUM(paid_minor), 0) AS BIGINT) AS paid, \
         (SELECT COUNT(*) FROM referrals WHERE partner_id = $1 AND referrer_id = $2 \
          AND record_key IS NOT NULL AND qualified_at_ms >= $3) AS referrals \
         FROM crm_records WHERE partner_id = $1 AND client_id = $2 AND status = 'came' \
         AND visit_at_ms >= $3",
    )
    .bind(partner.0)
    .bind(client.0)
    .bind(from_ms)
    .fetch_one(executor)
    .await
    .map_err(crate::db_err)?;
    Ok(loyalty_core::level::Measure {
        visits: get(&row, "visits")?,
        paid_minor: get(&row, "paid")?,
        referrals: get(&row, "referrals")?,
    })
}

/// A program version from `version, effective_from_ms, program`.
pub(crate) fn program_version(row: &AnyRow) -> Result<ProgramVersion, StoreError> {
    let program: String = get(row, "program")?;
    Ok(ProgramVersion {
        version: get(row, "version")?,
        effective_from_ms: get(row, "effective_from_ms")?,
        program: serde_json::from_str(&program)
            .map_err(|e| StoreError::Corrupt(format!("program: {e}")))?,
    })
}

pub(crate) fn partner(row: &AnyRow) -> Result<Partner, StoreError> {
    partner_with_id(row, PartnerId(get(row, "id")?))
}

/// A partner from a row with its `name`, `program` and `plan` (the id known otherwise: a join
/// whose `id` is another table's).
pub(crate) fn partner_with_id(row: &AnyRow, id: PartnerId) -> Result<Partner, StoreError> {
    let program: String = get(row, "program")?;
    Ok(Partner {
        id,
        name: get(row, "name")?,
        program: serde_json::from_str(&program)
            .map_err(|e| StoreError::Corrupt(format!("program: {e}")))?,
        plan: crate::audit::plan_from(&get::<String>(row, "plan")?)?,
    })
}

pub(crate) fn connection(row: &AnyRow) -> Result<CrmConnection, StoreError> {
    let kind: String = get(row, "kind")?;
    Ok(CrmConnection {
        id: ConnectionId(get(row, "id")?),
        partner_id: PartnerId(get(row, "partner_id")?),
        kind: kind.parse().map_err(|_| corrupt("crm kind", &kind))?,
        company_id: get(row, "company_id")?,
        credentials_ref: get(row, "credentials_ref")?,
        webhook_secret: get(row, "webhook_secret")?,
        points_since_ms: get(row, "points_since_ms")?,
    })
}

macro_rules! entry_columns {
    () => {
        "id, partner_id, idempotency_key, kind, debit_account, \
     credit_account, amount, client_id, reverses_entry_id, reason, fingerprint, created_at_ms"
    };
}
pub(crate) use entry_columns;

pub(crate) fn entry(row: &AnyRow) -> Result<LedgerEntry, StoreError> {
    let kind: String = get(row, "kind")?;
    let debit: String = get(row, "debit_account")?;
    let credit: String = get(row, "credit_account")?;
    Ok(LedgerEntry {
        id: EntryId(get(row, "id")?),
        partner_id: PartnerId(get(row, "partner_id")?),
        idempotency_key: get(row, "idempotency_key")?,
        kind: EntryKind::parse(&kind).ok_or_else(|| corrupt("entry kind", &kind))?,
        debit: Account::parse(&debit).ok_or_else(|| corrupt("account", &debit))?,
        credit: Account::parse(&credit).ok_or_else(|| corrupt("account", &credit))?,
        amount: Points(get(row, "amount")?),
        client_id: ClientId(get(row, "client_id")?),
        reverses: get::<Option<i64>>(row, "reverses_entry_id")?.map(EntryId),
        reason: get(row, "reason")?,
        fingerprint: get(row, "fingerprint")?,
        created_at_ms: get(row, "created_at_ms")?,
    })
}

macro_rules! lot_columns {
    () => {
        "id, client_id, source, amount, remaining, expires_at_ms, created_at_ms"
    };
}
pub(crate) use lot_columns;

pub(crate) fn lot(row: &AnyRow) -> Result<Lot, StoreError> {
    Ok(Lot {
        id: get(row, "id")?,
        client_id: ClientId(get(row, "client_id")?),
        source: get(row, "source")?,
        amount: Points(get(row, "amount")?),
        remaining: Points(get(row, "remaining")?),
        expires_at_ms: get(row, "expires_at_ms")?,
        created_at_ms: get(row, "created_at_ms")?,
    })
}

macro_rules! hold_columns {
    () => {
        "id, partner_id, client_id, amount, status, idempotency_key, created_at_ms"
    };
}
pub(crate) use hold_columns;

pub(crate) fn hold(row: &AnyRow) -> Result<Hold, StoreError> {
    let status: String = get(row, "status")?;
    Ok(Hold {
        id: HoldId(get(row, "id")?),
        partner_id: PartnerId(get(row, "partner_id")?),
        client_id: ClientId(get(row, "client_id")?),
        amount: Points(get(row, "amount")?),
        status: HoldStatus::parse(&status).ok_or_else(|| corrupt("hold status", &status))?,
        idempotency_key: get(row, "idempotency_key")?,
        created_at_ms: get(row, "created_at_ms")?,
    })
}

macro_rules! outbox_columns {
    () => {
        "id, partner_id, client_id, partition_key, payload, status, attempts, run_at_ms, last_error"
    };
}
pub(crate) use outbox_columns;

pub(crate) fn outbox(row: &AnyRow) -> Result<OutboxMessage, StoreError> {
    let payload: String = get(row, "payload")?;
    let status: String = get(row, "status")?;
    Ok(OutboxMessage {
        id: get(row, "id")?,
        partner_id: PartnerId(get(row, "partner_id")?),
        client_id: ClientId(get(row, "client_id")?),
        partition_key: get(row, "partition_key")?,
        notification: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("outbox payload: {e}")))?,
        status: OutboxStatus::parse(&status).ok_or_else(|| corrupt("outbox status", &status))?,
        attempts: get(row, "attempts")?,
        run_at_ms: get(row, "run_at_ms")?,
        last_error: get(row, "last_error")?,
    })
}
