use std::fmt;

/// Why a raw value was rejected: a machine-readable constraint and a sentence for people.
///
/// The caller knows which field the value came from and attaches it when it reports the
/// error (the API puts it in `details.field`, the configuration loader names the key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Invalid {
    /// Short identifier of the rule that failed, e.g. `required`, `format`, `min_length`.
    pub constraint: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl Invalid {
    /// Builds a rejection for `constraint` with an explanation.
    pub fn new(constraint: &'static str, message: impl Into<String>) -> Self {
        Self {
            constraint,
            message: message.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
