//! Arnica webhooks from `fixtures/arnica` (shapes and sources in its README), and the parser's
//! bounded fuzzing.

mod common;

use common::raw;
use crm_arnica::{ArnicaAdapter, ArnicaConfig};
use loyalty_core::event::{LineKind, VisitStatus};
use loyalty_core::{CrmAdapter, CrmEvent, Phone, WebhookError};

fn parse(file: &str) -> Vec<CrmEvent> {
    adapter()
        .parse_webhook(Some("application/json"), &raw(file))
        .expect("parses")
}

fn adapter() -> ArnicaAdapter {
    ArnicaAdapter::new(ArnicaConfig::new("7781"))
}

#[test]
fn a_visit_that_came_pays_its_services_and_goods_exactly_and_no_certificate() {
    let events = parse("webhook_visit_came.json");
    let [CrmEvent::Visit(v)] = events.as_slice() else {
        panic!("one visit");
    };
    assert_eq!(v.company_id, "7781");
    assert_eq!(v.record_id, "90817");
    assert_eq!(v.status, VisitStatus::Came);
    assert!(!v.needs_refetch);
    // 2,500.00 + 1,200 (a number) + 950.50 for the shampoo; the 3,000 certificate earns nothing.
    assert_eq!(v.paid_minor(), 465_050);
    let kinds: Vec<_> = v
        .lines
        .iter()
        .map(|l| (l.item_id.as_str(), l.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("519", LineKind::Service),
            ("533", LineKind::Service),
            ("71", LineKind::Good)
        ]
    );
    let client = v.client.as_ref().expect("client");
    assert_eq!(client.external_id.as_deref(), Some("4471"));
    assert_eq!(
        client.phone,
        Some(Phone::parse_international("+79161234567").unwrap())
    );
    assert_eq!(v.staff_id.as_deref(), Some("12"));
    // 2026-11-20 14:05:31 in Moscow (UTC+3).
    assert_eq!(v.version, Some(1_795_172_731_000));
    assert_eq!(v.visit_at_ms, Some(1_795_165_200_000));
}

#[test]
fn cancelled_edited_and_deleted_visits() {
    let status = |file| match parse(file).as_slice() {
        [CrmEvent::Visit(v)] => (v.status, v.paid_minor(), v.version),
        other => panic!("{other:?}"),
    };
    let (came, paid, version) = status("webhook_visit_came.json");
    assert_eq!(came, VisitStatus::Came);
    let (cancelled, _, _) = status("webhook_visit_no_show.json");
    assert_eq!(cancelled, VisitStatus::NoShow);
    let (edited, edited_paid, edited_version) = status("webhook_visit_edited.json");
    assert_eq!(edited, VisitStatus::Came);
    assert_eq!(paid - edited_paid, 50_000);
    assert!(edited_version > version);
    let (deleted, _, _) = status("webhook_visit_deleted.json");
    assert_eq!(deleted, VisitStatus::Deleted);
}

/// The support's own "update" sample: no attendance, no lines, the id in an array.
#[test]
fn a_partial_visit_is_fetched_again_never_guessed() {
    let events = parse("webhook_visit_partial.json");
    let [CrmEvent::Visit(v)] = events.as_slice() else {
        panic!("one visit");
    };
    assert_eq!(v.record_id, "90817");
    assert!(v.needs_refetch);
}

#[test]
fn clients_services_and_commodities() {
    let events = parse("webhook_client_update.json");
    let [CrmEvent::Client(c)] = events.as_slice() else {
        panic!("one client");
    };
    assert_eq!(c.external_id, "4471");
    assert_eq!(c.name.as_deref(), Some("Анна Смирнова"));
    assert_eq!(
        c.birth_date,
        Some(loyalty_core::BirthDate {
            year: Some(1991),
            month: 3,
            day: 14
        })
    );
    assert!(!c.deleted);
    let events = parse("webhook_commodity_as_service.json");
    let [CrmEvent::Other(o)] = events.as_slice() else {
        panic!("one other");
    };
    assert_eq!(
        (o.resource.as_str(), o.resource_id.as_deref()),
        ("commodity", Some("71"))
    );
}

#[test]
fn bad_deliveries_are_refused_with_why() {
    let a = adapter();
    let refuse = |body: &str| a.parse_webhook(Some("application/json"), body.as_bytes());
    assert!(matches!(refuse(""), Err(WebhookError::Malformed(_))));
    assert!(matches!(
        refuse("{\"object\": \"visit\""),
        Err(WebhookError::Malformed(_))
    ));
    let unknown =
        refuse(r#"{"object": "invoice", "type": "create", "orgId": 7781, "invoice": {"id": 1}}"#);
    assert!(
        matches!(&unknown, Err(WebhookError::Shape(why)) if why.contains("invoice")),
        "{unknown:?}"
    );
    let no_org = refuse(r#"{"object": "visit", "type": "update", "visit": {"id": 1}}"#);
    assert!(
        matches!(&no_org, Err(WebhookError::Shape(why)) if why.contains("orgId")),
        "{no_org:?}"
    );
    let odd_type =
        refuse(r#"{"object": "visit", "type": "merge", "orgId": 7781, "visit": {"id": 1}}"#);
    assert!(matches!(odd_type, Err(WebhookError::Shape(_))));
    let form = a.parse_webhook(Some("application/x-www-form-urlencoded"), b"a=1");
    assert!(matches!(form, Err(WebhookError::ContentType(_))));
}

#[test]
fn the_webhook_parser_never_panics() {
    let fixtures = crm_conformance::fuzz::fixtures(&["arnica"]);
    assert!(fixtures.len() >= 15, "fixtures missing");
    let a = adapter();
    crm_conformance::fuzz::never_panics(
        &fixtures,
        &|body| a.parse_webhook(Some("application/json"), body),
        3_000,
    );
}
