//! Configuration: a TOML file, overridden by `VELOFLUX_<SECTION>__<KEY>` environment
//! variables and the short variables of the operational contract, then validated into
//! typed values. Only this module reads the environment for configuration.
//!
//! Parsing happens in two steps. [`RawConfig`] mirrors the file (unknown keys are errors)
//! and holds every value as text, whatever its source wrote; [`Config::from_raw`] then turns
//! each into its type and names the key, the value and where it came from when it cannot.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use figment::value::Uncased;
use serde::{Deserialize, Deserializer, Serialize};
use veloflux_api::HttpLimits;
use veloflux_domain::{Email, Password, parse_duration};

/// Prefix of every environment variable VeloFlux reads.
const ENV_PREFIX: &str = "VELOFLUX_";

/// Short variables (after the prefix) and the keys they set.
const SHORT_VARIABLES: &[(&str, &str)] = &[
    ("DATA_DIR", "data_dir"),
    ("DATABASE_URL", "database.url"),
    ("API_ADDR", "api.addr"),
    ("ADMIN_ADDR", "admin.addr"),
    ("METRICS_ADDR", "metrics.addr"),
    ("ADMIN_EMAIL", "bootstrap.admin_email"),
    ("ADMIN_PASSWORD", "bootstrap.admin_password"),
    ("LOG", "log.level"),
    ("LOG_FORMAT", "log.format"),
];

/// Variables with the prefix that are not configuration keys.
const NOT_KEYS: &[&str] = &["CONFIG"];

/// A scalar as written in the file or the environment, kept as text until validation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Text(Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Scalar {
            Text(String),
            Unsigned(u64),
            Signed(i64),
            Float(f64),
            Bool(bool),
        }
        Ok(Text(Some(match Scalar::deserialize(deserializer)? {
            Scalar::Text(v) => v,
            Scalar::Unsigned(v) => v.to_string(),
            Scalar::Signed(v) => v.to_string(),
            Scalar::Float(v) => v.to_string(),
            Scalar::Bool(v) => v.to_string(),
        })))
    }
}

macro_rules! sections {
    ($($(#[$doc:meta])* $name:ident { $($field:ident),+ $(,)? })+) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Default, Deserialize, Serialize)]
            #[serde(deny_unknown_fields, default)]
            pub struct $name {
                $(#[allow(missing_docs)] pub $field: Text,)+
            }
        )+
    };
}

sections! {
    /// `[database]`
    RawDatabase { url }
    /// `[api]`, `[admin]`, `[metrics]`: a listener.
    RawListener { addr }
    /// `[http]`: limits of every HTTP listener.
    RawHttp { max_body_bytes, request_timeout }
    /// `[bootstrap]`: the platform administrator created on first start.
    RawBootstrap { admin_email, admin_password }
    /// `[log]`
    RawLog { level, format }
    /// `[shutdown]`
    RawShutdown { grace_period }
}

/// The configuration as written, before validation.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
#[allow(
    missing_docs,
    reason = "each field is a section documented in the README"
)]
pub struct RawConfig {
    pub data_dir: Text,
    pub database: RawDatabase,
    pub api: RawListener,
    pub admin: RawListener,
    pub metrics: RawListener,
    pub http: RawHttp,
    pub bootstrap: RawBootstrap,
    pub log: RawLog,
    pub shutdown: RawShutdown,
}

/// A configuration that cannot be used, with the key, the value and its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key, e.g. `api.addr`.
    pub key: String,
    /// The offending value, if there was one (secrets are never shown).
    pub value: Option<String>,
    /// Why it was rejected.
    pub reason: String,
    /// Where it came from: a file, an environment variable or the defaults.
    pub origin: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(
                f,
                "invalid configuration: {} = {:?} ({}): {}",
                self.key, value, self.origin, self.reason
            ),
            None => write!(
                f,
                "invalid configuration: {} ({}): {}",
                self.key, self.origin, self.reason
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the SQLite file, objects, outbox and keys live.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`.
    pub database_url: String,
    /// Control-plane listener.
    pub api_addr: SocketAddr,
    /// Admin listener.
    pub admin_addr: SocketAddr,
    /// Prometheus listener.
    pub metrics_addr: SocketAddr,
    /// Limits of every HTTP listener.
    pub http: HttpLimits,
    /// Platform administrator to create on first start.
    pub bootstrap_admin: Option<(Email, Password)>,
    /// `tracing` filter directives.
    pub log_filter: String,
    /// Log format; `None` chooses by whether stderr is a terminal.
    pub log_format: Option<LogFormat>,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

/// Where to read the configuration from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The TOML file, if any. A named file that does not exist is an error.
    pub file: Option<PathBuf>,
    /// `--data-dir`, which wins over every other source.
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// Reads the file and the environment and validates the result.
    pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
        let raw = RawConfig::load(sources)?;
        Config::from_raw(&raw, sources)
    }

    /// Validates raw values into typed ones.
    pub fn from_raw(raw: &RawConfig, sources: &Sources) -> Result<Config, ConfigError> {
        let origin = |key: &str| origin_of(key, sources);
        let fail = |key: &str, value: Option<&str>, reason: String| ConfigError {
            key: key.to_owned(),
            value: value.map(str::to_owned),
            reason,
            origin: origin(key),
        };
        let text = |value: &Text, default: &str| -> String {
            value
                .0
                .clone()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let addr = |key: &str, value: &Text, default: &str| -> Result<SocketAddr, ConfigError> {
            let raw = text(value, default);
            raw.trim().parse().map_err(|_| {
                fail(
                    key,
                    Some(&raw),
                    "expected ip:port, e.g. 127.0.0.1:9090 (port 0 picks a free port)".into(),
                )
            })
        };
        let duration = |key: &str, value: &Text, default: &str| -> Result<Duration, ConfigError> {
            let raw = text(value, default);
            parse_duration(&raw).map_err(|e| fail(key, Some(&raw), e.message))
        };

        let data_dir = match &sources.data_dir {
            Some(dir) => dir.clone(),
            None => PathBuf::from(text(&raw.data_dir, "./data")),
        };
        let database_url = match raw
            .database
            .url
            .0
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            Some(url)
                if url.starts_with("sqlite:")
                    || url.starts_with("postgres://")
                    || url.starts_with("postgresql://") =>
            {
                url.to_owned()
            }
            Some(url) => {
                return Err(fail(
                    "database.url",
                    Some(&mask_url(url)),
                    "expected a sqlite:// or postgres:// URL".into(),
                ));
            }
            None => format!("sqlite://{}", data_dir.join("veloflux.db").display()),
        };

        let max_body = text(&raw.http.max_body_bytes, "1048576");
        let max_body_bytes = max_body
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1024..=1 << 30).contains(n))
            .ok_or_else(|| {
                fail(
                    "http.max_body_bytes",
                    Some(&max_body),
                    "expected a number of bytes from 1024 to 1073741824".into(),
                )
            })?;
        let request_timeout = duration("http.request_timeout", &raw.http.request_timeout, "30s")?;
        if request_timeout.is_zero() {
            return Err(fail(
                "http.request_timeout",
                Some("0s"),
                "must be longer than zero".into(),
            ));
        }

        let bootstrap_admin = match (
            &raw.bootstrap.admin_email.0,
            &raw.bootstrap.admin_password.0,
        ) {
            (None, None) => None,
            (Some(email), Some(password)) => {
                let email = Email::parse(email)
                    .map_err(|e| fail("bootstrap.admin_email", Some(email), e.message))?;
                let password = Password::parse(password)
                    .map_err(|e| fail("bootstrap.admin_password", None, e.message))?;
                Some((email, password))
            }
            (Some(_), None) => {
                return Err(fail(
                    "bootstrap.admin_password",
                    None,
                    "is required when an admin e-mail is set".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(fail(
                    "bootstrap.admin_email",
                    None,
                    "is required when an admin password is set".into(),
                ));
            }
        };

        let log_filter = text(&raw.log.level, "info");
        tracing_subscriber::EnvFilter::try_new(&log_filter).map_err(|e| {
            fail(
                "log.level",
                Some(&log_filter),
                format!("not a log filter ({e}); e.g. info or info,veloflux_api=debug"),
            )
        })?;
        let log_format = match raw.log.format.0.as_deref().map(str::trim) {
            None | Some("") => None,
            Some("json") => Some(LogFormat::Json),
            Some("pretty") => Some(LogFormat::Pretty),
            Some(other) => {
                return Err(fail(
                    "log.format",
                    Some(other),
                    "expected json or pretty".into(),
                ));
            }
        };

        Ok(Config {
            data_dir,
            database_url,
            api_addr: addr("api.addr", &raw.api.addr, "127.0.0.1:9090")?,
            admin_addr: addr("admin.addr", &raw.admin.addr, "127.0.0.1:9000")?,
            metrics_addr: addr("metrics.addr", &raw.metrics.addr, "127.0.0.1:8080")?,
            http: HttpLimits {
                max_body_bytes,
                request_timeout,
            },
            bootstrap_admin,
            log_filter,
            log_format,
            shutdown_grace: duration("shutdown.grace_period", &raw.shutdown.grace_period, "10s")?,
        })
    }

    /// The effective configuration as JSON, with every secret replaced by `***`.
    pub fn masked(&self) -> serde_json::Value {
        serde_json::json!({
            "data_dir": self.data_dir.display().to_string(),
            "database": {"url": mask_url(&self.database_url)},
            "api": {"addr": self.api_addr.to_string()},
            "admin": {"addr": self.admin_addr.to_string()},
            "metrics": {"addr": self.metrics_addr.to_string()},
            "http": {
                "max_body_bytes": self.http.max_body_bytes,
                "request_timeout": format!("{}ms", self.http.request_timeout.as_millis()),
            },
            "bootstrap": {
                "admin_email": self.bootstrap_admin.as_ref().map(|(email, _)| email.to_string()),
                "admin_password": self.bootstrap_admin.as_ref().map(|_| "***"),
            },
            "log": {"level": self.log_filter, "format": self.log_format},
            "shutdown": {"grace_period": format!("{}ms", self.shutdown_grace.as_millis())},
        })
    }
}

impl RawConfig {
    /// Layers the file (if any) under the environment.
    pub fn load(sources: &Sources) -> Result<RawConfig, ConfigError> {
        let mut figment = Figment::new();
        if let Some(file) = &sources.file {
            if !file.is_file() {
                return Err(ConfigError {
                    key: "--config".into(),
                    value: Some(file.display().to_string()),
                    reason: "no such file".into(),
                    origin: "command line or VELOFLUX_CONFIG".into(),
                });
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(
            Env::prefixed(ENV_PREFIX)
                .filter_map(|key| env_key(key.as_str()).map(Uncased::from_owned)),
        );
        figment.extract::<RawConfig>().map_err(|err| {
            let key = err.path.join(".");
            let origin = err
                .metadata
                .as_ref()
                .map_or_else(|| "configuration".to_owned(), |m| m.name.to_string());
            ConfigError {
                key: if key.is_empty() {
                    "(top level)".into()
                } else {
                    key
                },
                value: None,
                reason: err.kind.to_string(),
                origin,
            }
        })
    }
}

/// Maps an environment variable (without the prefix) to its dotted key: `API__ADDR` to
/// `api.addr`, the short names through [`SHORT_VARIABLES`]. Unknown names pass through
/// lower-cased, so that the unknown-key check reports them.
fn env_key(name: &str) -> Option<String> {
    let upper = name.to_ascii_uppercase();
    if NOT_KEYS.contains(&upper.as_str()) {
        return None;
    }
    if upper.contains("__") {
        return Some(upper.replace("__", ".").to_ascii_lowercase());
    }
    let short = SHORT_VARIABLES
        .iter()
        .find(|(var, _)| *var == upper)
        .map(|(_, key)| (*key).to_owned());
    Some(short.unwrap_or_else(|| upper.to_ascii_lowercase()))
}

/// The environment variable that set `key`, or the file, or the defaults.
fn origin_of(key: &str, sources: &Sources) -> String {
    if key == "data_dir" && sources.data_dir.is_some() {
        return "--data-dir".into();
    }
    let long = format!(
        "{ENV_PREFIX}{}",
        key.replace('.', "__").to_ascii_uppercase()
    );
    let short = SHORT_VARIABLES
        .iter()
        .find(|(_, k)| *k == key)
        .map(|(var, _)| format!("{ENV_PREFIX}{var}"));
    for var in [Some(long), short].into_iter().flatten() {
        if std::env::var_os(&var).is_some() {
            return format!("from {var}");
        }
    }
    match &sources.file {
        Some(file) => format!("from {} or the defaults", file.display()),
        None => "from the defaults".into(),
    }
}

/// Hides the password of a URL: `postgres://user:***@host/db`.
pub fn mask_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{}{}{}", &url[..scheme_end], masked, &rest[at..])
        }
        None => url.to_owned(),
    }
}

/// Makes sure the data directory exists.
pub fn ensure_data_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml: &str) -> RawConfig {
        Figment::new().merge(Toml::string(toml)).extract().unwrap()
    }

    #[test]
    fn defaults_follow_the_operational_contract() {
        let config = Config::from_raw(&RawConfig::default(), &Sources::default()).unwrap();
        assert_eq!(config.api_addr.to_string(), "127.0.0.1:9090");
        assert_eq!(config.admin_addr.to_string(), "127.0.0.1:9000");
        assert_eq!(config.metrics_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.database_url, "sqlite://./data/veloflux.db");
        assert_eq!(config.http.max_body_bytes, 1_048_576);
        assert_eq!(config.log_filter, "info");
    }

    #[test]
    fn names_the_key_and_value_that_is_wrong() {
        let err =
            Config::from_raw(&raw("[api]\naddr = \"nonsense\""), &Sources::default()).unwrap_err();
        assert_eq!(err.key, "api.addr");
        assert_eq!(err.value.as_deref(), Some("nonsense"));
        assert!(
            err.to_string()
                .starts_with("invalid configuration: api.addr = \"nonsense\""),
            "{err}"
        );

        let err = Config::from_raw(
            &raw("[http]\nrequest_timeout = \"soon\""),
            &Sources::default(),
        )
        .unwrap_err();
        assert_eq!(err.key, "http.request_timeout");
        let err =
            Config::from_raw(&raw("[http]\nmax_body_bytes = 12"), &Sources::default()).unwrap_err();
        assert_eq!(err.key, "http.max_body_bytes");
        let err =
            Config::from_raw(&raw("[log]\nformat = \"xml\""), &Sources::default()).unwrap_err();
        assert_eq!(err.key, "log.format");
        let err = Config::from_raw(
            &raw("[database]\nurl = \"mysql://u:secret@h/db\""),
            &Sources::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.value.as_deref(),
            Some("mysql://u:***@h/db"),
            "the password is never shown"
        );
    }

    #[test]
    fn numbers_and_text_are_accepted_alike() {
        let config = Config::from_raw(
            &raw("[http]\nmax_body_bytes = \"2048\""),
            &Sources::default(),
        )
        .unwrap();
        assert_eq!(config.http.max_body_bytes, 2048);
        let config =
            Config::from_raw(&raw("[http]\nmax_body_bytes = 4096"), &Sources::default()).unwrap();
        assert_eq!(config.http.max_body_bytes, 4096);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err: figment::Error = Figment::new()
            .merge(Toml::string("[api]\nport = 1"))
            .extract::<RawConfig>()
            .unwrap_err();
        assert!(err.to_string().contains("port"), "{err}");
    }

    #[test]
    fn bootstrap_admin_needs_both_halves_and_a_good_password() {
        let err = Config::from_raw(
            &raw("[bootstrap]\nadmin_email = \"a@x.com\""),
            &Sources::default(),
        )
        .unwrap_err();
        assert_eq!(err.key, "bootstrap.admin_password");
        let err = Config::from_raw(
            &raw("[bootstrap]\nadmin_email = \"a@x.com\"\nadmin_password = \"short\""),
            &Sources::default(),
        )
        .unwrap_err();
        assert_eq!(err.key, "bootstrap.admin_password");
        assert_eq!(err.value, None, "a password is never echoed");
    }

    #[test]
    fn environment_names_map_to_keys() {
        assert_eq!(env_key("API__ADDR").as_deref(), Some("api.addr"));
        assert_eq!(env_key("DATABASE_URL").as_deref(), Some("database.url"));
        assert_eq!(
            env_key("ADMIN_EMAIL").as_deref(),
            Some("bootstrap.admin_email")
        );
        assert_eq!(env_key("LOG").as_deref(), Some("log.level"));
        assert_eq!(env_key("CONFIG"), None);
        assert_eq!(env_key("SURPRISE").as_deref(), Some("surprise"));
    }

    #[test]
    fn masks_url_passwords() {
        assert_eq!(
            mask_url("postgres://u:p@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(mask_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            mask_url("sqlite://./data/veloflux.db"),
            "sqlite://./data/veloflux.db"
        );
    }
}
