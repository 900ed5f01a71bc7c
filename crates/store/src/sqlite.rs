//! The SQLite backend of [`Store`]: opening the file with durable settings, the embedded
//! versioned migrations, and every SQL statement of the crate.
//!
//! Layout: one *writer* pool with a single connection and a *reader* pool with a few.
//! SQLite allows one writer at a time anyway; queueing our own writes in the pool (FIFO, async)
//! is cheaper and fairer than letting several connections of this process spin in SQLite's
//! busy handler. Other processes on the same file (the admin CLI while the server runs) are
//! serialised by SQLite's lock and `busy_timeout`. WAL lets readers run during a write.
//!
//! Every mutation is one autocommit statement (upserts, `UPDATE ... RETURNING`), so there is no
//! read-then-write transaction that could fail with `SQLITE_BUSY` without waiting, and each
//! method returns only after SQLite committed it. sqlx runs each SQLite connection on its own
//! worker thread, so the blocking C calls never run on the tokio reactor.
//!
//! Names are unique on their [`name_key`] (migration 0002), a column SQL cannot compute: every
//! write binds the key computed here, and opening fills in the keys of rows written before the
//! column existed (`backfill_name_keys`).
//!
//! The file holds password hashes and session hashes, so it is private: created `0600`
//! whatever the umask, and tightened at open when it (or its `-wal`/`-shm` companions, which
//! SQLite creates with the database's own mode) is readable by others (`secure_files`).

use std::borrow::Cow;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::error::ErrorKind;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Connection as _, FromRow, SqlSafeStr as _};
use tracing::{debug, warn};

use crate::{
    NameRecord, OperatorAction, OperatorActionKind, Result, SessionInfo, SessionRecord, Store,
    StoreError, StoreErrorKind, TokenHash, UnixTime, UserRecord, canonical_addr, name_key,
    session_id,
};

/// How long a statement waits for another connection's (or process's) write lock before
/// failing with [`StoreErrorKind::Database`]. Long enough to ride out an admin command writing
/// while the server runs; short enough that a wedged lock surfaces as an error.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in the reader pool. Reads are short primary-key lookups; a few connections
/// keep them from queueing behind each other on a small machine.
pub const DEFAULT_READ_CONNECTIONS: u32 = 4;

/// The versioned schema, embedded in the binary. `(version, description, sql)`; versions
/// match the `NNNN_` prefix of the file names in `crates/store/migrations/`, and a unit test
/// checks that every file there is listed. Never edit an applied migration: sqlx stores its
/// checksum and refuses to open a database whose history differs. Add a new file instead.
///
/// We list them by hand (instead of `sqlx::migrate!`) to avoid sqlx's `macros` feature.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (
        2,
        "name_keys",
        include_str!("../migrations/0002_name_keys.sql"),
    ),
    (
        3,
        "operator_actions",
        include_str!("../migrations/0003_operator_actions.sql"),
    ),
];

/// The migrator for [`MIGRATIONS`]; applied versions are recorded in `_sqlx_migrations`.
fn migrator() -> Migrator {
    migrator_up_to(i64::MAX)
}

/// The migrator for the migrations up to `version`: an older schema, for the tests of what
/// opening does to a database an older Porter wrote.
fn migrator_up_to(version: i64) -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .filter(|migration| migration.0 <= version)
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Tunables of [`SqliteStore::open_with`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// See [`DEFAULT_BUSY_TIMEOUT`].
    pub busy_timeout: Duration,
    /// See [`DEFAULT_READ_CONNECTIONS`]; at least 1 is used.
    pub read_connections: u32,
    /// Whether a missing file is created (the server) or refused with
    /// [`StoreErrorKind::NoDatabase`] (the admin commands). `true` by default.
    pub create_if_missing: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            read_connections: DEFAULT_READ_CONNECTIONS,
            create_if_missing: true,
        }
    }
}

/// A [`Store`] in an SQLite database file. Cheap to clone (the pools are shared handles).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Exactly one connection: all writes of this process queue here (see module docs).
    writer: SqlitePool,
    /// Reads. For an in-memory database this is the writer pool itself, since each
    /// connection to `:memory:` would otherwise be a separate database.
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `path` with default [`SqliteOptions`] and
    /// applies pending migrations.
    ///
    /// Callers that take a location from the user should prefer [`crate::open`], which also
    /// accepts `sqlite://` URLs and refuses backends this build lacks.
    ///
    /// # Errors
    /// [`StoreErrorKind::Database`] if the file cannot be opened or created;
    /// [`StoreErrorKind::Migration`] if the schema cannot be brought up to date (for example
    /// the file was written by a newer Porter or its applied migrations were altered).
    pub async fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, &SqliteOptions::default()).await
    }

    /// Like [`open`](Self::open) with explicit options.
    ///
    /// # Errors
    /// As for [`open`](Self::open), and [`StoreErrorKind::NoDatabase`] for a missing file when
    /// `options.create_if_missing` is off.
    pub async fn open_with(path: &Path, options: &SqliteOptions) -> Result<Self> {
        // The readers connect lazily, later: resolve a relative path once, now, so that every
        // connection opens the same file even if the working directory changes meanwhile.
        // (`absolute` fails only for an empty path, which SQLite is then left to judge.)
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        if !options.create_if_missing && !path.exists() {
            return Err(StoreError::with_detail(
                StoreErrorKind::NoDatabase,
                path.display().to_string(),
            ));
        }
        secure_files(&path);
        let connect = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(options.create_if_missing)
            // WAL: readers do not block the writer and vice versa, so the server keeps
            // answering while an admin command writes.
            .journal_mode(SqliteJournalMode::Wal)
            // Durability. In WAL mode, NORMAL already survives the *process* being killed
            // (SIGKILL, panic, OOM): a commit is in the WAL file in the OS page cache, and the
            // next open replays it. But NORMAL does not fsync the WAL at each commit, so a power
            // loss or kernel crash may drop the last few acknowledged commits. FULL fsyncs the
            // WAL on every commit and survives both. Our writes are rare (a new name, a login,
            // an admin command), so the extra fsync costs nothing that matters; we promise
            // "acknowledged means stored" and pick FULL.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(options.busy_timeout)
            // Sessions reference users with ON DELETE CASCADE; SQLite ignores that unless
            // foreign keys are on, per connection.
            .foreign_keys(true);

        let writer = connect_writer(&connect, options.busy_timeout).await?;
        migrate(&writer).await?;
        // Lazy: readers connect on first use, after the file exists and is migrated.
        let reader = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .connect_lazy_with(connect);
        debug!(path = %path.display(), "store opened");
        Ok(SqliteStore { writer, reader })
    }

    /// Opens a fresh, private in-memory database (for tests and `--store memory` style use).
    /// It lives as long as this store and its clones.
    ///
    /// # Errors
    /// As for [`open`](Self::open).
    pub async fn open_in_memory() -> Result<Self> {
        let connect = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(StoreError::database)?
            .foreign_keys(true);
        // One connection, never recycled: the database exists only while it is open.
        let pool = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(connect)
            .await
            .map_err(StoreError::database)?;
        migrate(&pool).await?;
        Ok(SqliteStore {
            writer: pool.clone(),
            reader: pool,
        })
    }

    /// This store as the [`SharedStore`](crate::SharedStore) the server and CLI pass around.
    pub fn shared(self) -> crate::SharedStore {
        std::sync::Arc::new(self)
    }
}

/// Connects the single-connection writer pool, retrying while another process holds the lock.
///
/// The first connection to a fresh file switches it to WAL, which needs an exclusive lock that
/// SQLite does not wait for with `busy_timeout`: when two processes (server and admin CLI)
/// open a new file at the same moment, one gets `SQLITE_BUSY` at connect. We wait and retry
/// within the same budget as the busy timeout; once the file is in WAL mode this never loops.
async fn connect_writer(connect: &SqliteConnectOptions, budget: Duration) -> Result<SqlitePool> {
    /// First pause between attempts; doubled each time up to `MAX_PAUSE`.
    const FIRST_PAUSE: Duration = Duration::from_millis(5);
    const MAX_PAUSE: Duration = Duration::from_millis(200);
    let deadline = tokio::time::Instant::now() + budget;
    let mut pause = FIRST_PAUSE;
    loop {
        match SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect.clone())
            .await
        {
            Err(err) if is_busy(&err) && tokio::time::Instant::now() + pause < deadline => {
                debug!(
                    pause_ms = pause.as_millis() as u64,
                    "database busy at open, retrying"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            result => return result.map_err(StoreError::database),
        }
    }
}

/// Whether `err` is SQLite's `SQLITE_BUSY` (any extended variant): another connection holds
/// a lock we could not wait for.
fn is_busy(err: &sqlx::Error) -> bool {
    /// SQLite's primary result code for "database is locked"; extended codes keep it in the
    /// low byte.
    const SQLITE_BUSY: i64 = 5;
    match err {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i64>().ok())
            .is_some_and(|code| code & 0xff == SQLITE_BUSY),
        _ => false,
    }
}

/// Applies pending migrations, then fills in missing name keys, inside one `BEGIN IMMEDIATE`
/// transaction, so two processes opening a fresh file at once take turns (the second waits on
/// the busy timeout and then finds the work done) instead of both trying to create the tables.
/// sqlx turns the migrator's own per-migration transactions into savepoints inside ours.
async fn migrate(pool: &SqlitePool) -> Result<()> {
    migrate_with(pool, &migrator()).await
}

async fn migrate_with(pool: &SqlitePool, migrator: &Migrator) -> Result<()> {
    let mut conn = pool.acquire().await.map_err(StoreError::database)?;
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(StoreError::database)?;
    migrator
        .run(&mut *tx)
        .await
        .map_err(|err| StoreError::with_source(StoreErrorKind::Migration, err))?;
    if migrator.iter().any(|migration| migration.version >= 2) {
        backfill_name_keys(&mut tx).await?;
    }
    tx.commit().await.map_err(StoreError::database)?;
    Ok(())
}

/// The tables whose rows carry a name key: `(table, primary key, order of precedence)`. When
/// two legacy rows share a key, the first in this order gets it.
const KEYED_TABLES: [(&str, &str, &str); 2] = [
    ("users", "name", "created_at, name"),
    ("names", "addr", "first_seen, addr"),
];

/// Gives every row without a [`name_key`] its key, unless another row already has it.
///
/// Rows written before migration 0002 have none, and SQL cannot compute one. Where legacy rows
/// collide (`bob` and `Bob` both registered before keys existed), the oldest (by `created_at`
/// or `first_seen`, then by name or address) gets the key and the later ones keep `NULL`,
/// which the unique index allows: they keep working (logging in, being greeted) but hold no
/// claim on their look-alikes, and once the older row is removed the next open gives its key
/// to the next in line. Runs at every open; rows written by this version always have a key, so
/// after the first open it looks at the colliding legacy rows only, and warns about them.
async fn backfill_name_keys(conn: &mut sqlx::SqliteConnection) -> Result<()> {
    for (table, id, order) in KEYED_TABLES {
        // The names in these statements are the constants above, never input.
        let rows: Vec<(String, String)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {id}, name FROM {table} WHERE name_key IS NULL ORDER BY {order}"
        )))
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::database)?;
        let mut left = 0u64;
        for (row, name) in &rows {
            let done = sqlx::query(AssertSqlSafe(format!(
                "UPDATE {table} SET name_key = ?1 WHERE {id} = ?2
                 AND NOT EXISTS (SELECT 1 FROM {table} WHERE name_key = ?1)"
            )))
            .bind(name_key(name))
            .bind(row)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::database)?;
            if done.rows_affected() == 0 {
                left += 1;
            }
        }
        if left > 0 {
            warn!(
                table,
                count = left,
                "rows from before name keys look like an older row and keep no key: they \
                 keep working, but do not stop look-alikes (see docs/PROTOCOL.md)"
            );
        } else if !rows.is_empty() {
            debug!(table, count = rows.len(), "name keys filled in");
        }
    }
    Ok(())
}

/// Makes the database file and its companions private (unix permissions `0600`): creates a
/// missing database file so, whatever the umask (SQLite gives its `-wal` and `-shm` files the
/// database's own mode), and tightens existing files that others may read or write, with a
/// `warn` event for each. Failures are left for SQLite to report (a missing folder) or only
/// warned about (a file owned by someone else): privacy is not a reason to refuse service.
#[cfg(unix)]
fn secure_files(path: &Path) {
    use std::fs::{OpenOptions, Permissions};
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};

    /// Read and write for the owner only.
    const PRIVATE: u32 = 0o600;
    // Exists already (checked below), or cannot be created (SQLite will say why).
    if OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE)
        .open(path)
        .is_ok()
    {
        // A umask can only take bits away; set the mode exactly all the same.
        let _ = std::fs::set_permissions(path, Permissions::from_mode(PRIVATE));
    }
    let mut companions = [path.as_os_str().to_owned(), path.as_os_str().to_owned()];
    companions[0].push("-wal");
    companions[1].push("-shm");
    let files = std::iter::once(path.to_owned()).chain(companions.into_iter().map(Into::into));
    for file in files {
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 == 0 {
            continue;
        }
        let tightened = mode & 0o700;
        match std::fs::set_permissions(&file, Permissions::from_mode(tightened)) {
            Ok(()) => warn!(
                file = %file.display(),
                was = %format_args!("{mode:04o}"),
                now = %format_args!("{tightened:04o}"),
                "tightened the permissions of a database file: it holds password hashes"
            ),
            Err(err) => warn!(
                file = %file.display(),
                mode = %format_args!("{mode:04o}"),
                cause = %err,
                "a database file is readable by others and cannot be made private"
            ),
        }
    }
}

/// Elsewhere there are no unix permissions to set.
#[cfg(not(unix))]
fn secure_files(_path: &Path) {}

/// The text an address is stored as: the canonical form (see [`canonical_addr`]), so one
/// machine has one row however it connected.
fn addr_key(addr: IpAddr) -> String {
    canonical_addr(addr).to_string()
}

#[derive(FromRow)]
struct NameRow {
    addr: String,
    name: String,
    first_seen: i64,
    last_seen: i64,
}

impl TryFrom<NameRow> for NameRecord {
    type Error = StoreError;

    fn try_from(row: NameRow) -> Result<Self> {
        let addr = row.addr.parse().map_err(|_| {
            StoreError::with_detail(
                StoreErrorKind::Corrupt,
                format!("unparsable address {:?}", row.addr),
            )
        })?;
        Ok(NameRecord {
            addr,
            name: row.name,
            first_seen: row.first_seen,
            last_seen: row.last_seen,
        })
    }
}

#[derive(FromRow)]
struct UserRow {
    name: String,
    password_hash: String,
    created_at: i64,
    updated_at: i64,
}

impl From<UserRow> for UserRecord {
    fn from(row: UserRow) -> Self {
        UserRecord {
            name: row.name,
            password_hash: row.password_hash,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(FromRow)]
struct SessionRow {
    user: String,
    created_at: i64,
    expires_at: i64,
    last_seen: i64,
}

#[derive(FromRow)]
struct SessionInfoRow {
    token_hash: Vec<u8>,
    user: String,
    created_at: i64,
    expires_at: i64,
    last_seen: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<SessionInfoRow> for SessionInfo {
    type Error = StoreError;

    fn try_from(row: SessionInfoRow) -> Result<Self> {
        // The schema CHECKs the length; a failure here means the file was edited by hand.
        let hash: TokenHash = row.token_hash.as_slice().try_into().map_err(|_| {
            StoreError::with_detail(StoreErrorKind::Corrupt, "token hash is not 32 bytes")
        })?;
        Ok(SessionInfo {
            id: session_id(&hash),
            user: row.user,
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_seen: row.last_seen,
            revoked_at: row.revoked_at,
        })
    }
}

/// Whether `err` is the database refusing a constraint of `kind`.
fn is_violation(err: &sqlx::Error, kind: ErrorKind) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.kind() == kind)
}

#[derive(sqlx::FromRow)]
struct OperatorActionRow {
    id: i64,
    action: String,
    user: String,
    token_hash: Option<Vec<u8>>,
    reason: Option<String>,
    at: i64,
}

impl TryFrom<OperatorActionRow> for OperatorAction {
    type Error = StoreError;

    fn try_from(row: OperatorActionRow) -> Result<Self> {
        let kind = match row.action.as_str() {
            "revoked" => OperatorActionKind::Revoked,
            "removed" => OperatorActionKind::Removed,
            "kicked" => OperatorActionKind::Kicked,
            _ => {
                return Err(StoreError::with_detail(
                    StoreErrorKind::Corrupt,
                    "an operator action of unknown kind",
                ));
            }
        };
        let session = match row.token_hash {
            None => None,
            Some(bytes) => Some(TokenHash::try_from(bytes.as_slice()).map_err(|_| {
                StoreError::with_detail(StoreErrorKind::Corrupt, "token hash is not 32 bytes")
            })?),
        };
        Ok(OperatorAction {
            id: row.id,
            kind,
            user: row.user,
            session,
            reason: row.reason,
            at: row.at,
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn name_for_addr(&self, addr: IpAddr) -> Result<Option<String>> {
        let name = sqlx::query_scalar("SELECT name FROM names WHERE addr = ?1")
            .bind(addr_key(addr))
            .fetch_optional(&self.reader)
            .await
            .map_err(StoreError::database)?;
        Ok(name)
    }

    async fn remember_name(&self, addr: IpAddr, name: &str, now: UnixTime) -> Result<()> {
        // An address keeping its name keeps its key too, even a legacy row's NULL: a visit
        // must not fail because an older look-alike holds the key. (Every expression of the
        // SET reads the row as it was.)
        sqlx::query(
            "INSERT INTO names (addr, name, name_key, first_seen, last_seen)
             VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT (addr) DO UPDATE
             SET name = excluded.name,
                 name_key = CASE WHEN name = excluded.name THEN name_key
                                 ELSE excluded.name_key END,
                 last_seen = max(last_seen, excluded.last_seen)",
        )
        .bind(addr_key(addr))
        .bind(name)
        .bind(name_key(name))
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(|err| {
            // The conflict on `addr` is the upsert; a unique violation left is the key's.
            if is_violation(&err, ErrorKind::UniqueViolation) {
                StoreErrorKind::NameTaken.into()
            } else {
                StoreError::database(err)
            }
        })?;
        Ok(())
    }

    async fn list_names(&self) -> Result<Vec<NameRecord>> {
        let rows: Vec<NameRow> =
            sqlx::query_as("SELECT addr, name, first_seen, last_seen FROM names ORDER BY addr")
                .fetch_all(&self.reader)
                .await
                .map_err(StoreError::database)?;
        rows.into_iter().map(NameRecord::try_from).collect()
    }

    async fn forget_name(&self, addr: IpAddr) -> Result<bool> {
        let done = sqlx::query("DELETE FROM names WHERE addr = ?1")
            .bind(addr_key(addr))
            .execute(&self.writer)
            .await
            .map_err(StoreError::database)?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_user(&self, name: &str, password_hash: &str, now: UnixTime) -> Result<()> {
        // A unique violation is the exact name's or its key's: both are "exists".
        sqlx::query(
            "INSERT INTO users (name, name_key, password_hash, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?4)",
        )
        .bind(name)
        .bind(name_key(name))
        .bind(password_hash)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(|err| {
            if is_violation(&err, ErrorKind::UniqueViolation) {
                StoreErrorKind::UserExists.into()
            } else {
                StoreError::database(err)
            }
        })?;
        Ok(())
    }

    async fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT name, password_hash, created_at, updated_at FROM users WHERE name = ?1",
        )
        .bind(name)
        .fetch_optional(&self.reader)
        .await
        .map_err(StoreError::database)?;
        Ok(row.map(UserRecord::from))
    }

    async fn look_alike_user(&self, name: &str) -> Result<Option<String>> {
        let other = sqlx::query_scalar(
            "SELECT name FROM users WHERE name_key = ?1 AND name <> ?2
             AND NOT EXISTS (SELECT 1 FROM users WHERE name = ?2)",
        )
        .bind(name_key(name))
        .bind(name)
        .fetch_optional(&self.reader)
        .await
        .map_err(StoreError::database)?;
        Ok(other)
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>> {
        let rows: Vec<UserRow> = sqlx::query_as(
            "SELECT name, password_hash, created_at, updated_at FROM users ORDER BY name",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(StoreError::database)?;
        Ok(rows.into_iter().map(UserRecord::from).collect())
    }

    async fn set_password(&self, name: &str, password_hash: &str, now: UnixTime) -> Result<bool> {
        let done =
            sqlx::query("UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE name = ?1")
                .bind(name)
                .bind(password_hash)
                .bind(now)
                .execute(&self.writer)
                .await
                .map_err(StoreError::database)?;
        Ok(done.rows_affected() > 0)
    }

    async fn remove_user(&self, name: &str) -> Result<bool> {
        // Sessions go with the user through ON DELETE CASCADE, in the same statement.
        let done = sqlx::query("DELETE FROM users WHERE name = ?1")
            .bind(name)
            .execute(&self.writer)
            .await
            .map_err(StoreError::database)?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_session(
        &self,
        token_hash: &TokenHash,
        user: &str,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user, created_at, expires_at, last_seen)
             VALUES (?1, ?2, ?3, ?4, ?3)",
        )
        .bind(&token_hash[..])
        .bind(user)
        .bind(now)
        .bind(expires_at)
        .execute(&self.writer)
        .await
        .map_err(|err| {
            if is_violation(&err, ErrorKind::ForeignKeyViolation) {
                StoreErrorKind::NotFound.into()
            } else if is_violation(&err, ErrorKind::UniqueViolation) {
                StoreErrorKind::SessionExists.into()
            } else {
                StoreError::database(err)
            }
        })?;
        Ok(())
    }

    async fn resume_session(
        &self,
        token_hash: &TokenHash,
        now: UnixTime,
    ) -> Result<Option<SessionRecord>> {
        // Check and bump in one statement: no window between "is it live?" and the write.
        let row: Option<SessionRow> = sqlx::query_as(
            "UPDATE sessions SET last_seen = max(last_seen, ?2)
             WHERE token_hash = ?1 AND revoked_at IS NULL AND ?2 < expires_at
             RETURNING user, created_at, expires_at, last_seen",
        )
        .bind(&token_hash[..])
        .bind(now)
        .fetch_optional(&self.writer)
        .await
        .map_err(StoreError::database)?;
        Ok(row.map(|row| SessionRecord {
            user: row.user,
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_seen: row.last_seen,
        }))
    }

    async fn revoke_session(&self, token_hash: &TokenHash, now: UnixTime) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = ?2
             WHERE token_hash = ?1 AND revoked_at IS NULL AND ?2 < expires_at",
        )
        .bind(&token_hash[..])
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(StoreError::database)?;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_session_by_id(&self, id: &str, now: UnixTime) -> Result<u64> {
        // A display id is hex of the hash's first bytes; anything else matches nothing, and we
        // skip the (full-scan) query for it. hex() in SQLite is uppercase.
        if id.len() != crate::SESSION_ID_BYTES * 2 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(0);
        }
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = ?2
             WHERE hex(substr(token_hash, 1, ?3)) = upper(?1)
               AND revoked_at IS NULL AND ?2 < expires_at",
        )
        .bind(id)
        .bind(now)
        .bind(crate::SESSION_ID_BYTES as i64)
        .execute(&self.writer)
        .await
        .map_err(StoreError::database)?;
        Ok(done.rows_affected())
    }

    async fn revoke_user_sessions(&self, user: &str, now: UnixTime) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = ?2
             WHERE user = ?1 AND revoked_at IS NULL AND ?2 < expires_at",
        )
        .bind(user)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(StoreError::database)?;
        Ok(done.rows_affected())
    }

    async fn revoke_all_sessions(&self, now: UnixTime) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = ?1 WHERE revoked_at IS NULL AND ?1 < expires_at",
        )
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(StoreError::database)?;
        Ok(done.rows_affected())
    }

    async fn purge_sessions(&self, now: UnixTime) -> Result<u64> {
        // One autocommit statement: a session resumed concurrently is either still live (kept)
        // or already dead (its resume fails on the same predicate), never half-deleted.
        let done =
            sqlx::query("DELETE FROM sessions WHERE revoked_at IS NOT NULL OR expires_at <= ?1")
                .bind(now)
                .execute(&self.writer)
                .await
                .map_err(StoreError::database)?;
        Ok(done.rows_affected())
    }

    async fn kick(&self, user: &str, reason: Option<&str>, now: UnixTime) -> Result<()> {
        sqlx::query(
            "INSERT INTO operator_actions (action, user, reason, at) VALUES ('kicked', ?1, ?2, ?3)",
        )
        .bind(user)
        .bind(reason)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(StoreError::database)?;
        Ok(())
    }

    async fn operator_actions_since(&self, after: i64, limit: u32) -> Result<Vec<OperatorAction>> {
        let rows: Vec<OperatorActionRow> = sqlx::query_as(
            "SELECT id, action, user, token_hash, reason, at FROM operator_actions
             WHERE id > ?1 ORDER BY id LIMIT ?2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(StoreError::database)?;
        rows.into_iter().map(OperatorAction::try_from).collect()
    }

    async fn last_operator_action(&self) -> Result<i64> {
        let last: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM operator_actions")
            .fetch_one(&self.reader)
            .await
            .map_err(StoreError::database)?;
        Ok(last.unwrap_or(0))
    }

    async fn purge_operator_actions(&self, before: UnixTime) -> Result<u64> {
        let done = sqlx::query("DELETE FROM operator_actions WHERE at < ?1")
            .bind(before)
            .execute(&self.writer)
            .await
            .map_err(StoreError::database)?;
        Ok(done.rows_affected())
    }

    async fn list_sessions(&self, user: Option<&str>) -> Result<Vec<SessionInfo>> {
        let rows: Vec<SessionInfoRow> = sqlx::query_as(
            "SELECT token_hash, user, created_at, expires_at, last_seen, revoked_at
             FROM sessions WHERE ?1 IS NULL OR user = ?1
             ORDER BY created_at, token_hash",
        )
        .bind(user)
        .fetch_all(&self.reader)
        .await
        .map_err(StoreError::database)?;
        rows.into_iter().map(SessionInfo::try_from).collect()
    }

    async fn schema_version(&self) -> Result<Option<i64>> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success = 1")
                .fetch_one(&self.reader)
                .await
                .map_err(StoreError::database)?;
        Ok(version)
    }

    fn latest_schema_version(&self) -> i64 {
        MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0)
    }

    async fn close(&self) {
        // Readers first, so the writer's close is the last connection and checkpoints the WAL.
        self.reader.close().await;
        self.writer.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn ipv4_mapped_ipv6_addresses_are_keyed_as_ipv4() {
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        assert_eq!(addr_key(mapped), "192.0.2.7");
        assert_eq!(
            addr_key(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
            "192.0.2.7"
        );
        assert_eq!(addr_key(IpAddr::V6(Ipv6Addr::LOCALHOST)), "::1");
        let v6: IpAddr = "2001:DB8::0:1".parse().unwrap();
        assert_eq!(addr_key(v6), "2001:db8::1");
    }

    #[test]
    fn every_migration_file_is_embedded_with_its_version() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|(version, description, _)| format!("{version:04}_{description}.sql"))
            .collect();
        assert_eq!(files, listed);
        for (name, (_, _, sql)) in files.iter().zip(MIGRATIONS) {
            assert_eq!(std::fs::read_to_string(dir.join(name)).unwrap(), *sql);
        }
    }

    /// Per-connection settings cannot be seen from another connection, so check them on the
    /// store's own pools: durability (FULL), WAL and foreign keys, for writer and readers.
    #[tokio::test]
    async fn file_connections_use_full_sync_wal_and_foreign_keys() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = SqliteStore::open(&dir.path().join("p.db")).await.unwrap();
        for pool in [&store.writer, &store.reader] {
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(sync, 2, "synchronous=FULL");
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(mode, "wal");
            let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(fk, 1);
        }
    }

    /// A log of `warn` events and above, for the test it is set in.
    #[derive(Clone, Default)]
    struct Log(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Log {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Log {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    async fn keys(store: &SqliteStore, table: &str) -> Vec<(String, Option<String>)> {
        sqlx::query_as(AssertSqlSafe(format!(
            "SELECT name, name_key FROM {table} ORDER BY name"
        )))
        .fetch_all(&store.reader)
        .await
        .unwrap()
    }

    /// A database written by the first schema, with look-alike names that were allowed then,
    /// gets its keys when opened: the oldest of each group holds the key, the later ones keep
    /// none and keep working, and a warning says how many.
    #[tokio::test(flavor = "current_thread")]
    async fn legacy_names_get_keys_at_open_and_later_look_alikes_keep_none() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("p.db");
        let connect = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let old = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect)
            .await
            .unwrap();
        migrate_with(&old, &migrator_up_to(1)).await.unwrap();
        for (name, created) in [("Bob", 2), ("bob", 1), ("b\u{43e}b", 3), ("ada", 4)] {
            sqlx::query(
                "INSERT INTO users (name, password_hash, created_at, updated_at)
                 VALUES (?1, '$h', ?2, ?2)",
            )
            .bind(name)
            .bind(created)
            .execute(&old)
            .await
            .unwrap();
        }
        for (addr, name, seen) in [("192.0.2.1", "eve", 1), ("192.0.2.2", "EVE", 2)] {
            sqlx::query(
                "INSERT INTO names (addr, name, first_seen, last_seen) VALUES (?1, ?2, ?3, ?3)",
            )
            .bind(addr)
            .bind(name)
            .bind(seen)
            .execute(&old)
            .await
            .unwrap();
        }
        old.close().await;

        let log = Log::default();
        let sink = log.clone();
        let _guard = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::WARN)
                .with_ansi(false)
                .with_writer(move || sink.clone())
                .finish(),
        );
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(
            store.schema_version().await.unwrap(),
            Some(store.latest_schema_version())
        );
        let bob = name_key("bob");
        assert_eq!(
            keys(&store, "users").await,
            [
                ("Bob".to_owned(), None),
                ("ada".to_owned(), Some(name_key("ada"))),
                ("bob".to_owned(), Some(bob.clone())),
                ("b\u{43e}b".to_owned(), None),
            ]
        );
        assert_eq!(
            keys(&store, "names").await,
            [
                ("EVE".to_owned(), None),
                ("eve".to_owned(), Some(name_key("eve"))),
            ]
        );
        let text = log.text();
        assert!(
            text.contains("table=\"users\" count=2") && text.contains("table=\"names\" count=1"),
            "{text}"
        );

        // The later look-alikes keep working; no new one can be made.
        assert!(store.user("Bob").await.unwrap().is_some());
        assert_eq!(
            store.create_user("BOB", "$h", 5).await.unwrap_err().kind(),
            StoreErrorKind::UserExists
        );
        let second: IpAddr = "192.0.2.2".parse().unwrap();
        store.remember_name(second, "EVE", 6).await.unwrap();
        assert_eq!(
            store
                .remember_name(second, "Eve", 7)
                .await
                .unwrap_err()
                .kind(),
            StoreErrorKind::NameTaken,
            "a legacy look-alike may keep its name, not take another look-alike"
        );

        // Once the holder is gone, the next open hands its key to the next in line.
        assert!(store.remove_user("bob").await.unwrap());
        store.close().await;
        let store = SqliteStore::open(&path).await.unwrap();
        let users = keys(&store, "users").await;
        assert_eq!(users[0], ("Bob".to_owned(), Some(bob)));
        assert_eq!(users[2], ("b\u{43e}b".to_owned(), None));
    }

    #[tokio::test]
    async fn in_memory_store_is_migrated_to_the_latest_version() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        assert_eq!(
            store.schema_version().await.unwrap(),
            Some(store.latest_schema_version())
        );
        store.create_user("alice", "$hash", 1).await.unwrap();
        assert_eq!(store.list_users().await.unwrap().len(), 1);
    }
}
