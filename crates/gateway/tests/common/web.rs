//! The dashboard over real HTTP, as a browser speaks to it: a session cookie kept by hand,
//! redirects not followed (the tests assert them), and `Sec-Fetch-Site` / `Origin` headers on
//! the requests that change something.

use loyalty_core::{ClientId, LedgerStore, PartnerId};
use loyalty_gateway::cli::{self, RewardAdd, VisitAdd};
use loyalty_gateway::config::Overrides;
use loyalty_gateway::{Gateway, StartOptions};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::Value;

use super::binary::Env;
use super::{PgSchema, add_lotos, serve_with};

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }
}

/// One browser: its cookie jar is the session cookie alone.
pub struct Web {
    pub base: String,
    pub http: reqwest::Client,
    pub cookie: Option<String>,
}

impl Web {
    pub fn new(addr: std::net::SocketAddr) -> Web {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Web {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    async fn finish(&mut self, response: reqwest::Response) -> Page {
        let status = response.status();
        let headers = response.headers().clone();
        for v in headers.get_all(SET_COOKIE) {
            let v = v.to_str().unwrap();
            // `__Host-lb_session` when the public URL is https.
            for name in ["lb_session", "__Host-lb_session"] {
                if let Some(rest) = v.strip_prefix(&format!("{name}=")) {
                    let value = rest.split(';').next().unwrap_or("");
                    self.cookie = (!value.is_empty()).then(|| format!("{name}={value}"));
                }
            }
        }
        Page {
            status,
            headers,
            body: response.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let r = req.send().await.unwrap();
        self.finish(r).await
    }

    /// A form posted from this site's own page.
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.post_from(path, form, "same-origin").await
    }

    /// A form posted with this `Sec-Fetch-Site` (what the browser says of where it came from).
    pub async fn post_from(&mut self, path: &str, form: &[(&str, &str)], site: &str) -> Page {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("sec-fetch-site", site)
            .form(form);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let r = req.send().await.unwrap();
        self.finish(r).await
    }

    /// Signs in; panics unless the dashboard answered with the session and a way home.
    pub async fn sign_in(&mut self, email: &str, password: &str) {
        let page = self
            .post("/login", &[("email", email), ("password", password)])
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert_eq!(page.location(), Some("/"));
        assert!(self.cookie.is_some(), "a session cookie");
    }
}

/// `user add` through the binary, the password on standard input.
pub fn add_user(
    env: &Env,
    partner: i64,
    email: &str,
    role: &str,
    password: &str,
) -> serde_json::Value {
    let partner = partner.to_string();
    env.cli_stdin(
        &[
            "user",
            "add",
            "--partner",
            &partner,
            "--email",
            email,
            "--role",
            role,
            "--password-stdin",
        ],
        password,
    )
}

pub const PASSWORD: &str = "correct horse battery";

/// Two salons on one gateway: Лотос (owner, admin and viewer users; a client who came; a
/// 500-rouble certificate code) and Роза (an owner, a client, a code).
pub struct Salons {
    pub schema: PgSchema,
    pub gateway: Gateway,
    pub env: Env,
    pub a: i64,
    pub b: i64,
    /// A's client, who came once.
    pub a_client: i64,
    pub b_client: i64,
    /// A code of salon B.
    pub b_code: String,
    /// A code of salon A, a 500-rouble certificate.
    pub a_code: String,
}

pub async fn visit(gateway: &Gateway, partner: i64, phone: &str, paid_minor: i64) -> Value {
    cli::visit_add(
        &gateway.engine,
        &VisitAdd {
            partner,
            phone: phone.into(),
            name: Some("Анна".into()),
            paid_minor,
            service: Some("Стрижка".into()),
            master: None,
            key: None,
            force: false,
        },
    )
    .await
    .unwrap()
}

/// A 500-rouble certificate for 100 points, redeemed by the client with this phone: its code.
pub async fn code_of(gateway: &Gateway, partner: i64, phone: &str) -> String {
    let reward = cli::reward_add(
        &gateway.store,
        &RewardAdd {
            partner,
            title: "Сертификат 500 ₽".into(),
            points: 100,
            certificate_minor: Some(50_000),
            service_id: None,
            price_minor: None,
        },
        0,
    )
    .await
    .unwrap();
    let r = cli::redeem(
        &gateway.engine,
        &gateway.store,
        partner,
        phone,
        reward["id"].as_i64().unwrap(),
        None,
    )
    .await
    .unwrap();
    r["code"].as_str().unwrap().to_owned()
}

pub async fn salons(options: StartOptions) -> Salons {
    let schema = PgSchema::new().await;
    let (gateway, _) = serve_with(&schema, Overrides::default(), options).await;
    let env = Env {
        vars: vec![("DATABASE_URL", schema.url.clone())],
    };
    let a = add_lotos(&gateway.store).await;
    let b = env.cli(&["partner", "add", "--name", "Роза", "--cashback-bps", "500"])["id"]
        .as_i64()
        .unwrap();
    let a_visit = visit(&gateway, a, "+79161230001", 400_000).await;
    let b_visit = visit(&gateway, b, "+79161230002", 400_000).await;
    let a_client = a_visit["client_id"].as_i64().unwrap();
    let b_client = b_visit["client_id"].as_i64().unwrap();
    let a_code = code_of(&gateway, a, "+79161230001").await;
    let b_code = code_of(&gateway, b, "+79161230002").await;
    add_user(&env, a, "owner@lotos.ru", "owner", PASSWORD);
    add_user(&env, a, "desk@lotos.ru", "admin", PASSWORD);
    add_user(&env, a, "eyes@lotos.ru", "viewer", PASSWORD);
    add_user(&env, b, "owner@roza.ru", "owner", PASSWORD);
    Salons {
        schema,
        gateway,
        env,
        a,
        b,
        a_client,
        b_client,
        b_code,
        a_code,
    }
}

impl Salons {
    pub async fn web(&self, email: &str) -> Web {
        let mut web = Web::new(self.gateway.addr);
        web.sign_in(email, PASSWORD).await;
        web
    }

    pub async fn balance(&self, partner: i64, client: i64) -> i64 {
        self.gateway
            .store
            .balance(PartnerId(partner), ClientId(client))
            .await
            .unwrap()
            .0
    }

    pub async fn finish(self) {
        self.gateway.stop().await.unwrap();
        self.schema.drop().await;
    }
}
