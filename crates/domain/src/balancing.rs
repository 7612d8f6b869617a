use std::fmt;
use std::time::Duration;

use crate::{Invalid, parse_duration};

/// How a pool spreads requests over its backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Each backend in turn.
    RoundRobin,
    /// In turn, in proportion to weights, spread evenly (smooth weighted round robin).
    WeightedRoundRobin,
    /// The backend with the fewest requests in flight (relative to its weight).
    LeastConnections,
    /// Power of two choices over a latency estimate weighted by requests in flight.
    AdaptiveAi,
    /// Consistent hashing of the client address: a client keeps its backend.
    IpHash,
}

impl Algorithm {
    /// Every algorithm.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::LeastConnections,
        Algorithm::AdaptiveAi,
        Algorithm::IpHash,
    ];

    /// Parses the seed's names.
    pub fn parse(raw: &str) -> Result<Algorithm, Invalid> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == raw.trim())
            .ok_or_else(|| {
                Invalid::new(
                    "one_of",
                    format!(
                        "unsupported algorithm \"{}\"; use one of: {}",
                        raw.trim(),
                        Algorithm::ALL.map(Algorithm::as_str).join(", ")
                    ),
                )
            })
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round_robin",
            Algorithm::WeightedRoundRobin => "weighted_round_robin",
            Algorithm::LeastConnections => "least_connections",
            Algorithm::AdaptiveAi => "adaptive_ai",
            Algorithm::IpHash => "ip_hash",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pool's name: 1 to 64 characters of letters, digits, `_`, `-` and `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolName(String);

impl PoolName {
    /// Validates a name.
    pub fn parse(raw: &str) -> Result<PoolName, Invalid> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(Invalid::new("required", "name is required"));
        }
        if name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) {
            return Err(Invalid::new(
                "format",
                "name must be 1 to 64 letters, digits, '_', '-' or '.'",
            ));
        }
        Ok(PoolName(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a backend listens: `ip:port` or `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BackendAddress {
    host: String,
    port: u16,
}

impl BackendAddress {
    /// Validates `host:port` (IPv6 as `[addr]:port`).
    pub fn parse(raw: &str) -> Result<BackendAddress, Invalid> {
        let text = raw.trim();
        let bad = || Invalid::new("format", format!("\"{text}\" is not host:port, e.g. 192.168.1.10:8080"));
        if let Ok(addr) = text.parse::<std::net::SocketAddr>() {
            if addr.port() == 0 {
                return Err(bad());
            }
            return Ok(BackendAddress {
                host: addr.ip().to_string(),
                port: addr.port(),
            });
        }
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?;
        let valid_host = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid_host {
            return Err(bad());
        }
        Ok(BackendAddress {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Host name or IP address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for BackendAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A backend's share of traffic, 1 to 1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Weight(u32);

impl Weight {
    /// Largest weight.
    pub const MAX: u32 = 1000;

    /// Validates a weight.
    pub fn parse(raw: i64) -> Result<Weight, Invalid> {
        u32::try_from(raw)
            .ok()
            .filter(|w| (1..=Self::MAX).contains(w))
            .map(Weight)
            .ok_or_else(|| Invalid::new("range", format!("weight must be between 1 and {}", Self::MAX)))
    }

    /// The weight.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for Weight {
    fn default() -> Self {
        Weight(100)
    }
}

/// Active health checking of a pool or backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Whether checks run.
    pub enabled: bool,
    /// Path requested with GET.
    pub path: String,
    /// Time between checks.
    pub interval: Duration,
    /// Time a check may take.
    pub timeout: Duration,
    /// Status a healthy backend answers with.
    pub expected_status: u16,
    /// Consecutive passes that make an unhealthy backend healthy.
    pub rise: u32,
    /// Consecutive failures that make a healthy backend unhealthy.
    pub fall: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            enabled: true,
            path: "/health".into(),
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            expected_status: 200,
            rise: 2,
            fall: 3,
        }
    }
}

/// The raw fields of a health check; absent ones take the defaults.
#[derive(Debug, Clone, Default)]
pub struct RawHealthCheck<'a> {
    /// `enabled`.
    pub enabled: Option<bool>,
    /// `path`.
    pub path: Option<&'a str>,
    /// `interval`, e.g. `30s`.
    pub interval: Option<&'a str>,
    /// `timeout`, e.g. `5s`.
    pub timeout: Option<&'a str>,
    /// `expected_status`.
    pub expected_status: Option<i64>,
    /// `rise`.
    pub rise: Option<i64>,
    /// `fall`.
    pub fall: Option<i64>,
}

impl HealthCheck {
    /// Validates a health check over `base`; the error names the field.
    pub fn parse(raw: &RawHealthCheck<'_>, base: &HealthCheck) -> Result<HealthCheck, (&'static str, Invalid)> {
        let mut check = base.clone();
        if let Some(enabled) = raw.enabled {
            check.enabled = enabled;
        }
        if let Some(path) = raw.path {
            if !path.starts_with('/') || path.len() > 1024 || path.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err((
                    "path",
                    Invalid::new("format", "path must start with / and contain no spaces"),
                ));
            }
            check.path = path.to_owned();
        }
        if let Some(interval) = raw.interval {
            check.interval = parse_duration(interval).map_err(|e| ("interval", e))?;
        }
        if let Some(timeout) = raw.timeout {
            check.timeout = parse_duration(timeout).map_err(|e| ("timeout", e))?;
        }
        if check.interval < Duration::from_millis(100) {
            return Err(("interval", Invalid::new("range", "interval must be at least 100ms")));
        }
        if check.timeout.is_zero() || check.timeout >= check.interval {
            return Err((
                "timeout",
                Invalid::new(
                    "range",
                    "timeout must be longer than zero and shorter than the interval",
                ),
            ));
        }
        if let Some(status) = raw.expected_status {
            check.expected_status = u16::try_from(status).ok().filter(|s| (100..=599).contains(s)).ok_or((
                "expected_status",
                Invalid::new("range", "expected_status must be an HTTP status (100 to 599)"),
            ))?;
        }
        let count = |field: &'static str, value: i64| {
            u32::try_from(value).ok().filter(|n| (1..=100).contains(n)).ok_or((
                field,
                Invalid::new("range", format!("{field} must be between 1 and 100")),
            ))
        };
        if let Some(rise) = raw.rise {
            check.rise = count("rise", rise)?;
        }
        if let Some(fall) = raw.fall {
            check.fall = count("fall", fall)?;
        }
        Ok(check)
    }
}

/// A host a route answers for: an exact name or a `*.` wildcard of one label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteHost(String);

impl RouteHost {
    /// Validates and lower-cases a host.
    pub fn parse(raw: &str) -> Result<RouteHost, Invalid> {
        let host = raw.trim().to_ascii_lowercase();
        let name = host.strip_prefix("*.").unwrap_or(&host);
        let valid = !name.is_empty()
            && host.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(Invalid::new(
                "format",
                format!("\"{}\" is not a host name or *.wildcard", raw.trim()),
            ));
        }
        Ok(RouteHost(host))
    }

    /// The host.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a `*.` wildcard.
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }
}

/// A route's path prefix: starts with `/`, no spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathPrefix(String);

impl PathPrefix {
    /// Validates a prefix; empty means `/`.
    pub fn parse(raw: &str) -> Result<PathPrefix, Invalid> {
        let prefix = raw.trim();
        if prefix.is_empty() {
            return Ok(PathPrefix("/".into()));
        }
        if !prefix.starts_with('/')
            || prefix.len() > 1024
            || prefix.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Invalid::new(
                "format",
                "path_prefix must start with / and contain no spaces",
            ));
        }
        Ok(PathPrefix(prefix.to_owned()))
    }

    /// The prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_parse_and_name_the_choices() {
        for algorithm in Algorithm::ALL {
            assert_eq!(Algorithm::parse(algorithm.as_str()), Ok(algorithm));
        }
        let err = Algorithm::parse("random").unwrap_err();
        assert!(
            err.message
                .contains("round_robin, weighted_round_robin, least_connections, adaptive_ai, ip_hash")
        );
    }

    #[test]
    fn backend_addresses_are_host_and_port() {
        assert_eq!(
            BackendAddress::parse("192.168.1.10:8080").unwrap().to_string(),
            "192.168.1.10:8080"
        );
        assert_eq!(
            BackendAddress::parse("API.internal:80").unwrap().to_string(),
            "api.internal:80"
        );
        assert_eq!(BackendAddress::parse("[::1]:9000").unwrap().to_string(), "[::1]:9000");
        for bad in [
            "",
            "10.0.0.1",
            "10.0.0.1:0",
            "host:99999",
            "bad host:80",
            "-x.com:80",
            "http://x:80",
        ] {
            assert!(BackendAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn weights_are_bounded() {
        assert_eq!(Weight::parse(150).unwrap().get(), 150);
        assert!(Weight::parse(0).is_err());
        assert!(Weight::parse(1001).is_err());
    }

    #[test]
    fn health_checks_need_a_timeout_shorter_than_the_interval() {
        let raw = RawHealthCheck {
            path: Some("/api/health"),
            interval: Some("10s"),
            timeout: Some("3s"),
            expected_status: Some(200),
            ..Default::default()
        };
        let check = HealthCheck::parse(&raw, &HealthCheck::default()).unwrap();
        assert_eq!(
            (check.interval, check.timeout),
            (Duration::from_secs(10), Duration::from_secs(3))
        );
        let raw = RawHealthCheck {
            interval: Some("5s"),
            timeout: Some("5s"),
            ..Default::default()
        };
        assert_eq!(
            HealthCheck::parse(&raw, &HealthCheck::default()).unwrap_err().0,
            "timeout"
        );
        let raw = RawHealthCheck {
            interval: Some("soon"),
            ..Default::default()
        };
        assert_eq!(
            HealthCheck::parse(&raw, &HealthCheck::default()).unwrap_err().0,
            "interval"
        );
        let raw = RawHealthCheck {
            path: Some("health"),
            ..Default::default()
        };
        assert_eq!(HealthCheck::parse(&raw, &HealthCheck::default()).unwrap_err().0, "path");
    }

    #[test]
    fn route_hosts_accept_exact_names_and_wildcards() {
        assert_eq!(RouteHost::parse("App.Exemplo.com").unwrap().as_str(), "app.exemplo.com");
        assert!(RouteHost::parse("*.exemplo.com").unwrap().is_wildcard());
        for bad in ["", "*.", "a..b", "exa mple.com", "*.*.x.com", "x.com/path"] {
            assert!(RouteHost::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(PathPrefix::parse("").unwrap().as_str(), "/");
        assert!(PathPrefix::parse("v1").is_err());
    }
}

/// A pool's own upstream timeouts; `None` uses the edge's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolTimeouts {
    /// Time to open a connection to a backend.
    pub connect: Option<Duration>,
    /// Time for a backend to send its response head.
    pub response: Option<Duration>,
}

impl PoolTimeouts {
    /// Longest connect timeout accepted.
    pub const MAX_CONNECT: Duration = Duration::from_secs(60);
    /// Longest response timeout accepted.
    pub const MAX_RESPONSE: Duration = Duration::from_secs(3600);

    /// Parses a connect and a response timeout (`"2s"`, `"500ms"`); an absent one stays as in
    /// `base`. Failures name the field.
    pub fn parse(
        connect: Option<&str>,
        response: Option<&str>,
        base: PoolTimeouts,
    ) -> Result<PoolTimeouts, (&'static str, Invalid)> {
        let one = |field: &'static str, raw: Option<&str>, current: Option<Duration>, max: Duration| match raw {
            None => Ok(current),
            Some(raw) => {
                let value = crate::parse_duration(raw).map_err(|e| (field, e))?;
                if value.is_zero() || value > max {
                    return Err((
                        field,
                        Invalid::new(
                            "range",
                            format!(
                                "{field} must be longer than zero and at most {}",
                                crate::format_duration(max)
                            ),
                        ),
                    ));
                }
                Ok(Some(value))
            }
        };
        Ok(PoolTimeouts {
            connect: one("connect_timeout", connect, base.connect, Self::MAX_CONNECT)?,
            response: one("response_timeout", response, base.response, Self::MAX_RESPONSE)?,
        })
    }
}

#[cfg(test)]
mod timeout_tests {
    use super::*;

    #[test]
    fn pool_timeouts_parse_keep_and_refuse() {
        let base = PoolTimeouts {
            connect: Some(Duration::from_secs(1)),
            response: None,
        };
        let parsed = PoolTimeouts::parse(None, Some("30s"), base).unwrap();
        assert_eq!(parsed.connect, Some(Duration::from_secs(1)));
        assert_eq!(parsed.response, Some(Duration::from_secs(30)));
        assert_eq!(
            PoolTimeouts::parse(Some("0s"), None, base).unwrap_err().0,
            "connect_timeout"
        );
        assert_eq!(
            PoolTimeouts::parse(Some("2m"), None, base).unwrap_err().1.constraint,
            "range"
        );
        assert_eq!(
            PoolTimeouts::parse(None, Some("soon"), base).unwrap_err().0,
            "response_timeout"
        );
    }
}
