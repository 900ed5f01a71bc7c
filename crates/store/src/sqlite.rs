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
use sqlx::{Connection as _, FromRow, SqlSafeStr as _};
use tracing::debug;

use crate::{
    NameRecord, OperatorAction, OperatorActionKind, Result, SessionInfo, SessionRecord, Store,
    StoreError, StoreErrorKind, TokenHash, UnixTime, UserRecord, canonical_addr, session_id,
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
        "operator_actions",
        include_str!("../migrations/0002_operator_actions.sql"),
    ),
];

/// The migrator for [`MIGRATIONS`]; applied versions are recorded in `_sqlx_migrations`.
fn migrator() -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
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
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            read_connections: DEFAULT_READ_CONNECTIONS,
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
    /// As for [`open`](Self::open).
    pub async fn open_with(path: &Path, options: &SqliteOptions) -> Result<Self> {
        // The readers connect lazily, later: resolve a relative path once, now, so that every
        // connection opens the same file even if the working directory changes meanwhile.
        // (`absolute` fails only for an empty path, which SQLite is then left to judge.)
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let connect = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
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

/// Applies pending migrations inside one `BEGIN IMMEDIATE` transaction, so two processes
/// opening a fresh file at once take turns (the second waits on the busy timeout and then finds
/// the work done) instead of both trying to create the tables. sqlx turns the migrator's own
/// per-migration transactions into savepoints inside ours.
async fn migrate(pool: &SqlitePool) -> Result<()> {
    let mut conn = pool.acquire().await.map_err(StoreError::database)?;
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(StoreError::database)?;
    migrator()
        .run(&mut *tx)
        .await
        .map_err(|err| StoreError::with_source(StoreErrorKind::Migration, err))?;
    tx.commit().await.map_err(StoreError::database)?;
    Ok(())
}

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
        sqlx::query(
            "INSERT INTO names (addr, name, first_seen, last_seen) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (addr) DO UPDATE
             SET name = excluded.name, last_seen = max(last_seen, excluded.last_seen)",
        )
        .bind(addr_key(addr))
        .bind(name)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(StoreError::database)?;
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
        sqlx::query(
            "INSERT INTO users (name, password_hash, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?3)",
        )
        .bind(name)
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
