//! The REST client of one organisation: `POST /api/v2/auth` for a JWT that does not expire
//! (kept in memory, obtained again once on a 401), then every call with
//! `Authorization: Bearer <JWT>` through [`crm_http::send`] (444 and 429 read as "rate
//! limited").

use std::fmt;
use std::sync::Arc;

use crm_http::{MemoryTokens, Reply, TokenStore, Transport, lenient};
use loyalty_core::adapter::{ClientDraft, ClientPage, CrmClient, CrmService, CrmStaff, RecordPage};
use loyalty_core::quota::CallGate;
use loyalty_core::{AdapterError, Money, Phone, VisitEvent};
use reqwest::Method;
use serde_json::{Map, Value, json};
use tokio::sync::RwLock;

use crate::visit::{self, Malformed, ParseContext, arnica_phone};

/// The widest `modificate` window Arnica searches: "changed in the last N minutes", at most a
/// day.
pub const MAX_MODIFICATE_MINUTES: i64 = 1_440;

/// The integrator's login. `Debug` hides the password and the token.
#[derive(Clone, Default)]
pub struct Credentials {
    /// The e-mail of the "integrator" employee SQNS support enabled the API for.
    pub email: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &self.email)
            .field("password", &"***")
            .finish()
    }
}

pub use crm_http::Clock;

/// The API of one organisation.
#[derive(Clone)]
pub struct ArnicaClient {
    http: reqwest::Client,
    gate: Arc<dyn CallGate>,
    base_url: String,
    pub(crate) org_id: String,
    pub(crate) context: ParseContext,
    credentials: Credentials,
    /// The JWT in hand; read from `tokens` when empty.
    token: Arc<RwLock<Option<String>>>,
    /// Where the JWT is kept between adapters and instances (`{"token": "…"}`).
    tokens: Arc<dyn TokenStore>,
    pub(crate) transport: Transport,
    clock: Clock,
}

impl fmt::Debug for ArnicaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArnicaClient")
            .field("base_url", &self.base_url)
            .field("org_id", &self.org_id)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// Arnica's transport: 444 (its "too many requests") and 429 rate-limit, pages of 100 (the
/// documented ceiling).
pub fn transport() -> Transport {
    Transport {
        page_size: 100,
        rate_limited: &[429, 444],
        ..Transport::default()
    }
}

impl ArnicaClient {
    pub fn new(
        http: reqwest::Client,
        gate: Arc<dyn CallGate>,
        config: &crate::ArnicaConfig,
        credentials: Credentials,
    ) -> ArnicaClient {
        ArnicaClient {
            http,
            gate,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            org_id: config.org_id.clone(),
            context: config.context,
            token: Arc::new(RwLock::new(None)),
            tokens: Arc::new(MemoryTokens::new()),
            credentials,
            transport: transport(),
            clock: crm_http::system_clock(),
        }
    }

    /// Other retry and timeout settings (the rate-limit statuses stay Arnica's).
    pub fn with_transport(mut self, transport: Transport) -> ArnicaClient {
        self.transport = Transport {
            rate_limited: self.transport.rate_limited,
            page_size: transport.page_size.clamp(1, 100),
            ..transport
        };
        self
    }

    /// Keeps the JWT in `tokens` (the gateway's: the connection's settings), so a new adapter
    /// or another instance uses it instead of logging in again.
    pub fn with_tokens(mut self, tokens: Arc<dyn TokenStore>) -> ArnicaClient {
        self.tokens = tokens;
        self
    }

    pub fn with_clock(mut self, clock: Clock) -> ArnicaClient {
        self.clock = clock;
        self
    }

    /// `POST /api/v2/auth` with the integrator's e-mail and password: the JWT, checked to be
    /// for this connection's organisation (`user.orgId`).
    pub async fn login(&self) -> Result<String, AdapterError> {
        let body =
            json!({ "email": self.credentials.email, "password": self.credentials.password });
        let answer = self
            .request(Method::POST, "/api/v2/auth", &[], Some(&body), None, false)
            .await?;
        let map = answer
            .as_object()
            .ok_or_else(|| unexpected("POST /auth: the answer is not an object"))?;
        let token = lenient::text(map, "token")
            .ok_or_else(|| unexpected("POST /auth returned no token"))?;
        let org =
            lenient::object(map.get("user")).and_then(|u| lenient::id(u, "orgId").ok().flatten());
        if let Some(org) = org.filter(|o| *o != self.org_id) {
            return Err(AdapterError::Forbidden(format!(
                "the login is for organisation {org}, the connection for {}",
                self.org_id
            )));
        }
        *self.token.write().await = Some(token.clone());
        // Kept for the next adapter; a save that loses to another instance's login loses
        // nothing (either token works: the JWT does not expire).
        let stored = self.tokens.load().await?;
        self.tokens
            .swap(stored.version, &json!({ "token": token }).to_string())
            .await?;
        Ok(token)
    }

    /// The JWT in hand, else the one kept, else a new login.
    async fn current_token(&self) -> Result<String, AdapterError> {
        if let Some(token) = self.token.read().await.clone() {
            return Ok(token);
        }
        let kept = self
            .tokens
            .load()
            .await?
            .json
            .and_then(|j| serde_json::from_str::<Value>(&j).ok())
            .and_then(|v| v.get("token").and_then(Value::as_str).map(str::to_owned));
        match kept {
            Some(token) => {
                *self.token.write().await = Some(token.clone());
                Ok(token)
            }
            None => self.login().await,
        }
    }

    /// `GET /api/v2/client/phone/{+7(XXX)XXX-XX-XX}`: the card with this phone, `None` on 404.
    /// An answer of several cards (not documented; assumed possible) gives the oldest.
    pub async fn find_client_by_phone(
        &self,
        phone: &Phone,
    ) -> Result<Option<CrmClient>, AdapterError> {
        let path = format!("/api/v2/client/phone/{}", encode(&arnica_phone(phone)));
        let answer = match self.call(Method::GET, &path, &[], None, true).await {
            Err(AdapterError::NotFound(_)) => return Ok(None),
            other => other?,
        };
        let mut found: Vec<CrmClient> = match answer.get("client") {
            Some(Value::Object(c)) if !c.is_empty() => vec![self.client(c)?],
            _ => list_items(&answer, &["clients", "client", "data"])
                .iter()
                .filter_map(|c| c.as_object())
                .map(|c| self.client(c))
                .collect::<Result<_, _>>()?,
        };
        found.sort_by_key(|c| c.external_id.parse::<i64>().unwrap_or(i64::MAX));
        Ok(found.into_iter().next())
    }

    /// `GET /api/v2/client/{id}`.
    pub async fn get_client(&self, id: &str) -> Result<CrmClient, AdapterError> {
        let path = format!("/api/v2/client/{}", encode(id));
        let answer = self.call(Method::GET, &path, &[], None, true).await?;
        self.client(single(&answer, "client")?)
    }

    /// `POST /api/v2/client` with `{"client": {name, phone, email}}` (the integrator's shape;
    /// never retried: a retry could make a second card).
    pub async fn create_client(&self, draft: &ClientDraft) -> Result<CrmClient, AdapterError> {
        let answer = self
            .call(
                Method::POST,
                "/api/v2/client",
                &[],
                Some(client_body(draft)),
                false,
            )
            .await?;
        self.written(&answer, draft, None)
    }

    /// `PUT /api/v2/client/{id}` with the same body.
    pub async fn update_client(
        &self,
        id: &str,
        draft: &ClientDraft,
    ) -> Result<CrmClient, AdapterError> {
        let path = format!("/api/v2/client/{}", encode(id));
        let answer = self
            .call(Method::PUT, &path, &[], Some(client_body(draft)), true)
            .await?;
        self.written(&answer, draft, Some(id))
    }

    /// The card an answer to a write holds, else the draft under the id the answer names.
    fn written(
        &self,
        answer: &Value,
        draft: &ClientDraft,
        id: Option<&str>,
    ) -> Result<CrmClient, AdapterError> {
        if let Some(Value::Object(c)) = answer.get("client") {
            return self.client(c);
        }
        let id = answer
            .as_object()
            .and_then(|m| lenient::id(m, "id").ok().flatten())
            .or_else(|| id.map(str::to_owned))
            .ok_or_else(|| unexpected("the answer names no client"))?;
        Ok(draft.client(id))
    }

    /// `GET /api/v2/service`, every page.
    pub async fn list_services(&self) -> Result<Vec<CrmService>, AdapterError> {
        let currency = self.context.currency;
        let mut out = Vec::new();
        for s in self
            .all_pages("/api/v2/service", &["services", "service", "data"], &[])
            .await?
        {
            let Some(s) = s.as_object() else { continue };
            let Some(id) = lenient::id(s, "id").map_err(field)? else {
                continue;
            };
            let price = lenient::object(s.get("price"));
            let range = price.map(|p| lenient::items(p.get("range"))).unwrap_or(&[]);
            let bound = |i: usize| -> Result<Option<Money>, AdapterError> {
                let Some(v) = range.get(i) else {
                    return Ok(None);
                };
                let mut m = Map::new();
                m.insert("v".to_owned(), v.clone());
                lenient::money_minor(&m, "v")
                    .map_err(field)?
                    .map(|minor| {
                        Money::new(minor, currency).map_err(|e| unexpected(&e.to_string()))
                    })
                    .transpose()
            };
            let category = match s.get("category") {
                Some(Value::Object(c)) => lenient::id(c, "id").map_err(field)?,
                _ => lenient::id(s, "category").ok().flatten(),
            };
            out.push(CrmService {
                external_id: id,
                title: lenient::text(s, "title").unwrap_or_default(),
                category_id: category,
                price_min: bound(0)?,
                price_max: bound(1)?,
            });
        }
        Ok(out)
    }

    /// `GET /api/v2/employee?isFired=0&isDeleted=0`, every page; anyone the answer still marks
    /// fired or deleted is left out.
    pub async fn list_staff(&self) -> Result<Vec<CrmStaff>, AdapterError> {
        let query = [("isFired", "0".to_owned()), ("isDeleted", "0".to_owned())];
        let mut out = Vec::new();
        for e in self
            .all_pages(
                "/api/v2/employee",
                &["employees", "employee", "data"],
                &query,
            )
            .await?
        {
            let Some(e) = e.as_object() else { continue };
            let gone = lenient::flag(e, "isFired").map_err(field)?.unwrap_or(false)
                || lenient::flag(e, "isDeleted")
                    .map_err(field)?
                    .unwrap_or(false);
            let Some(id) = lenient::id(e, "id").map_err(field)? else {
                continue;
            };
            if gone {
                continue;
            }
            let name: Vec<String> = ["firstname", "lastname"]
                .iter()
                .filter_map(|f| lenient::text(e, f))
                .collect();
            out.push(CrmStaff {
                external_id: id,
                name: name.join(" "),
            });
        }
        Ok(out)
    }

    /// `GET /api/v2/visit/{id}`: the visit now. A body that is still partial is an error (the
    /// inbox keeps the event and tries later).
    pub async fn get_record(&self, id: &str) -> Result<VisitEvent, AdapterError> {
        let path = format!("/api/v2/visit/{}", encode(id));
        let answer = self.call(Method::GET, &path, &[], None, true).await?;
        let event = visit::visit(&self.context, &self.org_id, single(&answer, "visit")?)
            .map_err(malformed)?;
        if event.needs_refetch {
            return Err(unexpected(&format!(
                "GET /visit/{id} answered without attendance, services or update_date"
            )));
        }
        Ok(event)
    }

    /// Visits changed since `since_ms`: `modificate` = the minutes back to it (rounded up,
    /// plus one for the clocks' difference) while that is at most 1,440. Past that (an outage
    /// longer than a day) Arnica cannot say what changed: the pass reads the visits *dated*
    /// from that day to today, and says so in `caveat` — a visit dated earlier but edited
    /// meanwhile is not seen (`import crm` re-reads the history).
    pub async fn records_changed_since(
        &self,
        since_ms: i64,
        page: u32,
    ) -> Result<RecordPage, AdapterError> {
        let now = (self.clock)();
        let back = now.saturating_sub(since_ms).max(0);
        // The minutes back, rounded up, plus one for the clocks' difference; a cursor at most a
        // minute past the window (a first pass reading exactly a day) still fits it.
        if back <= (MAX_MODIFICATE_MINUTES + 1) * 60_000 {
            let minutes = ((back + 59_999) / 60_000 + 1).min(MAX_MODIFICATE_MINUTES);
            return self
                .visit_page(vec![("modificate", minutes.to_string())], page)
                .await;
        }
        let minutes = back / 60_000;
        let from = self.local_day(since_ms)?;
        let till = self.local_day(now)?;
        let mut found = self
            .visit_page(
                vec![("dateFrom", from.clone()), ("dateTill", till.clone())],
                page,
            )
            .await?;
        found.caveat = Some(format!(
            "the cursor is {} hours old, past Arnica's 1,440-minute change window: read the visits \
             dated {from}..{till}; a visit dated before {from} and edited since is not seen \
             (import crm re-reads the history)",
            minutes / 60
        ));
        Ok(found)
    }

    /// `GET /api/v2/visit?dateFrom=…&dateTill=…`: the visits dated on those organisation-local
    /// days (the history import).
    pub async fn records_between(
        &self,
        from_ms: i64,
        to_ms: i64,
        page: u32,
    ) -> Result<RecordPage, AdapterError> {
        let query = vec![
            ("dateFrom", self.local_day(from_ms)?),
            ("dateTill", self.local_day(to_ms)?),
        ];
        self.visit_page(query, page).await
    }

    /// `GET /api/v2/client?page=…&perPage=…`.
    pub async fn list_clients(&self, page: u32) -> Result<ClientPage, AdapterError> {
        let page = page.max(1);
        let (items, next, total) = self
            .page(
                "/api/v2/client",
                &["clients", "client", "data"],
                Vec::new(),
                page,
            )
            .await?;
        let mut clients = Vec::new();
        let mut rejected = Vec::new();
        for (i, c) in items.iter().enumerate() {
            match c
                .as_object()
                .ok_or_else(|| unexpected("not an object"))
                .and_then(|c| self.client(c))
            {
                Ok(c) => clients.push(c),
                Err(e) => rejected.push(format!("client {}: {e}", i + 1)),
            }
        }
        Ok(ClientPage {
            clients,
            rejected,
            next_page: next,
            total,
        })
    }

    async fn visit_page(
        &self,
        query: Vec<(&'static str, String)>,
        page: u32,
    ) -> Result<RecordPage, AdapterError> {
        let page = page.max(1);
        let (items, next, total) = self
            .page("/api/v2/visit", &["visits", "visit", "data"], query, page)
            .await?;
        let mut records = Vec::new();
        let mut rejected = Vec::new();
        for (i, v) in items.iter().enumerate() {
            let read = v
                .as_object()
                .ok_or_else(|| Malformed("not an object".to_owned()))
                .and_then(|v| visit::visit(&self.context, &self.org_id, v));
            match read {
                Ok(v) => records.push(v),
                Err(Malformed(why)) => {
                    rejected.push(format!("visit {} of page {page}: {why}", i + 1))
                }
            }
        }
        Ok(RecordPage {
            records,
            rejected,
            total,
            next_page: next,
            caveat: None,
        })
    }

    /// One page of a list: its items, the next page while `meta.lastPage` says there is one
    /// (without `meta`: while a page comes full), and `meta.total` when given.
    async fn page(
        &self,
        path: &str,
        keys: &[&str],
        mut query: Vec<(&'static str, String)>,
        page: u32,
    ) -> Result<(Vec<Value>, Option<u32>, Option<u64>), AdapterError> {
        let per_page = self.transport.page_size;
        query.push(("page", page.to_string()));
        query.push(("perPage", per_page.to_string()));
        let answer = self.call(Method::GET, path, &query, None, true).await?;
        let items = list_items(&answer, keys).to_vec();
        let meta = lenient::object(answer.get("meta"));
        let last = meta
            .map(|m| lenient::int(m, "lastPage"))
            .transpose()
            .map_err(field)?
            .flatten();
        let total = meta
            .map(|m| lenient::int(m, "total"))
            .transpose()
            .map_err(field)?
            .flatten()
            .and_then(|t| u64::try_from(t).ok());
        let more = match last {
            Some(last) => i64::from(page) < last,
            None => items.len() >= per_page as usize,
        };
        Ok((items, more.then_some(page + 1), total))
    }

    async fn all_pages(
        &self,
        path: &str,
        keys: &[&str],
        query: &[(&'static str, String)],
    ) -> Result<Vec<Value>, AdapterError> {
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let (items, next, _) = self.page(path, keys, query.to_vec(), page).await?;
            out.extend(items);
            match next {
                // A CRM that keeps saying "more" stops at 1,000 pages.
                Some(n) if n > page && n <= 1_000 => page = n,
                _ => return Ok(out),
            }
        }
    }

    fn client(&self, c: &Map<String, Value>) -> Result<CrmClient, AdapterError> {
        visit::client(&self.context, c).map_err(malformed)
    }

    /// The organisation-local day of a time, `YYYY-MM-DD`.
    fn local_day(&self, ms: i64) -> Result<String, AdapterError> {
        let local = ms.saturating_add(i64::from(self.context.utc_offset_minutes) * 60_000);
        Ok(chrono::DateTime::from_timestamp_millis(local)
            .ok_or_else(|| AdapterError::Validation(vec![format!("bad time {ms}")]))?
            .format("%Y-%m-%d")
            .to_string())
    }

    /// Adds `url` to the organisation's webhook addresses: `PATCH /api/v2/hook_settings
    /// {"urls": [url]}`, which appends (the POST would replace the list and delete other apps'
    /// hooks). Arnica sends every object (visits, clients, services, goods) to every address;
    /// the answer's shape is not published, so any 2xx is taken. Not retried: an append
    /// twice is harmless (deliveries are deduplicated) but needless.
    pub async fn register_webhooks(&self, url: &str) -> Result<Vec<String>, AdapterError> {
        self.call(
            Method::PATCH,
            "/api/v2/hook_settings",
            &[],
            Some(serde_json::json!({ "urls": [url] })),
            false,
        )
        .await?;
        Ok(vec!["visit".to_owned(), "client".to_owned()])
    }

    /// A call with the JWT (logging in first when none is held); a 401 logs in again once.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
        idempotent: bool,
    ) -> Result<Value, AdapterError> {
        let token = self.current_token().await?;
        let first = self
            .request(
                method.clone(),
                path,
                query,
                body.as_ref(),
                Some(&token),
                idempotent,
            )
            .await;
        match first {
            Err(AdapterError::Auth(_)) => {
                let token = self.login().await?;
                self.request(method, path, query, body.as_ref(), Some(&token), idempotent)
                    .await
            }
            other => other,
        }
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        token: Option<&str>,
        idempotent: bool,
    ) -> Result<Value, AdapterError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = token {
            req = req.header(reqwest::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = crm_http::json_request(req, query, body)?;
        answer(
            self.transport,
            crm_http::send(&self.http, &self.gate, self.transport, req, idempotent).await?,
        )
    }
}

/// An answer's JSON, or the typed error its status means.
fn answer(transport: Transport, reply: Reply) -> Result<Value, AdapterError> {
    let status = reply.status;
    let body: Option<Value> = serde_json::from_slice(&reply.body).ok();
    if transport.is_rate_limited(status) {
        return Err(AdapterError::RateLimited {
            retry_after: reply.retry_after,
        });
    }
    let messages = body.as_ref().map(messages).unwrap_or_default();
    let message = messages.join("; ");
    match status {
        200..=299 if reply.body.iter().all(u8::is_ascii_whitespace) => Ok(Value::Null),
        200..=299 => body.ok_or_else(|| unexpected(&format!("HTTP {status} without JSON"))),
        401 => Err(AdapterError::Auth(message)),
        402 | 403 => Err(AdapterError::Forbidden(message)),
        404 => Err(AdapterError::NotFound(message)),
        400 | 409 | 422 => Err(AdapterError::Validation(if messages.is_empty() {
            vec![format!("HTTP {status}")]
        } else {
            messages
        })),
        500..=599 => Err(AdapterError::Transient(format!("HTTP {status}: {message}"))),
        _ => Err(unexpected(&format!("HTTP {status}: {message}"))),
    }
}

/// `message`, `code` and every string in `errors` (`{"message": "User token deactivated"}`,
/// `{"code": "SlotUnavailableError"}`, a validator's `errors` by field).
fn messages(body: &Value) -> Vec<String> {
    lenient::messages(body, &["message", "code", "errors"])
}

/// The list in an answer: under the first of `keys` that holds an array, or the answer
/// itself when it is one (the list envelope is not documented beyond `meta`: assumed).
fn list_items<'a>(answer: &'a Value, keys: &[&str]) -> &'a [Value] {
    if let Value::Array(items) = answer {
        return items;
    }
    keys.iter()
        .find_map(|k| match answer.get(*k) {
            Some(Value::Array(items)) => Some(items.as_slice()),
            _ => None,
        })
        .unwrap_or(&[])
}

/// The object under `key` (`{"visit": {…}}`), or the answer itself when it is the object.
fn single<'a>(answer: &'a Value, key: &str) -> Result<&'a Map<String, Value>, AdapterError> {
    match answer.get(key) {
        Some(Value::Object(m)) => Ok(m),
        _ => match answer {
            Value::Object(m) if m.contains_key("id") => Ok(m),
            _ => Err(unexpected(&format!("the answer holds no {key}"))),
        },
    }
}

fn client_body(draft: &ClientDraft) -> Value {
    let mut client = json!({ "name": draft.name, "phone": arnica_phone(&draft.phone) });
    if let Some(email) = &draft.email {
        client["email"] = json!(email);
    }
    json!({ "client": client })
}

/// A path segment with everything but letters, digits and `-._~` percent-encoded (`+7(916)…`
/// becomes `%2B7%28916%29…`).
pub(crate) fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len() * 3);
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn field(e: lenient::FieldError) -> AdapterError {
    unexpected(&e.to_string())
}

fn malformed(Malformed(why): Malformed) -> AdapterError {
    unexpected(&why)
}

pub(crate) fn unexpected(msg: &str) -> AdapterError {
    AdapterError::Unexpected(msg.to_owned())
}
