//! The dashboard in a real headless Chromium against the running gateway on PostgreSQL: an
//! owner signs in, searches a client as she types (htmx), posts points by hand and sees the
//! balance move, changes the cashback; the language switch; an admin uses a code at the desk with the bill; a viewer
//! finds no desk and is refused it; a user of another salon meets "not found" on the first
//! salon's URLs. Screenshots of the main pages land in `target/tmp/screenshots/`.

mod common;

use common::browser::Browser;
use common::web::{PASSWORD, salons, visit};
use loyalty_core::LedgerStore;
use loyalty_gateway::StartOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_admin_viewer_and_another_salon_in_a_real_browser() {
    let s = salons(StartOptions::default()).await;
    let olga = visit(&s.gateway, s.a, "+79035550000", 150_000).await;
    let olga = format!("#rows a[href='/clients/{}']", olga["client_id"]);
    let base = format!("http://{}", s.gateway.addr);
    let b = Browser::start("dashboard", false).await;

    // The owner: the overview, then a client found as she types.
    b.goto(&format!("{base}/")).await;
    b.find("#sign-in").await;
    b.shot("login").await;
    b.sign_in(&base, "owner@lotos.ru", PASSWORD).await;
    assert_eq!(b.text("#clients-total").await, "2");
    b.shot("overview").await;
    b.click("nav a[href='/clients']").await;
    let link = format!("#rows a[href='/clients/{}']", s.a_client);
    b.find(&olga).await;
    b.find(&link).await;
    b.fill("#q", "916123000").await;
    b.wait_gone(&olga).await;
    b.find(&link).await;
    let url = b.driver.current_url().await.unwrap();
    assert!(
        url.as_str().contains("q=916123000"),
        "htmx kept the search in the URL: {url}"
    );
    b.shot("clients").await;

    // Points by hand: the balance on the card moves by them.
    b.click(&link).await;
    let before = s.balance(s.a, s.a_client).await;
    b.fill("#points", "250").await;
    b.fill("#reason", "извинение за ожидание").await;
    b.click("#post-points").await;
    b.find("#posted").await;
    assert_eq!(s.balance(s.a, s.a_client).await, before + 250);
    let shown: String = b
        .text("#balance")
        .await
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    assert_eq!(shown, (before + 250).to_string());
    b.wait_text("#history", "извинение за ожидание").await;
    b.shot("client").await;

    // The cashback changed: a new version of the program from now.
    b.click("nav a[href='/program']").await;
    b.fill("#cashback", "7,5").await;
    b.click("#save-settings").await;
    b.find("#saved").await;
    b.wait_text("#versions", "v2").await;
    b.shot("program").await;

    // The analytics page: its figures are the ledger's.
    b.click("nav a[href='/analytics']").await;
    let books = s
        .gateway
        .store
        .account_totals(loyalty_core::PartnerId(s.a))
        .await
        .unwrap();
    let digits = |t: String| t.chars().filter(char::is_ascii_digit).collect::<String>();
    assert_eq!(digits(b.text("#issued").await), books.issued.0.to_string());
    assert_eq!(
        digits(b.text("#outstanding").await),
        books.outstanding.0.to_string()
    );
    assert_eq!(digits(b.text("#spent").await), books.spent.0.to_string());
    b.find("#points-chart rect[data-value]").await;
    b.shot("analytics").await;

    // English by the switch, kept for the next page.
    b.click("header.top form[action='/lang/en'] button").await;
    b.wait_text("header.top nav", "Clients").await;
    b.goto(&format!("{base}/")).await;
    b.wait_text("header.top nav", "Overview").await;
    b.click("header.top form[action='/lang/ru'] button").await;
    b.wait_text("header.top nav", "Обзор").await;
    b.click("#sign-out").await;
    b.find("#sign-in").await;

    // The admin at the desk: the code checked, then used with the bill.
    b.sign_in(&base, "desk@lotos.ru", PASSWORD).await;
    b.click("nav a[href='/desk']").await;
    b.fill("#code", &s.a_code).await;
    b.click("#check-code").await;
    b.find("#code-card").await;
    b.fill("#bill", "1500").await;
    b.shot("desk").await;
    b.click("#use-code").await;
    b.find("#code-used").await;
    b.wait_text("#code-status", "погашен").await;
    assert!(!b.exists("#use-code").await, "a used code has no form");

    // The viewer: no desk in the menu, and refused when typed.
    b.sign_in(&base, "eyes@lotos.ru", PASSWORD).await;
    assert!(!b.exists("nav a[href='/clients']").await);
    assert!(!b.exists("nav a[href='/desk']").await);
    b.goto(&format!("{base}/clients/{}", s.a_client)).await;
    b.wait_text("#error", "Вашей роли это недоступно").await;

    // Another salon's owner on Лотос's URLs.
    b.sign_in(&base, "owner@roza.ru", PASSWORD).await;
    b.goto(&format!("{base}/clients/{}", s.a_client)).await;
    b.wait_text("#error", "Не найдено").await;
    b.goto(&format!("{base}/desk?code={}", s.a_code)).await;
    b.find("#code-unknown").await;
    b.quit().await;

    // The owner's pages on a phone's width.
    let phone = Browser::start("dashboard-phone", true).await;
    phone.sign_in(&base, "owner@lotos.ru", PASSWORD).await;
    phone.shot("overview").await;
    phone.goto(&format!("{base}/clients/{}", s.a_client)).await;
    phone.find("#manual").await;
    phone.shot("client").await;
    phone.quit().await;
    s.finish().await;
}
