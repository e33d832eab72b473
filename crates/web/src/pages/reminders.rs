//! Reminders and offers (the Pro plan; owners and admins see it, owners change it): whether
//! they run and what the last scan found; the delivery policy (send window, caps, control
//! group, booking link) as a form and the triggers with their texts and offers as JSON —
//! saved as a new version of the program, audited; a preview of who would get what now and
//! why (nothing sent or recorded); what was sent; and the results against the control group.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use loyalty_core::audit::Capability;
use loyalty_core::engage::{Engagement, TriggerSetting};
use loyalty_core::{ClientStore, Program};
use loyalty_engage::EngageStore;
use loyalty_engage::scan::{Report, Salon, scan};
use serde::Deserialize;

use super::analytics::{UpliftRow, reminder_uplift, uplift_rows};
use super::{Chrome, html, number, when};
use crate::session::Staff;
use crate::{Dashboard, WebError};

/// How many lines a preview shows, and how many sends the page lists.
const SHOWN: usize = 100;

pub struct LineRow {
    pub client: String,
    pub trigger: String,
    pub verdict: String,
    pub why: String,
}

pub struct SendLine {
    pub when: String,
    pub client: String,
    pub trigger: String,
    pub channel: String,
    pub status: String,
}

#[derive(Template)]
#[template(path = "reminders.html")]
struct Page {
    c: Chrome,
    on: bool,
    last_scan: Option<String>,
    /// Per trigger and decision, what the last scan counted.
    counts: Vec<(String, String)>,
    from_hour: u8,
    to_hour: u8,
    per_7: u32,
    per_30: u32,
    holdout: u8,
    booking_url: String,
    triggers: String,
    error: Option<String>,
    saved: bool,
    preview: Option<Vec<LineRow>>,
    preview_note: Option<String>,
    sends: Vec<SendLine>,
    uplift: Vec<UpliftRow>,
}

/// A client as the lists show her: her name, else her masked phone, else her number.
async fn who(
    dash: &Dashboard,
    staff: &Staff,
    id: loyalty_core::ClientId,
) -> Result<String, WebError> {
    let found = dash.store.client(staff.partner.id, id).await?;
    Ok(match found {
        Some(c) => match &c.name {
            Some(n) => format!("{n} · {}", c.phone.masked()),
            None => c.phone.masked(),
        },
        None => format!("#{}", id.0),
    })
}

/// The report's counts as `trigger: send 3, control 1`.
fn counts(r: &Report) -> Vec<(String, String)> {
    r.counts
        .iter()
        .map(|(trigger, by)| {
            let parts: Vec<String> = by.iter().map(|(k, n)| format!("{k} {n}")).collect();
            (trigger.clone(), parts.join(", "))
        })
        .collect()
}

struct Extra {
    error: Option<String>,
    triggers: Option<String>,
    preview: Option<(Vec<LineRow>, String)>,
    saved: bool,
}

async fn render(dash: &Dashboard, staff: &Staff, extra: Extra) -> Result<Response, WebError> {
    let partner = staff.partner.id;
    let offset = staff.partner.program.utc_offset_minutes;
    let engage = staff.partner.program.engage.clone();
    let settings = engage.clone().unwrap_or_default();
    let last = dash.store.last_scan(partner).await?;
    let report = last
        .as_ref()
        .and_then(|(_, text)| serde_json::from_str::<Report>(text).ok());
    let mut sends = Vec::new();
    for s in dash.store.sends(partner, SHOWN as u32).await? {
        sends.push(SendLine {
            when: when(s.sent_at_ms.unwrap_or(s.decided_at_ms), offset),
            client: who(dash, staff, s.client_id).await?,
            trigger: s.trigger,
            channel: s.channel,
            status: s.status,
        });
    }
    let uplift = reminder_uplift(dash, partner, dash.now_ms()).await?;
    let failed = extra.error.is_some();
    let (preview, preview_note) = match extra.preview {
        Some((lines, note)) => (Some(lines), Some(note)),
        None => (None, None),
    };
    let mut r = html(&Page {
        c: Chrome::new(staff, "reminders"),
        on: engage.is_some(),
        last_scan: last.as_ref().map(|(at, _)| {
            let found = report
                .as_ref()
                .map(|r| {
                    format!(
                        " · {} / {}",
                        number(r.clients as i64),
                        number(r.recorded as i64)
                    )
                })
                .unwrap_or_default();
            format!("{}{found}", when(*at, offset))
        }),
        counts: report.as_ref().map(counts).unwrap_or_default(),
        from_hour: settings.send_window.from_hour,
        to_hour: settings.send_window.to_hour,
        per_7: settings.caps.per_7_days,
        per_30: settings.caps.per_30_days,
        holdout: settings.holdout_percent,
        booking_url: settings.booking_url.clone().unwrap_or_default(),
        triggers: extra.triggers.unwrap_or_else(|| {
            serde_json::to_string_pretty(&settings.triggers).unwrap_or_else(|_| "[]".into())
        }),
        error: extra.error,
        saved: extra.saved,
        preview,
        preview_note,
        sends,
        uplift: uplift_rows(&uplift),
    })?;
    if failed {
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

#[derive(Deserialize, Default)]
pub struct Shown {
    #[serde(default)]
    saved: Option<String>,
}

pub async fn page(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    axum::extract::Query(q): axum::extract::Query<Shown>,
) -> Result<Response, WebError> {
    staff.desk()?;
    staff.plan(Capability::Reminders)?;
    render(
        &dash,
        &staff,
        Extra {
            error: None,
            triggers: None,
            preview: None,
            saved: q.saved.is_some(),
        },
    )
    .await
}

#[derive(Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    on: Option<String>,
    from_hour: String,
    to_hour: String,
    per_7: String,
    per_30: String,
    holdout: String,
    #[serde(default)]
    booking_url: String,
    triggers: String,
}

/// The form read into the program's reminders; what is wrong, named by its field.
fn engagement(current: Option<Engagement>, f: &SettingsForm) -> Result<Option<Engagement>, String> {
    if f.on.is_none() {
        return Ok(None);
    }
    let mut e = current.unwrap_or_default();
    fn whole<T: std::str::FromStr>(field: &str, v: &str) -> Result<T, String> {
        v.trim()
            .parse()
            .map_err(|_| format!("{field}: {:?} is not a whole number", v.trim()))
    }
    e.send_window.from_hour = whole("from_hour", &f.from_hour)?;
    e.send_window.to_hour = whole("to_hour", &f.to_hour)?;
    e.caps.per_7_days = whole("per_7", &f.per_7)?;
    e.caps.per_30_days = whole("per_30", &f.per_30)?;
    e.holdout_percent = whole("holdout", &f.holdout)?;
    let url = f.booking_url.trim();
    e.booking_url = (!url.is_empty()).then(|| url.to_owned());
    e.triggers = serde_json::from_str::<Vec<TriggerSetting>>(&f.triggers)
        .map_err(|err| format!("triggers: {err}"))?;
    Ok(Some(e))
}

pub async fn settings(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
    Form(f): Form<SettingsForm>,
) -> Result<Response, WebError> {
    staff.owner()?;
    staff.plan(Capability::Reminders)?;
    let mut program: Program = staff.partner.program.clone();
    let again = |error: String| Extra {
        error: Some(error),
        triggers: Some(f.triggers.clone()),
        preview: None,
        saved: false,
    };
    program.engage = match engagement(program.engage.clone(), &f) {
        Ok(e) => e,
        Err(e) => return render(&dash, &staff, again(e)).await,
    };
    match super::program::save(&dash, &staff, &program).await? {
        None => Ok(Redirect::to("/reminders?saved=1").into_response()),
        Some(e) => render(&dash, &staff, again(e)).await,
    }
}

/// Who would get what now, and why: the scan without recording anything.
pub async fn preview(
    State(dash): State<Arc<Dashboard>>,
    staff: Staff,
) -> Result<Response, WebError> {
    staff.owner()?;
    staff.plan(Capability::Reminders)?;
    let p = &staff.partner;
    let Some(settings) = &p.program.engage else {
        return Err(WebError::BadInput(staff.lang.words().reminders_off.into()));
    };
    let now = dash.now_ms();
    let store = dash.store.as_ref();
    let model = store.model_for(p.id, settings, now).await?;
    let salon = Salon {
        partner: p.id,
        name: Some(&p.name),
        settings,
        birthday_points: p.program.birthday.as_ref().map(|b| b.points.value()),
        currency: p.program.currency,
        sms: settings.sms.is_some() && store.sends_sms(p.id).await?,
        model: model.as_ref(),
    };
    let report = scan(store, &salon, now, false, None, SHOWN)
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let mut lines = Vec::new();
    for l in &report.lines {
        lines.push(LineRow {
            client: who(&dash, &staff, l.client_id).await?,
            trigger: l.trigger.clone(),
            verdict: l.verdict.clone(),
            why: l.why.clone(),
        });
    }
    let note = format!(
        "{} {} · {} {}",
        staff.lang.words().clients_total,
        number(report.clients as i64),
        staff.lang.words().opted_in,
        number(report.opted_in as i64)
    );
    render(
        &dash,
        &staff,
        Extra {
            error: None,
            triggers: None,
            preview: Some((lines, note)),
            saved: false,
        },
    )
    .await
}
