//! Arnica's JSON → our events: a visit (the same object in webhooks, `GET /visit/{id}` and the
//! visit list), a client, and phones both ways.

use crm_http::lenient::{self, FieldError};
use loyalty_core::adapter::CrmClient;
use loyalty_core::event::{ClientRef, LineKind, LoyaltyPaid, VisitEvent, VisitLine, VisitStatus};
use loyalty_core::{BirthDate, Phone};
use serde_json::{Map, Value};

/// Arnica sends the organisation's local time without an offset ("the time zone set in the
/// clinic's settings"): `utc_offset_minutes` is that zone's offset from UTC.
pub use crm_http::ParseContext;

/// A payload that does not mean what a visit or client must.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl From<FieldError> for Malformed {
    fn from(e: FieldError) -> Self {
        Malformed(e.to_string())
    }
}

fn bad(msg: impl Into<String>) -> Malformed {
    Malformed(msg.into())
}

/// The fields without which a visit body is partial: the support's own "update" sample is
/// `{id, serviceIds, resourceId, datetime}`, and that cannot say whether the client came or
/// what was paid.
const WHOLE: [&str; 3] = ["attendance", "services", "update_date"];

/// A visit object as our event. `org_id` is the organisation the body belongs to (a
/// webhook's `orgId`, else the connection's). A body without `attendance`, `services` or
/// `update_date` is partial: `needs_refetch`, never guessed.
///
/// - status: `deleted` → deleted; `attendance` 1 (`showedUp`) → came, −1 (`cancel`) → did
///   not come, 2 → confirmed, 0 → waiting;
/// - lines: `services[]` and `commodities[]`, each paying its `paySum` (a string or a number,
///   read exactly); `certificates[]` (a certificate sold or applied in the visit) earns nothing
///   and is not a line (assumed: see docs/crm/arnica.md);
/// - version: `update_date` in the organisation's time, as Unix ms.
pub fn visit(
    ctx: &ParseContext,
    org_id: &str,
    v: &Map<String, Value>,
) -> Result<VisitEvent, Malformed> {
    let record_id = visit_id(v)?;
    let whole = WHOLE
        .iter()
        .all(|f| v.get(*f).is_some_and(|x| !x.is_null()));
    let deleted = lenient::flag(v, "deleted")?.unwrap_or(false);
    let status = if deleted {
        VisitStatus::Deleted
    } else {
        match lenient::int(v, "attendance")? {
            Some(1) => VisitStatus::Came,
            Some(-1) => VisitStatus::NoShow,
            Some(2) => VisitStatus::Confirmed,
            Some(0) | None => VisitStatus::Waiting,
            Some(other) => return Err(bad(format!("attendance {other} is not -1, 0, 1 or 2"))),
        }
    };
    let mut lines = Vec::new();
    for (field, kind) in [
        ("services", LineKind::Service),
        ("commodities", LineKind::Good),
    ] {
        for (i, item) in lenient::items(v.get(field)).iter().enumerate() {
            let item = lenient::object(Some(item))
                .ok_or_else(|| bad(format!("{field}[{i}] is not an object")))?;
            let item_id =
                lenient::id(item, "id")?.ok_or_else(|| bad(format!("{field}[{i}] has no id")))?;
            lines.push(VisitLine {
                item_id,
                category_id: None,
                kind,
                title: lenient::text(item, "name")
                    .or_else(|| lenient::text(item, "title"))
                    .unwrap_or_default(),
                paid_minor: lenient::money_minor(item, "paySum")
                    .map_err(|e| bad(format!("{field}[{i}]: {e}")))?
                    .unwrap_or(0),
            });
        }
    }
    let client = client_ref(ctx, v)?;
    Ok(VisitEvent {
        company_id: org_id.to_owned(),
        record_id,
        version: lenient::timestamp_ms(v, "update_date", ctx.utc_offset_minutes)?,
        status,
        client,
        currency: ctx.currency,
        lines,
        staff_id: lenient::id(v, "resourceId")?,
        staff_name: None,
        visit_at_ms: lenient::timestamp_ms(v, "datetime", ctx.utc_offset_minutes)?,
        needs_refetch: !whole && !deleted,
        loyalty_paid: LoyaltyPaid::NotReported,
    })
}

/// The visit's id: a number or a string, or (in the support's "update" sample) a one-element
/// array of it.
pub fn visit_id(v: &Map<String, Value>) -> Result<String, Malformed> {
    if let Some(Value::Array(ids)) = v.get("id") {
        return match ids.as_slice() {
            [one] => {
                let mut m = Map::new();
                m.insert("id".to_owned(), one.clone());
                lenient::id(&m, "id")?.ok_or_else(|| bad("the visit has no id"))
            }
            _ => Err(bad(format!("the visit's id is an array of {}", ids.len()))),
        };
    }
    lenient::id(v, "id")?.ok_or_else(|| bad("the visit has no id"))
}

/// Whose visit it is: `clientData` (the client object), else `clientId` / `client` as an id.
fn client_ref(ctx: &ParseContext, v: &Map<String, Value>) -> Result<Option<ClientRef>, Malformed> {
    let data = lenient::object(v.get("clientData")).or_else(|| lenient::object(v.get("client")));
    let external_id = match data {
        Some(d) => lenient::id(d, "id")?,
        None => None,
    };
    let external_id = match external_id {
        Some(id) => Some(id),
        None => match v.get("client") {
            Some(Value::Object(_)) | None => lenient::id(v, "clientId")?,
            Some(_) => lenient::id(v, "client")?,
        },
    };
    let phone = data.and_then(|d| phone_of(ctx, d));
    let name = data.and_then(name_of);
    Ok(
        (external_id.is_some() || phone.is_some()).then_some(ClientRef {
            external_id,
            phone,
            name,
        }),
    )
}

/// A client object (`GET /client/{id}`, `/client/phone/{phone}`, a webhook's `client`).
pub fn client(ctx: &ParseContext, c: &Map<String, Value>) -> Result<CrmClient, Malformed> {
    Ok(CrmClient {
        external_id: lenient::id(c, "id")?.ok_or_else(|| bad("the client has no id"))?,
        phone: phone_of(ctx, c),
        name: name_of(c),
        email: lenient::text(c, "email"),
        birth_date: lenient::text(c, "birthDate").and_then(|b| BirthDate::parse(&b)),
    })
}

/// The client's phone, read as typed in the organisation's country (`+7(777)777-77-77`,
/// `+79995870011`, `89995870011`); one that cannot be a number is left out.
fn phone_of(ctx: &ParseContext, c: &Map<String, Value>) -> Option<Phone> {
    lenient::text(c, "phone").and_then(|raw| Phone::parse_crm(&raw, ctx.country).ok())
}

/// `name`, else the parts (`lastname firstname patronymic` as Russian cards show them).
fn name_of(c: &Map<String, Value>) -> Option<String> {
    lenient::text(c, "name").or_else(|| {
        let parts: Vec<String> = ["lastname", "firstname", "patronymic"]
            .iter()
            .filter_map(|f| lenient::text(c, f))
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    })
}

/// A phone as Arnica's lookup wants it: `+7(777)777-77-77` for the numbering plan of Russia and
/// Kazakhstan (the documented form), `+` and the digits for any other.
pub fn arnica_phone(phone: &Phone) -> String {
    let digits = phone.digits();
    match digits.strip_prefix('7') {
        Some(n) if n.len() == 10 => format!("+7({}){}-{}-{}", &n[..3], &n[3..6], &n[6..8], &n[8..]),
        _ => format!("+{digits}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loyalty_core::{Country, Currency};
    use serde_json::json;

    fn ctx() -> ParseContext {
        ParseContext {
            currency: Currency::Rub,
            utc_offset_minutes: 180,
            country: Country::RU,
        }
    }

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("object expected"),
        }
    }

    #[test]
    fn phones_both_ways() {
        let p = Phone::parse_crm("+7(916)123-45-67", Country::RU).unwrap();
        assert_eq!(p.as_str(), "+79161234567");
        assert_eq!(arnica_phone(&p), "+7(916)123-45-67");
        assert_eq!(Phone::parse_crm("+79161234567", Country::RU).unwrap(), p);
        let de = Phone::parse_international("+4915123456789").unwrap();
        assert_eq!(arnica_phone(&de), "+4915123456789");
    }

    #[test]
    fn money_as_strings_or_numbers_exactly() {
        let v = map(json!({
            "id": 7, "attendance": 1, "deleted": false, "update_date": "2026-11-20 12:00:00",
            "services": [{"id": "519", "name": "Cut", "paySum": "1500.50"}, {"id": 2, "paySum": 999}],
            "commodities": [{"id": 3, "name": "Shampoo", "paySum": "0.10"}],
            "certificates": [{"id": 4, "paySum": "5000"}]
        }));
        let e = visit(&ctx(), "1", &v).unwrap();
        assert_eq!(e.status, VisitStatus::Came);
        assert_eq!(e.paid_minor(), 150_050 + 99_900 + 10);
        assert_eq!(e.lines.len(), 3);
        assert!(!e.needs_refetch);
        // 12:00 in UTC+3 is 09:00 UTC.
        assert_eq!(e.version, Some(1_795_165_200_000));
    }

    #[test]
    fn a_partial_body_is_refetched_and_an_array_id_read() {
        let v = map(
            json!({"id": [5482], "serviceIds": ["519"], "resourceId": "2",
            "datetime": "2026-06-09T19:00:00+05:00"}),
        );
        let e = visit(&ctx(), "1", &v).unwrap();
        assert_eq!(e.record_id, "5482");
        assert!(e.needs_refetch);
        assert_eq!(e.staff_id.as_deref(), Some("2"));
    }

    #[test]
    fn attendance_and_deleted() {
        for (att, deleted, want) in [
            (json!(-1), false, VisitStatus::NoShow),
            (json!("2"), false, VisitStatus::Confirmed),
            (json!(0), false, VisitStatus::Waiting),
            (json!(1), true, VisitStatus::Deleted),
        ] {
            let v = map(json!({"id": 1, "attendance": att, "deleted": deleted,
                "services": [], "update_date": "2026-11-20 12:00:00"}));
            assert_eq!(visit(&ctx(), "1", &v).unwrap().status, want);
        }
        let v = map(
            json!({"id": 1, "attendance": 5, "services": [], "update_date": "2026-11-20 12:00:00"}),
        );
        assert!(visit(&ctx(), "1", &v).is_err());
        let v = map(
            json!({"id": 1, "attendance": 1, "services": [{"id": 1, "paySum": "-5"}],
            "update_date": "2026-11-20 12:00:00"}),
        );
        assert!(visit(&ctx(), "1", &v).is_err());
    }
}
