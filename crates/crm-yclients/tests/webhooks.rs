//! Webhook parsing over every resource, on fixtures built from the vendor's published shapes.

use crm_yclients::{Flavor, YclientsAdapter, YclientsConfig};
use loyalty_core::event::{LineKind, OtherEvent};
use loyalty_core::{
    CrmAdapter, CrmEvent, Currency, LoyaltyPaid, VisitEvent, VisitStatus, WebhookError,
};

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/../../fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn yclients() -> YclientsAdapter {
    YclientsAdapter::new(YclientsConfig::new(Flavor::YCLIENTS, "4564"))
}

fn parse(path: &str) -> Vec<CrmEvent> {
    yclients()
        .parse_webhook(Some("application/json"), &fixture(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn one_visit(path: &str) -> VisitEvent {
    match parse(path).as_slice() {
        [CrmEvent::Visit(v)] => v.clone(),
        other => panic!("{path}: expected one visit, got {other:?}"),
    }
}

fn one_other(path: &str) -> OtherEvent {
    match parse(path).as_slice() {
        [CrmEvent::Other(o)] => o.clone(),
        other => panic!("{path}: expected an acknowledged event, got {other:?}"),
    }
}

#[test]
fn record_came_with_the_phone_as_a_number() {
    let v = one_visit("yclients/record_came.json");
    assert_eq!(v.company_id, "4564");
    assert_eq!(v.record_id, "2");
    assert_eq!(v.status, VisitStatus::Came);
    assert!(!v.needs_refetch);
    assert_eq!(v.version, Some(1_547_721_854_000)); // 2019-01-17T19:44:14+0900
    assert_eq!(v.paid_minor(), 400_000);
    assert_eq!(v.currency, Currency::Rub);
    assert_eq!(v.staff_id.as_deref(), Some("9"));
    let client = v.client.expect("client");
    assert_eq!(client.external_id.as_deref(), Some("18936825"));
    assert_eq!(
        client.phone.map(|p| p.to_string()).as_deref(),
        Some("+79001234567")
    );
    assert_eq!(client.name.as_deref(), Some("Иван Иванович Иванов"));
    assert_eq!(v.lines[0].kind, LineKind::Service);
    assert_eq!(v.lines[0].item_id, "1");
}

/// Only a record that came and is paid in full names the visit whose payments are asked; an odd
/// `paid_full` or `visit_id` is "not settled", not a refusal.
#[test]
fn a_settled_record_names_its_visit() {
    let came = one_visit("yclients/record_came.json");
    assert_eq!(came.loyalty_paid, LoyaltyPaid::Ask("8263004".into()));
    let body = String::from_utf8(fixture("yclients/record_came.json")).unwrap();
    let with = |from: &str, to: &str| {
        assert!(body.contains(from), "{from}");
        let events = yclients()
            .parse_webhook(None, body.replace(from, to).as_bytes())
            .unwrap();
        match events.as_slice() {
            [CrmEvent::Visit(v)] => v.loyalty_paid.clone(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        with("\"paid_full\": 1", "\"paid_full\": true"),
        came.loyalty_paid
    );
    for (from, to) in [
        ("\"paid_full\": 1", "\"paid_full\": 0"),
        ("\"paid_full\": 1", "\"paid_full\": 7"),
        ("\"visit_id\": \"8263004\"", "\"visit_id\": 0"),
        ("\"visit_id\": \"8263004\"", "\"visit_id\": {}"),
    ] {
        assert_eq!(with(from, to), LoyaltyPaid::NotReported, "{to}");
    }
    // Paid, but not a visit that came (the record is deleted): nothing to ask.
    let deleted = one_visit("yclients/record_deleted.json");
    assert_eq!(deleted.loyalty_paid, LoyaltyPaid::NotReported);
}

#[test]
fn attendance_codes_and_offsets() {
    let no_show = one_visit("yclients/record_no_show.json");
    assert_eq!(no_show.status, VisitStatus::NoShow);
    assert_eq!(no_show.version, Some(1_547_722_860_000)); // 20:01:00+09:00
    let confirmed = one_visit("yclients/record_confirmed_local_time.json");
    assert_eq!(confirmed.status, VisitStatus::Confirmed);
    assert_eq!(confirmed.record_id, "2");
    // Naive 19:40:00 read as Moscow time (UTC+3) by default.
    assert_eq!(confirmed.version, Some(1_547_743_200_000));
    let phone = confirmed
        .client
        .and_then(|c| c.phone)
        .map(|p| p.to_string());
    assert_eq!(phone.as_deref(), Some("+79001234567"));
}

#[test]
fn deleted_records() {
    let v = one_visit("yclients/record_deleted.json");
    assert_eq!(v.status, VisitStatus::Deleted);
    assert!(!v.needs_refetch);
}

#[test]
fn a_partial_record_asks_for_a_refetch() {
    let v = one_visit("yclients/record_partial.json");
    assert!(v.needs_refetch);
    assert_eq!(v.record_id, "2");
    assert!(v.client.is_none());
    assert!(v.lines.is_empty());
}

#[test]
fn goods_in_a_visit_count_separately_and_an_empty_client_is_none() {
    let v = one_visit("yclients/record_with_goods_no_client.json");
    assert!(v.client.is_none(), "client: [] means no client");
    let lines: Vec<(LineKind, &str, i64)> = v
        .lines
        .iter()
        .map(|l| (l.kind, l.item_id.as_str(), l.paid_minor))
        .collect();
    assert_eq!(
        lines,
        [
            (LineKind::Service, "1", 400_000),
            (LineKind::Service, "7", 100_000),
            (LineKind::Good, "232674", 150_050),
        ]
    );
}

#[test]
fn client_events() {
    match parse("yclients/client_create.json").as_slice() {
        [CrmEvent::Client(c)] => {
            assert_eq!(c.external_id, "18936825");
            assert_eq!(c.phone.as_ref().map(|p| p.as_str()), Some("+79115566866"));
            assert_eq!(c.name.as_deref(), Some("Анна Смирнова"));
            assert_eq!(c.email.as_deref(), Some("anna@example.com"));
            assert_eq!(
                c.birth_date.map(|b| b.to_iso()).as_deref(),
                Some("1990-05-01")
            );
            assert!(!c.deleted);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn goods_sales_outside_a_visit_accrue_like_a_visit() {
    match parse("yclients/goods_operations_sale.json").as_slice() {
        [CrmEvent::Sale(s)] => {
            assert_eq!(s.sale_id, "3428013");
            assert_eq!(s.lines[0].paid_minor, 225_000);
            assert_eq!(s.lines[0].kind, LineKind::Good);
            let phone = s
                .client
                .as_ref()
                .and_then(|c| c.phone.as_ref())
                .map(|p| p.as_str());
            assert_eq!(phone, Some("+79006464261"));
            assert!(!s.cancelled);
            assert_eq!(s.as_visit().record_id, "sale:3428013");
        }
        other => panic!("{other:?}"),
    }
    // The same sale inside a record, or a sold certificate, earns nothing by itself.
    let mut body: serde_json::Value =
        serde_json::from_slice(&fixture("yclients/goods_operations_sale.json")).unwrap();
    body["data"]["record_id"] = 2.into();
    let events = yclients()
        .parse_webhook(None, body.to_string().as_bytes())
        .unwrap();
    assert!(
        matches!(&events[..], [CrmEvent::Other(o)] if o.status.as_deref() == Some("in_record"))
    );
    body["data"]["record_id"] = 0.into();
    body["data"]["loyalty_certificate_id"] = 555.into();
    let events = yclients()
        .parse_webhook(None, body.to_string().as_bytes())
        .unwrap();
    assert!(
        matches!(&events[..], [CrmEvent::Other(o)] if o.status.as_deref() == Some("certificate"))
    );
}

#[test]
fn resources_the_program_only_acknowledges() {
    for (path, resource, id) in [
        (
            "yclients/finances_operation.json",
            "finances_operation",
            "6024243",
        ),
        ("yclients/service_update.json", "service", "1"),
        ("yclients/staff_update.json", "staff", "9"),
        ("yclients/good_update.json", "good", "232674"),
    ] {
        let o = one_other(path);
        assert_eq!(
            (o.resource.as_str(), o.resource_id.as_deref()),
            (resource, Some(id)),
            "{path}"
        );
        assert_eq!(o.company_id, "4564");
    }
    for (path, event) in [
        ("yclients/marketplace_uninstall.json", "uninstall"),
        ("yclients/marketplace_freeze.json", "freeze"),
    ] {
        let o = one_other(path);
        assert_eq!(o.resource, "marketplace");
        assert_eq!(o.status.as_deref(), Some(event));
        assert_eq!(o.company_id, "4564");
        assert_eq!(o.resource_id.as_deref(), Some("123"));
    }
}

#[test]
fn arrays_of_events() {
    let events = parse("yclients/events_array.json");
    assert_eq!(events.len(), 2);
    assert!(matches!(events[0], CrmEvent::Visit(_)));
    assert!(matches!(events[1], CrmEvent::Client(_)));
}

#[test]
fn altegio_records_and_loyalty_cards() {
    let mut config = YclientsConfig::new(Flavor::ALTEGIO, "778899");
    config.context.currency = Currency::Kzt;
    let altegio = YclientsAdapter::new(config);
    let events = altegio
        .parse_webhook(
            Some("application/json"),
            &fixture("altegio/record_came.json"),
        )
        .unwrap();
    let [CrmEvent::Visit(v)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(
        (v.company_id.as_str(), v.currency),
        ("778899", Currency::Kzt)
    );
    assert_eq!(v.paid_minor(), 1_200_000);
    assert_eq!(v.visit_at_ms, Some(1_752_390_600_000)); // 2025-07-13T12:10:00+05:00
    let phone = v
        .client
        .as_ref()
        .and_then(|c| c.phone.as_ref())
        .map(|p| p.as_str());
    assert_eq!(phone, Some("+77770220606"));
    let events = altegio
        .parse_webhook(None, &fixture("altegio/loyalty_card.json"))
        .unwrap();
    assert!(matches!(&events[..], [CrmEvent::Other(o)] if o.resource == "loyalty_card"));
}

#[test]
fn bad_deliveries_are_typed_errors() {
    let a = yclients();
    let err = |ct: Option<&str>, body: &str| a.parse_webhook(ct, body.as_bytes()).unwrap_err();
    assert!(matches!(err(None, ""), WebhookError::Malformed(_)));
    assert!(matches!(err(None, "  \n"), WebhookError::Malformed(_)));
    assert!(matches!(
        err(None, "company_id=1"),
        WebhookError::Malformed(_)
    ));
    assert!(matches!(
        err(None, "{\"company_id\": 1,"),
        WebhookError::Malformed(_)
    ));
    assert!(matches!(err(None, "[]"), WebhookError::Shape(_)));
    assert!(matches!(err(None, "42"), WebhookError::Shape(_)));
    assert!(matches!(err(None, "{}"), WebhookError::Shape(m) if m.contains("company_id")));
    assert!(matches!(
        err(None, r#"{"company_id": 1, "resource": "record", "status": "update", "data": {}}"#),
        WebhookError::Shape(m) if m.contains("id")
    ));
    assert!(matches!(
        err(None, r#"{"company_id": 1, "resource": "record", "resource_id": 5, "data": {"attendance": 7}}"#),
        WebhookError::Shape(m) if m.contains("attendance 7")
    ));
    assert!(matches!(
        err(None, r#"{"company_id": 1, "resource": "record", "resource_id": 5,
                      "data": {"attendance": 1, "services": [{"id": 1, "cost": -5}]}}"#),
        WebhookError::Shape(m) if m.contains("negative")
    ));
    assert!(matches!(
        err(None, r#"[{"company_id": 1, "resource": "client", "resource_id": 2}, 7]"#),
        WebhookError::Shape(m) if m.starts_with("event 1")
    ));
    assert!(matches!(
        err(Some("text/plain"), "{}"),
        WebhookError::ContentType(_)
    ));
}

/// Phones are read in the company's country: a Belarusian administrator's `8 029 …`, and a
/// Russian client's international digits at the same salon; a number that cannot exist leaves
/// the client known by CRM id only, never a guessed identity.
#[test]
fn phones_are_read_in_the_company_country() {
    let mut body: serde_json::Value =
        serde_json::from_slice(&fixture("yclients/record_came.json")).unwrap();
    let phone_in = |body: &serde_json::Value, country: &str| {
        let mut config = YclientsConfig::new(Flavor::YCLIENTS, "4564");
        config.context.country = loyalty_core::Country::parse(country).unwrap();
        let events = YclientsAdapter::new(config)
            .parse_webhook(None, body.to_string().as_bytes())
            .unwrap();
        let [CrmEvent::Visit(v)] = events.as_slice() else {
            panic!("{events:?}")
        };
        let client = v.client.clone().expect("client");
        assert_eq!(client.external_id.as_deref(), Some("18936825"));
        client.phone.map(|p| p.to_string())
    };
    for (typed, country, read) in [
        ("8 029 123-45-67", "BY", Some("+375291234567")),
        ("80291234567", "BY", Some("+375291234567")),
        ("79161234567", "BY", Some("+79161234567")),
        ("8 029 123-45-67", "RU", None),
        ("067 123 45 67", "UA", Some("+380671234567")),
        ("067 123 45 67", "RU", None),
        ("+7 123 456 78 90", "RU", None),
        ("8 701 234 56 78", "KZ", Some("+77012345678")),
    ] {
        body["data"]["client"]["phone"] = typed.into();
        assert_eq!(
            phone_in(&body, country).as_deref(),
            read,
            "{typed} in {country}"
        );
    }
}
