//! A connection of its own for asking whether the database answers: outside the pool, whose
//! connections may all be busy, or waiting on a network that is gone.

use loyalty_core::StoreError;
use sqlx::Connection;

use crate::db_err;

pub struct Prober {
    url: String,
    conn: Option<sqlx::AnyConnection>,
}

impl Prober {
    pub fn new(url: &str) -> Prober {
        sqlx::any::install_default_drivers();
        Prober {
            url: url.to_owned(),
            conn: None,
        }
    }

    /// `SELECT 1`, connecting first when needed; a failure forgets the connection.
    pub async fn ask(&mut self) -> Result<(), StoreError> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => self.conn.insert(
                sqlx::AnyConnection::connect(&self.url)
                    .await
                    .map_err(db_err)?,
            ),
        };
        let asked = sqlx::query("SELECT 1").execute(conn).await.map(|_| ());
        if asked.is_err() {
            self.conn = None;
        }
        asked.map_err(db_err)
    }

    /// Forgets the connection: one that did not answer in time is not asked again.
    pub fn forget(&mut self) {
        self.conn = None;
    }
}
