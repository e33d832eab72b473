//! Developer automation: `cargo xtask test`, `cargo xtask bench`, `cargo xtask demo`.
//!
//! The tests need a real PostgreSQL. `cargo xtask test` finds one, in this order:
//! 1. `TEST_DATABASE_URL`, when set;
//! 2. a server answering on 127.0.0.1:5432 (user `postgres`, trust auth);
//! 3. a throwaway cluster it creates with `initdb`/`pg_ctl` in a temporary directory, when
//!    PostgreSQL's server binaries are installed, and removes afterwards;
//! 4. otherwise it stops and names the package to install. It never skips the Postgres tests.
//!
//! It installs schemathesis and standardwebhooks (pinned, from PyPI) into
//! `target/tools/schemathesis` the first time, for the partner API's tests. Then it runs `cargo nextest run --workspace` (or
//! `cargo test --workspace` without nextest), passing on any further arguments.
//!
//! `cargo xtask bench` builds the gateway and the bench in release and runs the bench against
//! the PostgreSQL at `DATABASE_URL` (default 127.0.0.1:5432), in a database of its own that it
//! drops afterwards. Method: docs/benchmarks.md.
//!
//! `cargo xtask demo` is `cargo run -p loyalty-gateway -- demo`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const USAGE: &str = "usage: cargo xtask test [-- ARGS for nextest / cargo test]\n       \
                     cargo xtask bench\n       cargo xtask demo";
const LOCAL_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("bench") => bench(),
        Some("demo") => Command::new("cargo")
            .args(["run", "--quiet", "-p", "loyalty-gateway", "--", "demo"])
            .args(&args[1..])
            .status()
            .map(|s| s.success())
            .context("cannot run cargo"),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn test(extra: &[String]) -> anyhow::Result<bool> {
    let extra: Vec<String> = extra.iter().filter(|a| *a != "--").cloned().collect();
    let mut cluster = None;
    let url = if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
        eprintln!("xtask: PostgreSQL from TEST_DATABASE_URL");
        url
    } else if answers(([127, 0, 0, 1], 5432).into()) {
        eprintln!("xtask: PostgreSQL on 127.0.0.1:5432");
        LOCAL_PG.to_owned()
    } else {
        let c = Cluster::start()?;
        let url = c.url();
        cluster = Some(c);
        url
    };
    let nextest = Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let schemathesis = schemathesis()?;
    let mut cmd = Command::new("cargo");
    cmd.env("SCHEMATHESIS", &schemathesis);
    if nextest {
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        eprintln!("xtask: cargo-nextest not found, using cargo test");
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
    }
    cmd.args(&extra).env("TEST_DATABASE_URL", &url);
    let status = cmd.status().context("cannot run cargo")?;
    drop(cluster);
    Ok(status.success())
}

/// What the partner API's tests run from PyPI, in a virtualenv of its own under
/// `target/tools`, installed once: schemathesis against the OpenAPI document, and the Standard
/// Webhooks reference library that checks our signatures independently.
const PYTHON_TOOLS: [&str; 2] = ["schemathesis==4.32.5", "standardwebhooks==1.3.0"];

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn schemathesis() -> anyhow::Result<PathBuf> {
    let venv = target_dir().join("tools/schemathesis");
    let exe = venv.join("bin/schemathesis");
    let marker = venv.join("installed");
    let wanted = PYTHON_TOOLS.join(" ");
    if exe.exists() && std::fs::read_to_string(&marker).is_ok_and(|v| v == wanted) {
        return Ok(exe);
    }
    eprintln!(
        "xtask: installing {wanted} from PyPI into {}",
        venv.display()
    );
    let made = Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .status()
        .context("cannot run python3 (install Python 3 with venv: apt-get install python3-venv)")?;
    if !made.success() {
        bail!("python3 -m venv failed (apt-get install python3-venv)");
    }
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(PYTHON_TOOLS)
        .status()
        .context("cannot run pip")?;
    if !pip.success() {
        bail!("pip could not install {wanted}");
    }
    std::fs::write(&marker, wanted)?;
    Ok(exe)
}

fn bench() -> anyhow::Result<bool> {
    let admin = match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => url,
        Ok(url) => bail!("the bench needs PostgreSQL; DATABASE_URL is {url:?}"),
        Err(_) => LOCAL_PG.to_owned(),
    };
    eprintln!("xtask: building the gateway and the bench in release (a few minutes on 2 cores)");
    let built = Command::new("cargo")
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "loyalty-gateway",
            "-p",
            "loyalty-bench",
        ])
        .status()
        .context("cannot run cargo")?;
    if !built.success() {
        return Ok(false);
    }
    let release = target_dir().join("release");
    let status = Command::new(release.join("loyalty-bench"))
        .env("BENCH_ADMIN_URL", admin)
        .env("BENCH_GATEWAY", release.join("loyalty-gateway"))
        .env(
            "BENCH_LIMIT_DIR",
            std::env::var_os("BENCH_LIMIT_DIR").unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../shared/bench")
                    .into_os_string()
            }),
        )
        .status()
        .context("cannot run the bench")?;
    Ok(status.success())
}

fn answers(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// A PostgreSQL cluster in a temporary directory, stopped and removed on drop.
struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    fn start() -> anyhow::Result<Cluster> {
        let Some(bin) = find_pg_bin() else {
            bail!(
                "the tests need PostgreSQL and none answers on 127.0.0.1:5432. Install it \
                 (Debian/Ubuntu: `apt-get install postgresql`), start it, or set \
                 TEST_DATABASE_URL=postgres://user@host:port/db"
            );
        };
        // initdb refuses to run as root: run the cluster as the `postgres` user then.
        let as_postgres = is_root();
        let dir = std::env::temp_dir().join(format!("loyalty-pg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).context("temporary cluster directory")?;
        if as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir))?;
        }
        let port = free_port()?;
        eprintln!(
            "xtask: no PostgreSQL on 127.0.0.1:5432; starting a throwaway cluster on port {port}"
        );
        let cluster = Cluster {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = cluster.dir.join("data");
        run(cluster
            .pg(&"initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data))?;
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            cluster.dir.display()
        );
        run(cluster
            .pg(&"pg_ctl")
            .args(["-w", "-t", "60", "-l"])
            .arg(cluster.dir.join("log"))
            .arg("-D")
            .arg(&data)
            .args(["-o", &opts, "start"]))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !answers(([127, 0, 0, 1], port).into()) {
            if Instant::now() > deadline {
                bail!(
                    "the throwaway cluster did not start; see {}",
                    cluster.dir.join("log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(cluster)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg(&self, tool: &dyn AsRef<Path>) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .pg(&"pg_ctl")
            .args(["-m", "immediate", "-D"])
            .arg(self.dir.join("data"))
            .arg("stop")
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// `initdb` on PATH, else the newest /usr/lib/postgresql/*/bin.
fn find_pg_bin() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Some(dir);
        }
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(listener.local_addr()?.port())
}
