//! Path and query extractors whose every rejection is a problem document: axum's own answer
//! plain text, which a partner's client (and the OpenAPI document) does not expect.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use super::problem::Problem;
use crate::Dashboard;

/// The one parameter of a path (`{id}`, `{code}`), as text; one that does not decode names
/// nothing there (404).
pub struct Segment(pub String);

impl FromRequestParts<Arc<Dashboard>> for Segment {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<Dashboard>,
    ) -> Result<Segment, Problem> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(s)| Segment(s))
            .map_err(|_| Problem::not_found("resource"))
    }
}

/// The query's pairs as sent; a name given twice is refused by [`Params::one`].
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The value of `name`, if given once; given twice is a 400.
    pub fn one(&self, name: &str) -> Result<Option<&str>, Problem> {
        let mut found = self.0.iter().filter(|(k, _)| k == name);
        let first = found.next().map(|(_, v)| v.as_str());
        if found.next().is_some() {
            return Err(Problem::bad_request(
                "invalid_query",
                format!("give {name} once"),
            ));
        }
        Ok(first)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Params, Problem> {
        let query = parts.uri.query().unwrap_or("");
        let pairs = form_pairs(query);
        Ok(Params(pairs))
    }
}

/// `application/x-www-form-urlencoded` pairs (bytes that are not UTF-8 replaced).
fn form_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_decode_like_a_form() {
        assert_eq!(
            form_pairs("phone=%2B7+916&x=&y&phone=1&bad=%ZZ%&cut=%4"),
            [
                ("phone".into(), "+7 916".into()),
                ("x".into(), "".into()),
                ("y".into(), "".into()),
                ("phone".into(), "1".into()),
                ("bad".into(), "%ZZ%".into()),
                ("cut".into(), "%4".into()),
            ]
        );
        assert_eq!(form_pairs("a=%FF%D0%90")[0].1, "\u{fffd}А");
        let p = Params(form_pairs("a=1&a=2&b=3"));
        assert!(p.one("a").is_err());
        assert_eq!(p.one("b").unwrap(), Some("3"));
        assert_eq!(p.one("c").unwrap(), None);
    }
}
