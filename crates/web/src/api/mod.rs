//! The partner API, `/api/v1` (issue 18; the Enterprise plan): JSON for other software — a
//! POS, a CRM we do not support, the salon's own tools. This first part: API keys (`api-key
//! add|revoke|list`, sent as `Authorization: Bearer <key>`, kept as their SHA-256 with a visible
//! prefix), scopes, a rate limit per key, errors as RFC 9457 problem details, and the clients:
//! found by phone, read, their balance, and points added or written off under an
//! `Idempotency-Key`.
//!
//! Boundaries: the partner comes from the key alone — another salon's ids are 404; a key of a
//! salon whose plan has no API is refused naming the plan; writes need a `write` key.

mod auth;
mod clients;
mod problem;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub(crate) use auth::Buckets;
pub use auth::{KEY_PREFIX, RateLimit, new_key};
pub use problem::Problem;

use crate::Dashboard;

/// The API's routes, under `/api/v1`.
pub fn router(dash: Arc<Dashboard>) -> Router {
    let v1 = Router::new()
        .route("/clients", get(clients::find))
        .route("/clients/{id}", get(clients::one))
        .route("/clients/{id}/balance", get(clients::balance))
        .route("/clients/{id}/points", post(clients::points))
        .fallback(problem::not_found)
        .with_state(dash);
    Router::new().nest("/api/v1", v1)
}
