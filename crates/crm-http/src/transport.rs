//! The call stack every CRM client sends through.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use loyalty_core::AdapterError;
use loyalty_core::quota::CallGate;
use tower::retry::{Policy, RetryLayer};
use tower::{ServiceBuilder, ServiceExt};

/// Tuning of the transport.
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    pub timeout: Duration,
    /// Attempts of an idempotent call, the first included.
    pub max_attempts: u32,
    /// First back-off; doubles per attempt, with up to 50 % jitter, at most `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// A `Retry-After` up to this long is waited out; a longer one ends the call with
    /// [`AdapterError::RateLimited`] so the caller can schedule it.
    pub max_retry_after: Duration,
    /// Records per page when listing.
    pub page_size: u32,
    /// The HTTP statuses by which the CRM says "too many requests" (429; Arnica: 444).
    pub rate_limited: &'static [u16],
}

impl Default for Transport {
    fn default() -> Transport {
        Transport {
            timeout: Duration::from_secs(15),
            max_attempts: 4,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
            page_size: 200,
            rate_limited: &[429],
        }
    }
}

impl Transport {
    /// Whether this status is the CRM's "too many requests".
    pub fn is_rate_limited(&self, status: u16) -> bool {
        self.rate_limited.contains(&status)
    }
}

/// A buffered HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// The `Retry-After` header in seconds, when the CRM sent one.
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

/// One `reqwest::Client` for the process, TLS through rustls on ring.
pub fn http_client() -> Result<reqwest::Client, AdapterError> {
    // Installing twice is harmless: the first provider stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("loyalty-bridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| AdapterError::Unexpected(format!("HTTP client: {e}")))
}

/// A request with its query (when there is one) and a JSON body (when given), built.
pub fn json_request(
    builder: reqwest::RequestBuilder,
    query: &[(&str, String)],
    body: Option<&serde_json::Value>,
) -> Result<reqwest::Request, AdapterError> {
    let mut req = builder;
    if !query.is_empty() {
        req = req.query(query);
    }
    if let Some(body) = body {
        req = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
    }
    req.build()
        .map_err(|e| AdapterError::Unexpected(format!("request: {e}")))
}

/// One call through the stack: retry (tower) around a service that waits for the gate, then
/// sends under the timeout. Each attempt counts against the budget, waiting for it does not
/// count against the timeout, and a rate-limit answer pauses the whole budget. Any answer comes
/// back as a [`Reply`] (the caller maps its status); only a call that got no answer is an error,
/// [`AdapterError::Transient`].
pub async fn send(
    http: &reqwest::Client,
    gate: &Arc<dyn CallGate>,
    transport: Transport,
    req: reqwest::Request,
    idempotent: bool,
) -> Result<Reply, AdapterError> {
    let http = http.clone();
    let gate = Arc::clone(gate);
    let timeout = transport.timeout;
    let policy = RetryPolicy {
        idempotent,
        attempt: 1,
        transport,
    };
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new(policy))
        .service_fn(move |req: reqwest::Request| {
            let (http, gate) = (http.clone(), gate.clone());
            async move {
                gate.acquire()
                    .await
                    .map_err(|e| SendError::Budget(e.to_string()))?;
                let resp = tokio::time::timeout(timeout, http.execute(req))
                    .await
                    .map_err(|_| SendError::Timeout)?
                    .map_err(SendError::Http)?;
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                if transport.is_rate_limited(status) {
                    gate.rate_limited(retry_after).await;
                }
                let body = tokio::time::timeout(timeout, resp.bytes())
                    .await
                    .map_err(|_| SendError::Timeout)?
                    .map_err(SendError::Http)?
                    .to_vec();
                Ok::<_, SendError>(Reply {
                    status,
                    retry_after,
                    body,
                })
            }
        });
    stack.oneshot(req).await.map_err(|e| match e {
        SendError::Timeout => AdapterError::Transient("timed out".to_owned()),
        SendError::Budget(why) => {
            AdapterError::Transient(format!("the CRM budget is unavailable: {why}"))
        }
        SendError::Http(e) if e.is_timeout() || e.is_connect() || e.is_request() => {
            AdapterError::Transient(e.to_string())
        }
        SendError::Http(e) => AdapterError::Unexpected(e.to_string()),
    })
}

/// A failed attempt before any answer.
#[derive(Debug)]
enum SendError {
    Timeout,
    Http(reqwest::Error),
    /// The shared budget could not be asked (its database is down).
    Budget(String),
}

impl SendError {
    fn is_transient(&self) -> bool {
        match self {
            SendError::Timeout | SendError::Budget(_) => true,
            SendError::Http(e) => e.is_timeout() || e.is_connect() || e.is_request() || e.is_body(),
        }
    }
}

/// Retries idempotent calls on rate limits, 502/503/504 and transport failures.
#[derive(Clone)]
struct RetryPolicy {
    idempotent: bool,
    attempt: u32,
    transport: Transport,
}

impl RetryPolicy {
    fn backoff(&self) -> Duration {
        let exp = self
            .transport
            .base_backoff
            .saturating_mul(1u32 << self.attempt.saturating_sub(1).min(16));
        let capped = exp.min(self.transport.max_backoff);
        // Up to half again, so many clients that failed together do not retry together.
        capped + capped.mul_f64(fastrand::f64() * 0.5)
    }
}

impl Policy<reqwest::Request, Reply, SendError> for RetryPolicy {
    type Future = Pin<Box<dyn Future<Output = ()> + Send>>;

    fn retry(
        &mut self,
        _req: &mut reqwest::Request,
        result: &mut Result<Reply, SendError>,
    ) -> Option<Self::Future> {
        if !self.idempotent || self.attempt >= self.transport.max_attempts {
            return None;
        }
        let wait = match result {
            Ok(reply)
                if self.transport.is_rate_limited(reply.status)
                    || (502..=504).contains(&reply.status) =>
            {
                match reply.retry_after {
                    Some(wait) if wait > self.transport.max_retry_after => return None,
                    Some(wait) => wait,
                    None => self.backoff(),
                }
            }
            Ok(_) => return None,
            Err(e) if e.is_transient() => self.backoff(),
            Err(_) => return None,
        };
        self.attempt += 1;
        Some(Box::pin(tokio::time::sleep(wait)))
    }

    fn clone_request(&mut self, req: &reqwest::Request) -> Option<reqwest::Request> {
        req.try_clone()
    }
}
