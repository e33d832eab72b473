//! What the dashboard's analytics read from the ledger and the visit history: points by month,
//! and clients who linked the bot beside those who did not. Each figure comes from one query
//! here; the books' totals from `LedgerStore::account_totals`, the reminders' arms from
//! `EngageStore::uplift_arms`.

use loyalty_core::{PartnerId, StoreError};
use serde::{Deserialize, Serialize};

use crate::rows::get;
use crate::{SqlStore, db_err};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// Points that moved in one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointsFlow {
    /// Issued, net of reversals.
    pub issued: i64,
    /// Spent: rewards used and manual debits.
    pub spent: i64,
    pub expired: i64,
}

/// The books: all-time totals and the flows of each period asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Books {
    pub issued: i64,
    pub spent: i64,
    pub expired: i64,
    pub held: i64,
    pub pending: i64,
    /// On the clients' accounts.
    pub outstanding: i64,
    pub periods: Vec<PointsFlow>,
}

/// One group of clients (linked to the bot, or not) over their visits that came.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Visits old enough to tell a return within 60 days, and those followed by one.
    pub visits_60: i64,
    pub returned_60: i64,
    pub visits_90: i64,
    pub returned_90: i64,
    /// Visits in the last 365 days, the clients they were of, and what their bills came to.
    pub year_visits: i64,
    pub year_clients: i64,
    pub year_paid_minor: i64,
    /// Points those visits earned.
    #[serde(default)]
    pub year_points: i64,
}

impl Group {
    /// Share of visits followed by another within 60 days, in basis points.
    pub fn return_60_bps(&self) -> Option<i64> {
        share_bps(self.returned_60, self.visits_60)
    }

    pub fn return_90_bps(&self) -> Option<i64> {
        share_bps(self.returned_90, self.visits_90)
    }

    /// Visits per client over the last year, in hundredths.
    pub fn visits_per_year_x100(&self) -> Option<i64> {
        (self.year_clients > 0)
            .then(|| (self.year_visits * 100 + self.year_clients / 2) / self.year_clients)
    }

    /// The average bill over the last year, minor units, rounded half up.
    pub fn average_check_minor(&self) -> Option<i64> {
        (self.year_visits > 0)
            .then(|| (self.year_paid_minor + self.year_visits / 2) / self.year_visits)
    }
}

/// `part / whole` in basis points, rounded half up; `None` for an empty whole.
pub fn share_bps(part: i64, whole: i64) -> Option<i64> {
    (whole > 0).then(|| (part * 10_000 + whole / 2) / whole)
}

/// Clients who linked the bot against those who did not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Linked {
    pub linked: Group,
    pub not_linked: Group,
}

impl Linked {
    /// Both groups together. (Their clients never overlap: a client is linked or not.)
    pub fn everyone(&self) -> Group {
        let (a, b) = (&self.linked, &self.not_linked);
        Group {
            visits_60: a.visits_60 + b.visits_60,
            returned_60: a.returned_60 + b.returned_60,
            visits_90: a.visits_90 + b.visits_90,
            returned_90: a.returned_90 + b.returned_90,
            year_visits: a.year_visits + b.year_visits,
            year_clients: a.year_clients + b.year_clients,
            year_paid_minor: a.year_paid_minor + b.year_paid_minor,
            year_points: a.year_points + b.year_points,
        }
    }
}

/// One location of a chain (a CRM connection) and its visits' figures; a return counts at any
/// location of the chain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub connection_id: i64,
    pub linked: Linked,
}

/// The clients whose first visit fell in one period, and how many of them came in each period
/// since (`returned[0]` is the cohort itself).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cohort {
    pub size: i64,
    pub returned: Vec<i64>,
}

/// The analytics page's heavy figures as computed at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(skip)]
    pub computed_at_ms: i64,
    pub books: Books,
    pub linked: Linked,
    /// One cohort per period of the bounds.
    #[serde(default)]
    pub cohorts: Vec<Cohort>,
    /// The same as `linked` for each location with visits, by connection id.
    #[serde(default)]
    pub locations: Vec<Location>,
    /// The clients' 12-month values under the salon's model, when one is fitted.
    #[serde(default)]
    pub values: Option<crate::models::ClientValues>,
}

impl SqlStore {
    /// The books by the periods of `bounds` and linked vs not, as kept for the partner when
    /// they were computed for the same bounds less than `max_age_ms` ago (and `refresh` is
    /// not asked); else computed now and kept.
    pub async fn analytics_snapshot(
        &self,
        partner: PartnerId,
        bounds: &[i64],
        now_ms: i64,
        max_age_ms: i64,
        refresh: bool,
    ) -> Result<Snapshot, StoreError> {
        let bounds_text = serde_json::to_string(bounds)
            .map_err(|e| StoreError::Corrupt(format!("bounds: {e}")))?;
        if !refresh
            && let Some(row) = sqlx::query(
                "SELECT computed_at_ms, body FROM analytics_snapshots \
                 WHERE partner_id = $1 AND bounds = $2 AND computed_at_ms > $3",
            )
            .bind(partner.0)
            .bind(bounds_text.as_str())
            .bind(now_ms - max_age_ms)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
        {
            let body: String = get(&row, "body")?;
            if let Ok(mut kept) = serde_json::from_str::<Snapshot>(&body) {
                kept.computed_at_ms = get(&row, "computed_at_ms")?;
                return Ok(kept);
            }
        }
        // Four independent reads, each on its own pooled connection: the database works them
        // at once.
        let (books, (linked, locations), cohorts, values) = tokio::try_join!(
            self.points_by_period(partner, bounds),
            self.linked_by_location(partner, now_ms),
            self.cohorts(partner, bounds),
            self.client_values(partner, now_ms),
        )?;
        let fresh = Snapshot {
            computed_at_ms: now_ms,
            books,
            linked,
            locations,
            cohorts,
            values,
        };
        let body = serde_json::to_string(&fresh)
            .map_err(|e| StoreError::Corrupt(format!("snapshot: {e}")))?;
        sqlx::query(
            "INSERT INTO analytics_snapshots (partner_id, computed_at_ms, bounds, body) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (partner_id) DO UPDATE SET \
             computed_at_ms = excluded.computed_at_ms, bounds = excluded.bounds, \
             body = excluded.body",
        )
        .bind(partner.0)
        .bind(now_ms)
        .bind(bounds_text.as_str())
        .bind(body.as_str())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(fresh)
    }

    /// Monthly cohorts: the clients whose first visit that came fell in each period of
    /// `bounds`, and how many of them came in that period and each one after.
    pub async fn cohorts(
        &self,
        partner: PartnerId,
        bounds: &[i64],
    ) -> Result<Vec<Cohort>, StoreError> {
        let periods = bounds.len().saturating_sub(1);
        let mut out: Vec<Cohort> = (0..periods)
            .map(|i| Cohort {
                size: 0,
                returned: vec![0; periods - i],
            })
            .collect();
        if periods == 0 {
            return Ok(out);
        }
        // Bounds are bound as $2…; the CASE only names their places.
        let bucket = |column: &str| {
            let mut b = String::from("CASE");
            for i in 1..=periods {
                b.push_str(&format!(" WHEN {column} < ${} THEN {}", i + 2, i - 1));
            }
            b.push_str(" END");
            b
        };
        let last = periods + 2;
        let sql = format!(
            "WITH c AS ( \
               SELECT client_id, {} AS cohort FROM client_summaries \
               WHERE partner_id = $1 AND first_visit_ms >= $2 AND first_visit_ms < ${last}), \
             v AS ( \
               SELECT DISTINCT r.client_id, {} AS period FROM crm_records r \
               JOIN c ON c.client_id = r.client_id \
               WHERE r.partner_id = $1 AND r.status = 'came' AND r.visit_at_ms >= $2 \
                 AND r.visit_at_ms < ${last}) \
             SELECT c.cohort, v.period, COUNT(*) AS clients FROM c \
             JOIN v ON v.client_id = c.client_id AND v.period >= c.cohort \
             GROUP BY c.cohort, v.period",
            bucket("first_visit_ms"),
            bucket("r.visit_at_ms"),
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(partner.0);
        for b in bounds {
            q = q.bind(*b);
        }
        for r in q.fetch_all(&self.pool).await.map_err(db_err)? {
            let (Some(cohort), Some(period)) = (
                get::<Option<i64>>(&r, "cohort")?.and_then(|i| usize::try_from(i).ok()),
                get::<Option<i64>>(&r, "period")?.and_then(|i| usize::try_from(i).ok()),
            ) else {
                continue;
            };
            let clients: i64 = get(&r, "clients")?;
            if let Some(c) = out.get_mut(cohort)
                && let Some(slot) = c.returned.get_mut(period.saturating_sub(cohort))
            {
                *slot = clients;
                if period == cohort {
                    c.size = clients;
                }
            }
        }
        Ok(out)
    }

    /// The books in one pass over the partner's ledger: points issued, spent and expired in
    /// each period `[bounds[i], bounds[i + 1])`, and all-time totals by the ledger's identity
    /// (`issued = outstanding + pending + held + spent + expired`).
    pub async fn points_by_period(
        &self,
        partner: PartnerId,
        bounds: &[i64],
    ) -> Result<Books, StoreError> {
        let periods = bounds.len().saturating_sub(1);
        let mut books = Books {
            periods: vec![PointsFlow::default(); periods],
            ..Books::default()
        };
        // The period's index by the entry's time (-1 before the first, `periods` after the
        // last): bounds are bound as $2…, no text of ours.
        let mut bucket = String::from("CASE");
        for i in 0..=periods {
            bucket.push_str(&format!(
                " WHEN created_at_ms < ${} THEN {}",
                i + 2,
                i as i64 - 1
            ));
        }
        bucket.push_str(&format!(" ELSE {periods} END"));
        let sql = format!(
            "SELECT {bucket} AS period, \
               CAST(SUM(CASE WHEN debit_account = 'program:issued' THEN amount \
                             WHEN credit_account = 'program:issued' THEN -amount ELSE 0 END) \
                    AS BIGINT) AS issued, \
               CAST(SUM(CASE WHEN credit_account = 'program:redeemed' THEN amount ELSE 0 END) \
                    AS BIGINT) AS spent, \
               CAST(SUM(CASE WHEN credit_account = 'program:expired' THEN amount ELSE 0 END) \
                    AS BIGINT) AS expired, \
               CAST(SUM(CASE WHEN credit_account LIKE 'hold:%' THEN amount \
                             WHEN debit_account LIKE 'hold:%' THEN -amount ELSE 0 END) \
                    AS BIGINT) AS held, \
               CAST(SUM(CASE WHEN credit_account LIKE 'pending:%' THEN amount \
                             WHEN debit_account LIKE 'pending:%' THEN -amount ELSE 0 END) \
                    AS BIGINT) AS pending \
             FROM ledger_entries WHERE partner_id = $1 GROUP BY 1"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(partner.0);
        for b in bounds {
            q = q.bind(*b);
        }
        for r in q.fetch_all(&self.pool).await.map_err(db_err)? {
            let flow = PointsFlow {
                issued: get(&r, "issued")?,
                spent: get(&r, "spent")?,
                expired: get(&r, "expired")?,
            };
            books.issued += flow.issued;
            books.spent += flow.spent;
            books.expired += flow.expired;
            books.held += get::<i64>(&r, "held")?;
            books.pending += get::<i64>(&r, "pending")?;
            let i: Option<i64> = get(&r, "period")?;
            if let Some(slot) = i
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| books.periods.get_mut(i))
            {
                *slot = flow;
            }
        }
        books.outstanding = books.issued - books.pending - books.held - books.spent - books.expired;
        Ok(books)
    }

    /// Visits that came, by whether their client has linked the bot (as of now): returns
    /// within 60 and 90 days (counted over visits at least that old), and the last year's
    /// visits, clients, bills and points.
    pub async fn linked_vs_not(
        &self,
        partner: PartnerId,
        now_ms: i64,
    ) -> Result<Linked, StoreError> {
        Ok(self.linked_by_location(partner, now_ms).await?.0)
    }

    /// [`SqlStore::linked_vs_not`] for the whole salon and for each of its locations (CRM
    /// connections) in one statement: a return is a next visit at any location; a client who
    /// came to two locations counts once in the whole.
    pub async fn linked_by_location(
        &self,
        partner: PartnerId,
        now_ms: i64,
    ) -> Result<(Linked, Vec<Location>), StoreError> {
        let figures = "linked, \
               CAST(SUM(CASE WHEN visit_at_ms <= $2 - $3 THEN 1 ELSE 0 END) AS BIGINT) AS v60, \
               CAST(SUM(CASE WHEN visit_at_ms <= $2 - $3 AND next_ms - visit_at_ms <= $3 \
                        THEN 1 ELSE 0 END) AS BIGINT) AS r60, \
               CAST(SUM(CASE WHEN visit_at_ms <= $2 - $4 THEN 1 ELSE 0 END) AS BIGINT) AS v90, \
               CAST(SUM(CASE WHEN visit_at_ms <= $2 - $4 AND next_ms - visit_at_ms <= $4 \
                        THEN 1 ELSE 0 END) AS BIGINT) AS r90, \
               CAST(SUM(CASE WHEN visit_at_ms > $2 - $5 THEN 1 ELSE 0 END) AS BIGINT) AS yv, \
               COUNT(DISTINCT CASE WHEN visit_at_ms > $2 - $5 THEN client_id END) AS yc, \
               CAST(SUM(CASE WHEN visit_at_ms > $2 - $5 THEN paid_minor ELSE 0 END) AS BIGINT) \
                 AS yp, \
               CAST(SUM(CASE WHEN visit_at_ms > $2 - $5 THEN accrued ELSE 0 END) AS BIGINT) \
                 AS ya";
        let sql = format!(
            "WITH v AS ( \
               SELECT r.client_id, r.connection_id, r.visit_at_ms, r.paid_minor, r.accrued, \
                 LEAD(r.visit_at_ms) OVER (PARTITION BY r.client_id ORDER BY r.visit_at_ms) \
                   AS next_ms, \
                 CASE WHEN c.telegram_chat_id IS NULL THEN 0 ELSE 1 END AS linked \
               FROM crm_records r JOIN clients c ON c.id = r.client_id \
               WHERE r.partner_id = $1 AND r.status = 'came' AND r.visit_at_ms IS NOT NULL \
                 AND r.visit_at_ms <= $2) \
             SELECT -1 AS location, {figures} FROM v GROUP BY linked \
             UNION ALL \
             SELECT connection_id AS location, {figures} FROM v GROUP BY connection_id, linked"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(partner.0)
            .bind(now_ms)
            .bind(60 * DAY_MS)
            .bind(90 * DAY_MS)
            .bind(365 * DAY_MS)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let mut whole = Linked::default();
        let mut locations: Vec<Location> = Vec::new();
        for r in &rows {
            let g = Group {
                visits_60: get(r, "v60")?,
                returned_60: get(r, "r60")?,
                visits_90: get(r, "v90")?,
                returned_90: get(r, "r90")?,
                year_visits: get(r, "yv")?,
                year_clients: get(r, "yc")?,
                year_paid_minor: get(r, "yp")?,
                year_points: get(r, "ya")?,
            };
            let location: i64 = get(r, "location")?;
            let into = if location < 0 {
                &mut whole
            } else {
                match locations.iter().position(|l| l.connection_id == location) {
                    Some(i) => &mut locations[i].linked,
                    None => {
                        locations.push(Location {
                            connection_id: location,
                            linked: Linked::default(),
                        });
                        let last = locations.len() - 1;
                        &mut locations[last].linked
                    }
                }
            };
            if get::<i64>(r, "linked")? == 1 {
                into.linked = g;
            } else {
                into.not_linked = g;
            }
        }
        locations.sort_by_key(|l| l.connection_id);
        Ok((whole, locations))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_averages_round_half_up() {
        assert_eq!(share_bps(1, 3), Some(3333));
        assert_eq!(share_bps(2, 3), Some(6667));
        assert_eq!(share_bps(0, 0), None);
        let g = Group {
            year_visits: 3,
            year_clients: 2,
            year_paid_minor: 1_000,
            ..Group::default()
        };
        assert_eq!(g.visits_per_year_x100(), Some(150));
        assert_eq!(g.average_check_minor(), Some(333));
    }
}
