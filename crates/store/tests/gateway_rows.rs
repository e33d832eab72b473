//! The rows the gateway and the bot keep beside the ledger, on SQLite and PostgreSQL: Telegram
//! chats and their links to clients, connection settings, rejected deliveries, retention.

mod common;

use common::{T0, TestDb, five_percent, salon};
use loyalty_core::ChatStore;
use loyalty_core::PartnerStore;
use loyalty_core::RewardStore;
use loyalty_core::event::ClientRef;
use loyalty_core::outbox::Notification;
use loyalty_core::{Clock, Phone, Points, TelegramChat, VisitStatus};
use loyalty_store::{ConnectionSettings, REJECTED_KEPT, RejectedDelivery};

fn phone(s: &str) -> Phone {
    Phone::parse_international(s).expect("phone")
}

fn came(
    conn: &loyalty_core::CrmConnection,
    record: &str,
    client_phone: &str,
) -> loyalty_core::CrmEvent {
    let client = ClientRef {
        name: Some("Анна".into()),
        ..common::by_phone(client_phone)
    };
    common::visit(conn, record, 1, VisitStatus::Came, 400_000, Some(client))
}

async fn a_chat_links_to_its_phone_at_every_salon_and_later_clients_follow(db: &TestDb) {
    let store = db.dyn_store();
    let (engine, _clock) = db.engine();
    let (a, conn_a) = salon(store.as_ref(), five_percent()).await;
    let (b, conn_b) = salon(store.as_ref(), five_percent()).await;
    let anna = "+79161234567";
    engine
        .apply_event(&conn_a, &came(&conn_a, "1", anna))
        .await
        .unwrap();
    engine
        .apply_event(&conn_a, &came(&conn_a, "2", "+79990000000"))
        .await
        .unwrap();

    // Before linking nobody is told anything.
    assert!(store.outbox_of(a.id).await.unwrap().is_empty());

    store
        .save_telegram_chat(
            &TelegramChat {
                chat_id: 555,
                phone: Some(phone(anna)),
                language: "ru".into(),
                active: true,
                joined_partner: None,
                referred_by: None,
            },
            T0,
        )
        .await
        .unwrap();
    let linked = store.link_chat(&phone(anna), 555).await.unwrap();
    assert_eq!(linked.len(), 1, "only salon A knows Anna yet");
    assert_eq!(linked[0].partner_id, a.id);
    assert_eq!(linked[0].telegram_chat_id, Some(555));

    // Salon B sees Anna for the first time after she linked: her new client card is linked at
    // once and she is told about the visit.
    engine
        .apply_event(&conn_b, &came(&conn_b, "1", anna))
        .await
        .unwrap();
    let at_b = store
        .client_by_phone(b.id, &phone(anna))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(at_b.telegram_chat_id, Some(555));
    let told = store.outbox_of(b.id).await.unwrap();
    assert_eq!(told.len(), 1);
    assert!(matches!(
        told[0].notification,
        Notification::Accrued {
            points: Points(200),
            ..
        }
    ));

    let of_chat = store.clients_of_chat(555).await.unwrap();
    assert_eq!(
        of_chat.iter().map(|c| c.partner_id).collect::<Vec<_>>(),
        vec![a.id, b.id]
    );
    assert_eq!(
        store.client(b.id, at_b.id).await.unwrap(),
        Some(at_b.clone())
    );
    assert_eq!(
        store.client(a.id, at_b.id).await.unwrap(),
        None,
        "scoped by partner"
    );

    // The chat shares another phone: the old links go, the new one comes.
    let other = "+79990000000";
    let relinked = store.link_chat(&phone(other), 555).await.unwrap();
    assert_eq!(relinked.len(), 1);
    assert_eq!(relinked[0].phone, phone(other));
    assert_eq!(store.clients_of_chat(555).await.unwrap(), relinked);

    // Blocking the bot is remembered per chat.
    let mut chat = store.telegram_chat(555).await.unwrap().unwrap();
    assert!(chat.active);
    chat.active = false;
    chat.language = "en".into();
    store.save_telegram_chat(&chat, T0 + 1).await.unwrap();
    assert_eq!(store.telegram_chat(555).await.unwrap(), Some(chat));
    assert_eq!(store.telegram_chat(556).await.unwrap(), None);
}

async fn connection_settings_round_trip_and_hide_tokens(db: &TestDb) {
    let store = &db.store;
    let (_p, conn) = salon(store.as_ref(), five_percent()).await;
    assert_eq!(store.connection_settings(conn.id).await.unwrap(), None);
    let settings = ConnectionSettings {
        partner_token: Some("partner-secret".into()),
        user_token: None,
        utc_offset_minutes: 300,
        reward_setup: None,
        country: None,
        create_clients: false,
        crm_credentials: None,
    };
    store
        .save_connection_settings(conn.id, &settings)
        .await
        .unwrap();
    assert_eq!(
        store.connection_settings(conn.id).await.unwrap(),
        Some(settings.clone())
    );
    let updated = ConnectionSettings {
        user_token: Some("user-secret".into()),
        reward_setup: Some(r#"{"strategy":"loyalty_card"}"#.into()),
        country: Some(loyalty_core::Country::parse("KZ").unwrap()),
        create_clients: true,
        crm_credentials: Some(r#"{"email":"a@b.c","password":"pw-secret"}"#.into()),
        ..settings
    };
    store
        .save_connection_settings(conn.id, &updated)
        .await
        .unwrap();
    assert_eq!(
        store.connection_settings(conn.id).await.unwrap(),
        Some(updated.clone())
    );
    let shown = format!("{updated:?}");
    assert!(!shown.contains("secret"), "{shown}");
    assert_eq!(store.connections().await.unwrap(), vec![conn.clone()]);

    // Tokens: a save names the version it read; of two saves from one read, one wins, and the
    // settings' own save leaves the tokens alone.
    let none = store.crm_tokens(conn.id).await.unwrap();
    assert_eq!((none.json.as_deref(), none.version), (None, 0));
    assert!(
        store
            .swap_crm_tokens(conn.id, 0, r#"{"access":"a1-secret"}"#)
            .await
            .unwrap()
    );
    assert!(
        !store
            .swap_crm_tokens(conn.id, 0, r#"{"access":"a2"}"#)
            .await
            .unwrap()
    );
    store
        .save_connection_settings(conn.id, &updated)
        .await
        .unwrap();
    let now = store.crm_tokens(conn.id).await.unwrap();
    assert_eq!(
        (now.json.as_deref(), now.version),
        (Some(r#"{"access":"a1-secret"}"#), 1)
    );
    assert!(!format!("{now:?}").contains("secret"));
    assert!(
        store
            .swap_crm_tokens(conn.id, 1, r#"{"access":"a3"}"#)
            .await
            .unwrap()
    );
    assert_eq!(store.crm_tokens(conn.id).await.unwrap().version, 2);
}

async fn rejected_deliveries_keep_the_newest(db: &TestDb) {
    let store = &db.store;
    let (p, conn) = salon(store.as_ref(), five_percent()).await;
    let total = REJECTED_KEPT + 5;
    for i in 0..total {
        store
            .record_rejected(&RejectedDelivery {
                partner_id: p.id,
                connection_id: conn.id,
                crm: "yclients".into(),
                http_status: 400,
                reason: format!("bad {i}"),
                content_type: Some("application/json".into()),
                body_bytes: 3,
                body_excerpt: "{x}".into(),
                received_at_ms: T0 + i,
            })
            .await
            .unwrap();
    }
    let kept = store.rejected_deliveries(u32::MAX).await.unwrap();
    assert_eq!(kept.len() as i64, REJECTED_KEPT);
    assert_eq!(kept[0].reason, format!("bad {}", total - 1), "newest first");
    assert_eq!(kept.last().unwrap().reason, "bad 5", "the oldest five went");
}

async fn old_deliveries_are_pruned_and_outbox_gauges_count(db: &TestDb) {
    let store = db.dyn_store();
    let (engine, clock) = db.engine();
    let (p, conn) = salon(store.as_ref(), five_percent()).await;
    engine
        .apply_event(&conn, &came(&conn, "1", "+79161234567"))
        .await
        .unwrap();
    clock.advance_ms(10_000);
    engine
        .apply_event(&conn, &came(&conn, "2", "+79161234567"))
        .await
        .unwrap();
    assert_eq!(store.recent_deliveries(p.id, 10).await.unwrap().len(), 2);
    let pruned = db.store.prune_deliveries(T0 + 5_000).await.unwrap();
    assert_eq!(pruned, 1);
    assert_eq!(store.recent_deliveries(p.id, 10).await.unwrap().len(), 1);

    assert_eq!(
        store.outbox_stats().await.unwrap().pending,
        0,
        "no linked chat, no messages"
    );
    let client = store
        .client_by_phone(p.id, &phone("+79161234567"))
        .await
        .unwrap()
        .unwrap();
    store
        .set_telegram_chat(p.id, client.id, Some(42))
        .await
        .unwrap();
    engine
        .apply_event(&conn, &came(&conn, "3", "+79161234567"))
        .await
        .unwrap();
    let stats = store.outbox_stats().await.unwrap();
    assert_eq!(stats.pending, 1);
    assert_eq!(stats.dead, 0);
    assert_eq!(stats.oldest_pending_created_ms, Some(clock.now_ms()));
}

async fn the_rewards_catalog_is_per_partner_and_removal_keeps_the_row(db: &TestDb) {
    use loyalty_core::{NewReward, RewardKind};
    let store = db.dyn_store();
    let (a, _) = salon(store.as_ref(), five_percent()).await;
    let (b, _) = salon(store.as_ref(), five_percent()).await;
    let certificate = NewReward {
        title: "Сертификат 500 ₽".into(),
        cost: Points(500),
        kind: RewardKind::Certificate {
            value_minor: 50_000,
        },
    };
    let service = NewReward {
        title: "Маникюр".into(),
        cost: Points(1_200),
        kind: RewardKind::Service {
            service_id: "8401".into(),
            price_minor: 120_000,
        },
    };
    let r1 = store.create_reward(a.id, &certificate, T0).await.unwrap();
    let r2 = store.create_reward(a.id, &service, T0).await.unwrap();
    assert_eq!(
        (r1.title.as_str(), r1.cost, r1.active),
        ("Сертификат 500 ₽", Points(500), true)
    );
    assert_eq!(r2.kind, service.kind);
    assert_eq!(
        store.rewards(a.id, false).await.unwrap(),
        vec![r1.clone(), r2.clone()]
    );
    assert!(
        store.rewards(b.id, false).await.unwrap().is_empty(),
        "scoped by partner"
    );
    assert_eq!(store.reward(b.id, r1.id).await.unwrap(), None);
    assert!(
        !store.remove_reward(b.id, r1.id).await.unwrap(),
        "not B's to remove"
    );

    assert!(store.remove_reward(a.id, r1.id).await.unwrap());
    assert!(
        !store.remove_reward(a.id, r1.id).await.unwrap(),
        "already removed"
    );
    assert_eq!(store.rewards(a.id, false).await.unwrap(), vec![r2.clone()]);
    let all = store.rewards(a.id, true).await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(!all[0].active);
    assert_eq!(
        store.reward(a.id, r1.id).await.unwrap().map(|r| r.active),
        Some(false)
    );
}

async fn staff_chats_are_per_partner_and_added_once(db: &TestDb) {
    let store = &db.store;
    let (a, _) = salon(store.as_ref(), five_percent()).await;
    let (b, _) = salon(store.as_ref(), five_percent()).await;
    assert!(store.staff_partners(700).await.unwrap().is_empty());
    store.add_staff_chat(b.id, 700, 1).await.unwrap();
    store.add_staff_chat(a.id, 700, 2).await.unwrap();
    store.add_staff_chat(a.id, 700, 3).await.unwrap();
    store.add_staff_chat(a.id, 701, 4).await.unwrap();
    let mut want = vec![a.id, b.id];
    want.sort();
    assert_eq!(store.staff_partners(700).await.unwrap(), want);
    assert_eq!(store.staff_partners(701).await.unwrap(), vec![a.id]);
}

async fn a_partners_reward_setup_is_its_own(db: &TestDb) {
    use loyalty_core::model::NewConnection;
    use loyalty_core::{ConnectionId, CrmKind};
    let store = &db.store;
    let (a, a_plain) = salon(store.as_ref(), five_percent()).await;
    let (b, b_conn) = salon(store.as_ref(), five_percent()).await;
    let (c, _) = salon(store.as_ref(), five_percent()).await;
    let a_cards = store
        .create_connection(
            &NewConnection {
                partner_id: a.id,
                kind: CrmKind::Altegio,
                company_id: "77".into(),
                credentials_ref: "test".into(),
                webhook_secret: format!("second-{}", a.id),
            },
            1,
        )
        .await
        .unwrap();
    let with = |setup: Option<&str>| ConnectionSettings {
        partner_token: Some("p".into()),
        user_token: Some("u".into()),
        utc_offset_minutes: 0,
        reward_setup: setup.map(str::to_owned),
        country: None,
        create_clients: false,
        crm_credentials: None,
    };
    store
        .save_connection_settings(a_plain.id, &with(None))
        .await
        .unwrap();
    store
        .save_connection_settings(a_cards.id, &with(Some("{\"a\":1}")))
        .await
        .unwrap();
    store
        .save_connection_settings(b_conn.id, &with(Some("{\"b\":2}")))
        .await
        .unwrap();
    assert_eq!(
        store.reward_setup_of(a.id).await.unwrap(),
        Some((a_cards.id, "{\"a\":1}".to_owned()))
    );
    assert_eq!(
        store.reward_setup_of(b.id).await.unwrap(),
        Some((b_conn.id, "{\"b\":2}".to_owned()))
    );
    assert_eq!(store.reward_setup_of(c.id).await.unwrap(), None);
    assert_eq!(store.connection(a_cards.id).await.unwrap(), Some(a_cards));
    assert_eq!(
        store.connection(ConnectionId(i64::MAX)).await.unwrap(),
        None
    );
}

fn crm_service(id: &str, title: &str, min: i64, max: i64) -> loyalty_core::adapter::CrmService {
    use loyalty_core::{Currency, Money};
    loyalty_core::adapter::CrmService {
        external_id: id.into(),
        title: title.into(),
        category_id: Some("4".into()),
        price_min: Some(Money::new(min, Currency::Rub).unwrap()),
        price_max: Some(Money::new(max, Currency::Rub).unwrap()),
    }
}

async fn the_service_list_syncs_keeps_choices_and_stops_rewards_of_gone_services(db: &TestDb) {
    use loyalty_core::{NewReward, RewardKind};
    let store = &db.store;
    let (a, conn) = salon(store.as_ref(), five_percent()).await;
    let (b, b_conn) = salon(store.as_ref(), five_percent()).await;
    let shave = crm_service("79067", "Бритье головы", 100_000, 100_000);
    let cut = crm_service("83169", "Мужская стрижка", 130_000, 130_000);
    let color = crm_service("90001", "Окрашивание", 300_000, 600_000);
    let first = store
        .sync_services(
            &conn,
            &[shave.clone(), cut.clone(), color.clone(), cut.clone()],
            T0,
        )
        .await
        .unwrap();
    assert_eq!(
        (first.listed, first.added, first.changed, first.gone),
        (3, 3, 0, 0)
    );
    // The other salon lists the same id: its own row.
    store
        .sync_services(&b_conn, std::slice::from_ref(&shave), T0)
        .await
        .unwrap();
    let listed = store.services(conn.id, false).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|s| s.service_id.as_str()).collect();
    assert_eq!(ids, ["79067", "83169", "90001"]);
    assert!(listed.iter().all(|s| s.buyable() && s.synced_at_ms == T0));
    assert_eq!(listed[0].price_minor(), Some(100_000));
    assert_eq!(listed[2].price_minor(), None, "a range has no single price");

    // Service rewards for the cut and the shave; a certificate is never touched.
    let reward = |title: &str, kind: RewardKind| NewReward {
        title: title.into(),
        cost: Points(100),
        kind,
    };
    let service = |id: &str| RewardKind::Service {
        service_id: id.into(),
        price_minor: 100_000,
    };
    let cut_reward = store
        .create_reward(a.id, &reward("Стрижка", service("83169")), T0)
        .await
        .unwrap();
    let shave_reward = store
        .create_reward(a.id, &reward("Бритье", service("79067")), T0)
        .await
        .unwrap();
    let b_shave = store
        .create_reward(b.id, &reward("Бритье", service("79067")), T0)
        .await
        .unwrap();
    store
        .create_reward(
            a.id,
            &reward(
                "500 ₽",
                RewardKind::Certificate {
                    value_minor: 50_000,
                },
            ),
            T0,
        )
        .await
        .unwrap();

    // The partner keeps the shave out of rewards: its reward leaves, b's stays.
    assert_eq!(
        store
            .set_service_redeemable(a.id, "79067", false)
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        store
            .set_service_redeemable(a.id, "nope", false)
            .await
            .unwrap(),
        None
    );
    let active = |p| async move {
        let rewards = store.rewards(p, false).await.unwrap();
        rewards.into_iter().map(|r| r.id).collect::<Vec<_>>()
    };
    assert!(!active(a.id).await.contains(&shave_reward.id));
    assert_eq!(active(b.id).await, [b_shave.id]);

    // The cut is renamed and the colour is gone from the CRM: the cut's reward stays, the
    // partner's choice about the shave survives the sync.
    let renamed = crm_service("83169", "Стрижка", 130_000, 130_000);
    let second = store
        .sync_services(&conn, &[shave.clone(), renamed], T0 + 1)
        .await
        .unwrap();
    assert_eq!(
        (
            second.listed,
            second.added,
            second.changed,
            second.gone,
            second.rewards_stopped
        ),
        (2, 0, 1, 1, 0)
    );
    let all = store.services(conn.id, true).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(
        all.iter().all(|s| s.synced_at_ms == T0 + 1),
        "unchanged, changed and gone alike were seen by this sync: {all:?}"
    );
    assert!(
        !all[0].redeemable && all[0].in_crm,
        "the shave: kept out, still listed"
    );
    assert_eq!(all[1].title, "Стрижка");
    assert!(!all[2].in_crm, "the colour is gone");
    assert_eq!(store.services(conn.id, false).await.unwrap().len(), 2);
    assert!(active(a.id).await.contains(&cut_reward.id));

    // The cut goes too: its reward leaves the catalog. Allowing the shave again does not bring
    // a removed reward back (the partner adds it again).
    let third = store
        .sync_services(&conn, std::slice::from_ref(&shave), T0 + 2)
        .await
        .unwrap();
    assert_eq!((third.gone, third.rewards_stopped), (1, 1));
    // The same list again changes nothing but the time it was seen.
    let same = store
        .sync_services(&conn, std::slice::from_ref(&shave), T0 + 3)
        .await
        .unwrap();
    assert_eq!(
        same,
        loyalty_store::ServiceSync {
            listed: 1,
            ..Default::default()
        }
    );
    assert_eq!(
        store
            .service_of(a.id, "79067")
            .await
            .unwrap()
            .unwrap()
            .synced_at_ms,
        T0 + 3
    );
    assert!(!active(a.id).await.contains(&cut_reward.id));
    assert_eq!(
        store
            .set_service_redeemable(a.id, "79067", true)
            .await
            .unwrap(),
        Some(0)
    );
    assert!(
        store
            .service_of(a.id, "79067")
            .await
            .unwrap()
            .unwrap()
            .buyable()
    );
    assert!(
        !store
            .service_of(a.id, "83169")
            .await
            .unwrap()
            .unwrap()
            .buyable()
    );
    assert_eq!(store.service_of(a.id, "00000").await.unwrap(), None);
    assert_eq!(active(b.id).await, [b_shave.id]);
}

async fn directories_sync_per_connection_and_kind_and_keep_gone_names(db: &TestDb) {
    use loyalty_core::adapter::CrmNamed;
    let store = &db.store;
    let (_, conn) = salon(store.as_ref(), five_percent()).await;
    let (_, other) = salon(store.as_ref(), five_percent()).await;
    let named = |id: &str, name: &str| CrmNamed {
        external_id: id.into(),
        name: name.into(),
    };
    let first = store
        .sync_directory(
            &conn,
            "staff",
            &[named("1", "Анна"), named("2", "Мария")],
            T0,
        )
        .await
        .unwrap();
    assert_eq!(
        (first.listed, first.added, first.renamed, first.gone),
        (2, 2, 0, 0)
    );
    // The same id under another kind or connection is another entry.
    store
        .sync_directory(&conn, "good", &[named("1", "Шампунь")], T0)
        .await
        .unwrap();
    store
        .sync_directory(&other, "staff", &[named("1", "Ольга")], T0)
        .await
        .unwrap();
    let again = store
        .sync_directory(
            &conn,
            "staff",
            &[named("1", "Анна Петрова"), named("3", "Ира")],
            T0 + 1,
        )
        .await
        .unwrap();
    assert_eq!(
        (again.listed, again.added, again.renamed, again.gone),
        (2, 1, 1, 1)
    );
    let same = store
        .sync_directory(
            &conn,
            "staff",
            &[named("1", "Анна Петрова"), named("3", "Ира")],
            T0 + 2,
        )
        .await
        .unwrap();
    assert_eq!((same.added, same.renamed, same.gone), (0, 0, 0));
    // Мария comes back: counted as changed, listed again.
    let back = store
        .sync_directory(
            &conn,
            "staff",
            &[
                named("1", "Анна Петрова"),
                named("2", "Мария"),
                named("3", "Ира"),
            ],
            T0 + 3,
        )
        .await
        .unwrap();
    assert_eq!((back.added, back.renamed, back.gone), (0, 1, 0));
    let staff: Vec<(String, String, bool)> = store
        .directory(conn.id, "staff")
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.item_id, d.name, d.in_crm))
        .collect();
    assert_eq!(
        staff,
        [
            ("1".into(), "Анна Петрова".into(), true),
            ("3".into(), "Ира".into(), true),
            ("2".into(), "Мария".into(), true),
        ]
    );
    store
        .sync_directory(&conn, "staff", &[], T0 + 4)
        .await
        .unwrap();
    assert!(
        store
            .directory(conn.id, "staff")
            .await
            .unwrap()
            .iter()
            .all(|d| !d.in_crm)
    );
    assert_eq!(store.directory(conn.id, "good").await.unwrap().len(), 1);
    assert_eq!(
        store.directory(other.id, "staff").await.unwrap()[0].name,
        "Ольга"
    );
}

both!(
    directories_sync_per_connection_and_kind_and_keep_gone_names,
    the_service_list_syncs_keeps_choices_and_stops_rewards_of_gone_services,
    a_partners_reward_setup_is_its_own,
    staff_chats_are_per_partner_and_added_once,
    the_rewards_catalog_is_per_partner_and_removal_keeps_the_row,
    a_chat_links_to_its_phone_at_every_salon_and_later_clients_follow,
    connection_settings_round_trip_and_hide_tokens,
    rejected_deliveries_keep_the_newest,
    old_deliveries_are_pruned_and_outbox_gauges_count,
);
