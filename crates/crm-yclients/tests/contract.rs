//! Contract tests against a wiremock stand-in for the YCLIENTS/Altegio API: every request's
//! method, path, query, auth header, `Accept` header and body are asserted, and the answers are
//! built from the official spec's examples (`fixtures/yclients/api_*.json`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crm_yclients::{Credentials, Flavor, RateLimiter, Transport, YclientsClient, YclientsConfig};
use loyalty_core::adapter::ClientDraft;
use loyalty_core::{AdapterError, Phone, VisitStatus};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Match, Mock, MockServer, Request, Respond, ResponseTemplate};

const YC_ACCEPT: &str = "application/vnd.yclients.v2+json";
const USER_AUTH: &str = "Bearer partner-token, User user-token";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../fixtures/yclients/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("JSON fixture")
}

fn fast() -> Transport {
    Transport {
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..Transport::default()
    }
}

fn client_on(server: &MockServer, flavor: Flavor, credentials: Credentials) -> YclientsClient {
    let mut config = YclientsConfig::new(flavor, "4564");
    config.base_url = Some(server.uri());
    let http = crm_yclients::http_client().expect("http client");
    YclientsClient::new(
        http,
        Arc::new(RateLimiter::new(1_000, 100_000)),
        &config,
        credentials,
    )
    .with_transport(fast())
}

fn creds() -> Credentials {
    Credentials {
        partner_token: "partner-token".into(),
        user_token: Some("user-token".into()),
        login: None,
    }
}

fn yclients(server: &MockServer) -> YclientsClient {
    client_on(server, Flavor::YCLIENTS, creds())
}

/// The header's raw value, exactly. (wiremock's `header` matcher splits values at commas, and
/// YCLIENTS' `Bearer <partner>, User <user>` is one value with a comma in it.)
struct Exactly(&'static str, &'static str);

impl Match for Exactly {
    fn matches(&self, request: &Request) -> bool {
        let values: Vec<_> = request.headers.get_all(self.0).iter().collect();
        values.len() == 1 && values[0].to_str().ok() == Some(self.1)
    }
}

fn phone(p: &str) -> Phone {
    Phone::parse(p).expect("phone")
}

/// The user-scoped request as YCLIENTS wants it.
fn user_call(verb: &str, p: &str) -> wiremock::MockBuilder {
    Mock::given(method(verb))
        .and(path(p))
        .and(Exactly("authorization", USER_AUTH))
        .and(Exactly("accept", YC_ACCEPT))
}

#[tokio::test]
async fn record_with_attendance_1_and_the_phone_as_a_number() {
    let server = MockServer::start().await;
    user_call("GET", "/record/4564/2")
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("api_record_came.json")))
        .expect(1)
        .mount(&server)
        .await;
    let visit = yclients(&server).get_record("2").await.unwrap();
    assert_eq!(visit.status, VisitStatus::Came);
    assert_eq!(
        (visit.company_id.as_str(), visit.record_id.as_str()),
        ("4564", "2")
    );
    assert_eq!(visit.paid_minor(), 10_000);
    assert!(!visit.needs_refetch);
    let client = visit.client.expect("client");
    assert_eq!(client.phone, Some(phone("+70001234567")));
    assert_eq!(client.external_id.as_deref(), Some("18936825"));
}

fn search_body(digits: &str) -> Value {
    json!({
        "page": 1,
        "page_size": 50,
        "fields": ["id", "name", "phone", "email"],
        "filters": [{ "type": "quick_search", "state": { "value": digits } }],
    })
}

#[tokio::test]
async fn client_search_hit_miss_and_two_matches() {
    let server = MockServer::start().await;
    let search = |digits: &str, data: Value| {
        user_call("POST", "/company/4564/clients/search")
            .and(Exactly("content-type", "application/json"))
            .and(body_json(search_body(digits)))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({ "success": true, "data": data, "meta": { "total_count": 908 } }),
            ))
            .expect(1)
    };
    search(
        "79161234567",
        json!([{ "id": 5, "name": "Анна", "phone": "79161234567" }]),
    )
    .mount(&server)
    .await;
    search("79160000000", json!([])).mount(&server).await;
    // quick_search also matches other numbers and names; only the exact phone counts, and of
    // two cards with it the oldest wins.
    search(
        "79991112233",
        json!([
            { "id": 9, "name": "Анна", "phone": "+7 999 111-22-33" },
            { "id": 7, "name": "Анна К.", "phone": 79991112233u64 },
            { "id": 3, "name": "Борис", "phone": "79991112234" },
        ]),
    )
    .mount(&server)
    .await;
    let api = yclients(&server);
    let hit = api
        .find_client_by_phone(&phone("8 916 123-45-67"))
        .await
        .unwrap();
    assert_eq!(
        hit.map(|c| (c.external_id, c.name)),
        Some(("5".into(), Some("Анна".into())))
    );
    assert_eq!(
        api.find_client_by_phone(&phone("+79160000000"))
            .await
            .unwrap(),
        None
    );
    let two = api
        .find_client_by_phone(&phone("+79991112233"))
        .await
        .unwrap();
    assert_eq!(two.map(|c| c.external_id), Some("7".into()));
}

#[tokio::test]
async fn create_client_201_and_422_and_never_retried() {
    let server = MockServer::start().await;
    let draft = ClientDraft {
        phone: phone("+79211234567"),
        name: "Василий".into(),
        email: None,
    };
    user_call("POST", "/clients/4564")
        .and(body_json(
            json!({ "name": "Василий", "phone": "79211234567" }),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(fixture("api_client_created.json")))
        .expect(1)
        .mount(&server)
        .await;
    let created = yclients(&server).create_client(&draft).await.unwrap();
    assert_eq!(created.external_id, "1121412");
    assert_eq!(created.phone, Some(phone("+79211234567")));

    let server = MockServer::start().await;
    user_call("POST", "/clients/4564")
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "success": false, "data": null,
            "meta": { "message": "Ошибка валидации", "errors": { "phone": ["Неверный формат телефона"] } }
        })))
        .expect(1)
        .mount(&server)
        .await;
    let err = yclients(&server).create_client(&draft).await.unwrap_err();
    assert_eq!(
        err,
        AdapterError::Validation(vec![
            "Ошибка валидации".into(),
            "Неверный формат телефона".into()
        ])
    );
    assert!(!err.is_retryable());

    // A 503 on a create is not retried: a second attempt could create a second card.
    let server = MockServer::start().await;
    user_call("POST", "/clients/4564")
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&server)
        .await;
    let err = yclients(&server).create_client(&draft).await.unwrap_err();
    assert!(matches!(err, AdapterError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn update_client_sends_put() {
    let server = MockServer::start().await;
    user_call("PUT", "/client/4564/16")
        .and(body_json(
            json!({ "name": "Василий", "phone": "79112345679", "email": "v@example.com" }),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("api_client.json")))
        .expect(1)
        .mount(&server)
        .await;
    let draft = ClientDraft {
        phone: phone("+79112345679"),
        name: "Василий".into(),
        email: Some("v@example.com".into()),
    };
    let updated = yclients(&server).update_client("16", &draft).await.unwrap();
    assert_eq!(updated.external_id, "16");
}

#[tokio::test]
async fn records_changed_since_over_three_pages() {
    let server = MockServer::start().await;
    let record = fixture("api_record_came.json")["data"].clone();
    for (page, ids) in [(1, vec![1, 2]), (2, vec![3, 4]), (3, vec![5])] {
        let data: Vec<Value> = ids
            .iter()
            .map(|id| {
                let mut r = record.clone();
                r["id"] = json!(id);
                r
            })
            .collect();
        user_call("GET", "/records/4564")
            .and(query_param("changed_after", "2019-01-17"))
            .and(query_param("with_deleted", "1"))
            .and(query_param("page", page.to_string()))
            .and(query_param("count", "2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "success": true, "data": data, "meta": { "page": page, "total_count": 5 }
            })))
            .expect(1)
            .mount(&server)
            .await;
    }
    let api = yclients(&server).with_transport(Transport {
        page_size: 2,
        ..fast()
    });
    // 2019-01-17T19:44:14+09:00 is the 17th in Moscow too.
    let since = 1_547_721_854_000;
    let mut page = Some(1);
    let mut ids = Vec::new();
    while let Some(p) = page {
        let got = api.records_changed_since(since, p).await.unwrap();
        ids.extend(got.records.iter().map(|r| r.record_id.clone()));
        page = got.next_page;
    }
    assert_eq!(ids, ["1", "2", "3", "4", "5"]);
}

#[tokio::test]
async fn a_429_then_200_is_retried_after_retry_after() {
    let server = MockServer::start().await;
    user_call("GET", "/client/4564/16")
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    user_call("GET", "/client/4564/16")
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("api_client.json")))
        .expect(1)
        .mount(&server)
        .await;
    let started = Instant::now();
    let client = yclients(&server).get_client("16").await.unwrap();
    assert_eq!(client.external_id, "16");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    assert_eq!(server.received_requests().await.map(|r| r.len()), Some(2));
}

#[tokio::test]
async fn a_retry_after_too_long_to_wait_is_returned_to_the_caller() {
    let server = MockServer::start().await;
    user_call("GET", "/client/4564/16")
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "3600"))
        .expect(1)
        .mount(&server)
        .await;
    let err = yclients(&server).get_client("16").await.unwrap_err();
    assert_eq!(
        err,
        AdapterError::RateLimited {
            retry_after: Some(Duration::from_secs(3600))
        }
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_401_logs_in_again_once_and_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/client/4564/16"))
        .and(Exactly("authorization", "Bearer partner-token, User stale"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "success": false, "data": null, "meta": { "message": "Необходима авторизация" }
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/auth"))
        .and(Exactly("authorization", "Bearer partner-token"))
        .and(Exactly("accept", YC_ACCEPT))
        .and(body_json(
            json!({ "login": "79161234567", "password": "secret" }),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "success": true,
            "data": { "id": 1, "user_token": "fresh", "name": "Админ", "phone": "79161234567",
                      "login": "79161234567", "email": "", "avatar": "", "is_approved": true },
            "meta": []
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/client/4564/16"))
        .and(Exactly("authorization", "Bearer partner-token, User fresh"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("api_client.json")))
        .expect(2)
        .mount(&server)
        .await;
    let api = client_on(
        &server,
        Flavor::YCLIENTS,
        Credentials {
            partner_token: "partner-token".into(),
            user_token: Some("stale".into()),
            login: Some(("79161234567".into(), "secret".into())),
        },
    );
    assert_eq!(api.get_client("16").await.unwrap().external_id, "16");
    // The fresh token is kept: the next call goes straight through (POST /auth stays at 1).
    assert_eq!(api.get_client("16").await.unwrap().external_id, "16");
}

#[tokio::test]
async fn success_false_inside_a_200_is_an_error() {
    let server = MockServer::start().await;
    user_call("GET", "/client/4564/16")
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "success": false, "data": null, "meta": { "message": "Клиент не найден в филиале" }
        })))
        .mount(&server)
        .await;
    let err = yclients(&server).get_client("16").await.unwrap_err();
    assert_eq!(
        err,
        AdapterError::Validation(vec!["Клиент не найден в филиале".into()])
    );
}

#[tokio::test]
async fn statuses_map_to_typed_errors() {
    for (status, check) in [
        (
            401,
            (|e: &AdapterError| matches!(e, AdapterError::Auth(m) if m == "нет"))
                as fn(&AdapterError) -> bool,
        ),
        (
            402,
            |e| matches!(e, AdapterError::Forbidden(m) if m == "нет"),
        ),
        (403, |e| matches!(e, AdapterError::Forbidden(_))),
        (404, |e| matches!(e, AdapterError::NotFound(_))),
        (400, |e| matches!(e, AdapterError::Validation(_))),
    ] {
        let server = MockServer::start().await;
        user_call("GET", "/client/4564/16")
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({
                "success": false, "data": null, "meta": { "message": "нет" }
            })))
            .expect(1)
            .mount(&server)
            .await;
        let err = yclients(&server).get_client("16").await.unwrap_err();
        assert!(check(&err), "{status}: {err:?}");
        assert!(!err.is_retryable());
    }
    // 5xx on a read: retried up to the attempt limit, then transient.
    let server = MockServer::start().await;
    user_call("GET", "/client/4564/16")
        .respond_with(ResponseTemplate::new(502))
        .expect(4)
        .mount(&server)
        .await;
    let err = yclients(&server).get_client("16").await.unwrap_err();
    assert!(
        matches!(err, AdapterError::Transient(_)) && err.is_retryable(),
        "{err:?}"
    );
}

#[tokio::test]
async fn bad_ids_and_missing_tokens_send_nothing() {
    let server = MockServer::start().await;
    let api = yclients(&server);
    assert!(matches!(
        api.get_client("../../auth").await,
        Err(AdapterError::Validation(_))
    ));
    let no_user = client_on(
        &server,
        Flavor::YCLIENTS,
        Credentials {
            partner_token: "partner-token".into(),
            ..Credentials::default()
        },
    );
    assert!(matches!(
        no_user.get_record("2").await,
        Err(AdapterError::Auth(_))
    ));
    assert_eq!(server.received_requests().await.map(|r| r.len()), Some(0));
    assert!(!format!("{no_user:?}").contains("partner-token"));
}

#[tokio::test]
async fn altegio_sends_its_own_accept_header() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/record/4564/2"))
        .and(Exactly("authorization", USER_AUTH))
        .and(Exactly("accept", "application/vnd.api.v2+json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("api_record_came.json")))
        .expect(1)
        .mount(&server)
        .await;
    let visit = client_on(&server, Flavor::ALTEGIO, creds())
        .get_record("2")
        .await
        .unwrap();
    assert_eq!(visit.status, VisitStatus::Came);
}

/// Records when each request arrived.
struct Stamp(Arc<Mutex<Vec<Instant>>>);

impl Respond for Stamp {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        if let Ok(mut times) = self.0.lock() {
            times.push(Instant::now());
        }
        ResponseTemplate::new(200).set_body_json(fixture("api_client.json"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_requests_stay_within_five_per_second_and_run_at_the_limit() {
    let server = MockServer::start().await;
    let times = Arc::new(Mutex::new(Vec::new()));
    user_call("GET", "/client/4564/16")
        .respond_with(Stamp(times.clone()))
        .expect(60)
        .mount(&server)
        .await;
    let mut config = YclientsConfig::new(Flavor::YCLIENTS, "4564");
    config.base_url = Some(server.uri());
    let api = YclientsClient::new(
        crm_yclients::http_client().unwrap(),
        Arc::new(RateLimiter::yclients()),
        &config,
        creds(),
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..60 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move { api.get_client("16").await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let elapsed = started.elapsed();
    let mut times = times.lock().unwrap().clone();
    times.sort();
    assert_eq!(times.len(), 60);
    for (i, t) in times.iter().enumerate() {
        let window = times[i..]
            .iter()
            .take_while(|u| u.duration_since(*t) < Duration::from_secs(1));
        assert!(window.count() <= 5, "more than 5 requests within a second");
    }
    let spread = times[59].duration_since(times[0]);
    println!("60 requests: {elapsed:?} in all, {spread:?} from first to last arrival");
    // 60 requests at 5/s: 12 bursts, the last starting 11 s after the first.
    let needed = Duration::from_secs(11);
    assert!(elapsed >= needed, "{elapsed:?}");
    assert!(
        elapsed <= needed.mul_f64(1.1),
        "{elapsed:?} is more than 10% over the limit's 11 s"
    );
}
