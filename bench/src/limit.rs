//! The fixed SQL reference: `limit_tx.sql` (five statements, one commit per delivery, on the
//! tables of `limit_schema.sql`) through `pgbench` on the same PostgreSQL, in the same run as
//! the gateway. It does not change with the project's code, so the gateway's ratio to it can
//! only move with the gateway. The two files live outside the repository, in the directory
//! `BENCH_LIMIT_DIR` names (`cargo xtask bench` passes `../shared/bench`).

use std::path::PathBuf;
use std::process::Command;

use crate::{Database, with_db};
use anyhow::{Context, bail};

pub struct Reference {
    db: Database,
    url: String,
    script: PathBuf,
    pgbench: PathBuf,
}

/// `pgbench` on the PATH, else in Debian's versioned PostgreSQL directories.
fn find_pgbench() -> Option<PathBuf> {
    let on_path = Command::new("pgbench")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if on_path {
        return Some(PathBuf::from("pgbench"));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin/pgbench"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop()
}

impl Reference {
    /// A database with the reference's tables, next to the bench's own.
    pub async fn prepare(bench_url: &str) -> anyhow::Result<Reference> {
        let dir =
            PathBuf::from(std::env::var("BENCH_LIMIT_DIR").context("BENCH_LIMIT_DIR is not set")?);
        let (schema, script) = (dir.join("limit_schema.sql"), dir.join("limit_tx.sql"));
        if !schema.exists() || !script.exists() {
            bail!("no limit_schema.sql and limit_tx.sql in {}", dir.display());
        }
        let pgbench = find_pgbench().context("pgbench is not installed")?;
        let admin = with_db(bench_url, "postgres");
        let db = Database::create(&admin, "limit").await?;
        let url = with_db(&admin, &db.name);
        let loaded = Command::new("psql")
            .args(["-q", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(&schema)
            .arg(&url)
            .output()
            .context("running psql")?;
        if !loaded.status.success() {
            db.drop_now().await;
            bail!(
                "psql could not load {}: {}",
                schema.display(),
                String::from_utf8_lossy(&loaded.stderr)
            );
        }
        Ok(Reference {
            db,
            url,
            script,
            pgbench,
        })
    }

    /// Transactions a second of `limit_tx.sql` at `clients` connections, over 15 s.
    pub fn tps(&self, clients: usize) -> anyhow::Result<f64> {
        let threads = clients.min(2).to_string();
        let out = Command::new(&self.pgbench)
            .args(["-n", "-M", "prepared", "-T", "15", "-c"])
            .arg(clients.to_string())
            .args(["-j", &threads, "-f"])
            .arg(&self.script)
            .arg(&self.url)
            .output()
            .context("running pgbench")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!("pgbench failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        text.lines()
            .find_map(|l| {
                let rest = l.strip_prefix("tps = ")?;
                rest.split_whitespace().next()?.parse::<f64>().ok()
            })
            .with_context(|| format!("no tps in pgbench's output: {text}"))
    }

    pub async fn drop_now(&self) {
        self.db.drop_now().await;
    }
}
