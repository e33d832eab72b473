//! The REST client of one salon database: every call with `Authorization: Bearer <access>`
//! on the database's own server, through [`crm_http::send`]; every GET names its `fields`.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use crm_http::{MemoryTokens, ParseContext, Reply, TokenStore, Transport, lenient};
use loyalty_core::AdapterError;
use loyalty_core::quota::CallGate;
use reqwest::Method;
use serde_json::{Map, Value};

use crate::auth::{Auth, AuthCalls, Granted, Tokens, error_type};

/// The application and the salon's database. `Debug` hides the secret.
#[derive(Clone, Default)]
pub struct Credentials {
    pub application_id: String,
    pub application_secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("application_id", &self.application_id)
            .field("application_secret", &"***")
            .finish()
    }
}

pub use crm_http::Clock;

/// The API of one salon database.
#[derive(Clone)]
pub struct BeautyProClient {
    http: reqwest::Client,
    gate: Arc<dyn CallGate>,
    /// Auth calls' root (`https://api.aihelps.com/v1`, or a test server).
    auth_base: String,
    /// Data calls' root when fixed (tests, a proxy); else the database's server.
    api_base: Option<String>,
    pub(crate) database: String,
    pub(crate) context: ParseContext,
    credentials: Credentials,
    pub(crate) auth: Arc<Auth>,
    /// The last update id of the replay page the engine is taking in (saved when it asks for
    /// the next page).
    pub(crate) replayed: Arc<tokio::sync::Mutex<Option<i64>>>,
    pub(crate) transport: Transport,
    clock: Clock,
}

impl fmt::Debug for BeautyProClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BeautyProClient")
            .field("database", &self.database)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// The host of a data server: `api.aihelps.com` for servers 1 and 5 (Frankfurt), `api{n}`
/// for the others (`api4.aihelps.com`: Mumbai).
pub fn server_base(server: i64) -> String {
    match server {
        1 | 5 => "https://api.aihelps.com/v1".to_owned(),
        n => format!("https://api{n}.aihelps.com/v1"),
    }
}

impl BeautyProClient {
    pub fn new(
        http: reqwest::Client,
        gate: Arc<dyn CallGate>,
        config: &crate::BeautyProConfig,
        credentials: Credentials,
    ) -> BeautyProClient {
        BeautyProClient {
            http,
            gate,
            auth_base: config.auth_base.trim_end_matches('/').to_owned(),
            api_base: config
                .api_base
                .as_ref()
                .map(|b| b.trim_end_matches('/').to_owned()),
            database: config.database_code.clone(),
            context: config.context,
            credentials,
            auth: Arc::new(Auth::new(Arc::new(MemoryTokens::new()))),
            replayed: Arc::default(),
            transport: Transport::default(),
            clock: crm_http::system_clock(),
        }
    }

    /// Keeps the tokens (and the replay's cursor) in `tokens`, shared by every instance.
    pub fn with_tokens(mut self, tokens: Arc<dyn TokenStore>) -> BeautyProClient {
        self.auth = Arc::new(Auth::new(tokens));
        self
    }

    pub fn with_transport(mut self, transport: Transport) -> BeautyProClient {
        self.transport = transport;
        self
    }

    pub fn with_clock(mut self, clock: Clock) -> BeautyProClient {
        self.clock = clock;
        self
    }

    /// A GET naming its fields.
    pub(crate) async fn get(
        &self,
        path: &str,
        fields: &str,
        query: &[(&str, String)],
    ) -> Result<Value, AdapterError> {
        let mut q = vec![("fields", fields.to_owned())];
        q.extend(query.iter().map(|(k, v)| (*k, v.clone())));
        self.call(Method::GET, path, &q, None, true).await
    }

    /// A data call with the current access token; an expired or unknown token is renewed
    /// once and the call made again.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
        idempotent: bool,
    ) -> Result<Value, AdapterError> {
        let tokens = self.auth.current(self).await?;
        match self
            .request(
                method.clone(),
                &tokens,
                path,
                query,
                body.as_ref(),
                idempotent,
            )
            .await
        {
            Err(Failure::Token(_)) => {
                let tokens = self.auth.renew(self, &tokens).await?;
                self.request(method, &tokens, path, query, body.as_ref(), idempotent)
                    .await
                    .map_err(Failure::into_error)
            }
            other => other.map_err(Failure::into_error),
        }
    }

    async fn request(
        &self,
        method: Method,
        tokens: &Tokens,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        idempotent: bool,
    ) -> Result<Value, Failure> {
        let base = self
            .api_base
            .clone()
            .unwrap_or_else(|| server_base(tokens.server));
        let req = self.http.request(method, format!("{base}{path}")).header(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", tokens.access),
        );
        let req = crm_http::json_request(req, query, body).map_err(Failure::Other)?;
        let reply = crm_http::send(&self.http, &self.gate, self.transport, req, idempotent)
            .await
            .map_err(Failure::Other)?;
        answer(reply)
    }

    /// An auth endpoint (no token), on the auth server.
    async fn auth_get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, Failure> {
        let req = self
            .http
            .get(format!("{}{path}", self.auth_base))
            .query(query)
            .build()
            .map_err(|e| Failure::Other(AdapterError::Unexpected(format!("request: {e}"))))?;
        let reply = crm_http::send(&self.http, &self.gate, self.transport, req, true)
            .await
            .map_err(Failure::Other)?;
        answer(reply)
    }

    pub(crate) fn now(&self) -> i64 {
        (self.clock)()
    }
}

#[async_trait]
impl AuthCalls for BeautyProClient {
    async fn database_token(&self) -> Result<Granted, AdapterError> {
        let query = [
            ("application_id", self.credentials.application_id.clone()),
            (
                "application_secret",
                self.credentials.application_secret.clone(),
            ),
            ("database_code", self.database.clone()),
        ];
        let answer = self
            .auth_get("/auth/database", &query)
            .await
            .map_err(Failure::into_error)?;
        crate::auth::granted(&answer)
    }

    async fn refresh_token(&self, refresh: &str) -> Result<Option<Granted>, AdapterError> {
        let query = [
            ("application_id", self.credentials.application_id.clone()),
            ("refresh_token", refresh.to_owned()),
        ];
        match self.auth_get("/auth/refresh", &query).await {
            Ok(answer) => crate::auth::granted(&answer).map(Some),
            // UNKNOWN / INVALID: the refresh token is spent.
            Err(Failure::Token(_)) => Ok(None),
            Err(Failure::Other(e)) => Err(e),
        }
    }

    fn now_ms(&self) -> i64 {
        self.now()
    }
}

/// A call's failure: the token (renew and try again) or anything else.
enum Failure {
    /// A 401 about the token (`EXPIRED`, `UNKNOWN`, or none said), with the API's message.
    Token(String),
    Other(AdapterError),
}

impl Failure {
    fn into_error(self) -> AdapterError {
        match self {
            Failure::Token(message) => AdapterError::Auth(message),
            Failure::Other(e) => e,
        }
    }
}

/// An answer's JSON (`null` for 204), or what its status and `type` mean.
fn answer(reply: Reply) -> Result<Value, Failure> {
    let status = reply.status;
    if status == 204 {
        return Ok(Value::Null);
    }
    let body: Option<Value> = serde_json::from_slice(&reply.body).ok();
    let err = body.as_ref().and_then(Value::as_object);
    let kind = err.and_then(error_type);
    let message = err
        .and_then(|m| lenient::text(m, "message"))
        .unwrap_or_else(|| format!("HTTP {status}"));
    let fail = |e: AdapterError| Err(Failure::Other(e));
    match status {
        200..=299 => body.ok_or_else(|| {
            Failure::Other(AdapterError::Unexpected(format!(
                "HTTP {status} without JSON"
            )))
        }),
        401 => match kind.as_deref() {
            // Too many tries at an auth endpoint: wait as told.
            Some("BLOCKED") => fail(AdapterError::RateLimited {
                retry_after: err
                    .and_then(|m| lenient::int(m, "unblockAfter").ok().flatten())
                    .and_then(|s| u64::try_from(s).ok())
                    .map(std::time::Duration::from_secs),
            }),
            Some("INVALID") => fail(AdapterError::Auth(message)),
            // EXPIRED, UNKNOWN, or a 401 without a type: the token.
            _ => Err(Failure::Token(message)),
        },
        402 | 403 => fail(AdapterError::Forbidden(message)),
        404 => fail(AdapterError::NotFound(message)),
        400 | 409 | 422 => fail(AdapterError::Validation(vec![match kind {
            Some(k) => format!("{k}: {message}"),
            None => message,
        }])),
        429 => fail(AdapterError::RateLimited {
            retry_after: reply.retry_after,
        }),
        500..=599 => fail(AdapterError::Transient(format!("HTTP {status}: {message}"))),
        _ => fail(AdapterError::Unexpected(format!(
            "HTTP {status}: {message}"
        ))),
    }
}

/// The objects of a list answer (a JSON array).
pub(crate) fn objects(answer: &Value) -> Result<Vec<&Map<String, Value>>, AdapterError> {
    match answer {
        Value::Array(items) => Ok(items.iter().filter_map(Value::as_object).collect()),
        _ => Err(AdapterError::Unexpected(
            "a list answer is not an array".into(),
        )),
    }
}
