//! What the adapter asks of the API: clients, services, staff, visits, the update replay and
//! certificates.

use std::collections::{BTreeSet, HashMap};

use loyalty_core::adapter::{
    ClientDraft, ClientPage, CrmClient, CrmService, CrmStaff, IssuedReward, RecordPage,
    RewardRequest,
};
use loyalty_core::event::ClientRef;
use loyalty_core::{AdapterError, CrmEvent, Money, Phone, VisitEvent};
use reqwest::Method;
use serde_json::{Value, json};

use crate::api::{BeautyProClient, objects};
use crate::rows::{self, Appointment, Malformed, Sale};
use crate::webhook;
use crm_http::lenient;

/// The tables whose updates the gateway subscribes to.
pub const TABLES: [(&str, &str); 4] = [
    ("appointments", "client,state,date"),
    ("sales", "appointment,client,type,sum,cancel"),
    ("clients", "name,phone,email"),
    ("services", "name,archive"),
];

/// Days of history one import page reads.
const WINDOW_MS: i64 = 30 * 86_400_000;

fn malformed(Malformed(why): Malformed) -> AdapterError {
    AdapterError::Unexpected(why)
}

/// `YYYY-MM-DDTHH:mm:ss` in UTC, as the API reads times.
fn iso(ms: i64) -> Result<String, AdapterError> {
    Ok(chrono::DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| AdapterError::Validation(vec![format!("bad time {ms}")]))?
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string())
}

/// The certificate number a code is written as: its eight characters read as base-31 digits
/// (unique per code, below 8.6 · 10¹¹), so the certificate can be found again by number.
pub fn certificate_number(code: &str) -> Result<i64, AdapterError> {
    let body: Vec<u8> = code.bytes().filter(|b| *b != b'-').take(8).collect();
    if body.len() != 8 {
        return Err(AdapterError::Validation(vec![format!(
            "{code:?} is not a code"
        )]));
    }
    body.iter().try_fold(0i64, |n, b| {
        let digit = loyalty_core::code::ALPHABET
            .iter()
            .position(|a| a == b)
            .ok_or_else(|| AdapterError::Validation(vec![format!("{code:?} is not a code")]))?;
        Ok(n * 31 + digit as i64)
    })
}

impl BeautyProClient {
    /// `GET /clients?phone={digits}`: the cards with this phone (a phone may have several
    /// cards; ids change when cards are merged, so a client is always found again this way).
    /// Of several, the first the API lists.
    pub async fn find_client_by_phone(
        &self,
        phone: &Phone,
    ) -> Result<Option<CrmClient>, AdapterError> {
        let answer = self
            .get(
                "/clients",
                rows::CLIENT_FIELDS,
                &[("phone", phone.digits().to_owned())],
            )
            .await?;
        for c in objects(&answer)? {
            if rows::phones(&self.context, c).contains(phone) {
                return rows::client(&self.context, c).map(Some).map_err(malformed);
            }
        }
        Ok(None)
    }

    pub async fn get_client(&self, id: &str) -> Result<CrmClient, AdapterError> {
        let answer = self
            .get(
                &format!("/clients/{}", segment(id)?),
                rows::CLIENT_FIELDS,
                &[],
            )
            .await?;
        let m = answer
            .as_object()
            .ok_or_else(|| AdapterError::Unexpected("the client is not an object".into()))?;
        rows::client(&self.context, m).map_err(malformed)
    }

    /// `POST /clients` (never retried: a retry could make a second card) → `201 {"id"}`.
    pub async fn create_client(&self, draft: &ClientDraft) -> Result<CrmClient, AdapterError> {
        let answer = self
            .call(
                Method::POST,
                "/clients",
                &[],
                Some(client_body(draft)),
                false,
            )
            .await?;
        let id = answer
            .as_object()
            .and_then(|m| rows::guid(m, "id").ok().flatten())
            .ok_or_else(|| AdapterError::Unexpected("POST /clients answered no id".into()))?;
        Ok(draft.client(id))
    }

    /// `PUT /clients/{id}` with the fields to change (partial) → 204.
    pub async fn update_client(
        &self,
        id: &str,
        draft: &ClientDraft,
    ) -> Result<CrmClient, AdapterError> {
        self.call(
            Method::PUT,
            &format!("/clients/{}", segment(id)?),
            &[],
            Some(client_body(draft)),
            true,
        )
        .await?;
        Ok(draft.client(id.to_owned()))
    }

    /// `GET /services?archive=false`, each with the first location's price.
    pub async fn list_services(&self) -> Result<Vec<CrmService>, AdapterError> {
        let answer = self
            .get(
                "/services",
                rows::SERVICE_FIELDS,
                &[("archive", "false".into())],
            )
            .await?;
        let mut out = Vec::new();
        for s in objects(&answer)? {
            if lenient::flag(s, "archive").ok().flatten() == Some(true) {
                continue;
            }
            let Some(id) = rows::guid(s, "id").map_err(malformed)? else {
                continue;
            };
            let price = lenient::items(s.get("location_prices"))
                .first()
                .and_then(Value::as_object)
                .map(|p| lenient::money_minor(p, "price"))
                .transpose()
                .map_err(|e| AdapterError::Unexpected(e.to_string()))?
                .flatten()
                .map(|minor| Money::new(minor, self.context.currency))
                .transpose()
                .map_err(|e| AdapterError::Unexpected(e.to_string()))?;
            out.push(CrmService {
                external_id: id,
                title: lenient::text(s, "name").unwrap_or_default(),
                category_id: rows::guid(s, "category").map_err(malformed)?,
                price_min: price,
                price_max: price,
            });
        }
        Ok(out)
    }

    /// `GET /employees?archive=false`; anyone archived is left out.
    pub async fn list_staff(&self) -> Result<Vec<CrmStaff>, AdapterError> {
        let answer = self
            .get(
                "/employees",
                rows::EMPLOYEE_FIELDS,
                &[("archive", "false".into())],
            )
            .await?;
        let mut out = Vec::new();
        for e in objects(&answer)? {
            if lenient::flag(e, "archive").ok().flatten() == Some(true) {
                continue;
            }
            if let Some(id) = rows::guid(e, "id").map_err(malformed)? {
                out.push(CrmStaff {
                    external_id: id,
                    name: lenient::text(e, "name").unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    /// A visit now: the appointment, its client's card as it is now, and the client's sales
    /// from the appointment's day to two days after (a bill is settled later at times) that
    /// name it (**assumed**: `/sales` filters by `client` and `sale_date_from`/`_to`, as
    /// documented, but not by appointment).
    pub async fn get_record(&self, id: &str) -> Result<VisitEvent, AdapterError> {
        let answer = self
            .get(
                &format!("/appointments/{}", segment(id)?),
                rows::APPOINTMENT_FIELDS,
                &[],
            )
            .await?;
        let m = answer
            .as_object()
            .ok_or_else(|| AdapterError::Unexpected("the appointment is not an object".into()))?;
        let appt = rows::appointment(m).map_err(malformed)?;
        let client = match &appt.client {
            Some(c) => Some(self.client_ref(c).await?),
            None => None,
        };
        let sales = match (&appt.client, appt.at_ms) {
            (Some(c), Some(at)) => {
                let day = at - at.rem_euclid(86_400_000);
                self.sales(&[
                    ("client", c.clone()),
                    ("sale_date_from", iso(day)?),
                    ("sale_date_to", iso(day + 3 * 86_400_000)?),
                ])
                .await?
            }
            _ => Vec::new(),
        };
        Ok(rows::visit(
            &self.context,
            &self.database,
            &appt,
            client,
            &sales,
        ))
    }

    /// Who a card is now: its phone (a merged card's id may change; the phone does not).
    async fn client_ref(&self, id: &str) -> Result<ClientRef, AdapterError> {
        match self.get_client(id).await {
            Ok(c) => Ok(ClientRef {
                external_id: Some(c.external_id),
                phone: c.phone,
                name: c.name,
            }),
            Err(AdapterError::NotFound(_)) => Ok(ClientRef {
                external_id: Some(id.to_owned()),
                phone: None,
                name: None,
            }),
            Err(e) => Err(e),
        }
    }

    async fn sales(&self, query: &[(&str, String)]) -> Result<Vec<Sale>, AdapterError> {
        let answer = self.get("/sales", rows::SALE_FIELDS, query).await?;
        objects(&answer)?
            .into_iter()
            .map(|s| rows::sale(s).map_err(malformed))
            .collect()
    }

    /// The update replay, the poller of this CRM. With a cursor (the last update id handed
    /// to the engine): page 1 is `PUT /updates/webhooks/batch {"from_update": cursor}`, each
    /// update read like a webhook; page 2 saves the cursor past them (asked only once the
    /// engine took page 1 in, so a pass that dies replays it) and ends. Without a cursor yet
    /// (no update seen), or when the replay answers no rows (it re-posted them to the webhook
    /// URL instead — the other reading of the docs), the sales since `since_ms` name the
    /// visits to fetch.
    pub async fn records_changed_since(
        &self,
        since_ms: i64,
        page: u32,
    ) -> Result<RecordPage, AdapterError> {
        let cursor = self.auth.update_id().await?;
        match (cursor, page) {
            (Some(from), 1) => {
                let answer = self
                    .call(
                        Method::PUT,
                        "/updates/webhooks/batch",
                        &[],
                        Some(json!({ "from_update": from })),
                        true,
                    )
                    .await?;
                if !answer.is_array() {
                    return self.sales_since(since_ms).await;
                }
                let mut records = Vec::new();
                let mut rejected = Vec::new();
                let mut last = from;
                for (i, item) in lenient::items(Some(&answer)).iter().enumerate() {
                    match webhook::updates(&self.context, &self.database, item) {
                        Ok(updates) => {
                            for u in updates {
                                last = last.max(u.update_id.unwrap_or(from));
                                if let CrmEvent::Visit(v) = u.event {
                                    records.push(v);
                                }
                            }
                        }
                        Err(Malformed(why)) => rejected.push(format!("update {}: {why}", i + 1)),
                    }
                }
                dedupe(&mut records);
                *self.replayed.lock().await = Some(last);
                Ok(RecordPage {
                    records,
                    rejected,
                    total: None,
                    next_page: (last > from).then_some(2),
                    caveat: None,
                })
            }
            (Some(_), _) => {
                if let Some(last) = self.replayed.lock().await.take() {
                    self.auth.save_update_id(last).await?;
                }
                Ok(RecordPage {
                    records: Vec::new(),
                    rejected: Vec::new(),
                    total: None,
                    next_page: None,
                    caveat: None,
                })
            }
            (None, _) => self.sales_since(since_ms).await,
        }
    }

    /// The visits whose sales changed since `since_ms` (`/sales?sale_date_from=…`), to fetch.
    async fn sales_since(&self, since_ms: i64) -> Result<RecordPage, AdapterError> {
        let sales = self
            .sales(&[
                ("sale_date_from", iso(since_ms)?),
                ("sale_date_to", iso(self.now() + 86_400_000)?),
            ])
            .await?;
        let mut records: Vec<VisitEvent> = Vec::new();
        for s in &sales {
            match &s.appointment {
                Some(a) => records.push(webhook::stub(&self.context, &self.database, a.clone())),
                None => {
                    let client = s.client.clone().map(|c| ClientRef {
                        external_id: Some(c),
                        phone: None,
                        name: None,
                    });
                    records.push(rows::sale_visit(&self.context, &self.database, s, client));
                }
            }
        }
        dedupe(&mut records);
        Ok(RecordPage {
            records,
            rejected: Vec::new(),
            total: None,
            next_page: None,
            caveat: None,
        })
    }

    /// The history import, 30 days a page: the appointments dated then, the sales of those
    /// days, and the cards of their clients (`ids=`), each visit whole.
    pub async fn records_between(
        &self,
        from_ms: i64,
        to_ms: i64,
        page: u32,
    ) -> Result<RecordPage, AdapterError> {
        let start = from_ms.saturating_add(i64::from(page.max(1) - 1).saturating_mul(WINDOW_MS));
        if start > to_ms {
            return Ok(RecordPage {
                records: Vec::new(),
                rejected: Vec::new(),
                total: None,
                next_page: None,
                caveat: None,
            });
        }
        let end = start.saturating_add(WINDOW_MS).min(to_ms);
        let answer = self
            .get(
                "/appointments",
                rows::APPOINTMENT_FIELDS,
                &[("from", iso(start)?), ("to", iso(end)?)],
            )
            .await?;
        let mut rejected = Vec::new();
        let mut appts: Vec<Appointment> = Vec::new();
        for (i, a) in objects(&answer)?.into_iter().enumerate() {
            match rows::appointment(a) {
                Ok(a) => appts.push(a),
                Err(Malformed(why)) => rejected.push(format!("appointment {}: {why}", i + 1)),
            }
        }
        let sales = self
            .sales(&[
                ("sale_date_from", iso(start)?),
                ("sale_date_to", iso(end + 3 * 86_400_000)?),
            ])
            .await?;
        let ids: BTreeSet<&str> = appts.iter().filter_map(|a| a.client.as_deref()).collect();
        let mut cards: HashMap<String, CrmClient> = HashMap::new();
        if !ids.is_empty() {
            let list = ids.iter().copied().collect::<Vec<_>>().join(",");
            let answer = self
                .get("/clients", rows::CLIENT_FIELDS, &[("ids", list)])
                .await?;
            for c in objects(&answer)? {
                if let Ok(c) = rows::client(&self.context, c) {
                    cards.insert(c.external_id.clone(), c);
                }
            }
        }
        let records = appts
            .iter()
            .map(|a| {
                let client = a.client.as_ref().map(|id| match cards.get(id) {
                    Some(c) => ClientRef {
                        external_id: Some(c.external_id.clone()),
                        phone: c.phone.clone(),
                        name: c.name.clone(),
                    },
                    None => ClientRef {
                        external_id: Some(id.clone()),
                        phone: None,
                        name: None,
                    },
                });
                rows::visit(&self.context, &self.database, a, client, &sales)
            })
            .collect();
        Ok(RecordPage {
            records,
            rejected,
            total: None,
            next_page: (end < to_ms).then_some(page.max(1) + 1),
            caveat: None,
        })
    }

    /// `GET /clients?archive=false`: every card at once (the API does not page).
    pub async fn list_clients(&self, page: u32) -> Result<ClientPage, AdapterError> {
        if page > 1 {
            return Ok(ClientPage {
                clients: Vec::new(),
                rejected: Vec::new(),
                next_page: None,
                total: None,
            });
        }
        let answer = self
            .get(
                "/clients",
                rows::CLIENT_FIELDS,
                &[("archive", "false".into())],
            )
            .await?;
        let mut clients = Vec::new();
        let mut rejected = Vec::new();
        for (i, c) in objects(&answer)?.into_iter().enumerate() {
            match rows::client(&self.context, c) {
                Ok(c) => clients.push(c),
                Err(Malformed(why)) => rejected.push(format!("client {}: {why}", i + 1)),
            }
        }
        let total = Some(clients.len() as u64);
        Ok(ClientPage {
            clients,
            rejected,
            next_page: None,
            total,
        })
    }

    /// The certificate carrying `req.code` (by its number), given to the client the phone
    /// names now if it is not hers yet (an earlier try created it and lost the assignment).
    pub async fn find_certificate(
        &self,
        req: &RewardRequest,
    ) -> Result<Option<IssuedReward>, AdapterError> {
        let number = certificate_number(&req.code)?;
        let answer = self
            .get(
                "/certificates",
                rows::CERTIFICATE_FIELDS,
                &[("number", number.to_string())],
            )
            .await?;
        let Some(found) = objects(&answer)?
            .into_iter()
            .find(|c| lenient::int(c, "number").ok().flatten() == Some(number))
        else {
            return Ok(None);
        };
        let id = rows::guid(found, "id")
            .map_err(malformed)?
            .ok_or_else(|| AdapterError::Unexpected("a certificate without an id".into()))?;
        if rows::guid(found, "client").map_err(malformed)?.is_none() {
            self.assign(&id, &req.phone).await?;
        }
        let status = lenient::text(found, "status").unwrap_or_default();
        Ok(Some(IssuedReward {
            external_id: id,
            code: req.code.clone(),
            spent: matches!(status.as_str(), "used" | "fully_utilized"),
        }))
    }

    /// `POST /certificates` (never retried; the caller looks for it first), then `PUT
    /// /certificates/{id} {"client": …}` to the card the phone names now.
    pub async fn issue_certificate(
        &self,
        req: &RewardRequest,
    ) -> Result<IssuedReward, AdapterError> {
        let number = certificate_number(&req.code)?;
        let major = |minor: i64| {
            let per = req.value.currency().minor_per_major();
            if minor % per == 0 {
                json!(minor / per)
            } else {
                json!(format!("{}.{:02}", minor / per, minor % per))
            }
        };
        let mut body = json!({
            "name": req.crm_title(),
            "number": number,
            "price": major(req.value.minor()),
            "total_sum": major(req.value.minor()),
            "one_time": false,
        });
        if let Some(at) = req.expires_at_ms {
            body["expire_date"] = json!(iso(at)?);
        }
        let answer = self
            .call(Method::POST, "/certificates", &[], Some(body), false)
            .await?;
        let id = answer
            .as_object()
            .and_then(|m| rows::guid(m, "id").ok().flatten())
            .ok_or_else(|| AdapterError::Unexpected("POST /certificates answered no id".into()))?;
        self.assign(&id, &req.phone).await?;
        Ok(IssuedReward {
            external_id: id,
            code: req.code.clone(),
            spent: false,
        })
    }

    /// Gives a certificate to the card the phone names now (never a cached id).
    async fn assign(&self, certificate: &str, phone: &Phone) -> Result<(), AdapterError> {
        let client = self.find_client_by_phone(phone).await?.ok_or_else(|| {
            AdapterError::NotFound(format!("no card with the phone {}", phone.masked()))
        })?;
        self.call(
            Method::PUT,
            &format!("/certificates/{}", segment(certificate)?),
            &[],
            Some(json!({ "client": client.external_id })),
            true,
        )
        .await?;
        Ok(())
    }

    /// `PUT /updates/webhooks/register {url, table, fields}` for every table the program
    /// reads, on the database's own server (servers do not share updates).
    pub async fn register_webhooks(&self, url: &str) -> Result<Vec<String>, AdapterError> {
        let mut done = Vec::new();
        for (table, fields) in TABLES {
            self.call(
                Method::PUT,
                "/updates/webhooks/register",
                &[],
                Some(json!({ "url": url, "table": table, "fields": fields })),
                true,
            )
            .await?;
            done.push(table.to_owned());
        }
        Ok(done)
    }

    /// A delivery came: the first one ever seeds the replay's cursor just before its update,
    /// so every later replay starts where webhooks started (the history import covers what
    /// came before).
    pub async fn webhook_received(&self, body: &[u8]) -> Result<(), AdapterError> {
        if self.auth.update_id().await?.is_some() {
            return Ok(());
        }
        let Ok(updates) = webhook::parse(&self.context, &self.database, body) else {
            return Ok(());
        };
        if let Some(first) = updates.iter().filter_map(|u| u.update_id).min() {
            // Tokens must exist for the cursor to ride with them.
            self.auth.current(self).await?;
            self.auth.save_update_id(first - 1).await?;
        }
        Ok(())
    }
}

/// One event per record: the last one named wins.
fn dedupe(records: &mut Vec<VisitEvent>) {
    let mut seen = BTreeSet::new();
    records.reverse();
    records.retain(|r| seen.insert(r.record_id.clone()));
    records.reverse();
}

fn client_body(draft: &ClientDraft) -> Value {
    let (first, last) = match draft.name.trim().split_once(' ') {
        Some((f, l)) => (f.to_owned(), Some(l.trim().to_owned())),
        None => (draft.name.trim().to_owned(), None),
    };
    let mut body = json!({ "firstname": first, "phone": draft.phone.as_str() });
    if let Some(last) = last {
        body["lastname"] = json!(last);
    }
    if let Some(email) = &draft.email {
        body["email"] = json!(email);
    }
    body
}

/// An id as a path segment: a GUID's characters only.
fn segment(id: &str) -> Result<&str, AdapterError> {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        Ok(id)
    } else {
        Err(AdapterError::Validation(vec![format!(
            "{id:?} is not an id"
        )]))
    }
}
