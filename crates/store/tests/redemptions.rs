//! Exchanging points for rewards, on SQLite and PostgreSQL: the hold, the code's life, races.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{TestDb, five_percent, salon};
use loyalty_core::code::Code;
use loyalty_core::engine::Resolution;
use loyalty_core::redemption::{RedemptionStatus, Strategy, Target};
use loyalty_core::{
    ClientId, CrmConnection, EngineError, LoyaltyEngine, NewReward, PartnerId, Phone, Points,
    Reward, RewardKind, VisitStatus,
};

static DRAWS: AtomicU64 = AtomicU64::new(1);

fn next_code() -> Code {
    let n = DRAWS.fetch_add(1, Ordering::SeqCst) ^ (u64::from(std::process::id()) << 32);
    Code::from_entropy(n.to_le_bytes())
}

const DAY: i64 = 86_400_000;

/// A salon, a client with `paid_rub` × 5 % points, and a certificate reward costing `cost`.
async fn setup(
    db: &TestDb,
    paid_rub: i64,
    cost: i64,
) -> (
    LoyaltyEngine,
    Arc<loyalty_core::ManualClock>,
    PartnerId,
    ClientId,
    Reward,
    CrmConnection,
) {
    let store = db.dyn_store();
    let (engine, clock) = db.engine();
    let (partner, conn) = salon(store.as_ref(), five_percent()).await;
    let client = common::by_phone("+79161234567");
    let visit = common::visit(
        &conn,
        "1",
        1,
        VisitStatus::Came,
        paid_rub * 100,
        Some(client),
    );
    engine.apply_event(&conn, &visit).await.unwrap();
    let id = store
        .client_by_phone(
            partner.id,
            &Phone::parse_international("+79161234567").unwrap(),
        )
        .await
        .unwrap()
        .unwrap()
        .id;
    let reward = store
        .create_reward(
            partner.id,
            &NewReward {
                title: "Сертификат".into(),
                cost: Points(cost),
                kind: RewardKind::Certificate {
                    value_minor: cost * 100,
                },
            },
            common::T0,
        )
        .await
        .unwrap();
    (engine, clock, partner.id, id, reward, conn)
}

async fn a_redemption_holds_at_once_and_the_code_is_used_once(db: &TestDb) {
    let (engine, _clock, partner, client, reward, _) = setup(db, 10_000, 300).await;
    let store = db.dyn_store();
    assert_eq!(store.balance(partner, client).await.unwrap(), Points(500));

    let r = engine
        .redeem(
            partner,
            client,
            &reward,
            "tg:1",
            Target::GATEWAY,
            &next_code,
        )
        .await
        .unwrap();
    assert_eq!(r.status, RedemptionStatus::Issued);
    assert_eq!(
        store.balance(partner, client).await.unwrap(),
        Points(200),
        "held at once"
    );
    // The same request again is the same redemption, not a second one.
    let again = engine
        .redeem(
            partner,
            client,
            &reward,
            "tg:1",
            Target::GATEWAY,
            &next_code,
        )
        .await
        .unwrap();
    assert_eq!(again, r);
    assert_eq!(
        store.redemptions_of(partner, client).await.unwrap(),
        vec![r.clone()]
    );
    // Not enough left for another.
    let err = engine
        .redeem(
            partner,
            client,
            &reward,
            "tg:2",
            Target::GATEWAY,
            &next_code,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::InsufficientBalance { .. }),
        "{err}"
    );

    // Typed at the desk in any form, used once.
    let typed = Code::parse(&r.code.to_string().to_lowercase()).unwrap();
    let used = engine.use_code(&typed).await.unwrap();
    assert_eq!(used.status, RedemptionStatus::Used);
    let err = engine.use_code(&typed).await.unwrap_err();
    assert!(
        matches!(err, EngineError::CodeNotUsable { status: "used", .. }),
        "{err}"
    );
    assert!(matches!(
        engine.cancel_code(&typed).await.unwrap_err(),
        EngineError::CodeNotUsable { status: "used", .. }
    ));
    assert_eq!(store.balance(partner, client).await.unwrap(), Points(200));
    let totals = store.account_totals(partner).await.unwrap();
    assert!(totals.is_balanced(), "{totals:?}");
    assert_eq!(
        store
            .hold(partner, r.hold_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        loyalty_core::store::HoldStatus::Posted
    );

    let unknown = next_code();
    assert!(matches!(
        engine.use_code(&unknown).await.unwrap_err(),
        EngineError::UnknownCode(_)
    ));
}

async fn cancelled_and_expired_codes_give_the_points_back(db: &TestDb) {
    let (engine, clock, partner, client, reward, conn) = setup(db, 10_000, 100).await;
    let store = db.dyn_store();
    let a = engine
        .redeem(partner, client, &reward, "a", Target::GATEWAY, &next_code)
        .await
        .unwrap();
    let b = engine
        .redeem(partner, client, &reward, "b", Target::GATEWAY, &next_code)
        .await
        .unwrap();
    assert_eq!(store.balance(partner, client).await.unwrap(), Points(300));
    assert_eq!(
        engine.cancel_code(&a.code).await.unwrap().status,
        RedemptionStatus::Cancelled
    );
    assert_eq!(store.balance(partner, client).await.unwrap(), Points(400));
    // Past its date (90 days by default) a code is expired when presented, and its points
    // come back instead of being spent.
    clock.advance_ms(91 * DAY);
    let late = engine.use_code(&b.code).await.unwrap();
    assert_eq!(late.status, RedemptionStatus::Expired);
    assert_eq!(store.balance(partner, client).await.unwrap(), Points(500));
    assert!(store.account_totals(partner).await.unwrap().is_balanced());
    // The sweep expires what nobody presents.
    let d = engine
        .redeem(
            partner,
            client,
            &reward,
            "sweep",
            Target::GATEWAY,
            &next_code,
        )
        .await
        .unwrap();
    assert_eq!(engine.expire_codes().await.unwrap(), 0, "not due yet");
    clock.advance_ms(91 * DAY);
    assert_eq!(engine.expire_codes().await.unwrap(), 1);
    assert_eq!(
        store
            .redemption_by_code(&d.code)
            .await
            .unwrap()
            .unwrap()
            .status,
        RedemptionStatus::Expired
    );
    assert_eq!(store.balance(partner, client).await.unwrap(), Points(500));
    assert!(matches!(
        engine.use_code(&d.code).await.unwrap_err(),
        EngineError::CodeNotUsable {
            status: "expired",
            ..
        }
    ));
    // A CRM strategy needs the connection to write to; it starts pending, due at once, and
    // the operator saying it was not written returns the points.
    let no_connection = engine
        .redeem(
            partner,
            client,
            &reward,
            "c",
            Target {
                strategy: Strategy::LoyaltyCard,
                connection: None,
            },
            &next_code,
        )
        .await
        .unwrap_err();
    assert!(matches!(
        no_connection,
        EngineError::NoConnection("loyalty_card")
    ));
    let c = engine
        .redeem(
            partner,
            client,
            &reward,
            "c",
            Target::crm(Strategy::LoyaltyCard, conn.id),
            &next_code,
        )
        .await
        .unwrap();
    assert_eq!(c.status, RedemptionStatus::Pending);
    assert_eq!(c.write_back.connection_id, Some(conn.id));
    assert_eq!(c.write_back.next_attempt_at_ms, Some(engine.now_ms()));
    let due = engine
        .store()
        .due_write_backs(engine.now_ms(), 10)
        .await
        .unwrap();
    assert_eq!(due.iter().map(|r| r.id).collect::<Vec<_>>(), vec![c.id]);
    assert!(matches!(
        engine.use_code(&c.code).await.unwrap_err(),
        EngineError::CodeNotUsable {
            status: "pending",
            ..
        }
    ));
    let failed = engine
        .resolve_write_back(&c.code, Resolution::NotWritten)
        .await
        .unwrap();
    assert_eq!(failed.status, RedemptionStatus::Failed);
    assert_eq!(store.balance(partner, client).await.unwrap(), Points(500));
    assert!(
        engine
            .store()
            .due_write_backs(engine.now_ms(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A removed reward cannot be bought.
    assert!(store.remove_reward(partner, reward.id).await.unwrap());
    let removed = store.reward(partner, reward.id).await.unwrap().unwrap();
    let err = engine
        .redeem(partner, client, &removed, "d", Target::GATEWAY, &next_code)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::RewardUnavailable(_)), "{err}");
}

async fn racing_redemptions_and_uses(db: &TestDb) {
    let (engine, _clock, partner, client, reward, _) = setup(db, 10_000, 200).await;
    let store = db.dyn_store();
    // Five redemptions of 200 race for a balance of 500: exactly two succeed.
    let mut tasks = Vec::new();
    for i in 0..5 {
        let (engine, reward) = (engine.clone(), reward.clone());
        tasks.push(tokio::spawn(async move {
            engine
                .redeem(
                    partner,
                    client,
                    &reward,
                    &format!("race:{i}"),
                    Target::GATEWAY,
                    &next_code,
                )
                .await
        }));
    }
    let mut won = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => won.push(r),
            Err(EngineError::InsufficientBalance { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won.len(), 2);
    assert_eq!(store.balance(partner, client).await.unwrap(), Points(100));
    // Ten desks type the same code at once: it is used exactly once.
    let code = won[0].code.clone();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (engine, code) = (engine.clone(), code.clone());
        tasks.push(tokio::spawn(async move { engine.use_code(&code).await }));
    }
    let mut used = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                assert_eq!(r.status, RedemptionStatus::Used);
                used += 1;
            }
            Err(EngineError::CodeNotUsable { status: "used", .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(used, 1);
    let totals = store.account_totals(partner).await.unwrap();
    assert!(totals.is_balanced(), "{totals:?}");
}

/// At the desk a gateway code for a money certificate pays at most the program's share of a
/// bill (half, by default), so the bill is needed and checked; a service reward needs none,
/// and a code past its date is expired whatever the bill.
async fn the_desk_checks_a_certificates_bill_and_only_its(db: &TestDb) {
    // 500 points; a 300 ₽ certificate for 300 of them.
    let (engine, clock, partner, client, certificate, _) = setup(db, 10_000, 300).await;
    let store = db.dyn_store();
    let new_reward = |title: &str, cost, kind| NewReward {
        title: title.into(),
        cost: Points(cost),
        kind,
    };
    let service = store
        .create_reward(
            partner,
            &new_reward(
                "Стрижка",
                100,
                RewardKind::Service {
                    service_id: "83169".into(),
                    price_minor: 250_000,
                },
            ),
            common::T0,
        )
        .await
        .unwrap();
    let small = store
        .create_reward(
            partner,
            &new_reward(
                "Сертификат 100 ₽",
                100,
                RewardKind::Certificate {
                    value_minor: 10_000,
                },
            ),
            common::T0,
        )
        .await
        .unwrap();
    let mut codes = Vec::new();
    for (key, reward) in [("a", &certificate), ("b", &service), ("c", &small)] {
        let r = engine
            .redeem(partner, client, reward, key, Target::GATEWAY, &next_code)
            .await
            .unwrap();
        codes.push(r.code);
    }
    assert_eq!(store.balance(partner, client).await.unwrap(), Points(0));

    let err = engine.use_code_at_desk(&codes[0], None).await.unwrap_err();
    assert_eq!(
        err,
        EngineError::BillNeeded {
            code: codes[0].to_string(),
            value_minor: 30_000,
            min_bill_minor: Some(60_000),
        }
    );
    let err = engine
        .use_code_at_desk(&codes[0], Some(59_999))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::BillTooSmall {
                bill_minor: 59_999,
                min_bill_minor: Some(60_000),
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        engine.use_code_at_desk(&codes[0], Some(-1)).await,
        Err(EngineError::NonPositiveAmount(-1))
    ));
    // Refused three times, the code is as it was and its points still held.
    let r = store.redemption_by_code(&codes[0]).await.unwrap().unwrap();
    assert_eq!(r.status, RedemptionStatus::Issued);
    let used = engine
        .use_code_at_desk(&codes[0], Some(60_000))
        .await
        .unwrap();
    assert_eq!(used.status, RedemptionStatus::Used);

    // The service is the reward itself: no bill.
    let used = engine.use_code_at_desk(&codes[1], None).await.unwrap();
    assert_eq!(used.status, RedemptionStatus::Used);

    // Past its date, the certificate is expired (its points come back), bill or not.
    clock.advance_ms(91 * DAY);
    let expired = engine.use_code_at_desk(&codes[2], None).await.unwrap();
    assert_eq!(expired.status, RedemptionStatus::Expired);
    assert_eq!(store.balance(partner, client).await.unwrap(), Points(100));
    let totals = store.account_totals(partner).await.unwrap();
    assert!(totals.is_balanced(), "{totals:?}");
}

both!(
    a_redemption_holds_at_once_and_the_code_is_used_once,
    the_desk_checks_a_certificates_bill_and_only_its,
    cancelled_and_expired_codes_give_the_points_back,
    racing_redemptions_and_uses,
);
