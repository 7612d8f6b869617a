use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::Invalid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A new identifier. UUIDv7 ids sort by creation time, which keeps cursor
            /// pagination stable and indexes append-only.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Parses the canonical hyphenated form.
            pub fn parse(raw: &str) -> Result<Self, Invalid> {
                Uuid::try_parse(raw.trim())
                    .map(Self)
                    .map_err(|_| Invalid::new("format", concat!("not a valid ", $what, " id")))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = Invalid;
            fn from_str(raw: &str) -> Result<Self, Invalid> {
                Self::parse(raw)
            }
        }
    };
}

id_type!(
    /// Identifies a tenant: the unit of isolation, billing and configuration.
    TenantId,
    "tenant"
);
id_type!(
    /// Identifies a user account; one account may belong to several tenants.
    UserId,
    "user"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let id = TenantId::new();
        assert_eq!(TenantId::parse(&id.to_string()), Ok(id));
    }

    #[test]
    fn rejects_malformed_ids() {
        let err = UserId::parse("user_123").unwrap_err();
        assert_eq!(err.constraint, "format");
        assert_eq!(err.message, "not a valid user id");
    }

    #[test]
    fn later_ids_sort_after_earlier_ones() {
        let a = TenantId::new();
        let b = TenantId::new();
        assert!(a.to_string() < b.to_string());
    }
}
