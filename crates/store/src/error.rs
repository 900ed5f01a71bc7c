//! The store's error: one opaque [`StoreError`] that says *what kind* of failure it is
//! ([`StoreError::kind`]) and keeps the backend's own error as its [`source`](Error::source).
//!
//! Callers act on the kind (`err.kind() == StoreErrorKind::UserExists`) and never see a
//! backend type, so the server and the CLI do not change when a backend is added or its
//! driver is upgraded. The backend's error stays reachable through `source()` for logs and for
//! whoever really needs to downcast it.
//!
//! Messages never contain secrets: no hashes, no tokens, no bound values, no connection
//! strings (a URL may carry a password, so only its scheme is ever named).

use std::borrow::Cow;
use std::error::Error;
use std::fmt;

/// A boxed error of any backend, as kept in [`StoreError`].
type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// What can go wrong in a [`Store`](crate::Store) or in [`open`](crate::open).
///
/// Match on [`kind`](Self::kind); the `Display` text is for people and may change.
pub struct StoreError {
    kind: StoreErrorKind,
    /// More words for the message, never a secret (see the module docs).
    detail: Option<Cow<'static, str>>,
    /// The backend's error, if the failure came from the backend.
    source: Option<BoxError>,
}

/// The kinds of [`StoreError`]: the cases callers act on, plus broad classes for the rest.
///
/// Non-exhaustive: backends may need new kinds, and matching code must keep a `_` arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// `create_user` found a user with that name, or with one that looks the same (the same
    /// [`name_key`](crate::name_key)), already.
    UserExists,
    /// `remember_name` found another address holding that name, or one that looks the same.
    NameTaken,
    /// [`open_existing`](crate::open_existing) found no database where it looked; the detail
    /// names the place (an absolute path, never a URL's password).
    NoDatabase,
    /// `create_session` named a user that does not exist.
    NotFound,
    /// `create_session` found the token hash already stored: a token was reused.
    SessionExists,
    /// The database failed: it cannot be opened, refuses the connection (a wrong password, a
    /// database that does not exist), stays locked past the busy timeout, the disk is full, the
    /// store was closed...
    Database,
    /// The database cannot be reached right now: a database server (PostgreSQL) is down,
    /// unreachable, restarting or out of connections, or dropped the connection. Trying again
    /// later may succeed, and a store reconnects by itself once it is back; the server tells
    /// the client to try again later and goes on serving the others.
    Unavailable,
    /// Bringing the schema up to date at open failed, or the database has a schema this build
    /// does not know (written by a newer Porter, or its applied migrations were altered).
    Migration,
    /// A stored value cannot be read back (for example an address that does not parse).
    Corrupt,
    /// [`open`](crate::open) was given a URL whose backend this build does not have.
    UnsupportedBackend,
}

impl StoreErrorKind {
    /// The message for this kind, before any detail.
    fn message(self) -> &'static str {
        match self {
            StoreErrorKind::UserExists => "a user with that name already exists",
            StoreErrorKind::NameTaken => "another address has taken that name",
            StoreErrorKind::NoDatabase => "no database found",
            StoreErrorKind::NotFound => "no such user",
            StoreErrorKind::SessionExists => "a session with that token already exists",
            StoreErrorKind::Database => "database error",
            StoreErrorKind::Unavailable => "the database cannot be reached",
            StoreErrorKind::Migration => "database schema migration failed",
            StoreErrorKind::Corrupt => "stored data is corrupt",
            StoreErrorKind::UnsupportedBackend => "unsupported database backend",
        }
    }
}

impl StoreError {
    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// An error of `kind` with no more to say.
    pub(crate) fn new(kind: StoreErrorKind) -> Self {
        StoreError {
            kind,
            detail: None,
            source: None,
        }
    }

    /// An error of `kind` with `detail` appended to its message. The detail must not carry a
    /// secret or a bound value.
    pub(crate) fn with_detail(kind: StoreErrorKind, detail: impl Into<Cow<'static, str>>) -> Self {
        StoreError {
            detail: Some(detail.into()),
            ..StoreError::new(kind)
        }
    }

    /// An error of `kind` caused by the backend's `source`.
    pub(crate) fn with_source(kind: StoreErrorKind, source: impl Into<BoxError>) -> Self {
        StoreError {
            source: Some(source.into()),
            ..StoreError::new(kind)
        }
    }

    /// An error of `kind` with `detail` appended to its message, caused by the backend's
    /// `source`. The detail must not carry a secret or a bound value.
    pub(crate) fn with_source_detail(
        kind: StoreErrorKind,
        detail: impl Into<Cow<'static, str>>,
        source: impl Into<BoxError>,
    ) -> Self {
        StoreError {
            detail: Some(detail.into()),
            source: Some(source.into()),
            kind,
        }
    }

    /// A [`StoreErrorKind::Database`] error caused by `source`; handy for `map_err`.
    pub(crate) fn database(source: impl Into<BoxError>) -> Self {
        StoreError::with_source(StoreErrorKind::Database, source)
    }
}

impl fmt::Display for StoreError {
    /// The kind's message and the detail, if any; not the source, which error reporters
    /// (`anyhow`'s `{:#}`, `tracing`) walk on their own.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.message())?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("StoreError");
        debug.field("kind", &self.kind);
        if let Some(detail) = &self.detail {
            debug.field("detail", detail);
        }
        if let Some(source) = &self.source {
            debug.field("source", source);
        }
        debug.finish()
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|source| source as _)
    }
}

impl From<StoreErrorKind> for StoreError {
    fn from(kind: StoreErrorKind) -> Self {
        StoreError::new(kind)
    }
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_the_kind_then_the_detail_without_the_source() {
        let plain = StoreError::new(StoreErrorKind::UserExists);
        assert_eq!(plain.to_string(), "a user with that name already exists");
        assert!(plain.source().is_none());

        let detailed = StoreError::with_detail(StoreErrorKind::Corrupt, "token hash is short");
        assert_eq!(
            detailed.to_string(),
            "stored data is corrupt: token hash is short"
        );

        let cause = std::io::Error::other("disk on fire");
        let caused = StoreError::database(cause);
        assert_eq!(caused.kind(), StoreErrorKind::Database);
        assert_eq!(caused.to_string(), "database error");
        assert_eq!(caused.source().unwrap().to_string(), "disk on fire");
        assert!(format!("{caused:?}").contains("disk on fire"));
    }

    #[test]
    fn store_error_can_cross_threads_and_into_anyhow_style_boxes() {
        fn takes(_: BoxError) {}
        takes(Box::new(StoreError::new(StoreErrorKind::NotFound)));
    }
}
