//! The store's typed errors: the cases callers act on get their own variant, the rest is
//! [`StoreError::Database`]. Messages never contain secrets (no hashes, no bound values).

/// What can go wrong in a [`Store`](crate::Store).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `create_user` found a user with that name already.
    #[error("a user with that name already exists")]
    UserExists,
    /// The user a session was created for does not exist.
    #[error("no such user")]
    NotFound,
    /// `create_session` found the token hash already stored: a token was reused.
    #[error("a session with that token already exists")]
    SessionExists,
    /// The database failed: cannot open, stays locked past the busy timeout, disk full, closed...
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// Applying the schema migrations at open failed (or the file has a newer/unknown schema).
    #[error("database schema migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A stored value cannot be read back (for example an address that does not parse).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        StoreError::Database(err)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(err)
    }
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
