//! The catalogue, company and loyalty operations of [`YclientsClient`].
//!
//! Paths and fields follow the official OpenAPI description (`shared/crm-apis`). Money fields
//! arrive in major units (roubles) and are returned in minor units.

use loyalty_core::adapter::{CrmService, CrmStaff};
use loyalty_core::{AdapterError, CrmKind, Money, Phone};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::api::{YclientsClient, each, object, segment, unexpected};
use crate::lenient;

/// The company (location) as `GET /company/{id}/` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Company {
    pub id: String,
    pub title: String,
    /// IANA name, e.g. `Europe/Moscow`.
    pub timezone_name: Option<String>,
    /// The chain (`main_group_id`); loyalty cards and certificates live there.
    pub chain_id: Option<String>,
    pub bookforms: Vec<Bookform>,
}

/// An online-booking widget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bookform {
    pub id: String,
    pub url: Option<String>,
    pub is_default: bool,
}

impl Company {
    /// The default widget's URL, else the first one's; built as `https://n{id}.yclients.com/`
    /// (Altegio: `https://n{id}.alteg.io/`) when the API gives no URL.
    pub fn booking_link(&self, kind: CrmKind) -> Option<String> {
        let form = self
            .bookforms
            .iter()
            .find(|b| b.is_default)
            .or_else(|| self.bookforms.first())?;
        if let Some(url) = &form.url {
            return Some(url.clone());
        }
        let host = if kind == CrmKind::Altegio {
            "alteg.io"
        } else {
            "yclients.com"
        };
        Some(format!("https://n{}.{host}/", form.id))
    }
}

/// A service category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCategory {
    pub id: String,
    pub title: String,
}

/// A good; a good linked to a certificate type sells certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Good {
    pub id: String,
    pub title: String,
    pub price_minor: Option<i64>,
    pub certificate_type_id: Option<String>,
}

/// A loyalty card type of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardType {
    pub id: String,
    pub title: String,
    pub chain_id: Option<String>,
}

/// A client's loyalty card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoyaltyCard {
    pub id: String,
    pub number: Option<String>,
    pub type_id: Option<String>,
    /// Money on the card, minor units.
    pub balance_minor: i64,
}

/// A certificate type: its face value and how it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateType {
    pub id: String,
    pub title: String,
    pub face_value_minor: i64,
    pub is_multi: bool,
}

/// A client's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub id: String,
    /// The code written on it.
    pub code: String,
    pub balance_minor: i64,
    /// What it held when sold.
    pub default_balance_minor: Option<i64>,
    pub type_id: Option<String>,
    pub status_id: Option<i64>,
    pub expires_at_ms: Option<i64>,
}

fn field_err(e: lenient::FieldError) -> AdapterError {
    unexpected(&e.to_string())
}

fn id_of(m: &Map<String, Value>, field: &str) -> Result<String, AdapterError> {
    lenient::id(m, field)
        .map_err(field_err)?
        .ok_or_else(|| unexpected(&format!("no {field} in an answer")))
}

fn card(m: &Map<String, Value>) -> Result<LoyaltyCard, AdapterError> {
    Ok(LoyaltyCard {
        id: id_of(m, "id")?,
        number: lenient::text(m, "number"),
        type_id: lenient::id(m, "type_id").map_err(field_err)?,
        balance_minor: lenient::signed_money_minor(m, "balance")
            .map_err(field_err)?
            .unwrap_or(0),
    })
}

/// Major units as a JSON number, exactly: `10050` → `100.5`, `-20000` → `-200`.
pub(crate) fn major_units(minor: i64) -> Value {
    if minor % 100 == 0 {
        json!(minor / 100)
    } else {
        let text = format!(
            "{}{}.{:02}",
            if minor < 0 { "-" } else { "" },
            (minor / 100).abs(),
            (minor % 100).abs()
        );
        text.parse::<serde_json::Number>()
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

impl YclientsClient {
    /// `GET /company/{company_id}/`.
    pub async fn company(&self) -> Result<Company, AdapterError> {
        let path = format!("/company/{}/", self.company_id);
        let data = self.call(Method::GET, &path, &[], None, true).await?;
        let m = object(&data).ok_or_else(|| unexpected("company is not an object"))?;
        let bookforms = lenient::items(m.get("bookforms"))
            .iter()
            .filter_map(object)
            .map(|b| {
                Ok(Bookform {
                    id: id_of(b, "id")?,
                    url: lenient::text(b, "url"),
                    is_default: lenient::flag(b, "is_default")
                        .map_err(field_err)?
                        .unwrap_or(false),
                })
            })
            .collect::<Result<Vec<_>, AdapterError>>()?;
        Ok(Company {
            id: id_of(m, "id")?,
            title: lenient::text(m, "title").unwrap_or_default(),
            timezone_name: lenient::text(m, "timezone_name"),
            chain_id: lenient::id(m, "main_group_id").map_err(field_err)?,
            bookforms,
        })
    }

    /// `GET /company/{company_id}/services`.
    pub async fn list_services(&self) -> Result<Vec<CrmService>, AdapterError> {
        let path = format!("/company/{}/services", self.company_id);
        let data = self.call(Method::GET, &path, &[], None, true).await?;
        let currency = self.context.currency;
        each(&data, |s| {
            let price = |field: &str| -> Result<Option<Money>, AdapterError> {
                lenient::money_minor(s, field)
                    .map_err(field_err)?
                    .map(|minor| {
                        Money::new(minor, currency).map_err(|e| unexpected(&e.to_string()))
                    })
                    .transpose()
            };
            Ok(CrmService {
                external_id: id_of(s, "id")?,
                title: lenient::text(s, "title").unwrap_or_default(),
                category_id: lenient::id(s, "category_id").map_err(field_err)?,
                price_min: price("price_min")?,
                price_max: price("price_max")?,
            })
        })
    }

    /// `GET /company/{company_id}/service_categories`.
    pub async fn service_categories(&self) -> Result<Vec<ServiceCategory>, AdapterError> {
        let path = format!("/company/{}/service_categories", self.company_id);
        let data = self.call(Method::GET, &path, &[], None, true).await?;
        each(&data, |c| {
            Ok(ServiceCategory {
                id: id_of(c, "id")?,
                title: lenient::text(c, "title").unwrap_or_default(),
            })
        })
    }

    /// `GET /company/{company_id}/staff`, without fired or deleted members.
    pub async fn list_staff(&self) -> Result<Vec<CrmStaff>, AdapterError> {
        let path = format!("/company/{}/staff", self.company_id);
        let data = self.call(Method::GET, &path, &[], None, true).await?;
        let all = each(&data, |s| {
            let gone = lenient::flag(s, "fired")
                .map_err(field_err)?
                .unwrap_or(false)
                || lenient::int(s, "status").map_err(field_err)? == Some(1);
            Ok((
                gone,
                CrmStaff {
                    external_id: id_of(s, "id")?,
                    name: lenient::text(s, "name").unwrap_or_default(),
                },
            ))
        })?;
        Ok(all
            .into_iter()
            .filter(|(gone, _)| !gone)
            .map(|(_, s)| s)
            .collect())
    }

    /// One page of `GET /goods/{company_id}?page=&count=`.
    pub async fn goods(&self, page: u32) -> Result<Vec<Good>, AdapterError> {
        let path = format!("/goods/{}", self.company_id);
        let query = [
            ("page", page.max(1).to_string()),
            ("count", self.transport.page_size.to_string()),
        ];
        let data = self.call(Method::GET, &path, &query, None, true).await?;
        each(&data, |g| {
            Ok(Good {
                id: id_of(g, "good_id").or_else(|_| id_of(g, "id"))?,
                title: lenient::text(g, "title").unwrap_or_default(),
                price_minor: lenient::money_minor(g, "cost").map_err(field_err)?,
                certificate_type_id: lenient::id(g, "loyalty_certificate_type_id")
                    .map_err(field_err)?,
            })
        })
    }

    /// `GET /loyalty/card_types/salon/{company_id}`.
    pub async fn card_types(&self) -> Result<Vec<CardType>, AdapterError> {
        let path = format!("/loyalty/card_types/salon/{}", self.company_id);
        let data = self.call(Method::GET, &path, &[], None, true).await?;
        each(&data, |t| {
            Ok(CardType {
                id: id_of(t, "id")?,
                title: lenient::text(t, "title").unwrap_or_default(),
                chain_id: lenient::id(t, "salon_group_id").map_err(field_err)?,
            })
        })
    }

    /// `GET /loyalty/cards/{phone}/{chain_id}/{company_id}`: the client's cards (phone as digits).
    pub async fn client_cards(
        &self,
        phone: &Phone,
        chain_id: &str,
    ) -> Result<Vec<LoyaltyCard>, AdapterError> {
        let path = format!(
            "/loyalty/cards/{}/{}/{}",
            phone.digits(),
            segment(chain_id)?,
            self.company_id
        );
        let data = self.call(Method::GET, &path, &[], None, true).await?;
        match &data {
            // One card may come as an object rather than a list.
            Value::Object(m) if !m.is_empty() => Ok(vec![card(m)?]),
            other => each(other, card),
        }
    }

    /// `POST /loyalty/cards/{company_id}`: issues a card (not retried).
    pub async fn issue_card(
        &self,
        phone: &Phone,
        card_type_id: &str,
        number: &str,
    ) -> Result<LoyaltyCard, AdapterError> {
        let digits: i64 = phone
            .digits()
            .parse()
            .map_err(|_| AdapterError::Validation(vec![format!("phone {phone}")]))?;
        let body = json!({
            "loyalty_card_number": number,
            "loyalty_card_type_id": card_type_id,
            "phone": digits,
        });
        let path = format!("/loyalty/cards/{}", self.company_id);
        let data = self
            .call(Method::POST, &path, &[], Some(body), false)
            .await?;
        object(&data)
            .ok_or_else(|| unexpected("card is not an object"))
            .and_then(card)
    }

    /// `POST /company/{company_id}/loyalty/cards/{card_id}/manual_transaction`: a top-up
    /// (positive) or write-off (negative) of the card's balance. Not retried: a retry could
    /// post twice.
    pub async fn card_manual_transaction(
        &self,
        card_id: &str,
        amount_minor: i64,
        title: &str,
    ) -> Result<LoyaltyCard, AdapterError> {
        if amount_minor == 0 {
            return Err(AdapterError::Validation(vec!["amount is zero".into()]));
        }
        let path = format!(
            "/company/{}/loyalty/cards/{}/manual_transaction",
            self.company_id,
            segment(card_id)?
        );
        let body = json!({ "amount": major_units(amount_minor), "title": title });
        let data = self
            .call(Method::POST, &path, &[], Some(body), false)
            .await?;
        object(&data)
            .ok_or_else(|| unexpected("card is not an object"))
            .and_then(card)
    }

    /// `GET /company/{company_id}/loyalty/certificate_types/search?page=1&page_size=100`.
    pub async fn certificate_types(&self) -> Result<Vec<CertificateType>, AdapterError> {
        let path = format!(
            "/company/{}/loyalty/certificate_types/search",
            self.company_id
        );
        let query = [("page", "1".to_owned()), ("page_size", "100".to_owned())];
        let data = self.call(Method::GET, &path, &query, None, true).await?;
        each(&data, |t| {
            Ok(CertificateType {
                id: id_of(t, "id")?,
                title: lenient::text(t, "title").unwrap_or_default(),
                face_value_minor: lenient::money_minor(t, "balance")
                    .map_err(field_err)?
                    .unwrap_or(0),
                is_multi: lenient::flag(t, "is_multi")
                    .map_err(field_err)?
                    .unwrap_or(false),
            })
        })
    }

    /// `GET /loyalty/certificates/?company_id=&phone=`: the client's certificates.
    pub async fn client_certificates(
        &self,
        phone: &Phone,
    ) -> Result<Vec<Certificate>, AdapterError> {
        let query = [
            ("company_id", self.company_id.clone()),
            ("phone", phone.digits().to_owned()),
        ];
        let data = self
            .call(Method::GET, "/loyalty/certificates/", &query, None, true)
            .await?;
        let offset = self.context.utc_offset_minutes;
        each(&data, |c| {
            Ok(Certificate {
                id: id_of(c, "id")?,
                code: lenient::text(c, "number").unwrap_or_default(),
                balance_minor: lenient::money_minor(c, "balance")
                    .map_err(field_err)?
                    .unwrap_or(0),
                default_balance_minor: lenient::money_minor(c, "default_balance")
                    .map_err(field_err)?,
                type_id: lenient::id(c, "type_id").map_err(field_err)?,
                status_id: lenient::int(c, "status_id").map_err(field_err)?,
                // The spec's own example has 2020-02-30: an impossible date reads as none.
                expires_at_ms: lenient::timestamp_ms(c, "expiration_date", offset)
                    .ok()
                    .flatten(),
            })
        })
    }

    /// `GET /loyalty/generate_code/{company_id}/{good_id}`: a fresh code for a certificate
    /// good.
    pub async fn generate_code(&self, good_id: &str) -> Result<String, AdapterError> {
        let path = format!(
            "/loyalty/generate_code/{}/{}",
            self.company_id,
            segment(good_id)?
        );
        let data = self.call(Method::GET, &path, &[], None, true).await?;
        object(&data)
            .and_then(|m| lenient::text(m, "code"))
            .ok_or_else(|| unexpected("no code in the answer"))
    }

    /// The booking widget's URL.
    pub async fn booking_link(&self) -> Result<String, AdapterError> {
        self.company()
            .await?
            .booking_link(self.flavor_kind)
            .ok_or_else(|| AdapterError::NotFound("the company has no booking form".into()))
    }

    /// Subscribes `url` to the resources the program reads ([`HOOK_RESOURCES`]) through
    /// `GET` then `POST /hooks_settings/{company_id}`. The POST replaces the whole location —
    /// every URL's flags, and any URL left out is deleted — so the settings are read first and
    /// written back merged: other apps' URLs stay, every flag already on stays on, ours are
    /// turned on, notifications are made active. Nothing is written when that changes nothing
    /// (the URL already there with its flags on): a second call is free. At most
    /// [`MAX_HOOK_URLS`] URLs fit a location; a full one is a validation error naming them.
    pub async fn register_webhooks(&self, url: &str) -> Result<Vec<String>, AdapterError> {
        let path = format!("/hooks_settings/{}", self.company_id);
        let data = self.call(Method::GET, &path, &[], None, true).await?;
        let current = match &data {
            Value::Null => Map::new(),
            other => object(other)
                .cloned()
                .ok_or_else(|| unexpected("hooks_settings is not an object"))?,
        };
        let Some(body) = merged_hooks(&current, url)? else {
            return Ok(subscribed());
        };
        self.call(Method::POST, &path, &[], Some(Value::Object(body)), false)
            .await?;
        Ok(subscribed())
    }
}

/// The webhook resources the program reads: visits, client cards and goods sales (a sale
/// outside a visit earns points too).
pub const HOOK_RESOURCES: [&str; 3] = ["record", "client", "goods_operations_sale"];

/// How many URLs a location's webhook settings hold (the vendor's limit).
pub const MAX_HOOK_URLS: usize = 10;

fn subscribed() -> Vec<String> {
    HOOK_RESOURCES.iter().map(|r| (*r).to_owned()).collect()
}

/// The settings to write so that `url` receives [`HOOK_RESOURCES`] without taking anything
/// from the others: `None` when they already do.
fn merged_hooks(
    current: &Map<String, Value>,
    url: &str,
) -> Result<Option<Map<String, Value>>, AdapterError> {
    let mut urls: Vec<String> = lenient::items(current.get("urls"))
        .iter()
        .filter_map(|u| u.as_str().map(str::to_owned))
        .collect();
    let on = |field: &str| -> Result<bool, AdapterError> {
        Ok(lenient::flag(current, field)
            .map_err(|e| unexpected(&format!("hooks_settings.{field}: {e}")))?
            .unwrap_or(false))
    };
    let mut changed = !urls.iter().any(|u| u == url) || !on("active")?;
    for r in HOOK_RESOURCES {
        changed |= !on(r)?;
    }
    if !changed {
        return Ok(None);
    }
    if !urls.iter().any(|u| u == url) {
        if urls.len() >= MAX_HOOK_URLS {
            return Err(AdapterError::Validation(vec![format!(
                "the location already has {} webhook URLs, the most it takes; remove one of: {}",
                urls.len(),
                urls.join(", ")
            )]));
        }
        urls.push(url.to_owned());
    }
    let mut body = Map::new();
    body.insert("urls".into(), json!(urls));
    body.insert("active".into(), json!(1));
    // Every flag the location has keeps its value (as 0/1); ours are on.
    for (field, value) in current {
        if field == "urls" || field == "active" {
            continue;
        }
        if let Ok(Some(flag)) = lenient::flag(current, field) {
            body.insert(field.clone(), json!(u8::from(flag)));
        } else if !value.is_null() {
            body.insert(field.clone(), value.clone());
        }
    }
    for r in HOOK_RESOURCES {
        body.insert(r.into(), json!(1));
    }
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_units_are_exact() {
        assert_eq!(major_units(10_050).to_string(), "100.5");
        assert_eq!(major_units(-20_000).to_string(), "-200");
        assert_eq!(major_units(1).to_string(), "0.01");
        assert_eq!(major_units(-105).to_string(), "-1.05");
    }

    #[test]
    fn booking_links() {
        let mut c = Company {
            id: "1".into(),
            title: String::new(),
            timezone_name: None,
            chain_id: None,
            bookforms: vec![
                Bookform {
                    id: "5".into(),
                    url: None,
                    is_default: false,
                },
                Bookform {
                    id: "19203".into(),
                    url: None,
                    is_default: true,
                },
            ],
        };
        assert_eq!(
            c.booking_link(CrmKind::Yclients).as_deref(),
            Some("https://n19203.yclients.com/")
        );
        assert_eq!(
            c.booking_link(CrmKind::Altegio).as_deref(),
            Some("https://n19203.alteg.io/")
        );
        c.bookforms[1].url = Some("https://n19203.yclients.com/".into());
        assert_eq!(
            c.booking_link(CrmKind::Yclients).as_deref(),
            Some("https://n19203.yclients.com/")
        );
        c.bookforms.clear();
        assert_eq!(c.booking_link(CrmKind::Yclients), None);
    }
}
