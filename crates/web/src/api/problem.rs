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

    /// Our failure, logged with what failed (`what`) and why; the partner is told no more.
    pub fn internal(what: &str, why: impl std::fmt::Display) -> Problem {
        tracing::warn!(error = %why, "partner API: {what}");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on our side",
        )
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, code, detail)
    }
}

/// The problem document, as the OpenAPI document describes it.
#[derive(utoipa::ToSchema, utoipa::ToResponse)]
#[response(
    description = "A problem (RFC 9457): `code` is stable, `detail` says it for people",
    content_type = "application/problem+json"
)]
#[allow(dead_code)] // Documents the shape `Problem` writes by hand.
pub struct ProblemDoc {
    /// `/api/v1/problems/<code>`.
    #[schema(rename = "type")]
    kind: String,
    /// The HTTP status's name.
    title: String,
    status: u16,
    detail: String,
    /// What a program switches on: `unauthorized`, `plan`, `read_only_key`, `rate_limited`,
    /// `not_found`, `invalid_body`, `idempotency_key_required`, `idempotency_conflict`,
    /// `request_in_progress`, `insufficient_balance`, `refused`, …
    code: String,
}

impl Problem {
    /// The problem document's JSON.
    pub fn body(&self) -> String {
        json!({
            "type": format!("/api/v1/problems/{}", self.code),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        })
        .to_string()
    }
}

/// An answer already rendered: `body` is JSON, a problem document from 400 up.
pub fn rendered(status: StatusCode, body: String) -> Response {
    let kind = if status.as_u16() >= 400 {
        "application/problem+json"
    } else {
        "application/json"
    };
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut r = rendered(self.status, self.body());
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
            other => Problem::internal("store failed", other),
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
            EngineError::UnknownClient(_) => Problem::not_found("client"),
            EngineError::UnknownCode(_) => Problem::not_found("code"),
            EngineError::RewardUnavailable(_) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "reward_unavailable",
                e.to_string(),
            ),
            e if e.is_refusal() => {
                let code = match &e {
                    EngineError::InsufficientBalance { .. } => "insufficient_balance",
                    EngineError::CrmReportsVisits { .. } => "crm_reports_visits",
                    EngineError::CodeNotUsable { .. } => "code_not_usable",
                    EngineError::BillNeeded { .. } => "bill_needed",
                    EngineError::BillTooSmall { .. } => "bill_too_small",
                    EngineError::CurrencyMismatch { .. } => "currency_mismatch",
                    EngineError::Money(_) => "invalid_amount",
                    EngineError::NonPositiveAmount(_) => "invalid_amount",
                    _ => "refused",
                };
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
            }
            other => Problem::internal("engine failed", other),
        }
    }
}

/// Any path under `/api/v1` the API does not serve.
pub async fn not_found() -> Problem {
    Problem::not_found("route")
}
