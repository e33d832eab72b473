//! The real `loyalty-gateway` binary as the end-to-end tests run it: its environment, a free
//! port, JSON posts, the process killed with SIGKILL, and wiremock standing in for Telegram.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const BIN: &str = env!("CARGO_BIN_EXE_loyalty-gateway");
pub const TOKEN: &str = "4242:e2e-token";

pub struct Env {
    pub vars: Vec<(&'static str, String)>,
}

impl Env {
    pub fn command(&self, with_bot: bool) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn");
        for (k, v) in &self.vars {
            if with_bot || *k != "TELEGRAM_BOT_TOKEN" {
                cmd.env(k, v);
            }
        }
        cmd
    }

    /// The binary on this database, migrated first.
    pub fn migrated(database_url: &str) -> Env {
        let env = Env {
            vars: vec![("DATABASE_URL", database_url.to_owned())],
        };
        env.cli(&["migrate"]);
        env
    }

    /// The command's output, whatever its status (without `--json`).
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.command(false).args(args).output().unwrap()
    }

    /// `--json` and `args`, with `input` and a newline on standard input (a password, a
    /// token); panics unless it succeeded.
    pub fn cli_stdin(&self, args: &[&str], input: &str) -> Value {
        use std::io::Write;
        let mut child = self
            .command(false)
            .arg("--json")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{input}\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn cli(&self, args: &[&str]) -> Value {
        let out = self
            .command(false)
            .arg("--json")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?} ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(stdout.lines().count(), 1, "one JSON object: {stdout}");
        serde_json::from_str(&stdout).unwrap()
    }

    /// Partner "Лотос" (5 % cashback) and its connection to YCLIENTS company 4564 with these
    /// API tokens, through the CLI: the partner's and the connection's JSON.
    pub fn lotos_on_yclients(&self, partner_token: &str, user_token: &str) -> (Value, Value) {
        let partner = self.cli(&["partner", "add", "--name", "Лотос", "--cashback-bps", "500"]);
        let connection = self.cli(&[
            "connection",
            "add",
            "--partner",
            &partner["id"].to_string(),
            "--crm",
            "yclients",
            "--company-id",
            "4564",
            "--partner-token",
            partner_token,
            "--user-token",
            user_token,
        ]);
        (partner, connection)
    }

    /// `sync interval --connection ID --seconds N`: 0 holds the poller off the connection.
    pub fn sync_interval(&self, connection: &str, seconds: u32) {
        self.cli(&[
            "sync",
            "interval",
            "--connection",
            connection,
            "--seconds",
            &seconds.to_string(),
        ]);
    }

    pub async fn serve(&self, with_bot: bool, addr: &str) -> Running {
        let running = Running(Some(
            self.command(with_bot)
                .arg("serve")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        ));
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("http://{addr}/readyz")).send().await
                && r.status().is_success()
            {
                return running;
            }
            assert!(Instant::now() < deadline, "gateway did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// What a command wrote to standard error.
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

pub async fn wait_for(telegram: &MockServer, chat: i64, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sent = super::telegram::texts_to(telegram, chat).await;
        if sent.iter().any(|t| t.contains(needle)) {
            return sent;
        }
        assert!(
            Instant::now() < deadline,
            "no message with {needle:?}; sent: {sent:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Value {
    let r = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let answer: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(status, 200, "{answer}");
    answer
}

/// A gateway process, killed if the test fails before it ends it.
pub struct Running(pub Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn kill_9(mut running: Running) {
    if let Some(mut child) = running.0.take() {
        child.kill().unwrap(); // SIGKILL: no shutdown, no flushing.
        child.wait().unwrap();
    }
}

/// Telegram as the bot sees it: one update (`chat` shares its own contact with this number, as
/// Telegram sends it), then nothing new; every message and webhook removal accepted.
pub async fn mount_telegram(telegram: &MockServer, chat: i64, name: &str, phone_number: &str) {
    mount_telegram_contacts(telegram, &[(chat, name, phone_number)]).await;
}

/// [`mount_telegram`] for several people, each sharing their own contact from their own chat.
pub async fn mount_telegram_contacts(telegram: &MockServer, contacts: &[(i64, &str, &str)]) {
    let updates: Vec<Value> = contacts
        .iter()
        .enumerate()
        .map(|(i, (chat, name, phone_number))| {
            json!({"update_id": i + 1, "message": {
                "message_id": 1, "date": 1_795_000_000,
                "chat": {"id": chat, "type": "private", "first_name": name},
                "from": {"id": chat, "is_bot": false, "first_name": name, "language_code": "ru"},
                "contact": {"phone_number": phone_number, "first_name": name, "user_id": chat}}})
        })
        .collect();
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/getUpdates")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": updates})),
        )
        .up_to_n_times(1)
        .mount(telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/getUpdates")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true, "result": []}))
                .set_delay(Duration::from_millis(300)),
        )
        .mount(telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/sendMessage")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": {
            "message_id": 7, "date": 1_795_000_000, "chat": {"id": 1, "type": "private"}}})),
        )
        .mount(telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/deleteWebhook")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": true})))
        .mount(telegram)
        .await;
}

/// Waits until `check` holds, checking every 200 ms; fails the test after `limit`.
pub async fn wait_until<F: AsyncFn() -> bool>(what: &str, limit: Duration, check: F) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Posts a webhook body the gateway must refuse: its status and its `error` code.
pub async fn refused(http: &reqwest::Client, url: &str, body: String) -> (u16, Value) {
    let r = http
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let answer: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    (status, answer["error"].clone())
}
