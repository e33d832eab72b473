//! Running a history import (see [`crate::import`]).

use super::{EngineError, LoyaltyEngine, Outcome};
use crate::adapter::{AdapterError, CrmAdapter};
use crate::event::{ClientEvent, CrmEvent};
use crate::import::{ImportJob, ImportPhase, ImportStore};
use crate::inbox::{IntakeStore, Source};
use crate::model::CrmConnection;

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
        for client in page.clients {
            job.clients_seen += 1;
            let event = CrmEvent::Client(ClientEvent {
                company_id: connection.company_id.clone(),
                external_id: client.external_id.clone(),
                phone: client.phone,
                name: client.name,
                deleted: false,
                email: client.email,
                birth_date: client.birth_date,
            });
            if let Err(e) = self
                .apply_event_from(connection, &event, Source::Import)
                .await
            {
                if matches!(e, EngineError::Store(_)) {
                    return Err(e);
                }
                job.errors += 1;
                job.last_error = Some(format!("client {}: {e}", client.external_id));
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
        for record in page.records {
            job.records_seen += 1;
            let id = record.record_id.clone();
            let event = CrmEvent::Visit(record);
            match self
                .accept(intake, connection, &event, Source::Import)
                .await
            {
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
