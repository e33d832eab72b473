//! Personal offers on sqlx: made when the reminder carrying one is sent, locked and saved by the
//! visit that qualifies (its benefit posted through the ledger), read by the bot and the offers'
//! report.

use std::collections::HashMap;

use async_trait::async_trait;
use loyalty_core::offer::{Offer, OfferTerms};
use loyalty_core::{ClientId, OfferTx, PartnerId, Points, StoreError};
use sqlx::any::AnyRow;

use crate::rows::get;
use crate::{Backend, SqlStore, SqlTx, db_err};

pub(crate) const OFFER_COLUMNS: &str = "id, partner_id, client_id, send_id, trigger_name, terms, \
     sent_at_ms, valid_until_ms, record_key, posted, postings";

pub(crate) fn offer(row: &AnyRow) -> Result<Offer, StoreError> {
    let terms: String = get(row, "terms")?;
    let id: i64 = get(row, "id")?;
    Ok(Offer {
        id,
        partner_id: PartnerId(get(row, "partner_id")?),
        client_id: ClientId(get(row, "client_id")?),
        send_id: get(row, "send_id")?,
        trigger: get(row, "trigger_name")?,
        terms: serde_json::from_str::<OfferTerms>(&terms)
            .map_err(|e| StoreError::Corrupt(format!("offer {id}'s terms: {e}")))?,
        sent_at_ms: get(row, "sent_at_ms")?,
        valid_until_ms: get(row, "valid_until_ms")?,
        record_key: get(row, "record_key")?,
        posted: Points(get(row, "posted")?),
        postings: get(row, "postings")?,
    })
}

#[async_trait]
impl OfferTx for SqlTx {
    async fn lock_offers_for(
        &mut self,
        partner: PartnerId,
        client: ClientId,
        record_key: &str,
        at_ms: i64,
    ) -> Result<Vec<Offer>, StoreError> {
        let select = format!(
            "SELECT {OFFER_COLUMNS} FROM offers WHERE partner_id = $1 AND client_id = $2 \
             AND (record_key = $3 OR (record_key IS NULL AND sent_at_ms <= $4 \
                                      AND valid_until_ms >= $4)) \
             ORDER BY CASE WHEN record_key = $3 THEN 0 ELSE 1 END, id"
        );
        let sql = if self.backend == Backend::Postgres {
            format!("{select} FOR UPDATE")
        } else {
            select
        };
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(partner.0)
            .bind(client.0)
            .bind(record_key)
            .bind(at_ms)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(db_err)?
            .iter()
            .map(offer)
            .collect()
    }

    async fn save_offer(&mut self, o: &Offer) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE offers SET record_key = $3, posted = $4, postings = $5 \
             WHERE partner_id = $1 AND id = $2",
        )
        .bind(o.partner_id.0)
        .bind(o.id)
        .bind(o.record_key.as_deref())
        .bind(o.posted.value())
        .bind(o.postings)
        .execute(&mut *self.tx)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

pub(crate) async fn offer_profiles(
    store: &SqlStore,
    partner: PartnerId,
    clients: &[ClientId],
    since_ms: i64,
) -> Result<HashMap<ClientId, loyalty_engage::offers::Profile>, StoreError> {
    let (Some(first), Some(last)) = (clients.iter().min(), clients.iter().max()) else {
        return Ok(HashMap::new());
    };
    let wanted: std::collections::HashSet<ClientId> = clients.iter().copied().collect();
    // The page's clients are a range of ids: one range scan, the others skipped here.
    let rows = sqlx::query(
        "SELECT client_id, staff_id, staff_name, lines, paid_minor FROM crm_records \
         WHERE partner_id = $1 AND status = 'came' AND client_id BETWEEN $2 AND $3 \
           AND visit_at_ms >= $4",
    )
    .bind(partner.0)
    .bind(first.0)
    .bind(last.0)
    .bind(since_ms)
    .fetch_all(&store.pool)
    .await
    .map_err(db_err)?;
    let mut out: HashMap<ClientId, loyalty_engage::offers::Profile> = HashMap::new();
    for r in &rows {
        let client = ClientId(get(r, "client_id")?);
        if !wanted.contains(&client) {
            continue;
        }
        let staff: Option<String> = get(r, "staff_id")?;
        let name: Option<String> = get(r, "staff_name")?;
        let services = services_in(get::<Option<String>>(r, "lines")?.as_deref());
        out.entry(client).or_default().add(
            staff
                .as_deref()
                .map(|id| (id, name.as_deref().unwrap_or_default())),
            &services,
            get(r, "paid_minor")?,
        );
    }
    Ok(out)
}

pub(crate) async fn service_baskets(
    store: &SqlStore,
    partner: PartnerId,
    since_ms: i64,
) -> Result<loyalty_engage::offers::Cooccurrence, StoreError> {
    let rows = sqlx::query(
        "SELECT client_id, lines FROM crm_records WHERE partner_id = $1 AND status = 'came' \
           AND client_id IS NOT NULL AND visit_at_ms >= $2 ORDER BY client_id",
    )
    .bind(partner.0)
    .bind(since_ms)
    .fetch_all(&store.pool)
    .await
    .map_err(db_err)?;
    let mut out = loyalty_engage::offers::Cooccurrence::default();
    let mut current: Option<(i64, std::collections::BTreeMap<String, String>)> = None;
    for r in &rows {
        let client: i64 = get(r, "client_id")?;
        let services = services_in(get::<Option<String>>(r, "lines")?.as_deref());
        match &mut current {
            Some((c, set)) if *c == client => set.extend(services),
            _ => {
                if let Some((_, set)) = current.take() {
                    out.add(&set);
                }
                current = Some((client, services.into_iter().collect()));
            }
        }
    }
    if let Some((_, set)) = current {
        out.add(&set);
    }
    Ok(out)
}

pub(crate) async fn offer_arms(
    store: &SqlStore,
    partner: PartnerId,
    now_ms: i64,
    window_ms: i64,
) -> Result<Vec<loyalty_engage::offers::VariantArm>, StoreError> {
    let rows = sqlx::query(
        "SELECT o.trigger_name, o.variant, COUNT(*) AS n, \
           CAST(SUM(CASE WHEN EXISTS (SELECT 1 FROM crm_records r \
             WHERE r.partner_id = o.partner_id AND r.client_id = o.client_id \
             AND r.status = 'came' AND r.visit_at_ms > o.sent_at_ms \
             AND r.visit_at_ms <= o.sent_at_ms + $3) THEN 1 ELSE 0 END) AS BIGINT) AS returned \
         FROM offers o WHERE o.partner_id = $1 AND o.sent_at_ms <= $2 - $3 \
         GROUP BY o.trigger_name, o.variant ORDER BY o.trigger_name, o.variant",
    )
    .bind(partner.0)
    .bind(now_ms)
    .bind(window_ms)
    .fetch_all(&store.pool)
    .await
    .map_err(db_err)?;
    rows.iter()
        .map(|r| {
            Ok(loyalty_engage::offers::VariantArm {
                trigger: get(r, "trigger_name")?,
                variant: get(r, "variant")?,
                sends: get::<i64>(r, "n")?.max(0) as u64,
                returns: get::<Option<i64>>(r, "returned")?.unwrap_or(0).max(0) as u64,
            })
        })
        .collect()
}

pub(crate) async fn offer_totals(
    store: &SqlStore,
    partner: PartnerId,
    since_ms: i64,
) -> Result<Vec<loyalty_engage::store::OfferTotals>, StoreError> {
    let rows = sqlx::query(
        "SELECT trigger_name, variant, COUNT(*) AS n, \
           CAST(SUM(CASE WHEN sent_at_ms >= $2 THEN 1 ELSE 0 END) AS BIGINT) AS recent, \
           CAST(SUM(CASE WHEN record_key IS NOT NULL AND posted > 0 THEN 1 ELSE 0 END) \
             AS BIGINT) AS posted_n, \
           CAST(SUM(posted) AS BIGINT) AS posted_points \
         FROM offers WHERE partner_id = $1 GROUP BY trigger_name, variant \
         ORDER BY trigger_name, variant",
    )
    .bind(partner.0)
    .bind(since_ms)
    .fetch_all(&store.pool)
    .await
    .map_err(db_err)?;
    let count = |r: &sqlx::any::AnyRow, c: &str| -> Result<u64, StoreError> {
        Ok(get::<Option<i64>>(r, c)?.unwrap_or(0).max(0) as u64)
    };
    rows.iter()
        .map(|r| {
            Ok(loyalty_engage::store::OfferTotals {
                trigger: get(r, "trigger_name")?,
                variant: get(r, "variant")?,
                sent: count(r, "n")?,
                sent_recently: count(r, "recent")?,
                posted: count(r, "posted_n")?,
                posted_points: get::<Option<i64>>(r, "posted_points")?.unwrap_or(0),
            })
        })
        .collect()
}

pub(crate) async fn client_offers(
    store: &SqlStore,
    partner: PartnerId,
    client: ClientId,
) -> Result<Vec<loyalty_core::offer::Offer>, StoreError> {
    let sql = format!(
        "SELECT {} FROM offers WHERE partner_id = $1 AND client_id = $2 ORDER BY id DESC",
        crate::offers::OFFER_COLUMNS
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(partner.0)
        .bind(client.0)
        .fetch_all(&store.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(crate::offers::offer)
        .collect()
}

/// The services of a record's stored lines; lines that cannot be read count as none (they come
/// from our own writes, so only a hand-edited row could).
fn services_in(lines: Option<&str>) -> Vec<(String, String)> {
    lines
        .and_then(|l| serde_json::from_str::<Vec<loyalty_core::event::VisitLine>>(l).ok())
        .map(|l| loyalty_engage::offers::services_of(&l))
        .unwrap_or_default()
}
