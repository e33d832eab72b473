//! Sends what partners' webhook endpoints are owed (issue 18): each delivery claimed with a
//! lease, POSTed signed the Standard Webhooks way, a 2xx within the timeout counting as
//! delivered; otherwise due again on Svix's schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
//! 10 h) and dead after it, listed for the partner to replay. An endpoint failing for five days
//! is disabled and the salon's API page says why; a `410 Gone` disables it at once.
//!
//! No request reaches an internal address: a literal one is refused before sending, and every
//! name is resolved through [`Guarded`], which drops loopback, private and link-local answers
//! (loopback only when the operator allows it, for local receivers) and fails when nothing is
//! left — before any connection is attempted. Redirects are not followed and no proxy is used
//! (a proxy would resolve names itself).

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use loyalty_core::{Clock, StoreError};
use loyalty_store::{Delivery, Endpoint, SqlStore};
use loyalty_web::api::signing;
use tokio::sync::watch;
use tracing::{info, warn};

/// How hard deliveries are tried.
#[derive(Debug, Clone)]
pub struct HookPolicy {
    /// The wait after each failed attempt; after the last, dead.
    pub retries_ms: Vec<i64>,
    /// A 2xx must come within this.
    pub timeout: Duration,
    /// A claimed delivery is left to its sender this long (longer than `timeout`).
    pub lease_ms: i64,
    /// An endpoint failing this long is disabled.
    pub disable_after_ms: i64,
    /// Deliveries claimed per pass, sent at once.
    pub batch: u32,
    /// Loopback endpoints allowed (local receivers, tests).
    pub allow_loopback: bool,
}

impl Default for HookPolicy {
    fn default() -> HookPolicy {
        const S: i64 = 1_000;
        const M: i64 = 60 * S;
        const H: i64 = 60 * M;
        HookPolicy {
            retries_ms: vec![5 * S, 5 * M, 30 * M, 2 * H, 5 * H, 10 * H, 10 * H],
            timeout: Duration::from_secs(15),
            lease_ms: 60 * S,
            disable_after_ms: 5 * 24 * H,
            batch: 32,
            allow_loopback: false,
        }
    }
}

/// Turns a host name into addresses (the system's resolver; a table in tests).
pub trait HostResolver: Send + Sync + std::fmt::Debug {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>>;
}

/// The system's resolver.
#[derive(Debug)]
pub struct SystemResolver;

impl HostResolver for SystemResolver {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>> {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host, 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// The resolver reqwest connects through: only public addresses come out of it.
struct Guarded {
    inner: Arc<dyn HostResolver>,
    allow_loopback: bool,
}

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let inner = Arc::clone(&self.inner);
        let allow_loopback = self.allow_loopback;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = inner.lookup(&host).await?;
            let public: Vec<SocketAddr> = found
                .iter()
                .filter(|ip| !signing::forbidden_ip(**ip, allow_loopback))
                .map(|ip| SocketAddr::new(*ip, 0))
                .collect();
            if public.is_empty() {
                return Err(format!(
                    "{host} resolves to internal addresses only ({}): not connected",
                    found
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
                .into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HookPass {
    pub delivered: usize,
    /// Failed this time; due again.
    pub retried: usize,
    /// The schedule ran out.
    pub dead: usize,
    /// Endpoints disabled (five days of failures, or a 410).
    pub disabled: usize,
}

/// The sender.
pub struct HookSender {
    store: Arc<SqlStore>,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    policy: HookPolicy,
}

/// How an attempt ended.
enum Attempt {
    Delivered(u16),
    Failed {
        status: Option<u16>,
        error: String,
        /// The endpoint asked for this wait (`Retry-After`).
        wait_ms: Option<i64>,
    },
    Gone,
}

impl HookSender {
    pub fn new(
        store: Arc<SqlStore>,
        clock: Arc<dyn Clock>,
        policy: HookPolicy,
        resolver: Arc<dyn HostResolver>,
    ) -> Result<HookSender, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(Guarded {
                inner: resolver,
                allow_loopback: policy.allow_loopback,
            }))
            .user_agent("LoyaltyBridge-Webhooks/1")
            .build()?;
        Ok(HookSender {
            store,
            http,
            clock,
            policy,
        })
    }

    /// Disables endpoints failing too long, then sends what is due.
    pub async fn pass(&self) -> Result<HookPass, StoreError> {
        let now = self.clock.now_ms();
        let mut pass = HookPass::default();
        let cutoff = now.saturating_sub(self.policy.disable_after_ms);
        for e in self.store.endpoints_failing_since(cutoff).await? {
            let days = self.policy.disable_after_ms / 86_400_000;
            let reason = format!("every delivery failed for {days} days");
            self.store
                .set_endpoint_disabled(e.partner_id, e.id, Some(&reason), now)
                .await?;
            warn!(partner = e.partner_id.0, endpoint = e.id, url = %e.url,
                "a webhook endpoint failing for days is disabled; the salon's API page says so");
            pass.disabled += 1;
        }
        let due = self
            .store
            .claim_deliveries(now, self.policy.lease_ms, self.policy.batch)
            .await?;
        let attempts =
            futures_util::future::join_all(due.iter().map(|(d, e)| self.attempt(d, e))).await;
        let now = self.clock.now_ms();
        for ((d, e), attempt) in due.iter().zip(attempts) {
            match attempt {
                Attempt::Delivered(status) => {
                    self.store.delivery_done(d, status, now).await?;
                    pass.delivered += 1;
                }
                Attempt::Gone => {
                    self.store
                        .delivery_failed(d, Some(410), "410 Gone", None, now)
                        .await?;
                    self.store
                        .set_endpoint_disabled(
                            e.partner_id,
                            e.id,
                            Some("the endpoint answered 410 Gone"),
                            now,
                        )
                        .await?;
                    pass.dead += 1;
                    pass.disabled += 1;
                }
                Attempt::Failed {
                    status,
                    error,
                    wait_ms,
                } => {
                    // `attempts` counts this one: the wait after the n-th attempt.
                    let index = usize::try_from(d.attempts.saturating_sub(1)).unwrap_or(0);
                    let next = self
                        .policy
                        .retries_ms
                        .get(index)
                        .map(|wait| now.saturating_add((*wait).max(wait_ms.unwrap_or(0))));
                    self.store
                        .delivery_failed(d, status, &error, next, now)
                        .await?;
                    if next.is_some() {
                        pass.retried += 1;
                    } else {
                        pass.dead += 1;
                        info!(partner = d.partner_id.0, delivery = d.id, %error,
                            "a webhook delivery ran out of attempts; the partner can replay it");
                    }
                }
            }
        }
        Ok(pass)
    }

    async fn attempt(&self, d: &Delivery, e: &Endpoint) -> Attempt {
        if let Err(why) = signing::check_url(&e.url, self.policy.allow_loopback) {
            return Attempt::Failed {
                status: None,
                error: why.to_string(),
                wait_ms: None,
            };
        }
        let now = self.clock.now_ms();
        let id = d.message_id();
        let timestamp = now.div_euclid(1000);
        let signature = signing::sign(&e.signing_secrets(now), &id, timestamp, d.body.as_bytes());
        let sent = self
            .http
            .post(&e.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(d.body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Attempt::Delivered(r.status().as_u16()),
            Ok(r) if r.status() == reqwest::StatusCode::GONE => Attempt::Gone,
            Ok(r) => {
                let wait_ms = r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<i64>().ok())
                    .map(|s| s.clamp(0, 86_400).saturating_mul(1000));
                Attempt::Failed {
                    status: Some(r.status().as_u16()),
                    error: format!("answered {}", r.status()),
                    wait_ms,
                }
            }
            Err(err) => Attempt::Failed {
                status: None,
                error: describe(&err),
                wait_ms: None,
            },
        }
    }
}

/// A send error with its causes, said once.
fn describe(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        "no answer in time".to_owned()
    } else {
        err.to_string()
    };
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// `serve`'s sender: a pass every `every` until stopped.
pub async fn run(sender: HookSender, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        match sender.pass().await {
            Ok(pass) if pass != HookPass::default() => info!(
                delivered = pass.delivered,
                retried = pass.retried,
                dead = pass.dead,
                disabled = pass.disabled,
                "partner webhooks sent"
            ),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "could not send partner webhooks"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
