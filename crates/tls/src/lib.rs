//! TLS certificates for the edge: a PEM chain and private key are parsed, checked (the key
//! matches the leaf, the leaf is valid now, its names cover the hostnames asked for) and
//! turned into a rustls [`CertifiedKey`]; a [`server_config`] serves them by SNI through any
//! [`ResolvesServerCert`].
//!
//! One crypto provider (ring) is used everywhere; see [`provider`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;
use x509_cert::der::Decode as _;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

/// Why a certificate or key was refused. Each variant names the field of the request it is
/// about through [`Problem::field`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The chain is not PEM certificates, or the leaf is not a parsable X.509 certificate.
    #[error("the certificate is not a PEM X.509 chain: {0}")]
    Certificate(String),
    /// The key is not a PEM private key of a supported type.
    #[error("the private key is not a supported PEM key (PKCS#8, RSA or EC): {0}")]
    PrivateKey(String),
    /// The key is not the one the leaf certificate was issued for.
    #[error("the private key does not match the certificate")]
    KeyMismatch,
    /// The leaf is past its `notAfter`.
    #[error("the certificate expired at {0}")]
    Expired(String),
    /// The leaf's `notBefore` is in the future.
    #[error("the certificate is not valid before {0}")]
    NotYetValid(String),
    /// The leaf names no DNS host.
    #[error("the certificate names no DNS host in subjectAltName")]
    NoNames,
    /// A hostname asked for is not covered by the certificate's names.
    #[error("the certificate does not cover {0}")]
    NameNotCovered(String),
}

impl Problem {
    /// A short name of the rule that failed, for `details.constraint`.
    pub fn constraint(&self) -> &'static str {
        match self {
            Problem::Certificate(_) | Problem::PrivateKey(_) => "pem",
            Problem::KeyMismatch => "key_mismatch",
            Problem::Expired(_) => "expired",
            Problem::NotYetValid(_) => "not_yet_valid",
            Problem::NoNames => "no_dns_names",
            Problem::NameNotCovered(_) => "name_not_covered",
        }
    }

    /// The request field the problem is about.
    pub fn field(&self) -> &'static str {
        match self {
            Problem::PrivateKey(_) | Problem::KeyMismatch => "private_key",
            Problem::NameNotCovered(_) => "hostnames",
            _ => "certificate",
        }
    }
}

/// A checked certificate chain with its key.
#[derive(Debug, Clone)]
pub struct Certificate {
    /// What the leaf says.
    pub info: CertificateInfo,
    /// The chain and signing key, ready for rustls.
    pub key: Arc<CertifiedKey>,
}

/// What a leaf certificate says, for display and selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// DNS names of the subjectAltName extension, lower case (wildcards as `*.example.com`).
    pub names: Vec<String>,
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// SHA-256 of the leaf's DER, hex.
    pub fingerprint_sha256: String,
}

/// The process's crypto provider: ring, the one provider of the whole binary.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<CryptoProvider>> = std::sync::OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

/// Parses a PEM chain (leaf first) and a PEM private key, and checks that the key belongs
/// to the leaf. Validity in time and names are checked separately ([`Certificate::check`]),
/// so that a stored certificate can still be shown after it expires.
pub fn parse(chain_pem: &str, key_pem: &str) -> Result<Certificate, Problem> {
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Problem::Certificate(e.to_string()))?;
    let Some(leaf) = chain.first() else {
        return Err(Problem::Certificate("no CERTIFICATE block".into()));
    };
    let info = inspect(leaf)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| Problem::PrivateKey(e.to_string()))?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| Problem::PrivateKey(e.to_string()))?;
    let key = CertifiedKey::new(chain, signing);
    match key.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(Problem::KeyMismatch);
        }
        Err(err) => return Err(Problem::PrivateKey(err.to_string())),
    }
    Ok(Certificate {
        info,
        key: Arc::new(key),
    })
}

/// The DNS names of the leaf of a PEM chain.
pub fn names_of(chain_pem: &str) -> Result<Vec<String>, Problem> {
    let leaf = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .ok_or_else(|| Problem::Certificate("no CERTIFICATE block".into()))?
        .map_err(|e| Problem::Certificate(e.to_string()))?;
    Ok(inspect(&leaf)?.names)
}

impl Certificate {
    /// Checks that the leaf is valid at `now` and that its names cover every one of
    /// `hostnames`.
    pub fn check(&self, now: SystemTime, hostnames: &[String]) -> Result<(), Problem> {
        if now > self.info.not_after {
            return Err(Problem::Expired(rfc3339(self.info.not_after)));
        }
        if now < self.info.not_before {
            return Err(Problem::NotYetValid(rfc3339(self.info.not_before)));
        }
        match hostnames.iter().find(|host| !self.info.covers(host)) {
            Some(host) => Err(Problem::NameNotCovered(host.clone())),
            None => Ok(()),
        }
    }
}

impl CertificateInfo {
    /// Whether the certificate is valid for `host` (exact, or one label under a wildcard).
    /// A wildcard host asked for (`*.example.com`) is covered only by the same wildcard.
    pub fn covers(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.names.iter().any(|name| name_matches(name, &host))
    }
}

/// Whether certificate name `name` (lower case) matches `host` (lower case).
pub fn name_matches(name: &str, host: &str) -> bool {
    if name == host {
        return true;
    }
    match (name.strip_prefix("*."), host.split_once('.')) {
        (Some(suffix), Some((label, rest))) => !label.is_empty() && label != "*" && rest == suffix,
        _ => false,
    }
}

fn inspect(leaf: &CertificateDer<'_>) -> Result<CertificateInfo, Problem> {
    let cert = x509_cert::Certificate::from_der(leaf.as_ref()).map_err(|e| Problem::Certificate(e.to_string()))?;
    let tbs = &cert.tbs_certificate;
    let names: Vec<String> = match tbs.get::<SubjectAltName>() {
        Ok(Some((_, san))) => san
            .0
            .iter()
            .filter_map(|name| match name {
                GeneralName::DnsName(dns) => Some(dns.as_str().trim_end_matches('.').to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(Problem::Certificate(format!("subjectAltName: {e}"))),
    };
    if names.is_empty() {
        return Err(Problem::NoNames);
    }
    let at = |d: Duration| UNIX_EPOCH + d;
    Ok(CertificateInfo {
        names,
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        not_before: at(tbs.validity.not_before.to_unix_duration()),
        not_after: at(tbs.validity.not_after.to_unix_duration()),
        fingerprint_sha256: veloflux_secrets::sha256_hex(leaf.as_ref()),
    })
}

/// A server configuration with HTTP/2 and HTTP/1.1 by ALPN, certificates chosen by
/// `resolver`.
pub fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Result<ServerConfig, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// RFC 3339 UTC with seconds.
pub fn rfc3339(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (hour, minute, second) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm), valid for every date after 1970.
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(names: &[&str], days: (i32, i32)) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
        let today = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() / 86_400;
        let day = |offset: i32| {
            let (y, m, d) = civil(i64::try_from(today).unwrap() + i64::from(offset));
            rcgen::date_time_ymd(y, m, d)
        };
        params.not_before = day(days.0);
        params.not_after = day(days.1);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn civil(days: i64) -> (i32, u8, u8) {
        let date = rfc3339(UNIX_EPOCH + Duration::from_secs(u64::try_from(days).unwrap() * 86_400));
        (
            date[0..4].parse().unwrap(),
            date[5..7].parse().unwrap(),
            date[8..10].parse().unwrap(),
        )
    }

    #[test]
    fn a_matching_chain_and_key_are_accepted_with_their_names() {
        let (chain, key) = issue(&["App.Example.com", "*.example.org"], (-1, 30));
        let cert = parse(&chain, &key).unwrap();
        assert_eq!(cert.info.names, ["app.example.com", "*.example.org"]);
        assert_eq!(cert.info.fingerprint_sha256.len(), 64);
        let now = SystemTime::now();
        cert.check(now, &["app.example.com".into(), "shop.example.org".into()])
            .unwrap();
        assert_eq!(
            cert.check(now, &["a.b.example.org".into()]),
            Err(Problem::NameNotCovered("a.b.example.org".into()))
        );
        assert_eq!(
            cert.check(now, &["example.org".into()]).unwrap_err().field(),
            "hostnames"
        );
    }

    #[test]
    fn another_key_is_a_mismatch() {
        let (chain, _) = issue(&["a.example.com"], (-1, 30));
        let (_, other) = issue(&["a.example.com"], (-1, 30));
        assert_eq!(parse(&chain, &other).unwrap_err(), Problem::KeyMismatch);
    }

    #[test]
    fn expired_and_future_certificates_are_refused_by_the_check() {
        let (chain, key) = issue(&["a.example.com"], (-30, -2));
        let cert = parse(&chain, &key).unwrap();
        assert!(matches!(cert.check(SystemTime::now(), &[]), Err(Problem::Expired(_))));
        let (chain, key) = issue(&["a.example.com"], (3, 30));
        let cert = parse(&chain, &key).unwrap();
        assert!(matches!(
            cert.check(SystemTime::now(), &[]),
            Err(Problem::NotYetValid(_))
        ));
    }

    #[test]
    fn garbage_is_named_by_field() {
        let (chain, key) = issue(&["a.example.com"], (-1, 30));
        assert_eq!(parse("hello", &key).unwrap_err().field(), "certificate");
        assert_eq!(parse(&chain, "hello").unwrap_err().field(), "private_key");
        assert_eq!(parse(&key, &key).unwrap_err().field(), "certificate");
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(name_matches("*.example.com", "a.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(name_matches("*.example.com", "*.example.com"));
        assert!(!name_matches("a.example.com", "b.example.com"));
    }
}
