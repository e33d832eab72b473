//! A file of customers as `lifetimes` writes it: a header naming `frequency`, `recency` and `T`
//! (and `monetary_value` for the value model; other columns such as an id are kept aside),
//! then one row per customer, comma-separated, time in any unit.

use super::Customer;

/// What is wrong with a summary file, and on which line (1 is the header).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {why}")]
pub struct SummaryError {
    pub line: usize,
    pub why: String,
}

/// The customers of a summary file, in order, and whether it gave values.
pub fn parse(text: &str) -> Result<(Vec<Customer>, bool), SummaryError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((h, header)) = lines.next() else {
        return Err(SummaryError {
            line: 1,
            why: "the file is empty: a header `frequency,recency,T` is expected".into(),
        });
    };
    let names: Vec<String> = header
        .split(',')
        .map(|c| c.trim().trim_matches('"').to_owned())
        .collect();
    let column = |want: &str| names.iter().position(|n| n == want);
    let (Some(fi), Some(ri), Some(ti)) = (column("frequency"), column("recency"), column("T"))
    else {
        return Err(SummaryError {
            line: h + 1,
            why: format!(
                "the header must name frequency, recency and T (it has {})",
                names.join(", ")
            ),
        });
    };
    let mi = column("monetary_value");
    let mut out = Vec::new();
    for (i, row) in lines {
        let line = i + 1;
        let fields: Vec<&str> = row.split(',').map(|f| f.trim().trim_matches('"')).collect();
        if fields.len() != names.len() {
            return Err(SummaryError {
                line,
                why: format!(
                    "{} fields where the header has {}",
                    fields.len(),
                    names.len()
                ),
            });
        }
        let number = |k: usize| -> Result<f64, SummaryError> {
            fields[k]
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| SummaryError {
                    line,
                    why: format!("{}: {:?} is not a number", names[k], fields[k]),
                })
        };
        let c = Customer {
            frequency: number(fi)?,
            recency: number(ri)?,
            t: number(ti)?,
            monetary: mi.map(number).transpose()?,
        };
        let bad = |why: &str| {
            Err(SummaryError {
                line,
                why: why.to_owned(),
            })
        };
        if c.frequency < 0.0 || c.frequency.fract() != 0.0 {
            return bad("frequency must be a whole number ≥ 0");
        }
        if c.recency < 0.0 || c.recency > c.t {
            return bad("recency must be within 0..=T");
        }
        if c.frequency > 0.0 && c.recency == 0.0 {
            return bad("a customer with repeat purchases has recency > 0");
        }
        if c.monetary.is_some_and(|m| m < 0.0) {
            return bad("monetary_value cannot be negative");
        }
        out.push(c);
    }
    if out.is_empty() {
        return Err(SummaryError {
            line: h + 2,
            why: "no customers after the header".into(),
        });
    }
    Ok((out, mi.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lifetimes_files_and_says_where_one_is_wrong() {
        let (c, values) = parse("ID,frequency,recency,T\n1,2,30.43,38.86\n2,0,0,38.86\n").unwrap();
        assert!(!values);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].frequency, 2.0);
        assert_eq!(c[0].recency, 30.43);
        let err = |text: &str| parse(text).unwrap_err().to_string();
        assert_eq!(
            err("frequency,recency,T\n1,2,3\n1,x,3\n"),
            "line 3: recency: \"x\" is not a number"
        );
        assert_eq!(
            err("frequency,recency,T\n1,5,3\n"),
            "line 2: recency must be within 0..=T"
        );
        assert_eq!(
            err("frequency,recency,T\n1,2\n"),
            "line 2: 2 fields where the header has 3"
        );
        assert!(err("x,recency,T\n").starts_with("line 1: the header must name"));
        assert!(err("").starts_with("line 1: the file is empty"));
        assert_eq!(
            err("frequency,recency,T\n1.5,2,3\n"),
            "line 2: frequency must be a whole number ≥ 0"
        );
    }
}
