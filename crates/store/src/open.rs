//! [`open`]: from what the administrator typed (`--db`) to a [`SharedStore`], so no caller
//! names a backend type.

use std::ffi::OsStr;
use std::path::Path;

use crate::{
    PgOptions, PgStore, Result, SharedStore, SqliteOptions, SqliteStore, StoreError, StoreErrorKind,
};

/// Opens the store at `location`, picking the backend from its form, and applies pending
/// schema migrations.
///
/// Accepted forms:
/// - a plain file path (`porter.db`, `/var/lib/porter/porter.db`): an SQLite database file,
///   as [`SqliteStore::open`] opens it (created if missing, WAL, `synchronous=FULL`);
/// - `sqlite://PATH` or `sqlite:PATH`: the same, with everything after the prefix taken
///   literally as the path (no percent-decoding, no query parameters), so
///   `sqlite:///var/lib/porter.db` is an absolute path and `sqlite://porter.db` a relative one;
/// - `sqlite::memory:` (or `sqlite://:memory:`): a private in-memory SQLite database that
///   lives as long as the store (see [`SqliteStore::open_in_memory`]);
/// - `postgres://...` or `postgresql://...`: a PostgreSQL database, in libpq's URL form
///   (`postgres://USER:PASSWORD@HOST:PORT/DATABASE?PARAMETERS`), as [`PgStore::open`] opens
///   it. The database must exist; Porter's tables are created in the first schema of the
///   `search_path`, which the URL can set (see the [`postgres`](crate::postgres) module).
///
/// Schemes are case-insensitive. A scheme is only recognised as `NAME://` (or `sqlite:`), so
/// a path such as `C:\porter.db` or `./a:b.db` stays a path. A non-UTF-8 location can only be
/// a path.
///
/// # Errors
/// [`StoreErrorKind::UnsupportedBackend`] for any other `NAME://`; the message names the
/// scheme but never repeats the URL, which may carry a password. Otherwise as
/// [`SqliteStore::open`] or [`PgStore::open`]: [`StoreErrorKind::Database`],
/// [`StoreErrorKind::Migration`], or (PostgreSQL down or unreachable)
/// [`StoreErrorKind::Unavailable`].
pub async fn open(location: impl AsRef<OsStr>) -> Result<SharedStore> {
    // One non-generic body, whatever string or path type the caller has.
    open_location(location.as_ref(), true).await
}

/// Like [`open`], but only a database that exists: nothing is created.
///
/// For the admin commands, which work on the server's database and must not leave an empty
/// one behind when pointed at the wrong place (the server creates its database with
/// [`open`]). An in-memory database always exists. A PostgreSQL database counts as existing
/// once a server has created Porter's tables in it.
///
/// # Errors
/// [`StoreErrorKind::NoDatabase`] when there is no database at `location` (its detail is the
/// absolute path looked at, or the URL without its password); otherwise as [`open`].
pub async fn open_existing(location: impl AsRef<OsStr>) -> Result<SharedStore> {
    open_location(location.as_ref(), false).await
}

async fn open_location(location: &OsStr, create_if_missing: bool) -> Result<SharedStore> {
    Ok(match Backend::of(location)? {
        Backend::SqliteFile(path) => {
            let options = SqliteOptions {
                create_if_missing,
                ..SqliteOptions::default()
            };
            SqliteStore::open_with(path, &options).await?.shared()
        }
        Backend::SqliteMemory => SqliteStore::open_in_memory().await?.shared(),
        Backend::Postgres(url) => {
            let options = PgOptions {
                create_if_missing,
                ..PgOptions::default()
            };
            PgStore::open_with(url, &options).await?.shared()
        }
    })
}

/// Where [`open`] goes for a location.
#[derive(Debug, PartialEq, Eq)]
enum Backend<'a> {
    SqliteFile(&'a Path),
    SqliteMemory,
    /// The whole URL, scheme included, as sqlx parses it.
    Postgres(&'a str),
}

impl<'a> Backend<'a> {
    fn of(location: &'a OsStr) -> Result<Self> {
        let Some(text) = location.to_str() else {
            return Ok(Backend::SqliteFile(Path::new(location)));
        };
        if let Some((scheme, rest)) = split_url(text) {
            return match scheme.to_ascii_lowercase().as_str() {
                "sqlite" => Ok(Backend::sqlite(rest)),
                "postgres" | "postgresql" => Ok(Backend::Postgres(text)),
                _ => Err(StoreError::with_detail(
                    StoreErrorKind::UnsupportedBackend,
                    format!(
                        "unknown scheme {scheme:?}; use a file path, sqlite://PATH or \
                         postgres://URL"
                    ),
                )),
            };
        }
        if let Some(prefix) = text.get(.."sqlite:".len())
            && prefix.eq_ignore_ascii_case("sqlite:")
        {
            return Ok(Backend::sqlite(&text["sqlite:".len()..]));
        }
        Ok(Backend::SqliteFile(Path::new(location)))
    }

    /// The SQLite database named by what follows `sqlite:` or `sqlite://`.
    fn sqlite(rest: &'a str) -> Self {
        // `sqlite::memory:` is sqlx's and SQLite's own spelling of an in-memory database.
        if rest == ":memory:" {
            Backend::SqliteMemory
        } else {
            Backend::SqliteFile(Path::new(rest))
        }
    }
}

/// `location` as it is safe to show in a message or a log: a URL with its password (in the
/// user info or as a `password=` query parameter) replaced by `***`, anything else (a path,
/// an `sqlite:` URL) as it is, non-UTF-8 bytes shown as `\u{FFFD}`.
///
/// For callers that name the location in their own messages, such as "cannot open the
/// database ...": a PostgreSQL URL may carry a password, which must reach neither the
/// terminal nor a log file.
pub fn redact_location(location: impl AsRef<OsStr>) -> String {
    let text = location.as_ref().to_string_lossy();
    let Some((scheme, rest)) = split_url(&text) else {
        return text.into_owned();
    };
    if scheme.eq_ignore_ascii_case("sqlite") {
        // The rest is a file path: nothing secret, and `@` or `:` in it are just characters.
        return text.into_owned();
    }
    // Passwords are not always percent-encoded as they should be, so a `/`, `#` or `@` may be
    // part of one: the user info is everything before the *last* `@`, and everything after
    // its first `:` is hidden. At worst that hides more than the password, never less.
    let mut shown = format!("{scheme}://");
    let host_and_rest = match rest.rfind('@') {
        Some(at) => {
            let user_info = &rest[..at];
            match user_info.split_once(':') {
                Some((user, _)) => {
                    shown.push_str(user);
                    shown.push_str(":***");
                }
                None => shown.push_str(&redact_password_parameters(user_info)),
            }
            shown.push('@');
            &rest[at + 1..]
        }
        None => rest,
    };
    shown.push_str(&redact_password_parameters(host_and_rest));
    shown
}

/// `text` with the value of every `password=` query parameter (after `?` or `&`, any case)
/// replaced by `***`, up to the next `&`.
fn redact_password_parameters(text: &str) -> String {
    const KEY: &str = "password=";
    let mut shown = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(['?', '&']) {
        let (before, from_separator) = rest.split_at(start + 1);
        shown.push_str(before);
        rest = from_separator;
        if rest
            .get(..KEY.len())
            .is_some_and(|key| key.eq_ignore_ascii_case(KEY))
        {
            shown.push_str(&rest[..KEY.len()]);
            shown.push_str("***");
            rest = &rest[rest.find('&').unwrap_or(rest.len())..];
        }
    }
    shown.push_str(rest);
    shown
}

/// `text` split into scheme and what follows `://`, if it is a URL of the form `NAME://...`.
fn split_url(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once("://")?;
    is_scheme(scheme).then_some((scheme, rest))
}

/// Whether `s` is a URL scheme as RFC 3986 spells it: a letter, then letters, digits, `+`,
/// `-` or `.`.
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(location: &str) -> Backend<'_> {
        Backend::of(OsStr::new(location)).unwrap()
    }

    fn refusal(location: &str) -> String {
        let err = Backend::of(OsStr::new(location)).unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::UnsupportedBackend, "{err:?}");
        err.to_string()
    }

    #[test]
    fn paths_and_sqlite_urls_open_sqlite_files() {
        let file = |p: &'static str| Backend::SqliteFile(Path::new(p));
        assert_eq!(backend("porter.db"), file("porter.db"));
        assert_eq!(backend("/var/lib/porter.db"), file("/var/lib/porter.db"));
        assert_eq!(
            backend("sqlite:///var/lib/porter.db"),
            file("/var/lib/porter.db")
        );
        assert_eq!(backend("sqlite://porter.db"), file("porter.db"));
        assert_eq!(backend("SQLite://porter.db"), file("porter.db"));
        assert_eq!(backend("sqlite:porter.db"), file("porter.db"));
        assert_eq!(backend("sqlite:/abs/p.db"), file("/abs/p.db"));
        assert_eq!(backend("sqlite::memory:"), Backend::SqliteMemory);
        assert_eq!(backend("sqlite://:memory:"), Backend::SqliteMemory);
    }

    #[test]
    fn only_a_real_scheme_before_colon_slash_slash_is_a_url() {
        let file = |p: &'static str| Backend::SqliteFile(Path::new(p));
        assert_eq!(backend(r"C:\porter.db"), file(r"C:\porter.db"));
        assert_eq!(backend("./a://b.db"), file("./a://b.db"));
        assert_eq!(backend("dir/x://y"), file("dir/x://y"));
        assert_eq!(backend("1x://y"), file("1x://y"));
        assert_eq!(backend("a:b.db"), file("a:b.db"));
        assert_eq!(backend(""), file(""));
    }

    #[cfg(unix)]
    #[test]
    fn a_non_utf8_location_is_a_path() {
        use std::os::unix::ffi::OsStrExt as _;
        let raw = OsStr::from_bytes(b"porter-\xff.db");
        assert_eq!(
            Backend::of(raw).unwrap(),
            Backend::SqliteFile(Path::new(raw))
        );
    }

    #[test]
    fn postgres_urls_open_postgres_with_the_whole_url() {
        for url in [
            "postgres://porter:s3cret@db.example/porter",
            "postgresql://porter@db.example:5433/porter?options[search_path]=porter",
            "PostgreSQL://db.example/porter",
        ] {
            assert_eq!(backend(url), Backend::Postgres(url));
        }
    }

    /// What the admin commands say when PostgreSQL is not there: that it cannot be reached,
    /// quickly, and never the password. Port 1 on loopback: nobody listens there.
    #[tokio::test]
    async fn an_unreachable_postgres_is_unavailable_and_its_password_is_not_told() {
        let started = std::time::Instant::now();
        let err = match open_existing("postgres://porter:s3cret@127.0.0.1:1/porter").await {
            Ok(_) => panic!("opened a database nobody serves"),
            Err(err) => err,
        };
        assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err:?}");
        assert!(
            started.elapsed() < crate::postgres::DEFAULT_ACQUIRE_TIMEOUT * 2,
            "took {:?}",
            started.elapsed()
        );
        let mut chain = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            chain.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        assert!(chain.contains("cannot be reached"), "{chain}");
        assert!(!chain.contains("s3cret"), "{chain}");
        assert!(!format!("{err:?}").contains("s3cret"), "{err:?}");
    }

    #[test]
    fn other_schemes_are_named_and_the_rest_of_the_url_is_not() {
        let message = refusal("mysql://porter:s3cret@db.example/porter");
        assert!(message.contains("unknown scheme \"mysql\""), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
        assert!(refusal("file:///tmp/porter.db").contains("\"file\""));
    }

    #[test]
    fn passwords_in_urls_are_redacted_for_display_and_the_rest_is_kept() {
        let cases = [
            (
                "postgres://porter:s3cret@db.example:5432/porter",
                "postgres://porter:***@db.example:5432/porter",
            ),
            (
                "postgresql://porter:p@ss:w@rd@db/porter?sslmode=require",
                "postgresql://porter:***@db/porter?sslmode=require",
            ),
            (
                "postgres://db/porter?user=porter&PASSWORD=s3cret&sslmode=require",
                "postgres://db/porter?user=porter&PASSWORD=***&sslmode=require",
            ),
            (
                "postgres://porter:pa#ss/w@db/porter",
                "postgres://porter:***@db/porter",
            ),
            (
                "postgres://db/porter?password=a&password=b",
                "postgres://db/porter?password=***&password=***",
            ),
            (
                "postgres://db/porter?app=a@b&password=s3cret",
                "postgres://db/porter?app=a@b&password=***",
            ),
            ("postgres://porter@db/porter", "postgres://porter@db/porter"),
            ("postgres://db", "postgres://db"),
            ("porter.db", "porter.db"),
            ("no/such/folder/porter.db", "no/such/folder/porter.db"),
            ("sqlite://a:b@c.db", "sqlite://a:b@c.db"),
            ("sqlite:x.db", "sqlite:x.db"),
        ];
        for (location, shown) in cases {
            assert_eq!(redact_location(location), shown, "{location}");
        }
    }
}
