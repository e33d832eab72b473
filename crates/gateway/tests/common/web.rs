//! The dashboard over real HTTP, as a browser speaks to it: a session cookie kept by hand,
//! redirects not followed (the tests assert them), and `Sec-Fetch-Site` / `Origin` headers on
//! the requests that change something.

use std::process::Stdio;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

use super::binary::Env;

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
            if let Some(rest) = v.strip_prefix("lb_session=") {
                let value = rest.split(';').next().unwrap_or("");
                self.cookie = (!value.is_empty()).then(|| format!("lb_session={value}"));
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
    use std::io::Write;
    let mut child = env
        .command(false)
        .args(["--json", "user", "add", "--partner", &partner.to_string()])
        .args(["--email", email, "--role", role, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
