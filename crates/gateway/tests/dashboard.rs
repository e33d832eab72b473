//! The dashboard over real HTTP on the running gateway and PostgreSQL: users added by the CLI
//! sign in; an owner finds a client and posts points by hand (the client's balance and the
//! audit log show it); an admin uses a code at the desk; a viewer changes nothing; a user of
//! another salon meets 404 on every route that names an id; sessions end when they expire, on
//! sign-out and when their user is removed; sign-ins are limited; a form posted from another
//! site is refused.

mod common;

use common::web::{PASSWORD, Web, salons};
use loyalty_core::PartnerId;
use loyalty_core::access::AccessStore;
use loyalty_core::audit::{AuditAction, AuditStore};
use loyalty_gateway::StartOptions;
use reqwest::StatusCode;

/// The hidden key the client's card gives its points form.
fn form_key(body: &str) -> String {
    let at = body.find("name=\"key\" value=\"").expect("the form's key") + 18;
    body[at..at + body[at..].find('"').unwrap()].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_finds_a_client_posts_points_and_the_audit_log_names_her() {
    let s = salons(StartOptions::default()).await;
    let mut web = s.web("owner@lotos.ru").await;

    let home = web.get("/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("Лотос"), "{}", home.body);
    assert!(home.body.contains("id=\"clients-total\">1<"), "one client");

    // Search by part of the phone, as typed; htmx asks for the rows alone.
    let found = web.get("/clients?q=916+123-00").await;
    assert!(
        found
            .body
            .contains(&format!("href=\"/clients/{}\"", s.a_client))
    );
    assert!(found.body.contains("<html"), "the whole page without htmx");
    let none = web.get("/clients?q=999").await;
    assert!(none.body.contains("id=\"none-found\""));
    let mut rows = web.http.get(format!("{}/clients?q=Анна", web.base));
    rows = rows
        .header("cookie", web.cookie.clone().unwrap())
        .header("hx-request", "true");
    let rows = rows.send().await.unwrap().text().await.unwrap();
    assert!(!rows.contains("<html"), "a fragment for htmx: {rows}");
    assert!(rows.contains(&format!("href=\"/clients/{}\"", s.a_client)));

    let before = s.balance(s.a, s.a_client).await;
    let card = web.get(&format!("/clients/{}", s.a_client)).await;
    assert_eq!(card.status, StatusCode::OK);
    assert!(card.body.contains("+79161230001"));
    let key = form_key(&card.body);
    let form = [
        ("direction", "accrue"),
        ("points", "250"),
        ("reason", "извинение за ожидание"),
        ("key", key.as_str()),
    ];
    let posted = web
        .post(&format!("/clients/{}/points", s.a_client), &form)
        .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", posted.body);
    assert_eq!(
        posted.location(),
        Some(format!("/clients/{}?posted=1", s.a_client).as_str())
    );
    assert_eq!(s.balance(s.a, s.a_client).await, before + 250);
    // The same form sent twice (a double tap, a reload) posts once.
    let again = web
        .post(&format!("/clients/{}/points", s.a_client), &form)
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(s.balance(s.a, s.a_client).await, before + 250);

    // A debit beyond the balance is refused in words, nothing posted.
    let card = web.get(&format!("/clients/{}", s.a_client)).await;
    let key = form_key(&card.body);
    let refused = web
        .post(
            &format!("/clients/{}/points", s.a_client),
            &[
                ("direction", "debit"),
                ("points", "1000000"),
                ("reason", "ошибка"),
                ("key", key.as_str()),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("Недостаточно баллов"),
        "{}",
        refused.body
    );
    assert_eq!(s.balance(s.a, s.a_client).await, before + 250);

    let card = web.get(&format!("/clients/{}?posted=1", s.a_client)).await;
    assert!(card.body.contains("извинение за ожидание"));
    assert!(card.body.contains("+250"));

    // The audit log names who did it, from the dashboard.
    let log = s.gateway.store.audit_log(PartnerId(s.a), 10).await.unwrap();
    let manual = log
        .iter()
        .find(|e| e.action == AuditAction::ManualAccrual)
        .expect("audited");
    assert_eq!(manual.actor.name, "owner@lotos.ru");
    assert_eq!(manual.actor.via, "dashboard");
    let page = web.get("/audit").await;
    assert!(page.body.contains("manual_accrual") && page.body.contains("owner@lotos.ru"));
    assert!(page.body.contains("user_added"), "the CLI's additions too");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_uses_a_code_at_the_desk_and_a_viewer_changes_nothing() {
    let s = salons(StartOptions::default()).await;
    let mut desk = s.web("desk@lotos.ru").await;
    let page = desk.get(&format!("/desk?code={}", s.a_code)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"use-code\""), "{}", page.body);
    assert!(
        page.body.contains("id=\"bill\""),
        "a certificate asks for the bill"
    );
    // Too small a bill for a 500-rouble certificate when points pay at most half of it.
    let small = desk
        .post("/desk/use", &[("code", s.a_code.as_str()), ("bill", "600")])
        .await;
    assert_eq!(
        small.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        small.body
    );
    let used = desk
        .post(
            "/desk/use",
            &[("code", s.a_code.as_str()), ("bill", "1 500")],
        )
        .await;
    assert_eq!(used.status, StatusCode::SEE_OTHER, "{}", used.body);
    let page = desk.get(used.location().unwrap()).await;
    assert!(page.body.contains("id=\"code-used\""));
    assert!(page.body.contains("погашен"), "{}", page.body);
    let twice = desk
        .post(
            "/desk/use",
            &[("code", s.a_code.as_str()), ("bill", "1500")],
        )
        .await;
    assert_eq!(twice.status, StatusCode::UNPROCESSABLE_ENTITY);
    // The admin does not run the salon.
    assert_eq!(desk.get("/team").await.status, StatusCode::FORBIDDEN);
    assert_eq!(desk.get("/audit").await.status, StatusCode::FORBIDDEN);
    let log = s.gateway.store.audit_log(PartnerId(s.a), 10).await.unwrap();
    let used = log
        .iter()
        .find(|e| e.action == AuditAction::CodeUsed)
        .unwrap();
    assert_eq!(used.actor.name, "desk@lotos.ru");

    let mut eyes = s.web("eyes@lotos.ru").await;
    assert_eq!(eyes.get("/").await.status, StatusCode::OK);
    let before = s.balance(s.a, s.a_client).await;
    for path in [
        "/clients",
        &format!("/clients/{}", s.a_client),
        "/desk",
        "/team",
        "/audit",
    ] {
        assert_eq!(eyes.get(path).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    let refused = eyes
        .post(
            &format!("/clients/{}/points", s.a_client),
            &[
                ("direction", "accrue"),
                ("points", "5"),
                ("reason", "x"),
                ("key", "k"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("Вашей роли это недоступно"));
    let forms: [(&str, Vec<(&str, &str)>); 3] = [
        (
            "/desk/use",
            vec![("code", s.a_code.as_str()), ("bill", "1500")],
        ),
        (
            "/team/invite",
            vec![("email", "x@lotos.ru"), ("role", "owner")],
        ),
        ("/team/remove", vec![("email", "desk@lotos.ru")]),
    ];
    for (path, form) in &forms {
        assert_eq!(
            eyes.post(path, form).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    assert_eq!(s.balance(s.a, s.a_client).await, before);
    assert_eq!(
        s.gateway
            .store
            .users_of(PartnerId(s.a))
            .await
            .unwrap()
            .len(),
        3,
        "nobody added or removed"
    );
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_salons_ids_are_not_found_on_every_route() {
    let s = salons(StartOptions::default()).await;
    let mut a = s.web("owner@lotos.ru").await;
    let b_before = s.balance(s.b, s.b_client).await;
    let client = format!("/clients/{}", s.b_client);
    assert_eq!(a.get(&client).await.status, StatusCode::NOT_FOUND);
    let key = "k".repeat(64);
    let post = a
        .post(
            &format!("{client}/points"),
            &[
                ("direction", "accrue"),
                ("points", "5"),
                ("reason", "x"),
                ("key", &key),
            ],
        )
        .await;
    assert_eq!(post.status, StatusCode::NOT_FOUND);
    let desk = a.get(&format!("/desk?code={}", s.b_code)).await;
    assert!(
        desk.body.contains("id=\"code-unknown\""),
        "B's code is not A's"
    );
    let used = a
        .post(
            "/desk/use",
            &[("code", s.b_code.as_str()), ("bill", "5000")],
        )
        .await;
    assert_eq!(used.status, StatusCode::NOT_FOUND);
    let removed = a.post("/team/remove", &[("email", "owner@roza.ru")]).await;
    assert_eq!(removed.status, StatusCode::NOT_FOUND);
    // The list and the search show A's clients only.
    let list = a.get("/clients?q=916").await;
    assert!(!list.body.contains("+79161230002"));
    assert!(!a.get("/team").await.body.contains("roza.ru"));
    assert!(!a.get("/audit").await.body.contains("roza.ru"));
    for path in [
        "/clients/abc",
        "/clients/-1",
        "/clients/99999999999999999999",
    ] {
        assert_eq!(a.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    // Nothing of B's moved; B's code still works for B.
    assert_eq!(s.balance(s.b, s.b_client).await, b_before);
    let mut b = s.web("owner@roza.ru").await;
    assert!(
        b.get(&format!("/desk?code={}", s.b_code))
            .await
            .body
            .contains("id=\"use-code\"")
    );
    assert!(b.get("/clients").await.body.contains("+79161230002"));
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_on_expiry_idleness_sign_out_and_removal() {
    let s = salons(StartOptions::default()).await;
    let store = &s.gateway.store;
    let signed_out = |page: &common::web::Page| {
        page.status == StatusCode::SEE_OTHER && page.location() == Some("/login")
    };

    let mut web = s.web("owner@lotos.ru").await;
    assert_eq!(web.get("/").await.status, StatusCode::OK);
    sqlx::query("UPDATE staff_sessions SET expires_at_ms = 1")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(signed_out(&web.get("/").await), "past its end");

    let mut web = s.web("owner@lotos.ru").await;
    sqlx::query("UPDATE staff_sessions SET last_seen_ms = 1 WHERE revoked_at_ms IS NULL")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(
        signed_out(&web.get("/").await),
        "unused for longer than a day"
    );

    let mut web = s.web("owner@lotos.ru").await;
    let cookie = web.cookie.clone();
    let out = web.post("/logout", &[]).await;
    assert_eq!(out.location(), Some("/login"));
    web.cookie = cookie;
    assert!(
        signed_out(&web.get("/").await),
        "the old cookie is dead after sign-out"
    );

    let mut desk = s.web("desk@lotos.ru").await;
    assert_eq!(desk.get("/clients").await.status, StatusCode::OK);
    s.env.cli(&[
        "user",
        "remove",
        "--partner",
        &s.a.to_string(),
        "--email",
        "desk@lotos.ru",
    ]);
    assert!(
        signed_out(&desk.get("/clients").await),
        "removed by the CLI"
    );
    let again = desk
        .post(
            "/login",
            &[("email", "desk@lotos.ru"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);

    // An htmx request without a session is told where to go instead of a redirect.
    let r = reqwest::Client::new()
        .get(format!("{}/clients", web.base))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["hx-redirect"], "/login");

    // Only hashes are stored.
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM staff_sessions")
        .fetch_all(store.pool())
        .await
        .unwrap();
    let token = web
        .cookie
        .unwrap()
        .trim_start_matches("lb_session=")
        .to_owned();
    assert!(!stored.contains(&token));
    assert!(stored.contains(&loyalty_web::token_hash(&token)));
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_are_limited_per_account_and_per_address() {
    let options = StartOptions {
        dashboard: Some(loyalty_web::Settings {
            login_limits: loyalty_web::Limits {
                per_account: 3,
                per_address: 5,
                window_ms: 60_000,
            },
            ..loyalty_web::Settings::default()
        }),
        ..StartOptions::default()
    };
    let s = salons(options).await;
    let mut web = Web::new(s.gateway.addr);
    for _ in 0..3 {
        let page = web
            .post(
                "/login",
                &[("email", "owner@lotos.ru"), ("password", "wrong password")],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(page.body.contains("id=\"login-error\""));
    }
    // The right password no longer helps this account for the window.
    let held = web
        .post(
            "/login",
            &[("email", "owner@lotos.ru"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(held.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = held.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(web.cookie.is_none());
    // Another account from the same address: two more failures use up the address.
    for _ in 0..2 {
        let page = web
            .post(
                "/login",
                &[("email", "nobody@lotos.ru"), ("password", "wrong password")],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    let page = web
        .post(
            "/login",
            &[("email", "desk@lotos.ru"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the address is held"
    );
    // No trusted proxy is configured: a client naming another address is still held.
    let spoofed = web
        .http
        .post(format!("{}/login", web.base))
        .header("x-forwarded-for", "198.51.100.77")
        .form(&[("email", "desk@lotos.ru"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), StatusCode::TOO_MANY_REQUESTS);
    s.finish().await;
}

/// Behind a trusted reverse proxy each client is held by its own address (the one the proxy's
/// `X-Forwarded-For` names), not all of them by the proxy's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_client_is_held_by_its_own_address() {
    let schema = common::PgSchema::new().await;
    let overrides = loyalty_gateway::config::Overrides {
        trusted_proxies: Some(vec!["127.0.0.1".into()]),
        ..Default::default()
    };
    let options = StartOptions {
        dashboard: Some(loyalty_web::Settings {
            login_limits: loyalty_web::Limits {
                per_account: 100,
                per_address: 2,
                window_ms: 60_000,
            },
            ..loyalty_web::Settings::default()
        }),
        ..StartOptions::default()
    };
    let (gateway, _) = common::serve_with(&schema, overrides, options).await;
    let env = common::binary::Env {
        vars: vec![("DATABASE_URL", schema.url.clone())],
    };
    let partner = common::add_lotos(&gateway.store).await;
    common::web::add_user(&env, partner, "owner@lotos.ru", "owner", PASSWORD);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = |client: &'static str, password: &'static str| {
        let http = http.clone();
        let url = format!("http://{}/login", gateway.addr);
        async move {
            http.post(url)
                .header("x-forwarded-for", format!("{client}, 127.0.0.1"))
                .form(&[("email", "owner@lotos.ru"), ("password", password)])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    for _ in 0..2 {
        assert_eq!(
            login("198.51.100.1", "wrong password").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login("198.51.100.1", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login("198.51.100.2", PASSWORD).await,
        StatusCode::SEE_OTHER,
        "another client behind the same proxy signs in"
    );
    gateway.stop().await.unwrap();
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_posted_from_another_site_is_refused() {
    let s = salons(StartOptions::default()).await;
    let mut web = s.web("owner@lotos.ru").await;
    let before = s.balance(s.a, s.a_client).await;
    let card = web.get(&format!("/clients/{}", s.a_client)).await;
    let key = form_key(&card.body);
    let form = [
        ("direction", "accrue"),
        ("points", "1000"),
        ("reason", "CSRF"),
        ("key", key.as_str()),
    ];
    let path = format!("/clients/{}/points", s.a_client);
    for site in ["cross-site", "same-site"] {
        let page = web.post_from(&path, &form, site).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{site}");
    }
    // An older browser that sends only Origin.
    let r = web
        .http
        .post(format!("{}{path}", web.base))
        .header("cookie", web.cookie.clone().unwrap())
        .header("origin", "http://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let invite = web
        .post_from(
            "/team/invite",
            &[("email", "x@evil.ru"), ("role", "owner")],
            "cross-site",
        )
        .await;
    assert_eq!(invite.status, StatusCode::FORBIDDEN);
    assert_eq!(s.balance(s.a, s.a_client).await, before);
    assert_eq!(
        s.gateway
            .store
            .users_of(PartnerId(s.a))
            .await
            .unwrap()
            .len(),
        3
    );
    // The same form from the dashboard itself goes through.
    let page = web.post(&path, &form).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(s.balance(s.a, s.a_client).await, before + 1000);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_invites_staff_who_set_a_password_once() {
    let s = salons(StartOptions::default()).await;
    let mut owner = s.web("owner@lotos.ru").await;
    let page = owner
        .post(
            "/team/invite",
            &[("email", "New@Lotos.ru "), ("role", "admin")],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let at = page.body.find("/invite/").expect("the link shown once");
    let link = page.body[at..at + 8 + 64].to_owned();
    assert!(page.body.contains("new@lotos.ru"));
    // Taken elsewhere: the same e-mail cannot join another salon.
    let mut rosa = s.web("owner@roza.ru").await;
    let taken = rosa
        .post(
            "/team/invite",
            &[("email", "new@lotos.ru"), ("role", "admin")],
        )
        .await;
    assert_eq!(taken.status, StatusCode::UNPROCESSABLE_ENTITY);

    let mut new = Web::new(s.gateway.addr);
    let form = new.get(&link).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("Лотос"));
    let short = new.post(&link, &[("password", "short")]).await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    let set = new.post(&link, &[("password", PASSWORD)]).await;
    assert_eq!(set.status, StatusCode::SEE_OTHER);
    assert_eq!(
        new.get("/clients").await.status,
        StatusCode::OK,
        "an admin, signed in"
    );
    // The link worked once.
    let mut other = Web::new(s.gateway.addr);
    assert_eq!(
        other
            .post(&link, &[("password", "another password")])
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    other.sign_in("new@lotos.ru", PASSWORD).await;

    // Removed by the owner: the new admin's session ends.
    let removed = owner
        .post("/team/remove", &[("email", "new@lotos.ru")])
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert_eq!(new.get("/clients").await.location(), Some("/login"));
    let log = s.gateway.store.audit_log(PartnerId(s.a), 20).await.unwrap();
    let removal = log
        .iter()
        .find(|e| e.action == AuditAction::UserRemoved)
        .unwrap();
    assert_eq!(removal.actor.name, "owner@lotos.ru");
    assert_eq!(removal.detail["email"], "new@lotos.ru");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_changes_the_program_and_the_next_visit_earns_by_it() {
    let s = salons(StartOptions::default()).await;
    let mut web = s.web("owner@lotos.ru").await;
    let page = web.get("/program").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("id=\"cashback\" name=\"cashback\" value=\"5\""),
        "{}",
        page.body
    );
    let form = |cashback: &'static str| {
        vec![
            ("cashback", cashback),
            ("min_paid", "0"),
            ("max_share", "50"),
            ("point_value", "1"),
            ("ttl_days", ""),
            ("welcome", "0"),
            ("code_days", "90"),
            ("pending_days", "0"),
            ("max_points", ""),
        ]
    };
    // Out of range: said, nothing changed.
    let bad = web.post("/program/settings", &form("150")).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("id=\"program-error\"") && bad.body.contains("cashback"));
    let saved = web.post("/program/settings", &form("7,5")).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(saved.location(), Some("/program?saved=1"));
    let page = web.get("/program?saved=1").await;
    assert!(page.body.contains("value=\"7.5\""));
    assert!(page.body.contains("v2 "), "a new version: {}", page.body);
    // The next visit earns 7.5 %: 2,000 roubles → 150 points.
    let v = common::web::visit(&s.gateway, s.a, "+79035550001", 200_000).await;
    let client = v["client_id"].as_i64().unwrap();
    assert_eq!(s.balance(s.a, client).await, 150);

    // The whole program as JSON: an unknown field is named, nothing changed.
    let bad = web
        .post(
            "/program/json",
            &[("program", "{\"cashback\": 500, \"cashbak\": 1}")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("program-error"));
    let log = s.gateway.store.audit_log(PartnerId(s.a), 20).await.unwrap();
    let changed: Vec<_> = log
        .iter()
        .filter(|e| e.action == AuditAction::ProgramChanged)
        .collect();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].actor.name, "owner@lotos.ru");

    // An admin cannot change it.
    let mut desk = s.web("desk@lotos.ru").await;
    assert_eq!(desk.get("/program").await.status, StatusCode::FORBIDDEN);
    let refused = desk.post("/program/settings", &form("50")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    s.finish().await;
}

/// `demo --serve`: the demo's salon stays up with its dashboard; the printed sign-in works and
/// shows the day's clients; Ctrl-C stops it cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_its_salons_dashboard_until_ctrl_c() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let mut child = Command::new(env!("CARGO_BIN_EXE_loyalty-gateway"))
        .args(["demo", "--json", "--serve"])
        .env_remove("DATABASE_URL")
        .env_remove("LOYALTY_CONFIG")
        .env_remove("LOYALTY_DATA_DIR")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line
    })
    .await
    .unwrap();
    let summary: serde_json::Value = serde_json::from_str(&line).expect("the demo's JSON");
    let d = &summary["dashboard"];
    let url = d["url"].as_str().unwrap();
    let addr: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let mut web = Web::new(addr);
    web.sign_in(
        d["owner"]["email"].as_str().unwrap(),
        d["owner"]["password"].as_str().unwrap(),
    )
    .await;
    let clients = web.get("/clients").await;
    assert_eq!(clients.status, StatusCode::OK);
    assert!(clients.body.contains("Анна"), "{}", clients.body);
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_enters_a_visit_exports_clients_and_sees_the_integration() {
    let s = salons(StartOptions::default()).await;
    let mut desk = s.web("desk@lotos.ru").await;
    let page = desk.get("/desk").await;
    assert!(
        page.body.contains("id=\"desk-visit\""),
        "no CRM reports visits here"
    );
    let at = page
        .body
        .find("form class=\"card row\" method=\"post\" action=\"/desk/visit\"")
        .unwrap();
    let key = form_key(&page.body[at..]);
    assert_eq!(key.len(), 24);
    let form = [
        ("phone", "8 (903) 555-00-09"),
        ("bill", "2 000"),
        ("service", "Маникюр"),
        ("name", "Вера"),
        ("key", key.as_str()),
    ];
    let entered = desk.post("/desk/visit", &form).await;
    assert_eq!(entered.status, StatusCode::SEE_OTHER, "{}", entered.body);
    let card = desk.get(entered.location().unwrap()).await;
    assert!(card.body.contains("+79035550009") && card.body.contains("Маникюр"));
    let client: i64 = entered.location().unwrap()[9..]
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(s.balance(s.a, client).await, 100, "5 % of 2,000 roubles");
    // Pressed twice: one visit.
    desk.post("/desk/visit", &form).await;
    assert_eq!(s.balance(s.a, client).await, 100);
    let bad = desk
        .post(
            "/desk/visit",
            &[("phone", "12"), ("bill", "5"), ("key", "k2")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Entered by mistake: cancelled from her card with a reason, the points taken back.
    let card = desk.get(&format!("/clients/{client}")).await;
    let at = card
        .body
        .find("name=\"record\" value=\"")
        .expect("a cancel form")
        + 21;
    let record = card.body[at..at + card.body[at..].find('"').unwrap()].to_owned();
    assert!(record.starts_with("desk-dash-"), "{record}");
    let path = format!("/clients/{client}/visits/cancel");
    let no_reason = desk
        .post(&path, &[("record", record.as_str()), ("reason", " ")])
        .await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Another client's card does not find her record.
    let anna = format!("/clients/{}/visits/cancel", s.a_client);
    let wrong = desk
        .post(&anna, &[("record", record.as_str()), ("reason", "ошибка")])
        .await;
    assert_eq!(wrong.status, StatusCode::NOT_FOUND);
    assert_eq!(s.balance(s.a, client).await, 100);
    let cancelled = desk
        .post(
            &path,
            &[("record", record.as_str()), ("reason", "пробили дважды")],
        )
        .await;
    assert_eq!(
        cancelled.status,
        StatusCode::SEE_OTHER,
        "{}",
        cancelled.body
    );
    assert_eq!(s.balance(s.a, client).await, 0);
    let card = desk.get(&format!("/clients/{client}")).await;
    assert!(card.body.contains("пробили дважды") && !card.body.contains("name=\"record\""));
    let log = s.gateway.store.audit_log(PartnerId(s.a), 3).await.unwrap();
    assert_eq!(log[0].action, AuditAction::VisitCorrected);
    assert_eq!(log[0].actor.name, "desk@lotos.ru");

    // The export: every client, the audit log says who took it.
    let csv = desk.get("/clients/export.csv").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(
        lines[0],
        "phone,name,telegram,level,balance,visits,last_visit"
    );
    assert_eq!(lines.len(), 3, "Анна and Вера: {}", csv.body);
    assert!(
        csv.body.contains("+79035550009,\"Вера\",no,\"\",0,0,"),
        "her visit cancelled: {}",
        csv.body
    );
    assert!(!csv.body.contains("+79161230002"), "not another salon's");
    let log = s.gateway.store.audit_log(PartnerId(s.a), 5).await.unwrap();
    assert_eq!(log[0].action, AuditAction::ClientsExported);
    assert_eq!(log[0].actor.name, "desk@lotos.ru");
    assert_eq!(log[0].detail["clients"], 2);
    let mut eyes = s.web("eyes@lotos.ru").await;
    assert_eq!(
        eyes.get("/clients/export.csv").await.status,
        StatusCode::FORBIDDEN
    );

    // The integration: the desk connection, no refused deliveries.
    let health = desk.get("/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert!(health.body.contains("desk") && health.body.contains("id=\"no-rejected\""));
    s.finish().await;
}

/// `/login` in the salon's bot: a staff member whose chat is linked (`user chat`) gets a link
/// that signs in once, within its minutes; its page only asks to press the button (a link
/// preview uses nothing); to any other chat the command does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_member_signs_in_by_the_bots_one_time_link() {
    use common::telegram::{telegram, texts_to};
    use serde_json::json;
    use wiremock::matchers::{body_partial_json, method, path};
    use wiremock::{Mock, ResponseTemplate};

    const TOKEN: &str = "4242:login-token";
    let schema = common::PgSchema::new().await;
    let tg = telegram(TOKEN).await;
    let (gateway, _) = common::serve_with_bot(&schema, TOKEN, tg.uri()).await;
    let env = common::binary::Env {
        vars: vec![("DATABASE_URL", schema.url.clone())],
    };
    let partner = common::add_lotos(&gateway.store).await;
    common::web::add_user(&env, partner, "owner@lotos.ru", "owner", PASSWORD);
    let send = |update: i64, chat: i64, text: &str| {
        let body = json!({"update_id": update, "message": {"message_id": update,
            "date": 1_795_000_000, "chat": {"id": chat, "type": "private"},
            "from": {"id": chat, "is_bot": false, "first_name": "Staff", "language_code": "ru"},
            "text": text}});
        let addr = gateway.addr;
        async move {
            let status = reqwest::Client::new()
                .post(format!("http://{addr}/telegram/s3cret"))
                .header("x-telegram-bot-api-secret-token", "s3cret")
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 200);
        }
    };
    let link_to = |chat: i64| {
        let tg = &tg;
        async move {
            for _ in 0..100 {
                let link = texts_to(tg, chat).await.iter().rev().find_map(|t| {
                    t.split_whitespace()
                        .find(|w| w.contains("/login/tg/"))
                        .map(str::to_owned)
                });
                if let Some(l) = link {
                    return l;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!(
                "no sign-in link to chat {chat}: {:?}",
                texts_to(tg, chat).await
            );
        }
    };

    // A chat that is nobody's: the bot answers with its help.
    send(1, 555, "/login").await;
    for _ in 0..100 {
        if !texts_to(&tg, 555).await.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let said = texts_to(&tg, 555).await;
    assert!(said.iter().all(|t| !t.contains("/login/tg/")) && said[0].contains("/balance"));

    env.cli(&[
        "user",
        "chat",
        "--partner",
        &partner.to_string(),
        "--email",
        "owner@lotos.ru",
        "--chat",
        "900",
    ]);
    // Telegram failing the reply: the update is still acknowledged (Telegram would otherwise
    // resend it), and the link it carried was never seen; asking again gives a working one.
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/sendMessage")))
        .and(body_partial_json(json!({"chat_id": 900})))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&tg)
        .await;
    send(20, 900, "/login").await;
    let unseen = link_to(900).await;
    send(2, 900, "/login").await;
    let mut link = link_to(900).await;
    for _ in 0..100 {
        if link != unseen {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        link = link_to(900).await;
    }
    assert_ne!(link, unseen, "a second link after the failed reply");
    assert!(
        link.starts_with(&format!("{}/login/tg/", common::PUBLIC_URL)),
        "{link}"
    );
    let path = &link[common::PUBLIC_URL.len()..];
    let mut web = Web::new(gateway.addr);
    // The page (what a link preview fetches) uses nothing up.
    for _ in 0..2 {
        let page = web.get(path).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("Лотос") && page.body.contains("owner@lotos.ru"));
    }
    let signed = web.post(path, &[]).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert!(
        web.cookie
            .as_deref()
            .unwrap()
            .starts_with("__Host-lb_session=")
    );
    assert!(
        signed.headers["set-cookie"]
            .to_str()
            .unwrap()
            .ends_with("; Secure")
    );
    assert_eq!(web.get("/").await.status, StatusCode::OK);
    // Once only.
    let mut other = Web::new(gateway.addr);
    assert_eq!(
        other.post(path, &[]).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // A link past its minutes.
    send(3, 900, "/login").await;
    let mut late = link_to(900).await;
    for _ in 0..100 {
        if late != link {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        late = link_to(900).await;
    }
    assert_ne!(late, link);
    sqlx::query("UPDATE staff_links SET expires_at_ms = 1 WHERE used_at_ms IS NULL")
        .execute(gateway.store.pool())
        .await
        .unwrap();
    let expired = other.post(&late[common::PUBLIC_URL.len()..], &[]).await;
    assert_eq!(expired.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(other.cookie.is_none());
    gateway.stop().await.unwrap();
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_adds_and_removes_rewards_in_her_catalog_only() {
    use loyalty_core::RewardStore;

    let s = salons(StartOptions::default()).await;
    let mut owner = s.web("owner@lotos.ru").await;
    let before = s
        .gateway
        .store
        .rewards(PartnerId(s.a), false)
        .await
        .unwrap()
        .len();
    let added = owner
        .post(
            "/rewards/add",
            &[
                ("title", "Сертификат 1 000 ₽"),
                ("value", "1 000"),
                ("points", "250"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let catalog = s
        .gateway
        .store
        .rewards(PartnerId(s.a), false)
        .await
        .unwrap();
    assert_eq!(catalog.len(), before + 1);
    let new = catalog
        .iter()
        .find(|r| r.title == "Сертификат 1 000 ₽")
        .unwrap();
    assert_eq!((new.cost.0, new.kind.value_minor()), (250, 100_000));
    let page = owner.get("/rewards").await;
    assert!(page.body.contains("Сертификат 1 000 ₽") && !page.body.contains("id=\"add-service\""));
    for bad in [
        vec![("title", "X"), ("value", "100"), ("points", "0")],
        vec![("title", "X"), ("value", "abc"), ("points", "5")],
        vec![("title", "X"), ("points", "5")],
    ] {
        assert_eq!(
            owner.post("/rewards/add", &bad).await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    // Another salon's reward is not found; an admin may not change the catalog.
    let rosa = s
        .gateway
        .store
        .rewards(PartnerId(s.b), false)
        .await
        .unwrap();
    let theirs = rosa[0].id.0.to_string();
    assert_eq!(
        owner
            .post("/rewards/remove", &[("id", theirs.as_str())])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.gateway
            .store
            .rewards(PartnerId(s.b), false)
            .await
            .unwrap()
            .len(),
        rosa.len()
    );
    let mut desk = s.web("desk@lotos.ru").await;
    assert_eq!(desk.get("/rewards").await.status, StatusCode::FORBIDDEN);
    let id = new.id.0.to_string();
    assert_eq!(
        desk.post("/rewards/remove", &[("id", id.as_str())])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let removed = owner.post("/rewards/remove", &[("id", id.as_str())]).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert!(
        !owner
            .get("/rewards")
            .await
            .body
            .contains("Сертификат 1 000 ₽")
    );
    let log = s.gateway.store.audit_log(PartnerId(s.a), 5).await.unwrap();
    let actions: Vec<_> = log.iter().take(2).map(|e| e.action).collect();
    assert_eq!(
        actions,
        [AuditAction::RewardRemoved, AuditAction::RewardAdded]
    );
    assert_eq!(log[1].actor.name, "owner@lotos.ru");
    s.finish().await;
}
