//! The demo's next morning: eight months of generated history (the fixed generator of
//! `loyalty_engage::sim`) imported, a few of those clients on Telegram, then the reminders'
//! scan `serve` runs by itself every hour — who is due and why, what was sent, who was held out
//! as control, who had not opted in or is not on Telegram; the rhythm's reminder carries a
//! personal offer (+200 points for a visit within 14 days, her master named), and one client
//! comes back for it.

use loyalty_core::ClientStore;
use loyalty_core::event::{ClientRef, LineKind, VisitLine};
use loyalty_core::inbox::Source;
use loyalty_core::{
    CrmConnection, CrmEvent, Currency, LoyaltyEngine, PartnerId, Phone, VisitEvent, VisitStatus,
};
use loyalty_engage::scan::{Report, Salon, scan};
use loyalty_engage::sim;
use loyalty_store::SqlStore;
use serde_json::{Value, json};

use super::{Standin, wait_until};

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
        for (k, v) in c.visits.iter().enumerate() {
            let event = guest_visit(conn, i, &format!("h{i}-{k}"), v.category, v.at_ms)?;
            engine
                .apply_event_from(conn, &event, Source::Import)
                .await?;
            n += 1;
        }
    }
    Ok(n)
}

/// Generated client `i`'s visit that came: one service of `category`, 2 500 ₽, with Оксана.
fn guest_visit(
    conn: &CrmConnection,
    i: usize,
    record: &str,
    category: &str,
    at_ms: i64,
) -> anyhow::Result<CrmEvent> {
    let (phone, name) = guest(i);
    Ok(CrmEvent::Visit(VisitEvent {
        company_id: conn.company_id.clone(),
        record_id: record.to_owned(),
        version: Some(1),
        status: VisitStatus::Came,
        client: Some(ClientRef {
            external_id: Some(format!("g{i}")),
            phone: Some(Phone::parse_international(&phone)?),
            name: Some(name),
        }),
        currency: Currency::Rub,
        lines: vec![VisitLine {
            item_id: category.to_owned(),
            category_id: Some(category.to_owned()),
            kind: LineKind::Service,
            title: category.to_owned(),
            paid_minor: 250_000,
        }],
        staff_id: Some("9".into()),
        staff_name: Some("Оксана".into()),
        visit_at_ms: Some(at_ms),
        needs_refetch: false,
        loyalty_paid: Default::default(),
    }))
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
        currency: p.program.currency,
        sms: false,
        model: None,
    };
    Ok(scan(store, &salon, now_ms, false, None, usize::MAX).await?)
}

/// Which generated client a client is (by her phone).
async fn guest_index(
    store: &SqlStore,
    partner: PartnerId,
    client: loyalty_core::ClientId,
) -> anyhow::Result<Option<usize>> {
    let Some(c) = store.client(partner, client).await? else {
        return Ok(None);
    };
    Ok((0..CLIENTS).find(|&i| guest(i).0 == c.phone.as_str()))
}

/// The scan's report as the demo prints it.
pub(super) fn describe(r: &Report) -> Vec<String> {
    let share = if r.clients > 0 {
        r.reachable as f64 * 100.0 / r.clients as f64
    } else {
        0.0
    };
    let mut out = vec![format!(
        "      {} clients, {} on Telegram ({share:.0} % reachable there), {} of them opted in; {} with 3 visits or more, regularity k = {}",
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
        "      …and {unreachable} more due who are not on Telegram. With an SMS opt-in signed at the desk (`engage consent --sms-grant`) and `\"sms\"` in the program, the salon's YCLIENTS would send them an invitation to the bot (this demo's connection has no API tokens, so no SMS here)"
    ));
    out
}

/// The next morning: eight months of history, three of those clients on Telegram, then the
/// scan `serve` runs every hour, and the reminders it sent.
pub(super) async fn morning(
    gateway: &crate::Gateway,
    standin: &Standin,
    partner: PartnerId,
    connection: &Value,
    say: &impl Fn(String),
) -> anyhow::Result<Value> {
    let conn_id = loyalty_core::ConnectionId(connection["id"].as_i64().unwrap_or_default());
    let now = gateway.engine.now_ms();
    // As an import does: what came before yesterday is history and earns nothing.
    loyalty_core::import::ImportStore::set_points_since(
        gateway.store.as_ref(),
        conn_id,
        now - 86_400_000,
    )
    .await?;
    let Some(conn) =
        loyalty_core::PartnerStore::connection(gateway.store.as_ref(), conn_id).await?
    else {
        anyhow::bail!("the demo's connection is gone");
    };
    let visits = history(&gateway.engine, &conn, now).await?;
    say(format!(
        "\nThe next morning. The salon's past came from YCLIENTS: {visits} visits of {} more clients over eight months (history only, no points).",
        CLIENTS
    ));
    // Three of those due by their own rhythm are on Telegram, and say yes to reminders.
    let before_link = preview(&gateway.store, partner, now).await?;
    // Two of them outside the control group and one in it (the salon's draw), so the scan
    // shows both.
    let salt = loyalty_engage::EngageStore::engage_salt(gateway.store.as_ref(), partner).await?;
    let candidates = || {
        before_link
            .lines
            .iter()
            .filter(|l| l.trigger == "due" && l.verdict == "unreachable")
    };
    let held =
        |l: &&loyalty_engage::scan::Line| loyalty_engage::uplift::in_control(salt, l.client_id, 10);
    let due: Vec<_> = candidates()
        .filter(|l| !held(l))
        .take(2)
        .chain(candidates().filter(held).take(1))
        .collect();
    for (k, line) in due.iter().enumerate() {
        let Some(client) = gateway.store.client(partner, line.client_id).await? else {
            continue;
        };
        let name = client.name.clone().unwrap_or_default();
        let chat = 2_001 + k as i64;
        if let Ok(mut names) = standin.names.lock() {
            names.insert(chat, name.clone());
        }
        say(format!(
            "08:3{k}  {name} in Telegram: shares her phone number, taps «Да, присылайте»"
        ));
        let before = standin.sent_count();
        standin.push_message_from(
            chat,
            &name,
            json!({"contact": {"phone_number": client.phone.as_str(), "first_name": name, "user_id": chat}}),
        );
        wait_until(|| standin.sent_count() >= before + 2).await;
        standin.push_tap(chat, &name, &format!("eng:yes:{partner}"));
        wait_until(|| standin.sent_count() >= before + 3).await;
    }
    say(format!(
        "\n09:00  `serve` scans every salon's reminders every hour by itself (engage_interval_s); this is its scan of «Лотос» (`loyalty-gateway engage status --partner {partner}` shows it):"
    ));
    // What the scan will find, shown first (`engage preview`), then the scan itself.
    let at = gateway.engine.now_ms();
    for line in describe(&preview(&gateway.store, partner, at).await?) {
        say(line);
    }
    let before = standin.sent_count();
    let Some(report) = crate::engage::scan_partner(&gateway.store, partner, "demo", at).await?
    else {
        anyhow::bail!("the demo's scan did not run");
    };
    let sends: u64 = report.counts.values().filter_map(|c| c.get("send")).sum();
    say(format!(
        "      the reminders' worker sends the {sends} — its own pace, inside the salon's send window:"
    ));
    wait_until(|| standin.sent_count() as u64 >= before as u64 + sends).await;
    // One of them books through it and comes the same day: the visit's points and the offer's,
    // once (the CRM's webhook goes through the same engine path).
    let mut offer_paid = false;
    if let Some(line) = report.lines.iter().find(|l| l.verdict == "send") {
        let i = guest_index(&gateway.store, partner, line.client_id).await?;
        if let Some(i) = i {
            let (_, name) = guest(i);
            let before = standin.sent_count();
            let event = guest_visit(&conn, i, "offer-1", "hair", gateway.engine.now_ms())?;
            for _ in 0..3 {
                gateway
                    .engine
                    .apply_event_from(&conn, &event, Source::Webhook)
                    .await?;
            }
            say(format!(
                "\n11:40  {name} books with the button and comes: YCLIENTS → her record, came, 2 500 ₽ (delivered three times)\n      gateway: the visit's points, and the offer's +200 posted once, naming the reminder and the visit"
            ));
            wait_until(|| standin.sent_count() >= before + 2).await;
            offer_paid = true;
        }
    }
    let count = |v: &str| -> u64 { report.counts.values().filter_map(|c| c.get(v)).sum() };
    Ok(json!({
        "offer_paid": offer_paid,
        "sent": sends,
        "held_out": count("control"),
        "not_opted_in": count("no_consent"),
        "not_on_telegram": count("unreachable"),
        "regularity_k": report.k,
    }))
}
