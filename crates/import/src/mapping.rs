//! Which column is which: a file's header read by a preset's names for each field (Russian and
//! English), or told explicitly (`--map column=field`).

use std::fmt;
use std::str::FromStr;

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// The visit's (or client's) id in the system the file came from.
    Id,
    Phone,
    Name,
    /// The visit's date, possibly with its time.
    Date,
    Time,
    /// What was paid, after discounts.
    Paid,
    Service,
    Master,
    Status,
    /// Points (a balances file).
    Points,
    Email,
}

impl Field {
    pub const ALL: [Field; 11] = [
        Field::Id,
        Field::Phone,
        Field::Name,
        Field::Date,
        Field::Time,
        Field::Paid,
        Field::Service,
        Field::Master,
        Field::Status,
        Field::Points,
        Field::Email,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Phone => "phone",
            Field::Name => "name",
            Field::Date => "date",
            Field::Time => "time",
            Field::Paid => "paid",
            Field::Service => "service",
            Field::Master => "master",
            Field::Status => "status",
            Field::Points => "points",
            Field::Email => "email",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Field {
    type Err = String;
    fn from_str(s: &str) -> Result<Field, String> {
        let s = s.trim().to_ascii_lowercase();
        Field::ALL
            .into_iter()
            .find(|f| f.as_str() == s || (s == "amount" && *f == Field::Paid))
            .ok_or_else(|| {
                let known: Vec<&str> = Field::ALL.iter().map(|f| f.as_str()).collect();
                format!("unknown field {s:?} (known: {})", known.join(", "))
            })
    }
}

/// A set of header names per field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// The usual names in Russian and English.
    Generic,
    /// DIKIDI Business's exports (assumed: docs/crm/dikidi.md says what is known).
    Dikidi,
    /// YCLIENTS's record and client exports (assumed likewise).
    Yclients,
}

impl FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Preset, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "generic" => Ok(Preset::Generic),
            "dikidi" => Ok(Preset::Dikidi),
            "yclients" => Ok(Preset::Yclients),
            other => Err(format!(
                "unknown preset {other:?} (known: generic, dikidi, yclients)"
            )),
        }
    }
}

/// The names every preset knows (compared lowercased, `ё` as `е`, without `*`, `:` and
/// surrounding spaces).
const GENERIC: &[(&str, Field)] = &[
    ("id", Field::Id),
    ("номер", Field::Id),
    ("№", Field::Id),
    ("номер записи", Field::Id),
    ("id записи", Field::Id),
    ("record id", Field::Id),
    ("visit id", Field::Id),
    ("телефон", Field::Phone),
    ("телефон клиента", Field::Phone),
    ("мобильный телефон", Field::Phone),
    ("моб. телефон", Field::Phone),
    ("номер телефона", Field::Phone),
    ("phone", Field::Phone),
    ("phone number", Field::Phone),
    ("mobile", Field::Phone),
    ("имя", Field::Name),
    ("клиент", Field::Name),
    ("имя клиента", Field::Name),
    ("фио", Field::Name),
    ("фио клиента", Field::Name),
    ("name", Field::Name),
    ("client", Field::Name),
    ("client name", Field::Name),
    ("customer", Field::Name),
    ("дата", Field::Date),
    ("дата визита", Field::Date),
    ("дата записи", Field::Date),
    ("дата и время", Field::Date),
    ("date", Field::Date),
    ("visit date", Field::Date),
    ("время", Field::Time),
    ("время визита", Field::Time),
    ("time", Field::Time),
    ("сумма", Field::Paid),
    ("оплачено", Field::Paid),
    ("сумма оплаты", Field::Paid),
    ("итого", Field::Paid),
    ("стоимость", Field::Paid),
    ("paid", Field::Paid),
    ("amount", Field::Paid),
    ("total", Field::Paid),
    ("услуга", Field::Service),
    ("услуги", Field::Service),
    ("наименование услуги", Field::Service),
    ("service", Field::Service),
    ("services", Field::Service),
    ("мастер", Field::Master),
    ("сотрудник", Field::Master),
    ("специалист", Field::Master),
    ("master", Field::Master),
    ("staff", Field::Master),
    ("employee", Field::Master),
    ("статус", Field::Status),
    ("статус визита", Field::Status),
    ("status", Field::Status),
    ("баллы", Field::Points),
    ("бонусы", Field::Points),
    ("баланс", Field::Points),
    ("баланс баллов", Field::Points),
    ("points", Field::Points),
    ("balance", Field::Points),
    ("email", Field::Email),
    ("e-mail", Field::Email),
    ("почта", Field::Email),
];

/// DIKIDI's journal and client exports as their columns are shown in the web app (assumed).
const DIKIDI: &[(&str, Field)] = &[
    ("номер клиента", Field::Phone),
    ("сумма записи", Field::Paid),
    ("стоимость услуг", Field::Paid),
    ("дата и время записи", Field::Date),
    ("начало", Field::Time),
    ("пришел", Field::Status),
    ("статус записи", Field::Status),
];

/// YCLIENTS's exports of records and clients (assumed).
const YCLIENTS: &[(&str, Field)] = &[
    ("сумма к оплате", Field::Paid),
    ("оплачено всего", Field::Paid),
    ("дата визита и время", Field::Date),
    ("визит", Field::Status),
    ("статус визита", Field::Status),
    ("имя сотрудника", Field::Master),
    ("id визита", Field::Id),
];

/// A header cell as it is compared.
pub fn normalize(header: &str) -> String {
    let lower = header.trim().to_lowercase().replace('ё', "е");
    let cleaned = lower.trim_matches(|c: char| c == '*' || c == ':' || c.is_whitespace());
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Preset {
    fn names(self) -> impl Iterator<Item = &'static (&'static str, Field)> {
        let own: &'static [(&str, Field)] = match self {
            Preset::Generic => &[],
            Preset::Dikidi => DIKIDI,
            Preset::Yclients => YCLIENTS,
        };
        own.iter().chain(GENERIC.iter())
    }

    /// The field a header names under this preset.
    pub fn field_of(self, header: &str) -> Option<Field> {
        let h = normalize(header);
        self.names().find(|(name, _)| *name == h).map(|(_, f)| *f)
    }
}

/// Which column holds which field, found from a header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping {
    columns: Vec<(Field, usize)>,
    /// Header cells that name no field (shown, not an error).
    pub ignored: Vec<String>,
}

impl Mapping {
    /// Maps `header` by `preset`, then `explicit` (`column=field`: a header's text or its
    /// 1-based number) over it. Two columns named alike: the first one.
    pub fn new(header: &[String], preset: Preset, explicit: &[String]) -> Result<Mapping, String> {
        let mut m = Mapping::default();
        let mut told = Vec::with_capacity(explicit.len());
        for rule in explicit {
            let (column, field) = rule
                .rsplit_once('=')
                .ok_or_else(|| format!("--map {rule:?}: expected COLUMN=FIELD"))?;
            let field: Field = field.parse().map_err(|e| format!("--map {rule:?}: {e}"))?;
            let index = match column.trim().parse::<usize>() {
                Ok(n) if n >= 1 && n <= header.len() => n - 1,
                _ => header
                    .iter()
                    .position(|h| normalize(h) == normalize(column))
                    .ok_or_else(|| {
                        format!(
                            "--map {rule:?}: no column {column:?} (the header has: {})",
                            header.join(" | ")
                        )
                    })?,
            };
            told.push((field, index));
        }
        for (i, h) in header.iter().enumerate() {
            if told.iter().any(|(_, c)| *c == i) {
                continue;
            }
            match preset.field_of(h) {
                Some(f) if !told.iter().any(|(t, _)| *t == f) && m.column(f).is_none() => {
                    m.columns.push((f, i));
                }
                _ if !h.trim().is_empty() => m.ignored.push(h.clone()),
                _ => {}
            }
        }
        m.columns.extend(told);
        m.columns.sort();
        Ok(m)
    }

    /// The column holding `field`.
    pub fn column(&self, field: Field) -> Option<usize> {
        self.columns
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, c)| *c)
    }

    /// A row's cell for `field`, trimmed; empty when the row is short.
    pub fn get<'r>(&self, row: &'r [String], field: Field) -> &'r str {
        self.column(field)
            .and_then(|c| row.get(c))
            .map_or("", |s| s.trim())
    }

    /// The fields found, in order.
    pub fn fields(&self) -> Vec<Field> {
        self.columns.iter().map(|(f, _)| *f).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn russian_and_english_headers() {
        let h = header(&[
            "Дата",
            "Клиент",
            "Телефон",
            "Услуга",
            "Сотрудник",
            "Оплачено",
            "Статус",
            "Комментарий",
        ]);
        let m = Mapping::new(&h, Preset::Generic, &[]).unwrap();
        assert_eq!(m.column(Field::Phone), Some(2));
        assert_eq!(m.column(Field::Name), Some(1));
        assert_eq!(m.column(Field::Paid), Some(5));
        assert_eq!(m.column(Field::Master), Some(4));
        assert_eq!(m.ignored, vec!["Комментарий".to_owned()]);
        let h = header(&[
            "Phone", "Name", "Date", "Amount", "Service", "Staff", "Status", "ID",
        ]);
        let m = Mapping::new(&h, Preset::Generic, &[]).unwrap();
        assert_eq!(m.fields().len(), 8);
        assert_eq!(m.column(Field::Id), Some(7));
    }

    #[test]
    fn explicit_mapping_wins_and_is_checked() {
        let h = header(&["Тел.", "Сумма", "Итого"]);
        let m = Mapping::new(&h, Preset::Generic, &["Тел.=phone".into(), "3=paid".into()]).unwrap();
        assert_eq!(m.column(Field::Phone), Some(0));
        assert_eq!(m.column(Field::Paid), Some(2));
        assert_eq!(m.ignored, vec!["Сумма".to_owned()]);
        assert!(Mapping::new(&h, Preset::Generic, &["Нет=phone".into()]).is_err());
        assert!(Mapping::new(&h, Preset::Generic, &["Тел.=телефон".into()]).is_err());
        assert!(Mapping::new(&h, Preset::Generic, &["phone".into()]).is_err());
    }
}
