//! One pass of the reconciliation poller (see [`crate::sync`]).

use super::{EngineError, LoyaltyEngine, Outcome};
use crate::adapter::CrmAdapter;
use crate::event::CrmEvent;
use crate::inbox::{IntakeStore, Source};
use crate::model::CrmConnection;
use crate::sync::{PollPolicy, PollReport, SyncStore};

impl LoyaltyEngine {
    /// Reads the records the connection's CRM changed since the cursor and takes each in
    /// through [`LoyaltyEngine::accept`] (applied at once, or queued when it needs the CRM
    /// again), exactly as a webhook would be. A record the engine refuses is counted and
    /// logged, and the pass goes on; a page that cannot be read ends the pass without moving
    /// the cursor, so the next pass reads it again. `None` when another instance holds the
    /// connection's poller.
    #[allow(clippy::too_many_arguments)]
    pub async fn poll_pass(
        &self,
        intake: &dyn IntakeStore,
        sync: &dyn SyncStore,
        connection: &CrmConnection,
        adapter: &dyn CrmAdapter,
        owner: &str,
        policy: &PollPolicy,
    ) -> Result<Option<PollReport>, EngineError> {
        let started = self.now_ms();
        let lease_until = started.saturating_add(policy.lease_ms);
        let Some(cursor) = sync
            .lease_poll(
                connection.partner_id,
                connection.id,
                owner,
                started,
                lease_until,
            )
            .await?
        else {
            return Ok(None);
        };
        let mut report = PollReport {
            started_ms: started,
            complete: true,
            ..PollReport::default()
        };
        let since = match cursor.cursor_ms {
            Some(c) if c <= started => c - policy.overlap_ms,
            Some(future) => {
                // A cursor ahead of the clock (a clock that jumped back, a hand-edited row):
                // read the overlap before now rather than nothing.
                report.errors += 1;
                report.last_error = Some(format!(
                    "the cursor {future} was ahead of the clock {started}; read from now"
                ));
                started - policy.overlap_ms
            }
            None => started - policy.first_window_ms,
        };
        let result = self
            .read_pages(intake, connection, adapter, since, policy, &mut report)
            .await;
        report.finished_ms = self.now_ms();
        if let Err(e) = &result {
            report.complete = false;
            report.last_error = Some(e.to_string());
        }
        sync.finish_poll(connection.id, owner, &report).await?;
        result.map(|()| Some(report))
    }

    async fn read_pages(
        &self,
        intake: &dyn IntakeStore,
        connection: &CrmConnection,
        adapter: &dyn CrmAdapter,
        since: i64,
        policy: &PollPolicy,
        report: &mut PollReport,
    ) -> Result<(), EngineError> {
        let mut page = 1;
        loop {
            if report.pages >= policy.max_pages {
                report.complete = false;
                report.last_error = Some(format!(
                    "stopped after {} pages; the rest is read next time",
                    report.pages
                ));
                return Ok(());
            }
            let found = match adapter.records_changed_since(since, page).await {
                Ok(found) => found,
                Err(e) => {
                    report.complete = false;
                    report.errors += 1;
                    report.last_error = Some(format!("page {page}: {e}"));
                    return Ok(());
                }
            };
            report.pages += 1;
            if let Some(caveat) = &found.caveat {
                report.last_error = Some(format!("page {page}: {caveat}"));
            }
            for why in &found.rejected {
                report.errors += 1;
                report.last_error = Some(format!("page {page}: {why}"));
            }
            for record in found.records {
                report.seen += 1;
                let id = record.record_id.clone();
                let event = CrmEvent::Visit(record);
                match self.accept(intake, connection, &event, Source::Poll).await {
                    Ok(Outcome::Queued { .. }) => report.queued += 1,
                    Ok(Outcome::Duplicate | Outcome::Stale) => {}
                    Ok(_) => report.applied += 1,
                    // The database failing ends the pass; the next one starts over.
                    Err(e @ EngineError::Store(_)) => return Err(e),
                    Err(e) => {
                        report.errors += 1;
                        report.last_error = Some(format!("record {id}: {e}"));
                    }
                }
            }
            match found.next_page {
                Some(next) if next > page => page = next,
                _ => return Ok(()),
            }
        }
    }
}
