//! The database at the command line, shared by `serve` and the admin
//! commands (`users`, `sessions`, `names`): where it is (`--db`), opening it
//! with a clear error, and showing its times and names.
//!
//! `--db` is a file path or a URL (`sqlite://PATH`, `postgres://...`);
//! `porter_store::open` picks the backend, so nothing here names one. The
//! admin commands work on the same database as a running server (or several,
//! on PostgreSQL): with SQLite, WAL mode lets them read while it serves, and
//! its busy timeout serialises their writes with the server's. They never
//! create one: only `serve` does, so that an admin command run in the wrong
//! folder (or on the wrong PostgreSQL database or schema) says so instead of
//! leaving an empty database there. A PostgreSQL server that cannot be
//! reached is an error within seconds. What the store warns about while they
//! work (a database file it made private, legacy look-alike names) is printed
//! on stderr. A URL's password is never shown.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use porter_store::{SharedStore, StoreErrorKind, UnixTime};

/// The database file's name: next to the log file for `serve`, in the
/// working folder for the admin commands (where `serve` puts it when its
/// log file has the default place).
pub const DEFAULT_DB_FILE: &str = "porter.db";

/// `--db` of the admin commands.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// Database of the server (it may be running): an SQLite file path,
    /// sqlite://PATH, or postgres://USER@HOST/DATABASE
    #[arg(long, value_name = "PATH", env = "PORTER_DB", default_value = DEFAULT_DB_FILE, global = true)]
    pub db: PathBuf,
}

/// Opens (creating and migrating if needed) the database at `path`, a file
/// path or a URL (see `porter_store::open` for the forms).
///
/// # Errors
/// When the database cannot be opened, created or migrated, or the URL names
/// a backend this build lacks; the message names the path (a URL without its
/// password) and the cause.
pub async fn open(path: &Path) -> anyhow::Result<SharedStore> {
    porter_store::open(path).await.with_context(|| {
        format!(
            "cannot open the database {}",
            porter_store::redact_location(path)
        )
    })
}

/// Opens the database of an admin command at `path`, which must exist.
///
/// # Errors
/// No database there (no file, or no Porter tables in the PostgreSQL
/// database): one line naming the absolute path (or the URL, without its
/// password) looked at and how to choose another. Otherwise as [`open`].
pub async fn open_existing(path: &Path) -> anyhow::Result<SharedStore> {
    match porter_store::open_existing(path).await {
        Ok(store) => Ok(store),
        Err(err) if err.kind() == StoreErrorKind::NoDatabase => bail!(
            "{err} (the server creates it: start `porter serve` once, or choose another \
             database with --db PATH or PORTER_DB)"
        ),
        Err(err) => Err(err).with_context(|| {
            format!(
                "cannot open the database {}",
                porter_store::redact_location(path)
            )
        }),
    }
}

/// Prints the store's warnings (and worse) on stderr for the rest of the
/// process: an admin command has no log file, and what the store says at
/// open (a database file it made private, legacy look-alike names) is for
/// the person who ran it. Only the first call installs anything.
fn print_store_warnings() {
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("porter_store=warn"))
        .fmt_fields(crate::logging::SafeFields)
        .without_time()
        .with_target(false)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .finish();
    // Fails only when one is installed already: the first call's.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Runs `work` on the existing database at `path` on a fresh runtime, and
/// closes the database afterwards (checkpointing its WAL) whatever the
/// outcome.
///
/// # Errors
/// Those of [`open_existing`] and of `work`.
pub fn with_store<T, F>(path: &Path, work: impl FnOnce(SharedStore) -> F) -> anyhow::Result<T>
where
    F: Future<Output = anyhow::Result<T>>,
{
    print_store_warnings();
    let runtime = crate::runtime()?;
    let result = runtime.block_on(async {
        let store = open_existing(path).await?;
        let result = work(store.clone()).await;
        store.close().await;
        result
    });
    runtime.shutdown_timeout(crate::RUNTIME_SHUTDOWN_TIMEOUT);
    result
}

/// Now, as the store counts time: the server's own clock, so that the
/// admin commands and a running server agree on what has expired.
pub fn now() -> UnixTime {
    porter_server::Clock::system().now()
}

/// Unix seconds as RFC 3339 in UTC (`2026-12-02T08:00:00Z`): the server's
/// own formatting, so a date shown here reads like `expires_at` on the wire.
pub use porter_server::auth::rfc3339;

/// A stored name as a table shows it: what the name policy refuses (an
/// invisible or reordering character, kept from before the policy) escaped,
/// `bob\u{200b}`, so that two names that differ never print the same.
pub fn printable(name: &str) -> String {
    porter_server::auth::printable(name).into_owned()
}

/// Prints rows as columns aligned under `header`, two spaces apart.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        out
    };
    println!("{}", line(header.to_vec()));
    for row in rows {
        println!("{}", line(row.iter().map(String::as_str).collect()));
    }
}
