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

    /// Whether PostgreSQL answers and takes writes (`transaction_read_only`), connecting first
    /// when needed; a failure forgets the connection.
    pub async fn ask(&mut self) -> Result<(), StoreError> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => self.conn.insert(
                sqlx::AnyConnection::connect(&self.url)
                    .await
                    .map_err(db_err)?,
            ),
        };
        let asked: Result<String, _> =
            sqlx::query_scalar("SELECT current_setting('transaction_read_only')")
                .fetch_one(conn)
                .await;
        match asked {
            Ok(read_only) if read_only == "on" => Err(StoreError::Unavailable(
                "the database is read-only (transaction_read_only = on)".to_owned(),
            )),
            Ok(_) => Ok(()),
            Err(e) => {
                self.conn = None;
                Err(db_err(e))
            }
        }
    }

    /// Forgets the connection: one that did not answer in time is not asked again.
    pub fn forget(&mut self) {
        self.conn = None;
    }
}
