//! The dashboard's reminders page over real HTTP on PostgreSQL: an owner turns reminders on
//! with a form (a new program version, audited), a bad trigger is named, the preview says who
//! would get what now and records nothing, a scan's sends are listed; an admin sees but cannot
//! change, a viewer is refused, and a Basic salon is told the plan.

mod common;

use std::sync::Arc;

use common::web::{salons, visit};
use loyalty_core::audit::{AuditAction, AuditStore, Plan};
use loyalty_core::{
    ChatStore, Clock, LoyaltyEngine, ManualClock, PartnerId, PartnerStore, Phone, Store,
    SystemClock,
};
use loyalty_engage::EngageStore;
use loyalty_engage::store::ConsentKind;
use loyalty_gateway::StartOptions;
use loyalty_gateway::cli;
use reqwest::StatusCode;

const DAY: i64 = 24 * 3600 * 1000;

const TRIGGERS: &str = r#"[{"kind": "inactive", "days": 30, "min_balance": 0}]"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_set_preview_and_follow_reminders_on_the_page() {
    let s = salons(StartOptions::default()).await;
    let partner = PartnerId(s.a);
    // Вера came 40 days ago (an engine on a clock set back, over the same database), has a
    // chat and said yes to offers: the inactive trigger (30 days) is due for her.
    let now = SystemClock.now_ms();
    let store: Arc<dyn Store> = s.gateway.store.clone();
    let past = LoyaltyEngine::with_clock(store, Arc::new(ManualClock::new(now - 40 * DAY)));
    // Another client came today: not due.
    visit(&s.gateway, s.a, "+79035551111", 300_000).await;
    let old = cli::visit_add(
        &past,
        &cli::VisitAdd {
            partner: s.a,
            phone: "+79035552222".into(),
            name: Some("Вера".into()),
            paid_minor: 300_000,
            service: None,
            master: None,
            key: None,
            force: false,
        },
    )
    .await
    .unwrap();
    let vera = loyalty_core::ClientId(old["client_id"].as_i64().unwrap());
    let phone = Phone::parse_international("+79035552222").unwrap();
    let chat = loyalty_core::TelegramChat {
        chat_id: 5_552_222,
        phone: Some(phone.clone()),
        language: "ru".into(),
        active: true,
        joined_partner: Some(partner),
        referred_by: None,
    };
    s.gateway
        .store
        .save_telegram_chat(&chat, now)
        .await
        .unwrap();
    s.gateway.store.link_chat(&phone, 5_552_222).await.unwrap();
    s.gateway
        .store
        .set_consent(
            partner,
            vera,
            ConsentKind::Marketing,
            true,
            "telegram",
            "Да",
            now,
        )
        .await
        .unwrap();

    let mut owner = s.web("owner@lotos.ru").await;
    let page = owner.get("/reminders").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Напоминания выключены"), "{}", page.body);

    // A trigger that is not one: named, nothing saved.
    let mut form = vec![
        ("on", "1"),
        ("from_hour", "0"),
        ("to_hour", "24"),
        ("per_7", "1"),
        ("per_30", "4"),
        ("holdout", "0"),
        ("booking_url", "https://n1.yclients.com/"),
        ("triggers", r#"[{"kind": "someday"}]"#),
    ];
    let page = owner.post("/reminders/settings", &form).await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert!(
        page.body.contains("triggers: unknown variant"),
        "{}",
        page.body
    );
    assert!(page.body.contains("someday"), "the typed JSON is kept");
    let program = s
        .gateway
        .store
        .partner(partner)
        .await
        .unwrap()
        .unwrap()
        .program;
    assert!(program.engage.is_none());
    // Hours the policy refuses: its own words.
    form[7] = ("triggers", TRIGGERS);
    form[2] = ("to_hour", "25");
    let page = owner.post("/reminders/settings", &form).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("hours must be 0–24"), "{}", page.body);
    form[2] = ("to_hour", "24");
    let page = owner.post("/reminders/settings", &form).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let program = s
        .gateway
        .store
        .partner(partner)
        .await
        .unwrap()
        .unwrap()
        .program;
    let engage = program.engage.expect("reminders on");
    assert_eq!(
        (engage.send_window.from_hour, engage.send_window.to_hour),
        (0, 24)
    );
    assert_eq!(engage.holdout_percent, 0);
    assert_eq!(engage.triggers.len(), 1);
    assert_eq!(
        engage.booking_url.as_deref(),
        Some("https://n1.yclients.com/")
    );
    let log = s.gateway.store.audit_log(partner, 5).await.unwrap();
    assert_eq!(log[0].action, AuditAction::ProgramChanged);
    assert_eq!(log[0].actor.name, "owner@lotos.ru");
    let page = owner.get("/reminders?saved=1").await;
    assert!(page.body.contains(r#"id="saved""#));
    assert!(page.body.contains("Напоминания и предложения включены"));

    // The preview: Вера is due and would be sent; nothing is recorded.
    let page = owner.post("/reminders/preview", &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let table = &page.body[page.body.find(r#"id="preview-table""#).expect("preview")..];
    let row = &table[table.find("Вера").expect("Вера in the preview")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("+7******2222"), "{row}");
    assert!(row.contains("<td>inactive</td>"), "{row}");
    assert!(row.contains("<td>send</td>"), "{row}");
    assert!(s.gateway.store.sends(partner, 10).await.unwrap().is_empty());

    // A scan (what `serve` runs every hour) records it; the page lists it.
    cli::engage_run(&s.gateway.store, s.a).await.unwrap();
    let page = owner.get("/reminders").await;
    let sends = &page.body[page.body.find(r#"id="sends""#).expect("sends")..];
    assert!(sends.contains("Вера · +7******2222"), "{sends}");
    assert!(sends.contains("<td>inactive</td>"), "{sends}");
    assert!(page.body.contains(r#"id="last-scan""#), "the scan's time");
    assert!(
        page.body.contains("<li>inactive: send 1</li>"),
        "{}",
        page.body
    );

    // The admin sees it without the settings; the viewer is refused.
    let mut desk = s.web("desk@lotos.ru").await;
    let page = desk.get("/reminders").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains(r#"id="reminders-form""#));
    assert!(page.body.contains("Вера"));
    assert_eq!(
        desk.post("/reminders/settings", &form).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        desk.post("/reminders/preview", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    let mut eyes = s.web("eyes@lotos.ru").await;
    assert_eq!(eyes.get("/reminders").await.status, StatusCode::FORBIDDEN);
    // Роза's owner sees Роза's (empty) page, never Лотос's.
    let mut roza = s.web("owner@roza.ru").await;
    let page = roza.get("/reminders").await;
    assert!(!page.body.contains("Вера"), "another salon's sends");

    // Basic: refused, the plan named; the form is refused by the server too.
    s.gateway
        .store
        .set_plan(
            partner,
            Plan::Basic,
            &loyalty_core::audit::Actor::system(),
            now,
        )
        .await
        .unwrap();
    let page = owner.get("/reminders").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("Pro"));
    form[0] = ("on", "1");
    assert_eq!(
        owner.post("/reminders/settings", &form).await.status,
        StatusCode::FORBIDDEN
    );
    s.finish().await;
}
