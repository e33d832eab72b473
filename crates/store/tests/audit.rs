//! The audit log and plans on both backends: written in the transaction it records (a replayed
//! key logs nothing, a refused debit logs nothing), append-only, newest first; a plan change is
//! logged with its actor.

mod common;

use common::{TestDb, five_percent, salon};
use loyalty_core::audit::{Actor, AuditAction, AuditStore, Plan};
use loyalty_core::{LoyaltyEngine, PartnerStore, Phone, Points};

async fn client(engine: &LoyaltyEngine, partner: loyalty_core::PartnerId) -> loyalty_core::Client {
    engine
        .enroll(
            partner,
            &Phone::parse_international("+79161234567").expect("phone"),
            Some("Анна"),
        )
        .await
        .expect("enroll")
}

async fn manual_work_is_logged_once_with_its_actor(db: &TestDb) {
    let (engine, _) = db.engine();
    let (partner, _) = salon(db.store.as_ref(), five_percent()).await;
    let anna = engine.acting_as(Actor::new("anna", "cli"));
    let c = client(&engine, partner.id).await;
    anna.manual_accrual(partner.id, c.id, Points(300), "подарок", "k1")
        .await
        .expect("accrue");
    // The same key again is the same posting: nothing new to log.
    anna.manual_accrual(partner.id, c.id, Points(300), "подарок", "k1")
        .await
        .expect("replay");
    // A debit over the balance is refused: nothing happened, nothing is logged.
    assert!(
        anna.manual_debit(partner.id, c.id, Points(1_000), "много", "k2")
            .await
            .is_err()
    );
    engine
        .manual_debit(partner.id, c.id, Points(100), "оплата", "k3")
        .await
        .expect("debit");
    let log = db.store.audit_log(partner.id, 10).await.expect("log");
    let seen: Vec<(AuditAction, &str, &str)> = log
        .iter()
        .map(|e| (e.action, e.actor.name.as_str(), e.actor.via.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (AuditAction::ManualDebit, "system", "engine"),
            (AuditAction::ManualAccrual, "anna", "cli"),
        ]
    );
    assert_eq!(log[1].detail["points"], serde_json::json!(300));
    assert_eq!(log[1].detail["reason"], serde_json::json!("подарок"));
}

async fn the_log_cannot_be_updated_or_deleted(db: &TestDb) {
    let (partner, _) = salon(db.store.as_ref(), five_percent()).await;
    let before = db
        .store
        .set_plan(partner.id, Plan::Basic, &Actor::new("owner", "cli"), 1)
        .await
        .expect("plan");
    assert_eq!(before, Plan::Pro);
    let read = db
        .store
        .partner(partner.id)
        .await
        .expect("read")
        .expect("partner");
    assert_eq!(read.plan, Plan::Basic);
    let pool = db.store.pool();
    let update = sqlx::query("UPDATE audit_log SET actor = 'nobody' WHERE partner_id = $1")
        .bind(partner.id.0)
        .execute(pool)
        .await;
    assert!(update.is_err(), "UPDATE must be refused");
    let delete = sqlx::query("DELETE FROM audit_log WHERE partner_id = $1")
        .bind(partner.id.0)
        .execute(pool)
        .await;
    assert!(delete.is_err(), "DELETE must be refused");
    let log = db.store.audit_log(partner.id, 10).await.expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].action, AuditAction::PlanChanged);
    assert_eq!(log[0].actor.name, "owner");
}

both!(
    manual_work_is_logged_once_with_its_actor,
    the_log_cannot_be_updated_or_deleted,
);
