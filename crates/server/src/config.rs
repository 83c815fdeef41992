//! Server configuration: built-in defaults, then a TOML file, then
//! `PATCHWARDEN_*` environment variables, then command-line flags.
//!
//! Unknown keys in the file are refused, as are environment values that do
//! not parse; the error names the key or variable. `example()` prints every
//! setting with its variable and a comment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    pub database: String,
    pub data_dir: PathBuf,
    pub insecure_http: bool,
    pub invitation_hours: u32,
    pub enrolment_hours: u32,
    pub agent_interval_seconds: u32,
    pub body_limit_bytes: usize,
    pub server_names: Vec<String>,
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            database: "sqlite:patchwarden-data/patchwarden.db".to_owned(),
            data_dir: PathBuf::from("patchwarden-data"),
            insecure_http: false,
            invitation_hours: 72,
            enrolment_hours: 24,
            agent_interval_seconds: 60,
            body_limit_bytes: 1024 * 1024,
            server_names: vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()],
            log_format: LogFormat::Text,
        }
    }
}

/// The file's shape: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    database: Option<String>,
    data_dir: Option<PathBuf>,
    insecure_http: Option<bool>,
    invitation_hours: Option<u32>,
    enrolment_hours: Option<u32>,
    agent_interval_seconds: Option<u32>,
    body_limit_bytes: Option<usize>,
    server_names: Option<Vec<String>>,
    log_format: Option<LogFormat>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file '{path}': {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file '{path}': {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}='{value}': {message}")]
    Env { name: &'static str, value: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// One setting: its key, its variable, its comment and how to apply a value.
struct Setting {
    key: &'static str,
    env: &'static str,
    comment: &'static str,
    example: &'static str,
    apply: fn(&mut Config, &str) -> Result<(), String>,
}

fn parse<T: std::str::FromStr>(raw: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    raw.trim().parse::<T>().map_err(|err| err.to_string())
}

fn boolean(raw: &str) -> Result<bool, String> {
    match raw.trim() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        other => Err(format!("'{other}' is not true or false")),
    }
}

const SETTINGS: &[Setting] = &[
    Setting {
        key: "listen",
        env: "PATCHWARDEN_LISTEN",
        comment: "Address and port the API and web UI listen on.",
        example: "\"127.0.0.1:8443\"",
        apply: |c, v| {
            c.listen = parse(v)?;
            Ok(())
        },
    },
    Setting {
        key: "database",
        env: "PATCHWARDEN_DATABASE",
        comment: "sqlite:PATH (one file, created on first start) or postgres://USER@HOST/DB.",
        example: "\"sqlite:patchwarden-data/patchwarden.db\"",
        apply: |c, v| {
            c.database = v.to_owned();
            Ok(())
        },
    },
    Setting {
        key: "data_dir",
        env: "PATCHWARDEN_DATA_DIR",
        comment: "Folder for keys (the CA, signing keys); give several servers the same one.",
        example: "\"patchwarden-data\"",
        apply: |c, v| {
            c.data_dir = PathBuf::from(v);
            Ok(())
        },
    },
    Setting {
        key: "insecure_http",
        env: "PATCHWARDEN_INSECURE_HTTP",
        comment: "Serve plain HTTP instead of HTTPS; allowed only on a loopback address.",
        example: "false",
        apply: |c, v| {
            c.insecure_http = boolean(v)?;
            Ok(())
        },
    },
    Setting {
        key: "invitation_hours",
        env: "PATCHWARDEN_INVITATION_HOURS",
        comment: "How long a new account's single-use invitation stays valid.",
        example: "72",
        apply: |c, v| {
            c.invitation_hours = parse(v)?;
            Ok(())
        },
    },
    Setting {
        key: "enrolment_hours",
        env: "PATCHWARDEN_ENROLMENT_HOURS",
        comment: "Hours an endpoint enrolment token stays valid (1 to 720).",
        example: "24",
        apply: |c, v| {
            c.enrolment_hours = parse(v)?;
            Ok(())
        },
    },
    Setting {
        key: "agent_interval_seconds",
        env: "PATCHWARDEN_AGENT_INTERVAL_SECONDS",
        comment: "Seconds between an agent's check-ins, before its jitter (5 to 86400).",
        example: "60",
        apply: |c, v| {
            c.agent_interval_seconds = parse(v)?;
            Ok(())
        },
    },
    Setting {
        key: "body_limit_bytes",
        env: "PATCHWARDEN_BODY_LIMIT_BYTES",
        comment: "Largest request body accepted; larger ones get 413.",
        example: "1048576",
        apply: |c, v| {
            c.body_limit_bytes = parse(v)?;
            Ok(())
        },
    },
    Setting {
        key: "server_names",
        env: "PATCHWARDEN_SERVER_NAMES",
        comment: "Names and addresses the server certificate is issued for (comma-separated in the variable).",
        example: "[\"localhost\", \"127.0.0.1\", \"::1\"]",
        apply: |c, v| {
            c.server_names =
                v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
            Ok(())
        },
    },
    Setting {
        key: "log_format",
        env: "PATCHWARDEN_LOG_FORMAT",
        comment: "Server log lines as text or json.",
        example: "\"text\"",
        apply: |c, v| {
            c.log_format = match v.trim() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => return Err(format!("'{other}' is not text or json")),
            };
            Ok(())
        },
    },
];

/// The environment variable holding the first admin's API token on a new database.
pub const BOOTSTRAP_TOKEN_ENV: &str = "PATCHWARDEN_BOOTSTRAP_TOKEN";

impl Config {
    /// Defaults, overlaid by `file` if given, then by the environment.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = Config::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
            let parsed: FileConfig = toml::from_str(&text).map_err(|err| ConfigError::Parse {
                path: path.to_owned(),
                message: err.to_string(),
            })?;
            config.overlay(parsed);
        }
        for setting in SETTINGS {
            if let Some(value) = env(setting.env) {
                (setting.apply)(&mut config, &value).map_err(|message| ConfigError::Env {
                    name: setting.env,
                    value: value.clone(),
                    message,
                })?;
            }
        }
        config.validate()?;
        Ok(config)
    }

    fn overlay(&mut self, file: FileConfig) {
        let FileConfig {
            listen,
            database,
            data_dir,
            insecure_http,
            invitation_hours,
            enrolment_hours,
            agent_interval_seconds,
            body_limit_bytes,
            server_names,
            log_format,
        } = file;
        self.listen = listen.unwrap_or(self.listen);
        self.database = database.unwrap_or_else(|| self.database.clone());
        self.data_dir = data_dir.unwrap_or_else(|| self.data_dir.clone());
        self.insecure_http = insecure_http.unwrap_or(self.insecure_http);
        self.invitation_hours = invitation_hours.unwrap_or(self.invitation_hours);
        self.enrolment_hours = enrolment_hours.unwrap_or(self.enrolment_hours);
        self.agent_interval_seconds = agent_interval_seconds.unwrap_or(self.agent_interval_seconds);
        self.body_limit_bytes = body_limit_bytes.unwrap_or(self.body_limit_bytes);
        self.server_names = server_names.unwrap_or_else(|| self.server_names.clone());
        self.log_format = log_format.unwrap_or(self.log_format);
    }

    /// Checks ranges and the rule that plain HTTP stays on loopback.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=24 * 30).contains(&self.invitation_hours) {
            return Err(ConfigError::Invalid(format!(
                "invitation_hours {} must be 1 to 720",
                self.invitation_hours
            )));
        }
        if !(1..=24 * 30).contains(&self.enrolment_hours) {
            return Err(ConfigError::Invalid(format!(
                "enrolment_hours {} must be 1 to 720",
                self.enrolment_hours
            )));
        }
        if !(5..=86_400).contains(&self.agent_interval_seconds) {
            return Err(ConfigError::Invalid(format!(
                "agent_interval_seconds {} must be 5 to 86400",
                self.agent_interval_seconds
            )));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.body_limit_bytes) {
            return Err(ConfigError::Invalid(format!(
                "body_limit_bytes {} must be 1024 to 67108864",
                self.body_limit_bytes
            )));
        }
        if self.insecure_http && !self.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "plain HTTP is refused on {}: it is allowed only on a loopback address; drop insecure_http to serve HTTPS",
                self.listen
            )));
        }
        if !self.insecure_http && self.server_names.is_empty() {
            return Err(ConfigError::Invalid(
                "server_names is empty: the certificate needs a name".to_owned(),
            ));
        }
        Ok(())
    }

    /// Every setting with its variable and a comment, as a TOML file.
    pub fn example() -> String {
        let mut out = String::from(
            "# Patchwarden server configuration. Every key is optional; each can also be set\n\
             # by the environment variable named above it, which wins over this file.\n\
             # The first admin's API token on a new database comes only from the\n\
             # environment: PATCHWARDEN_BOOTSTRAP_TOKEN.\n",
        );
        for setting in SETTINGS {
            out.push_str(&format!(
                "\n# {}\n# ({})\n{} = {}\n",
                setting.comment, setting.env, setting.key, setting.example
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_example_parses_to_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("patchwarden.toml");
        std::fs::write(&path, Config::example()).unwrap();
        assert_eq!(Config::load(Some(&path), no_env).unwrap(), Config::default());
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("patchwarden.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nlisten_port = 9000\n").unwrap();
        let err = Config::load(Some(&path), no_env).unwrap_err().to_string();
        assert!(err.contains("listen_port"), "{err}");
    }

    #[test]
    fn the_environment_overrides_the_file_and_bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("patchwarden.toml");
        std::fs::write(&path, "invitation_hours = 10\n").unwrap();
        let env = |name: &str| (name == "PATCHWARDEN_INVITATION_HOURS").then(|| "20".to_owned());
        assert_eq!(Config::load(Some(&path), env).unwrap().invitation_hours, 20);
        let bad = |name: &str| (name == "PATCHWARDEN_INSECURE_HTTP").then(|| "maybe".to_owned());
        let err = Config::load(None, bad).unwrap_err().to_string();
        assert!(err.contains("PATCHWARDEN_INSECURE_HTTP='maybe'"), "{err}");
    }

    #[test]
    fn plain_http_is_refused_off_loopback() {
        let env = |name: &str| match name {
            "PATCHWARDEN_LISTEN" => Some("0.0.0.0:8080".to_owned()),
            "PATCHWARDEN_INSECURE_HTTP" => Some("true".to_owned()),
            _ => None,
        };
        let err = Config::load(None, env).unwrap_err().to_string();
        assert!(err.contains("plain HTTP is refused on 0.0.0.0:8080"), "{err}");
    }
}
