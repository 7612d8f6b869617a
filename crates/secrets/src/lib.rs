//! Secrets at rest and the small set of cryptographic tools the rest of VeloFlux uses:
//! the platform [`SecretKey`], sealing and opening secrets with it (AES-256-GCM), random
//! tokens, SHA-256 digests and HMAC signatures compared in constant time.
//!
//! Everything here uses `ring`, the crypto provider rustls already brings in, so the binary
//! carries one implementation. This crate does no logging and must not depend on the store,
//! the API or any feature crate.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// Failures of this crate. None of them carries secret material.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key is not 32 bytes of base64.
    #[error("the secret key must be 32 bytes encoded as base64")]
    BadKey,
    /// A sealed value could not be opened: wrong key, or the data was altered.
    #[error("a sealed secret could not be opened (wrong VELOFLUX_SECRET_KEY, or altered data)")]
    Unseal,
    /// The key file could not be read or written.
    #[error("secret key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The system random source failed.
    #[error("the system random number generator failed")]
    Random,
}

/// Prefix of sealed values, naming the scheme so that it can change later.
const SEALED_PREFIX: &str = "v1.";

/// The 256-bit key that protects secrets at rest.
pub struct SecretKey {
    key: LessSafeKey,
    raw: [u8; 32],
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

/// Where a key came from, so that the caller can warn when it was just generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Given explicitly (environment or configuration).
    Provided,
    /// Read from the key file of an earlier start.
    File,
    /// Generated now and written to the key file.
    Generated,
}

impl SecretKey {
    /// Decodes a base64 key of 32 bytes.
    pub fn from_base64(encoded: &str) -> Result<SecretKey, SecretError> {
        let bytes = STANDARD.decode(encoded.trim()).map_err(|_| SecretError::BadKey)?;
        SecretKey::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<SecretKey, SecretError> {
        if bytes.len() != 32 {
            return Err(SecretError::BadKey);
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SecretError::BadKey)?;
        let raw: [u8; 32] = bytes.try_into().map_err(|_| SecretError::BadKey)?;
        Ok(SecretKey {
            key: LessSafeKey::new(key),
            raw,
        })
    }

    /// Reads the key from `file`, or generates one there (mode 0600) when it does not exist.
    pub fn load_or_generate(file: &Path) -> Result<(SecretKey, KeyOrigin), SecretError> {
        let io = |source| SecretError::KeyFile {
            path: file.display().to_string(),
            source,
        };
        match std::fs::read_to_string(file) {
            Ok(text) => Ok((SecretKey::from_base64(&text)?, KeyOrigin::File)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                SystemRandom::new().fill(&mut bytes).map_err(|_| SecretError::Random)?;
                if let Some(dir) = file.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                write_private(file, STANDARD.encode(bytes).as_bytes()).map_err(io)?;
                Ok((SecretKey::from_bytes(&bytes)?, KeyOrigin::Generated))
            }
            Err(err) => Err(io(err)),
        }
    }

    /// A key for another purpose, derived from this one (HMAC-SHA256 of `purpose`), so that
    /// one secret protects several things without reusing key material.
    pub fn derive(&self, purpose: &[u8]) -> Vec<u8> {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.raw);
        ring::hmac::sign(&key, purpose).as_ref().to_vec()
    }

    /// Encrypts `plaintext`; the result is text safe to store in any column.
    pub fn seal(&self, plaintext: &[u8]) -> Result<String, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| SecretError::Random)?;
        let mut buffer = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buffer)
            .map_err(|_| SecretError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buffer);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(out)))
    }

    /// Decrypts what [`SecretKey::seal`] produced; fails if the key differs or the data was
    /// altered.
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, SecretError> {
        let encoded = sealed.strip_prefix(SEALED_PREFIX).ok_or(SecretError::Unseal)?;
        let mut bytes = STANDARD.decode(encoded).map_err(|_| SecretError::Unseal)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretError::Unseal);
        }
        let mut body = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| SecretError::Unseal)?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut body)
            .map_err(|_| SecretError::Unseal)?;
        Ok(plain.to_vec())
    }
}

#[cfg(unix)]
fn write_private(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut handle = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)?;
    handle.write_all(bytes)?;
    handle.sync_all()
}

#[cfg(not(unix))]
fn write_private(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(file, bytes)
}

/// `bytes` random bytes as unpadded base64url: for tokens, ids and nonces.
pub fn random_token(bytes: usize) -> Result<String, SecretError> {
    let mut buffer = vec![0u8; bytes];
    SystemRandom::new().fill(&mut buffer).map_err(|_| SecretError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(buffer))
}

/// SHA-256 of `data` as lower-case hex: how bearer secrets (refresh tokens, magic links) are
/// stored, so that a leaked database does not leak usable tokens.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// SHA-256 of `data` as unpadded base64url (PKCE's S256 challenge).
pub fn sha256_base64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// HMAC-SHA256 of `body` with `secret`, as lower-case hex.
pub fn hmac_sha256_hex(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    hex(ring::hmac::sign(&key, body).as_ref())
}

/// Checks a hex HMAC-SHA256 signature in constant time.
pub fn verify_hmac_sha256_hex(secret: &[u8], body: &[u8], signature_hex: &str) -> bool {
    let Some(signature) = unhex(signature_hex) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::verify(&key, body, &signature).is_ok()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::from_base64(&STANDARD.encode([7u8; 32])).unwrap()
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_unaltered() {
        let sealed = key().seal(b"client-secret").unwrap();
        assert!(sealed.starts_with("v1.") && !sealed.contains("client-secret"));
        assert_eq!(key().open(&sealed).unwrap(), b"client-secret");
        assert_ne!(
            key().seal(b"client-secret").unwrap(),
            sealed,
            "each seal uses a fresh nonce"
        );

        let other = SecretKey::from_base64(&STANDARD.encode([8u8; 32])).unwrap();
        assert!(matches!(other.open(&sealed), Err(SecretError::Unseal)));
        let mut altered = sealed.clone();
        altered.replace_range(10..11, if &sealed[10..11] == "A" { "B" } else { "A" });
        assert!(matches!(key().open(&altered), Err(SecretError::Unseal)));
    }

    #[test]
    fn keys_must_be_32_bytes() {
        assert!(matches!(SecretKey::from_base64("c2hvcnQ="), Err(SecretError::BadKey)));
        assert!(matches!(
            SecretKey::from_base64("not base64!"),
            Err(SecretError::BadKey)
        ));
    }

    #[test]
    fn a_generated_key_file_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys/secret.key");
        let (first, origin) = SecretKey::load_or_generate(&file).unwrap();
        assert_eq!(origin, KeyOrigin::Generated);
        let sealed = first.seal(b"x").unwrap();
        let (second, origin) = SecretKey::load_or_generate(&file).unwrap();
        assert_eq!(origin, KeyOrigin::File);
        assert_eq!(second.open(&sealed).unwrap(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn digests_and_signatures_match_known_values() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // RFC 7636 appendix B.
        assert_eq!(
            sha256_base64url(b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        // RFC 4231 test case 2.
        let mac = hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(mac, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(verify_hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?", &mac));
        assert!(!verify_hmac_sha256_hex(b"Jefe", b"tampered", &mac));
        assert!(!verify_hmac_sha256_hex(b"Jefe", b"x", "zz"));
    }

    #[test]
    fn random_tokens_are_unique_and_url_safe() {
        let a = random_token(32).unwrap();
        assert_eq!(a.len(), 43);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(a, random_token(32).unwrap());
    }
}
