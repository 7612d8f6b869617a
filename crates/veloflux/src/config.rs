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
use veloflux_api::ratelimit::RateLimits;
use veloflux_domain::{Email, Password, parse_duration};
use veloflux_identity::{LockoutPolicy, SmtpSecurity, SmtpSettings, TokenSettings};

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
    ("SECRET_KEY", "secrets.key"),
    ("EDGE_HTTP_ADDR", "edge.http_addr"),
    ("EDGE_HTTPS_ADDR", "edge.https_addr"),
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
    /// `[api]`: the control-plane listener.
    RawApi { addr, public_url, cors_allowed_origins }
    /// `[admin]`, `[metrics]`: a listener.
    RawListener { addr }
    /// `[secrets]`
    RawSecrets { key }
    /// `[auth]`: tokens and sign-in throttling.
    RawAuth { access_token_ttl, refresh_token_ttl, magic_link_ttl, max_failures_per_account, max_failures_per_ip, lockout }
    /// `[rate_limits]`: API requests per token by plan, and per IP on sign-in routes.
    RawRateLimits { free, professional, enterprise, window, auth_per_ip, auth_window }
    /// `[oidc]`
    RawOidc { allow_private_targets }
    /// `[meter]`
    RawMeter { flush_interval }
    /// `[edge]`: the proxy listeners and upstream behaviour.
    RawEdge {
        http_addr, https_addr, workers, connect_timeout, response_timeout, retries, websocket_idle_timeout, access_log, max_body_bytes,
        free_rps, professional_rps, enterprise_rps, free_concurrency, professional_concurrency, enterprise_concurrency,
    }
    /// `[smtp]`: outgoing e-mail; without a host, e-mail goes to the outbox folder.
    RawSmtp { host, port, security, username, password, from }
    /// `[http]`: limits of every HTTP listener.
    RawHttp { max_body_bytes, request_timeout, header_timeout }
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
#[allow(missing_docs, reason = "each field is a section documented in the README")]
pub struct RawConfig {
    pub data_dir: Text,
    pub database: RawDatabase,
    pub api: RawApi,
    pub admin: RawListener,
    pub metrics: RawListener,
    pub http: RawHttp,
    pub bootstrap: RawBootstrap,
    pub log: RawLog,
    pub shutdown: RawShutdown,
    pub secrets: RawSecrets,
    pub auth: RawAuth,
    pub rate_limits: RawRateLimits,
    pub smtp: RawSmtp,
    pub oidc: RawOidc,
    pub edge: RawEdge,
    pub meter: RawMeter,
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
    /// Base URL users reach the API at (used in e-mailed links).
    pub public_url: String,
    /// Origins allowed to call the API from browsers, for every tenant.
    pub cors_allowed_origins: Vec<String>,
    /// The base64 key for secrets at rest; `None` uses (or creates) `keys/secret.key` in the
    /// data directory.
    pub secret_key: Option<String>,
    /// Token lifetimes.
    pub tokens: TokenSettings,
    /// Magic link lifetime.
    pub magic_link_ttl: Duration,
    /// Failed sign-in handling.
    pub lockout: LockoutPolicy,
    /// API rate limits.
    pub rate_limits: RateLimits,
    /// SMTP server; `None` writes e-mail to the outbox folder.
    pub smtp: Option<SmtpSettings>,
    /// Sender address of e-mail.
    pub mail_from: String,
    /// Let OIDC requests reach private and loopback addresses.
    pub oidc_allow_private_targets: bool,
    /// Edge HTTP listener.
    pub edge_http_addr: SocketAddr,
    /// Edge HTTPS listener, when configured (not served yet: see the README).
    pub edge_https_addr: Option<SocketAddr>,
    /// Proxy timeouts and retries.
    pub edge: veloflux_edge::EdgeSettings,
    /// How often edge traffic is written to the usage table.
    pub meter_flush_interval: Duration,
    /// Edge worker threads (one runtime and one listener each).
    pub edge_workers: usize,
    /// Edge traffic limits of each plan: free, professional, enterprise.
    pub edge_limits: [veloflux_edge::TenantLimits; 3],
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
        let database_url = match raw.database.url.0.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            Some(url)
                if url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://") =>
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

        let bootstrap_admin = match (&raw.bootstrap.admin_email.0, &raw.bootstrap.admin_password.0) {
            (None, None) => None,
            (Some(email), Some(password)) => {
                let email = Email::parse(email).map_err(|e| fail("bootstrap.admin_email", Some(email), e.message))?;
                let password =
                    Password::parse(password).map_err(|e| fail("bootstrap.admin_password", None, e.message))?;
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
                return Err(fail("log.format", Some(other), "expected json or pretty".into()));
            }
        };

        let number = |key: &str, value: &Text, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
            let raw = text(value, &default.to_string());
            raw.trim()
                .parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| fail(key, Some(&raw), format!("expected a whole number from {min} to {max}")))
        };
        let positive = |key: &str, value: &Text, default: &str| -> Result<Duration, ConfigError> {
            let parsed = duration(key, value, default)?;
            if parsed.is_zero() {
                return Err(fail(
                    key,
                    Some(&text(value, default)),
                    "must be longer than zero".into(),
                ));
            }
            Ok(parsed)
        };
        let count = |key: &str, value: &Text, default: u64| -> Result<u32, ConfigError> {
            Ok(u32::try_from(number(key, value, default, 1, 1_000_000_000)?).unwrap_or(u32::MAX))
        };

        let api_addr = addr("api.addr", &raw.api.addr, "127.0.0.1:9090")?;
        let public_url = match raw.api.public_url.0.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                url.trim_end_matches('/').to_owned()
            }
            Some(url) => {
                return Err(fail(
                    "api.public_url",
                    Some(url),
                    "expected an http:// or https:// URL".into(),
                ));
            }
            None => format!("http://{api_addr}"),
        };
        let cors_allowed_origins: Vec<String> = raw
            .api
            .cors_allowed_origins
            .0
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) = cors_allowed_origins
            .iter()
            .find(|o| !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/'))
        {
            return Err(fail(
                "api.cors_allowed_origins",
                Some(bad),
                "expected comma-separated origins such as https://app.example.com".into(),
            ));
        }
        let secret_key = raw.secrets.key.0.clone().filter(|k| !k.trim().is_empty());
        if let Some(key) = &secret_key {
            veloflux_secrets::SecretKey::from_base64(key).map_err(|e| fail("secrets.key", None, e.to_string()))?;
        }
        let tokens = TokenSettings {
            access_ttl: positive("auth.access_token_ttl", &raw.auth.access_token_ttl, "1h")?,
            refresh_ttl: positive("auth.refresh_token_ttl", &raw.auth.refresh_token_ttl, "30d")?,
        };
        let lockout = LockoutPolicy {
            max_failures_per_account: i64::from(count(
                "auth.max_failures_per_account",
                &raw.auth.max_failures_per_account,
                5,
            )?),
            max_failures_per_ip: i64::from(count("auth.max_failures_per_ip", &raw.auth.max_failures_per_ip, 20)?),
            lockout: positive("auth.lockout", &raw.auth.lockout, "15m")?,
            ..LockoutPolicy::default()
        };
        let rate_limits = RateLimits {
            free: count("rate_limits.free", &raw.rate_limits.free, 100)?,
            professional: count("rate_limits.professional", &raw.rate_limits.professional, 1_000)?,
            enterprise: count("rate_limits.enterprise", &raw.rate_limits.enterprise, 10_000)?,
            window: positive("rate_limits.window", &raw.rate_limits.window, "1h")?,
            auth_per_ip: count("rate_limits.auth_per_ip", &raw.rate_limits.auth_per_ip, 30)?,
            auth_window: positive("rate_limits.auth_window", &raw.rate_limits.auth_window, "1m")?,
        };
        let smtp = match raw.smtp.host.0.as_deref().map(str::trim).filter(|h| !h.is_empty()) {
            None => None,
            Some(host) => {
                let security = match raw.smtp.security.0.as_deref().map(str::trim).unwrap_or("starttls") {
                    "none" => SmtpSecurity::None,
                    "starttls" => SmtpSecurity::StartTls,
                    "tls" => SmtpSecurity::Tls,
                    other => {
                        return Err(fail(
                            "smtp.security",
                            Some(other),
                            "expected none, starttls or tls".into(),
                        ));
                    }
                };
                let default_port = match security {
                    SmtpSecurity::None => 25,
                    SmtpSecurity::StartTls => 587,
                    SmtpSecurity::Tls => 465,
                };
                let port = u16::try_from(number("smtp.port", &raw.smtp.port, default_port, 1, 65_535)?).unwrap_or(587);
                let credentials = match (&raw.smtp.username.0, &raw.smtp.password.0) {
                    (Some(user), Some(password)) => Some((user.clone(), password.clone())),
                    (None, None) => None,
                    _ => {
                        return Err(fail(
                            "smtp.password",
                            None,
                            "smtp.username and smtp.password go together".into(),
                        ));
                    }
                };
                Some(SmtpSettings {
                    host: host.to_owned(),
                    port,
                    security,
                    credentials,
                })
            }
        };
        let mail_from = text(&raw.smtp.from, "VeloFlux <no-reply@veloflux.local>");
        if !mail_from.contains('@') {
            return Err(fail(
                "smtp.from",
                Some(&mail_from),
                "expected an e-mail address, e.g. VeloFlux <no-reply@example.com>".into(),
            ));
        }

        let oidc_allow_private_targets = match raw.oidc.allow_private_targets.0.as_deref().map(str::trim) {
            None | Some("") | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(fail(
                    "oidc.allow_private_targets",
                    Some(other),
                    "expected true or false".into(),
                ));
            }
        };

        let header_timeout = positive("http.header_timeout", &raw.http.header_timeout, "30s")?;
        let edge = veloflux_edge::EdgeSettings {
            header_timeout,
            connect_timeout: positive("edge.connect_timeout", &raw.edge.connect_timeout, "5s")?,
            response_timeout: positive("edge.response_timeout", &raw.edge.response_timeout, "60s")?,
            retries: u32::try_from(number("edge.retries", &raw.edge.retries, 1, 0, 5)?).unwrap_or(1),
            tunnel_idle_timeout: positive("edge.websocket_idle_timeout", &raw.edge.websocket_idle_timeout, "5m")?,
            max_request_body_bytes: number(
                "edge.max_body_bytes",
                &raw.edge.max_body_bytes,
                100 * 1024 * 1024,
                1024,
                1 << 40,
            )?,
            access_log_one_in: match raw.edge.access_log.0.as_deref().map(str::trim).unwrap_or("on") {
                "on" | "all" => 1,
                "off" => 0,
                other => other
                    .strip_prefix("1/")
                    .and_then(|n| n.parse::<u32>().ok())
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| {
                        fail(
                            "edge.access_log",
                            Some(other),
                            "expected on, off or a sample such as 1/100".into(),
                        )
                    })?,
            },
            ..veloflux_edge::EdgeSettings::default()
        };

        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let edge_workers =
            usize::try_from(number("edge.workers", &raw.edge.workers, cores as u64, 1, 256)?).unwrap_or(1);

        let limits = |rps_key: &str, rps: &Text, rps_default: u64, conc_key: &str, conc: &Text, conc_default: u64| {
            Ok::<_, ConfigError>(veloflux_edge::TenantLimits {
                requests_per_second: count(rps_key, rps, rps_default)?,
                concurrent_requests: count(conc_key, conc, conc_default)?,
            })
        };
        let e = &raw.edge;
        let edge_limits = [
            limits(
                "edge.free_rps",
                &e.free_rps,
                100,
                "edge.free_concurrency",
                &e.free_concurrency,
                100,
            )?,
            limits(
                "edge.professional_rps",
                &e.professional_rps,
                1_000,
                "edge.professional_concurrency",
                &e.professional_concurrency,
                1_000,
            )?,
            limits(
                "edge.enterprise_rps",
                &e.enterprise_rps,
                10_000,
                "edge.enterprise_concurrency",
                &e.enterprise_concurrency,
                10_000,
            )?,
        ];

        Ok(Config {
            edge_limits,
            edge_workers,
            meter_flush_interval: positive("meter.flush_interval", &raw.meter.flush_interval, "10s")?,
            edge_http_addr: addr("edge.http_addr", &raw.edge.http_addr, "0.0.0.0:8000")?,
            edge_https_addr: match raw.edge.https_addr.0.as_deref().map(str::trim) {
                Some("off") => None,
                _ => Some(addr("edge.https_addr", &raw.edge.https_addr, "0.0.0.0:8443")?),
            },
            edge,
            oidc_allow_private_targets,
            public_url,
            cors_allowed_origins,
            secret_key,
            tokens,
            magic_link_ttl: positive("auth.magic_link_ttl", &raw.auth.magic_link_ttl, "15m")?,
            lockout,
            rate_limits,
            smtp,
            mail_from,
            data_dir,
            database_url,
            api_addr,
            admin_addr: addr("admin.addr", &raw.admin.addr, "127.0.0.1:9000")?,
            metrics_addr: addr("metrics.addr", &raw.metrics.addr, "127.0.0.1:8080")?,
            http: HttpLimits {
                max_body_bytes,
                request_timeout,
                header_timeout,
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
            "api": {"addr": self.api_addr.to_string(), "public_url": self.public_url, "cors_allowed_origins": self.cors_allowed_origins},
            "secrets": {"key": if self.secret_key.is_some() { "***" } else { "(data_dir/keys/secret.key)" }},
            "auth": {
                "access_token_ttl": format!("{}s", self.tokens.access_ttl.as_secs()),
                "refresh_token_ttl": format!("{}s", self.tokens.refresh_ttl.as_secs()),
                "magic_link_ttl": format!("{}s", self.magic_link_ttl.as_secs()),
                "max_failures_per_account": self.lockout.max_failures_per_account,
                "max_failures_per_ip": self.lockout.max_failures_per_ip,
                "lockout": format!("{}s", self.lockout.lockout.as_secs()),
            },
            "rate_limits": {
                "free": self.rate_limits.free,
                "professional": self.rate_limits.professional,
                "enterprise": self.rate_limits.enterprise,
                "window": format!("{}s", self.rate_limits.window.as_secs()),
                "auth_per_ip": self.rate_limits.auth_per_ip,
                "auth_window": format!("{}s", self.rate_limits.auth_window.as_secs()),
            },
            "oidc": {"allow_private_targets": self.oidc_allow_private_targets},
            "meter": {"flush_interval": format!("{}ms", self.meter_flush_interval.as_millis())},
            "edge": {
                "http_addr": self.edge_http_addr.to_string(),
                "workers": self.edge_workers,
                "limits": self.edge_limits.iter().zip(["free", "professional", "enterprise"]).map(|(l, plan)| serde_json::json!({
                    "plan": plan, "requests_per_second": l.requests_per_second, "concurrent_requests": l.concurrent_requests,
                })).collect::<Vec<_>>(),
                "https_addr": self.edge_https_addr.map(|a| a.to_string()),
                "connect_timeout": format!("{}ms", self.edge.connect_timeout.as_millis()),
                "response_timeout": format!("{}ms", self.edge.response_timeout.as_millis()),
                "retries": self.edge.retries,
                "max_body_bytes": self.edge.max_request_body_bytes,
                "websocket_idle_timeout": format!("{}ms", self.edge.tunnel_idle_timeout.as_millis()),
                "access_log": match self.edge.access_log_one_in { 0 => "off".to_owned(), 1 => "on".to_owned(), n => format!("1/{n}") },
            },
            "smtp": self.smtp.as_ref().map(|smtp| serde_json::json!({
                "host": smtp.host,
                "port": smtp.port,
                "security": format!("{:?}", smtp.security).to_lowercase(),
                "username": smtp.credentials.as_ref().map(|(user, _)| user),
                "password": smtp.credentials.as_ref().map(|_| "***"),
                "from": self.mail_from,
            })),
            "admin": {"addr": self.admin_addr.to_string()},
            "metrics": {"addr": self.metrics_addr.to_string()},
            "http": {
                "max_body_bytes": self.http.max_body_bytes,
                "request_timeout": format!("{}ms", self.http.request_timeout.as_millis()),
                "header_timeout": format!("{}ms", self.http.header_timeout.as_millis()),
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
        figment =
            figment.merge(Env::prefixed(ENV_PREFIX).filter_map(|key| env_key(key.as_str()).map(Uncased::from_owned)));
        figment.extract::<RawConfig>().map_err(|err| {
            let key = err.path.join(".");
            let origin = err
                .metadata
                .as_ref()
                .map_or_else(|| "configuration".to_owned(), |m| m.name.to_string());
            ConfigError {
                key: if key.is_empty() { "(top level)".into() } else { key },
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
    let long = format!("{ENV_PREFIX}{}", key.replace('.', "__").to_ascii_uppercase());
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
        let err = Config::from_raw(&raw("[api]\naddr = \"nonsense\""), &Sources::default()).unwrap_err();
        assert_eq!(err.key, "api.addr");
        assert_eq!(err.value.as_deref(), Some("nonsense"));
        assert!(
            err.to_string()
                .starts_with("invalid configuration: api.addr = \"nonsense\""),
            "{err}"
        );

        let err = Config::from_raw(&raw("[http]\nrequest_timeout = \"soon\""), &Sources::default()).unwrap_err();
        assert_eq!(err.key, "http.request_timeout");
        let err = Config::from_raw(&raw("[http]\nmax_body_bytes = 12"), &Sources::default()).unwrap_err();
        assert_eq!(err.key, "http.max_body_bytes");
        let err = Config::from_raw(&raw("[log]\nformat = \"xml\""), &Sources::default()).unwrap_err();
        assert_eq!(err.key, "log.format");
        let err =
            Config::from_raw(&raw("[database]\nurl = \"mysql://u:secret@h/db\""), &Sources::default()).unwrap_err();
        assert_eq!(
            err.value.as_deref(),
            Some("mysql://u:***@h/db"),
            "the password is never shown"
        );
    }

    #[test]
    fn numbers_and_text_are_accepted_alike() {
        let config = Config::from_raw(&raw("[http]\nmax_body_bytes = \"2048\""), &Sources::default()).unwrap();
        assert_eq!(config.http.max_body_bytes, 2048);
        let config = Config::from_raw(&raw("[http]\nmax_body_bytes = 4096"), &Sources::default()).unwrap();
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
        let err = Config::from_raw(&raw("[bootstrap]\nadmin_email = \"a@x.com\""), &Sources::default()).unwrap_err();
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
        assert_eq!(env_key("ADMIN_EMAIL").as_deref(), Some("bootstrap.admin_email"));
        assert_eq!(env_key("LOG").as_deref(), Some("log.level"));
        assert_eq!(env_key("CONFIG"), None);
        assert_eq!(env_key("SURPRISE").as_deref(), Some("surprise"));
    }

    #[test]
    fn masks_url_passwords() {
        assert_eq!(mask_url("postgres://u:p@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(mask_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(mask_url("sqlite://./data/veloflux.db"), "sqlite://./data/veloflux.db");
    }
}
