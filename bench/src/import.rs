//! `import`: a salon's export of 100,000 visits (`BENCH_IMPORT_ROWS`) imported through the real
//! binary — `loyalty-gateway import file --visits FILE --apply --accrue` — into a fresh
//! PostgreSQL database, once as a CSV and once as an XLSX workbook: rows per second over the
//! whole command (its check pass and its apply pass) and the importer's peak RSS, read from
//! `/proc/{pid}/status` (`VmHWM`) while it runs.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};

use crate::{Database, rss_mib, run_cli, with_db};

/// What one file came to.
pub struct Run {
    pub format: &'static str,
    pub rows: u64,
    pub seconds: f64,
    pub peak_rss_mib: f64,
    pub file_mib: f64,
}

pub struct Figures(pub Vec<Run>);

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "import: visits from a salon's export, `import file --apply --accrue`"
        )?;
        for r in &self.0 {
            writeln!(
                f,
                "  {}: {} rows ({:.1} MiB) in {:.1} s = {:.0} rows/s, importer peak RSS {:.1} MiB (target ≤ 64)",
                r.format,
                r.rows,
                r.file_mib,
                r.seconds,
                r.rows as f64 / r.seconds.max(f64::MIN_POSITIVE),
                r.peak_rss_mib
            )?;
        }
        Ok(())
    }
}

pub async fn run(admin: &str, gateway: &str) -> anyhow::Result<Figures> {
    let rows: u32 = std::env::var("BENCH_IMPORT_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("loyalty_import_bench_{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let csv = write_csv(&dir, rows)?;
    let xlsx = write_xlsx(&dir, rows)?;
    let mut runs = Vec::new();
    for (format, file) in [("csv", &csv), ("xlsx", &xlsx)] {
        let db = Database::create(admin, &format!("import_{format}")).await?;
        let result = one(&db, gateway, format, file, rows).await;
        db.drop_now().await;
        runs.push(result?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Figures(runs))
}

async fn one(
    db: &Database,
    gateway: &str,
    format: &'static str,
    file: &Path,
    rows: u32,
) -> anyhow::Result<Run> {
    let url = with_db(&db.admin, &db.name);
    run_cli(gateway, &url, &["migrate"])?;
    let partner = run_cli(
        gateway,
        &url,
        &[
            "partner",
            "add",
            "--name",
            "Import",
            "--cashback-bps",
            "500",
        ],
    )?["id"]
        .to_string();
    let path = file.display().to_string();
    let started = Instant::now();
    let mut child = std::process::Command::new(gateway)
        .env("DATABASE_URL", &url)
        .args([
            "--json",
            "import",
            "file",
            "--partner",
            &partner,
            "--visits",
            &path,
        ])
        .args(["--apply", "--accrue"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {gateway}"))?;
    let mut peak: f64 = 0.0;
    let status = loop {
        peak = peak.max(rss_mib(child.id(), "VmHWM:"));
        if let Some(status) = child.try_wait()? {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    let out = child.wait_with_output()?;
    ensure!(
        status.success(),
        "import file ({format}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    ensure!(
        answer["applied"] == u64::from(rows),
        "import file ({format}) applied {} of {rows} rows: {}",
        answer["applied"],
        answer["rejected"]
    );
    let file_mib = std::fs::metadata(file)?.len() as f64 / (1024.0 * 1024.0);
    println!("import: {format}, {rows} rows in {seconds:.1} s, peak RSS {peak:.1} MiB");
    Ok(Run {
        format,
        rows: u64::from(rows),
        seconds,
        peak_rss_mib: peak,
        file_mib,
    })
}

/// Row `i`: its id, date, phone (one of 10,000 clients), service, amount and status.
fn row(i: u32) -> (String, String, String, &'static str, u32, &'static str) {
    let services = [
        "Стрижка женская",
        "Окрашивание",
        "Маникюр с покрытием",
        "Укладка",
    ];
    let day = 1 + i % 28;
    let month = 1 + (i / 28) % 12;
    let year = 2023 + (i / 336) % 3;
    (
        i.to_string(),
        format!(
            "{day:02}.{month:02}.{year} {:02}:{:02}",
            9 + i % 11,
            (i % 4) * 15
        ),
        format!("+7916{:07}", 1_000_000 + i % 10_000),
        services[(i % 4) as usize],
        1_000 + (i % 40) * 100,
        if i.is_multiple_of(17) {
            "Не пришёл"
        } else {
            "Пришёл"
        },
    )
}

const HEADER: [&str; 6] = ["ID", "Дата", "Телефон", "Услуга", "Сумма", "Статус"];

fn write_csv(dir: &Path, rows: u32) -> anyhow::Result<PathBuf> {
    let path = dir.join("visits.csv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
    writeln!(out, "{}", HEADER.join(";"))?;
    for i in 0..rows {
        let (id, date, phone, service, paid, status) = row(i);
        writeln!(out, "{id};{date};{phone};{service};{paid},00;{status}")?;
    }
    out.flush()?;
    Ok(path)
}

/// A workbook as small as Excel reads: one sheet of inline strings and numbers.
fn write_xlsx(dir: &Path, rows: u32) -> anyhow::Result<PathBuf> {
    use zip::write::SimpleFileOptions;
    let path = dir.join("visits.xlsx");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path)?);
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let parts: [(&str, &str); 4] = [
        (
            "[Content_Types].xml",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#,
        ),
        (
            "_rels/.rels",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#,
        ),
        (
            "xl/workbook.xml",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Визиты" sheetId="1" r:id="rId1"/></sheets></workbook>"#,
        ),
        (
            "xl/_rels/workbook.xml.rels",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#,
        ),
    ];
    for (name, text) in parts {
        zip.start_file(name, options)?;
        zip.write_all(text.as_bytes())?;
    }
    zip.start_file("xl/worksheets/sheet1.xml", options)?;
    let mut sheet = std::io::BufWriter::new(&mut zip);
    write!(
        sheet,
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#
    )?;
    let text = |col: char, r: u32, s: &str| {
        format!(r#"<c r="{col}{r}" t="inlineStr"><is><t>{s}</t></is></c>"#)
    };
    write!(sheet, r#"<row r="1">"#)?;
    for (col, name) in ('A'..='F').zip(HEADER) {
        write!(sheet, "{}", text(col, 1, name))?;
    }
    write!(sheet, "</row>")?;
    for i in 0..rows {
        let r = i + 2;
        let (id, date, phone, service, paid, status) = row(i);
        write!(
            sheet,
            r#"<row r="{r}"><c r="A{r}"><v>{id}</v></c>{}{}{}<c r="E{r}"><v>{paid}</v></c>{}</row>"#,
            text('B', r, &date),
            text('C', r, &phone),
            text('D', r, service),
            text('F', r, status),
        )?;
    }
    write!(sheet, "</sheetData></worksheet>")?;
    sheet.flush()?;
    drop(sheet);
    zip.finish()?;
    Ok(path)
}
