//! The CRM's service list per connection, kept for the rewards catalog: which services exist
//! (title, category, price) and which of them the partner lets points buy. A service reward can
//! only name a service that is in the list and allowed; a sync that finds a service gone, or a
//! partner who stops allowing it, takes its rewards off the catalog. Beside it, the CRM's
//! other lists by id and name (masters, service categories, goods).

use loyalty_core::RewardStore;
use std::collections::{HashMap, HashSet};

use loyalty_core::adapter::{CrmNamed, CrmService};
use loyalty_core::{ConnectionId, CrmConnection, PartnerId, RewardKind, StoreError};
use serde::Serialize;

use crate::rows::get;
use crate::{SqlStore, db_err};

/// One service of a connection's CRM, as last synced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogService {
    pub connection_id: ConnectionId,
    pub service_id: String,
    pub title: String,
    pub category_id: Option<String>,
    pub price_min_minor: Option<i64>,
    pub price_max_minor: Option<i64>,
    /// Still in the CRM's list at the last sync.
    pub in_crm: bool,
    /// The partner lets points buy it (the default for a new service).
    pub redeemable: bool,
    pub synced_at_ms: i64,
}

impl CatalogService {
    /// Points can buy it: it is still in the CRM and the partner allows it.
    pub fn buyable(&self) -> bool {
        self.in_crm && self.redeemable
    }

    /// The service's one price, when the CRM gives one (a range has none).
    pub fn price_minor(&self) -> Option<i64> {
        match (self.price_min_minor, self.price_max_minor) {
            (Some(min), Some(max)) if min == max => Some(min),
            (Some(only), None) | (None, Some(only)) => Some(only),
            _ => None,
        }
    }
}

/// What one sync changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ServiceSync {
    /// Services the CRM listed.
    pub listed: u64,
    pub added: u64,
    /// Known services whose title, category or price changed, or that came back.
    pub changed: u64,
    /// Known services the CRM no longer lists.
    pub gone: u64,
    /// Service rewards taken off the catalog because their service is gone.
    pub rewards_stopped: u64,
}

/// `SELECT` of every column, for `concat!` (sqlx takes only static SQL).
macro_rules! select_services {
    () => {
        "SELECT connection_id, service_id, title, category_id, price_min_minor, \
         price_max_minor, in_crm, redeemable, synced_at_ms FROM crm_services "
    };
}

fn service(row: &sqlx::any::AnyRow) -> Result<CatalogService, StoreError> {
    Ok(CatalogService {
        connection_id: ConnectionId(get(row, "connection_id")?),
        service_id: get(row, "service_id")?,
        title: get(row, "title")?,
        category_id: get(row, "category_id")?,
        price_min_minor: get(row, "price_min_minor")?,
        price_max_minor: get(row, "price_max_minor")?,
        in_crm: get::<i64>(row, "in_crm")? != 0,
        redeemable: get::<i64>(row, "redeemable")? != 0,
        synced_at_ms: get(row, "synced_at_ms")?,
    })
}

impl SqlStore {
    /// Replaces what is known of the connection's service list with `services` (the CRM's
    /// whole list), in one transaction: new ones are added (allowed), changed ones updated,
    /// missing ones marked gone; unchanged ones are not rewritten. The partner's choices (`redeemable`) are kept. Then the
    /// partner's service rewards whose service is no longer buyable are taken off the catalog.
    pub async fn sync_services(
        &self,
        connection: &CrmConnection,
        services: &[CrmService],
        now_ms: i64,
    ) -> Result<ServiceSync, StoreError> {
        let mut report = ServiceSync::default();
        let mut tx = self.begin_raw().await?;
        let known: HashMap<String, CatalogService> =
            sqlx::query(concat!(select_services!(), "WHERE connection_id = $1"))
                .bind(connection.id.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?
                .iter()
                .map(|r| service(r).map(|s| (s.service_id.clone(), s)))
                .collect::<Result<_, _>>()?;
        let mut listed = HashSet::new();
        for s in services {
            if s.external_id.trim().is_empty() || !listed.insert(s.external_id.as_str()) {
                continue;
            }
            report.listed += 1;
            let (min, max) = (
                s.price_min.map(|m| m.minor()),
                s.price_max.map(|m| m.minor()),
            );
            match known.get(&s.external_id) {
                None => report.added += 1,
                Some(k)
                    if k.in_crm
                        && k.title == s.title
                        && k.category_id == s.category_id
                        && (k.price_min_minor, k.price_max_minor) == (min, max) =>
                {
                    continue;
                }
                Some(_) => report.changed += 1,
            }
            sqlx::query(
                "INSERT INTO crm_services (connection_id, service_id, partner_id, title, \
                 category_id, price_min_minor, price_max_minor, in_crm, redeemable, synced_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 1, 1, $8) \
                 ON CONFLICT (connection_id, service_id) DO UPDATE SET title = excluded.title, \
                 category_id = excluded.category_id, price_min_minor = excluded.price_min_minor, \
                 price_max_minor = excluded.price_max_minor, in_crm = 1, \
                 synced_at_ms = excluded.synced_at_ms",
            )
            .bind(connection.id.0)
            .bind(s.external_id.as_str())
            .bind(connection.partner_id.0)
            .bind(s.title.as_str())
            .bind(s.category_id.as_deref())
            .bind(min)
            .bind(max)
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        for gone in known
            .values()
            .filter(|k| k.in_crm && !listed.contains(k.service_id.as_str()))
        {
            report.gone += 1;
            sqlx::query(
                "UPDATE crm_services SET in_crm = 0 WHERE connection_id = $1 AND service_id = $2",
            )
            .bind(connection.id.0)
            .bind(gone.service_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        // Unchanged services are not written one by one: the whole list was seen now.
        sqlx::query("UPDATE crm_services SET synced_at_ms = $2 WHERE connection_id = $1")
            .bind(connection.id.0)
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        report.rewards_stopped = self.stop_unbuyable_rewards(connection.partner_id).await?;
        Ok(report)
    }

    /// The connection's services by id; gone ones only with `include_gone`.
    pub async fn services(
        &self,
        connection: ConnectionId,
        include_gone: bool,
    ) -> Result<Vec<CatalogService>, StoreError> {
        sqlx::query(concat!(
            select_services!(),
            "WHERE connection_id = $1 AND (in_crm = 1 OR $2 = 1) ORDER BY service_id"
        ))
        .bind(connection.0)
        .bind(i64::from(include_gone))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(service)
        .collect()
    }

    /// The partner's service with this CRM id: a buyable one first, then by connection id.
    /// `None` when no sync has seen it.
    pub async fn service_of(
        &self,
        partner: PartnerId,
        service_id: &str,
    ) -> Result<Option<CatalogService>, StoreError> {
        sqlx::query(concat!(
            select_services!(),
            "WHERE partner_id = $1 AND service_id = $2 \
             ORDER BY in_crm * redeemable DESC, connection_id LIMIT 1"
        ))
        .bind(partner.0)
        .bind(service_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|r| service(&r))
        .transpose()
    }

    /// Lets points buy the partner's service (on every connection that lists it), or stops
    /// them; stopping takes its rewards off the catalog. `None` when no sync has seen it;
    /// otherwise how many rewards were stopped.
    pub async fn set_service_redeemable(
        &self,
        partner: PartnerId,
        service_id: &str,
        redeemable: bool,
    ) -> Result<Option<u64>, StoreError> {
        let updated = sqlx::query(
            "UPDATE crm_services SET redeemable = $3 WHERE partner_id = $1 AND service_id = $2",
        )
        .bind(partner.0)
        .bind(service_id)
        .bind(i64::from(redeemable))
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        if updated == 0 {
            return Ok(None);
        }
        self.stop_unbuyable_rewards(partner).await.map(Some)
    }

    /// Takes off the catalog the partner's active service rewards whose service the catalog
    /// knows and points can no longer buy. A service no sync has seen is left alone (a CRM
    /// without a service list, or a reward set up before the first sync).
    async fn stop_unbuyable_rewards(&self, partner: PartnerId) -> Result<u64, StoreError> {
        let buyable: HashMap<String, bool> = sqlx::query(
            "SELECT service_id, MAX(in_crm * redeemable) AS buyable FROM crm_services \
             WHERE partner_id = $1 GROUP BY service_id",
        )
        .bind(partner.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| Ok((get(r, "service_id")?, get::<i64>(r, "buyable")? != 0)))
        .collect::<Result<_, StoreError>>()?;
        let mut stopped = 0;
        for reward in self.rewards(partner, false).await? {
            let RewardKind::Service { service_id, .. } = &reward.kind else {
                continue;
            };
            if buyable.get(service_id) == Some(&false)
                && self.remove_reward(partner, reward.id).await?
            {
                stopped += 1;
            }
        }
        Ok(stopped)
    }
}

/// What one sync of a directory (staff, categories or goods) changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DirectorySync {
    pub listed: u64,
    pub added: u64,
    pub renamed: u64,
    pub gone: u64,
}

/// A directory entry as last synced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectoryEntry {
    pub item_id: String,
    pub name: String,
    pub in_crm: bool,
}

impl SqlStore {
    /// Brings the connection's `kind` directory (`staff`, `category`, `good`) to what the CRM
    /// listed, in one transaction: new ids added, names updated, ids no longer listed marked
    /// gone (kept, so old visits still name their master).
    pub async fn sync_directory(
        &self,
        connection: &CrmConnection,
        kind: &str,
        items: &[CrmNamed],
        now_ms: i64,
    ) -> Result<DirectorySync, StoreError> {
        let mut report = DirectorySync {
            listed: items.len() as u64,
            ..DirectorySync::default()
        };
        let mut tx = self.begin_raw().await?;
        let known: HashMap<String, (String, bool)> = sqlx::query(
            "SELECT item_id, name, in_crm FROM crm_directory WHERE connection_id = $1 AND kind = $2",
        )
        .bind(connection.id.0)
        .bind(kind)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| {
            Ok((
                get::<String>(r, "item_id")?,
                (get::<String>(r, "name")?, get::<i16>(r, "in_crm")? != 0),
            ))
        })
        .collect::<Result<_, StoreError>>()?;
        for item in items {
            match known.get(&item.external_id) {
                None => report.added += 1,
                Some((name, in_crm)) if name != &item.name || !in_crm => report.renamed += 1,
                Some(_) => {}
            }
            sqlx::query(
                "INSERT INTO crm_directory (connection_id, kind, item_id, partner_id, name, in_crm, \
                 synced_at_ms) VALUES ($1, $2, $3, $4, $5, 1, $6) \
                 ON CONFLICT (connection_id, kind, item_id) DO UPDATE SET name = excluded.name, \
                 in_crm = 1, synced_at_ms = excluded.synced_at_ms",
            )
            .bind(connection.id.0)
            .bind(kind)
            .bind(item.external_id.as_str())
            .bind(connection.partner_id.0)
            .bind(item.name.as_str())
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        let listed: HashSet<&str> = items.iter().map(|i| i.external_id.as_str()).collect();
        for (id, (_, in_crm)) in &known {
            if *in_crm && !listed.contains(id.as_str()) {
                report.gone += 1;
                sqlx::query(
                    "UPDATE crm_directory SET in_crm = 0 \
                     WHERE connection_id = $1 AND kind = $2 AND item_id = $3",
                )
                .bind(connection.id.0)
                .bind(kind)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
        }
        tx.commit().await.map_err(db_err)?;
        Ok(report)
    }

    /// The connection's `kind` directory, by name.
    pub async fn directory(
        &self,
        connection: ConnectionId,
        kind: &str,
    ) -> Result<Vec<DirectoryEntry>, StoreError> {
        sqlx::query(
            "SELECT item_id, name, in_crm FROM crm_directory \
             WHERE connection_id = $1 AND kind = $2 ORDER BY name, item_id",
        )
        .bind(connection.0)
        .bind(kind)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| {
            Ok(DirectoryEntry {
                item_id: get(r, "item_id")?,
                name: get(r, "name")?,
                in_crm: get::<i16>(r, "in_crm")? != 0,
            })
        })
        .collect()
    }
}
