use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use veloflux_domain::Password;

/// argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane).
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("invariant: argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string (`$argon2id$v=19$...`), off the async threads.
pub async fn hash_password(password: Password) -> Result<String, argon2::password_hash::Error> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|hash| hash.to_string())
    })
    .await
    .unwrap_or(Err(argon2::password_hash::Error::Crypto))
}

/// Checks `candidate` against a stored PHC string, in constant time, off the async threads.
pub async fn verify_password(candidate: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc)
            .map(|parsed| hasher().verify_password(candidate.as_bytes(), &parsed).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Checks and hashes the optional `password` field of a request; without one the account
/// signs in by magic link or OIDC.
pub(crate) async fn hash_requested_password(raw: Option<&str>) -> Result<Option<String>, veloflux_api::ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let password = Password::parse(raw).map_err(|e| veloflux_api::ApiError::invalid("password", &e))?;
    hash_password(password)
        .await
        .map(Some)
        .map_err(veloflux_api::ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verifiable() {
        let password = Password::parse("senha_segura").unwrap();
        let first = hash_password(password.clone()).await.unwrap();
        let second = hash_password(password).await.unwrap();
        assert!(first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{first}");
        assert_ne!(first, second, "each hash has its own salt");
        assert!(verify_password("senha_segura".into(), first.clone()).await);
        assert!(!verify_password("senha_errada".into(), first).await);
        assert!(!verify_password("x".into(), "not a hash".into()).await);
    }
}
