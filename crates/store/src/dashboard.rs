//! What the dashboard's pages read that no engine capability does: the clients list.

use loyalty_core::{ClientId, PartnerId, StoreError};
use serde::Serialize;

use crate::rows::get;
use crate::{SqlStore, db_err};

/// One line of the clients list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientLine {
    pub id: ClientId,
    /// E.164.
    pub phone: String,
    pub name: Option<String>,
    pub telegram_linked: bool,
    pub level: Option<String>,
    pub balance: i64,
    /// Visits that came.
    pub visits: i64,
    pub last_visit_ms: Option<i64>,
}

/// The overview's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Overview {
    pub clients: i64,
    /// Clients whose chat is linked to the bot.
    pub linked: i64,
    /// Points on the clients' balances (debts count against it).
    pub outstanding: i64,
    /// Visits that came since `since_ms`.
    pub visits_since: i64,
}

/// What the clients list is searched by: digits find phones, anything else names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientQuery {
    All,
    /// Part of a phone number, digits only.
    Phone(String),
    /// Part of a name.
    Name(String),
}

impl ClientQuery {
    /// What a person typed: `+7 916 123`, `916-12`, `Анна`.
    pub fn parse(typed: &str) -> ClientQuery {
        let t = typed.trim();
        if t.is_empty() {
            return ClientQuery::All;
        }
        let phone_like = t.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c));
        let digits: String = t.chars().filter(char::is_ascii_digit).collect();
        if phone_like && !digits.is_empty() {
            ClientQuery::Phone(digits)
        } else {
            ClientQuery::Name(t.to_owned())
        }
    }
}

/// `%` and `_` typed by a person are literal in a LIKE pattern (escaped with `\`).
fn like_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl SqlStore {
    /// The overview's figures for a partner.
    pub async fn overview(
        &self,
        partner: PartnerId,
        since_ms: i64,
    ) -> Result<Overview, StoreError> {
        let row = sqlx::query(
            "SELECT \
               (SELECT COUNT(*) FROM clients WHERE partner_id = $1) AS clients, \
               (SELECT COUNT(*) FROM clients WHERE partner_id = $1 \
                  AND telegram_chat_id IS NOT NULL) AS linked, \
               (SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM balances WHERE partner_id = $1) \
                  AS outstanding, \
               (SELECT COUNT(*) FROM crm_records WHERE partner_id = $1 AND status = 'came' \
                  AND visit_at_ms >= $2) AS visits_since",
        )
        .bind(partner.0)
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(Overview {
            clients: get(&row, "clients")?,
            linked: get(&row, "linked")?,
            outstanding: get(&row, "outstanding")?,
            visits_since: get(&row, "visits_since")?,
        })
    }

    /// A page of the partner's clients, the latest visitors first, with balance and visits.
    pub async fn search_clients(
        &self,
        partner: PartnerId,
        query: &ClientQuery,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<ClientLine>, StoreError> {
        let (filter, pattern) = match query {
            ClientQuery::All => ("", String::new()),
            ClientQuery::Phone(d) => (" AND c.phone LIKE $4 ESCAPE '\\'", like_part(d)),
            // lower() folds Cyrillic on PostgreSQL; SQLite's folds ASCII only.
            ClientQuery::Name(n) => (
                " AND lower(c.name) LIKE lower($4) ESCAPE '\\'",
                like_part(n),
            ),
        };
        let sql = format!(
            "SELECT c.id, c.phone, c.name, c.telegram_chat_id, c.level, \
                    COALESCE(b.balance, 0) AS balance, COALESCE(s.visits, 0) AS visits, \
                    s.last_visit_ms \
             FROM clients c \
             LEFT JOIN balances b ON b.partner_id = c.partner_id AND b.client_id = c.id \
             LEFT JOIN client_summaries s ON s.partner_id = c.partner_id AND s.client_id = c.id \
             WHERE c.partner_id = $1{filter} \
             ORDER BY s.last_visit_ms DESC NULLS LAST, c.id DESC LIMIT $2 OFFSET $3"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(partner.0)
            .bind(i64::from(limit))
            .bind(i64::from(offset));
        if !pattern.is_empty() {
            q = q.bind(pattern);
        }
        let rows = q.fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(ClientLine {
                    id: ClientId(get(r, "id")?),
                    phone: get(r, "phone")?,
                    name: get(r, "name")?,
                    telegram_linked: get::<Option<i64>>(r, "telegram_chat_id")?.is_some(),
                    level: get(r, "level")?,
                    balance: get(r, "balance")?,
                    visits: get(r, "visits")?,
                    last_visit_ms: get(r, "last_visit_ms")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_search_phones_and_words_names() {
        assert_eq!(ClientQuery::parse("  "), ClientQuery::All);
        assert_eq!(
            ClientQuery::parse("+7 (916) 123-45"),
            ClientQuery::Phone("791612345".into())
        );
        assert_eq!(ClientQuery::parse("Анна"), ClientQuery::Name("Анна".into()));
        assert_eq!(ClientQuery::parse("-"), ClientQuery::Name("-".into()));
        assert_eq!(like_part("50%_a"), "%50\\%\\_a%");
    }
}
