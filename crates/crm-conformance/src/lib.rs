//! # crm-conformance
//!
//! One story every [`CrmAdapter`] passes, each CRM crate running it against a wiremock stand-in
//! answering with that CRM's own fixtures (as one test suite runs against every backend):
//!
//! 1. **webhooks** of a visit that came, did not come, was edited and was deleted become one
//!    visit event each, with the right status and amounts (a CRM whose webhooks carry only part
//!    of the record marks them `needs_refetch`); an empty, truncated or shapeless body is a
//!    [`WebhookError`], never a panic;
//! 2. **a client by phone**: found, not found (`None`, not an error), two cards (the one the
//!    subject names);
//! 3. **a record** by id;
//! 4. **changes since a cursor** across pages (at least two, and two records, none twice);
//! 5. **errors**: 401, 403, 404, the CRM's rate-limit status with and without `Retry-After`,
//!    500, 503, a timeout and a malformed body each become the right [`AdapterError`], on
//!    reading a record and on finding a client (where a 404 means "no such client");
//! 6. **capabilities**: every operation the adapter does not declare answers
//!    [`AdapterError::Unsupported`] without a request.
//!
//! A CRM without webhooks refuses any body posted as one; one without
//! [`loyalty_core::Capabilities::records`] (DIKIDI's widget) answers the lookups and the record
//! `Unsupported`, and has its errors mapped on the call it makes ([`Subject::list_services`]).
//!
//! [`check`] returns what failed (so a deliberately wrong adapter can be shown to fail);
//! [`run`] panics with the list.

pub mod fuzz;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use loyalty_core::adapter::{ClientDraft, Operation, RewardRequest};
use loyalty_core::{
    AdapterError, CrmAdapter, CrmEvent, Currency, Money, Phone, VisitEvent, VisitStatus,
    WebhookError,
};
use wiremock::{MockBuilder, MockGuard, MockServer, ResponseTemplate};

/// The four webhook cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// The client came and paid.
    Came,
    /// The client did not come (or the visit was cancelled).
    NoShow,
    /// The visit that came, edited: another amount.
    Edited,
    /// The visit was deleted.
    Deleted,
}

/// The client-lookup cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Found,
    NotFound,
    TwoCards,
}

/// The start of the changes the story asks for (2025-11-24 16:00 UTC); a subject whose
/// request depends on the time (Arnica's "changed in the last N minutes") fixes its clock at
/// [`NOW_MS`].
pub const SINCE_MS: i64 = 1_764_000_000_000;
/// Thirty minutes after [`SINCE_MS`].
pub const NOW_MS: i64 = SINCE_MS + 30 * 60_000;

/// One CRM's side of the story: its adapter, the requests it makes and its fixtures' answers.
#[async_trait]
pub trait Subject: Send + Sync {
    /// The CRM's name in failure messages.
    fn name(&self) -> String;

    /// The adapter against `base_url`, making one attempt per call (no retries) under this
    /// timeout.
    fn adapter(&self, base_url: &str, timeout: Duration) -> Arc<dyn CrmAdapter>;

    /// What the adapter needs on the server before its calls (a login); nothing by default.
    async fn prepare(&self, _server: &MockServer) {}

    /// A webhook delivery of the case, with its content type.
    fn webhook(&self, hook: Hook) -> (Option<&'static str>, Vec<u8>);

    /// The record the webhooks and [`Subject::get_record`] name.
    fn record_id(&self) -> String;

    /// The phone the lookups ask for.
    fn phone(&self) -> Phone;

    /// The request that finds a client by [`Subject::phone`] (method, path, query, auth).
    fn find_client(&self) -> MockBuilder;

    /// The CRM's answer to it in each case.
    fn find_client_answer(&self, lookup: Lookup) -> ResponseTemplate;

    /// The card the adapter must give for `Found` and `TwoCards`.
    fn expected_client(&self, lookup: Lookup) -> String;

    /// The request that reads [`Subject::record_id`].
    fn get_record(&self) -> MockBuilder;

    /// The CRM's answer to it: a visit that came.
    fn get_record_answer(&self) -> ResponseTemplate;

    /// The requests (and the CRM's answers) that list the records changed since
    /// [`SINCE_MS`]: together at least two pages and two records. Each must be asked.
    fn changes(&self) -> Vec<(MockBuilder, ResponseTemplate)>;

    /// The status by which the CRM says "too many requests".
    fn rate_limit_status(&self) -> u16 {
        429
    }

    /// Whether the CRM's webhooks carry the whole record (else they are `needs_refetch`).
    fn whole_webhooks(&self) -> bool {
        true
    }

    /// The request that lists the CRM's services, for a CRM the story can check only there
    /// (one without [`loyalty_core::Capabilities::records`]: its errors are mapped on that call).
    fn list_services(&self) -> Option<MockBuilder> {
        None
    }
}

/// Runs the story and panics with everything that failed.
pub async fn run(subject: &dyn Subject) {
    let failures = check(subject).await;
    assert!(
        failures.is_empty(),
        "{} fails the adapter conformance story:\n- {}",
        subject.name(),
        failures.join("\n- ")
    );
}

/// Runs the story; what failed, each in a sentence.
pub async fn check(subject: &dyn Subject) -> Vec<String> {
    let mut failures = Vec::new();
    webhooks(subject, &mut failures);
    lookups(subject, &mut failures).await;
    record(subject, &mut failures).await;
    changes(subject, &mut failures).await;
    errors(subject, &mut failures).await;
    unsupported(subject, &mut failures).await;
    failures
}

/// Every call of the story runs under this timeout: long enough for a loaded test machine,
/// short enough that the timeout case stays quick.
const TIMEOUT: Duration = Duration::from_millis(1_500);

async fn server_for(subject: &dyn Subject) -> (MockServer, Arc<dyn CrmAdapter>) {
    let server = MockServer::start().await;
    subject.prepare(&server).await;
    let adapter = subject.adapter(&server.uri(), TIMEOUT);
    (server, adapter)
}

fn one_visit(events: Result<Vec<CrmEvent>, WebhookError>) -> Result<VisitEvent, String> {
    match events {
        Ok(events) => match events.as_slice() {
            [CrmEvent::Visit(v)] => Ok(v.clone()),
            other => Err(format!("{} events, not one visit: {other:?}", other.len())),
        },
        Err(e) => Err(format!("refused: {e}")),
    }
}

fn webhooks(subject: &dyn Subject, failures: &mut Vec<String>) {
    // Parsing needs no server: any base URL will do.
    let adapter = subject.adapter("http://127.0.0.1:9", TIMEOUT);
    if !adapter.capabilities().webhooks {
        // A CRM that sends none refuses anything posted as one.
        for hook in [Hook::Came, Hook::NoShow, Hook::Edited, Hook::Deleted] {
            let (content_type, body) = subject.webhook(hook);
            if let Ok(events) = adapter.parse_webhook(content_type, &body) {
                failures.push(format!(
                    "webhook {hook:?}: the CRM sends no webhooks, yet {} events were read",
                    events.len()
                ));
            }
        }
        return;
    }
    let mut parse = |hook: Hook| {
        let (content_type, body) = subject.webhook(hook);
        one_visit(adapter.parse_webhook(content_type, &body))
            .map_err(|e| failures.push(format!("webhook {hook:?}: {e}")))
            .ok()
    };
    let came = parse(Hook::Came);
    let no_show = parse(Hook::NoShow);
    let edited = parse(Hook::Edited);
    let deleted = parse(Hook::Deleted);
    let whole = subject.whole_webhooks();
    let id = subject.record_id();
    let mut expect = |hook: Hook, v: &Option<VisitEvent>, status: VisitStatus| {
        let Some(v) = v else { return };
        if v.record_id != id {
            failures.push(format!(
                "webhook {hook:?}: record {} instead of {id}",
                v.record_id
            ));
        }
        if whole || hook == Hook::Deleted {
            if v.needs_refetch {
                failures.push(format!(
                    "webhook {hook:?}: a whole body marked needs_refetch"
                ));
            } else if v.status != status {
                failures.push(format!(
                    "webhook {hook:?}: status {} instead of {status}",
                    v.status
                ));
            }
        } else if !v.needs_refetch {
            failures.push(format!(
                "webhook {hook:?}: a partial body not marked needs_refetch"
            ));
        }
    };
    expect(Hook::Came, &came, VisitStatus::Came);
    expect(Hook::NoShow, &no_show, VisitStatus::NoShow);
    expect(Hook::Edited, &edited, VisitStatus::Came);
    expect(Hook::Deleted, &deleted, VisitStatus::Deleted);
    if whole && let (Some(came), Some(edited)) = (&came, &edited) {
        if came.paid_minor() <= 0 {
            failures.push("webhook Came: nothing paid".to_owned());
        }
        if came.paid_minor() == edited.paid_minor() {
            failures.push("webhook Edited: the same amount as Came".to_owned());
        }
        if came.version.is_some() && edited.version <= came.version {
            failures.push("webhook Edited: not a newer version than Came".to_owned());
        }
    }
    for (what, body) in [
        ("an empty body", &b""[..]),
        ("a truncated body", &b"{\"a\": [1, 2"[..]),
        ("a JSON string", &b"\"visit\""[..]),
        ("an object of nothing known", &b"{\"hello\": \"world\"}"[..]),
    ] {
        let (content_type, _) = subject.webhook(Hook::Came);
        match adapter.parse_webhook(content_type, body) {
            Err(WebhookError::Malformed(_) | WebhookError::Shape(_)) => {}
            other => failures.push(format!("webhook of {what}: {other:?}, not refused")),
        }
    }
}

/// Whether the adapter reads records and finds clients (else those parts of the story are its
/// `Unsupported` answers, checked by [`unsupported`]).
fn reads_records(subject: &dyn Subject) -> bool {
    subject
        .adapter("http://127.0.0.1:9", TIMEOUT)
        .capabilities()
        .records
}

async fn lookups(subject: &dyn Subject, failures: &mut Vec<String>) {
    if !reads_records(subject) {
        return;
    }
    for lookup in [Lookup::Found, Lookup::NotFound, Lookup::TwoCards] {
        let (server, adapter) = server_for(subject).await;
        let guard = subject
            .find_client()
            .respond_with(subject.find_client_answer(lookup))
            .mount_as_scoped(&server)
            .await;
        let found = adapter.find_client_by_phone(&subject.phone()).await;
        match (lookup, found) {
            (Lookup::NotFound, Ok(None)) => {}
            (Lookup::NotFound, other) => {
                failures.push(format!("find client, not found: {other:?} instead of None"))
            }
            (_, Ok(Some(c))) => {
                let want = subject.expected_client(lookup);
                if c.external_id != want {
                    failures.push(format!(
                        "find client, {lookup:?}: card {} instead of {want}",
                        c.external_id
                    ));
                }
                if c.phone.as_ref() != Some(&subject.phone()) {
                    failures.push(format!("find client, {lookup:?}: phone {:?}", c.phone));
                }
            }
            (_, other) => failures.push(format!("find client, {lookup:?}: {other:?}")),
        }
        matched(
            &server,
            &guard,
            &format!("find client, {lookup:?}"),
            failures,
        )
        .await;
    }
}

async fn record(subject: &dyn Subject, failures: &mut Vec<String>) {
    if !reads_records(subject) {
        return;
    }
    let (server, adapter) = server_for(subject).await;
    let guard = subject
        .get_record()
        .respond_with(subject.get_record_answer())
        .mount_as_scoped(&server)
        .await;
    match adapter.get_record(&subject.record_id()).await {
        Ok(v) if v.record_id == subject.record_id() && !v.needs_refetch => {
            if v.status != VisitStatus::Came || v.paid_minor() <= 0 {
                failures.push(format!(
                    "get record: status {} paid {} instead of a paid visit that came",
                    v.status,
                    v.paid_minor()
                ));
            }
        }
        other => failures.push(format!("get record: {other:?}")),
    }
    matched(&server, &guard, "get record", failures).await;
}

async fn changes(subject: &dyn Subject, failures: &mut Vec<String>) {
    if !subject
        .adapter("http://127.0.0.1:9", TIMEOUT)
        .capabilities()
        .poll_records
    {
        return;
    }
    let (server, adapter) = server_for(subject).await;
    let mut guards = Vec::new();
    for (request, answer) in subject.changes() {
        guards.push(request.respond_with(answer).mount_as_scoped(&server).await);
    }
    let mut seen = Vec::new();
    let mut page = 1;
    let mut pages = 0;
    loop {
        match adapter.records_changed_since(SINCE_MS, page).await {
            Ok(found) => {
                pages += 1;
                seen.extend(found.records.into_iter().map(|r| r.record_id));
                match found.next_page {
                    Some(next) if next > page && pages < 5 => page = next,
                    Some(next) => {
                        failures.push(format!("changes, page {page}: next page {next}"));
                        break;
                    }
                    None => break,
                }
            }
            Err(e) => {
                failures.push(format!("changes, page {page}: {e}"));
                break;
            }
        }
    }
    seen.sort();
    let n = seen.len();
    seen.dedup();
    if pages < 2 || seen.len() != n || n < 2 {
        failures.push(format!(
            "changes: {pages} pages, records {seen:?} (at least two pages and two records, none twice)"
        ));
    }
    for (i, guard) in guards.iter().enumerate() {
        matched(
            &server,
            guard,
            &format!("changes, request {}", i + 1),
            failures,
        )
        .await;
    }
}

/// A failure the CRM answers, and the error it must become.
struct Failing {
    what: &'static str,
    answer: ResponseTemplate,
    want: fn(&AdapterError) -> bool,
}

fn failing(subject: &dyn Subject) -> Vec<Failing> {
    let limited = subject.rate_limit_status();
    vec![
        Failing {
            what: "401",
            answer: ResponseTemplate::new(401).set_body_string("{\"message\":\"Unauthorized\"}"),
            want: |e| matches!(e, AdapterError::Auth(_)),
        },
        Failing {
            what: "403",
            answer: ResponseTemplate::new(403).set_body_string("{\"message\":\"Forbidden\"}"),
            want: |e| matches!(e, AdapterError::Forbidden(_)),
        },
        Failing {
            what: "404",
            answer: ResponseTemplate::new(404).set_body_string("{\"message\":\"Not found\"}"),
            want: |e| matches!(e, AdapterError::NotFound(_)),
        },
        Failing {
            what: "rate limited with Retry-After: 7",
            answer: ResponseTemplate::new(limited).insert_header("Retry-After", "7"),
            want: |e| matches!(e, AdapterError::RateLimited { retry_after: Some(d) } if *d == Duration::from_secs(7)),
        },
        Failing {
            what: "rate limited without Retry-After",
            answer: ResponseTemplate::new(limited),
            want: |e| matches!(e, AdapterError::RateLimited { retry_after: None }),
        },
        Failing {
            what: "500",
            answer: ResponseTemplate::new(500),
            want: |e| matches!(e, AdapterError::Transient(_)),
        },
        Failing {
            what: "503",
            answer: ResponseTemplate::new(503).set_body_string("Service Unavailable"),
            want: |e| matches!(e, AdapterError::Transient(_)),
        },
        Failing {
            what: "a timeout",
            answer: ResponseTemplate::new(200)
                .set_body_string("{}")
                .set_delay(TIMEOUT + Duration::from_secs(1)),
            want: |e| matches!(e, AdapterError::Transient(_)),
        },
        Failing {
            what: "a malformed body",
            answer: ResponseTemplate::new(200)
                .insert_header("content-type", "application/json")
                .set_body_string("{\"data\": [{\"id\": 1"),
            want: |e| matches!(e, AdapterError::Unexpected(_)),
        },
    ]
}

async fn errors(subject: &dyn Subject, failures: &mut Vec<String>) {
    if subject.list_services().is_some() {
        for f in failing(subject) {
            let Some(request) = subject.list_services() else {
                break;
            };
            let (server, adapter) = server_for(subject).await;
            let guard = request
                .respond_with(f.answer)
                .mount_as_scoped(&server)
                .await;
            match adapter.list_services().await {
                Err(e) if (f.want)(&e) => {}
                other => failures.push(format!("list services answered {}: {other:?}", f.what)),
            }
            let what = format!("list services answered {}", f.what);
            matched(&server, &guard, &what, failures).await;
        }
    }
    if !reads_records(subject) {
        return;
    }
    for f in failing(subject) {
        let (server, adapter) = server_for(subject).await;
        let guard = subject
            .get_record()
            .respond_with(f.answer.clone())
            .mount_as_scoped(&server)
            .await;
        match adapter.get_record(&subject.record_id()).await {
            Err(e) if (f.want)(&e) => {}
            other => failures.push(format!("get record answered {}: {other:?}", f.what)),
        }
        matched(
            &server,
            &guard,
            &format!("get record answered {}", f.what),
            failures,
        )
        .await;
        if f.what == "404" {
            continue;
        }
        let (server, adapter) = server_for(subject).await;
        let guard = subject
            .find_client()
            .respond_with(f.answer)
            .mount_as_scoped(&server)
            .await;
        match adapter.find_client_by_phone(&subject.phone()).await {
            Err(e) if (f.want)(&e) => {}
            other => failures.push(format!("find client answered {}: {other:?}", f.what)),
        }
        matched(
            &server,
            &guard,
            &format!("find client answered {}", f.what),
            failures,
        )
        .await;
    }
}

async fn unsupported(subject: &dyn Subject, failures: &mut Vec<String>) {
    let server = MockServer::start().await;
    let adapter = subject.adapter(&server.uri(), TIMEOUT);
    let caps = adapter.capabilities();
    let phone = subject.phone();
    let request = RewardRequest {
        client_external_id: Some("1".into()),
        phone: phone.clone(),
        value: Money::new(100_000, Currency::Rub).unwrap_or_else(|_| Money::zero(Currency::Rub)),
        code: "ABCD-EFGH-K".into(),
        title: "Certificate".into(),
        expires_at_ms: None,
        idempotency_key: "conformance".into(),
    };
    let draft = ClientDraft {
        phone: phone.clone(),
        name: "Conformance".into(),
        email: None,
    };
    let mut expect = |op: Operation, result: Result<(), AdapterError>| {
        if result != Err(AdapterError::Unsupported(op)) {
            failures.push(format!("{op:?} is not declared but answered {result:?}"));
        }
    };
    if !caps.certificates {
        expect(
            Operation::IssueCertificate,
            adapter.issue_certificate(&request).await.map(|_| ()),
        );
    }
    if !caps.certificates {
        expect(
            Operation::FindCertificate,
            adapter.find_certificate(&request).await.map(|_| ()),
        );
    }
    if !caps.promo_codes {
        expect(
            Operation::IssuePromoCode,
            adapter.issue_promo_code(&request).await.map(|_| ()),
        );
    }
    if !caps.loyalty_cards {
        expect(
            Operation::FindCard,
            adapter.find_card(&phone).await.map(|_| ()),
        );
    }
    if !caps.loyalty_cards {
        expect(
            Operation::IssueCard,
            adapter.issue_card(&phone).await.map(|_| ()),
        );
    }
    if !caps.loyalty_cards {
        expect(
            Operation::TopUpCard,
            adapter.top_up_card("1", &request).await.map(|_| ()),
        );
    }
    if !caps.client_write {
        expect(
            Operation::CreateClient,
            adapter.create_client(&draft).await.map(|_| ()),
        );
    }
    if !caps.client_write {
        expect(
            Operation::UpdateClient,
            adapter.update_client("1", &draft).await.map(|_| ()),
        );
    }
    if !caps.sms {
        expect(
            Operation::SendSms,
            adapter.send_sms("1", "hello").await.map(|_| ()),
        );
    }
    if !caps.records {
        expect(
            Operation::FindClient,
            adapter.find_client_by_phone(&phone).await.map(|_| ()),
        );
        expect(
            Operation::GetRecord,
            adapter.get_record("1").await.map(|_| ()),
        );
    }
    if !caps.poll_records {
        expect(
            Operation::RecordsChangedSince,
            adapter.records_changed_since(SINCE_MS, 1).await.map(|_| ()),
        );
    }
    let received = server.received_requests().await.unwrap_or_default();
    if !received.is_empty() {
        failures.push(format!(
            "undeclared operations made {} requests ({} {})",
            received.len(),
            received[0].method,
            received[0].url.path()
        ));
    }
}

/// Whether the request the adapter made matched the subject's (method, path, query, auth,
/// body): a request that matched nothing got wiremock's 404, which an adapter may read as
/// "not found" and pass by accident.
async fn matched(server: &MockServer, guard: &MockGuard, what: &str, failures: &mut Vec<String>) {
    if guard.received_requests().await.is_empty() {
        let received: Vec<String> = server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| format!("{} {}", r.method, r.url))
            .collect();
        failures.push(format!(
            "{what}: no request matched the CRM's (received: {received:?})"
        ));
    }
}
