//! Campaigns and limits on both backends (issue 12, steps 5 and 6): double points on Thursday
//! mornings in January (the salon's time), at most 300 campaign points a day; a bonus on the
//! fifth visit; at most 1 000 points a visit. The rule in force at the visit's time is what
//! counts, however late the webhook; what a visit reserved of a limit is fixed when it first
//! earns, so an edit or a flip never lets a limit be exceeded.

mod common;

use common::{T0, TestDb, by_phone, five_percent, salon};
use loyalty_core::campaign::{Campaign, CampaignLimit, CampaignReward, NaiveDate, Period, Weekday};
use loyalty_core::event::CrmEvent;
use loyalty_core::{ClientStore, CrmConnection, LedgerStore, Phone, Points, Program, VisitStatus};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const PHONE: &str = "+79161234567";

fn program() -> Program {
    let mut p = five_percent();
    p.campaigns = vec![
        Campaign {
            name: "Утро четверга".into(),
            starts_on: NaiveDate::from_ymd_opt(2026, 1, 1),
            ends_on: NaiveDate::from_ymd_opt(2026, 1, 31),
            weekdays: vec![Weekday::Thu],
            hours: Some([9, 12]),
            items: Vec::new(),
            levels: Vec::new(),
            reward: CampaignReward::Multiplier { percent: 200 },
            stacks: false,
            limit: Some(CampaignLimit {
                points: Points(300),
                per: Period::Day,
            }),
        },
        Campaign {
            name: "Пятый визит".into(),
            starts_on: None,
            ends_on: None,
            weekdays: Vec::new(),
            hours: None,
            items: Vec::new(),
            levels: Vec::new(),
            reward: CampaignReward::NthVisit {
                n: 5,
                points: Points(500),
            },
            stacks: false,
            limit: None,
        },
    ];
    p.max_points_per_visit = Some(Points(1_000));
    p
}

/// Record `record` in `version`, at `at` (UTC ms), one line of `rub` roubles.
fn visit(
    conn: &CrmConnection,
    record: &str,
    version: i64,
    came: bool,
    rub: i64,
    at: i64,
) -> CrmEvent {
    let mut event = common::visit(
        conn,
        record,
        version,
        if came {
            VisitStatus::Came
        } else {
            VisitStatus::NoShow
        },
        rub * 100,
        Some(by_phone(PHONE)),
    );
    if let CrmEvent::Visit(v) = &mut event {
        v.visit_at_ms = Some(at);
    }
    event
}

async fn campaigns_pay_by_the_visits_time_within_their_limits(db: &TestDb) {
    let (engine, clock) = db.engine();
    let store = db.store.as_ref();
    let (partner, conn) = salon(store, program()).await;
    let p = partner.id;
    // T0 is Thursday 1 January 2026, 03:00 in Moscow.
    let thursday_10 = T0 + 7 * HOUR;
    let apply = |event: CrmEvent| {
        let engine = engine.clone();
        let conn = conn.clone();
        async move { engine.apply_event(&conn, &event).await.expect("apply") }
    };
    let balance = || async {
        let client = store
            .client_by_phone(p, &Phone::parse_international(PHONE).expect("phone"))
            .await
            .expect("read")
            .expect("client");
        store.balance(p, client.id).await.expect("balance")
    };

    // 10:00: 4 000 ₽ earns 200, doubled: 400 (200 of the day's 300 campaign points).
    apply(visit(&conn, "a", 1, true, 4_000, thursday_10)).await;
    assert_eq!(balance().await, Points(400));
    // 10:30: the campaign has 100 left today: 200 + 100.
    apply(visit(&conn, "b", 1, true, 4_000, thursday_10 + HOUR / 2)).await;
    assert_eq!(balance().await, Points(700));
    // 13:00 is past the campaign's hours: 200.
    apply(visit(&conn, "c", 1, true, 4_000, thursday_10 + 3 * HOUR)).await;
    assert_eq!(balance().await, Points(900));

    // February: the campaign is over, and a late webhook for Thursday 8 January, 11:00 still
    // earns it — the rule of the visit's time: 4 000 ₽, 400 points (the fourth visit).
    clock.advance_ms(40 * DAY);
    apply(visit(
        &conn,
        "d",
        1,
        true,
        4_000,
        thursday_10 + 7 * DAY + HOUR,
    ))
    .await;
    assert_eq!(balance().await, Points(1_300));

    // Visit a grows to 10 000 ₽: 500 of its own, its campaign points stay within the 200 it
    // reserved: +500 − 200 + 200 … 700 in all for a.
    apply(visit(&conn, "a", 2, true, 10_000, thursday_10)).await;
    assert_eq!(balance().await, Points(1_600));
    // Visit b did not come after all: its 300 go, and so does nothing it reserved: a visit of
    // the same morning delivered now finds the day's limit used up.
    apply(visit(&conn, "b", 2, false, 4_000, thursday_10 + HOUR / 2)).await;
    assert_eq!(balance().await, Points(1_300));
    apply(visit(&conn, "e", 1, true, 2_000, thursday_10 + HOUR)).await;
    assert_eq!(balance().await, Points(1_400));

    // The fifth visit that came (a, c, d, e, f): 12 000 ₽ is 600, and the bonus 500 — capped
    // at 1 000 points a visit.
    apply(visit(&conn, "f", 1, true, 12_000, T0 + 41 * DAY)).await;
    assert_eq!(balance().await, Points(2_400));
    // Re-delivered as it is, and redelivered edited down: the bonus stays hers.
    apply(visit(&conn, "f", 1, true, 12_000, T0 + 41 * DAY)).await;
    apply(visit(&conn, "f", 2, true, 2_000, T0 + 41 * DAY)).await;
    assert_eq!(balance().await, Points(1_400 + 100 + 500));

    let totals = store.account_totals(p).await.expect("totals");
    assert!(totals.is_balanced(), "{totals:?}");
}

both!(campaigns_pay_by_the_visits_time_within_their_limits);
