//! The CRM budgets of this deployment, shared by every gateway instance through the database
//! ([`loyalty_core::quota`]). Each adapter gets a [`CallGate`] bound to its budget, its
//! connection and the priority of the work it does; before every request the gate waits for
//! the budget. Within one instance at most one task per budget, priority and connection asks
//! the database at a time (the others queue behind it in arrival order), and a waiter far back
//! in the queue sleeps about as long as the calls ahead of it take, so waiting costs a few
//! queries a second, not one per waiting task, and connections are still served in turn.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use loyalty_core::quota::{CallGate, Grant, Limits, Priority, QuotaStore};
use loyalty_core::{Clock, ConnectionId, CrmKind, StoreError, SystemClock};
use loyalty_store::SqlStore;
use tracing::warn;

/// A waiter not heard from for this long belonged to an instance that stopped.
const STALE_MS: i64 = 5_000;
/// The longest pause between two questions to the database while waiting.
const MAX_NAP: Duration = Duration::from_millis(250);

/// The budget a connection's calls count against: one per CRM kind and egress address.
pub fn budget_of(kind: CrmKind, egress: &str) -> String {
    format!("{kind}:{egress}")
}

type TurnKey = (String, Priority, Option<ConnectionId>);

/// Grants CRM calls from the shared budgets.
pub struct Scheduler {
    store: Arc<SqlStore>,
    /// `Some`: these limits for every budget (tests); `None`: each budget's CRM's own
    /// ([`Limits::of`], the CRM named before the `:` of the budget).
    limits: Option<Limits>,
    turns: Mutex<HashMap<TurnKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl Scheduler {
    /// A scheduler holding every budget to `limits`.
    pub fn new(store: Arc<SqlStore>, limits: Limits) -> Arc<Scheduler> {
        Arc::new(Scheduler {
            store,
            limits: Some(limits),
            turns: Mutex::new(HashMap::new()),
        })
    }

    /// A scheduler holding each budget to its CRM's published limits.
    pub fn per_crm(store: Arc<SqlStore>) -> Arc<Scheduler> {
        Arc::new(Scheduler {
            store,
            limits: None,
            turns: Mutex::new(HashMap::new()),
        })
    }

    /// A gate for one connection's calls at one priority.
    pub fn gate(
        self: &Arc<Self>,
        budget: String,
        connection: Option<ConnectionId>,
        priority: Priority,
    ) -> Arc<dyn CallGate> {
        Arc::new(Gate {
            scheduler: Arc::clone(self),
            budget,
            connection,
            priority,
        })
    }

    fn turn(
        &self,
        budget: &str,
        priority: Priority,
        connection: Option<ConnectionId>,
    ) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            turns
                .entry((budget.to_owned(), priority, connection))
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(()))),
        )
    }

    /// Waits until the budget grants a call to this connection at this priority.
    pub async fn acquire(
        &self,
        budget: &str,
        connection: Option<ConnectionId>,
        priority: Priority,
    ) -> Result<(), StoreError> {
        let turn = self.turn(budget, priority, connection);
        let _turn = turn.lock().await;
        let limits = self.limits.clone().unwrap_or_else(|| {
            Limits::of(
                budget
                    .split(':')
                    .next()
                    .and_then(|k| k.parse::<CrmKind>().ok())
                    .unwrap_or(CrmKind::Yclients),
            )
        });
        let mut waiter = Waiter::join(&self.store, budget, priority, connection).await?;
        loop {
            let now = SystemClock.now_ms();
            match self
                .store
                .try_grant(budget, waiter.id, &limits, now, STALE_MS)
                .await
            {
                Ok(Grant::Go) => {
                    waiter.granted = true;
                    return Ok(());
                }
                Ok(Grant::Wait { ms }) => {
                    let nap = Duration::from_millis(u64::try_from(ms).unwrap_or(1));
                    tokio::time::sleep(nap.min(MAX_NAP)).await;
                }
                // Dropped as stale (this instance stalled): queue again.
                Err(StoreError::NotFound(_)) => {
                    waiter.granted = true;
                    waiter = Waiter::join(&self.store, budget, priority, connection).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The CRM answered 429: the whole budget waits.
    pub async fn pause(&self, budget: &str, retry_after: Option<Duration>) {
        let wait = retry_after.unwrap_or(Duration::from_secs(1));
        let until = SystemClock
            .now_ms()
            .saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
        if let Err(e) = self.store.pause_budget(budget, until).await {
            warn!(budget, error = %e, "could not pause the CRM budget");
        }
    }
}

/// A place in a budget's queue, left when dropped without a grant (the call was abandoned).
struct Waiter {
    store: Arc<SqlStore>,
    id: i64,
    granted: bool,
}

impl Waiter {
    async fn join(
        store: &Arc<SqlStore>,
        budget: &str,
        priority: Priority,
        connection: Option<ConnectionId>,
    ) -> Result<Waiter, StoreError> {
        let id = store
            .join_budget(budget, priority, connection, SystemClock.now_ms())
            .await?;
        Ok(Waiter {
            store: Arc::clone(store),
            id,
            granted: false,
        })
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if self.granted {
            return;
        }
        let (store, id) = (Arc::clone(&self.store), self.id);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = store.leave_budget(id).await;
            });
        }
    }
}

struct Gate {
    scheduler: Arc<Scheduler>,
    budget: String,
    connection: Option<ConnectionId>,
    priority: Priority,
}

#[async_trait]
impl CallGate for Gate {
    async fn acquire(&self) -> Result<(), StoreError> {
        self.scheduler
            .acquire(&self.budget, self.connection, self.priority)
            .await
    }

    async fn rate_limited(&self, retry_after: Option<Duration>) {
        self.scheduler.pause(&self.budget, retry_after).await;
    }
}
