//! The REST client: one per connection, sharing the process's [`reqwest::Client`] and a
//! [`CallGate`] (the gateway's shared budget, or a [`crate::RateLimiter`] in one process).
//!
//! Every call goes through a tower stack: **retry** (idempotent calls only, on 429/502/503/504
//! and timeouts, honouring `Retry-After`, else exponential back-off with jitter) → **rate limit**
//! (the shared sliding window; every attempt counts) → **timeout** → reqwest. A create is never
//! retried blindly. A 401 on a user-scoped call logs in again once when a login is held.

use std::fmt;
use std::sync::Arc;

use loyalty_core::adapter::{ClientDraft, ClientPage, CrmClient, RecordPage};
use loyalty_core::{AdapterError, Phone, VisitEvent};
use reqwest::Method;
use serde_json::{Map, Value, json};
use tokio::sync::RwLock;

use crate::lenient;
use crate::webhook::{ParseContext, record_from_data};
use crm_http::{Reply, Transport};
use loyalty_core::quota::CallGate;

/// What the salon and the operator give to call the API. `Debug` hides every secret.
#[derive(Clone, Default)]
pub struct Credentials {
    /// The developer account's partner token.
    pub partner_token: String,
    /// A user token of the salon, if given.
    pub user_token: Option<String>,
    /// A login (phone or e-mail) and password to obtain or renew the user token.
    pub login: Option<(String, String)>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("partner_token", &"***")
            .field("user_token", &self.user_token.as_ref().map(|_| "***"))
            .field("login", &self.login.as_ref().map(|(l, _)| (l, "***")))
            .finish()
    }
}

/// The API of one company.
#[derive(Clone)]
pub struct YclientsClient {
    http: reqwest::Client,
    gate: Arc<dyn CallGate>,
    base_url: String,
    accept: &'static str,
    pub(crate) company_id: String,
    pub(crate) context: ParseContext,
    pub(crate) flavor_kind: loyalty_core::CrmKind,
    credentials: Credentials,
    user_token: Arc<RwLock<Option<String>>>,
    pub(crate) transport: Transport,
}

impl fmt::Debug for YclientsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("YclientsClient")
            .field("base_url", &self.base_url)
            .field("company_id", &self.company_id)
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl YclientsClient {
    pub fn new(
        http: reqwest::Client,
        gate: Arc<dyn CallGate>,
        config: &crate::YclientsConfig,
        credentials: Credentials,
    ) -> YclientsClient {
        YclientsClient {
            http,
            gate,
            base_url: config
                .base_url
                .clone()
                .unwrap_or_else(|| config.flavor.base_url.to_owned()),
            accept: config.flavor.accept,
            company_id: config.company_id.clone(),
            context: config.context,
            flavor_kind: config.flavor.kind,
            user_token: Arc::new(RwLock::new(credentials.user_token.clone())),
            credentials,
            transport: Transport::default(),
        }
    }

    /// Records or goods asked for per page.
    pub fn page_size(&self) -> u32 {
        self.transport.page_size
    }

    pub fn with_transport(mut self, transport: Transport) -> YclientsClient {
        self.transport = transport;
        self
    }

    /// `POST /auth`: exchanges the held login for a user token (201 `data.user_token`).
    pub async fn login(&self) -> Result<String, AdapterError> {
        let Some((login, password)) = &self.credentials.login else {
            return Err(AdapterError::Auth(
                "no user token and no login to obtain one".to_owned(),
            ));
        };
        let body = json!({ "login": login, "password": password });
        let (data, _) = self
            .request(Method::POST, "/auth", &[], Some(&body), None, false)
            .await?;
        let token = object(&data)
            .and_then(|d| lenient::text(d, "user_token"))
            .ok_or_else(|| AdapterError::Unexpected("POST /auth returned no user_token".into()))?;
        *self.user_token.write().await = Some(token.clone());
        Ok(token)
    }

    /// The client with exactly this phone: `quick_search` by digits, then an exact match on the
    /// normalized phone (the search also matches parts of numbers and names). Two cards with
    /// the same phone: the oldest (lowest id).
    pub async fn find_client_by_phone(
        &self,
        phone: &Phone,
    ) -> Result<Option<CrmClient>, AdapterError> {
        let body = json!({
            "page": 1,
            "page_size": 50,
            "fields": ["id", "name", "phone", "email"],
            "filters": [{ "type": "quick_search", "state": { "value": phone.digits() } }],
        });
        let path = format!("/company/{}/clients/search", self.company_id);
        let data = self
            .call(Method::POST, &path, &[], Some(body), true)
            .await?;
        let mut found: Vec<CrmClient> = each(&data, |c| crm_client(&self.context, c))?
            .into_iter()
            .filter(|c| c.phone.as_ref() == Some(phone))
            .collect();
        found.sort_by_key(|c| c.external_id.parse::<i64>().unwrap_or(i64::MAX));
        Ok(found.into_iter().next())
    }

    /// `GET /client/{company_id}/{id}`.
    pub async fn get_client(&self, id: &str) -> Result<CrmClient, AdapterError> {
        let path = format!("/client/{}/{}", self.company_id, segment(id)?);
        let data = self.call(Method::GET, &path, &[], None, true).await?;
        client_in(&self.context, &data)
    }

    /// `POST /clients/{company_id}` (never retried: a retry could create a second card).
    pub async fn create_client(&self, draft: &ClientDraft) -> Result<CrmClient, AdapterError> {
        let path = format!("/clients/{}", self.company_id);
        let data = self
            .call(Method::POST, &path, &[], Some(client_body(draft)), false)
            .await?;
        client_in(&self.context, &data)
    }

    /// `PUT /client/{company_id}/{id}` (idempotent: retried).
    pub async fn update_client(
        &self,
        id: &str,
        draft: &ClientDraft,
    ) -> Result<CrmClient, AdapterError> {
        let path = format!("/client/{}/{}", self.company_id, segment(id)?);
        let data = self
            .call(Method::PUT, &path, &[], Some(client_body(draft)), true)
            .await?;
        client_in(&self.context, &data)
    }

    /// `POST /sms/clients/by_id/{company_id}` for one client: an SMS from the salon's account
    /// (paid from its SMS balance in the CRM). Answered `201 {"success": true, "meta":
    /// {"message": "Accepted"}}`. Never retried here: the CRM has no key that would tell a
    /// retry from a second SMS, so the caller decides.
    pub async fn send_sms(&self, client_id: &str, text: &str) -> Result<(), AdapterError> {
        let id: i64 = segment(client_id)?
            .parse()
            .map_err(|_| AdapterError::Validation(vec![format!("bad client id {client_id:?}")]))?;
        let path = format!("/sms/clients/by_id/{}", self.company_id);
        let body = json!({ "client_ids": [id], "text": text });
        self.call(Method::POST, &path, &[], Some(body), false)
            .await
            .map(|_| ())
    }

    /// `GET /record/{company_id}/{record_id}`, as the visit it describes.
    pub async fn get_record(&self, id: &str) -> Result<VisitEvent, AdapterError> {
        let path = format!("/record/{}/{}", self.company_id, segment(id)?);
        let data = self.call(Method::GET, &path, &[], None, true).await?;
        let record = object(&data).ok_or_else(|| unexpected("record is not an object"))?;
        self.visit(record)
    }

    /// How much of a settled record's bill certificates and loyalty points paid, in minor
    /// units: `GET /visit/details/{company_id}/{record_id}/{visit_id}`, summing its
    /// `loyalty_transactions` that are a certificate payment (`type_id` 8, "Списание с
    /// сертификата") or a withdrawal of points (`is_loyalty_withdraw`). Discounts (already in
    /// the lines' `cost`), accruals and deposit payments (money paid in earlier) are not. A
    /// transaction tied to another record of the same visit (`item_record_id`) is that
    /// record's. Amounts are taken by size whatever their sign.
    pub async fn loyalty_paid(&self, record_id: &str, visit_id: &str) -> Result<i64, AdapterError> {
        let path = format!(
            "/visit/details/{}/{}/{}",
            self.company_id,
            segment(record_id)?,
            segment(visit_id)?
        );
        let data = self.call(Method::GET, &path, &[], None, true).await?;
        let details = object(&data).ok_or_else(|| unexpected("visit details are not an object"))?;
        let field = |e: lenient::FieldError| unexpected(&e.to_string());
        let mut paid = 0i64;
        for t in lenient::items(details.get("loyalty_transactions")) {
            let t =
                object(t).ok_or_else(|| unexpected("a loyalty transaction is not an object"))?;
            let other_record = lenient::id(t, "item_record_id")
                .map_err(field)?
                .is_some_and(|r| r != "0" && r != record_id);
            let certificate =
                lenient::int(t, "type_id").map_err(field)? == Some(CERTIFICATE_PAYMENT);
            let points = lenient::flag(t, "is_loyalty_withdraw").map_err(field)? == Some(true);
            if other_record || !(certificate || points) {
                continue;
            }
            let amount = lenient::signed_money_minor(t, "amount")
                .map_err(field)?
                .unwrap_or(0);
            paid = paid
                .checked_add(amount.saturating_abs())
                .ok_or_else(|| unexpected("loyalty payments overflow"))?;
        }
        Ok(paid)
    }

    /// One page of `GET /records/{company_id}?changed_after=…&with_deleted=1`. `changed_after`
    /// is typed as a date in the spec, so the day (company-local) of `since_ms` is sent: the
    /// window starts a little early, which deduplication makes free.
    pub async fn records_changed_since(
        &self,
        since_ms: i64,
        page: u32,
    ) -> Result<RecordPage, AdapterError> {
        let query = vec![
            ("changed_after", self.local_day(since_ms)?),
            ("with_deleted", "1".to_owned()),
        ];
        self.record_page(query, page).await
    }

    /// One page of `GET /records/{company_id}?start_date=…&end_date=…`: the records whose
    /// visit falls on those company-local days (deleted ones are no visits: not asked for).
    pub async fn records_between(
        &self,
        from_ms: i64,
        to_ms: i64,
        page: u32,
    ) -> Result<RecordPage, AdapterError> {
        let query = vec![
            ("start_date", self.local_day(from_ms)?),
            ("end_date", self.local_day(to_ms)?),
        ];
        self.record_page(query, page).await
    }

    /// The company-local day of a time, as `YYYY-MM-DD`.
    fn local_day(&self, ms: i64) -> Result<String, AdapterError> {
        let local = ms.saturating_add(i64::from(self.context.utc_offset_minutes) * 60_000);
        Ok(chrono::DateTime::from_timestamp_millis(local)
            .ok_or_else(|| AdapterError::Validation(vec![format!("bad time {ms}")]))?
            .format("%Y-%m-%d")
            .to_string())
    }

    async fn record_page(
        &self,
        mut query: Vec<(&str, String)>,
        page: u32,
    ) -> Result<RecordPage, AdapterError> {
        let page = page.max(1);
        let count = self.transport.page_size;
        query.push(("page", page.to_string()));
        query.push(("count", count.to_string()));
        let path = format!("/records/{}", self.company_id);
        let (data, meta) = self
            .call_with_meta(Method::GET, &path, &query, None, true)
            .await?;
        let (records, rejected, listed) = read_items(&data, "record", |r| self.visit(r))?;
        let total = total_count(&meta)?;
        Ok(RecordPage {
            caveat: None,
            records,
            rejected,
            next_page: more(page, count, listed, total).then_some(page + 1),
            total: total.and_then(|t| u64::try_from(t).ok()),
        })
    }

    /// `POST /company/{company_id}/clients/search`, every card by id: one page of clients.
    /// `birth_date` is asked for although the search's documented field list lacks it
    /// (assumed: a field it does not know is left out, and the card has no birth date here).
    pub async fn list_clients(&self, page: u32) -> Result<ClientPage, AdapterError> {
        let page = page.max(1);
        let count = self.transport.page_size.min(200);
        let body = json!({
            "page": page,
            "page_size": count,
            "fields": ["id", "name", "phone", "email", "birth_date"],
            "order_by": "id",
            "order_by_direction": "asc",
        });
        let path = format!("/company/{}/clients/search", self.company_id);
        let (data, meta) = self
            .call_with_meta(Method::POST, &path, &[], Some(body), true)
            .await?;
        let (clients, rejected, listed) =
            read_items(&data, "client", |c| crm_client(&self.context, c))?;
        let total = total_count(&meta)?;
        Ok(ClientPage {
            clients,
            rejected,
            next_page: more(page, count, listed, total).then_some(page + 1),
            total: total.and_then(|t| u64::try_from(t).ok()),
        })
    }

    /// A record from the API, read like a webhook's: one without `attendance` stays
    /// undecidable (`needs_refetch`), and the engine refuses to guess its status.
    fn visit(&self, record: &Map<String, Value>) -> Result<VisitEvent, AdapterError> {
        record_from_data(&self.context, self.company_id.clone(), None, record)
            .map_err(|e| unexpected(&e.0))
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
        idempotent: bool,
    ) -> Result<Value, AdapterError> {
        self.call_with_meta(method, path, query, body, idempotent)
            .await
            .map(|(data, _)| data)
    }

    /// A user-scoped call (partner and user token), unwrapping the `{success, data, meta}`
    /// envelope; a 401 logs in again once when a login is held.
    pub(crate) async fn call_with_meta(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
        idempotent: bool,
    ) -> Result<(Value, Value), AdapterError> {
        let user = self.current_user_token().await?;
        let first = self
            .request(
                method.clone(),
                path,
                query,
                body.as_ref(),
                Some(&user),
                idempotent,
            )
            .await;
        match first {
            Err(AdapterError::Auth(_)) if self.credentials.login.is_some() => {
                let user = self.login().await?;
                self.request(method, path, query, body.as_ref(), Some(&user), idempotent)
                    .await
            }
            other => other,
        }
    }

    /// One request with the given tokens, through the transport stack.
    async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        user: Option<&str>,
        idempotent: bool,
    ) -> Result<(Value, Value), AdapterError> {
        let mut auth = format!("Bearer {}", self.credentials.partner_token);
        if let Some(user) = user {
            auth.push_str(&format!(", User {user}"));
        }
        let req = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .header(reqwest::header::ACCEPT, self.accept)
            .header(reqwest::header::AUTHORIZATION, auth);
        let req = crm_http::json_request(req, query, body)?;
        envelope(self.send(req, idempotent).await?)
    }

    async fn current_user_token(&self) -> Result<String, AdapterError> {
        if let Some(token) = self.user_token.read().await.clone() {
            return Ok(token);
        }
        self.login().await
    }

    /// One call through the shared transport stack ([`crm_http::send`]).
    async fn send(&self, req: reqwest::Request, idempotent: bool) -> Result<Reply, AdapterError> {
        crm_http::send(&self.http, &self.gate, self.transport, req, idempotent).await
    }
}

/// Unwraps `{success, data, meta}` and maps failures to typed errors.
fn envelope(reply: Reply) -> Result<(Value, Value), AdapterError> {
    let status = reply.status;
    let body: Option<Value> = serde_json::from_slice(&reply.body).ok();
    let map = body.as_ref().and_then(|b| b.as_object());
    let success = map
        .map(|m| lenient::flag(m, "success"))
        .transpose()
        .ok()
        .flatten()
        .flatten();
    let meta = map
        .and_then(|m| m.get("meta"))
        .cloned()
        .unwrap_or(Value::Null);
    let messages = messages(&meta);
    let message = messages.join("; ");
    match status {
        200..=299 => {
            let Some(map) = map else {
                return Err(unexpected(&format!(
                    "HTTP {status} without a JSON envelope"
                )));
            };
            if success == Some(false) {
                return Err(AdapterError::Validation(if messages.is_empty() {
                    vec!["success: false".to_owned()]
                } else {
                    messages
                }));
            }
            Ok((map.get("data").cloned().unwrap_or(Value::Null), meta))
        }
        401 => Err(AdapterError::Auth(message)),
        402 | 403 => Err(AdapterError::Forbidden(message)),
        404 => Err(AdapterError::NotFound(message)),
        400 | 422 => Err(AdapterError::Validation(messages)),
        429 => Err(AdapterError::RateLimited {
            retry_after: reply.retry_after,
        }),
        500..=599 => Err(AdapterError::Transient(format!("HTTP {status}: {message}"))),
        _ => Err(unexpected(&format!("HTTP {status}: {message}"))),
    }
}

/// `meta.message` and every string inside `meta.errors` (whose shape varies).
fn messages(meta: &Value) -> Vec<String> {
    lenient::messages(meta, &["message", "errors"])
}

/// The objects of a list answer; anything else in it is an error.
pub(crate) fn each<T>(
    data: &Value,
    f: impl Fn(&Map<String, Value>) -> Result<T, AdapterError>,
) -> Result<Vec<T>, AdapterError> {
    lenient::items(Some(data))
        .iter()
        .map(|v| {
            object(v)
                .ok_or_else(|| unexpected("a list item is not an object"))
                .and_then(&f)
        })
        .collect()
}

pub(crate) fn object(v: &Value) -> Option<&Map<String, Value>> {
    lenient::object(Some(v))
}

/// The client an answer's `data` holds.
fn client_in(ctx: &ParseContext, data: &Value) -> Result<CrmClient, AdapterError> {
    object(data)
        .map(|c| crm_client(ctx, c))
        .unwrap_or_else(|| Err(unexpected("the client in the answer is not an object")))
}

fn crm_client(ctx: &ParseContext, c: &Map<String, Value>) -> Result<CrmClient, AdapterError> {
    let external_id = lenient::id(c, "id")
        .map_err(|e| unexpected(&e.to_string()))?
        .ok_or_else(|| unexpected("client without an id"))?;
    Ok(CrmClient {
        external_id,
        phone: crate::webhook::phone(ctx, c),
        name: lenient::text(c, "display_name").or_else(|| lenient::text(c, "name")),
        email: lenient::text(c, "email"),
        birth_date: crate::webhook::birth_date(c),
    })
}

fn client_body(draft: &ClientDraft) -> Value {
    let mut body = json!({ "name": draft.name, "phone": draft.phone.digits() });
    if let Some(email) = &draft.email {
        body["email"] = json!(email);
    }
    body
}

/// An id for a URL path: digits and letters only, so it cannot change the path.
pub(crate) fn segment(id: &str) -> Result<&str, AdapterError> {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(id)
    } else {
        Err(AdapterError::Validation(vec![format!("bad id {id:?}")]))
    }
}

/// The items of a list answer, each read on its own: one that cannot be read leaves the rest
/// good, its reason kept. Also how many items the page listed.
fn read_items<T>(
    data: &Value,
    what: &str,
    read: impl Fn(&Map<String, Value>) -> Result<T, AdapterError>,
) -> Result<(Vec<T>, Vec<String>, usize), AdapterError> {
    if !matches!(data, Value::Array(_) | Value::Null) {
        return Err(unexpected(&format!("the {what} list is not a list")));
    }
    let items = lenient::items(Some(data));
    let mut good = Vec::new();
    let mut rejected = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match object(item).map(&read) {
            Some(Ok(value)) => good.push(value),
            Some(Err(e)) => rejected.push(format!("item {i}: {e}")),
            None => rejected.push(format!("item {i} is not an object")),
        }
    }
    Ok((good, rejected, items.len()))
}

/// `meta.total_count`, when the answer has it.
fn total_count(meta: &Value) -> Result<Option<i64>, AdapterError> {
    Ok(object(meta)
        .map(|m| lenient::int(m, "total_count"))
        .transpose()
        .map_err(|e| unexpected(&e.to_string()))?
        .flatten())
}

/// Whether another page follows page `page` of `count` that listed `listed` items.
/// Whether another page follows page `page` (1-based), which listed `listed` items of the
/// `count` asked for. A CRM may give fewer a page than asked (its own maximum): with a total,
/// pages are taken to be of the size it gave, so a capped listing is read to its end (at the
/// price of one empty page after a short last one).
fn more(page: u32, count: u32, listed: usize, total: Option<i64>) -> bool {
    if listed == 0 {
        return false;
    }
    match total {
        Some(total) => i64::from(page) * (listed as i64) < total,
        None => listed >= count as usize,
    }
}

/// `loyalty_transactions[].type_id` of a payment with a certificate ("Списание с сертификата").
const CERTIFICATE_PAYMENT: i64 = 8;

pub(crate) fn unexpected(msg: &str) -> AdapterError {
    AdapterError::Unexpected(msg.to_owned())
}

#[cfg(test)]
mod tests {
    use super::more;

    #[test]
    fn pages_follow_the_total_at_the_size_the_crm_gives() {
        // As asked: 450 items, 200 a page.
        assert!(more(1, 200, 200, Some(450)));
        assert!(more(2, 200, 200, Some(450)));
        // The short last page looks like a capped one: one empty page ends it.
        assert!(more(3, 200, 50, Some(450)));
        assert!(!more(4, 200, 0, Some(450)));
        // The CRM gives 50 a page whatever is asked: read to the end, not stopped at page 3.
        assert!(more(8, 200, 50, Some(450)));
        assert!(!more(9, 200, 50, Some(450)));
        // Without a total: a short page is the last.
        assert!(more(1, 200, 200, None));
        assert!(!more(2, 200, 199, None));
        assert!(!more(1, 200, 0, Some(450)));
    }
}
