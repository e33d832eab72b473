//! `import crm` and `import status`: the history import of a connection (see
//! `loyalty_core::import`), in the foreground with a progress bar on a terminal, plain lines
//! when not a terminal, one JSON object with `--json`.

use loyalty_core::PartnerStore;
use std::io::IsTerminal;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use loyalty_core::audit::Capability;
use loyalty_core::engine::{ImportObserver, ImportRun};
use loyalty_core::import::{ImportJob, ImportStore, NewImport};
use loyalty_core::quota::Priority;
use loyalty_core::{Clock, ConnectionId, LoyaltyEngine, SystemClock};
use loyalty_store::SqlStore;
use serde_json::{Value, json};

use super::Usage;
use crate::config::Config;
use crate::connections::Connections;
use crate::metrics::Metrics;

/// How far back an import reaches by default: 24 months.
pub const DEFAULT_IMPORT_DAYS: i64 = 730;
/// How long a running import holds its job between pages (renewed after each page).
pub const IMPORT_LEASE_MS: i64 = 2 * 60_000;
const DAY_MS: i64 = 86_400_000;

/// `import crm`.
#[derive(Debug, Clone)]
pub struct ImportCrm {
    pub connection: i64,
    /// `YYYY-MM-DD`: visits from that day (UTC) on; default 24 months back.
    pub since: Option<String>,
    /// `YYYY-MM-DD`: visits from that day (UTC) on earn points; default none of the past.
    pub accrue_since: Option<String>,
    /// Progress as lines or a bar on standard error (not with `--json`).
    pub progress: bool,
}

/// A day as Unix milliseconds at its start (UTC).
pub fn day_ms(flag: &str, day: &str) -> anyhow::Result<i64> {
    let date = chrono::NaiveDate::parse_from_str(day.trim(), "%Y-%m-%d").map_err(|_| {
        Usage(format!(
            "{flag} must be a date like 2025-01-31, got {day:?}"
        ))
    })?;
    Ok(date
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or_default())
}

/// The import job a connection gets when it is added (run by `serve` in the background).
pub fn default_import(
    partner: loyalty_core::PartnerId,
    connection: ConnectionId,
    now_ms: i64,
) -> NewImport {
    NewImport {
        partner_id: partner,
        connection_id: connection,
        since_ms: now_ms - DEFAULT_IMPORT_DAYS * DAY_MS,
        until_ms: now_ms,
        accrue_since_ms: None,
    }
}

/// `import crm`: queues an import of the connection (or continues its unfinished one) and runs
/// it here until it is done.
pub async fn import_crm(
    store: Arc<SqlStore>,
    config: &Config,
    req: &ImportCrm,
) -> anyhow::Result<Value> {
    let now = SystemClock.now_ms();
    let id = ConnectionId(req.connection);
    let Some(connection) = store.connection(id).await? else {
        return Err(Usage(format!("connection {id} does not exist")).into());
    };
    let since = match &req.since {
        Some(day) => day_ms("--since", day)?,
        None => now - DEFAULT_IMPORT_DAYS * DAY_MS,
    };
    let accrue = req
        .accrue_since
        .as_deref()
        .map(|d| day_ms("--accrue-since", d))
        .transpose()?;
    if since >= now {
        return Err(Usage("--since must be in the past".into()).into());
    }
    let connections = Connections::new(Arc::clone(&store), config, Arc::new(Metrics::new(None)))?;
    let Some(found) = connections.by_id(id, Priority::Import).await? else {
        return Err(Usage(format!("connection {id} does not exist")).into());
    };
    found
        .plan
        .check(connection.partner_id, Capability::CrmIntegration)
        .map_err(|e| Usage(format!("{e} (loyalty-gateway partner plan)")))?;
    if !found.adapter.capabilities().poll_records {
        return Err(Usage(format!(
            "connection {id} cannot read its CRM's history: it needs API tokens \
             (connection add --partner-token … --user-token …)"
        ))
        .into());
    }
    let job = store
        .queue_import(
            &NewImport {
                partner_id: connection.partner_id,
                connection_id: id,
                since_ms: since,
                until_ms: now,
                accrue_since_ms: accrue,
            },
            now,
        )
        .await?;
    if job.is_fresh() {
        // The price list first: its service categories are what records are filed under.
        crate::services::sync_logged(&connections, &store, id).await;
    }
    let engine = LoyaltyEngine::new(store.clone());
    // One name for every `import crm` of this connection: run again after it was killed, it
    // takes over its own lease at once instead of waiting it out; a gateway running the job
    // has a name of its own and keeps it.
    let owner = format!("import-cli:{id}");
    let progress = Progress::new(req.progress);
    progress.page_done(&job);
    let run = engine
        .run_import(
            store.as_ref(),
            store.as_ref(),
            &found.connection,
            found.adapter.as_ref(),
            Some(job.id),
            &owner,
            IMPORT_LEASE_MS,
            &progress,
        )
        .await;
    progress.finish();
    match run? {
        ImportRun::Done(done) => Ok(job_json(&done)),
        ImportRun::Elsewhere => Err(Usage(format!(
            "import job {} of connection {id} is running elsewhere (a gateway); see `import status`",
            job.id
        ))
        .into()),
        ImportRun::Nothing => Ok(job_json(&job)),
    }
}

/// `import status [--connection ID]`: the jobs, newest first.
pub async fn import_status(store: &SqlStore, connection: Option<i64>) -> anyhow::Result<Value> {
    let jobs: Vec<Value> = store
        .imports(connection.map(ConnectionId))
        .await?
        .iter()
        .map(job_json)
        .collect();
    Ok(json!({ "imports": jobs }))
}

fn job_json(job: &ImportJob) -> Value {
    json!({
        "job": job.id,
        "connection": job.connection_id,
        "phase": job.phase,
        "done": job.is_done(),
        "since_ms": job.since_ms,
        "until_ms": job.until_ms,
        "accrue_since_ms": job.accrue_since_ms,
        "clients": job.clients_seen,
        "records": job.records_seen,
        "records_applied": job.records_applied,
        "records_queued": job.records_queued,
        "total_clients": job.total_clients,
        "total_records": job.total_records,
        "errors": job.errors,
        "last_error": job.last_error,
        "updated_at_ms": job.updated_at_ms,
        "finished_at_ms": job.finished_at_ms,
    })
}

/// The text rendering of `import crm` and `import status`.
pub fn import_text(v: &Value) -> String {
    let one = |j: &Value| {
        let mut line = format!(
            "import {} of connection {}: {}, {} clients, {} records ({} applied, {} waiting for the CRM), {} errors",
            j["job"],
            j["connection"],
            j["phase"].as_str().unwrap_or_default(),
            j["clients"],
            j["records"],
            j["records_applied"],
            j["records_queued"],
            j["errors"]
        );
        if let Some(e) = j["last_error"].as_str() {
            line.push_str(&format!("\n    last error: {e}"));
        }
        line
    };
    match v.get("imports") {
        Some(jobs) => {
            let jobs = jobs.as_array().cloned().unwrap_or_default();
            if jobs.is_empty() {
                "No imports.".into()
            } else {
                jobs.iter().map(one).collect::<Vec<_>>().join("\n")
            }
        }
        None => one(v),
    }
}

/// Progress of a foreground import: a bar on a terminal, a line per page otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    lines: bool,
}

impl Progress {
    fn new(show: bool) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let bar = (show && terminal).then(|| {
            let bar = ProgressBar::new(0);
            if let Ok(style) =
                ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({eta} left)")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Progress {
            bar,
            lines: show && !terminal,
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl ImportObserver for Progress {
    fn page_done(&self, job: &ImportJob) {
        let seen = u64::try_from(job.clients_seen + job.records_seen).unwrap_or(0);
        if let Some(bar) = &self.bar {
            let total = job.total_clients.unwrap_or(0) + job.total_records.unwrap_or(0);
            bar.set_length(total.max(seen));
            bar.set_position(seen);
            bar.set_message(job.phase.as_str());
        }
        if self.lines {
            eprintln!(
                "import {}: {}, {} clients, {} records, {} errors",
                job.id,
                job.phase.as_str(),
                job.clients_seen,
                job.records_seen,
                job.errors
            );
        }
    }
}
