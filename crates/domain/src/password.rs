use std::fmt;

use crate::Invalid;

/// The most common passwords in public breach corpora, lower-cased. A password equal to one
/// of these (ignoring case) is refused whatever its length.
const COMMON: &[&str] = &[
    "password",
    "password1",
    "password123",
    "12345678",
    "123456789",
    "1234567890",
    "qwertyuiop",
    "qwerty123",
    "iloveyou",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "welcome1",
    "admin123",
    "letmein1",
    "trustno1",
    "11111111",
    "00000000",
    "abc12345",
    "passw0rd",
    "superman",
    "starwars",
    "whatever",
    "qwerty12",
    "1q2w3e4r",
    "1qaz2wsx",
    "zaq12wsx",
    "senha123",
    "senha1234",
    "mudar123",
    "changeme",
    "changeme1",
    "administrator",
    "p@ssw0rd",
    "12341234",
    "87654321",
    "asdfghjk",
    "asdfasdf",
    "computer",
    "internet",
    "michelle",
    "jennifer",
    "12121212",
    "aaaaaaaa",
    "veloflux",
    "veloflux1",
];

/// A password that satisfies the account policy. It never prints its contents.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Minimum length in characters (NIST SP 800-63B's floor for user-chosen secrets).
    pub const MIN_LEN: usize = 8;
    /// Maximum length in characters; bounds the hashing cost an attacker can ask for.
    pub const MAX_LEN: usize = 128;

    /// Checks the policy: length within bounds and not a well-known password.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let chars = raw.chars().count();
        if chars == 0 {
            return Err(Invalid::new("required", "password is required"));
        }
        if chars < Self::MIN_LEN {
            return Err(Invalid::new(
                "min_length",
                format!("password must be at least {} characters", Self::MIN_LEN),
            ));
        }
        if chars > Self::MAX_LEN {
            return Err(Invalid::new(
                "max_length",
                format!("password must be at most {} characters", Self::MAX_LEN),
            ));
        }
        if COMMON.contains(&raw.to_lowercase().as_str()) {
            return Err(Invalid::new(
                "common_password",
                "this password is too common; choose another",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The secret itself, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enforces_length_and_common_passwords() {
        assert_eq!(Password::parse("").unwrap_err().constraint, "required");
        assert_eq!(Password::parse("short").unwrap_err().constraint, "min_length");
        assert_eq!(Password::parse(&"x".repeat(129)).unwrap_err().constraint, "max_length");
        assert_eq!(
            Password::parse("Password123").unwrap_err().constraint,
            "common_password"
        );
        assert!(Password::parse("senha_segura").is_ok());
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let password = Password::parse("correct horse battery").unwrap();
        assert_eq!(format!("{password:?}"), "Password(***)");
    }
}
