//! Gateway configuration: command-line flags override environment variables, which override
//! the TOML file, which overrides the defaults.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The optional TOML file. Every key is optional; unknown keys are an error so a typo is not
/// silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `postgres://user:password@host/db` or `sqlite:PATH`.
    pub database_url: Option<String>,
    /// Where the embedded SQLite database lives when `database_url` is not set.
    pub data_dir: Option<PathBuf>,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config file {} is invalid", path.display()))
    }
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub data_dir: PathBuf,
    /// Where the database URL came from, for `config` output.
    pub database_url_source: &'static str,
}

/// What the command line and environment said (clap has merged the two).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub database_url: Option<String>,
    pub data_dir: Option<PathBuf>,
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
        Ok(Config {
            database_url,
            data_dir,
            database_url_source,
        })
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
            "database_url = \"postgres://u:p@h/db\"\ndata_dir = \"/srv/lb\"\n",
        )
        .unwrap();
        let from_file = Config::resolve(Overrides {
            config_file: Some(file.clone()),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(from_file.database_url, "postgres://u:p@h/db");
        assert_eq!(from_file.data_dir, PathBuf::from("/srv/lb"));
        let flagged = Config::resolve(Overrides {
            config_file: Some(file),
            database_url: Some("sqlite://x.db".into()),
            data_dir: None,
        })
        .unwrap();
        assert_eq!(flagged.database_url, "sqlite://x.db");
        let defaulted = Config::resolve(Overrides {
            data_dir: Some(PathBuf::from("/tmp/lbd")),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(defaulted.database_url, "sqlite:///tmp/lbd/loyalty.db");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gw.toml");
        std::fs::write(&file, "databse_url = \"x\"\n").unwrap();
        let err = Config::resolve(Overrides {
            config_file: Some(file),
            ..Overrides::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("databse_url"), "{err:#}");
    }
}
