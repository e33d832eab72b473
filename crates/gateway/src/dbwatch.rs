//! Whether PostgreSQL answers, watched by a probe on a connection of its own (issue 19): when
//! the network to the database is gone a query does not fail, it waits — and a CRM's webhook
//! with it, until the CRM gives up (YCLIENTS never sends it again). The probe asks whether the
//! database takes writes every [`Probe::every`]; one that takes longer than [`Probe::limit`],
//! or finds it read-only, marks the database down (the cause kept), and every webhook then in flight or arriving is answered 503 at once (the CRM's
//! poller brings what was lost), `/readyz` fails, until a probe answers again — the pool's
//! connections then reconnect by themselves. The embedded SQLite is never down this way.

use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

/// The probe's pace.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub every: Duration,
    /// A probe slower than this, or failing, marks the database down.
    pub limit: Duration,
}

impl Default for Probe {
    /// Down within 0.8 s of the network going: a webhook is answered within a second.
    fn default() -> Probe {
        Probe {
            every: Duration::from_millis(200),
            limit: Duration::from_millis(600),
        }
    }
}

/// Whether the database is down now, and a way to wait for it going down.
#[derive(Clone)]
pub struct DbWatch {
    /// Why the database is down; `None` while it answers.
    down: watch::Receiver<Option<String>>,
}

impl DbWatch {
    /// A database that is never down (SQLite, or a deployment without the probe).
    pub fn always_up() -> DbWatch {
        let (tx, down) = watch::channel(None);
        // The sender gone, the value stays `None` for good.
        drop(tx);
        DbWatch { down }
    }

    /// Why the database is down now, if it is.
    pub fn down(&self) -> Option<String> {
        self.down.borrow().clone()
    }

    /// Resolves with the cause when the database is marked down (never, while it answers).
    pub async fn went_down(&self) -> String {
        let mut rx = self.down.clone();
        let why = match rx.wait_for(Option::is_some).await {
            Ok(why) => why.clone(),
            Err(_) => None,
        };
        match why {
            Some(why) => why,
            None => std::future::pending().await,
        }
    }
}

/// Starts probing `url`; the task ends when `stopping` turns true.
pub fn spawn(
    url: String,
    probe: Probe,
    mut stopping: watch::Receiver<bool>,
) -> (DbWatch, tokio::task::JoinHandle<()>) {
    let (tx, down) = watch::channel(None::<String>);
    let task = tokio::spawn(async move {
        let mut prober = loyalty_store::Prober::new(&url);
        let mut tick = tokio::time::interval(probe.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopping.changed() => return,
            }
            if *stopping.borrow() {
                return;
            }
            let why = match tokio::time::timeout(probe.limit, prober.ask()).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!(
                    "the database does not answer within {} ms",
                    probe.limit.as_millis()
                )),
            };
            if why.is_some() {
                prober.forget();
            }
            let was = tx.borrow().clone();
            if was != why {
                match &why {
                    None => info!("the database answers again"),
                    Some(why) => warn!(
                        cause = why.as_str(),
                        "the database is down: webhooks are refused with 503 until it is back"
                    ),
                }
                // The cause kept current while down: `/readyz` and the 503s say the latest.
                tx.send_replace(why);
            }
        }
    });
    (DbWatch { down }, task)
}
