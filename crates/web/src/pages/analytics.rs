//! Analytics (the Pro plan; every role): is the program worth it? The books (points issued,
//! spent, expired, outstanding, the liability in money, the redemption rate) and their months;
//! clients who linked the bot beside those who did not (an association); the reminders against
//! their control group (the causal figure) and what that return is worth. [`figures`] is the
//! one path every number on the page and in its CSVs comes from.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, NaiveDate};
use loyalty_core::audit::Capability;
use loyalty_core::{Currency, PartnerStore};
use loyalty_engage::store::EngageStore;
use loyalty_engage::uplift::{Arm, newcombe};
use loyalty_store::models::{ClientValues, VALUE_BINS_MINOR};
use loyalty_store::{Cohort, Group, Linked, Location, PointsFlow, share_bps};

use super::{Chrome, html, money, number};
use crate::session::Staff;
use crate::svg::{Series, bars};
use crate::{Dashboard, WebError};

const DAY_MS: i64 = 24 * 3600 * 1000;
/// A return counts within this many days of a reminder (as `analytics uplift`'s default).
pub const UPLIFT_WINDOW_DAYS: i64 = 30;

/// One trigger's reminders against its control group.
pub struct TriggerUplift {
    pub trigger: String,
    pub treated: Arm,
    pub control: Arm,
    /// Treated − control return rate, and its 95 % interval, in basis points.
    pub difference_bps: Option<i64>,
    pub interval_bps: Option<(i64, i64)>,
    pub conclusive: bool,
    /// Extra visits the reminders brought (difference × those sent), in hundredths.
    pub extra_visits_x100: i64,
}

/// Every figure of the page.
pub struct Figures {
    /// When the books and linked vs not were computed.
    pub as_of_ms: i64,
    pub currency: Currency,
    pub issued: i64,
    pub spent: i64,
    pub expired: i64,
    pub outstanding: i64,
    pub pending: i64,
    pub held: i64,
    /// The outstanding points in money (minor units).
    pub liability_minor: i64,
    pub redemption_bps: Option<i64>,
    /// `MM.YYYY` of the last 12 months in the salon's time, oldest first.
    pub months: Vec<String>,
    pub by_month: Vec<PointsFlow>,
    /// One cohort per month of `months`.
    pub cohorts: Vec<Cohort>,
    pub linked: Linked,
    pub uplift: Vec<TriggerUplift>,
    /// The average bill of the last year over every client, minor units.
    pub average_check_minor: Option<i64>,
    /// What the reminders' extra visits are worth (extra visits × the average bill).
    pub return_minor: i64,
    /// What the points spent over the last 12 months were worth.
    pub spent_12m_minor: i64,
    /// The clients' 12-month values and those at risk, under the salon's model (`None`
    /// until one is fitted).
    pub values: Option<ClientValues>,
    /// Each location's (connection's) visits, linked vs not: a chain sees each and the whole.
    pub locations: Vec<Location>,
}

/// The first moment of each of the last 12 months and of the next, in the salon's time.
fn month_bounds(now_ms: i64, utc_offset_minutes: i32) -> (Vec<i64>, Vec<String>) {
    let offset_ms = i64::from(utc_offset_minutes) * 60_000;
    let local = chrono::DateTime::from_timestamp_millis(now_ms + offset_ms)
        .map(|t| t.date_naive())
        .unwrap_or_default();
    let (mut y, mut m) = (local.year(), local.month());
    // Back 11 months.
    for _ in 0..11 {
        if m == 1 {
            y -= 1;
            m = 12;
        } else {
            m -= 1;
        }
    }
    let mut bounds = Vec::with_capacity(13);
    let mut labels = Vec::with_capacity(12);
    for i in 0..13 {
        let start = NaiveDate::from_ymd_opt(y, m, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp_millis() - offset_ms)
            .unwrap_or(now_ms);
        bounds.push(start);
        if i < 12 {
            labels.push(format!("{m:02}.{y}"));
        }
        if m == 12 {
            y += 1;
            m = 1;
        } else {
            m += 1;
        }
    }
    (bounds, labels)
}

fn rounded(x: f64) -> i64 {
    (x * 10_000.0).round() as i64
}

/// The salon's reminders per trigger against their control group, decided at least
/// [`UPLIFT_WINDOW_DAYS`] ago (a return counts within that window).
pub(crate) async fn reminder_uplift(
    dash: &Dashboard,
    partner: loyalty_core::PartnerId,
    now: i64,
) -> Result<Vec<TriggerUplift>, WebError> {
    let arms = dash
        .store
        .uplift_arms(Some(partner), now, UPLIFT_WINDOW_DAYS * DAY_MS)
        .await?;
    Ok(arms
        .into_iter()
        .map(|a| {
            let u = newcombe(a.treated, a.control);
            let difference_bps = u.map(|u| rounded(u.difference));
            TriggerUplift {
                extra_visits_x100: difference_bps
                    .map_or(0, |d| (d * a.treated.n as i64 + 50) / 100),
                trigger: a.trigger,
                treated: a.treated,
                control: a.control,
                difference_bps,
                interval_bps: u.map(|u| (rounded(u.low), rounded(u.high))),
                conclusive: u.is_some_and(|u| u.excludes_zero()),
            }
        })
        .collect())
}

/// The rows of the uplift table (the analytics and the reminders pages show the same).
pub(crate) fn uplift_rows(uplift: &[TriggerUplift]) -> Vec<UpliftRow> {
    uplift
        .iter()
        .map(|u| UpliftRow {
            trigger: u.trigger.clone(),
            sent: format!("{} / {}", u.treated.returned, u.treated.n),
            sent_rate: pct(share_bps(u.treated.returned as i64, u.treated.n as i64)),
            control: format!("{} / {}", u.control.returned, u.control.n),
            control_rate: pct(share_bps(u.control.returned as i64, u.control.n as i64)),
            difference: pct(u.difference_bps),
            interval: u.interval_bps.map_or_else(
                || "—".into(),
                |(l, h)| format!("{} … {}", pct(Some(l)), pct(Some(h))),
            ),
            conclusive: u.conclusive,
        })
        .collect()
}

/// Keeps the salon's heavy figures fresh off the request path: computes them again when they
/// are older than half of `Settings::analytics_max_age`, so a page view reads kept figures.
/// `serve` calls it for every salon with dashboard users; `false` when nothing was due (or
/// the salon's plan has no analytics).
pub async fn warm(dash: &Dashboard, partner: &loyalty_core::Partner) -> Result<bool, WebError> {
    if !partner.plan.allows(Capability::Analytics) {
        return Ok(false);
    }
    let now = dash.now_ms();
    let (bounds, _) = month_bounds(now, partner.program.utc_offset_minutes);
    let half =
        i64::try_from(dash.settings.analytics_max_age.as_millis() / 2).unwrap_or(i64::MAX / 2);
    let kept = dash
        .store
        .analytics_snapshot(partner.id, &bounds, now, half, false)
        .await?;
    Ok(kept.computed_at_ms == now)
}

/// The page's figures, from the ledger, the visit history and the reminders' records; the
/// heavy ones (the books, linked vs not) as kept for up to `Settings::analytics_max_age`, or
/// computed now when `refresh`.
pub async fn figures(dash: &Dashboard, staff: &Staff, refresh: bool) -> Result<Figures, WebError> {
    let partner = staff.partner.id;
    let program = &staff.partner.program;
    let now = dash.now_ms();
    let store = dash.store.as_ref();
    let (bounds, months) = month_bounds(now, program.utc_offset_minutes);
    let max_age =
        i64::try_from(dash.settings.analytics_max_age.as_millis()).unwrap_or(i64::MAX / 2);
    let snapshot = store
        .analytics_snapshot(partner, &bounds, now, max_age, refresh)
        .await?;
    let (books, linked, cohorts, values, locations, as_of_ms) = (
        snapshot.books,
        snapshot.linked,
        snapshot.cohorts,
        snapshot.values,
        snapshot.locations,
        snapshot.computed_at_ms,
    );
    let everyone = linked.everyone();
    let average_check_minor = everyone.average_check_minor();
    let uplift = reminder_uplift(dash, partner, now).await?;
    let extra_x100: i64 = uplift.iter().map(|u| u.extra_visits_x100).sum();
    let return_minor = average_check_minor.map_or(0, |c| (extra_x100 * c + 50) / 100);
    let spent_12m: i64 = books.periods.iter().map(|m| m.spent).sum();
    Ok(Figures {
        as_of_ms,
        currency: program.currency,
        issued: books.issued,
        spent: books.spent,
        expired: books.expired,
        outstanding: books.outstanding,
        pending: books.pending,
        held: books.held,
        liability_minor: books.outstanding.max(0) * program.point_value_minor,
        redemption_bps: share_bps(books.spent, books.issued),
        months,
        by_month: books.periods,
        cohorts,
        linked,
        uplift,
        average_check_minor,
        return_minor,
        spent_12m_minor: spent_12m * program.point_value_minor,
        values,
        locations,
    })
}

/// Basis points as a percentage: 1818 → `18.2 %`.
fn pct(bps: Option<i64>) -> String {
    match bps {
        None => "—".into(),
        Some(b) => {
            let tenths = (b.abs() + 5) / 10;
            let sign = if b < 0 { "-" } else { "" };
            format!("{sign}{}.{} %", tenths / 10, tenths % 10)
        }
    }
}

fn hundredths(x: Option<i64>) -> String {
    match x {
        None => "—".into(),
        Some(v) => format!("{}.{:02}", v / 100, v % 100),
    }
}

pub struct GroupRow {
    pub name: &'static str,
    pub clients: String,
    pub return_60: String,
    pub return_90: String,
    pub visits_per_year: String,
    pub average_check: String,
}

pub struct MonthRow {
    pub month: String,
    pub issued: String,
    pub spent: String,
    pub expired: String,
}

/// Months after the first shown in the cohort table.
const COHORT_MONTHS: usize = 6;

pub struct CohortRow {
    pub month: String,
    pub size: String,
    /// The share of the cohort that came in each month after its first, `—` past today.
    pub shares: Vec<String>,
}

pub struct UpliftRow {
    pub trigger: String,
    pub sent: String,
    pub sent_rate: String,
    pub control: String,
    pub control_rate: String,
    pub difference: String,
    pub interval: String,
    pub conclusive: bool,
}

#[derive(Template)]
#[template(path = "analytics.html")]
struct Page {
    c: Chrome,
    as_of: String,
    issued: String,
    spent: String,
    expired: String,
    outstanding: String,
    pending_held: String,
    liability: String,
    redemption: String,
    points_chart: String,
    months: Vec<MonthRow>,
    groups: Vec<GroupRow>,
    return_chart: String,
    cohort_heads: Vec<String>,
    cohorts: Vec<CohortRow>,
    uplift: Vec<UpliftRow>,
    return_money: String,
    spent_money: String,
    average_check: String,
    values: Option<ValuesView>,
    /// An owner may build the salon's model from here.
    owner: bool,
    /// Each location and the whole, for a salon with more than one.
    locations: Vec<LocationRow>,
    locations_chart: String,
}

pub struct LocationRow {
    pub name: String,
    pub clients: String,
    pub visits: String,
    pub paid: String,
    pub average_check: String,
    pub return_60: String,
    pub points: String,
    pub whole: bool,
}

fn location_row(name: String, g: &Group, currency: Currency, whole: bool) -> LocationRow {
    LocationRow {
        name,
        clients: number(g.year_clients),
        visits: number(g.year_visits),
        paid: money(g.year_paid_minor, currency),
        average_check: g
            .average_check_minor()
            .map_or_else(|| "—".into(), |c| money(c, currency)),
        return_60: pct(g.return_60_bps()),
        points: number(g.year_points),
        whole,
    }
}

/// A location's name: its CRM and company (`yclients 4564`), or the desk.
async fn location_names(
    dash: &Dashboard,
    staff: &Staff,
) -> Result<std::collections::HashMap<i64, String>, WebError> {
    Ok(dash
        .store
        .connections_of(staff.partner.id)
        .await?
        .into_iter()
        .map(|c| (c.id.0, format!("{} {}", c.kind, c.company_id)))
        .collect())
}

/// The clients' values as the page shows them.
pub struct ValuesView {
    pub fitted: String,
    pub clients: String,
    pub total: String,
    pub chart: String,
    pub bins: Vec<(String, String)>,
    pub at_risk_count: String,
    pub at_risk: Vec<AtRiskRow>,
}

pub struct AtRiskRow {
    pub id: i64,
    pub name: String,
    pub phone: String,
    pub p_alive: String,
    pub at_stake: String,
    pub days_away: String,
}

/// A bin's label: `1 000 – 3 000 ₽`, the last `≥ 100 000 ₽`.
fn bin_label(i: usize, currency: Currency) -> String {
    match VALUE_BINS_MINOR.get(i + 1) {
        Some(hi) => format!(
            "{} – {}",
            number(VALUE_BINS_MINOR[i] / 100),
            money(*hi, currency)
        ),
        None => format!("≥ {}", money(VALUE_BINS_MINOR[i], currency)),
    }
}

async fn values_view(
    dash: &Dashboard,
    staff: &Staff,
    v: &ClientValues,
) -> Result<ValuesView, WebError> {
    let w = staff.lang.words();
    let cur = staff.partner.program.currency;
    let labels: Vec<String> = (0..v.bins.len()).map(|i| bin_label(i, cur)).collect();
    let chart = bars(
        "values-chart",
        w.values_chart,
        &labels,
        &[Series {
            name: w.clients_total,
            colour: "#7a3cf0",
            values: v.bins.clone(),
        }],
        number,
    );
    let mut at_risk = Vec::with_capacity(v.at_risk.len());
    for r in &v.at_risk {
        let client =
            loyalty_core::ClientStore::client(dash.store.as_ref(), staff.partner.id, r.client)
                .await?;
        at_risk.push(AtRiskRow {
            id: r.client.0,
            name: client
                .as_ref()
                .and_then(|c| c.name.clone())
                .unwrap_or_default(),
            phone: client
                .as_ref()
                .map(|c| c.phone.masked())
                .unwrap_or_default(),
            p_alive: pct(Some(r.p_alive_bps)),
            at_stake: money(r.at_stake_minor, cur),
            days_away: number(r.days_away),
        });
    }
    Ok(ValuesView {
        fitted: super::when(v.fitted_at_ms, staff.partner.program.utc_offset_minutes),
        clients: number(v.clients),
        total: money(v.total_minor, cur),
        chart,
        bins: labels
            .into_iter()
            .zip(v.bins.iter().map(|n| number(*n)))
            .collect(),
        at_risk_count: number(v.at_risk_count),
        at_risk,
    })
}

fn group_row(name: &'static str, g: &Group, currency: Currency) -> GroupRow {
    GroupRow {
        name,
        clients: number(g.year_clients),
        return_60: pct(g.return_60_bps()),
        return_90: pct(g.return_90_bps()),
        visits_per_year: hundredths(g.visits_per_year_x100()),
        average_check: g
            .average_check_minor()
            .map_or_else(|| "—".into(), |c| money(c, currency)),
    }
}

pub async fn page(State(dash): State<Arc<Dashboard>>, staff: Staff) -> Result<Response, WebError> {
    staff.plan(Capability::Analytics)?;
    let f = figures(&dash, &staff, false).await?;
    let w = staff.lang.words();
    let cur = f.currency;
    let points_chart = bars(
        "points-chart",
        w.points_by_month,
        &f.months,
        &[
            Series {
                name: w.issued,
                colour: "#7a3cf0",
                values: f.by_month.iter().map(|m| m.issued).collect(),
            },
            Series {
                name: w.spent,
                colour: "#1f8a4c",
                values: f.by_month.iter().map(|m| m.spent).collect(),
            },
            Series {
                name: w.expired,
                colour: "#b42318",
                values: f.by_month.iter().map(|m| m.expired).collect(),
            },
        ],
        number,
    );
    let return_chart = bars(
        "return-chart",
        w.return_rates,
        &[w.linked_group.to_owned(), w.not_linked_group.to_owned()],
        &[
            Series {
                name: w.return_60,
                colour: "#7a3cf0",
                values: vec![
                    f.linked.linked.return_60_bps().unwrap_or(0),
                    f.linked.not_linked.return_60_bps().unwrap_or(0),
                ],
            },
            Series {
                name: w.return_90,
                colour: "#c0a2f7",
                values: vec![
                    f.linked.linked.return_90_bps().unwrap_or(0),
                    f.linked.not_linked.return_90_bps().unwrap_or(0),
                ],
            },
        ],
        |b| pct(Some(b)),
    );
    let values = match &f.values {
        Some(v) => Some(values_view(&dash, &staff, v).await?),
        None => None,
    };
    let (locations, locations_chart) = if f.locations.len() > 1 {
        let names = location_names(&dash, &staff).await?;
        let name = |id: i64| names.get(&id).cloned().unwrap_or_else(|| format!("#{id}"));
        let mut rows: Vec<LocationRow> = f
            .locations
            .iter()
            .map(|l| location_row(name(l.connection_id), &l.linked.everyone(), cur, false))
            .collect();
        rows.push(location_row(
            w.all_locations.into(),
            &f.linked.everyone(),
            cur,
            true,
        ));
        let chart = bars(
            "locations-chart",
            w.locations_chart,
            &f.locations
                .iter()
                .map(|l| name(l.connection_id))
                .collect::<Vec<_>>(),
            &[Series {
                name: w.visits_year,
                colour: "#7a3cf0",
                values: f
                    .locations
                    .iter()
                    .map(|l| l.linked.everyone().year_visits)
                    .collect(),
            }],
            number,
        );
        (rows, chart)
    } else {
        (Vec::new(), String::new())
    };
    html(&Page {
        locations,
        locations_chart,
        values,
        owner: staff.user.role.runs_salon(),
        as_of: super::when(f.as_of_ms, staff.partner.program.utc_offset_minutes),
        c: Chrome::new(&staff, "analytics"),
        issued: number(f.issued),
        spent: number(f.spent),
        expired: number(f.expired),
        outstanding: number(f.outstanding),
        pending_held: format!("{} / {}", number(f.pending), number(f.held)),
        liability: money(f.liability_minor, cur),
        redemption: pct(f.redemption_bps),
        points_chart,
        months: f
            .months
            .iter()
            .zip(&f.by_month)
            .map(|(m, p)| MonthRow {
                month: m.clone(),
                issued: number(p.issued),
                spent: number(p.spent),
                expired: number(p.expired),
            })
            .collect(),
        groups: vec![
            group_row(w.linked_group, &f.linked.linked, cur),
            group_row(w.not_linked_group, &f.linked.not_linked, cur),
        ],
        return_chart,
        cohort_heads: (0..COHORT_MONTHS).map(|k| format!("+{k}")).collect(),
        cohorts: f
            .months
            .iter()
            .zip(&f.cohorts)
            .filter(|(_, c)| c.size > 0)
            .map(|(m, c)| CohortRow {
                month: m.clone(),
                size: number(c.size),
                shares: (0..COHORT_MONTHS)
                    .map(|k| match c.returned.get(k) {
                        Some(n) => pct(share_bps(*n, c.size)),
                        None => "—".into(),
                    })
                    .collect(),
            })
            .collect(),
        uplift: uplift_rows(&f.uplift),
        return_money: money(f.return_minor.max(0), cur),
        spent_money: money(f.spent_12m_minor, cur),
        average_check: f
            .average_check_minor
            .map_or_else(|| "—".into(), |c| money(c, cur)),
    })
}

/// The figures computed now, then the page.
pub async fn refresh(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
) -> Result<Response, WebError> {
    staff.plan(Capability::Analytics)?;
    figures(&dash, &staff, true).await?;
    Ok(axum::response::Redirect::to("/analytics").into_response())
}

/// Owners: the salon's churn and value model built now from its history (as a scan builds
/// it), then the figures computed again with it.
pub async fn build_model(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
) -> Result<Response, WebError> {
    staff.owner()?;
    staff.plan(Capability::Analytics)?;
    let suggestions = staff
        .partner
        .program
        .engage
        .as_ref()
        .is_some_and(loyalty_store::models::suggests_services);
    dash.store
        .refresh_model(staff.partner.id, dash.now_ms(), suggestions)
        .await?;
    figures(&dash, &staff, true).await?;
    Ok(axum::response::Redirect::to("/analytics#values").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_start_at_local_midnight_on_the_first() {
        // 2026-12-04 12:00 UTC, Moscow (+3).
        let now = 1_796_385_600_000;
        let (bounds, labels) = month_bounds(now, 180);
        assert_eq!(labels.first().unwrap(), "01.2026");
        assert_eq!(labels.last().unwrap(), "12.2026");
        assert_eq!(bounds.len(), 13);
        // 2026-12-01 00:00 in Moscow is 2026-11-30 21:00 UTC.
        assert_eq!(bounds[11], 1_796_072_400_000);
        assert!(bounds[12] > now && bounds[11] <= now);
        assert_eq!(pct(Some(1818)), "18.2 %");
        assert_eq!(pct(Some(-250)), "-2.5 %");
        assert_eq!(hundredths(Some(150)), "1.50");
    }
}
