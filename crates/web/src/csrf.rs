//! Cross-site request forgery stopped by where a request comes from (the check Go's
//! `CrossOriginProtection` makes): a request that changes something is refused when the browser
//! says it came from another site (`Sec-Fetch-Site`), or, from a browser too old to say, when
//! its `Origin` is not this site. A request with neither header is not from a browser and
//! passes. The session cookie's `SameSite=Lax` is the second wall.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{Dashboard, WebError};

pub async fn check(State(dash): State<Arc<Dashboard>>, request: Request, next: Next) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if safe || same_site(request.headers(), dash.settings.public_url.as_deref()) {
        next.run(request).await
    } else {
        WebError::CrossSite.into_response()
    }
}

/// Whether a state-changing request may go on.
fn same_site(headers: &HeaderMap, public_url: Option<&str>) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.to_str(), Ok("same-origin" | "none"));
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    if public_url.is_some_and(|p| p.trim_end_matches('/').eq_ignore_ascii_case(origin)) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn the_browser_says_where_a_request_comes_from() {
        assert!(same_site(&h(&[("sec-fetch-site", "same-origin")]), None));
        assert!(same_site(&h(&[("sec-fetch-site", "none")]), None));
        for other in ["cross-site", "same-site"] {
            let headers = h(&[
                ("sec-fetch-site", other),
                ("origin", "http://a.test"),
                ("host", "a.test"),
            ]);
            assert!(!same_site(&headers, None), "{other}");
        }
    }

    #[test]
    fn without_fetch_metadata_the_origin_must_be_this_site() {
        assert!(same_site(&h(&[]), None), "not a browser");
        assert!(same_site(
            &h(&[
                ("origin", "http://127.0.0.1:8080"),
                ("host", "127.0.0.1:8080")
            ]),
            None
        ));
        assert!(!same_site(
            &h(&[("origin", "http://evil.test"), ("host", "127.0.0.1:8080")]),
            None
        ));
        assert!(!same_site(
            &h(&[("origin", "null"), ("host", "a.test")]),
            None
        ));
        assert!(same_site(
            &h(&[
                ("origin", "https://loyalty.example.com"),
                ("host", "10.0.0.5:8080")
            ]),
            Some("https://loyalty.example.com/")
        ));
    }
}
