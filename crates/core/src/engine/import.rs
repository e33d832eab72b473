//! Running a history import (see [`crate::import`]).

use std::future::Future;
use std::hash::{Hash, Hasher};

use super::{EngineError, LoyaltyEngine, Outcome};
use crate::adapter::{AdapterError, CrmAdapter};
use crate::event::{ClientEvent, ClientRef, CrmEvent, VisitEvent};
use crate::import::{ImportJob, ImportPhase, ImportStore};
use crate::inbox::{IntakeStore, Source};
use crate::model::CrmConnection;

/// How many lanes apply a page at once. A page's items are spread over the lanes by client,
/// each lane in page order, so one client's items are applied in the order the CRM listed them
/// (a resumed import gives what an uninterrupted one does) while other clients' commits overlap.
const PAGE_LANES: usize = 8;

/// Runs `work` on every item, items of one `key` one after another in their order, the lanes
/// at once; the results in the items' order.
async fn in_lanes<T, K, R, Fut>(
    items: Vec<T>,
    key: impl Fn(&T) -> K,
    work: impl Fn(T) -> Fut,
) -> Vec<R>
where
    K: Hash,
    Fut: Future<Output = R>,
{
    let mut lanes: Vec<Vec<(usize, T)>> = (0..PAGE_LANES).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key(&item).hash(&mut h);
        let lane = usize::try_from(h.finish() % PAGE_LANES as u64).unwrap_or(0);
        lanes[lane].push((i, item));
    }
    let work = &work;
    let done = futures_util::future::join_all(lanes.into_iter().map(|lane| async move {
        let mut out = Vec::with_capacity(lane.len());
        for (i, item) in lane {
            out.push((i, work(item).await));
        }
        out
    }))
    .await;
    let mut all: Vec<(usize, R)> = done.into_iter().flatten().collect();
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

/// Whose record it is, for [`in_lanes`].
fn client_key(v: &VisitEvent) -> String {
    match &v.client {
        Some(ClientRef { phone: Some(p), .. }) => p.to_string(),
        Some(ClientRef {
            external_id: Some(id),
            ..
        }) => format!("crm:{id}"),
        _ => format!("record:{}", v.record_id),
    }
}

/// Told after each page.
pub trait ImportObserver: Send + Sync {
    fn page_done(&self, job: &ImportJob);
}

/// An observer that says nothing.
pub struct Quiet;

impl ImportObserver for Quiet {
    fn page_done(&self, _job: &ImportJob) {}
}

/// How an import run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportRun {
    /// The job is done.
    Done(ImportJob),
    /// Another owner holds (or took over) the job.
    Elsewhere,
    /// Nothing to import.
    Nothing,
}

impl LoyaltyEngine {
    /// Leases an unfinished import (`job`, or the oldest free one) and runs it to the end:
    /// clients first, then records, a page at a time, each committed before the next is asked
    /// for. A page the CRM does not give ends the run with the error (the job keeps its place
    /// and is free for the next run); a record the engine refuses is counted and the import
    /// goes on.
    #[allow(clippy::too_many_arguments)]
    pub async fn run_import(
        &self,
        imports: &dyn ImportStore,
        intake: &dyn IntakeStore,
        connection: &CrmConnection,
        adapter: &dyn CrmAdapter,
        job: Option<i64>,
        owner: &str,
        lease_ms: i64,
        observer: &dyn ImportObserver,
    ) -> Result<ImportRun, EngineError> {
        let now = self.now_ms();
        let Some(mut job) = imports
            .lease_import(job, owner, now, now.saturating_add(lease_ms))
            .await?
        else {
            return Ok(ImportRun::Nothing);
        };
        if job.connection_id != connection.id {
            imports.release_import(job.id, owner).await?;
            return Ok(ImportRun::Elsewhere);
        }
        // From now on, whatever brings a record of the imported past, it is history only.
        imports
            .set_points_since(connection.id, job.accrue_since_ms)
            .await?;
        let connection = CrmConnection {
            points_since_ms: Some(job.accrue_since_ms),
            ..connection.clone()
        };
        while !job.is_done() {
            let page = match job.phase {
                ImportPhase::Clients => self.client_page(&connection, adapter, &mut job).await,
                ImportPhase::Records => {
                    self.record_page(intake, &connection, adapter, &mut job)
                        .await
                }
                ImportPhase::Done => Ok(()),
            };
            job.updated_at_ms = self.now_ms();
            if let Err(e) = page {
                job.errors += 1;
                job.last_error = Some(e.to_string());
                imports.save_import(&job, owner, job.updated_at_ms).await?;
                imports.release_import(job.id, owner).await?;
                return Err(e);
            }
            if job.is_done() {
                job.finished_at_ms = Some(job.updated_at_ms);
            }
            let lease_until = job.updated_at_ms.saturating_add(lease_ms);
            if !imports.save_import(&job, owner, lease_until).await? {
                return Ok(ImportRun::Elsewhere);
            }
            observer.page_done(&job);
        }
        imports.release_import(job.id, owner).await?;
        Ok(ImportRun::Done(job))
    }

    async fn client_page(
        &self,
        connection: &CrmConnection,
        adapter: &dyn CrmAdapter,
        job: &mut ImportJob,
    ) -> Result<(), EngineError> {
        let page = match adapter.list_clients(job.next_page).await {
            Ok(page) => page,
            // A CRM that cannot list its clients: they come with their records.
            Err(AdapterError::Unsupported(_)) => {
                job.phase = ImportPhase::Records;
                job.next_page = 1;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        job.total_clients = page.total.or(job.total_clients);
        job.errors += page.rejected.len() as i64;
        if let Some(why) = page.rejected.last() {
            job.last_error = Some(why.clone());
        }
        let applied = in_lanes(
            page.clients,
            |c| {
                c.phone
                    .as_ref()
                    .map_or(c.external_id.clone(), |p| p.to_string())
            },
            |client| async move {
                let event = CrmEvent::Client(ClientEvent {
                    company_id: connection.company_id.clone(),
                    external_id: client.external_id.clone(),
                    phone: client.phone,
                    name: client.name,
                    deleted: false,
                    email: client.email,
                    birth_date: client.birth_date,
                });
                let result = self
                    .apply_event_from(connection, &event, Source::Import)
                    .await;
                (client.external_id, result)
            },
        )
        .await;
        for (id, result) in applied {
            job.clients_seen += 1;
            if let Err(e) = result {
                if matches!(e, EngineError::Store(_)) {
                    return Err(e);
                }
                job.errors += 1;
                job.last_error = Some(format!("client {id}: {e}"));
            }
        }
        match page.next_page {
            Some(next) if next > job.next_page => job.next_page = next,
            _ => {
                job.phase = ImportPhase::Records;
                job.next_page = 1;
            }
        }
        Ok(())
    }

    async fn record_page(
        &self,
        intake: &dyn IntakeStore,
        connection: &CrmConnection,
        adapter: &dyn CrmAdapter,
        job: &mut ImportJob,
    ) -> Result<(), EngineError> {
        let page = adapter
            .records_between(job.since_ms, job.until_ms, job.next_page)
            .await?;
        job.total_records = page.total.or(job.total_records);
        job.errors += page.rejected.len() as i64;
        if let Some(why) = page.rejected.last() {
            job.last_error = Some(why.clone());
        }
        let applied = in_lanes(page.records, client_key, |record| async move {
            let id = record.record_id.clone();
            let event = CrmEvent::Visit(record);
            let result = self
                .accept(intake, connection, &event, Source::Import)
                .await;
            (id, result)
        })
        .await;
        for (id, result) in applied {
            job.records_seen += 1;
            match result {
                Ok(Outcome::Queued { .. }) => job.records_queued += 1,
                Ok(Outcome::Duplicate | Outcome::Stale) => {}
                Ok(_) => job.records_applied += 1,
                Err(e @ EngineError::Store(_)) => return Err(e),
                Err(e) => {
                    job.errors += 1;
                    job.last_error = Some(format!("record {id}: {e}"));
                }
            }
        }
        match page.next_page {
            Some(next) if next > job.next_page => job.next_page = next,
            _ => {
                job.phase = ImportPhase::Done;
                job.next_page = 0;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn lanes_keep_each_keys_order_and_give_results_in_item_order() {
        let seen = Mutex::new(Vec::new());
        let items: Vec<(u32, u32)> = (0..40).map(|i| (i % 3, i)).collect();
        // The work never waits, so one poll finishes it.
        let mut run = std::pin::pin!(in_lanes(
            items,
            |(k, _)| *k,
            |(k, i)| {
                let seen = &seen;
                async move {
                    seen.lock().map(|mut s| s.push((k, i))).ok();
                    i * 10
                }
            },
        ));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let std::task::Poll::Ready(out) = run.as_mut().poll(&mut cx) else {
            panic!("the lanes waited on nothing");
        };
        assert_eq!(out, (0..40).map(|i| i * 10).collect::<Vec<_>>());
        let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!(seen.len(), 40);
        for key in 0..3 {
            let order: Vec<u32> = seen
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, i)| *i)
                .collect();
            assert!(
                order.windows(2).all(|w| w[0] < w[1]),
                "key {key}: {order:?}"
            );
        }
    }
}
