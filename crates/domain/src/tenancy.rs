use std::fmt;

use crate::Invalid;

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Parses the wire form (lower case, as the seeds write it).
            pub fn parse(raw: &str) -> Result<Self, Invalid> {
                match raw.trim() {
                    $($text => Ok($name::$variant),)+
                    other => Err(Invalid::new(
                        "one_of",
                        format!(concat!("unknown ", $what, " \"{}\"; expected one of: {}"), other, [$($text),+].join(", ")),
                    )),
                }
            }

            /// The wire form.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// A user's role inside one tenant, from most to least powerful.
    Role, "role" {
        /// Owns the tenant: everything, including deleting it and managing billing.
        Owner => "owner",
        /// Manages the tenant's users and configuration.
        Admin => "admin",
        /// Uses and changes the tenant's resources.
        Member => "member",
        /// Reads only.
        Viewer => "viewer",
    }
);

text_enum!(
    /// A platform-wide role, above every tenant.
    PlatformRole, "platform role" {
        /// Operates the whole installation: every tenant, every user.
        Admin => "admin",
    }
);

text_enum!(
    /// The commercial plan of a tenant; it sets rate limits and quotas.
    Plan, "plan" {
        /// The default plan of a new tenant.
        Free => "free",
        /// Paid plan for teams.
        Professional => "professional",
        /// Paid plan with the highest limits.
        Enterprise => "enterprise",
    }
);

text_enum!(
    /// Whether a tenant may use the platform.
    TenantStatus, "tenant status" {
        /// Normal operation.
        Active => "active",
        /// Blocked by an operator or for non-payment; data is kept.
        Suspended => "suspended",
    }
);

/// A tenant's display name: 1 to 100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantName(String);

impl TenantName {
    /// Validates and trims the name.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(Invalid::new("required", "name is required"));
        }
        if text.chars().count() > 100 {
            return Err(Invalid::new("max_length", "name must be at most 100 characters"));
        }
        if text.chars().any(char::is_control) {
            return Err(Invalid::new("format", "name must not contain control characters"));
        }
        Ok(Self(text.to_owned()))
    }

    /// The trimmed name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_and_name_the_choices_on_error() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Ok(*role));
        }
        let err = Plan::parse("gold").unwrap_err();
        assert_eq!(
            err.message,
            "unknown plan \"gold\"; expected one of: free, professional, enterprise"
        );
    }

    #[test]
    fn tenant_names_are_trimmed_and_bounded() {
        assert_eq!(TenantName::parse("  Empresa XYZ ").unwrap().as_str(), "Empresa XYZ");
        assert_eq!(TenantName::parse("").unwrap_err().constraint, "required");
        assert_eq!(
            TenantName::parse(&"a".repeat(101)).unwrap_err().constraint,
            "max_length"
        );
        assert_eq!(TenantName::parse("a\u{0}b").unwrap_err().constraint, "format");
    }
}
