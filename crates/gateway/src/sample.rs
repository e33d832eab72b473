//! Realistic YCLIENTS record webhooks, built from `fixtures/yclients/record_came.json` (a
//! payload from YCLIENTS' documentation) with the fields that matter set: the demo, the
//! end-to-end tests and the bench send these.

use serde_json::{Value, json};

const RECORD: &str = include_str!("../../../fixtures/yclients/record_came.json");

/// What a record webhook says.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    pub company_id: &'a str,
    pub record_id: u64,
    pub client_id: u64,
    pub client_name: &'a str,
    /// Digits, as YCLIENTS sends them: `79161234567`.
    pub phone: &'a str,
    /// The service's price in roubles (kopecks after the comma).
    pub cost: &'a str,
    /// 1 came, 0 waiting, -1 did not come, 2 confirmed.
    pub attendance: i32,
    pub deleted: bool,
    /// Seconds after 2026-11-24 09:00 (+03:00) of this change; later changes win.
    pub changed_at_s: u32,
}

/// The webhook body for `r`.
pub fn record_webhook(r: &Record<'_>) -> Value {
    // The fixture is part of the crate; should it ever stop parsing, an empty object is sent
    // and the gateway's answer (422) shows it.
    let mut body: Value = serde_json::from_str(RECORD).unwrap_or_else(|_| json!({}));
    let company: Value = r
        .company_id
        .parse::<u64>()
        .map_or_else(|_| json!(r.company_id), Value::from);
    body["company_id"] = company.clone();
    body["resource_id"] = json!(r.record_id);
    body["status"] = json!(if r.deleted { "delete" } else { "update" });
    let data = &mut body["data"];
    data["id"] = json!(r.record_id);
    data["company_id"] = company;
    data["attendance"] = json!(r.attendance);
    data["visit_attendance"] = json!(r.attendance);
    data["deleted"] = json!(r.deleted);
    // The visit is happening now (the fixture's is in 2019): a salon that connected
    // earns points for its visits from then on.
    let now = chrono::Utc::now();
    data["datetime"] = json!(now.format("%Y-%m-%dT%H:%M:%S+00:00").to_string());
    data["date"] = json!(now.format("%Y-%m-%d %H:%M:%S").to_string());
    let total = 9 * 3600 + r.changed_at_s;
    data["last_change_date"] = json!(format!(
        "2026-11-24T{:02}:{:02}:{:02}+03:00",
        (total / 3600) % 24,
        (total / 60) % 60,
        total % 60
    ));
    let cost: Value = serde_json::from_str(r.cost).unwrap_or(Value::Null);
    for key in [
        "cost",
        "cost_to_pay",
        "manual_cost",
        "cost_per_unit",
        "first_cost",
    ] {
        data["services"][0][key] = cost.clone();
    }
    let client = &mut data["client"];
    client["id"] = json!(r.client_id);
    client["name"] = json!(r.client_name);
    client["surname"] = json!("");
    client["patronymic"] = json!("");
    client["display_name"] = json!(r.client_name);
    client["phone"] = json!(r.phone);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_records_parse_as_the_adapter_reads_them() {
        let body = record_webhook(&Record {
            company_id: "4564",
            record_id: 77,
            client_id: 5,
            client_name: "Анна",
            phone: "79161234567",
            cost: "4000.50",
            attendance: 1,
            deleted: false,
            changed_at_s: 3_661,
        });
        let ctx = crm_yclients::ParseContext {
            currency: loyalty_core::Currency::Rub,
            utc_offset_minutes: 180,
            country: loyalty_core::Country::RU,
        };
        let events = crm_yclients::parse_webhook(&ctx, body.to_string().as_bytes()).unwrap();
        let loyalty_core::CrmEvent::Visit(v) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(v.record_id, "77");
        assert_eq!(v.status, loyalty_core::VisitStatus::Came);
        assert_eq!(v.paid_minor(), 400_050);
        assert_eq!(
            body["data"]["last_change_date"],
            "2026-11-24T10:01:01+03:00"
        );
        let client = v.client.as_ref().unwrap();
        assert_eq!(client.phone.as_ref().unwrap().as_str(), "+79161234567");
    }
}

const ARNICA_VISIT: &str = include_str!("../../../fixtures/arnica/webhook_visit_came.json");

/// What an Arnica visit hook says (the demo's second salon).
#[derive(Debug, Clone)]
pub struct ArnicaVisit<'a> {
    pub org_id: u64,
    pub visit_id: u64,
    pub client_id: u64,
    pub client_name: &'a str,
    /// As Arnica shows phones: `+7(916)111-00-01`.
    pub phone: &'a str,
    /// `paySum` of the one service line, in roubles as Arnica sends it (`"3000.00"`).
    pub pay_sum: &'a str,
    /// 1 showed up, 0 new, 2 confirmed, −1 cancelled.
    pub attendance: i32,
    /// Seconds after 2026-11-24 09:00 (organisation time) of this change.
    pub changed_at_s: u32,
}

/// The hook body for `v`: the fixture (an SQNS-documented shape) with one service line, its
/// visit an hour ago in Moscow.
pub fn arnica_visit_webhook(v: &ArnicaVisit<'_>) -> Value {
    let mut body: Value = serde_json::from_str(ARNICA_VISIT).unwrap_or_else(|_| json!({}));
    body["orgId"] = json!(v.org_id);
    let visit = &mut body["visit"];
    visit["id"] = json!(v.visit_id);
    visit["attendance"] = json!(v.attendance);
    visit["services"] = json!([{
        "id": 519, "name": "Стрижка", "paySum": v.pay_sum, "price": v.pay_sum,
        "discount": "0", "amount": 1
    }]);
    visit["commodities"] = json!([]);
    visit["certificates"] = json!([]);
    visit["clientId"] = json!(v.client_id);
    visit["clientData"]["id"] = json!(v.client_id);
    visit["clientData"]["name"] = json!(v.client_name);
    visit["clientData"]["phone"] = json!(v.phone);
    let moscow = chrono::Utc::now() + chrono::Duration::hours(2);
    visit["datetime"] = json!(moscow.format("%Y-%m-%d %H:%M:%S").to_string());
    let total = 9 * 3600 + v.changed_at_s;
    visit["update_date"] = json!(format!(
        "2026-11-24 {:02}:{:02}:{:02}",
        (total / 3600) % 24,
        (total / 60) % 60,
        total % 60
    ));
    body
}
