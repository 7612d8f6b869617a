use std::fmt;

use crate::Invalid;

/// An e-mail address, trimmed and lower-cased so that one person has one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Accepts `local@domain` where the domain has at least one dot (or is `localhost`), no
    /// spaces or control characters, at most 254 characters in all (RFC 5321's limit).
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let text = raw.trim().to_lowercase();
        if text.is_empty() {
            return Err(Invalid::new("required", "email is required"));
        }
        if text.len() > 254 {
            return Err(Invalid::new("max_length", "email must be at most 254 characters"));
        }
        let bad = || Invalid::new("format", "email must look like name@example.com");
        let (local, domain) = text.rsplit_once('@').ok_or_else(bad)?;
        let well_formed = !local.is_empty()
            && local.len() <= 64
            && !domain.is_empty()
            && (domain.contains('.') || domain == "localhost")
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !text
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
            && !local.contains('@');
        if !well_formed {
            return Err(bad());
        }
        Ok(Self(text))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_whitespace() {
        assert_eq!(
            Email::parse("  Maria@Exemplo.COM ").unwrap().as_str(),
            "maria@exemplo.com"
        );
    }

    #[test]
    fn rejects_malformed_addresses() {
        for raw in [
            "maria",
            "@exemplo.com",
            "maria@",
            "maria@exemplo",
            "ma ria@x.com",
            "a@b@c.com",
            "a@.com",
            "a@x..com",
        ] {
            assert_eq!(Email::parse(raw).unwrap_err().constraint, "format", "{raw}");
        }
        assert_eq!(Email::parse(" ").unwrap_err().constraint, "required");
    }
}
