//! A local stand-in for the YCLIENTS REST API, for the bench: it enforces the vendor's limits
//! (5 requests a second and 200 a minute, over every company together, as YCLIENTS counts per
//! IP address) and answers 429 beyond them, gives at most [`PAGE_CAP`] items a page whatever
//! is asked, and logs every request it served.
//!
//! Companies are filled by the bench: cards and records to list (the history import), and
//! records answered by id (a webhook's re-fetch). Anything else (services, staff, a poller's
//! `changed_after` listing) is answered with an empty list.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The most items a page the stand-in gives (YCLIENTS' own maximum for records is not
/// published; 50 makes the import of 20,000 records and 5,000 cards 500 calls).
pub const PAGE_CAP: usize = 50;

/// What a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A page of cards (`POST /company/{id}/clients/search`).
    Clients,
    /// A page of records by visit day (`GET /records/{id}?start_date…`).
    Records,
    /// A poller's page (`GET /records/{id}?changed_after…`).
    Changed,
    /// One record by id (`GET /record/{id}/{record}`).
    Record,
    /// How a settled bill was paid (`GET /visit/details/…`).
    VisitDetails,
    Other,
}

/// One company's data.
#[derive(Default)]
pub struct Company {
    /// Cards, as the clients search returns them.
    pub clients: Vec<Value>,
    /// Records, as `GET /records` returns them.
    pub records: Vec<Value>,
    /// Answers `GET /record/{company}/{id}` with a record built for the id.
    pub record_by_id: Option<fn(&str, u64) -> Value>,
}

/// A request served: when, for which company, what.
#[derive(Debug, Clone)]
pub struct Served {
    pub at: Instant,
    pub company: String,
    pub kind: Kind,
}

struct Inner {
    companies: HashMap<String, Company>,
    window: Mutex<VecDeque<Instant>>,
    log: Mutex<Vec<Served>>,
    rejected: AtomicU64,
}

pub struct FakeCrm {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeCrm {
    pub async fn start(companies: HashMap<String, Company>) -> anyhow::Result<FakeCrm> {
        let inner = Arc::new(Inner {
            companies,
            window: Mutex::new(VecDeque::new()),
            log: Mutex::new(Vec::new()),
            rejected: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeCrm { addr, inner, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request served so far (429s not included).
    pub fn served(&self) -> Vec<Served> {
        self.inner.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Requests answered 429.
    pub fn rejected(&self) -> u64 {
        self.inner.rejected.load(Ordering::Relaxed)
    }
}

impl Drop for FakeCrm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether one more request fits the vendor's windows now; counts it when it does.
fn admit(inner: &Inner) -> bool {
    let Ok(mut window) = inner.window.lock() else {
        return false;
    };
    let now = Instant::now();
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
    {
        window.pop_front();
    }
    let last_second = window
        .iter()
        .rev()
        .take_while(|t| now.duration_since(**t) < Duration::from_secs(1))
        .count();
    if window.len() >= 200 || last_second >= 5 {
        return false;
    }
    window.push_back(now);
    true
}

fn envelope(data: Value, total: usize) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"success": true, "data": data, "meta": {"total_count": total}}).to_string(),
    )
        .into_response()
}

fn page_of(items: &[Value], page: usize, asked: usize) -> Response {
    let size = asked.clamp(1, PAGE_CAP);
    let from = page.saturating_sub(1).saturating_mul(size);
    let slice: Vec<Value> = items.iter().skip(from).take(size).cloned().collect();
    envelope(Value::Array(slice), items.len())
}

fn query(uri: &Uri, key: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_owned())
    })
}

async fn serve(State(inner): State<Arc<Inner>>, method: Method, uri: Uri, body: Bytes) -> Response {
    if !admit(&inner) {
        inner.rejected.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            r#"{"success":false,"data":null,"meta":{"message":"Too Many Requests"}}"#,
        )
            .into_response();
    }
    let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let (company, kind) = match (method.as_str(), parts.as_slice()) {
        ("POST", ["company", c, "clients", "search"]) => (*c, Kind::Clients),
        ("GET", ["records", c]) if query(&uri, "changed_after").is_some() => (*c, Kind::Changed),
        ("GET", ["records", c]) => (*c, Kind::Records),
        ("GET", ["record", c, _]) => (*c, Kind::Record),
        ("GET", ["visit", "details", c, ..]) => (*c, Kind::VisitDetails),
        (_, [_, c, ..]) => (*c, Kind::Other),
        _ => ("", Kind::Other),
    };
    if let Ok(mut log) = inner.log.lock() {
        log.push(Served {
            at: Instant::now(),
            company: company.to_owned(),
            kind,
        });
    }
    let data = inner.companies.get(company);
    let number = |key: &str, default: usize| {
        query(&uri, key)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(default)
    };
    match (kind, data) {
        (Kind::Clients, Some(c)) => {
            let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let page = asked["page"].as_u64().unwrap_or(1) as usize;
            let size = asked["page_size"].as_u64().unwrap_or(200) as usize;
            page_of(&c.clients, page, size)
        }
        (Kind::Records, Some(c)) => page_of(&c.records, number("page", 1), number("count", 200)),
        (Kind::Record, Some(c)) => {
            let id = parts
                .get(2)
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            match c.record_by_id {
                Some(build) => envelope(build(company, id), 1),
                None => (StatusCode::NOT_FOUND, "{}").into_response(),
            }
        }
        _ => envelope(json!([]), 0),
    }
}
