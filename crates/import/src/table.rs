//! A file as rows of text, read one row at a time: CSV (UTF-8 with or without a BOM, or
//! Windows-1251; `,`, `;` or tab; quoted fields with separators and line breaks inside) or an
//! XLSX workbook's first sheet (cell by cell: only the shared strings are held whole).
//!
//! Rows are numbered as a spreadsheet shows them: the header is row 1.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use calamine::{DataRef, Reader, Xlsx};

use crate::ImportError;

/// How a CSV file's bytes are text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Windows1251,
}

impl Encoding {
    /// `utf-8` / `utf8`, `cp1251` / `windows-1251`.
    pub fn parse(s: &str) -> Option<Encoding> {
        match s.trim().to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Some(Encoding::Utf8),
            "cp1251" | "windows-1251" | "win1251" | "1251" => Some(Encoding::Windows1251),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Windows1251 => "windows-1251",
        }
    }
}

/// What the reader is told instead of guessing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CsvOptions {
    pub encoding: Option<Encoding>,
    pub delimiter: Option<u8>,
}

/// What kind of file it turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv { encoding: Encoding, delimiter: u8 },
    Xlsx,
}

/// A table read row by row.
pub struct Table {
    pub format: Format,
    /// The first row with anything in it (its cells, trimmed).
    pub header: Vec<String>,
    /// The header's row number.
    pub header_row: u64,
    rows: Rows,
    /// The row number of the row read last (the header is 1).
    row: u64,
}

/// An XLSX row from the reading thread, or why the sheet could not be read further.
type SentRow = Result<(u64, Vec<String>), String>;

enum Rows {
    Csv(Box<csv::Reader<Decoded<BufReader<File>>>>, csv::ByteRecord),
    /// Rows from the thread that owns the workbook (calamine's cells reader borrows it), a few
    /// hundred ahead at most.
    Xlsx(std::sync::mpsc::Receiver<SentRow>),
}

/// How much of a CSV file is looked at to guess its encoding and separator.
const SAMPLE: usize = 64 * 1024;

/// How many XLSX rows the reading thread may be ahead.
const XLSX_AHEAD: usize = 256;

/// The ZIP signature every XLSX file starts with.
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

impl Table {
    /// Opens `path`: an XLSX workbook by its content, else CSV (encoding and separator guessed
    /// unless `options` say). Reads up to the header.
    pub fn open(path: &Path, options: CsvOptions) -> Result<Table, ImportError> {
        let name = path.display().to_string();
        let io = |e: std::io::Error| ImportError::Io(name.clone(), e.to_string());
        let mut file = File::open(path).map_err(io)?;
        let mut sample = Vec::with_capacity(SAMPLE);
        (&mut file)
            .take(SAMPLE as u64)
            .read_to_end(&mut sample)
            .map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut table = if sample.starts_with(ZIP_MAGIC) {
            Table::xlsx(&name, file)?
        } else {
            if sample.is_empty() {
                return Err(ImportError::Empty(name));
            }
            if sample.contains(&0) {
                return Err(ImportError::NotATable(
                    name,
                    "it holds binary data: neither a CSV text nor an XLSX workbook".into(),
                ));
            }
            let encoding = options.encoding.unwrap_or_else(|| guess_encoding(&sample));
            let delimiter = options
                .delimiter
                .unwrap_or_else(|| guess_delimiter(&sample));
            let mut decoded = Decoded::new(BufReader::new(file), encoding);
            if sample.starts_with(b"\xEF\xBB\xBF") && encoding == Encoding::Utf8 {
                let mut bom = [0u8; 3];
                decoded.inner.read_exact(&mut bom).map_err(io)?;
            }
            let reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .delimiter(delimiter)
                .from_reader(decoded);
            Table {
                format: Format::Csv {
                    encoding,
                    delimiter,
                },
                header: Vec::new(),
                header_row: 0,
                rows: Rows::Csv(Box::new(reader), csv::ByteRecord::new()),
                row: 0,
            }
        };
        match table.next_row() {
            Ok(Some((row, cells))) => {
                table.header_row = row;
                table.header = cells;
                Ok(table)
            }
            Ok(None) => Err(ImportError::Empty(name)),
            Err(ImportError::Row(_, why)) => Err(ImportError::NotATable(name, why)),
            Err(e) => Err(e),
        }
    }

    fn xlsx(name: &str, file: File) -> Result<Table, ImportError> {
        let bad = |e: calamine::XlsxError| {
            ImportError::NotATable(
                name.to_owned(),
                format!("not a readable XLSX workbook: {e}"),
            )
        };
        let mut workbook: Xlsx<BufReader<File>> = Xlsx::new(BufReader::new(file)).map_err(bad)?;
        let sheet = workbook.sheet_names().into_iter().next().ok_or_else(|| {
            ImportError::NotATable(name.to_owned(), "the workbook has no sheet".into())
        })?;
        // Fail here, not in the thread, when the sheet cannot be read at all.
        workbook.worksheet_cells_reader(&sheet).map_err(bad)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(XLSX_AHEAD);
        std::thread::Builder::new()
            .name("xlsx-rows".into())
            .spawn(move || {
                if let Err(e) = send_rows(&mut workbook, &sheet, &tx) {
                    let _ = tx.send(Err(e.to_string()));
                }
            })
            .map_err(|e| ImportError::Io(name.to_owned(), e.to_string()))?;
        Ok(Table {
            format: Format::Xlsx,
            header: Vec::new(),
            header_row: 0,
            rows: Rows::Xlsx(rx),
            row: 0,
        })
    }

    /// The next row that has anything in it, with its number; `None` at the end.
    pub fn next_row(&mut self) -> Result<Option<(u64, Vec<String>)>, ImportError> {
        loop {
            let cells = match &mut self.rows {
                Rows::Csv(reader, record) => {
                    let more = reader
                        .read_byte_record(record)
                        .map_err(|e| ImportError::Row(self.row + 1, e.to_string()))?;
                    if !more {
                        return Ok(None);
                    }
                    self.row += 1;
                    record.iter().map(text).collect::<Vec<_>>()
                }
                Rows::Xlsx(rx) => match rx.recv() {
                    // The thread ended: every row was sent.
                    Err(_) => return Ok(None),
                    Ok(Ok((number, cells))) => {
                        self.row = number;
                        cells
                    }
                    Ok(Err(e)) => return Err(ImportError::Row(self.row + 1, e)),
                },
            };
            if cells.iter().any(|c| !c.is_empty()) {
                return Ok(Some((self.row, cells)));
            }
        }
    }
}

/// Streams the sheet's cells into rows, each sent as soon as the next row begins.
fn send_rows(
    workbook: &mut Xlsx<BufReader<File>>,
    sheet: &str,
    tx: &std::sync::mpsc::SyncSender<SentRow>,
) -> Result<(), calamine::XlsxError> {
    let mut cells = workbook.worksheet_cells_reader(sheet)?;
    let mut row: Option<(u32, Vec<String>)> = None;
    while let Some(cell) = cells.next_cell()? {
        let (r, c) = cell.get_position();
        let value = cell_text(cell.get_value());
        if row.as_ref().is_some_and(|(at, _)| *at != r)
            && let Some((at, done)) = row.take()
            && tx.send(Ok((u64::from(at) + 1, done))).is_err()
        {
            // The reader stopped listening.
            return Ok(());
        }
        let (_, current) = row.get_or_insert_with(|| (r, Vec::new()));
        let c = c as usize;
        if current.len() <= c {
            current.resize(c + 1, String::new());
        }
        current[c] = value;
    }
    if let Some((at, done)) = row {
        let _ = tx.send(Ok((u64::from(at) + 1, done)));
    }
    Ok(())
}

/// A cell as text (the decoder made it UTF-8; anything else is replaced, not a failure).
fn text(cell: &[u8]) -> String {
    String::from_utf8_lossy(cell).trim().to_owned()
}

/// UTF-8 when the sample is (a character cut at its end allowed), else Windows-1251 — what
/// Excel writes as "CSV" on a Russian Windows.
fn guess_encoding(sample: &[u8]) -> Encoding {
    match std::str::from_utf8(sample) {
        Ok(_) => Encoding::Utf8,
        Err(e) if e.error_len().is_none() => Encoding::Utf8,
        Err(_) => Encoding::Windows1251,
    }
}

/// The separator the first row uses most, outside quotes: `;` (Excel in Russian locales), `,`
/// or a tab; `,` when none appears.
fn guess_delimiter(sample: &[u8]) -> u8 {
    let mut counts = [(b';', 0usize), (b',', 0), (b'\t', 0)];
    let mut quoted = false;
    for &b in sample {
        match b {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
            _ if !quoted => {
                for (d, n) in counts.iter_mut() {
                    if *d == b {
                        *n += 1;
                    }
                }
            }
            _ => {}
        }
    }
    counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .max_by_key(|(_, n)| *n)
        .map_or(b',', |(d, _)| *d)
}

/// A reader turning Windows-1251 bytes into UTF-8 as they are read (UTF-8 passes through).
struct Decoded<R> {
    inner: R,
    decoder: Option<encoding_rs::Decoder>,
    raw: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<R: Read> Decoded<R> {
    fn new(inner: R, encoding: Encoding) -> Decoded<R> {
        let decoder = match encoding {
            Encoding::Utf8 => None,
            Encoding::Windows1251 => {
                Some(encoding_rs::WINDOWS_1251.new_decoder_without_bom_handling())
            }
        };
        Decoded {
            inner,
            decoder,
            raw: vec![0; 16 * 1024],
            out: Vec::with_capacity(48 * 1024),
            pos: 0,
            done: false,
        }
    }
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(decoder) = self.decoder.as_mut() else {
            return self.inner.read(buf);
        };
        while self.pos == self.out.len() {
            if self.done {
                return Ok(0);
            }
            let n = self.inner.read(&mut self.raw)?;
            let last = n == 0;
            self.pos = 0;
            // Every Windows-1251 byte is at most 3 bytes of UTF-8: one call decodes the chunk.
            let mut text = String::from_utf8(std::mem::take(&mut self.out)).unwrap_or_default();
            text.clear();
            text.reserve(n * 3 + 16);
            let (_, _, _) = decoder.decode_to_string(&self.raw[..n], &mut text, last);
            self.out = text.into_bytes();
            self.done = last;
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A cell's value as text: numbers without a spurious `.0`, dates as `YYYY-MM-DD HH:MM`.
fn cell_text(value: &DataRef<'_>) -> String {
    match value {
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) => float_text(*f),
        DataRef::String(s) => s.trim().to_owned(),
        DataRef::SharedString(s) => s.trim().to_owned(),
        DataRef::Bool(b) => b.to_string(),
        DataRef::DateTime(dt) => {
            let (y, m, d, h, min, s, _) = dt.to_ymd_hms_milli();
            if dt.as_f64() < 1.0 {
                format!("{h:02}:{min:02}")
            } else if (h, min, s) == (0, 0, 0) {
                format!("{y:04}-{m:02}-{d:02}")
            } else {
                format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02}")
            }
        }
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::Error(_) | DataRef::Empty => String::new(),
    }
}

fn float_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.0}")
    } else {
        // Money in a sheet: two decimals is what the cell means.
        let s = format!("{f:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}
