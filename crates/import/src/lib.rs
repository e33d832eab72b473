//! The file import: clients, visits and opening balances from the CSV and XLSX files salons
//! export from DIKIDI Business, YCLIENTS or a spreadsheet.
//!
//! [`FileRows`] opens a file ([`table`]: encoding, separator and format found without being
//! told), finds its columns ([`mapping`]: a preset's names in Russian and English, or
//! `--map column=field`), and yields each row checked: a [`Row`] to apply, or the reason it is
//! refused, with its number as a spreadsheet shows it (the header is row 1). Nothing is read
//! whole: a file of any length is held a row at a time (an XLSX's shared strings excepted).
//! Applying rows is the engine's, in `loyalty-gateway`.

pub mod mapping;
pub mod table;
pub mod values;

use std::collections::HashMap;
use std::path::Path;

use loyalty_core::event::VisitStatus;
use loyalty_core::{Country, Phone};

pub use mapping::{Field, Mapping, Preset};
pub use table::{CsvOptions, Encoding, Format, Table};

/// Why a file cannot be imported at all (a bad row is a [`Checked::Refused`], not this).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("{0}: {1}")]
    Io(String, String),
    #[error("{0} is empty: no header, no rows")]
    Empty(String),
    #[error("{0} is not a table: {1}")]
    NotATable(String, String),
    #[error("{0}: {1}")]
    Columns(String, String),
    #[error("row {0} cannot be read: {1}")]
    Row(u64, String),
}

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Clients,
    Visits,
    Balances,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Clients => "clients",
            Kind::Visits => "visits",
            Kind::Balances => "balances",
        }
    }

    /// The columns a file of this kind cannot do without.
    fn required(self) -> &'static [Field] {
        match self {
            Kind::Clients => &[Field::Phone],
            Kind::Visits => &[Field::Phone, Field::Date],
            Kind::Balances => &[Field::Phone, Field::Points],
        }
    }
}

/// How rows are read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub csv: CsvOptions,
    pub preset: Preset,
    /// `column=field` rules over the preset.
    pub map: Vec<String>,
    /// Phones without a country code are this country's.
    pub country: Country,
    /// Dates in the file are the salon's local time at this offset.
    pub utc_offset_minutes: i32,
    /// A visit without a status is one that came when it is not in the future.
    pub now_ms: i64,
}

/// A client's card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRow {
    pub phone: Phone,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// A visit: its key (from the file's id, else its date, phone, service and ordinal among
/// identical rows), when, who, what was paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitRow {
    pub key: String,
    pub phone: Phone,
    pub name: Option<String>,
    pub at_ms: i64,
    pub status: VisitStatus,
    pub paid_minor: i64,
    pub service: Option<String>,
    pub master: Option<String>,
}

/// A client's opening balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceRow {
    pub phone: Phone,
    pub name: Option<String>,
    pub points: i64,
}

/// One row, ready to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    Client(ClientRow),
    Visit(VisitRow),
    Balance(BalanceRow),
}

impl Row {
    /// Whose row it is.
    pub fn phone(&self) -> &Phone {
        match self {
            Row::Client(c) => &c.phone,
            Row::Visit(v) => &v.phone,
            Row::Balance(b) => &b.phone,
        }
    }
}

/// A row as checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    Accepted(Row),
    Refused(String),
}

/// A file's rows, checked one at a time.
pub struct FileRows {
    table: Table,
    mapping: Mapping,
    kind: Kind,
    options: ReadOptions,
    /// A row's identity (a file id, or a phone), as its [`fnv`] hash → the row it was first
    /// seen on. Hashes, not the strings: a file of any length is held in a few bytes a row.
    seen: HashMap<u64, u64>,
    /// An id-less visit's identity, hashed → how many identical rows came before.
    ordinals: HashMap<u64, u32>,
}

impl FileRows {
    /// Opens `path` as a `kind` file: refused when it is no table, or lacks a column the kind
    /// needs (the error names the header it found).
    pub fn open(path: &Path, kind: Kind, options: ReadOptions) -> Result<FileRows, ImportError> {
        let table = Table::open(path, options.csv)?;
        let name = path.display().to_string();
        let mapping = Mapping::new(&table.header, options.preset, &options.map)
            .map_err(|e| ImportError::Columns(name.clone(), e))?;
        let fields = mapping.fields();
        if fields.is_empty() {
            return Err(ImportError::NotATable(
                name,
                format!(
                    "no column is named like a phone, a name, a date or an amount (its first row: {})",
                    table.header.join(" | ")
                ),
            ));
        }
        if let Some(missing) = kind.required().iter().find(|f| !fields.contains(f)) {
            return Err(ImportError::Columns(
                name,
                format!(
                    "a {} file needs a {missing} column; the header has: {} (name it with --map 'COLUMN={missing}')",
                    kind.as_str(),
                    table.header.join(" | ")
                ),
            ));
        }
        Ok(FileRows {
            table,
            mapping,
            kind,
            options,
            seen: HashMap::new(),
            ordinals: HashMap::new(),
        })
    }

    pub fn format(&self) -> Format {
        self.table.format
    }

    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// The next row with its number, checked; `None` at the end.
    pub fn next_checked(&mut self) -> Result<Option<(u64, Checked)>, ImportError> {
        let Some((number, cells)) = self.table.next_row()? else {
            return Ok(None);
        };
        let checked = match self.check(number, &cells) {
            Ok(row) => Checked::Accepted(row),
            Err(reason) => Checked::Refused(reason),
        };
        Ok(Some((number, checked)))
    }

    fn check(&mut self, number: u64, cells: &[String]) -> Result<Row, String> {
        let m = &self.mapping;
        let cell = |f| m.get(cells, f);
        let text = |f| Some(cell(f).to_owned()).filter(|s| !s.is_empty());
        let typed = cell(Field::Phone);
        if typed.is_empty() {
            return Err("no phone".into());
        }
        let phone = Phone::parse(typed, self.options.country)
            .map_err(|e| format!("bad phone {typed:?}: {e}"))?;
        let name = text(Field::Name);
        match self.kind {
            Kind::Clients => {
                first(&mut self.seen, phone.as_str().to_owned(), number)?;
                Ok(Row::Client(ClientRow {
                    phone,
                    name,
                    email: text(Field::Email).filter(|e| e.contains('@')),
                }))
            }
            Kind::Balances => {
                let typed = cell(Field::Points);
                let points = values::points(typed)
                    .ok_or_else(|| format!("points are not a whole number: {typed:?}"))?;
                if points < 0 {
                    return Err(format!("negative points: {points}"));
                }
                first(&mut self.seen, phone.as_str().to_owned(), number)?;
                Ok(Row::Balance(BalanceRow {
                    phone,
                    name,
                    points,
                }))
            }
            Kind::Visits => self.visit(number, cells, phone, name),
        }
    }

    fn visit(
        &mut self,
        number: u64,
        cells: &[String],
        phone: Phone,
        name: Option<String>,
    ) -> Result<Row, String> {
        let m = &self.mapping;
        let cell = |f| m.get(cells, f);
        let text = |f| Some(cell(f).to_owned()).filter(|s| !s.is_empty());
        let typed = cell(Field::Date);
        if typed.is_empty() {
            return Err("no date".into());
        }
        let (date, mut time) =
            values::date_time(typed).ok_or_else(|| format!("bad date {typed:?}"))?;
        let typed_time = cell(Field::Time);
        if time.is_none() && !typed_time.is_empty() {
            time = Some(
                values::time_of_day(typed_time)
                    .ok_or_else(|| format!("bad time {typed_time:?}"))?,
            );
        }
        let at_ms = values::local_ms(date, time, self.options.utc_offset_minutes);
        let typed = cell(Field::Paid);
        let paid_minor = if typed.is_empty() {
            0
        } else {
            values::amount_minor(typed)
                .ok_or_else(|| format!("the amount is not a number: {typed:?}"))?
        };
        if paid_minor < 0 {
            return Err(format!("negative amount: {typed}"));
        }
        let typed = cell(Field::Status);
        let status = if typed.is_empty() {
            if at_ms > self.options.now_ms {
                VisitStatus::Waiting
            } else {
                VisitStatus::Came
            }
        } else {
            values::status(typed).ok_or_else(|| format!("unknown status {typed:?}"))?
        };
        let service = text(Field::Service);
        let key = match text(Field::Id) {
            Some(id) => {
                let key = format!("file-id-{}", safe(&id));
                first(&mut self.seen, key.clone(), number)?;
                key
            }
            None => {
                let when = match time {
                    Some(t) => format!("{}T{}", date.format("%Y%m%d"), t.format("%H%M")),
                    None => date.format("%Y%m%d").to_string(),
                };
                let digits = phone.as_str().trim_start_matches('+').to_owned();
                let what = fnv(&service.as_deref().unwrap_or("").to_lowercase());
                let base = format!("file-{when}-{digits}-{what:016x}");
                let n = self.ordinals.entry(fnv(&base)).or_insert(0);
                *n += 1;
                format!("{base}-{n}")
            }
        };
        Ok(Row::Visit(VisitRow {
            key,
            phone,
            name,
            at_ms,
            status,
            paid_minor,
            service,
            master: text(Field::Master),
        }))
    }
}

/// Refuses a second row with the same identity.
fn first(seen: &mut HashMap<u64, u64>, identity: String, number: u64) -> Result<(), String> {
    match seen.entry(fnv(&identity)) {
        std::collections::hash_map::Entry::Occupied(first) => {
            Err(format!("a duplicate of row {}", first.get()))
        }
        std::collections::hash_map::Entry::Vacant(slot) => {
            slot.insert(number);
            Ok(())
        }
    }
}

/// An id as a record key: at most 64 characters, without spaces or separators.
fn safe(id: &str) -> String {
    id.chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .map(|c| if c == ':' || c == '|' { '_' } else { c })
        .take(64)
        .collect()
}

/// FNV-1a: a stable short name for a service (the same on every machine and version), and a
/// row's identity in a few bytes.
pub fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
