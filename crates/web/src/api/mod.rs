//! The partner API, `/api/v1` (issue 18; the Enterprise plan): JSON for other software — a
//! POS, a CRM we do not support, the salon's own tools.
//!
//! - Keys: `api-key add|revoke|list` (and the dashboard's API page), sent as
//!   `Authorization: Bearer <key>`, kept as their SHA-256 with a visible prefix; `read` or
//!   `write`; a rate limit per key ([`auth`]).
//! - Every POST that moves points or creates something carries an `Idempotency-Key` ([`idem`]).
//! - Errors are RFC 9457 problem details with a stable `code` ([`problem`]).
//! - The OpenAPI 3.1 document is generated from the handlers ([`openapi`]), served at
//!   `/api/v1/openapi.json` and read as a page at `/api/v1/docs`.
//!
//! Boundaries: the partner comes from the key alone — another salon's ids are 404; a key of a
//! salon whose plan has no API is refused naming the plan; writes need a `write` key.

mod auth;
mod clients;
mod docs;
mod extract;
mod hooks;
mod idem;
mod privacy;
mod problem;
mod program;
mod rewards;
pub mod signing;
mod triggers;
mod visits;

use std::sync::Arc;

use axum::Router;
use serde::de::DeserializeOwned;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) use auth::Buckets;
pub use auth::{KEY_PREFIX, KeyError, RateLimit, issue_key, new_key};
pub use problem::Problem;

use crate::Dashboard;

/// The API's routes and their OpenAPI document, paths under `/api/v1`.
fn parts() -> (Router<Arc<Dashboard>>, OpenApi) {
    let v1 = OpenApiRouter::new()
        .routes(routes!(clients::find, clients::create))
        .routes(routes!(clients::one, privacy::forget))
        .routes(routes!(privacy::export))
        .routes(routes!(clients::balance))
        .routes(routes!(clients::history))
        .routes(routes!(clients::points))
        .routes(routes!(program::client_level))
        .routes(routes!(program::client_referrals))
        .routes(routes!(program::levels))
        .routes(routes!(visits::push))
        .routes(routes!(visits::one))
        .routes(routes!(rewards::list))
        .routes(routes!(rewards::redeem))
        .routes(routes!(rewards::redemption))
        .routes(routes!(rewards::cancel))
        .routes(routes!(rewards::check_code))
        .routes(routes!(rewards::use_code))
        .routes(routes!(hooks::endpoints, hooks::create))
        .routes(routes!(hooks::rotate))
        .routes(routes!(hooks::disable))
        .routes(routes!(hooks::enable))
        .routes(routes!(hooks::deliveries))
        .routes(routes!(hooks::replay))
        .routes(routes!(triggers::list))
        .routes(routes!(triggers::fires))
        .routes(routes!(triggers::try_on));
    let (router, mut api) = OpenApiRouter::with_openapi(docs::base())
        .nest("/api/v1", v1)
        .split_for_parts();
    docs::finish(&mut api);
    (router, api)
}

/// The API's OpenAPI 3.1 document.
pub fn openapi() -> OpenApi {
    parts().1
}

/// The API's routes, under `/api/v1`: the operations, the document and its page, and a
/// problem for any other path.
pub fn router(dash: Arc<Dashboard>) -> Router {
    let (routes, api) = parts();
    let served = Arc::new(docs::Served::new(&api));
    let docs = Router::new()
        .route("/api/v1/openapi.json", axum::routing::get(docs::json))
        .route("/api/v1/docs", axum::routing::get(docs::page))
        .with_state(served);
    routes
        .route("/api/v1", axum::routing::any(problem::not_found))
        .route("/api/v1/", axum::routing::any(problem::not_found))
        .route("/api/v1/{*rest}", axum::routing::any(problem::not_found))
        .with_state(dash)
        .merge(docs)
}

/// A JSON body, or the 400 that names what is wrong with it.
fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(bytes)
        .map_err(|e| Problem::bad_request("invalid_body", format!("the JSON body: {e}")))
}

/// A path's numeric id; any other text names nothing.
fn id_of(text: &str, what: &str) -> Result<i64, Problem> {
    text.parse().map_err(|_| Problem::not_found(what))
}

/// A JSON answer as [`idem::Ticket::finish`] keeps it.
fn answer<T: serde::Serialize>(
    status: axum::http::StatusCode,
    value: &T,
) -> Result<(axum::http::StatusCode, String), Problem> {
    serde_json::to_string(value)
        .map(|b| (status, b))
        .map_err(|e| Problem::internal("an answer did not serialise", e))
}
