//! Whether PostgreSQL answers, watched by a probe on a connection of its own (issue 19): when
//! the network to the database is gone a query does not fail, it waits — and a CRM's webhook
//! with it, until the CRM gives up (YCLIENTS never sends it again). The probe runs `SELECT 1`
//! every [`Probe::every`]; one that takes longer than [`Probe::limit`] marks the database
//! down, and every webhook then in flight or arriving is answered 503 at once (the CRM's
//! poller brings what was lost), `/readyz` fails, until a probe answers again — the pool's
//! connections then reconnect by themselves. The embedded SQLite is never down this way.

use std::sync::Arc;
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
    down: watch::Receiver<bool>,
}

impl DbWatch {
    /// A database that is never down (SQLite, or a deployment without the probe).
    pub fn always_up() -> DbWatch {
        let (tx, down) = watch::channel(false);
        // The sender gone, the value stays false for good.
        drop(tx);
        DbWatch { down }
    }

    pub fn is_down(&self) -> bool {
        *self.down.borrow()
    }

    /// Resolves when the database is marked down (never, while it answers).
    pub async fn went_down(&self) {
        let mut rx = self.down.clone();
        if rx.wait_for(|d| *d).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Starts probing `url`; the task ends when `stopping` turns true.
pub fn spawn(
    url: String,
    probe: Probe,
    mut stopping: watch::Receiver<bool>,
) -> (DbWatch, tokio::task::JoinHandle<()>) {
    let (tx, down) = watch::channel(false);
    let tx = Arc::new(tx);
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
            let ok = matches!(
                tokio::time::timeout(probe.limit, prober.ask()).await,
                Ok(Ok(()))
            );
            if !ok {
                prober.forget();
            }
            let was_down = *tx.borrow();
            if was_down == ok {
                if ok {
                    info!("the database answers again");
                } else {
                    warn!(
                        limit_ms = probe.limit.as_millis() as u64,
                        "the database does not answer: webhooks are refused with 503 until it does"
                    );
                }
                tx.send_replace(!ok);
            }
        }
    });
    (DbWatch { down }, task)
}
