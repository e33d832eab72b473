//! Errors as RFC 9457 problem details: `application/problem+json` with `type`, `title`,
//! `status`, `detail`, and a stable `code` to switch on.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use loyalty_core::{EngineError, StoreError};
use serde_json::json;

/// One error answer.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    /// Stable, snake_case: what a program switches on.
    pub code: &'static str,
    pub detail: String,
    /// Seconds, for a 429.
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn not_found(what: &str) -> Problem {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, code, detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error").to_owned();
        let body = json!({
            "type": format!("/api/v1/problems/{}", self.code),
            "title": title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        let mut r = (self.status, body.to_string()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        match e {
            StoreError::Retryable(why) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", why)
            }
            other => {
                tracing::warn!(error = %other, "partner API: store failed");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong on our side",
                )
            }
        }
    }
}

impl From<EngineError> for Problem {
    fn from(e: EngineError) -> Problem {
        match e {
            EngineError::Store(s) => s.into(),
            EngineError::Conflict { .. } => Problem::new(
                StatusCode::CONFLICT,
                "idempotency_conflict",
                "this Idempotency-Key was used with another request",
            ),
            EngineError::InsufficientBalance { .. } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "insufficient_balance",
                e.to_string(),
            ),
            e if e.is_refusal() => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", e.to_string())
            }
            other => {
                tracing::warn!(error = %other, "partner API: engine failed");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong on our side",
                )
            }
        }
    }
}

/// Any path under `/api/v1` the API does not serve.
pub async fn not_found() -> Problem {
    Problem::not_found("route")
}
