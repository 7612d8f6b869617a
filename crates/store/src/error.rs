use std::error::Error as StdError;

/// What can go wrong in the store. sqlx's error type does not cross this boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist (or belongs to another tenant).
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated; `constraint` names the rule when the database says.
    #[error("conflict with existing data ({constraint})")]
    Conflict {
        /// Name of the violated constraint or index, or `unknown`.
        constraint: String,
    },
    /// A stored value could not be read back as its type: the database holds data this
    /// version does not understand.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Applying migrations failed.
    #[error("migration failed")]
    Migration(#[source] Box<dyn StdError + Send + Sync>),
    /// The database could not be reached or answered with an error.
    #[error("database error")]
    Database(#[source] Box<dyn StdError + Send + Sync>),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
                constraint: db.constraint().unwrap_or("unknown").to_owned(),
            },
            other => StoreError::Database(Box::new(other)),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migration(Box::new(err))
    }
}

/// Maps a failure to read a stored value back into `StoreError::Corrupt` naming the value.
pub(crate) fn corrupt<E>(what: &'static str) -> impl FnOnce(E) -> StoreError {
    move |_| StoreError::Corrupt(what.to_owned())
}
