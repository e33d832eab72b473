//! The demo's next morning: eight months of generated history (the fixed generator of
//! `loyalty_engage::sim`) imported, a few of those clients on Telegram, then the reminders'
//! scan `serve` runs by itself every hour — who is due and why, what was sent, who was held out
//! as control, who had not opted in or is not on Telegram.

use loyalty_core::event::{ClientRef, LineKind, VisitLine};
use loyalty_core::inbox::Source;
use loyalty_core::{
    CrmConnection, CrmEvent, Currency, LoyaltyEngine, PartnerId, Phone, VisitEvent, VisitStatus,
};
use loyalty_engage::scan::{Report, Salon, scan};
use loyalty_engage::sim;
use loyalty_store::SqlStore;

/// How many generated clients, and over how long.
pub(super) const CLIENTS: usize = 80;
const DAYS: i64 = 240;
const DAY_MS: i64 = 86_400_000;

/// A generated client's phone and name.
pub(super) fn guest(i: usize) -> (String, String) {
    (format!("+7916222{i:04}"), format!("Гостья {}", i + 1))
}

/// Applies the generated past as an import: history only (before the connection's points
/// boundary, so no points), no message to anyone. Returns how many visits.
pub(super) async fn history(
    engine: &LoyaltyEngine,
    conn: &CrmConnection,
    now_ms: i64,
) -> anyhow::Result<usize> {
    let clients = sim::generate(2026, CLIENTS, now_ms - DAYS * DAY_MS, now_ms - 2 * DAY_MS);
    let mut n = 0;
    for (i, c) in clients.iter().enumerate() {
        let (phone, name) = guest(i);
        for (k, v) in c.visits.iter().enumerate() {
            let event = CrmEvent::Visit(VisitEvent {
                company_id: conn.company_id.clone(),
                record_id: format!("h{i}-{k}"),
                version: Some(1),
                status: VisitStatus::Came,
                client: Some(ClientRef {
                    external_id: Some(format!("g{i}")),
                    phone: Some(Phone::parse_international(&phone)?),
                    name: Some(name.clone()),
                }),
                currency: Currency::Rub,
                lines: vec![VisitLine {
                    item_id: v.category.to_owned(),
                    category_id: Some(v.category.to_owned()),
                    kind: LineKind::Service,
                    title: v.category.to_owned(),
                    paid_minor: 250_000,
                }],
                staff_id: None,
                staff_name: None,
                visit_at_ms: Some(v.at_ms),
                needs_refetch: false,
                loyalty_paid: Default::default(),
            });
            engine
                .apply_event_from(conn, &event, Source::Import)
                .await?;
            n += 1;
        }
    }
    Ok(n)
}

/// What the scan would do now, recording nothing (`engage preview`).
pub(super) async fn preview(
    store: &SqlStore,
    partner: PartnerId,
    now_ms: i64,
) -> anyhow::Result<Report> {
    let Some(p) = loyalty_core::PartnerStore::partner(store, partner).await? else {
        anyhow::bail!("partner {partner} is gone");
    };
    let Some(settings) = &p.program.engage else {
        anyhow::bail!("the demo program has no reminders");
    };
    let salon = Salon {
        partner,
        name: Some(&p.name),
        settings,
        birthday_points: None,
        sms: false,
    };
    Ok(scan(store, &salon, now_ms, false, None, usize::MAX).await?)
}

/// The scan's report as the demo prints it.
pub(super) fn describe(r: &Report) -> Vec<String> {
    let mut out = vec![format!(
        "      {} clients, {} on Telegram, {} of them opted in; {} with 3 visits or more, regularity k = {}",
        r.clients,
        r.reachable,
        r.opted_in,
        r.regulars,
        r.k.map_or_else(|| "—".to_owned(), |k| format!("{k:.1}"))
    )];
    for (verdict, label) in [
        ("send", "sent"),
        ("control", "held out (control group): recorded, not sent"),
        ("no_consent", "not opted in: nothing sent"),
    ] {
        for l in r.lines.iter().filter(|l| l.verdict == verdict) {
            out.push(format!(
                "      {:<11} {:<13} {label} — {}",
                l.name.as_deref().unwrap_or("—"),
                l.trigger,
                l.why
            ));
        }
    }
    let unreachable = r
        .lines
        .iter()
        .filter(|l| l.verdict == "unreachable")
        .count();
    out.push(format!(
        "      …and {unreachable} more due who are not on Telegram (an SMS invitation to the bot is the way to reach them)"
    ));
    out
}
