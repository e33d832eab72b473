//! The program (owners): the everyday settings as a form, the whole program as JSON for levels,
//! campaigns, rules, birthday, referrals and reminders — each save checked like `program set`
//! and made a new version in force from now, audited; the versions listed.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use loyalty_core::custom::check_plan;
use loyalty_core::{Bps, Currency, PartnerStore, Points, Program};
use serde::Deserialize;

use super::{Chrome, html, parse_money, when};
use crate::session::Staff;
use crate::{Dashboard, WebError};

pub struct Version {
    pub version: i64,
    pub from: String,
}

#[derive(Template)]
#[template(path = "program.html")]
struct ProgramPage {
    c: Chrome,
    currency: &'static str,
    cashback: String,
    min_paid: String,
    ttl_days: String,
    max_share: String,
    welcome: String,
    point_value: String,
    code_days: String,
    pending_days: String,
    max_points: String,
    json: String,
    versions: Vec<Version>,
    saved: bool,
    error: Option<String>,
}

/// Basis points as a percentage people type: 500 → `5`, 550 → `5.5`, 1 → `0.01`.
fn percent(b: Bps) -> String {
    let v = b.value();
    let (whole, frac) = (v / 100, v % 100);
    match frac {
        0 => whole.to_string(),
        f if f % 10 == 0 => format!("{whole}.{}", f / 10),
        f => format!("{whole}.{f:02}"),
    }
}

/// A percentage typed (`5`, `5,5`, `12.25`) in basis points, 0–100 %.
fn parse_percent(typed: &str) -> Option<Bps> {
    let t = typed.trim().trim_end_matches('%').trim().replace(',', ".");
    let (whole, frac) = t.split_once('.').unwrap_or((&t, ""));
    if whole.is_empty()
        || frac.len() > 2
        || !(whole.chars().chain(frac.chars())).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<2}").parse().ok()?
    };
    let bps = whole.checked_mul(100)?.checked_add(frac)?;
    (bps <= 10_000).then(|| Bps::new(bps).ok()).flatten()
}

/// A money amount for the form's field: `1500` or `1500.50` (no thousands spaces).
fn plain_money(minor: i64, currency: Currency) -> String {
    let per = currency.minor_per_major();
    if per == 1 || minor % per == 0 {
        (minor / per).to_string()
    } else {
        let places = per.to_string().len() - 1;
        format!("{}.{:0places$}", minor / per, minor % per)
    }
}

async fn render(
    dash: &Dashboard,
    staff: &Staff,
    saved: bool,
    error: Option<String>,
    json: Option<String>,
) -> Result<Response, WebError> {
    let versions = dash.store.program_versions(staff.partner.id).await?;
    let p = versions
        .last()
        .map(|v| v.program.clone())
        .unwrap_or_else(|| staff.partner.program.clone());
    let offset = p.utc_offset_minutes;
    let page = ProgramPage {
        c: Chrome::new(staff, "program"),
        currency: p.currency.symbol(),
        cashback: percent(p.cashback),
        min_paid: plain_money(p.min_paid_minor, p.currency),
        ttl_days: p.points_ttl_days.map(|d| d.to_string()).unwrap_or_default(),
        max_share: percent(p.max_redeem_share),
        welcome: p.welcome_bonus.value().to_string(),
        point_value: plain_money(p.point_value_minor, p.currency),
        code_days: p.code_ttl_days.to_string(),
        pending_days: p.pending_days.to_string(),
        max_points: p
            .max_points_per_visit
            .map(|x| x.value().to_string())
            .unwrap_or_default(),
        json: match json {
            Some(j) => j,
            None => {
                serde_json::to_string_pretty(&p).map_err(|e| WebError::Internal(e.to_string()))?
            }
        },
        versions: versions
            .iter()
            .rev()
            .take(20)
            .map(|v| Version {
                version: v.version,
                from: when(v.effective_from_ms, offset),
            })
            .collect(),
        saved,
        error: error.clone(),
    };
    let mut r = html(&page)?;
    if error.is_some() {
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    saved: Option<String>,
}

pub async fn page(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Query(q): Query<PageQuery>,
) -> Result<Response, WebError> {
    staff.owner()?;
    render(&dash, &staff, q.saved.is_some(), None, None).await
}

#[derive(Deserialize)]
pub struct SettingsForm {
    cashback: String,
    min_paid: String,
    ttl_days: String,
    max_share: String,
    welcome: String,
    point_value: String,
    code_days: String,
    pending_days: String,
    max_points: String,
}

/// The form's fields over the program in force; the first field that does not read names
/// itself.
fn apply(mut p: Program, f: &SettingsForm) -> Result<Program, String> {
    let days = |name: &str, v: &str| -> Result<Option<u32>, String> {
        match v.trim() {
            "" => Ok(None),
            t => t
                .parse::<u32>()
                .map(Some)
                .map_err(|_| format!("{name}: {t:?}")),
        }
    };
    let whole = |name: &str, v: &str| -> Result<Option<i64>, String> {
        match v.trim() {
            "" => Ok(None),
            t => t
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(Some)
                .ok_or_else(|| format!("{name}: {t:?}")),
        }
    };
    p.cashback = parse_percent(&f.cashback).ok_or_else(|| format!("cashback: {:?}", f.cashback))?;
    p.max_redeem_share =
        parse_percent(&f.max_share).ok_or_else(|| format!("max_share: {:?}", f.max_share))?;
    p.min_paid_minor = match f.min_paid.trim() {
        "" => 0,
        t => parse_money(t, p.currency).ok_or_else(|| format!("min_paid: {t:?}"))?,
    };
    p.point_value_minor = parse_money(&f.point_value, p.currency)
        .ok_or_else(|| format!("point_value: {:?}", f.point_value))?;
    p.points_ttl_days = days("ttl_days", &f.ttl_days)?;
    p.welcome_bonus = Points(whole("welcome", &f.welcome)?.unwrap_or(0));
    p.code_ttl_days = days("code_days", &f.code_days)?.ok_or("code_days: empty")?;
    p.pending_days = days("pending_days", &f.pending_days)?.unwrap_or(0);
    p.max_points_per_visit = whole("max_points", &f.max_points)?.map(Points);
    Ok(p)
}

pub(crate) async fn save(
    dash: &Dashboard,
    staff: &Staff,
    program: &Program,
) -> Result<Option<String>, WebError> {
    if let Err(e) = program.validate() {
        return Ok(Some(e.to_string()));
    }
    let p = &staff.partner;
    if let Err(e) = check_plan(p.id, p.plan, program, &p.program) {
        return Ok(Some(e.to_string()));
    }
    dash.store
        .set_program(staff.partner.id, program, dash.now_ms(), &staff.actor())
        .await?;
    Ok(None)
}

pub async fn settings(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Form(f): Form<SettingsForm>,
) -> Result<Response, WebError> {
    staff.owner()?;
    let current = dash
        .store
        .program_versions(staff.partner.id)
        .await?
        .pop()
        .map_or_else(|| staff.partner.program.clone(), |v| v.program);
    let program = match apply(current, &f) {
        Ok(p) => p,
        Err(e) => return render(&dash, &staff, false, Some(e), None).await,
    };
    match save(&dash, &staff, &program).await? {
        None => Ok(Redirect::to("/program?saved=1").into_response()),
        Some(e) => render(&dash, &staff, false, Some(e), None).await,
    }
}

#[derive(Deserialize)]
pub struct JsonForm {
    program: String,
}

pub async fn whole(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Form(f): Form<JsonForm>,
) -> Result<Response, WebError> {
    staff.owner()?;
    let program: Program = match serde_json::from_str(&f.program) {
        Ok(p) => p,
        Err(e) => return render(&dash, &staff, false, Some(e.to_string()), Some(f.program)).await,
    };
    match save(&dash, &staff, &program).await? {
        None => Ok(Redirect::to("/program?saved=1").into_response()),
        Some(e) => render(&dash, &staff, false, Some(e), Some(f.program)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_read_and_print_as_people_write_them() {
        for (bps, text) in [
            (500, "5"),
            (550, "5.5"),
            (1, "0.01"),
            (1225, "12.25"),
            (10_000, "100"),
        ] {
            let b = Bps::new(bps).unwrap();
            assert_eq!(percent(b), text);
            assert_eq!(parse_percent(text), Some(b));
        }
        assert_eq!(parse_percent("7,5 %"), Some(Bps::new(750).unwrap()));
        for bad in ["", "abc", "101", "5.555", "-1", ".5"] {
            assert_eq!(parse_percent(bad), None, "{bad}");
        }
        assert_eq!(plain_money(150_050, Currency::Rub), "1500.50");
        assert_eq!(plain_money(100, Currency::Rub), "1");
    }
}
