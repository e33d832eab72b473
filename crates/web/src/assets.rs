//! The pages' files, embedded in the binary and served under names that carry a hash of their
//! content, cached for a year: a new build's file has a new name. htmx 2.0.11 is committed as
//! npm ships it (`assets/htmx-2.0.11.min.js`, BSD-0-Clause, `assets/htmx-LICENSE`).

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    /// `htmx-3f2a9c01d4.js`.
    name: String,
    body: &'static [u8],
    content_type: &'static str,
}

const HTMX: &[u8] = include_bytes!("../assets/htmx-2.0.11.min.js");
const CSS: &[u8] = include_bytes!("../assets/app.css");

fn assets() -> &'static [Asset; 2] {
    static ASSETS: OnceLock<[Asset; 2]> = OnceLock::new();
    ASSETS.get_or_init(|| {
        let named = |stem: &str, ext: &str, body: &'static [u8], content_type| {
            let digest = Sha256::digest(body);
            let short: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
            Asset {
                name: format!("{stem}-{short}.{ext}"),
                body,
                content_type,
            }
        };
        [
            named("htmx", "js", HTMX, "text/javascript; charset=utf-8"),
            named("app", "css", CSS, "text/css; charset=utf-8"),
        ]
    })
}

/// The URL of htmx.
pub fn htmx_url() -> String {
    format!("/assets/{}", assets()[0].name)
}

/// The URL of the stylesheet.
pub fn css_url() -> String {
    format!("/assets/{}", assets()[1].name)
}

pub async fn serve(Path(name): Path<String>) -> Response {
    match assets().iter().find(|a| a.name == name) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            a.body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
