//! Reminders on both backends (issue 13): the summary keeps the visits the rhythm reads; a scan
//! records each due reminder once however often, and however concurrently, it runs; nothing
//! is recorded in quiet hours, for a client without consent or a chat; "Stop offers" cancels
//! what is queued; the uplift's arms count returns within the window; a client without a chat
//! who gave an SMS opt-in is invited by SMS once, through the CRM that knows her.

mod common;

use common::{T0, TestDb, by_phone, five_percent, salon, visit};
use loyalty_core::engage::{Engagement, TriggerRule, TriggerSetting};
use loyalty_core::event::{LineKind, VisitLine};
use loyalty_core::history::HistoryStore;
use loyalty_core::{
    ChatStore, ClientId, ClientStore, CrmConnection, CrmEvent, LoyaltyEngine, PartnerId, Phone,
    Program, TelegramChat, VisitStatus,
};
use loyalty_engage::scan::{Salon, scan};
use loyalty_engage::store::{ConsentKind, EngageStore};

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
/// T0 is 03:00 in Moscow; noon there.
const NOON: i64 = T0 + 9 * HOUR;

const ANNA: &str = "+79160000001";
const OLGA: &str = "+79160000002";
const IRINA: &str = "+79160000003";
const VERA: &str = "+79160000004";

fn program() -> Program {
    let mut p = five_percent();
    p.engage = Some(Engagement {
        holdout_percent: 0,
        triggers: vec![TriggerSetting {
            rule: TriggerRule::Inactive {
                days: 20,
                min_balance: loyalty_core::Points(0),
            },
            text: None,
            offer: None,
        }],
        ..Engagement::default()
    });
    p
}

fn came(conn: &CrmConnection, record: &str, phone: &str, at: i64, category: &str) -> CrmEvent {
    let mut e = visit(
        conn,
        record,
        1,
        VisitStatus::Came,
        150_000,
        Some(by_phone(phone)),
    );
    if let CrmEvent::Visit(v) = &mut e {
        v.visit_at_ms = Some(at);
        v.lines = vec![VisitLine {
            item_id: format!("svc-{category}"),
            category_id: Some(category.to_owned()),
            kind: LineKind::Service,
            title: category.to_owned(),
            paid_minor: 150_000,
        }];
    }
    e
}

async fn client(db: &TestDb, p: PartnerId, phone: &str) -> ClientId {
    db.store
        .client_by_phone(p, &Phone::parse_international(phone).expect("phone"))
        .await
        .expect("read")
        .expect("client")
        .id
}

/// Links a Telegram chat to the client (the bot's job in production).
async fn link(db: &TestDb, p: PartnerId, c: ClientId, chat: i64, phone: &str) {
    db.store
        .save_telegram_chat(
            &TelegramChat {
                chat_id: chat,
                phone: Some(Phone::parse_international(phone).expect("phone")),
                language: "ru".into(),
                active: true,
                joined_partner: None,
                referred_by: None,
            },
            T0,
        )
        .await
        .expect("chat");
    db.store
        .set_telegram_chat(p, c, Some(chat))
        .await
        .expect("link");
}

async fn setup(db: &TestDb) -> (LoyaltyEngine, PartnerId, CrmConnection) {
    setup_with(db, program()).await
}

async fn setup_with(db: &TestDb, program: Program) -> (LoyaltyEngine, PartnerId, CrmConnection) {
    let (engine, _clock) = db.engine();
    let (partner, conn) = salon(db.store.as_ref(), program).await;
    let p = partner.id;
    for (i, (phone, days_ago)) in [(ANNA, 30), (OLGA, 30), (IRINA, 30), (VERA, 5)]
        .into_iter()
        .enumerate()
    {
        for (k, extra) in [0, 35].into_iter().enumerate() {
            engine
                .apply_event(
                    &conn,
                    &came(
                        &conn,
                        &format!("r{i}-{k}"),
                        phone,
                        T0 - (days_ago + extra) * DAY,
                        if k == 0 { "hair" } else { "nails" },
                    ),
                )
                .await
                .expect("visit");
        }
    }
    for (phone, chat) in [(ANNA, 101), (OLGA, 102), (VERA, 104)] {
        let c = client(db, p, phone).await;
        link(db, p, c, chat, phone).await;
    }
    for phone in [ANNA, VERA] {
        let c = client(db, p, phone).await;
        db.store
            .set_consent(
                p,
                c,
                ConsentKind::Marketing,
                true,
                "telegram:test",
                "Напоминания и предложения салона",
                T0,
            )
            .await
            .expect("consent");
    }
    (engine, p, conn)
}

fn settings() -> Engagement {
    program().engage.expect("engage")
}

async fn a_scan_records_each_due_reminder_once(db: &TestDb) {
    let (_engine, p, _conn) = setup(db).await;
    let anna = client(db, p, ANNA).await;
    // The summary keeps the visits with their categories, newest first.
    let rhythm = db
        .store
        .rhythms(
            p,
            loyalty_engage::store::Page {
                after: ClientId(anna.0 - 1),
                limit: 1,
            },
        )
        .await
        .expect("rhythms");
    assert_eq!(rhythm[0].1.all, vec![T0 - 30 * DAY, T0 - 65 * DAY]);
    assert_eq!(rhythm[0].1.categories["hair"], vec![T0 - 30 * DAY]);
    let summary = db
        .store
        .summary(p, anna)
        .await
        .expect("s")
        .expect("summary");
    assert_eq!(summary.visits, 2);

    let settings = settings();
    let salon = Salon {
        partner: p,
        name: Some("Salon"),
        settings: &settings,
        birthday_points: None,
        currency: loyalty_core::Currency::Rub,
        sms: false,
        model: None,
    };
    // At night in Moscow nothing is recorded.
    let night = scan(db.store.as_ref(), &salon, T0 - 2 * HOUR, true, None, 10)
        .await
        .expect("night");
    assert_eq!(night.recorded, 0);
    assert_eq!(night.counts["inactive"]["quiet_hours"], 3);

    let first = scan(db.store.as_ref(), &salon, NOON, true, None, 10)
        .await
        .expect("scan");
    assert_eq!(first.clients, 4);
    assert_eq!(first.reachable, 3);
    assert_eq!(first.opted_in, 2);
    let inactive = &first.counts["inactive"];
    assert_eq!(inactive["send"], 1, "{first:?}");
    assert_eq!(inactive["no_consent"], 1);
    assert_eq!(inactive["unreachable"], 1);
    assert_eq!(first.recorded, 1);
    // Run again, and twice at once: nothing new.
    let again = scan(db.store.as_ref(), &salon, NOON + HOUR, true, None, 10)
        .await
        .expect("again");
    assert_eq!(again.recorded, 0);
    let (a, b) = tokio::join!(
        scan(db.store.as_ref(), &salon, NOON + 2 * HOUR, true, None, 10),
        scan(db.store.as_ref(), &salon, NOON + 2 * HOUR, true, None, 10)
    );
    assert_eq!(a.expect("a").recorded + b.expect("b").recorded, 0);
    let sends = db.store.sends(p, 10).await.expect("sends");
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].client_id, anna);
    assert_eq!(sends[0].status, "queued");
    assert_eq!(sends[0].cycle, (T0 - 30 * DAY).to_string());
    assert!(
        sends[0].why.contains("no visit for 30 days"),
        "{}",
        sends[0].why
    );

    // The worker claims it once, with the chat it goes to.
    let claimed = db
        .store
        .claim_reminders(NOON, 60_000, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].chat_id, 101);
    assert_eq!(claimed[0].reminder.trigger, "inactive");
    assert_eq!(claimed[0].reminder.days, 30);
    assert!(
        db.store
            .claim_reminders(NOON, 60_000, 10)
            .await
            .expect("claim")
            .is_empty(),
        "leased"
    );
    db.store
        .reminder_sent(claimed[0].id, NOON)
        .await
        .expect("sent");
}

async fn stop_offers_cancels_what_is_queued(db: &TestDb) {
    let (_engine, p, _conn) = setup(db).await;
    let anna = client(db, p, ANNA).await;
    let settings = settings();
    let salon = Salon {
        partner: p,
        name: None,
        settings: &settings,
        birthday_points: None,
        currency: loyalty_core::Currency::Rub,
        sms: false,
        model: None,
    };
    let first = scan(db.store.as_ref(), &salon, NOON, true, None, 10)
        .await
        .expect("scan");
    assert_eq!(first.recorded, 1);
    db.store
        .set_consent(
            p,
            anna,
            ConsentKind::Marketing,
            false,
            "telegram:101",
            "Stop offers",
            NOON + 1,
        )
        .await
        .expect("stop");
    assert!(
        db.store
            .claim_reminders(NOON + 2, 60_000, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    let sends = db.store.sends(p, 10).await.expect("sends");
    assert_eq!(sends[0].status, "cancelled");
    let log = db.store.consent_log(p, anna).await.expect("log");
    assert_eq!(
        log.iter().map(|e| e.granted).collect::<Vec<_>>(),
        vec![true, false]
    );
    assert_eq!(log[0].text, "Напоминания и предложения салона");
    // And the next scan has nothing for her: this absence's reminder is spent, and a new
    // absence would meet no consent.
    let next = scan(db.store.as_ref(), &salon, NOON + DAY, true, None, 10)
        .await
        .expect("next");
    assert_eq!(next.recorded, 0);
    assert!(!next.lines.iter().any(|l| l.client_id == anna), "{next:?}");
}

async fn uplift_counts_returns_within_the_window(db: &TestDb) {
    let (engine, p, conn) = setup(db).await;
    let mut settings = settings();
    settings.holdout_percent = 50;
    // Vera too is due once she is away long enough.
    let salon = Salon {
        partner: p,
        name: None,
        settings: &settings,
        birthday_points: None,
        currency: loyalty_core::Currency::Rub,
        sms: false,
        model: None,
    };
    let later = NOON + 20 * DAY;
    let report = scan(db.store.as_ref(), &salon, later, true, None, 10)
        .await
        .expect("scan");
    assert_eq!(report.recorded, 2, "{report:?}");
    // Anna comes back ten days later.
    engine
        .apply_event(&conn, &came(&conn, "back", ANNA, later + 10 * DAY, "hair"))
        .await
        .expect("back");
    let arms = db
        .store
        .uplift_arms(Some(p), later + 31 * DAY, 30 * DAY)
        .await
        .expect("arms");
    assert_eq!(arms.len(), 1);
    let a = &arms[0];
    assert_eq!(a.trigger, "inactive");
    assert_eq!(a.treated.n + a.control.n, 2);
    assert_eq!(a.treated.returned + a.control.returned, 1);
    // Not yet a whole window after the decision: nothing to count.
    assert!(
        db.store
            .uplift_arms(Some(p), later + 29 * DAY, 30 * DAY)
            .await
            .expect("arms")
            .is_empty()
    );
}

/// Irina has no chat: with an SMS opt-in and an id in the CRM she is invited by SMS (once),
/// held to the caps and the window like anyone; withdrawn, the queued SMS is cancelled.
async fn sms_reaches_clients_without_a_chat(db: &TestDb) {
    let (_engine, p, conn) = setup(db).await;
    let irina = client(db, p, IRINA).await;
    let mut settings = settings();
    settings.sms = Some(loyalty_core::engage::SmsReach::default());
    let salon = Salon {
        partner: p,
        name: Some("Salon"),
        settings: &settings,
        birthday_points: None,
        currency: loyalty_core::Currency::Rub,
        sms: true,
        model: None,
    };
    // No SMS opt-in yet: unreachable, nothing recorded for her.
    let before = scan(db.store.as_ref(), &salon, NOON, true, None, 10)
        .await
        .expect("scan");
    assert_eq!(before.sms_opted_in, 0);
    assert_eq!(before.counts["inactive"]["unreachable"], 1, "{before:?}");
    db.store
        .set_consent(
            p,
            irina,
            ConsentKind::MarketingSms,
            true,
            "cli:desk",
            "Согласна получать SMS салона",
            NOON,
        )
        .await
        .expect("consent");
    // An SMS opt-in but no id in any CRM: still nothing to send through.
    let no_id = scan(db.store.as_ref(), &salon, NOON + HOUR, true, None, 10)
        .await
        .expect("scan");
    assert_eq!(no_id.sms_opted_in, 0, "{no_id:?}");
    sqlx::query(
        "INSERT INTO client_external_ids (partner_id, connection_id, external_id, client_id)          VALUES ($1, $2, '1121412', $3)",
    )
    .bind(p.0)
    .bind(conn.id.0)
    .bind(irina.0)
    .execute(db.store.pool())
    .await
    .expect("external id");
    let invited = scan(db.store.as_ref(), &salon, NOON + 2 * HOUR, true, None, 10)
        .await
        .expect("scan");
    assert_eq!(invited.sms_opted_in, 1);
    assert_eq!(invited.counts["invite"]["send"], 1, "{invited:?}");
    let again = scan(db.store.as_ref(), &salon, NOON + 9 * DAY, true, None, 10)
        .await
        .expect("again");
    // Invited once; reminders do not go by SMS unless the salon says so.
    assert!(!again.counts.contains_key("invite"), "{again:?}");
    assert_eq!(again.counts["inactive"]["unreachable"], 1, "{again:?}");
    // The Telegram worker never takes an SMS; the SMS worker takes it once, with the CRM id.
    assert!(
        db.store
            .claim_reminders(NOON + 2 * HOUR, 60_000, 10)
            .await
            .expect("claim")
            .iter()
            .all(|r| r.client != irina)
    );
    let sms = db
        .store
        .claim_sms(NOON + 2 * HOUR, 60_000, 10)
        .await
        .expect("claim");
    assert_eq!(sms.len(), 1);
    assert_eq!(sms[0].client, irina);
    assert_eq!(sms[0].connection, conn.id);
    assert_eq!(sms[0].external_id, "1121412");
    assert_eq!(sms[0].reminder.trigger, "invite");
    assert!(
        db.store
            .claim_sms(NOON + 2 * HOUR, 60_000, 10)
            .await
            .expect("claim")
            .is_empty(),
        "leased"
    );
    // The lease runs out; she withdraws at the desk first: cancelled, never sent.
    db.store
        .set_consent(
            p,
            irina,
            ConsentKind::MarketingSms,
            false,
            "cli:desk",
            "Отказ от SMS",
            NOON + 3 * HOUR,
        )
        .await
        .expect("withdraw");
    assert!(
        db.store
            .claim_sms(NOON + 4 * HOUR, 60_000, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    let sends = db.store.sends(p, 10).await.expect("sends");
    let row = sends.iter().find(|s| s.client_id == irina).expect("row");
    assert_eq!(
        (row.channel.as_str(), row.status.as_str()),
        ("sms", "cancelled")
    );
}

/// A YCLIENTS record names its services, not their categories: the synced price list gives
/// them, so her rhythm is per category there too.
async fn categories_come_from_the_price_list_when_records_lack_them(db: &TestDb) {
    let (engine, p, conn) = setup(db).await;
    let money =
        |minor| loyalty_core::Money::new(minor, loyalty_core::Currency::Rub).expect("money");
    db.store
        .sync_services(
            &conn,
            &[
                loyalty_core::adapter::CrmService {
                    external_id: "501".into(),
                    title: "Окрашивание".into(),
                    category_id: Some("77".into()),
                    price_min: Some(money(300_000)),
                    price_max: None,
                },
                loyalty_core::adapter::CrmService {
                    external_id: "502".into(),
                    title: "Маникюр".into(),
                    category_id: Some("88".into()),
                    price_min: Some(money(150_000)),
                    price_max: None,
                },
            ],
            T0,
        )
        .await
        .expect("services");
    let mut e = came(&conn, "yc-1", VERA, T0 - DAY, "x");
    if let CrmEvent::Visit(v) = &mut e {
        for (line, id) in v.lines.iter_mut().zip(["501"]) {
            line.item_id = id.into();
            line.category_id = None;
        }
        v.lines.push(VisitLine {
            item_id: "502".into(),
            category_id: None,
            kind: LineKind::Service,
            title: "Маникюр".into(),
            paid_minor: 150_000,
        });
    }
    engine.apply_event(&conn, &e).await.expect("visit");
    let vera = client(db, p, VERA).await;
    let rhythm = db
        .store
        .rhythms(
            p,
            loyalty_engage::store::Page {
                after: ClientId(vera.0 - 1),
                limit: 1,
            },
        )
        .await
        .expect("rhythms");
    assert_eq!(rhythm[0].0, vera);
    let r = &rhythm[0].1;
    assert_eq!(r.all[0], T0 - DAY);
    assert_eq!(r.categories["77"], vec![T0 - DAY]);
    assert_eq!(r.categories["88"], vec![T0 - DAY]);
    // A line that carries its own category keeps it (no lookup).
    assert_eq!(r.categories["hair"], vec![T0 - 5 * DAY]);
}

/// The churn models' input: per client, visits that came counted by day, in days.
async fn visit_histories_count_days_not_records(db: &TestDb) {
    let (engine, p, conn) = setup(db).await;
    // A second record on Anna's day 30 days ago: one day, one visit.
    engine
        .apply_event(
            &conn,
            &came(&conn, "same-day", ANNA, T0 - 30 * DAY + HOUR, "nails"),
        )
        .await
        .expect("visit");
    let anna = client(db, p, ANNA).await;
    let rows = db.store.visit_histories(p, T0).await.expect("histories");
    assert_eq!(rows.len(), 4);
    let (_, c) = rows.iter().find(|(id, _)| *id == anna).expect("anna");
    assert_eq!((c.frequency, c.recency, c.t), (1.0, 35.0, 65.0));
    // 3 records of 1,500.00 over 2 days.
    assert_eq!(c.monetary, Some(225_000.0));
    // The backtest's input: every visit that came, by client, oldest first, with categories.
    let visits = db.store.came_visits(p).await.expect("visits");
    assert_eq!(visits.len(), 4);
    let (_, anna_visits) = visits.iter().find(|(id, _)| *id == anna).expect("anna");
    assert_eq!(
        anna_visits
            .iter()
            .map(|(at, c)| (T0 - at, c.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (65 * DAY, "nails"),
            (30 * DAY, "hair"),
            (30 * DAY - HOUR, "nails")
        ]
    );
    // Before her first visit she is nobody's customer yet.
    assert!(
        db.store
            .visit_histories(p, T0 - 66 * DAY)
            .await
            .expect("histories")
            .is_empty()
    );
}

/// The salon's model is kept and read back whole, the next build replacing it; a scan's
/// `at_risk` asks it of each summary row — days, repeat visits and the bills — and fires only
/// where it is on, for a client both likely gone and valuable.
async fn at_risk_reads_the_model_and_the_summary(db: &TestDb) {
    use loyalty_engage::risk::{BgNbdParams, SalonModel};
    let (_engine, p, _conn) = setup(db).await;
    assert_eq!(db.store.salon_model(p).await.expect("read"), None);
    // Drop-out is likely after a visit (a = 5, b = 1): Anna, Olga and Irina (away 30 days after
    // a 35-day gap) have about 4 % left, Vera (5 days away) about 13 %. Only a client whose
    // bills were read has a 12-month value of at least 1.
    let mut model = SalonModel {
        fitted_at_ms: T0,
        winner: Some("bgnbd".into()),
        backtest: Vec::new(),
        bgnbd: Some(BgNbdParams {
            r: 2.0,
            alpha: 10.0,
            a: 5.0,
            b: 1.0,
            log_likelihood: -1.0,
        }),
        gamma_gamma: None,
        clv_percentiles: vec![1; 101],
        mean_visit_minor: 0,
        clients: 4,
        off: Some("the rules predict better here".into()),
        suggest: None,
    };
    db.store.save_salon_model(p, &model).await.expect("save");
    assert_eq!(
        db.store.salon_model(p).await.expect("read"),
        Some(model.clone())
    );
    let mut settings = settings();
    settings.triggers = vec![TriggerSetting {
        rule: TriggerRule::AtRisk {
            below_percent: 10,
            top_percent: 100,
        },
        text: None,
        offer: None,
    }];
    let settings = &settings;
    let read = |m: SalonModel| async move {
        let salon = Salon {
            partner: p,
            name: None,
            settings,
            birthday_points: None,
            currency: loyalty_core::Currency::Rub,
            sms: false,
            model: Some(&m),
        };
        scan(db.store.as_ref(), &salon, NOON, false, None, 10)
            .await
            .expect("scan")
    };
    let off = read(model.clone()).await;
    assert!(off.counts.is_empty(), "a model that is off: {off:?}");
    model.off = None;
    model.fitted_at_ms = T0 + 1;
    db.store.save_salon_model(p, &model).await.expect("again");
    let kept = db.store.salon_model(p).await.expect("read").expect("model");
    assert_eq!(kept.fitted_at_ms, T0 + 1);
    let on = read(kept).await;
    let counts = &on.counts["at_risk"];
    assert_eq!(counts.get("send"), Some(&1), "Anna: {on:?}");
    assert_eq!(counts.get("no_consent"), Some(&1), "Olga: {on:?}");
    assert_eq!(counts.get("unreachable"), Some(&1), "Irina: {on:?}");
    assert_eq!(counts.values().sum::<u64>(), 3, "not Vera: {on:?}");
    let why = &on.lines[0].why;
    assert!(why.contains("away 30 days"), "{why}");
    assert!(why.contains("% that they still come"), "{why}");
}

/// A reminder carrying an offer makes it when it is sent (once, however often the worker says
/// so); the visit that meets it before its deadline earns its points once however often it is
/// delivered; flipped to "did not come" the points go back and the offer is free again; a visit
/// below its bill does not take it; another visit inside the deadline does, and a visit after it
/// does not; the record moved to another client gives the points back.
async fn an_offer_pays_once_for_the_visit_that_meets_it(db: &TestDb) {
    use loyalty_core::ledger::EntryKind;
    use loyalty_core::offer::{Benefit, OfferTerms};
    use loyalty_core::{LedgerStore, Points};
    use loyalty_engage::store::{NewSend, Reminder};
    let (engine, p, conn) = setup(db).await;
    let anna = client(db, p, ANNA).await;
    let terms = OfferTerms {
        variant: "bonus300".into(),
        benefit: Benefit::BonusPoints {
            points: Points(300),
        },
        min_paid_minor: 100_000,
        valid_days: 14,
        service: None,
        master: Some(("77".into(), "Мария".into())),
        average_minor: 150_000,
        currency: loyalty_core::Currency::Rub,
        text: None,
    };
    let send = NewSend {
        client: anna,
        trigger: "inactive".into(),
        cycle: "x".into(),
        control: false,
        channel: loyalty_engage::Channel::Telegram,
        why: "test".into(),
        reminder: Reminder {
            trigger: "inactive".into(),
            salon: None,
            name: None,
            points: 0,
            days: 30,
            date: None,
            birthday_points: None,
            text: None,
            booking_url: None,
            offer: Some(terms.clone()),
            level: None,
            master: None,
        },
        decided_at_ms: NOON,
    };
    assert_eq!(db.store.record_sends(p, &[send]).await.expect("record"), 1);
    let claimed = db
        .store
        .claim_reminders(NOON, 60_000, 10)
        .await
        .expect("claim");
    assert!(
        db.store.client_offers(p, anna).await.expect("o").is_empty(),
        "not before it is sent"
    );
    for _ in 0..2 {
        db.store
            .reminder_sent(claimed[0].id, NOON)
            .await
            .expect("sent");
    }
    let offers = db.store.client_offers(p, anna).await.expect("offers");
    assert_eq!(offers.len(), 1, "{offers:?}");
    assert_eq!(offers[0].send_id, claimed[0].id);
    assert_eq!(offers[0].terms, terms);
    assert_eq!(offers[0].valid_until_ms, NOON + 14 * DAY);

    let at = |event: CrmEvent, ms: i64| {
        let mut e = event;
        if let CrmEvent::Visit(v) = &mut e {
            v.visit_at_ms = Some(ms);
        }
        e
    };
    let visit = |record: &str, version: i64, status: VisitStatus, paid: i64, ms: i64| {
        at(
            common::visit(&conn, record, version, status, paid, Some(by_phone(ANNA))),
            ms,
        )
    };
    let store = db.store.clone();
    let offer_entries = || {
        let store = store.clone();
        async move {
            store
                .history(p, anna, 100)
                .await
                .expect("history")
                .into_iter()
                .filter(|e| {
                    e.kind == EntryKind::Offer
                        || e.reason.as_deref().is_some_and(|r| r.starts_with("offer "))
                })
                .map(|e| (e.kind, e.amount))
                .collect::<Vec<_>>()
        }
    };
    // Before the offer was sent: it does not count.
    engine
        .apply_event(
            &conn,
            &visit("early", 1, VisitStatus::Came, 150_000, NOON - HOUR),
        )
        .await
        .expect("early");
    assert!(offer_entries().await.is_empty());
    // The visit that meets it, delivered five times: one posting.
    let came = visit("o1", 1, VisitStatus::Came, 150_000, NOON + DAY);
    for _ in 0..5 {
        engine.apply_event(&conn, &came).await.expect("came");
    }
    assert_eq!(offer_entries().await, vec![(EntryKind::Offer, Points(300))]);
    let o = &db.store.client_offers(p, anna).await.expect("o")[0];
    assert_eq!(
        o.record_key.as_deref(),
        Some(format!("{}:o1", conn.id).as_str())
    );
    assert_eq!(o.posted, Points(300));
    // Did not come after all: taken back, the offer free again.
    engine
        .apply_event(
            &conn,
            &visit("o1", 2, VisitStatus::NoShow, 150_000, NOON + DAY),
        )
        .await
        .expect("flip");
    let entries = offer_entries().await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(
        entries.contains(&(EntryKind::Reversal, Points(300))),
        "{entries:?}"
    );
    let o = &db.store.client_offers(p, anna).await.expect("o")[0];
    assert_eq!((o.record_key.as_deref(), o.posted), (None, Points::ZERO));
    // A bill below the offer's does not take it; a visit inside the deadline does; one after
    // the deadline would not (the offer is taken by then).
    engine
        .apply_event(
            &conn,
            &visit("o2", 1, VisitStatus::Came, 50_000, NOON + 2 * DAY),
        )
        .await
        .expect("small");
    assert_eq!(offer_entries().await.len(), 2);
    engine
        .apply_event(
            &conn,
            &visit("o3", 1, VisitStatus::Came, 200_000, NOON + 13 * DAY),
        )
        .await
        .expect("o3");
    assert_eq!(offer_entries().await.len(), 3);
    let o = &db.store.client_offers(p, anna).await.expect("o")[0];
    assert_eq!(
        o.record_key.as_deref(),
        Some(format!("{}:o3", conn.id).as_str())
    );
    engine
        .apply_event(
            &conn,
            &visit("late", 1, VisitStatus::Came, 200_000, NOON + 15 * DAY),
        )
        .await
        .expect("late");
    assert_eq!(offer_entries().await.len(), 3);
    // The CRM moves record o3 to Olga: it is no longer Anna's visit, and her offer's points go
    // back (Olga had no offer: nothing for her).
    let moved = at(
        common::visit(
            &conn,
            "o3",
            2,
            VisitStatus::Came,
            200_000,
            Some(by_phone(OLGA)),
        ),
        NOON + 13 * DAY,
    );
    engine.apply_event(&conn, &moved).await.expect("moved");
    let entries = offer_entries().await;
    assert_eq!(entries.len(), 4, "{entries:?}");
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.0 == EntryKind::Reversal)
            .count(),
        2
    );
    let o = &db.store.client_offers(p, anna).await.expect("o")[0];
    assert_eq!((o.record_key.as_deref(), o.posted), (None, Points::ZERO));
}

/// A scan's pages: every client once, each with their own summary, balance, chat, consent and
/// points expiring, whatever the page size; the last page says so, and a salon that fills its
/// pages exactly is not asked for an empty one.
async fn pages_read_each_client_once_with_their_own_rows(db: &TestDb) {
    // Points that expire a year after they were given: within the pages' horizon; another
    // salon's client and lots around the pages must not leak in.
    let mut ttl = program();
    ttl.points_ttl_days = Some(365);
    let (engine, p, conn) = setup_with(db, ttl.clone()).await;
    engine
        .apply_event(&conn, &came(&conn, "old", VERA, T0 - 100 * DAY, "hair"))
        .await
        .expect("visit");
    let (_, other) = salon(db.store.as_ref(), ttl.clone()).await;
    engine
        .apply_event(&other, &came(&other, "x", "+79160000009", T0 - DAY, "hair"))
        .await
        .expect("visit");
    let read = |limit: u32| async move {
        let mut all = Vec::new();
        let mut calls = 0;
        let mut page = loyalty_engage::store::Page {
            after: ClientId(0),
            limit,
        };
        loop {
            let batch = db
                .store
                .snapshots(p, NOON, NOON + 400 * DAY, page, false)
                .await
                .expect("page");
            calls += 1;
            assert!(batch.clients.len() <= limit as usize);
            all.extend(batch.clients.iter().map(|(s, _)| s.clone()));
            match batch.clients.last() {
                Some((s, _)) if !batch.last => page.after = s.client,
                _ => break,
            }
        }
        (all, calls)
    };
    let (whole, calls) = read(100).await;
    assert_eq!(calls, 1);
    assert_eq!(whole.len(), 4, "{whole:?}");
    let by = |phone: &'static str| {
        let whole = &whole;
        async move {
            let id = client(db, p, phone).await;
            whole.iter().find(|s| s.client == id).expect("read").clone()
        }
    };
    let (anna, olga, irina, vera) = (
        by(ANNA).await,
        by(OLGA).await,
        by(IRINA).await,
        by(VERA).await,
    );
    assert!(anna.telegram && anna.consent);
    assert!(olga.telegram && !olga.consent);
    assert!(!irina.telegram && !irina.consent);
    assert!(vera.telegram && vera.consent);
    assert_eq!((anna.visits, vera.visits), (2, 3));
    for s in [&anna, &olga, &irina, &vera] {
        let e = s.expiring.expect("every point expires within the horizon");
        assert_eq!(e.points, s.balance, "{s:?}");
        assert!(e.points.value() > 0);
    }
    assert!(vera.balance.value() > anna.balance.value());
    for limit in [1, 2, 3, 4, 5] {
        let (paged, calls) = read(limit).await;
        assert_eq!(paged, whole, "pages of {limit}");
        assert_eq!(
            calls,
            4_usize.div_ceil(limit as usize).max(1),
            "pages of {limit}"
        );
    }
}

both!(
    pages_read_each_client_once_with_their_own_rows,
    an_offer_pays_once_for_the_visit_that_meets_it,
    at_risk_reads_the_model_and_the_summary,
    a_scan_records_each_due_reminder_once,
    visit_histories_count_days_not_records,
    categories_come_from_the_price_list_when_records_lack_them,
    stop_offers_cancels_what_is_queued,
    sms_reaches_clients_without_a_chat,
    uplift_counts_returns_within_the_window
);
