//! People who join through the bot, created in YCLIENTS when the salon enables it, once: the
//! exact requests (a search by phone, then the create), a create whose answer never came found
//! by the next pass instead of made twice, and nothing for a connection that does not create
//! clients. Wiremock as YCLIENTS, the real engine on SQLite.

use loyalty_core::ChatStore;
use loyalty_core::PartnerStore;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crm_yclients::{Credentials, Flavor, RateLimiter, Transport, YclientsAdapter, YclientsConfig};
use loyalty_core::engine::AdapterSource;
use loyalty_core::model::{NewConnection, NewPartner};
use loyalty_core::{
    Bps, ConnectionId, CrmAdapter, CrmConnection, CrmKind, LoyaltyEngine, PartnerId, Phone,
    Program, Store, StoreError, TelegramChat,
};
use loyalty_store::{ConnectionSettings, SqlStore};
use serde_json::json;
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct One(Arc<dyn CrmAdapter>);

#[async_trait]
impl AdapterSource for One {
    async fn adapter(&self, _: ConnectionId) -> Result<Option<Arc<dyn CrmAdapter>>, StoreError> {
        Ok(Some(self.0.clone()))
    }
}

struct Salon {
    _dir: tempfile::TempDir,
    sql: Arc<SqlStore>,
    engine: LoyaltyEngine,
    partner: PartnerId,
    connection: CrmConnection,
    adapters: One,
}

async fn salon(server: &MockServer, create_clients: bool) -> Salon {
    let dir = tempfile::tempdir().unwrap();
    let sql = SqlStore::connect(&format!("sqlite://{}/l.db", dir.path().display()))
        .await
        .unwrap();
    sql.migrate().await.unwrap();
    let sql = Arc::new(sql);
    let partner = sql
        .create_partner(
            &NewPartner {
                name: "Лотос".into(),
                program: Program::with_cashback(Bps::new(500).unwrap()),
            },
            0,
        )
        .await
        .unwrap()
        .id;
    let connection = sql
        .create_connection(
            &NewConnection {
                partner_id: partner,
                kind: CrmKind::Yclients,
                company_id: "4564".into(),
                credentials_ref: "test".into(),
                webhook_secret: "s".into(),
            },
            0,
        )
        .await
        .unwrap();
    sql.save_connection_settings(
        connection.id,
        &ConnectionSettings {
            partner_token: Some("p".into()),
            user_token: Some("u".into()),
            utc_offset_minutes: 180,
            reward_setup: None,
            country: None,
            create_clients,
            crm_credentials: None,
        },
    )
    .await
    .unwrap();
    let mut config = YclientsConfig::new(Flavor::YCLIENTS, "4564");
    config.base_url = Some(server.uri());
    let adapter = YclientsAdapter::with_api(
        config,
        crm_yclients::http_client().unwrap(),
        Arc::new(RateLimiter::new(1_000, 100_000)),
        Credentials {
            partner_token: "p".into(),
            user_token: Some("u".into()),
            login: None,
        },
    )
    .with_transport(Transport {
        timeout: Duration::from_millis(400),
        base_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        ..Transport::default()
    });
    Salon {
        _dir: dir,
        engine: LoyaltyEngine::new(sql.clone()),
        sql,
        partner,
        connection,
        adapters: One(Arc::new(adapter)),
    }
}

impl Salon {
    /// A person shares `phone` with the bot after coming by the salon's link.
    async fn joins(&self, chat: i64, phone: &str, name: &str) {
        let phone = Phone::parse_international(phone).unwrap();
        self.sql
            .save_telegram_chat(
                &TelegramChat {
                    chat_id: chat,
                    phone: Some(phone.clone()),
                    language: "ru".into(),
                    active: true,
                    joined_partner: Some(self.partner),
                    referred_by: None,
                },
                0,
            )
            .await
            .unwrap();
        let client = self
            .engine
            .enroll(self.partner, &phone, Some(name))
            .await
            .unwrap();
        assert_eq!(client.telegram_chat_id, Some(chat));
    }

    async fn card_of(&self, external_id: &str) -> Option<String> {
        let mut tx = self.sql.begin().await.unwrap();
        tx.client_by_external_id(self.partner, self.connection.id, external_id)
            .await
            .unwrap()
            .map(|c| c.phone.to_string())
    }
}

fn search_for(digits: &str) -> serde_json::Value {
    json!({
        "page": 1,
        "page_size": 50,
        "fields": ["id", "name", "phone", "email"],
        "filters": [{ "type": "quick_search", "state": { "value": digits } }],
    })
}

fn found(cards: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "success": true, "data": cards, "meta": { "total_count": 1 }
    }))
}

#[tokio::test]
async fn a_person_who_joins_through_the_bot_is_created_in_the_crm_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/company/4564/clients/search"))
        .and(body_json(search_for("79161234567")))
        .respond_with(found(json!([])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/clients/4564"))
        .and(body_json(json!({ "name": "Анна", "phone": "79161234567" })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "success": true,
            "data": { "id": 901, "name": "Анна", "phone": "79161234567" },
            "meta": []
        })))
        .expect(1)
        .mount(&server)
        .await;
    let s = salon(&server, true).await;
    s.joins(7001, "+79161234567", "Анна").await;
    let pass = s
        .engine
        .create_cards(s.sql.as_ref(), &s.adapters)
        .await
        .unwrap();
    assert_eq!((pass.created, pass.found, pass.failed), (1, 0, 0));
    assert_eq!(s.card_of("901").await.as_deref(), Some("+79161234567"));
    let sent = server.received_requests().await.unwrap();
    let auth = sent[1].headers.get("authorization").unwrap();
    assert_eq!(auth, "Bearer p, User u");
    // Known to the CRM now: the next pass asks nothing.
    let again = s
        .engine
        .create_cards(s.sql.as_ref(), &s.adapters)
        .await
        .unwrap();
    assert_eq!((again.created, again.found), (0, 0));
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_create_whose_answer_never_came_is_found_not_made_twice() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/company/4564/clients/search"))
        .respond_with(found(json!([])))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/company/4564/clients/search"))
        .respond_with(found(
            json!([{ "id": 902, "name": "Ольга", "phone": "79167654321" }]),
        ))
        .mount(&server)
        .await;
    // The CRM makes the card but the answer is lost (slower than the client waits).
    Mock::given(method("POST"))
        .and(path("/clients/4564"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"success": true, "data": {"id": 902}, "meta": []}))
                .set_delay(Duration::from_secs(2)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let s = salon(&server, true).await;
    s.joins(7002, "+79167654321", "Ольга").await;
    let lost = s
        .engine
        .create_cards(s.sql.as_ref(), &s.adapters)
        .await
        .unwrap();
    assert_eq!((lost.created, lost.failed), (0, 1));
    assert_eq!(s.card_of("902").await, None);
    let next = s
        .engine
        .create_cards(s.sql.as_ref(), &s.adapters)
        .await
        .unwrap();
    assert_eq!((next.created, next.found), (0, 1));
    assert_eq!(s.card_of("902").await.as_deref(), Some("+79167654321"));
}

#[tokio::test]
async fn a_connection_that_does_not_create_clients_asks_nothing() {
    let server = MockServer::start().await;
    let s = salon(&server, false).await;
    s.joins(7003, "+79161112233", "Ирина").await;
    let pass = s
        .engine
        .create_cards(s.sql.as_ref(), &s.adapters)
        .await
        .unwrap();
    assert_eq!((pass.created, pass.found, pass.failed), (0, 0, 0));
    assert!(server.received_requests().await.unwrap().is_empty());
}
