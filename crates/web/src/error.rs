//! What a page answers when it cannot do what was asked. A handler's [`WebError`] becomes a
//! status with the error in the response's extensions; [`render`], which knows the reader's
//! language, turns it into a page (or, for htmx, the fragment it swaps in).

use std::sync::Arc;

use askama::Template;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use loyalty_core::audit::Plan;
use loyalty_core::{EngineError, StoreError};
use tracing::warn;

use crate::i18n::{Lang, Words};

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("sign in first")]
    SignIn,
    #[error("not found")]
    NotFound,
    #[error("the role does not allow it")]
    Forbidden,
    #[error("needs the {0:?} plan")]
    Plan(Plan),
    #[error("{0}")]
    BadInput(String),
    /// The engine said no (not enough points, a used code…): its words.
    #[error("{0}")]
    Refused(EngineError),
    #[error("too many attempts; retry in {retry_after_s} s")]
    TooMany { retry_after_s: u64 },
    #[error("a request from another site")]
    CrossSite,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl From<EngineError> for WebError {
    fn from(e: EngineError) -> WebError {
        match e {
            EngineError::Store(s) => WebError::Store(s),
            e if e.is_refusal() => WebError::Refused(e),
            other => WebError::Internal(other.to_string()),
        }
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> WebError {
        WebError::Internal(format!("template: {e}"))
    }
}

impl WebError {
    fn status(&self) -> StatusCode {
        match self {
            WebError::SignIn => StatusCode::UNAUTHORIZED,
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::Forbidden | WebError::CrossSite | WebError::Plan(_) => StatusCode::FORBIDDEN,
            WebError::BadInput(_) | WebError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            WebError::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            WebError::Store(StoreError::Retryable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Store(_) | WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the reader is told.
    fn message(&self, w: &Words, lang: Lang) -> String {
        match self {
            WebError::SignIn => w.sign_in.to_owned(),
            WebError::NotFound => w.not_found.to_owned(),
            WebError::Forbidden => w.forbidden.to_owned(),
            WebError::Plan(p) => format!("{} {}.", w.needs_plan, lang.plan(*p)),
            WebError::BadInput(m) => format!("{}: {m}", w.bad_input),
            WebError::Refused(e) => refusal(e, lang),
            WebError::TooMany { .. } => w.too_many.to_owned(),
            WebError::CrossSite => w.cross_site.to_owned(),
            WebError::Store(_) | WebError::Internal(_) => w.server_error.to_owned(),
        }
    }
}

/// The engine's refusals people meet at the desk, in Russian; the rest in the engine's words.
fn refusal(e: &EngineError, lang: Lang) -> String {
    if lang == Lang::En {
        return e.to_string();
    }
    match e {
        EngineError::InsufficientBalance {
            available,
            requested,
        } => format!(
            "Недостаточно баллов: доступно {}, нужно {}.",
            available.0, requested.0
        ),
        EngineError::NonPositiveAmount(_) => "Число баллов должно быть больше нуля.".into(),
        EngineError::Conflict { .. } => {
            "Эта форма уже была отправлена с другими данными; откройте страницу заново.".into()
        }
        EngineError::CodeNotUsable { code, .. } => {
            format!("Код {code} уже не действует.")
        }
        EngineError::UnknownCode(_) => "Такого кода нет.".into(),
        EngineError::BillNeeded { .. } => "Укажите сумму чека.".into(),
        EngineError::BillTooSmall { .. } => format!("Чек слишком мал для этого кода ({e})."),
        other => other.to_string(),
    }
}

/// Carried from the handler to [`render`].
#[derive(Clone)]
struct Failure(Arc<WebError>);

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            warn!(error = %self, "dashboard request failed");
        }
        let mut response = status.into_response();
        if let WebError::TooMany { retry_after_s } = &self
            && let Ok(v) = HeaderValue::from_str(&retry_after_s.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response.extensions_mut().insert(Failure(Arc::new(self)));
        response
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    w: &'a Words,
    message: String,
    signed_in: bool,
}

/// Renders a failed handler's error in the reader's language: "sign in" as a redirect to the
/// sign-in page (htmx: `HX-Redirect`), the rest as a page with the status kept.
pub async fn render(request: Request, next: Next) -> Response {
    let lang = Lang::of(request.headers());
    let htmx = request.headers().contains_key("hx-request");
    let mut response = next.run(request).await;
    let Some(Failure(error)) = response.extensions_mut().remove::<Failure>() else {
        return response;
    };
    if matches!(*error, WebError::SignIn) {
        if htmx {
            let mut r = StatusCode::UNAUTHORIZED.into_response();
            r.headers_mut()
                .insert("hx-redirect", HeaderValue::from_static("/login"));
            return r;
        }
        return Redirect::to("/login").into_response();
    }
    let w = lang.words();
    let page = ErrorPage {
        w,
        message: error.message(w, lang),
        signed_in: !matches!(*error, WebError::TooMany { .. }),
    };
    let body = if htmx {
        format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            escape(&page.message)
        )
    } else {
        page.render().unwrap_or_else(|_| escape(&page.message))
    };
    let mut out = (response.status(), Html(body)).into_response();
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// Text for HTML.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
