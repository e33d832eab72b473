//! ASSUMED (the update envelope, see `fixtures/beautypro/README.md`): Beauty Pro's update
//! deliveries, and the parser's bounded fuzzing.

mod common;

use common::{APPT, CLIENT, raw};
use crm_beautypro::{BeautyProAdapter, BeautyProConfig};
use loyalty_core::event::VisitStatus;
use loyalty_core::{CrmAdapter, CrmEvent, WebhookError};

fn adapter() -> BeautyProAdapter {
    BeautyProAdapter::new(BeautyProConfig::new("123456"))
}

fn parse(file: &str) -> Vec<CrmEvent> {
    adapter()
        .parse_webhook(Some("application/json"), &raw(file))
        .expect("parses")
}

/// A sale or an appointment row names the visit to fetch: a visit is its appointment and all
/// its sales, which no single row holds.
#[test]
fn assumed_sale_and_appointment_rows_name_the_visit_to_fetch() {
    for file in [
        "webhook_sale_insert.json",
        "webhook_sale_update.json",
        "webhook_appointment_cancelled.json",
    ] {
        let events = parse(file);
        let [CrmEvent::Visit(v)] = events.as_slice() else {
            panic!("{file}: {events:?}");
        };
        assert_eq!(
            (v.company_id.as_str(), v.record_id.as_str()),
            ("123456", APPT),
            "{file}"
        );
        assert!(v.needs_refetch, "{file}");
    }
    let events = parse("webhook_appointment_deleted.json");
    let [CrmEvent::Visit(v)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!((v.status, v.needs_refetch), (VisitStatus::Deleted, false));
}

#[test]
fn assumed_a_sale_at_the_desk_is_whole_and_a_client_row_is_a_card() {
    let events = parse("webhook_desk_sale.json");
    let [CrmEvent::Visit(v)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(v.record_id, "sale:0b1e7c2a-0000-4000-8000-000000000009");
    assert_eq!(
        (v.status, v.paid_minor(), v.needs_refetch),
        (VisitStatus::Came, 99_000, false)
    );
    let events = parse("webhook_client_update.json");
    let [CrmEvent::Client(c)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(c.external_id, CLIENT);
    assert_eq!(c.phone.as_ref().map(|p| p.as_str()), Some("+79161234567"));
}

#[test]
fn bad_deliveries_are_refused_with_why() {
    let a = adapter();
    let refuse = |body: &str| a.parse_webhook(Some("application/json"), body.as_bytes());
    assert!(matches!(refuse(""), Err(WebhookError::Malformed(_))));
    assert!(matches!(
        refuse("{\"table\": "),
        Err(WebhookError::Malformed(_))
    ));
    let unknown = refuse(
        r#"{"update_id": 1, "table": "halls", "operation": "insert", "id": "3f6a2c1e-8b4d-4e2a-9c7f-1d2e3f4a5b6c"}"#,
    );
    assert!(
        matches!(&unknown, Err(WebhookError::Shape(why)) if why.contains("halls")),
        "{unknown:?}"
    );
    let op = refuse(
        r#"{"table": "sales", "operation": "merge", "id": "3f6a2c1e-8b4d-4e2a-9c7f-1d2e3f4a5b6c"}"#,
    );
    assert!(matches!(op, Err(WebhookError::Shape(_))));
    let other = refuse(r#"{"database": "654321", "table": "appointments", "operation": "delete", "id": "3f6a2c1e-8b4d-4e2a-9c7f-1d2e3f4a5b6c"}"#).unwrap();
    assert_eq!(
        other[0].company_id(),
        "654321",
        "the engine refuses another database"
    );
    let form = a.parse_webhook(Some("text/plain"), b"x");
    assert!(matches!(form, Err(WebhookError::ContentType(_))));
}

#[test]
fn the_webhook_parser_never_panics() {
    let fixtures = crm_conformance::fuzz::fixtures(&["beautypro"]);
    assert!(fixtures.len() >= 20, "fixtures missing");
    let a = adapter();
    crm_conformance::fuzz::never_panics(
        &fixtures,
        &|body| a.parse_webhook(Some("application/json"), body),
        3_000,
    );
}
