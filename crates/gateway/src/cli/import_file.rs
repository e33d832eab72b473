//! `import file`: clients, visits and opening balances from files (`loyalty-import` reads and
//! checks them) onto the partner's desk connection, through the engine's webhook path.
//!
//! A dry run by default: every row checked, the refused ones listed with their row number and
//! reason, nothing written. With `--apply` the files are checked whole first, then each
//! accepted row applied in its own transaction, so a run killed half-way and run again gives
//! the same books. Visits are history only unless `--accrue`: the desk connection's points
//! boundary moves past the file's last visit (refused when visits before it already earned).

use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use loyalty_core::audit::AuditAction;
use loyalty_core::event::{ClientEvent, ClientRef, VisitEvent, VisitLine};
use loyalty_core::import::ImportStore;
use loyalty_core::inbox::Source;
use loyalty_core::{
    CrmConnection, CrmEvent, EngineError, LoyaltyEngine, Outcome, PartnerId, Phone, Points, Program,
};
use loyalty_import::{
    Checked, CsvOptions, Encoding, FileRows, Format, Kind, Preset, ReadOptions, Row,
};
use loyalty_store::SqlStore;
use serde_json::{Value, json};

use super::Usage;

/// What `import file` was given.
#[derive(Debug, Clone)]
pub struct ImportFile {
    pub partner: i64,
    pub clients: Option<PathBuf>,
    pub visits: Option<PathBuf>,
    pub balances: Option<PathBuf>,
    pub preset: Preset,
    pub map: Vec<String>,
    pub encoding: Option<Encoding>,
    pub delimiter: Option<u8>,
    pub apply: bool,
    pub accrue: bool,
    pub force: bool,
    /// A progress bar on standard error (a terminal, not `--json`).
    pub progress: bool,
}

/// How many rows are applied at once (each in its own transaction).
const LANES: usize = 8;

/// Rows between two vacuums of the tables each visit rewrites (`SqlStore::vacuum_after_bulk`).
const VACUUM_EVERY: u64 = 10_000;

/// How many rows each lane may have waiting.
const LANE_AHEAD: usize = 64;

/// What one lane applied.
#[derive(Debug, Default)]
struct Lane {
    applied: u64,
    points: i64,
    refused: Vec<(u64, String)>,
}

/// The largest number of refused rows listed in the text answer (`--json` lists them all).
const SHOWN_REFUSALS: usize = 30;

/// `--delimiter`: `,`, `;`, `tab` or `\t`.
pub fn delimiter(typed: &str) -> Result<u8, String> {
    match typed {
        "," => Ok(b','),
        ";" => Ok(b';'),
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        "|" => Ok(b'|'),
        other => Err(format!("expected , ; | or tab, got {other:?}")),
    }
}

/// What one file came to.
#[derive(Debug, Default)]
struct Tally {
    rows: u64,
    accepted: u64,
    applied: u64,
    rejected: Vec<Value>,
    points: i64,
    /// Visits: the earliest and latest visit times, and the keys seen, hashed (for the report of
    /// what earlier files had and this one has not).
    first_ms: Option<i64>,
    last_ms: Option<i64>,
    keys: HashSet<u64>,
}

impl Tally {
    fn refuse(&mut self, file: &Path, row: u64, reason: String) {
        self.rejected.push(json!({
            "file": file.display().to_string(),
            "row": row,
            "reason": reason,
        }));
    }
}

/// `import file`.
pub async fn import_file(
    engine: &LoyaltyEngine,
    sql: &SqlStore,
    req: &ImportFile,
) -> anyhow::Result<Value> {
    let partner = PartnerId(req.partner);
    let Some(found) = engine.store().partner(partner).await? else {
        return Err(Usage(format!("partner {partner} does not exist")).into());
    };
    let files: Vec<(Kind, &PathBuf)> = [
        (Kind::Clients, &req.clients),
        (Kind::Visits, &req.visits),
        (Kind::Balances, &req.balances),
    ]
    .into_iter()
    .filter_map(|(k, p)| p.as_ref().map(|p| (k, p)))
    .collect();
    if files.is_empty() {
        return Err(Usage("name a file: --clients, --visits or --balances".into()).into());
    }
    let program = &found.program;
    let options = ReadOptions {
        csv: CsvOptions {
            encoding: req.encoding,
            delimiter: req.delimiter,
        },
        preset: req.preset,
        map: req.map.clone(),
        country: program.country,
        utc_offset_minutes: program.utc_offset_minutes,
        now_ms: engine.now_ms(),
    };
    // Every file checked whole before anything is written.
    let mut checked = Vec::with_capacity(files.len());
    for (kind, path) in &files {
        checked.push(check(path, *kind, &options, req.progress)?);
    }
    let mut desk = None;
    if req.apply {
        let conn = engine
            .desk(partner, req.force)
            .await
            .map_err(super::refused)?;
        desk = Some(conn);
    }
    let mut out_files = Vec::with_capacity(files.len());
    let mut total = Tally::default();
    for ((kind, path), (format, ignored, mut tally)) in files.into_iter().zip(checked) {
        let mut boundary = None;
        if let Some(conn) = &desk {
            let conn = match kind {
                Kind::Visits if !req.accrue => {
                    let moved = history_only(engine, sql, conn, &tally).await?;
                    boundary = moved.points_since_ms;
                    moved
                }
                _ => conn.clone(),
            };
            let run = Run {
                engine,
                sql,
                conn: &conn,
                program,
            };
            run.apply(path, kind, &options, req.progress, &mut tally)
                .await?;
        }
        let missing = match (&desk, kind, tally.first_ms, tally.last_ms) {
            (Some(conn), Kind::Visits, Some(from), Some(to)) => sql
                .file_records_between(conn.id, from, to)
                .await?
                .into_iter()
                .filter(|k| !tally.keys.contains(&loyalty_import::fnv(k)))
                .count(),
            _ => 0,
        };
        out_files.push(json!({
            "file": path.display().to_string(),
            "kind": kind.as_str(),
            "format": format_text(format),
            "rows": tally.rows,
            "accepted": tally.accepted,
            "rejected": tally.rejected.len(),
            "applied": tally.applied,
            "points": tally.points,
            "ignored_columns": ignored,
            "missing_from_file": missing,
            "points_since_ms": boundary,
        }));
        total.rows += tally.rows;
        total.accepted += tally.accepted;
        total.applied += tally.applied;
        total.points += tally.points;
        total.rejected.append(&mut tally.rejected);
    }
    if let Some(conn) = &desk {
        let detail = json!({
            "files": out_files,
            "accrue": req.accrue,
            "rows": total.rows,
            "applied": total.applied,
            "points": total.points,
        });
        let mut tx = engine.store().begin().await?;
        tx.audit(
            partner,
            engine.actor(),
            AuditAction::FileImported,
            &detail,
            engine.now_ms(),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(partner = %partner, connection = %conn.id, rows = total.rows, "file import applied");
    }
    Ok(json!({
        "partner_id": partner,
        "dry_run": !req.apply,
        "accrue": req.apply && req.accrue,
        "rows": total.rows,
        "accepted": total.accepted,
        "rejected": total.rejected,
        "applied": total.applied,
        "points": total.points,
        "files": out_files,
    }))
}

fn format_text(format: Format) -> String {
    match format {
        Format::Xlsx => "xlsx".into(),
        Format::Csv {
            encoding,
            delimiter,
        } => format!("csv ({}, {:?})", encoding.as_str(), char::from(delimiter)),
    }
}

fn bar(progress: bool, path: &Path, verb: &str) -> ProgressBar {
    if !progress || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    let style = ProgressStyle::with_template("{spinner} {msg}: {pos} rows ({per_sec})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.set_message(format!("{verb} {}", path.display()));
    bar
}

fn open(path: &Path, kind: Kind, options: &ReadOptions) -> anyhow::Result<FileRows> {
    FileRows::open(path, kind, options.clone()).map_err(|e| Usage(e.to_string()).into())
}

/// Reads the whole file: rows, refusals, and for visits their times and keys.
fn check(
    path: &Path,
    kind: Kind,
    options: &ReadOptions,
    progress: bool,
) -> anyhow::Result<(Format, Vec<String>, Tally)> {
    let mut rows = open(path, kind, options)?;
    let format = rows.format();
    let ignored = rows.mapping().ignored.clone();
    let bar = bar(progress, path, "checking");
    let mut tally = Tally::default();
    while let Some((number, checked)) = rows.next_checked().map_err(|e| Usage(e.to_string()))? {
        tally.rows += 1;
        bar.inc(1);
        match checked {
            Checked::Refused(reason) => tally.refuse(path, number, reason),
            Checked::Accepted(row) => {
                tally.accepted += 1;
                if let Row::Visit(v) = row {
                    tally.first_ms = Some(tally.first_ms.map_or(v.at_ms, |f| f.min(v.at_ms)));
                    tally.last_ms = Some(tally.last_ms.map_or(v.at_ms, |l| l.max(v.at_ms)));
                    tally.keys.insert(loyalty_import::fnv(&v.key));
                }
            }
        }
    }
    bar.finish_and_clear();
    Ok((format, ignored, tally))
}

/// The desk connection with its points boundary moved past the file's visits (never back, and
/// never past now), so they are history only. Refused when a visit before the new boundary
/// already earned points: the file would take them back.
async fn history_only(
    engine: &LoyaltyEngine,
    sql: &SqlStore,
    conn: &CrmConnection,
    tally: &Tally,
) -> anyhow::Result<CrmConnection> {
    let Some(last) = tally.last_ms else {
        return Ok(conn.clone());
    };
    let old = conn.points_since_ms.unwrap_or(i64::MIN);
    let new = last.saturating_add(1).min(engine.now_ms()).max(old);
    if new > old {
        let earned = sql.earned_records_between(conn.id, old, new).await?;
        if earned > 0 {
            return Err(Usage(format!(
                "{earned} visits before the file's last one already earned points (entered at the desk or imported with --accrue): without --accrue this file's visits are history only and would take those points back; import it with --accrue, or without the rows that overlap"
            ))
            .into());
        }
        sql.set_points_since(conn.id, new).await?;
    }
    let mut moved = conn.clone();
    moved.points_since_ms = Some(new);
    Ok(moved)
}

/// What applying one row did.
enum Effect {
    Changed(Points),
    Unchanged,
    Refused(String),
}

/// What rows are applied with.
struct Run<'a> {
    engine: &'a LoyaltyEngine,
    sql: &'a SqlStore,
    conn: &'a CrmConnection,
    program: &'a Program,
}

impl Run<'_> {
    /// Applies each accepted row, counting what changed something and the points posted; a row
    /// refused only now (an opening balance imported before with another amount) is moved to
    /// the refused. Rows go in [`LANES`] lanes by client: one client's rows in the file's
    /// order (her visits' ordinals, her level), different clients side by side.
    async fn apply(
        &self,
        path: &Path,
        kind: Kind,
        options: &ReadOptions,
        progress: bool,
        tally: &mut Tally,
    ) -> anyhow::Result<()> {
        let mut rows = open(path, kind, options)?;
        let bar = bar(progress, path, "importing");
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..LANES)
            .map(|_| tokio::sync::mpsc::channel::<(u64, Row)>(LANE_AHEAD))
            .unzip();
        let lanes = receivers.into_iter().map(|mut rx| async move {
            let mut lane = Lane::default();
            while let Some((number, row)) = rx.recv().await {
                match self.effect(row).await? {
                    Effect::Changed(delta) => {
                        lane.applied += 1;
                        lane.points += delta.value();
                    }
                    Effect::Unchanged => {}
                    Effect::Refused(reason) => lane.refused.push((number, reason)),
                }
            }
            Ok::<_, anyhow::Error>(lane)
        });
        let read = async {
            let mut sent = 0u64;
            while let Some((number, checked)) =
                rows.next_checked().map_err(|e| Usage(e.to_string()))?
            {
                bar.inc(1);
                let Checked::Accepted(row) = checked else {
                    continue;
                };
                sent += 1;
                if sent.is_multiple_of(VACUUM_EVERY) {
                    // The lanes go on meanwhile; a failed vacuum only slows what follows.
                    if let Err(e) = self.sql.vacuum_after_bulk().await {
                        tracing::warn!(error = %e, "could not vacuum during the import");
                    }
                }
                let lane = (loyalty_import::fnv(row.phone().as_str()) % LANES as u64) as usize;
                if senders[lane].send((number, row)).await.is_err() {
                    // That lane stopped on an error: it is reported below.
                    break;
                }
            }
            drop(senders);
            Ok::<_, anyhow::Error>(())
        };
        let (read, lanes) = tokio::join!(read, futures_util::future::join_all(lanes));
        bar.finish_and_clear();
        let mut refused = Vec::new();
        for lane in lanes {
            let lane = lane?;
            tally.applied += lane.applied;
            tally.points += lane.points;
            refused.extend(lane.refused);
        }
        read?;
        refused.sort();
        for (number, reason) in refused {
            tally.accepted -= 1;
            tally.refuse(path, number, reason);
        }
        Ok(())
    }

    /// What applying a row did; the engine refusing a row (an amount too large to count, say)
    /// refuses that row, the store or the database failing stops the run, which a rerun
    /// continues.
    async fn effect(&self, row: Row) -> anyhow::Result<Effect> {
        match self.row(row).await {
            Ok(effect) => Ok(effect),
            Err(e) => match e.downcast::<EngineError>() {
                Ok(refused) if refused.is_refusal() => Ok(Effect::Refused(refused.to_string())),
                Ok(other) => Err(other.into()),
                Err(other) => Err(other),
            },
        }
    }

    fn card(&self, phone: &Phone, name: Option<String>, email: Option<String>) -> CrmEvent {
        CrmEvent::Client(ClientEvent {
            company_id: self.conn.company_id.clone(),
            // The desk has no ids of its own: a client is her phone.
            external_id: phone.as_str().to_owned(),
            phone: Some(phone.clone()),
            name,
            deleted: false,
            email,
            birth_date: None,
        })
    }

    async fn row(&self, row: Row) -> anyhow::Result<Effect> {
        let (engine, conn) = (self.engine, self.conn);
        match row {
            Row::Client(c) => {
                let card = self.card(&c.phone, c.name, c.email);
                let outcome = engine.apply_event_from(conn, &card, Source::Import).await?;
                Ok(match outcome {
                    Outcome::ClientSynced { created: true, .. } => Effect::Changed(Points::ZERO),
                    _ => Effect::Unchanged,
                })
            }
            Row::Visit(v) => {
                let event = CrmEvent::Visit(VisitEvent {
                    company_id: conn.company_id.clone(),
                    record_id: v.key,
                    // No version: the file's latest state wins; the same row again is a
                    // duplicate.
                    version: None,
                    status: v.status,
                    client: Some(ClientRef {
                        external_id: None,
                        phone: Some(v.phone),
                        name: v.name,
                    }),
                    currency: self.program.currency,
                    lines: vec![VisitLine::named(v.service.as_deref(), v.paid_minor)],
                    staff_id: None,
                    staff_name: v.master,
                    visit_at_ms: Some(v.at_ms),
                    needs_refetch: false,
                    loyalty_paid: Default::default(),
                });
                let outcome = engine
                    .apply_event_from(conn, &event, Source::Import)
                    .await?;
                Ok(match outcome {
                    Outcome::Duplicate | Outcome::Stale => Effect::Unchanged,
                    other => Effect::Changed(other.delta()),
                })
            }
            Row::Balance(b) => {
                let partner = conn.partner_id;
                // One opening balance per client, ever: another file cannot add a second.
                let key = format!("opening:{}", b.phone.as_str());
                match self
                    .sql
                    .entry_amount(partner, &format!("manual:{key}"))
                    .await?
                {
                    Some(before) if before == b.points => return Ok(Effect::Unchanged),
                    Some(before) => {
                        return Ok(Effect::Refused(format!(
                            "an opening balance of {before} points was imported for this client before (one per client; correct it with client accrue or debit)"
                        )));
                    }
                    None => {}
                }
                let card = self.card(&b.phone, b.name, None);
                engine.apply_event_from(conn, &card, Source::Import).await?;
                if b.points == 0 {
                    return Ok(Effect::Unchanged);
                }
                let Some(client) = engine.store().client_by_phone(partner, &b.phone).await? else {
                    return Ok(Effect::Refused("the client could not be created".into()));
                };
                let points = Points(b.points);
                match engine
                    .manual_accrual(partner, client.id, points, "opening balance", &key)
                    .await
                {
                    Ok(posting) => Ok(Effect::Changed(posting.delta)),
                    Err(EngineError::Conflict { .. }) => Ok(Effect::Unchanged),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}

/// The answer as text: totals, each file, the first refused rows.
pub fn import_file_text(v: &Value) -> String {
    let mut out = String::new();
    let mode = if v["dry_run"] == json!(true) {
        "dry run (nothing written; --apply to import)"
    } else {
        "imported"
    };
    out.push_str(&format!(
        "{mode}: {} rows, {} accepted, {} refused, {} applied, {:+} points\n",
        v["rows"],
        v["accepted"],
        v["rejected"].as_array().map_or(0, Vec::len),
        v["applied"],
        v["points"].as_i64().unwrap_or_default()
    ));
    for f in v["files"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {} ({}, {}): {} rows, {} accepted, {} applied",
            f["file"].as_str().unwrap_or_default(),
            f["kind"].as_str().unwrap_or_default(),
            f["format"].as_str().unwrap_or_default(),
            f["rows"],
            f["accepted"],
            f["applied"],
        ));
        if let Some(ignored) = f["ignored_columns"].as_array().filter(|i| !i.is_empty()) {
            let names: Vec<&str> = ignored.iter().filter_map(Value::as_str).collect();
            out.push_str(&format!("; columns not used: {}", names.join(", ")));
        }
        if let Some(missing) = f["missing_from_file"].as_u64().filter(|m| *m > 0) {
            out.push_str(&format!(
                "; {missing} visits of earlier files in its dates are not in it (kept)"
            ));
        }
        out.push('\n');
    }
    let rejected = v["rejected"].as_array().cloned().unwrap_or_default();
    for r in rejected.iter().take(SHOWN_REFUSALS) {
        out.push_str(&format!(
            "  row {} of {}: {}\n",
            r["row"],
            r["file"].as_str().unwrap_or_default(),
            r["reason"].as_str().unwrap_or_default()
        ));
    }
    if rejected.len() > SHOWN_REFUSALS {
        out.push_str(&format!(
            "  … and {} more (--json lists them all)\n",
            rejected.len() - SHOWN_REFUSALS
        ));
    }
    out.trim_end().to_owned()
}
