//! The dashboard's analytics against literals worked out by hand from this test's own salon:
//! visits entered at the desk on chosen days (an engine on a manual clock over the same
//! database), one client linked to the bot, a code used, reminders sent and held out. Every
//! figure on the page and in its CSVs is checked; a Basic salon is refused the page with the
//! plan named.

mod common;

use std::sync::Arc;

use common::binary::Env;
use common::web::{PASSWORD, Web, add_user};
use common::{PgSchema, add_lotos, serve_on};
use loyalty_core::{
    ClientId, ClientStore, Clock, LedgerStore, LoyaltyEngine, ManualClock, PartnerId, PartnerStore,
    Store, SystemClock,
};
use loyalty_engage::EngageStore;
use loyalty_gateway::cli::{self, VisitAdd};
use loyalty_gateway::config::Overrides;
use reqwest::StatusCode;

const DAY: i64 = 24 * 3600 * 1000;

/// The text of the element with this id (its first text node).
fn figure(body: &str, id: &str) -> String {
    let at = body
        .find(&format!("id=\"{id}\">"))
        .unwrap_or_else(|| panic!("#{id} in the page"));
    let rest = &body[at + id.len() + 6..];
    rest[..rest.find('<').unwrap()].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_figure_matches_the_salons_own_books_and_history() {
    let schema = PgSchema::new().await;
    let (gateway, _) = serve_on(&schema, Overrides::default()).await;
    let env = Env {
        vars: vec![("DATABASE_URL", schema.url.clone())],
    };
    let partner = add_lotos(&gateway.store).await;
    add_user(&env, partner, "eyes@lotos.ru", "viewer", PASSWORD);
    let now = SystemClock.now_ms();
    let clock = Arc::new(ManualClock::new(now - 400 * DAY));
    let store: Arc<dyn Store> = gateway.store.clone();
    let past = LoyaltyEngine::with_clock(store, clock.clone());
    // Client → visits (days ago, roubles); 5 % cashback, a point is a rouble.
    let salon: [(&str, &[(i64, i64)]); 8] = [
        ("+79161110001", &[(200, 4000), (150, 2000), (20, 3000)]), // A, linked
        ("+79161110002", &[(200, 1000), (100, 1000)]),             // B
        ("+79161110003", &[(45, 1000)]),                           // C
        ("+79161110004", &[(45, 1000)]),                           // D
        ("+79161110005", &[(45, 1000)]),                           // G
        ("+79161110006", &[(45, 1000)]),                           // E
        ("+79161110007", &[(300, 1000)]),                          // H
        ("+79161110008", &[(300, 1000)]),                          // F
    ];
    let mut visits: Vec<(i64, &str, i64)> = salon
        .iter()
        .flat_map(|(phone, vs)| vs.iter().map(move |(d, rub)| (*d, *phone, *rub)))
        .collect();
    visits.sort_by_key(|v| -v.0);
    let mut ids = std::collections::HashMap::new();
    for (days, phone, rub) in visits {
        clock.advance_ms(now - days * DAY - clock.now_ms());
        let v = cli::visit_add(
            &past,
            &VisitAdd {
                partner,
                phone: phone.into(),
                name: None,
                paid_minor: rub * 100,
                service: None,
                master: None,
                key: None,
                force: false,
            },
        )
        .await
        .unwrap();
        ids.insert(phone, v["client_id"].as_i64().unwrap());
    }
    let id = |p: &str| ids[p];
    gateway
        .store
        .set_telegram_chat(PartnerId(partner), ClientId(id("+79161110001")), Some(777))
        .await
        .unwrap();
    // A spends 100 points today: a 500-rouble certificate used on a 2,000-rouble bill.
    let code = common::web::code_of(&gateway, partner, "+79161110001").await;
    let code = loyalty_core::code::Code::parse(&code).unwrap();
    gateway
        .engine
        .use_code_at_desk(&code, Some(200_000))
        .await
        .unwrap();
    // Reminders decided 60 days ago: sent to C, D, G, H; E and F held out as control.
    for (phone, status) in [
        ("+79161110003", "sent"),
        ("+79161110004", "sent"),
        ("+79161110005", "sent"),
        ("+79161110007", "sent"),
        ("+79161110006", "control"),
        ("+79161110008", "control"),
    ] {
        sqlx::query(
            "INSERT INTO engage_sends (partner_id, client_id, trigger_name, cycle, status, why, \
             payload, decided_at_ms, run_at_ms) VALUES ($1, $2, 'due', 'c1', $3, '', '{}', $4, $4)",
        )
        .bind(partner)
        .bind(id(phone))
        .bind(status)
        .bind(now - 60 * DAY)
        .execute(gateway.store.pool())
        .await
        .unwrap();
    }

    let mut web = Web::new(gateway.addr);
    web.sign_in("eyes@lotos.ru", PASSWORD).await;
    let page = web.get("/analytics").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let b = &page.body;
    // The books: A 450, B 100, six clients 50 each → 850 issued; 100 spent.
    assert_eq!(figure(b, "issued"), "850");
    assert_eq!(figure(b, "spent"), "100");
    assert_eq!(figure(b, "expired"), "0");
    assert_eq!(figure(b, "outstanding"), "750");
    assert_eq!(figure(b, "pending-held"), "0 / 0");
    assert_eq!(figure(b, "liability"), "750 ₽");
    assert_eq!(figure(b, "redemption"), "11.8 %"); // 100 / 850
    // Linked (A): of her visits at least 60 (90) days old, −200 came back at −150 (50 days),
    // −150 not until −20 (130): 1 of 2. A year: 3 visits, 9,000 roubles.
    // Not linked: B −200 → −100 is 100 days; B −100, H, F never: 0 of 4 (both windows).
    // A year: B 2, C D G E 1 each, H F 1 each = 8 visits of 7 clients, 8,000 roubles.
    let row = |name: &str| {
        let at = b.find(&format!("<tr><td>{name}</td>")).unwrap();
        let end = at + b[at..].find("</tr>").unwrap();
        b[at..end]
            .split("<td class=\"num\">")
            .skip(1)
            .map(|c| c[..c.find('<').unwrap()].to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("в Telegram"),
        ["1", "50.0 %", "50.0 %", "3.00", "3\u{a0}000 ₽"]
    );
    assert_eq!(
        row("без Telegram"),
        ["7", "0.0 %", "0.0 %", "1.14", "1\u{a0}000 ₽"]
    );
    // Reminders: C, D, G came back within 30 days (at −45), H did not: 3 of 4; of the
    // control E came back, F did not: 1 of 2. 75 % − 50 % = 25 points.
    let uplift = &b[b.find("id=\"uplift-table\"").unwrap()..];
    assert!(uplift.contains("<td>due</td>"), "{uplift}");
    assert!(uplift.contains("3 / 4 (75.0 %)") && uplift.contains("1 / 2 (50.0 %)"));
    assert!(uplift.contains("<td class=\"num\">25.0 %</td>"));
    // Return: 0.25 × 4 sent = 1 extra visit × the average bill of the year
    // (17,000 roubles / 11 visits = 1,545.45); against 100 points spent = 100 roubles.
    assert_eq!(figure(b, "return-money"), "1\u{a0}545,45 ₽");
    assert_eq!(figure(b, "spent-money"), "100 ₽");
    assert_eq!(figure(b, "average-check"), "1\u{a0}545,45 ₽");
    // The charts carry the same numbers.
    assert!(b.contains("<svg id=\"points-chart\""));
    assert!(
        b.contains("data-value=\"5000\""),
        "50.0 % as a bar of 5000 bps"
    );

    // The CSVs beside them.
    let points = web.get("/analytics/points.csv").await;
    assert_eq!(points.status, StatusCode::OK);
    assert_eq!(points.headers["content-type"], "text/csv; charset=utf-8");
    let rows: Vec<Vec<i64>> = points
        .body
        .lines()
        .skip(1)
        .map(|l| l.split(';').skip(1).map(|c| c.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 12);
    let sum = |k: usize| rows.iter().map(|r| r[k]).sum::<i64>();
    // Every visit (the oldest 300 days ago) falls in the last 12 months.
    assert_eq!((sum(0), sum(1), sum(2)), (850, 100, 0));
    assert_eq!(rows[11][1], 100, "spent this month");
    let linked = web.get("/analytics/linked.csv").await;
    assert_eq!(
        linked.body,
        "group;clients_last_year;visits_60;returned_60;visits_90;returned_90;visits_last_year;paid_minor_last_year\r\n\
         linked;1;2;1;2;1;3;900000\r\n\
         not_linked;7;4;0;4;0;8;800000\r\n"
    );
    let reminders = web.get("/analytics/reminders.csv").await;
    assert!(
        reminders.body.contains("\r\ndue;4;3;2;1;2500;"),
        "{}",
        reminders.body
    );
    // Cohorts: all eight clients first came within the last 12 months (the earliest 300 days
    // ago); each came in its own first month.
    let cohorts = web.get("/analytics/cohorts.csv").await;
    let rows: Vec<Vec<i64>> = cohorts
        .body
        .lines()
        .skip(1)
        .map(|l| l.split(';').skip(1).map(|c| c.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 12);
    assert_eq!(rows.iter().map(|r| r[0]).sum::<i64>(), 8);
    assert!(
        rows.iter().all(|r| r[0] == 0 || r[1] == r[0]),
        "{}",
        cohorts.body
    );
    assert!(b.contains("id=\"cohorts-table\""));
    assert_eq!(
        web.get("/analytics/other.csv").await.status,
        StatusCode::NOT_FOUND
    );

    // Client value: none until a model is fitted. The viewer cannot build one; the owner
    // can, from the page.
    assert!(b.contains("id=\"no-model\""), "no model yet");
    assert!(!b.contains("id=\"build-model\""), "not the viewer's button");
    assert_eq!(
        web.post("/analytics/model", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    add_user(&env, partner, "owner@lotos.ru", "owner", PASSWORD);
    let mut owner = Web::new(gateway.addr);
    owner.sign_in("owner@lotos.ru", PASSWORD).await;
    let built = owner.post("/analytics/model", &[]).await;
    assert_eq!(built.status, StatusCode::SEE_OTHER, "{}", built.body);
    let pid = PartnerId(partner);
    assert!(gateway.store.salon_model(pid).await.unwrap().is_some());
    // Under a model with BG/NBD r = 1, α = 30, a = 1, b = 3 (set here, so the numbers are
    // worked out by hand): P(alive) = 1 / (1 + a / (b + x − 1) · ((α + T) / (α + tₓ))^(r + x))
    // for x repeat days, the last at tₓ of T days since the first. A (x = 2, tₓ = 180,
    // T = 200): 1 / (1 + ¼ · (230/210)³) = 75.3 %. B (x = 1, tₓ = 100, T = 200):
    // 1 / (1 + ⅓ · (230/130)²) = 48.9 % — at risk, 100 days away. The rest came once: 100 %.
    let model = loyalty_engage::risk::SalonModel {
        fitted_at_ms: now,
        winner: Some("bgnbd".into()),
        backtest: Vec::new(),
        bgnbd: Some(loyalty_engage::risk::BgNbdParams {
            r: 1.0,
            alpha: 30.0,
            a: 1.0,
            b: 3.0,
            log_likelihood: 0.0,
        }),
        gamma_gamma: None,
        clv_percentiles: Vec::new(),
        mean_visit_minor: 150_000,
        clients: 8,
        off: None,
        suggest: None,
    };
    gateway.store.save_salon_model(pid, &model).await.unwrap();
    let _ = web.post("/analytics/refresh", &[]).await;
    let valued = web.get("/analytics").await;
    let v = &valued.body[valued.body.find("id=\"values\"").unwrap()..];
    let risk = &v[v.find("id=\"at-risk-table\"").expect("at-risk table")..];
    assert!(risk.contains("+7******0002"), "B is listed: {risk}");
    assert!(risk.contains("<td class=\"num\">48.9 %</td>"), "{risk}");
    assert!(risk.contains("<td class=\"num\">100</td>"), "{risk}");
    assert!(!risk.contains("******0001"), "A is not at risk");
    assert!(v.contains("Под угрозой ухода (1)"), "one at risk");
    let at_risk = web.get("/analytics/at_risk.csv").await;
    let row: Vec<&str> = at_risk.body.lines().nth(1).unwrap().split(';').collect();
    assert_eq!(
        (row[0], row[1], row[3]),
        (id("+79161110002").to_string().as_str(), "4894", "100")
    );
    assert_eq!(at_risk.body.lines().count(), 2, "only B");
    let values = web.get("/analytics/values.csv").await;
    let counted: i64 = values
        .body
        .lines()
        .skip(1)
        .map(|l| l.rsplit(';').next().unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(counted, 8, "every client in one bin");

    // The heavy figures are kept for ten minutes: a visit now shows after "Refresh".
    clock.advance_ms(now - clock.now_ms());
    cli::visit_add(
        &past,
        &VisitAdd {
            partner,
            phone: "+79161110002".into(),
            name: None,
            paid_minor: 200_000,
            service: None,
            master: None,
            key: None,
            force: false,
        },
    )
    .await
    .unwrap();
    let kept = web.get("/analytics").await;
    assert_eq!(figure(&kept.body, "issued"), "850", "kept");
    assert!(kept.body.contains("id=\"as-of\""));
    let refreshed = web.post("/analytics/refresh", &[]).await;
    assert_eq!(refreshed.status, StatusCode::SEE_OTHER);
    let fresh = web.get("/analytics").await;
    assert_eq!(
        figure(&fresh.body, "issued"),
        "950",
        "+100 for 2,000 roubles"
    );

    // On the Basic plan the page and its files are refused, the plan named.
    env.cli(&[
        "partner",
        "plan",
        "--partner",
        &partner.to_string(),
        "--plan",
        "basic",
    ]);
    let refused = web.get("/analytics").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("Pro"), "{}", refused.body);
    assert_eq!(
        web.get("/analytics/points.csv").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        web.post("/analytics/refresh", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    gateway.stop().await.unwrap();
    schema.drop().await;
}

/// A chain: one salon with two YCLIENTS locations. Анна came to the first 100 days ago
/// (2,000 roubles) and to the second 80 days ago (3,000); Борис to the first 50 days ago
/// (1,000). 5 % back. Each location and the whole, worked out by hand:
/// - 4564: 2 clients, 2 visits, 3,000 ₽, 1,500 ₽ a visit; of visits 60+ days old (Анна's) one
///   followed by a visit within 60 days — at the other location: 100 %; 150 points.
/// - 4565: 1 client, 1 visit, 3,000 ₽; Анна's visit not followed: 0 %; 150 points.
/// - the whole: 2 clients (Анна once), 3 visits, 6,000 ₽, 2,000 ₽ a visit; 1 of 2: 50 %; 300.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_sees_each_location_and_the_whole() {
    let schema = PgSchema::new().await;
    let (gateway, config) = serve_on(&schema, Overrides::default()).await;
    let env = Env {
        vars: vec![("DATABASE_URL", schema.url.clone())],
    };
    let partner = add_lotos(&gateway.store).await;
    add_user(&env, partner, "owner@lotos.ru", "owner", PASSWORD);
    let mut hooks = Vec::new();
    for company in ["4564", "4565"] {
        let c = cli::connection_add(
            &gateway.store,
            &config,
            &cli::ConnectionAdd {
                partner,
                crm: loyalty_core::CrmKind::Yclients,
                company_id: company.into(),
                partner_token: None,
                user_token: None,
                login: Default::default(),
                utc_offset_minutes: None,
                country: None,
            },
            0,
        )
        .await
        .unwrap();
        hooks.push(c["webhook_url"].as_str().unwrap().to_owned());
    }
    let now = chrono::Utc::now();
    let http = reqwest::Client::new();
    for (hook, company, record, phone, rub, days) in [
        (0, "4564", 1, "79161110001", "2000", 100),
        (1, "4565", 2, "79161110001", "3000", 80),
        (0, "4564", 3, "79161110002", "1000", 50),
    ] {
        let mut body = loyalty_gateway::sample::record_webhook(&loyalty_gateway::sample::Record {
            company_id: company,
            record_id: record,
            client_id: 500 + record,
            client_name: "Клиентка",
            phone,
            cost: rub,
            attendance: 1,
            deleted: false,
            changed_at_s: 60,
        });
        let at = now - chrono::Duration::days(days);
        body["data"]["datetime"] =
            serde_json::json!(at.format("%Y-%m-%dT%H:%M:%S+00:00").to_string());
        body["data"]["date"] = serde_json::json!(at.format("%Y-%m-%d %H:%M:%S").to_string());
        let answer = http.post(&hooks[hook]).json(&body).send().await.unwrap();
        assert!(answer.status().is_success(), "{}", answer.status());
    }
    // The deliveries are applied by the inbox worker.
    let pid = PartnerId(partner);
    for _ in 0..100 {
        if gateway.store.account_totals(pid).await.unwrap().issued.0 == 300 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut web = Web::new(gateway.addr);
    web.sign_in("owner@lotos.ru", PASSWORD).await;
    let page = web.get("/analytics").await;
    assert_eq!(page.status, StatusCode::OK);
    let table = &page.body[page
        .body
        .find("id=\"locations-table\"")
        .expect("a chain's table")..];
    let table = &table[..table.find("</table>").unwrap()];
    let rows: Vec<&str> = table.split("<tr").skip(2).collect();
    assert_eq!(rows.len(), 3, "two locations and the whole: {table}");
    let cells = |row: &str| -> Vec<String> {
        row.split("<td")
            .skip(1)
            .map(|c| {
                let c = &c[c.find('>').unwrap() + 1..];
                c[..c.find("</td>").unwrap()]
                    .replace("<strong>", "")
                    .replace("</strong>", "")
            })
            .collect()
    };
    assert_eq!(
        cells(rows[0]),
        [
            "yclients 4564",
            "2",
            "2",
            "3\u{a0}000 ₽",
            "1\u{a0}500 ₽",
            "100.0 %",
            "150"
        ]
    );
    assert_eq!(
        cells(rows[1]),
        [
            "yclients 4565",
            "1",
            "1",
            "3\u{a0}000 ₽",
            "3\u{a0}000 ₽",
            "0.0 %",
            "150"
        ]
    );
    assert_eq!(
        cells(rows[2]),
        [
            "Вся сеть",
            "2",
            "3",
            "6\u{a0}000 ₽",
            "2\u{a0}000 ₽",
            "50.0 %",
            "300"
        ]
    );
    let csv = web.get("/analytics/locations.csv").await;
    let ids: Vec<i64> = gateway
        .store
        .connections_of(pid)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id.0)
        .collect();
    assert_eq!(
        csv.body,
        format!(
            "connection_id;clients_last_year;visits_last_year;paid_minor_last_year;points_last_year;visits_60;returned_60\r\n\
             {};2;2;300000;150;1;1\r\n\
             {};1;1;300000;150;1;0\r\n\
             all;2;3;600000;300;2;1\r\n",
            ids[0], ids[1]
        )
    );
    gateway.stop().await.unwrap();
    schema.drop().await;
}

/// `serve` computes every salon's heavy figures ahead of their views (every quarter of their
/// age, each once past half of it), so the page reads kept figures: here with an age of 2 s,
/// the figures appear and follow a new visit without anyone opening the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_keeps_the_figures_fresh_before_anyone_looks() {
    use sqlx::Connection;
    let schema = PgSchema::new().await;
    let options = loyalty_gateway::StartOptions {
        dashboard: Some(loyalty_web::Settings {
            analytics_max_age: std::time::Duration::from_secs(2),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (gateway, _) = common::serve_with(&schema, Overrides::default(), options).await;
    let env = Env {
        vars: vec![("DATABASE_URL", schema.url.clone())],
    };
    let partner = add_lotos(&gateway.store).await;
    let visit = |phone: &'static str| VisitAdd {
        partner,
        phone: phone.into(),
        name: None,
        paid_minor: 100_000,
        service: None,
        master: None,
        key: None,
        force: false,
    };
    cli::visit_add(&gateway.engine, &visit("+79161110001"))
        .await
        .unwrap();
    let mut db = sqlx::PgConnection::connect(&schema.url).await.unwrap();
    let kept = async |db: &mut sqlx::PgConnection| -> Option<(i64, String)> {
        sqlx::query_as::<_, (i64, String)>(
            "SELECT computed_at_ms, body FROM analytics_snapshots WHERE partner_id = $1",
        )
        .bind(partner)
        .fetch_optional(db)
        .await
        .unwrap()
    };
    // Nobody signs in to the salon yet: nothing is computed for it.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert!(kept(&mut db).await.is_none(), "no users, no figures");
    add_user(&env, partner, "owner@lotos.ru", "owner", PASSWORD);
    let mut first = None;
    for _ in 0..60 {
        first = kept(&mut db).await;
        if first.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (at, body) = first.expect("computed without a view");
    assert!(body.contains("\"issued\":50"), "{body}");
    // A visit: past half their age the figures are computed again, with it.
    cli::visit_add(&gateway.engine, &visit("+79161110002"))
        .await
        .unwrap();
    let mut again = None;
    for _ in 0..60 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        again = kept(&mut db).await.filter(|(t, _)| *t > at);
        if again.is_some() {
            break;
        }
    }
    let (_, body) = again.expect("computed again");
    assert!(body.contains("\"issued\":100"), "{body}");
    // The page reads them.
    let mut web = Web::new(gateway.addr);
    web.sign_in("owner@lotos.ru", PASSWORD).await;
    let page = web.get("/analytics").await;
    assert_eq!(figure(&page.body, "issued"), "100");
    db.close().await.unwrap();
    gateway.stop().await.unwrap();
    schema.drop().await;
}
