//! `Idempotency-Key`: every POST that moves points or creates something carries one. The first
//! answer to a key's request is kept and replayed to the same request for 24 hours (with
//! `Idempotent-Replayed: true`); the same key with another request is a 409; while the first
//! request is still being answered, a second is told so (409, `Retry-After: 1`). Past a day
//! the answer is let go, but the effect is not repeated: the ledger's and the redemptions' own
//! keys derive from the Idempotency-Key ([`Ticket::effect_key`]).
//!
//! Validation comes before the claim: a request refused for its shape keeps nothing, so the
//! partner may fix it and send it again under the same key (Stripe's rule).

use async_trait::async_trait;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use loyalty_core::seal::{KeptAnswer, Seal};
use loyalty_core::{Outcome, StoreError, StoreTx};
use loyalty_store::Claim;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::auth::Caller;
use super::problem::{Problem, rendered};
use crate::Dashboard;

/// The header's name.
pub const HEADER: &str = "idempotency-key";

/// The longest key accepted.
pub const MAX_KEY: usize = 200;

/// The `Idempotency-Key` of a request, or the 400 that says it is needed.
pub fn key_of(headers: &HeaderMap) -> Result<String, Problem> {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY)
        .map(str::to_owned)
        .ok_or_else(|| {
            Problem::bad_request(
                "idempotency_key_required",
                "this POST needs an Idempotency-Key header (1–200 visible characters): \
                 the same key and request within 24 hours get the first answer again",
            )
        })
}

/// What makes two requests the same: the method, the path and the body (as JSON, so neither
/// key order nor spacing matter).
fn fingerprint(method_path: &str, body: &[u8]) -> String {
    let canonical = serde_json::from_slice::<Value>(body)
        .map(|v| {
            let mut out = String::new();
            canonical(&v, &mut out);
            out.into_bytes()
        })
        .unwrap_or_else(|_| body.to_vec());
    let mut h = Sha256::new();
    h.update(method_path.as_bytes());
    h.update(b"\n");
    h.update(&canonical);
    h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
}

/// `v` as JSON with every object's keys sorted, whatever order serde_json keeps them in (a
/// build with `preserve_order` keeps the sender's).
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A request cleared to run: its answer is kept by [`Ticket::finish`].
pub struct Ticket<'a> {
    dash: &'a Dashboard,
    key_id: i64,
    idem: String,
}

/// Either the request runs now, or its answer is already known.
pub enum Begun<'a> {
    Run(Ticket<'a>),
    Answered(Response),
}

/// Claims `idem` for this request (`method_path` as `POST /api/v1/…`, the body as sent).
pub async fn begin<'a>(
    dash: &'a Dashboard,
    caller: &Caller,
    idem: String,
    method_path: &str,
    body: &[u8],
) -> Result<Begun<'a>, Problem> {
    let print = fingerprint(method_path, body);
    let claim = dash
        .store
        .claim_api_request(caller.key.id, &idem, &print, dash.now_ms())
        .await?;
    Ok(match claim {
        Claim::New => Begun::Run(Ticket {
            dash,
            key_id: caller.key.id,
            idem,
        }),
        Claim::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut r = rendered(status, body);
            r.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Begun::Answered(r)
        }
        Claim::InProgress => {
            let mut p = Problem::new(
                StatusCode::CONFLICT,
                "request_in_progress",
                "a request with this Idempotency-Key is being answered; retry in a second",
            );
            p.retry_after = Some(1);
            return Err(p);
        }
        Claim::Conflict => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "idempotency_conflict",
                "this Idempotency-Key was used with another request",
            ));
        }
    })
}

/// A request whose claim and answer are written in its effect's own transaction, last (a
/// [`Seal`]): one transaction instead of three. `render` makes the answer from the outcome
/// where it can, and it is kept in the same commit; where it cannot, the key is kept claimed
/// and the answer follows the commit ([`InTx::sealed`]). A key another request holds rolls the
/// effect back (the engine answers `None`); [`begin`] then says what that request was answered.
pub struct InTx<'a, F> {
    dash: &'a Dashboard,
    key_id: i64,
    idem: String,
    print: String,
    now_ms: i64,
    render: F,
    kept: std::sync::Mutex<Option<(StatusCode, String)>>,
}

/// What became of a request sealed in its effect's transaction.
pub enum Sealed<'a> {
    /// Answered, and the answer kept in the same commit.
    Answered(Response),
    /// Claimed: answer it with [`Ticket::finish`].
    Later(Ticket<'a>),
}

impl<'a, F> InTx<'a, F>
where
    F: Fn(&Outcome) -> Option<(StatusCode, String)> + Send + Sync,
{
    pub fn new(
        dash: &'a Dashboard,
        caller: &Caller,
        idem: String,
        method_path: &str,
        body: &[u8],
        render: F,
    ) -> Self {
        InTx {
            dash,
            key_id: caller.key.id,
            idem,
            print: fingerprint(method_path, body),
            now_ms: dash.now_ms(),
            render,
            kept: std::sync::Mutex::new(None),
        }
    }

    /// After the effect's commit: its answer, or the ticket that keeps it.
    pub fn sealed(self) -> Sealed<'a> {
        let kept = self.kept.into_inner().unwrap_or_else(|p| p.into_inner());
        match kept {
            Some((status, body)) => Sealed::Answered(rendered(status, body)),
            None => Sealed::Later(Ticket {
                dash: self.dash,
                key_id: self.key_id,
                idem: self.idem,
            }),
        }
    }
}

#[async_trait]
impl<F> Seal for InTx<'_, F>
where
    F: Fn(&Outcome) -> Option<(StatusCode, String)> + Send + Sync,
{
    async fn seal(&self, tx: &mut dyn StoreTx, outcome: &Outcome) -> Result<bool, StoreError> {
        let answer = (self.render)(outcome);
        let held = tx
            .keep_answer(&KeptAnswer {
                key_id: self.key_id,
                idem: &self.idem,
                fingerprint: &self.print,
                now_ms: self.now_ms,
                answer: answer.as_ref().map(|(s, b)| (s.as_u16(), b.as_str())),
            })
            .await?;
        // A transaction retried after a conflict renders again: the last one counts.
        *self.kept.lock().unwrap_or_else(|p| p.into_inner()) = answer.filter(|_| held);
        Ok(held)
    }
}

impl Ticket<'_> {
    /// The key the effect itself is kept under (the ledger's, a redemption's): the same
    /// Idempotency-Key of the same API key is the same effect, however late it comes again.
    pub fn effect_key(&self) -> String {
        format!("api:{}:{}", self.key_id, self.idem)
    }

    /// Keeps the answer for replay and gives it. An answer that says "try again" (our
    /// failure, a busy database, a rate limit) is not kept: the key is free again.
    pub async fn finish(self, answer: Result<(StatusCode, String), Problem>) -> Response {
        let (status, body) = match answer {
            Ok(ok) => ok,
            Err(p) => {
                let retry_after = p.retry_after;
                let (status, body) = (p.status, p.body());
                if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                    if let Err(e) = self
                        .dash
                        .store
                        .release_api_request(self.key_id, &self.idem)
                        .await
                    {
                        tracing::warn!(error = %e, "partner API: an idempotency key not let go");
                    }
                    let mut p = p;
                    p.retry_after = retry_after;
                    return axum::response::IntoResponse::into_response(p);
                }
                (status, body)
            }
        };
        if let Err(e) = self
            .dash
            .store
            .finish_api_request(self.key_id, &self.idem, status.as_u16(), &body)
            .await
        {
            // The effect stands; a retry of the key finds it in progress for a minute, then
            // runs again into the effect's own key.
            tracing::warn!(error = %e, "partner API: an answer not kept for replay");
        }
        rendered(status, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_request_in_another_spelling_is_the_same() {
        let a = fingerprint("POST /a", br#"{"points": 5, "reason": "x"}"#);
        let b = fingerprint("POST /a", br#"{"reason":"x","points":5}"#);
        assert_eq!(a, b);
        assert_ne!(
            a,
            fingerprint("POST /b", br#"{"points": 5, "reason": "x"}"#)
        );
        assert_ne!(
            a,
            fingerprint("POST /a", br#"{"points": 6, "reason": "x"}"#)
        );
        let nested = br#"{"a": [{"y": 1, "x": 2}], "b": {"d": 1, "c": 2}}"#;
        let reordered = br#"{"b": {"c": 2, "d": 1}, "a": [{"x": 2, "y": 1}]}"#;
        let changed = br#"{"a": [{"y": 2, "x": 1}], "b": {"d": 1, "c": 2}}"#;
        assert_eq!(fingerprint("P", nested), fingerprint("P", reordered));
        assert_ne!(fingerprint("P", nested), fingerprint("P", changed));
        // Not JSON: the bytes themselves.
        assert_ne!(
            fingerprint("POST /a", b"x y"),
            fingerprint("POST /a", b"x  y")
        );
    }
}
