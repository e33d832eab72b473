//! `analytics fit`: BG/NBD and Gamma-Gamma on a salon's history, or on a `lifetimes` summary
//! file, so analysts can check the models on their own data.

use std::path::Path;

use loyalty_core::{ClientId, ClientStore};
use loyalty_engage::EngageStore;
use loyalty_engage::model::{Customer, bgnbd, gamma_gamma, summary};
use loyalty_engage::risk::Risk;
use loyalty_store::SqlStore;
use serde_json::{Value, json};

use super::{Usage, known_partner};

/// The fits of `customers`, with each one's P(alive) and expected visits over `horizon` when
/// asked. A model that cannot be fitted is reported with its reason in place of its
/// parameters; BG/NBD failing is the command failing.
fn fit_json(customers: &[Customer], values: bool, horizon: Option<f64>) -> anyhow::Result<Value> {
    let m = bgnbd::fit(customers).map_err(|e| Usage(format!("BG/NBD: {e}")))?;
    let repeaters = customers.iter().filter(|c| c.frequency > 0.0).count();
    let mut out = json!({
        "bgnbd": {
            "r": m.r, "alpha": m.alpha, "a": m.a, "b": m.b,
            "log_likelihood": m.log_likelihood,
        },
        "diagnostics": {
            "customers": customers.len(),
            "repeat_customers": repeaters,
            "mean_frequency": customers.iter().map(|c| c.frequency).sum::<f64>() / customers.len() as f64,
            "evaluations": m.evaluations,
        },
    });
    let gg = values.then(|| gamma_gamma::fit(customers));
    match &gg {
        Some(Ok(g)) => {
            out["gamma_gamma"] = json!({
                "p": g.p, "q": g.q, "v": g.v, "log_likelihood": g.log_likelihood,
                "customers": g.customers,
            })
        }
        Some(Err(e)) => out["gamma_gamma"] = json!({ "error": e.to_string() }),
        None => {}
    }
    if let Some(t) = horizon {
        let mut rows = Vec::with_capacity(customers.len());
        for c in customers {
            let expected = m
                .expected_visits(c, t)
                .map_err(|e| Usage(format!("expected visits over {t}: {e}")))?;
            let mut row = json!({ "p_alive": m.p_alive(c), "expected_visits": expected });
            if let Some(Ok(g)) = &gg {
                row["expected_value"] = json!(g.expected_value(c));
            }
            rows.push(row);
        }
        out["horizon"] = json!(t);
        out["customers"] = Value::Array(rows);
    }
    Ok(out)
}

/// `analytics fit --summary FILE [--horizon T]`.
pub fn analytics_fit_file(path: &Path, horizon: Option<f64>) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Usage(format!("--summary {}: {e}", path.display())))?;
    let (customers, values) =
        summary::parse(&text).map_err(|e| Usage(format!("--summary {}: {e}", path.display())))?;
    check_horizon(horizon)?;
    fit_json(&customers, values, horizon)
}

/// `analytics fit --partner ID [--horizon DAYS]`: the salon's clients, time in days — visits
/// that came, a day counting once; values in minor units, each client's average over her
/// visits.
pub async fn analytics_fit_partner(
    store: &SqlStore,
    partner: i64,
    horizon: Option<f64>,
    now_ms: i64,
) -> anyhow::Result<Value> {
    let id = known_partner(store, partner).await?;
    check_horizon(horizon)?;
    let rows = store.visit_histories(id, now_ms).await?;
    let customers: Vec<Customer> = rows.iter().map(|(_, c)| *c).collect();
    if customers.is_empty() {
        return Err(Usage(format!("partner {id} has no visits that came yet")).into());
    }
    let mut out = fit_json(&customers, true, horizon)?;
    out["partner"] = json!(id);
    out["time_unit"] = json!("day");
    if let Some(list) = out["customers"].as_array_mut() {
        for (row, (client, _)) in list.iter_mut().zip(&rows) {
            row["client_id"] = json!(client);
        }
    }
    Ok(out)
}

/// `analytics backtest --partner ID [--horizon-days N]`: the fixed 30-day rule, a per-service
/// interval, the personal cadence and BG/NBD, each fitted or measured on all but the last N
/// days of the salon's history and judged on who came back in them.
pub async fn analytics_backtest(
    store: &SqlStore,
    partner: i64,
    horizon_days: u32,
    now_ms: i64,
) -> anyhow::Result<Value> {
    let id = known_partner(store, partner).await?;
    if horizon_days == 0 || horizon_days > 365 {
        return Err(Usage(format!("--horizon-days must be 1–365 (got {horizon_days})")).into());
    }
    let visits: Vec<_> = store
        .came_visits(id)
        .await?
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let cutoff = now_ms - i64::from(horizon_days) * 86_400_000;
    let Some(c) = loyalty_engage::backtest::compare(&visits, cutoff, horizon_days, 30) else {
        return Err(Usage(format!(
            "partner {id}: no client came before the last {horizon_days} days, or none stayed away in them: nothing to judge"
        ))
        .into());
    };
    let flagged = |f: &loyalty_engage::backtest::Flagged| json!({ "flagged": f.flagged, "recall": f.recall, "precision": f.precision });
    Ok(json!({
        "partner": id,
        "clients": c.clients,
        "stayed_away": c.stayed_away,
        "horizon_days": c.horizon_days,
        "methods": {
            "fixed_30_days": flagged(&c.fixed),
            "per_service_interval": flagged(&c.per_service_interval),
            "personal_cadence": flagged(&c.personal_cadence),
            "bgnbd": match &c.bgnbd {
                Ok(f) => flagged(f),
                Err(e) => json!({ "error": e }),
            },
        },
        "calibration": c.calibration,
        "winner": c.winner,
    }))
}

/// `analytics model --partner ID [--refresh] [--top N]`: the model the `at_risk` trigger uses,
/// whether it is used here and why, and the `top` clients by what they would bring in 12
/// months were they still coming (with their expected 12-month value and P(alive)).
pub async fn analytics_model(
    store: &SqlStore,
    partner: i64,
    refresh: bool,
    top: usize,
    now_ms: i64,
) -> anyhow::Result<Value> {
    let id = known_partner(store, partner).await?;
    let (model, built) = match store.salon_model(id).await? {
        Some(m) if !refresh => (m, false),
        _ => {
            let suggestions = match loyalty_core::PartnerStore::partner(store, id).await? {
                Some(p) => p
                    .program
                    .engage
                    .as_ref()
                    .is_some_and(loyalty_store::models::suggests_services),
                None => false,
            };
            let built = store.refresh_model(id, now_ms, suggestions).await?;
            (built, true)
        }
    };
    let mut out = json!({
        "partner": id,
        "built_now": built,
        "fitted_at_ms": model.fitted_at_ms,
        "rebuilt_after_ms": model.fitted_at_ms + crate::engage::MODEL_FRESH_MS,
        "on": model.on(),
        "off": model.off,
        "winner": model.winner,
        "backtest": model.backtest,
        "bgnbd": model.bgnbd,
        "gamma_gamma": model.gamma_gamma,
        "clients": model.clients,
        "mean_visit_minor": model.mean_visit_minor,
    });
    if let [Some(p50), Some(p80), Some(p90)] =
        [50, 80, 90].map(|p| model.clv_percentiles.get(p).copied())
    {
        out["clv_minor"] = json!({ "p50": p50, "p80": p80, "p90": p90 });
    }
    if model.on() && top > 0 {
        let mut rows: Vec<(ClientId, Risk)> = store
            .visit_histories(id, now_ms)
            .await?
            .into_iter()
            .filter_map(|(c, customer)| Some((c, model.risk(&customer)?)))
            .collect();
        rows.sort_by_key(|(c, r)| (std::cmp::Reverse(r.at_stake_minor), *c));
        let mut listed = Vec::new();
        for (c, r) in rows.into_iter().take(top) {
            let card = store.client(id, c).await?;
            listed.push(json!({
                "client_id": c,
                "name": card.as_ref().and_then(|k| k.name.clone()),
                "phone": card.as_ref().map(|k| k.phone.to_string()),
                "p_alive": r.p_alive,
                "expected_visits_12m": r.expected_visits,
                "clv_12m_minor": r.clv_minor,
                "at_stake_12m_minor": r.at_stake_minor,
            }));
        }
        out["top"] = Value::Array(listed);
    }
    Ok(out)
}

/// `analytics offers --partner ID`: each trigger's offer variants — sent, their share of the
/// last 30 days' traffic, clients back within 30 days of offers whose 30 days are over, the
/// return rate's posterior, and the benefits posted.
pub async fn analytics_offers(
    store: &SqlStore,
    partner: i64,
    now_ms: i64,
) -> anyhow::Result<Value> {
    use loyalty_engage::offers::posterior;
    use loyalty_engage::scan::OFFER_WINDOW_DAYS;
    let id = known_partner(store, partner).await?;
    let window = OFFER_WINDOW_DAYS * 86_400_000;
    let totals = store.offer_totals(id, now_ms - window).await?;
    let arms = store.offer_arms(id, now_ms, window).await?;
    let mut rows = Vec::new();
    for t in &totals {
        let recent: u64 = totals
            .iter()
            .filter(|o| o.trigger == t.trigger)
            .map(|o| o.sent_recently)
            .sum();
        let own: Vec<_> = arms
            .iter()
            .filter(|a| a.trigger == t.trigger)
            .cloned()
            .collect();
        let arm = own
            .iter()
            .find(|a| a.variant == t.variant)
            .cloned()
            .unwrap_or(loyalty_engage::offers::VariantArm {
                trigger: t.trigger.clone(),
                variant: t.variant.clone(),
                sends: 0,
                returns: 0,
            });
        let (mean, lo, hi, best) = posterior(&arm, &own, 4_000);
        rows.push(json!({
            "trigger": t.trigger,
            "variant": t.variant,
            "sent": t.sent,
            "traffic_share_30d": if recent == 0 { Value::Null } else { json!(t.sent_recently as f64 / recent as f64) },
            "judged": arm.sends,
            "returned": arm.returns,
            "return_rate": { "mean": mean, "low": lo, "high": hi },
            "p_best": best,
            "benefits_posted": t.posted,
            "points_posted": t.posted_points,
        }));
    }
    Ok(json!({ "partner": id, "window_days": OFFER_WINDOW_DAYS, "variants": rows }))
}

pub fn offers_text(v: &Value) -> String {
    let mut out = format!(
        "partner {}: offers by trigger and variant (returns within {} days)\n",
        v["partner"], v["window_days"]
    );
    let rows = v["variants"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        out.push_str("  no offer sent yet\n");
    }
    for r in rows {
        let share = r["traffic_share_30d"]
            .as_f64()
            .map_or_else(|| "—".to_owned(), |s| format!("{:.0} %", s * 100.0));
        out.push_str(&format!(
            "  {:<13} {:<12} sent {:>5} (last 30 days {share}), back {}/{}, rate {:.3} [{:.3}–{:.3}], P(best) {:.2}, posted {} ({} points)\n",
            r["trigger"].as_str().unwrap_or_default(),
            r["variant"].as_str().unwrap_or_default(),
            r["sent"],
            r["returned"],
            r["judged"],
            r["return_rate"]["mean"].as_f64().unwrap_or_default(),
            r["return_rate"]["low"].as_f64().unwrap_or_default(),
            r["return_rate"]["high"].as_f64().unwrap_or_default(),
            r["p_best"].as_f64().unwrap_or_default(),
            r["benefits_posted"],
            r["points_posted"],
        ));
    }
    out
}

pub fn model_text(v: &Value) -> String {
    let mut out = format!("partner {}: ", v["partner"]);
    match v["off"].as_str() {
        None => out.push_str("the at_risk trigger is ON (BG/NBD beat the rules here)\n"),
        Some(why) => out.push_str(&format!("the at_risk trigger is off: {why}\n")),
    }
    for j in v["backtest"].as_array().into_iter().flatten() {
        let p = j["precision"]
            .as_f64()
            .map_or_else(|| "not fitted".to_owned(), |p| format!("{p:.3}"));
        out.push_str(&format!(
            "  {:<22} precision {p}\n",
            j["method"].as_str().unwrap_or_default()
        ));
    }
    let b = &v["bgnbd"];
    if b.is_object() {
        out.push_str(&format!(
            "BG/NBD (days): r = {:.3}, alpha = {:.3}, a = {:.3}, b = {:.3}\n",
            b["r"].as_f64().unwrap_or_default(),
            b["alpha"].as_f64().unwrap_or_default(),
            b["a"].as_f64().unwrap_or_default(),
            b["b"].as_f64().unwrap_or_default()
        ));
    }
    let c = &v["clv_minor"];
    if c.is_object() {
        let money = |m: &Value| {
            let m = m.as_i64().unwrap_or_default();
            format!("{}.{:02}", m / 100, m % 100)
        };
        out.push_str(&format!(
            "12-month value were they still coming: median {}, top 20 % from {}, top 10 % from {}\n",
            money(&c["p50"]),
            money(&c["p80"]),
            money(&c["p90"])
        ));
    }
    if let Some(rows) = v["top"].as_array() {
        out.push_str(
            "most valuable clients: id, phone, 12-month value were they still coming, P(alive)\n",
        );
        for r in rows {
            let m = r["at_stake_12m_minor"].as_i64().unwrap_or_default();
            out.push_str(&format!(
                "  {:<8} {:<14} {:>12} {:.3}\n",
                r["client_id"],
                r["phone"].as_str().unwrap_or_default(),
                format!("{}.{:02}", m / 100, m % 100),
                r["p_alive"].as_f64().unwrap_or_default()
            ));
        }
    }
    out
}

pub fn backtest_text(v: &Value) -> String {
    let mut out = format!(
        "partner {}: {} clients, {} of them did not come in the last {} days
",
        v["partner"], v["clients"], v["stayed_away"], v["horizon_days"]
    );
    for name in [
        "fixed_30_days",
        "per_service_interval",
        "personal_cadence",
        "bgnbd",
    ] {
        let m = &v["methods"][name];
        match m["error"].as_str() {
            Some(e) => out.push_str(&format!("  {name:<22} not fitted: {e}\n")),
            None => out.push_str(&format!(
                "  {name:<22} precision {:.3} at recall {:.3} ({} flagged)\n",
                m["precision"].as_f64().unwrap_or_default(),
                m["recall"].as_f64().unwrap_or_default(),
                m["flagged"]
            )),
        }
    }
    out.push_str(&format!(
        "winner: {}\n",
        v["winner"].as_str().unwrap_or_default()
    ));
    out
}

fn check_horizon(horizon: Option<f64>) -> anyhow::Result<()> {
    match horizon {
        Some(t) if t.is_nan() || t <= 0.0 || t.is_infinite() => {
            Err(Usage(format!("--horizon must be a positive number (got {t})")).into())
        }
        _ => Ok(()),
    }
}

pub fn fit_text(v: &Value) -> String {
    let b = &v["bgnbd"];
    let d = &v["diagnostics"];
    let mut out = format!(
        "BG/NBD: r = {:.3}, alpha = {:.3}, a = {:.3}, b = {:.3}; log-likelihood {:.1}\n  {} customers, {} came back, mean frequency {:.2}; {} evaluations\n",
        b["r"].as_f64().unwrap_or_default(),
        b["alpha"].as_f64().unwrap_or_default(),
        b["a"].as_f64().unwrap_or_default(),
        b["b"].as_f64().unwrap_or_default(),
        b["log_likelihood"].as_f64().unwrap_or_default(),
        d["customers"],
        d["repeat_customers"],
        d["mean_frequency"].as_f64().unwrap_or_default(),
        d["evaluations"],
    );
    let g = &v["gamma_gamma"];
    if let Some(e) = g["error"].as_str() {
        out.push_str(&format!("Gamma-Gamma: not fitted: {e}\n"));
    } else if g.is_object() {
        out.push_str(&format!(
            "Gamma-Gamma: p = {:.2}, q = {:.2}, v = {:.2}; log-likelihood {:.1} over {} customers\n",
            g["p"].as_f64().unwrap_or_default(),
            g["q"].as_f64().unwrap_or_default(),
            g["v"].as_f64().unwrap_or_default(),
            g["log_likelihood"].as_f64().unwrap_or_default(),
            g["customers"],
        ));
    }
    if let Some(rows) = v["customers"].as_array() {
        out.push_str(&format!(
            "per customer over {}: p_alive, expected visits\n",
            v["horizon"]
        ));
        for (i, r) in rows.iter().enumerate().take(20) {
            out.push_str(&format!(
                "  {:<8} {:.3}  {:.3}\n",
                r.get("client_id")
                    .map_or_else(|| (i + 1).to_string(), |c| c.to_string()),
                r["p_alive"].as_f64().unwrap_or_default(),
                r["expected_visits"].as_f64().unwrap_or_default()
            ));
        }
        if rows.len() > 20 {
            out.push_str(&format!("  … {} more with --json\n", rows.len() - 20));
        }
    }
    out
}
