//! `engage preview|run|list|status|consent` and `analytics uplift`: reminders as the operator
//! and the salon see them.

use loyalty_core::{Clock, PartnerId, PartnerStore, SystemClock};
use loyalty_engage::EngageStore;
use loyalty_engage::scan::{Salon, scan};
use loyalty_engage::store::ConsentKind;
use loyalty_engage::uplift::{Arm, newcombe, pooled};
use loyalty_store::SqlStore;
use serde_json::{Value, json};

use super::{Usage, desk_client, known_partner};

const DAY_MS: i64 = 86_400_000;

async fn engaged(
    store: &SqlStore,
    partner: i64,
) -> anyhow::Result<(PartnerId, loyalty_core::Partner)> {
    let id = known_partner(store, partner).await?;
    let Some(p) = store.partner(id).await? else {
        return Err(Usage(format!("partner {id} does not exist")).into());
    };
    if p.program.engage.is_none() {
        return Err(Usage(format!(
            "partner {id} has no reminders set: add an \"engage\" section with `program set`"
        ))
        .into());
    }
    Ok((id, p))
}

/// `engage preview --partner ID [--trigger T]`: who would get what now, and why; sends and
/// records nothing.
pub async fn engage_preview(
    store: &SqlStore,
    partner: i64,
    trigger: Option<&str>,
) -> anyhow::Result<Value> {
    let (id, p) = engaged(store, partner).await?;
    let Some(settings) = &p.program.engage else {
        return Err(Usage("no reminders".into()).into());
    };
    if let Some(t) = trigger
        && !settings.triggers.iter().any(|s| s.rule.name() == t)
    {
        return Err(Usage(format!("--trigger: the program has no {t:?} trigger")).into());
    }
    let now_ms = SystemClock.now_ms();
    let model = store.model_for(id, settings, now_ms).await?;
    let salon = Salon {
        partner: id,
        name: Some(&p.name),
        settings,
        birthday_points: p.program.birthday.as_ref().map(|b| b.points.value()),
        currency: p.program.currency,
        sms: settings.sms.is_some() && store.sends_sms(id).await?,
        model: model.as_ref(),
    };
    let report = scan(store, &salon, now_ms, false, trigger, usize::MAX).await?;
    Ok(json!({ "partner": id, "preview": true, "report": report }))
}

/// `engage run --partner ID`: one scan now, recorded (what `serve` does every hour).
pub async fn engage_run(store: &SqlStore, partner: i64) -> anyhow::Result<Value> {
    let (id, _) = engaged(store, partner).await?;
    let owner = format!("cli-{}", std::process::id());
    match crate::engage::scan_partner(store, id, &owner, SystemClock.now_ms()).await? {
        Some(report) => Ok(json!({ "partner": id, "preview": false, "report": report })),
        None => Err(Usage(format!(
            "partner {id}: another instance is scanning it now; try again in a minute"
        ))
        .into()),
    }
}

/// `engage list --partner ID`: the reminders recorded, newest first.
pub async fn engage_list(store: &SqlStore, partner: i64, limit: u32) -> anyhow::Result<Value> {
    let id = known_partner(store, partner).await?;
    let rows = store.sends(id, limit).await?;
    Ok(json!({ "partner": id, "reminders": rows }))
}

/// `engage status --partner ID`: the last scheduled scan and what it found.
pub async fn engage_status(store: &SqlStore, partner: i64) -> anyhow::Result<Value> {
    let id = known_partner(store, partner).await?;
    let last = store.last_scan(id).await?;
    let report: Value = last
        .as_ref()
        .and_then(|(_, r)| serde_json::from_str(r).ok())
        .unwrap_or(Value::Null);
    let model = store.salon_model(id).await?.map(|m| {
        json!({ "on": m.on(), "off": m.off, "winner": m.winner, "fitted_at_ms": m.fitted_at_ms })
    });
    Ok(json!({
        "partner": id,
        "last_scan_ms": last.map(|(at, _)| at),
        "report": report,
        "model": model,
    }))
}

/// What `engage consent` records besides showing the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsConsent {
    /// The SMS opt-in the client signed at the desk, with its exact text.
    Grant(String),
    Withdraw,
}

/// `engage consent --partner ID --phone P [--sms-grant TEXT | --sms-withdraw]`: the client's
/// consent log, as given — after recording, when asked, an SMS opt-in given or withdrawn at the
/// desk (in the log under `cli:{actor}`).
pub async fn engage_consent(
    store: &SqlStore,
    partner: i64,
    phone: &str,
    sms: Option<SmsConsent>,
    actor: &str,
) -> anyhow::Result<Value> {
    let (id, _, client) = desk_client(store, partner, phone).await?;
    if let Some(change) = sms {
        let (granted, text) = match change {
            SmsConsent::Grant(text) if text.trim().is_empty() => {
                return Err(
                    Usage("--sms-grant needs the exact text the client agreed to".into()).into(),
                );
            }
            SmsConsent::Grant(text) => (true, text),
            SmsConsent::Withdraw => (false, "Отказ от SMS у администратора".to_owned()),
        };
        store
            .set_consent(
                id,
                client.id,
                ConsentKind::MarketingSms,
                granted,
                &format!("cli:{actor}"),
                text.trim(),
                SystemClock.now_ms(),
            )
            .await?;
    }
    let log = store.consent_log(id, client.id).await?;
    Ok(json!({ "partner": id, "client_id": client.id, "consent": log }))
}

fn arm_json(a: Arm) -> Value {
    json!({ "clients": a.n, "returned": a.returned, "rate": a.rate() })
}

/// `analytics uplift --partner ID [--window-days 30]`: per trigger, the return rate of those
/// sent a reminder and of those held out, the difference with its 95% interval; and the same
/// pooled over every salon, beside it, when this salon's interval cannot exclude zero.
pub async fn analytics_uplift(
    store: &SqlStore,
    partner: i64,
    window_days: u32,
) -> anyhow::Result<Value> {
    if window_days == 0 || window_days > 365 {
        return Err(Usage("--window-days must be 1–365".into()).into());
    }
    let id = known_partner(store, partner).await?;
    let now = SystemClock.now_ms();
    let window = i64::from(window_days) * DAY_MS;
    let mine = store.uplift_arms(Some(id), now, window).await?;
    let all = store.uplift_arms(None, now, window).await?;
    let triggers: Vec<Value> = mine
        .iter()
        .map(|a| {
            let u = newcombe(a.treated, a.control);
            let conclusive = u.is_some_and(|u| u.excludes_zero());
            let strata: Vec<(Arm, Arm)> = all
                .iter()
                .filter(|x| x.trigger == a.trigger)
                .map(|x| (x.treated, x.control))
                .collect();
            let deployment = (!conclusive).then(|| pooled(&strata)).flatten();
            json!({
                "trigger": a.trigger,
                "treated": arm_json(a.treated),
                "control": arm_json(a.control),
                "difference": u.map(|u| u.difference),
                "interval_95": u.map(|u| [u.low, u.high]),
                "conclusive": conclusive,
                "note": if u.is_none() {
                    "no one in one of the arms yet"
                } else if conclusive {
                    "the interval excludes zero"
                } else {
                    "too few clients here for the interval to exclude zero; the deployment-wide figure is beside it"
                },
                "deployment": deployment.map(|d| json!({
                    "salons": strata.len(),
                    "difference": d.difference,
                    "interval_95": [d.low, d.high],
                })),
            })
        })
        .collect();
    Ok(json!({ "partner": id, "window_days": window_days, "triggers": triggers }))
}

fn pct(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "—".to_owned(), |x| format!("{:.1} %", x * 100.0))
}

pub fn engage_text(v: &Value) -> String {
    let mut out = String::new();
    if let Some(report) = v.get("report").filter(|r| !r.is_null()) {
        let preview = v["preview"].as_bool() == Some(true);
        let share = match (report["reachable"].as_u64(), report["clients"].as_u64()) {
            (Some(r), Some(c)) if c > 0 => format!(" ({:.0} %)", r as f64 * 100.0 / c as f64),
            _ => String::new(),
        };
        let sms = match report["sms_opted_in"].as_u64() {
            Some(n) if n > 0 => format!(", {n} more by SMS"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "partner {} — {}: {} clients, {} reachable in Telegram{share}, {} opted in{sms}{}\n",
            v["partner"],
            if preview {
                "preview (nothing sent)"
            } else {
                "scan"
            },
            report["clients"],
            report["reachable"],
            report["opted_in"],
            if preview {
                String::new()
            } else {
                format!(", {} recorded", report["recorded"])
            }
        ));
        if let Some(k) = report["k"].as_f64() {
            out.push_str(&format!(
                "rhythm: {} clients with 3+ visits, regularity k = {k:.1}\n",
                report["regulars"]
            ));
        }
        if let Some(f) = report["fallback"].as_str() {
            out.push_str(&format!("fixed rules instead of rhythms: {f}\n"));
        }
        let model = &v["model"];
        if model.is_object() {
            match model["off"].as_str() {
                None => out.push_str("at_risk: on (the salon's model beat the rules)\n"),
                Some(why) => out.push_str(&format!("at_risk: off — {why}\n")),
            }
        }
        for line in report["lines"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  client {:<6} {:<20} {:<13} {:<12} {}\n",
                line["client_id"],
                line["name"].as_str().unwrap_or("—"),
                line["trigger"].as_str().unwrap_or_default(),
                line["verdict"].as_str().unwrap_or_default(),
                line["why"].as_str().unwrap_or_default()
            ));
        }
        return out;
    }
    if let Some(rows) = v["reminders"].as_array() {
        for r in rows {
            out.push_str(&format!(
                "#{:<6} client {:<6} {:<13} {:<8} {:<9} {}{}\n",
                r["id"],
                r["client_id"],
                r["trigger"].as_str().unwrap_or_default(),
                r["channel"].as_str().unwrap_or_default(),
                r["status"].as_str().unwrap_or_default(),
                r["why"].as_str().unwrap_or_default(),
                if r["snoozed"].as_bool() == Some(true) {
                    " (not now)"
                } else {
                    ""
                }
            ));
        }
        if rows.is_empty() {
            out.push_str("no reminders recorded yet\n");
        }
        return out;
    }
    if let Some(log) = v["consent"].as_array() {
        for e in log {
            out.push_str(&format!(
                "{} {} {} via {}: {}\n",
                e["at_ms"],
                e["kind"].as_str().unwrap_or_default(),
                if e["granted"].as_bool() == Some(true) {
                    "granted"
                } else {
                    "declined/withdrawn"
                },
                e["channel"].as_str().unwrap_or_default(),
                e["text"].as_str().unwrap_or_default()
            ));
        }
        if log.is_empty() {
            out.push_str("no consent recorded\n");
        }
        return out;
    }
    if v.get("last_scan_ms").is_some() {
        return format!("partner {}: not scanned yet\n", v["partner"]);
    }
    out
}

pub fn uplift_text(v: &Value) -> String {
    let mut out = format!(
        "partner {}: return within {} days of the reminder, sent vs held out\n",
        v["partner"], v["window_days"]
    );
    for t in v["triggers"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<13} sent {} ({} back, {}), held out {} ({} back, {})",
            t["trigger"].as_str().unwrap_or_default(),
            t["treated"]["clients"],
            t["treated"]["returned"],
            pct(&t["treated"]["rate"]),
            t["control"]["clients"],
            t["control"]["returned"],
            pct(&t["control"]["rate"]),
        ));
        if let Some([lo, hi]) = t["interval_95"]
            .as_array()
            .map(|a| [a[0].clone(), a[1].clone()])
        {
            out.push_str(&format!(
                "; uplift {} [{} … {}]",
                pct(&t["difference"]),
                pct(&lo),
                pct(&hi)
            ));
        }
        out.push('\n');
        out.push_str(&format!("  {}\n", t["note"].as_str().unwrap_or_default()));
        if let Some(d) = t.get("deployment").filter(|d| !d.is_null()) {
            out.push_str(&format!(
                "  all salons ({}): {} [{} … {}]\n",
                d["salons"],
                pct(&d["difference"]),
                pct(&d["interval_95"][0]),
                pct(&d["interval_95"][1])
            ));
        }
    }
    if v["triggers"].as_array().is_none_or(|a| a.is_empty()) {
        out.push_str("no reminder is old enough to judge yet\n");
    }
    out
}
