//! A client's personal data exported and removed on both backends (152-FZ, issue 19): the
//! card anonymised and every link to her gone, the ledger and the books as they were, a second
//! removal refused, her number free for a new client. The search of every table is the
//! gateway's `privacy` test, on PostgreSQL.

mod common;

use common::{TestDb, five_percent, salon};
use loyalty_core::audit::{Actor, AuditStore};
use loyalty_core::{ChatStore, ClientStore, LedgerStore, Phone, Points, StoreError, TelegramChat};

async fn forgotten_and_exported(db: &TestDb) {
    let store = db.store.as_ref();
    let (engine, _) = db.engine();
    let (a, _) = salon(store, five_percent()).await;
    let phone = Phone::parse_international("+79161234500").unwrap();
    let vera = engine.enroll(a.id, &phone, Some("Вера")).await.unwrap();
    engine
        .manual_accrual(a.id, vera.id, Points(70), "gift", "k1")
        .await
        .unwrap();
    let chat = TelegramChat {
        chat_id: 5_550_001,
        phone: Some(phone.clone()),
        language: "ru".into(),
        active: true,
        joined_partner: Some(a.id),
        referred_by: None,
    };
    store.save_telegram_chat(&chat, 0).await.unwrap();
    store.link_chat(&phone, chat.chat_id).await.unwrap();
    let who = Actor::new("operator", "cli");

    let export = store.export_client(a.id, vera.id, &who, 10).await.unwrap();
    assert_eq!(export["client"]["name"], "Вера");
    assert_eq!(export["telegram"]["chat_id"], 5_550_001);
    assert_eq!(export["balance"], 70);
    assert_eq!(export["ledger"].as_array().unwrap().len(), 1);

    let done = store.forget_client(a.id, vera.id, &who, 20).await.unwrap();
    assert_eq!(done.phone, Phone::forgotten(vera.id.0).as_str());
    let card = store.client(a.id, vera.id).await.unwrap().unwrap();
    assert!(card.phone.is_forgotten());
    assert_eq!((card.name, card.telegram_chat_id), (None, None));
    assert_eq!(store.balance(a.id, vera.id).await.unwrap(), Points(70));
    assert!(store.account_totals(a.id).await.unwrap().is_balanced());
    assert!(store.client_by_phone(a.id, &phone).await.unwrap().is_none());
    assert!(store.telegram_chat(chat.chat_id).await.unwrap().is_none());
    assert!(matches!(
        store.forget_client(a.id, vera.id, &who, 30).await,
        Err(StoreError::NotFound(_))
    ));
    let log = store.audit_log(a.id, 5).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(&actions[..2], ["client_forgotten", "client_exported"]);
    // Her number is anyone's again: a new client.
    let again = engine.enroll(a.id, &phone, None).await.unwrap();
    assert_ne!(again.id, vera.id);
}

both!(forgotten_and_exported);
