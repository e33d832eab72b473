//! The reader over the files in fixtures/import (see its README for how each is made): both
//! encodings and separators, quoted separators and line breaks, XLSX, Russian and English
//! headers, phones, dates and amounts as salons type them, and every refused row with its
//! number and reason.

use std::io::Write;
use std::path::{Path, PathBuf};

use loyalty_core::Country;
use loyalty_core::event::VisitStatus;
use loyalty_import::{
    Checked, CsvOptions, Encoding, FileRows, Format, ImportError, Kind, Preset, ReadOptions, Row,
    VisitRow,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/import")
        .join(name)
}

fn options() -> ReadOptions {
    ReadOptions {
        csv: CsvOptions::default(),
        preset: Preset::Generic,
        map: Vec::new(),
        country: Country::RU,
        utc_offset_minutes: 180,
        // 2026-01-01: every visit in the fixtures is past.
        now_ms: 1_767_225_600_000,
    }
}

/// A file's format, its accepted rows and its refused rows with their reason, by number.
type Read = (Format, Vec<(u64, Row)>, Vec<(u64, String)>);

/// Every row: accepted rows, refused rows with their reason.
fn read(path: &Path, kind: Kind, options: ReadOptions) -> Read {
    let mut rows = FileRows::open(path, kind, options).unwrap();
    let (mut ok, mut refused) = (Vec::new(), Vec::new());
    while let Some((n, checked)) = rows.next_checked().unwrap() {
        match checked {
            Checked::Accepted(row) => ok.push((n, row)),
            Checked::Refused(why) => refused.push((n, why)),
        }
    }
    (rows.format(), ok, refused)
}

fn visits(rows: &[(u64, Row)]) -> Vec<(u64, VisitRow)> {
    rows.iter()
        .map(|(n, r)| match r {
            Row::Visit(v) => (*n, v.clone()),
            other => panic!("not a visit: {other:?}"),
        })
        .collect()
}

/// 14 October 2025, `hh:mm` in Moscow, as Unix ms.
fn oct(day: i64, h: i64, m: i64) -> i64 {
    let midnight_utc = 1_760_400_000_000 + (day - 14) * 86_400_000;
    midnight_utc + (h * 60 + m - 180) * 60_000
}

#[test]
fn russian_excel_csv_in_windows_1251_with_semicolons() {
    let (format, ok, refused) = read(
        &fixture("visits_ru_cp1251_semicolon.csv"),
        Kind::Visits,
        options(),
    );
    assert_eq!(
        format,
        Format::Csv {
            encoding: Encoding::Windows1251,
            delimiter: b';'
        }
    );
    assert_eq!(
        refused,
        vec![
            (6, "no phone".to_owned()),
            (
                7,
                "bad phone \"12345\": too few digits for a phone number of +7".to_owned()
            ),
            (8, "no date".to_owned()),
            (9, "negative amount: -100".to_owned()),
            (10, "unknown status \"Может быть\"".to_owned()),
        ]
    );
    let v = visits(&ok);
    let numbers: Vec<u64> = v.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, vec![2, 3, 4, 5, 11, 12]);
    let (_, anna) = &v[0];
    assert_eq!(anna.phone.as_str(), "+79161234567");
    assert_eq!(anna.name.as_deref(), Some("Анна Смирнова"));
    assert_eq!(anna.paid_minor, 350_000);
    assert_eq!(anna.at_ms, oct(14, 10, 0));
    assert_eq!(anna.status, VisitStatus::Came);
    assert_eq!(anna.master.as_deref(), Some("Ольга"));
    let (_, maria) = &v[1];
    assert_eq!(maria.service.as_deref(), Some("Окрашивание; тонирование"));
    assert_eq!(maria.paid_minor, 520_050);
    assert_eq!(maria.phone.as_str(), "+79167654321");
    let (_, elena) = &v[2];
    assert_eq!(elena.service.as_deref(), Some("Маникюр\nс покрытием"));
    assert_eq!(
        (elena.status, elena.paid_minor),
        (VisitStatus::NoShow, 180_000)
    );
    let (_, styling) = &v[3];
    assert_eq!(styling.status, VisitStatus::Deleted);
    assert_eq!(styling.at_ms, oct(16, 0, 0), "no time: the day's start");
    // Two identical rows without an id: two visits, told apart by their ordinal.
    let (a, b) = (&v[4].1, &v[5].1);
    assert_ne!(a.key, b.key);
    assert_eq!(a.key.trim_end_matches("-1"), b.key.trim_end_matches("-2"));
    assert!(
        a.key.starts_with("file-20251019T1800-79167654321-"),
        "{}",
        a.key
    );
}

#[test]
fn a_utf8_spreadsheet_with_ids_and_iso_dates() {
    let (format, ok, refused) = read(
        &fixture("visits_en_utf8bom_comma.csv"),
        Kind::Visits,
        options(),
    );
    assert_eq!(
        format,
        Format::Csv {
            encoding: Encoding::Utf8,
            delimiter: b','
        }
    );
    assert_eq!(refused, vec![(6, "a duplicate of row 3".to_owned())]);
    let v = visits(&ok);
    assert_eq!(v.len(), 4);
    assert_eq!(v[0].1.key, "file-id-9001");
    assert_eq!(v[0].1.service.as_deref(), Some("Haircut, wash"));
    assert_eq!(v[0].1.at_ms, oct(14, 10, 0));
    assert_eq!(v[1].1.at_ms, oct(14, 12, 30));
    assert_eq!(v[1].1.paid_minor, 520_050);
    assert_eq!(v[2].1.phone.as_str(), "+79031112233");
    assert_eq!(v[2].1.status, VisitStatus::NoShow);
    assert_eq!(v[3].1.status, VisitStatus::Deleted);
}

#[test]
fn an_xlsx_sheet_with_date_cells_and_numbers() {
    let (format, ok, refused) = read(&fixture("visits_ru.xlsx"), Kind::Visits, options());
    assert_eq!(format, Format::Xlsx);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, 5);
    assert!(refused[0].1.starts_with("bad phone \"нет\""), "{refused:?}");
    let v = visits(&ok);
    let numbers: Vec<u64> = v.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        numbers,
        vec![2, 3, 4, 7],
        "the empty row 6 counts as a sheet row"
    );
    assert_eq!(v[0].1.key, "file-id-501");
    assert_eq!(v[0].1.phone.as_str(), "+79161234567");
    assert_eq!(v[0].1.at_ms, oct(14, 10, 0));
    assert_eq!(v[0].1.paid_minor, 350_000);
    assert_eq!(v[1].1.paid_minor, 520_050);
    assert_eq!(v[1].1.at_ms, oct(14, 12, 30));
    assert_eq!(v[2].1.at_ms, oct(15, 0, 0));
    assert_eq!(v[2].1.status, VisitStatus::NoShow);
    assert_eq!(v[3].1.at_ms, oct(17, 16, 0));
}

#[test]
fn clients_and_opening_balances() {
    let (_, ok, refused) = read(
        &fixture("clients_utf8_semicolon.csv"),
        Kind::Clients,
        options(),
    );
    assert_eq!(ok.len(), 2);
    assert!(matches!(&ok[0].1, Row::Client(c) if c.email.as_deref() == Some("anna@example.ru")));
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[0].0, 4);
    assert!(refused[0].1.starts_with("bad phone"), "{refused:?}");
    assert_eq!(refused[1], (5, "a duplicate of row 2".to_owned()));

    let (_, ok, refused) = read(&fixture("balances_uds.csv"), Kind::Balances, options());
    let points: Vec<i64> = ok
        .iter()
        .map(|(_, r)| match r {
            Row::Balance(b) => b.points,
            _ => -1,
        })
        .collect();
    assert_eq!(points, vec![1500, 250]);
    assert_eq!(
        refused,
        vec![
            (4, "negative points: -5".to_owned()),
            (5, "points are not a whole number: \"12.5\"".to_owned()),
        ]
    );
}

#[test]
fn overrides_and_files_that_are_not_tables() {
    // Told the separator and the encoding, the same file reads the same.
    let mut told = options();
    told.csv = CsvOptions {
        encoding: Some(Encoding::Windows1251),
        delimiter: Some(b';'),
    };
    let (_, ok, _) = read(
        &fixture("visits_ru_cp1251_semicolon.csv"),
        Kind::Visits,
        told,
    );
    assert_eq!(ok.len(), 6);
    // Told wrongly, the header is one column nobody knows: one clear error.
    let mut wrong = options();
    wrong.csv.delimiter = Some(b',');
    let Err(e) = FileRows::open(
        &fixture("visits_ru_cp1251_semicolon.csv"),
        Kind::Visits,
        wrong,
    ) else {
        panic!("read with the wrong separator");
    };
    assert!(matches!(e, ImportError::NotATable(..)), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        p
    };
    let letter = write("letter.csv", "Добрый день!\nВысылаю выгрузку.\n".as_bytes());
    let e = FileRows::open(&letter, Kind::Visits, options())
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .contains("is not a table: no column is named like"),
        "{e}"
    );
    let png = write("photo.csv", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    let e = FileRows::open(&png, Kind::Visits, options()).err().unwrap();
    assert!(e.to_string().contains("binary data"), "{e}");
    let zip = write("broken.xlsx", b"PK\x03\x04 not really a zip");
    let e = FileRows::open(&zip, Kind::Visits, options()).err().unwrap();
    assert!(
        e.to_string().contains("not a readable XLSX workbook"),
        "{e}"
    );
    let empty = write("empty.csv", b"");
    let e = FileRows::open(&empty, Kind::Visits, options())
        .err()
        .unwrap();
    assert_eq!(e, ImportError::Empty(empty.display().to_string()));
    // A visits file without a date column says which column it needs and what it found.
    let no_date = write(
        "no_date.csv",
        "Телефон;Сумма\n+79161234567;100\n".as_bytes(),
    );
    let e = FileRows::open(&no_date, Kind::Visits, options())
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .contains("a visits file needs a date column; the header has: Телефон | Сумма"),
        "{e}"
    );
    // --map names it.
    let mut mapped = options();
    mapped.map = vec!["Сумма=paid".into(), "1=phone".into()];
    let renamed = write(
        "renamed.csv",
        "Тел;Сумма;Когда\n+79161234567;100;01.10.2025\n".as_bytes(),
    );
    mapped.map.push("Когда=date".into());
    let (_, ok, refused) = read(&renamed, Kind::Visits, mapped);
    assert_eq!((ok.len(), refused.len()), (1, 0));
}
