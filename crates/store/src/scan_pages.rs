//! The reminders' scan pages on sqlx: one page of a salon's clients as the triggers read them,
//! read over the page's ids alone; on PostgreSQL through the store's native connections (sqlx's
//! `Any` rows copy every value and its type), on SQLite through the `Any` pool.

use std::collections::HashMap;

use loyalty_core::history::Rhythm;
use loyalty_core::{BirthDate, ClientId, PartnerId, Points, StoreError};
use loyalty_engage::store::{Page, Snapshots};
use loyalty_engage::{Expiring, Recorded, Snapshot};

use crate::rows::get;
use crate::{SqlStore, db_err};

/// A scan's page: the salon's clients with ids in `($4, $6)` — `$6` the next page's first id,
/// found first — with their summary row, balance, points expiring (`$2`, `$3`) and, in `flags`,
/// their reach: 1 an active chat, 2 marketing consent, 4 SMS reach (`$sms`, read from `$join`:
/// an SMS opt-in in force and a CRM that knows the client), 8 notifications off.
///
/// Every joined table is read over the page's ids alone (a big salon's pages would otherwise
/// each read the salon from its first client), the lots in one grouped pass, and the chat by
/// one index lookup per client (joined, the planner may hash every chat of the deployment for
/// each page). It is not a prepared statement: PostgreSQL plans each page for its bounds, where
/// a cached generic plan guesses a handful of rows in the range and loops over the page for
/// every client.
macro_rules! snapshots_sql {
    ($sms:literal, $join:literal) => {
        concat!(
            "SELECT c.id, c.name, c.birth_date, CAST( \
               COALESCE((SELECT CASE WHEN t.active = 1 THEN 1 ELSE 0 END FROM telegram_chats t \
                 WHERE t.chat_id = c.telegram_chat_id), 0) \
               + CASE WHEN m.granted = 1 THEN 2 ELSE 0 END + 4 * ",
            $sms,
            " + CASE WHEN c.notifications_off = 0 THEN 0 ELSE 8 END AS BIGINT) AS flags, \
               s.first_visit_ms, s.last_visit_ms, COALESCE(s.visits, 0) AS visits, \
               COALESCE(s.paid_minor, 0) AS paid_minor, \
               s.missed_ms, s.booked_ms, s.recent, COALESCE(b.balance, 0) AS balance, \
               l.expires_at, l.expiring \
             FROM clients c \
             LEFT JOIN client_summaries s ON s.partner_id = c.partner_id AND s.client_id = c.id \
               AND s.client_id > $4 AND s.client_id < $6 \
             LEFT JOIN balances b ON b.partner_id = c.partner_id AND b.client_id = c.id \
               AND b.client_id > $4 AND b.client_id < $6 \
             LEFT JOIN marketing_consents m ON m.partner_id = c.partner_id AND m.client_id = c.id \
               AND m.client_id > $4 AND m.client_id < $6 \
             LEFT JOIN (SELECT client_id, MIN(expires_at_ms) AS expires_at, \
                 CAST(SUM(CASE WHEN expires_at_ms <= $3 THEN remaining END) AS BIGINT) AS expiring \
               FROM lots WHERE partner_id = $1 AND client_id > $4 AND client_id < $6 \
                 AND remaining > 0 AND expires_at_ms > $2 GROUP BY client_id) l \
               ON l.client_id = c.id ",
            $join,
            " WHERE c.partner_id = $1 AND c.id > $4 AND c.id < $6 ORDER BY c.id LIMIT $5"
        )
    };
}

const SNAPSHOTS: &str = snapshots_sql!("0", "");

const SNAPSHOTS_WITH_SMS: &str = snapshots_sql!(
    "CASE WHEN sc.granted = 1 AND EXISTS (SELECT 1 FROM client_external_ids x \
       WHERE x.partner_id = c.partner_id AND x.client_id = c.id) THEN 1 ELSE 0 END",
    "LEFT JOIN sms_consents sc ON sc.partner_id = c.partner_id AND sc.client_id = c.id \
       AND sc.client_id > $4 AND sc.client_id < $6"
);

/// The first client of the page after the one after `$2` (`$3` its size): none when that page is
/// the salon's last.
const NEXT_PAGE: &str = "SELECT id FROM clients WHERE partner_id = $1 AND id > $2 \
     ORDER BY id LIMIT 1 OFFSET $3";

pub(crate) async fn snapshots(
    store: &SqlStore,
    partner: PartnerId,
    now_ms: i64,
    expiring_until_ms: i64,
    page: Page,
    with_sms: bool,
) -> Result<Snapshots, StoreError> {
    // A salon that sends no SMS reads no SMS consent: its page is the query without them.
    let sql = if with_sms {
        SNAPSHOTS_WITH_SMS
    } else {
        SNAPSHOTS
    };
    let next: Option<i64> = sqlx::query_scalar(NEXT_PAGE)
        .bind(partner.0)
        .bind(page.after.0)
        .bind(i64::from(page.limit))
        .fetch_optional(&store.pool)
        .await
        .map_err(db_err)?;
    // The same statement on either pool: planned per page (see `snapshots_sql!`).
    macro_rules! page_query {
        () => {
            sqlx::query(sql)
                .bind(partner.0)
                .bind(now_ms)
                .bind(expiring_until_ms)
                .bind(page.after.0)
                .bind(i64::from(page.limit))
                .bind(next.unwrap_or(i64::MAX))
                .persistent(false)
        };
    }
    let last_page = next.is_none();
    let mut clients = Vec::new();
    match &store.scan_pool {
        Some(pg) => {
            let rows = page_query!().fetch_all(pg).await.map_err(db_err)?;
            decode(store, partner, &rows, &mut clients).await?;
        }
        None => {
            let rows = page_query!().fetch_all(&store.pool).await.map_err(db_err)?;
            decode(store, partner, &rows, &mut clients).await?;
        }
    }
    Ok(Snapshots {
        clients,
        last: last_page,
    })
}

/// The page's columns, in `snapshots_sql!`'s order (for errors).
const COLUMNS: [&str; 14] = [
    "id",
    "name",
    "birth_date",
    "flags",
    "first_visit_ms",
    "last_visit_ms",
    "visits",
    "paid_minor",
    "missed_ms",
    "booked_ms",
    "recent",
    "balance",
    "expires_at",
    "expiring",
];
/// Column `i` of a page's row.
fn at<'r, R, T>(r: &'r R, i: usize) -> Result<T, StoreError>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    r.try_get(i)
        .map_err(|e| StoreError::Corrupt(format!("column {}: {e}", COLUMNS[i])))
}

/// A page's rows (ordered by id, from either pool) as snapshots, each with the reminders
/// recorded for the client.
async fn decode<R>(
    store: &SqlStore,
    partner: PartnerId,
    rows: &[R],
    out: &mut Vec<(Snapshot, Option<String>)>,
) -> Result<(), StoreError>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Ok(());
    };
    let mut recorded = recorded_between(store, partner, at(first, 0)?, at(last, 0)?).await?;
    for r in rows {
        out.push(snapshot_of(r, &mut recorded)?);
    }
    Ok(())
}

/// One row of a page (the columns in `snapshots_sql!`'s order), on either pool's rows.
fn snapshot_of<'r, R>(
    r: &'r R,
    recorded: &mut HashMap<i64, Vec<Recorded>>,
) -> Result<(Snapshot, Option<String>), StoreError>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let id: i64 = at(r, 0)?;
    let flags: i64 = at(r, 3)?;
    let recent: Option<String> = at(r, 10)?;
    let expiring = match (at::<_, Option<i64>>(r, 12)?, at::<_, Option<i64>>(r, 13)?) {
        (Some(at_ms), Some(points)) => Some(Expiring {
            points: Points(points),
            at_ms,
        }),
        _ => None,
    };
    let snapshot = Snapshot {
        client: ClientId(id),
        first_visit_ms: at(r, 4)?,
        last_visit_ms: at(r, 5)?,
        visits: at(r, 6)?,
        paid_minor: at(r, 7)?,
        rhythm: Rhythm::parse(recent.as_deref().unwrap_or_default()),
        missed_ms: at(r, 8)?,
        booked_ms: at(r, 9)?,
        balance: Points(at(r, 11)?),
        expiring,
        birthday: at::<_, Option<String>>(r, 2)?
            .as_deref()
            .and_then(BirthDate::from_iso),
        telegram: flags & (1 | 8) == 1,
        consent: flags & 2 != 0,
        sms: flags & 4 != 0,
        recorded: recorded.remove(&id).unwrap_or_default(),
    };
    Ok((snapshot, at(r, 1)?))
}

/// The recorded reminders of the clients with ids in `[first, last]`.
async fn recorded_between(
    store: &SqlStore,
    partner: PartnerId,
    first: i64,
    last: i64,
) -> Result<HashMap<i64, Vec<Recorded>>, StoreError> {
    let rows = sqlx::query(
        "SELECT client_id, trigger_name, cycle, status, decided_at_ms, snoozed_at_ms \
         FROM engage_sends WHERE partner_id = $1 AND client_id >= $2 AND client_id <= $3 \
         ORDER BY decided_at_ms, id",
    )
    .bind(partner.0)
    .bind(first)
    .bind(last)
    .fetch_all(&store.pool)
    .await
    .map_err(db_err)?;
    let mut out: HashMap<i64, Vec<Recorded>> = HashMap::new();
    for r in &rows {
        let status: String = get(r, "status")?;
        out.entry(get(r, "client_id")?).or_default().push(Recorded {
            trigger: get(r, "trigger_name")?,
            cycle: get(r, "cycle")?,
            at_ms: get(r, "decided_at_ms")?,
            snoozed: get::<Option<i64>>(r, "snoozed_at_ms")?.is_some(),
            counts: matches!(status.as_str(), "queued" | "sent" | "control"),
        });
    }
    Ok(out)
}
