//! Gateway configuration: command-line flags override environment variables, which override
//! the TOML file, which overrides the defaults. Every key is listed in `docs/configuration.md`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use loyalty_core::audit::Plan;
use serde::Deserialize;

/// Telegram's Bot API.
pub const DEFAULT_TELEGRAM_API_URL: &str = loyalty_telegram::TELEGRAM_API_URL;
/// Where `serve` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Days of delivery history kept.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// Seconds between two reconciliation passes of one connection.
pub const DEFAULT_POLL_INTERVAL_S: u32 = 300;
/// An hour between two scans of the reminders.
pub const DEFAULT_ENGAGE_INTERVAL_S: u32 = 3_600;

/// The optional TOML file. Every key is optional; unknown keys are an error so a typo is not
/// silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `postgres://user:password@host/db` or `sqlite:PATH`.
    pub database_url: Option<String>,
    /// Where the embedded SQLite database lives when `database_url` is not set.
    pub data_dir: Option<PathBuf>,
    /// `HOST:PORT` for the HTTP service.
    pub listen: Option<String>,
    /// The gateway's address as the CRMs and Telegram reach it, e.g. `https://loyalty.example`.
    pub public_url: Option<String>,
    pub telegram_bot_token: Option<String>,
    pub telegram_api_url: Option<String>,
    /// The secret in the Telegram webhook's path and header (webhook mode only).
    pub telegram_webhook_secret: Option<String>,
    /// Days of webhook delivery history to keep.
    pub delivery_retention_days: Option<u32>,
    /// Another YCLIENTS REST base than `https://api.yclients.com/api/v1` (a proxy, a test
    /// server).
    pub yclients_api_url: Option<String>,
    /// Another Altegio REST base than `https://api.alteg.io/api/v1`.
    pub altegio_api_url: Option<String>,
    /// Seconds between two reconciliation passes of a connection (0: no poller).
    pub poll_interval_s: Option<u32>,
    /// Seconds between two scans of every salon's reminders (0: none).
    pub engage_interval_s: Option<u32>,
    /// The name of this deployment's egress address: instances with one name share one CRM
    /// budget per CRM (YCLIENTS limits per IP).
    pub egress: Option<String>,
    /// The plan a new partner gets: basic, pro or enterprise.
    pub default_plan: Option<Plan>,
    /// Reverse proxies in front of the gateway (IP addresses) whose `X-Forwarded-For` names
    /// the client the dashboard's sign-in limits count.
    pub trusted_proxies: Option<Vec<String>>,
    /// Whether anyone may create a salon on the dashboard's `/signup` (on `default_plan`).
    pub signup: Option<bool>,
    /// Whether partners' webhook endpoints may be on loopback (local receivers).
    pub webhooks_allow_loopback: Option<bool>,
    /// Partner API requests per second per key (bursts of twice as many).
    pub api_rate: Option<f64>,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config file {} is invalid", path.display()))
    }
}

/// The effective configuration.
#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    pub data_dir: PathBuf,
    /// Where the database URL came from, for `config` output.
    pub database_url_source: &'static str,
    pub listen: SocketAddr,
    pub public_url: Option<String>,
    pub telegram_bot_token: Option<String>,
    pub telegram_api_url: String,
    pub telegram_webhook_secret: Option<String>,
    pub delivery_retention_days: u32,
    pub yclients_api_url: Option<String>,
    pub altegio_api_url: Option<String>,
    /// Seconds between two reconciliation passes of a connection; 0 turns the poller off.
    pub poll_interval_s: u32,
    /// Seconds between two scans of every salon's reminders; 0 turns them off.
    pub engage_interval_s: u32,
    /// The egress address's name: its CRM budgets are shared by instances with this name.
    pub egress: String,
    /// The plan a new partner gets unless `partner add --plan` says otherwise.
    pub default_plan: Plan,
    /// Reverse proxies whose `X-Forwarded-For` the dashboard believes.
    pub trusted_proxies: Vec<IpAddr>,
    /// Salons may sign up on the dashboard by themselves (on `default_plan`).
    pub signup: bool,
    /// Partners' webhook endpoints may be on loopback; private and link-local addresses are
    /// refused whatever this says.
    pub webhooks_allow_loopback: bool,
    /// Partner API requests per second per key; bursts of twice as many.
    pub api_rate: f64,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field(
                "database_url",
                &loyalty_store::redact_url(&self.database_url),
            )
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field(
                "telegram_bot_token",
                &self.telegram_bot_token.as_ref().map(|_| "***"),
            )
            .field("telegram_api_url", &self.telegram_api_url)
            .finish_non_exhaustive()
    }
}

/// What the command line and environment said (clap merges the two; `serve`, `demo` and the
/// other commands share these as global flags).
#[derive(Debug, Default, Clone, clap::Args)]
#[command(next_help_heading = "Deployment settings (every command)")]
pub struct Overrides {
    /// TOML file; its keys are listed in docs/configuration.md (every key optional).
    #[arg(
        long = "config",
        global = true,
        env = "LOYALTY_CONFIG",
        value_name = "FILE"
    )]
    pub config_file: Option<PathBuf>,

    /// `postgres://user:password@host/db` or `sqlite:PATH`.
    /// Default: a SQLite file `loyalty.db` in the data directory.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,

    /// Where the embedded database lives. Default: $XDG_DATA_HOME/loyalty-bridge or
    /// ~/.local/share/loyalty-bridge.
    #[arg(long, global = true, env = "LOYALTY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Where `serve` listens. Default: 127.0.0.1:8080.
    #[arg(long, global = true, env = "LOYALTY_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<String>,

    /// The gateway's address as CRMs and Telegram reach it (prints webhook URLs; with a bot
    /// token it switches the bot from long polling to a webhook).
    #[arg(long, global = true, env = "LOYALTY_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// The bot's token from @BotFather. Without it the gateway runs without the bot.
    #[arg(
        long,
        global = true,
        env = "TELEGRAM_BOT_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub telegram_bot_token: Option<String>,

    /// The Bot API base URL. Default: https://api.telegram.org.
    #[arg(long, global = true, env = "TELEGRAM_API_URL", value_name = "URL")]
    pub telegram_api_url: Option<String>,

    /// The secret of the Telegram webhook (webhook mode; random per start if unset).
    #[arg(
        long,
        global = true,
        env = "TELEGRAM_WEBHOOK_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub telegram_webhook_secret: Option<String>,

    /// Another YCLIENTS REST base (a proxy or a test server).
    #[arg(long, global = true, env = "YCLIENTS_API_URL", value_name = "URL")]
    pub yclients_api_url: Option<String>,

    /// Another Altegio REST base (a proxy or a test server).
    #[arg(long, global = true, env = "ALTEGIO_API_URL", value_name = "URL")]
    pub altegio_api_url: Option<String>,

    /// Seconds between two reconciliation passes of a connection (default 300; 0: off). A
    /// connection may have its own (`sync interval`).
    #[arg(
        long,
        global = true,
        env = "LOYALTY_POLL_INTERVAL_S",
        value_name = "SECONDS"
    )]
    pub poll_interval_s: Option<u32>,

    /// Seconds between two scans of every salon's reminders (default 3600; 0: off).
    #[arg(
        long,
        global = true,
        env = "LOYALTY_ENGAGE_INTERVAL_S",
        value_name = "SECONDS"
    )]
    pub engage_interval_s: Option<u32>,

    /// The name of the address this instance reaches the CRMs from (default `default`).
    /// Instances with the same name share one budget per CRM; give each egress IP its own.
    #[arg(long, global = true, env = "LOYALTY_EGRESS", value_name = "NAME")]
    pub egress: Option<String>,

    /// Reverse proxies in front of the gateway, comma-separated IP addresses: the dashboard
    /// counts sign-ins by the client their `X-Forwarded-For` names (default: none, the TCP
    /// peer is the client).
    #[arg(
        long,
        global = true,
        env = "LOYALTY_TRUSTED_PROXIES",
        value_name = "IP,IP",
        value_delimiter = ','
    )]
    pub trusted_proxies: Option<Vec<String>>,

    /// Whether anyone may create a salon on the dashboard's `/signup` page, on the default
    /// plan (default: no — the operator adds salons and their owners).
    #[arg(long, global = true, env = "LOYALTY_SIGNUP", value_name = "true|false")]
    pub signup: Option<bool>,

    /// Whether partners' webhook endpoints may be on loopback (a receiver on this machine;
    /// default: no). Private and link-local addresses are always refused.
    #[arg(
        long,
        global = true,
        env = "LOYALTY_WEBHOOKS_ALLOW_LOOPBACK",
        value_name = "true|false"
    )]
    pub webhooks_allow_loopback: Option<bool>,

    /// Partner API requests per second allowed per key (default 10; bursts of twice as many).
    #[arg(long, global = true, env = "LOYALTY_API_RATE", value_name = "N")]
    pub api_rate: Option<f64>,

    /// The plan a new partner gets (default `pro`): basic (manual accrual and debit), pro (the
    /// CRM integration, automatic accrual), enterprise.
    #[arg(
        long,
        global = true,
        env = "LOYALTY_DEFAULT_PLAN",
        value_name = "basic|pro|enterprise"
    )]
    pub default_plan: Option<Plan>,
}

impl Config {
    pub fn resolve(overrides: Overrides) -> anyhow::Result<Config> {
        let file = match &overrides.config_file {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let data_dir = overrides
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(default_data_dir);
        let (database_url, database_url_source) = match (overrides.database_url, file.database_url)
        {
            (Some(url), _) => (url, "DATABASE_URL / --database-url"),
            (None, Some(url)) => (url, "config file"),
            (None, None) => (
                format!("sqlite://{}", data_dir.join("loyalty.db").display()),
                "default (SQLite in the data directory)",
            ),
        };
        let listen_text = overrides
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text
            .parse::<SocketAddr>()
            .with_context(|| format!("listen address {listen_text:?} is not HOST:PORT"))?;
        let public_url = overrides
            .public_url
            .or(file.public_url)
            .filter(|u| !u.trim().is_empty())
            .map(|u| u.trim_end_matches('/').to_owned());
        if let Some(url) = &public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            anyhow::bail!("public URL {url:?} must start with http:// or https://");
        }
        let telegram_bot_token = overrides
            .telegram_bot_token
            .or(file.telegram_bot_token)
            .filter(|t| !t.trim().is_empty());
        let telegram_api_url = overrides
            .telegram_api_url
            .or(file.telegram_api_url)
            .unwrap_or_else(|| DEFAULT_TELEGRAM_API_URL.to_owned())
            .trim_end_matches('/')
            .to_owned();
        Ok(Config {
            database_url,
            data_dir,
            database_url_source,
            listen,
            public_url,
            telegram_bot_token,
            telegram_api_url,
            telegram_webhook_secret: overrides
                .telegram_webhook_secret
                .or(file.telegram_webhook_secret)
                .filter(|s| !s.is_empty()),
            delivery_retention_days: file
                .delivery_retention_days
                .unwrap_or(DEFAULT_RETENTION_DAYS),
            yclients_api_url: overrides
                .yclients_api_url
                .or(file.yclients_api_url)
                .map(|u| u.trim_end_matches('/').to_owned()),
            altegio_api_url: overrides
                .altegio_api_url
                .or(file.altegio_api_url)
                .map(|u| u.trim_end_matches('/').to_owned()),
            poll_interval_s: overrides
                .poll_interval_s
                .or(file.poll_interval_s)
                .unwrap_or(DEFAULT_POLL_INTERVAL_S),
            engage_interval_s: overrides
                .engage_interval_s
                .or(file.engage_interval_s)
                .unwrap_or(DEFAULT_ENGAGE_INTERVAL_S),
            egress: overrides
                .egress
                .or(file.egress)
                .filter(|e| !e.trim().is_empty())
                .unwrap_or_else(|| "default".to_owned()),
            default_plan: overrides
                .default_plan
                .or(file.default_plan)
                .unwrap_or_default(),
            trusted_proxies: overrides
                .trusted_proxies
                .or(file.trusted_proxies)
                .unwrap_or_default()
                .iter()
                .map(|ip| ip.trim())
                .filter(|ip| !ip.is_empty())
                .map(|ip| {
                    ip.parse::<IpAddr>()
                        .with_context(|| format!("trusted proxy {ip:?} is not an IP address"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
            signup: overrides.signup.or(file.signup).unwrap_or(false),
            webhooks_allow_loopback: overrides
                .webhooks_allow_loopback
                .or(file.webhooks_allow_loopback)
                .unwrap_or(false),
            api_rate: match overrides.api_rate.or(file.api_rate) {
                None => 10.0,
                Some(r) if r.is_finite() && r > 0.0 => r,
                Some(r) => anyhow::bail!(
                    "api_rate must be a positive number of requests a second, got {r}"
                ),
            },
        })
    }

    /// The base of the URLs to paste into a CRM: the public URL, else the listen address.
    pub fn base_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.clone(),
            None => format!("http://{}", self.listen),
        }
    }

    /// Creates the directory of a SQLite database file so a fresh machine needs no set-up.
    pub fn prepare_sqlite_dir(&self) -> anyhow::Result<()> {
        let Some(path) = self
            .database_url
            .strip_prefix("sqlite://")
            .or_else(|| self.database_url.strip_prefix("sqlite:"))
        else {
            return Ok(());
        };
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() || path.contains(":memory:") {
            return Ok(());
        }
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create directory {}", dir.display()))?;
        }
        Ok(())
    }
}

/// `$XDG_DATA_HOME/loyalty-bridge`, else `~/.local/share/loyalty-bridge`, else `./loyalty-data`.
fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("loyalty-bridge");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/loyalty-bridge");
    }
    PathBuf::from("loyalty-data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_beat_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gw.toml");
        std::fs::write(
            &file,
            "database_url = \"postgres://u:p@h/db\"\ndata_dir = \"/srv/lb\"\n\
             listen = \"0.0.0.0:9000\"\npublic_url = \"https://lb.example/\"\n\
             telegram_bot_token = \"1:file\"\ndelivery_retention_days = 30\n\
             api_rate = 50.0\nwebhooks_allow_loopback = true\n",
        )
        .unwrap();
        let from_file = Config::resolve(Overrides {
            config_file: Some(file.clone()),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(from_file.database_url, "postgres://u:p@h/db");
        assert_eq!(from_file.data_dir, PathBuf::from("/srv/lb"));
        assert_eq!(from_file.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(from_file.base_url(), "https://lb.example");
        assert_eq!(from_file.telegram_bot_token.as_deref(), Some("1:file"));
        assert_eq!(from_file.telegram_api_url, "https://api.telegram.org");
        assert_eq!(from_file.delivery_retention_days, 30);
        assert_eq!(from_file.api_rate, 50.0);
        assert!(from_file.webhooks_allow_loopback);
        assert!(!format!("{from_file:?}").contains("1:file"));
        let flagged = Config::resolve(Overrides {
            config_file: Some(file),
            database_url: Some("sqlite://x.db".into()),
            listen: Some("127.0.0.1:1".into()),
            telegram_api_url: Some("http://127.0.0.1:2/".into()),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(flagged.database_url, "sqlite://x.db");
        assert_eq!(flagged.listen.to_string(), "127.0.0.1:1");
        assert_eq!(flagged.telegram_api_url, "http://127.0.0.1:2");
        let defaulted = Config::resolve(Overrides {
            data_dir: Some(PathBuf::from("/tmp/lbd")),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(defaulted.database_url, "sqlite:///tmp/lbd/loyalty.db");
        assert_eq!(defaulted.base_url(), "http://127.0.0.1:8080");
        assert_eq!(defaulted.telegram_bot_token, None);
        assert_eq!(defaulted.api_rate, 10.0);
        assert!(!defaulted.webhooks_allow_loopback);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gw.toml");
        std::fs::write(&file, "databse_url = \"x\"\n").unwrap();
        let err = Config::resolve(Overrides {
            config_file: Some(file),
            ..Overrides::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("databse_url"), "{err:#}");
        let err = Config::resolve(Overrides {
            listen: Some("localhost".into()),
            ..Overrides::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("HOST:PORT"), "{err:#}");
        let err = Config::resolve(Overrides {
            public_url: Some("lb.example".into()),
            ..Overrides::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("http"), "{err:#}");
        let err = Config::resolve(Overrides {
            api_rate: Some(0.0),
            ..Overrides::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("api_rate"), "{err:#}");
    }
}
