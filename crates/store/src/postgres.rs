//! The PostgreSQL backend of [`Store`]: connecting, the embedded migrations of its own
//! (`crates/store/migrations/postgres/`), and every PostgreSQL statement of the crate.
//!
//! This is the store that several server instances share. It keeps the same contract as the
//! SQLite backend, with PostgreSQL doing what SQLite's single writer did:
//!
//! - **Races between instances.** Every method is one statement in its own transaction
//!   (PostgreSQL's default, READ COMMITTED), and every race the contract cares about is settled
//!   by a constraint that PostgreSQL enforces across concurrent transactions whatever the
//!   isolation level: two instances registering look-alike names at the same moment insert the
//!   same `name_key` into a unique index, the second insert waits for the first transaction and
//!   then fails with `23505` (unique violation), which becomes the same policy error SQLite
//!   gives ([`StoreErrorKind::UserExists`], [`StoreErrorKind::NameTaken`]). Checks and writes
//!   are never split over two statements, so there is no read-then-write window that would
//!   need SERIALIZABLE.
//! - **Operator actions in commit order.** Ids come from a sequence, which does not promise
//!   that a smaller id commits first; a table lock taken by triggers does (migration 0001
//!   explains it), so a server's poll "after the last id I saw" misses nothing.
//! - **Durability.** A method returns after its commit, and PostgreSQL acknowledges a commit
//!   once it is flushed (`synchronous_commit`, on unless the database's administrator turned it
//!   off).
//!
//! # Where the tables go
//!
//! In the first schema of the connection's `search_path`: `public` by default. To keep Porter
//! in a schema of its own, name it in the URL with libpq's `options` parameter, which sqlx
//! understands: `postgres://porter@db.example/porter?options=-c%20search_path%3Dporter` or,
//! shorter, `postgres://porter@db.example/porter?options[search_path]=porter`. The schema must
//! exist (`CREATE SCHEMA porter`); the store does not create it.
//!
//! # When PostgreSQL goes away
//!
//! The pool checks each connection before lending it and opens new ones as needed, so the
//! store reconnects by itself once PostgreSQL is back. Until then every method fails within
//! [`DEFAULT_ACQUIRE_TIMEOUT`] with [`StoreErrorKind::Unavailable`]: the server turns that
//! into a refused login ("try again later") and goes on serving the clients already in.
//!
//! Text in PostgreSQL cannot hold the NUL character; the server's name policy refuses control
//! characters, so no name it passes on contains one.

use std::borrow::Cow;
use std::net::IpAddr;
use std::str::FromStr as _;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::error::ErrorKind;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions as _, Connection as _, FromRow, SqlSafeStr as _};
use tracing::debug;

use crate::{
    NameRecord, OperatorAction, OperatorActionKind, Result, SessionInfo, SessionRecord, Store,
    StoreError, StoreErrorKind, TokenHash, UnixTime, UserRecord, canonical_addr, name_key,
    redact_location, session_id,
};

/// How long a call waits for a connection (an idle one, or a new one PostgreSQL accepts)
/// before failing with [`StoreErrorKind::Unavailable`]; also the bound on the first connection
/// at open. Short, so that a login while PostgreSQL is down is refused in seconds instead of
/// hanging until the handshake deadline; long enough to ride out a burst of logins queueing
/// for the pool, each of which holds a connection for a millisecond or two.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Connections per store at most. Every method is one short statement; a few connections keep
/// logins from queueing behind each other, and leave room on the PostgreSQL server (100
/// connections by default) for several instances and the admin commands.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// This backend's versioned schema, embedded in the binary: `(version, description, sql)`,
/// matching the `NNNN_description.sql` files in `crates/store/migrations/postgres/` (a unit
/// test checks that every file there is listed). Never edit an applied migration: sqlx stores
/// its checksum and refuses a database whose history differs. Add a new file instead.
///
/// Listed by hand (instead of `sqlx::migrate!`) to avoid sqlx's `macros` feature, as the
/// SQLite backend does.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "initial",
    include_str!("../migrations/postgres/0001_initial.sql"),
)];

/// The migrator for [`MIGRATIONS`]; applied versions are recorded in `_sqlx_migrations`, in
/// the same schema as the tables. It holds a PostgreSQL advisory lock while it works, so two
/// instances starting on a fresh database take turns.
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

/// Tunables of [`PgStore::open_with`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PgOptions {
    /// See [`DEFAULT_ACQUIRE_TIMEOUT`].
    pub acquire_timeout: Duration,
    /// See [`DEFAULT_MAX_CONNECTIONS`]; at least 1 is used.
    pub max_connections: u32,
    /// Whether a database without Porter's tables gets them (the server) or is refused with
    /// [`StoreErrorKind::NoDatabase`] (the admin commands). `true` by default. The database
    /// itself must exist either way: creating databases is the administrator's job.
    pub create_if_missing: bool,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            create_if_missing: true,
        }
    }
}

/// A [`Store`] in a PostgreSQL database. Cheap to clone (the pool is a shared handle).
#[derive(Debug, Clone)]
pub struct PgStore {
    /// Reads and writes alike: PostgreSQL has no single-writer rule to work around.
    pool: PgPool,
}

impl PgStore {
    /// Opens the database at `url` (`postgres://` or `postgresql://`, in libpq's URL form) with
    /// default [`PgOptions`] and applies pending migrations.
    ///
    /// Callers that take a location from the user should prefer [`crate::open`], which picks
    /// the backend from it.
    ///
    /// # Errors
    /// [`StoreErrorKind::Unavailable`] if PostgreSQL cannot be reached within the acquire
    /// timeout; [`StoreErrorKind::Database`] if the URL is invalid, PostgreSQL refuses the
    /// connection (a wrong password, a database that does not exist) or the `search_path`
    /// names no schema that exists; [`StoreErrorKind::Migration`] if the schema cannot be
    /// brought up to date (for example it was written by a newer Porter). Messages never
    /// repeat the password.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, &PgOptions::default()).await
    }

    /// Like [`open`](Self::open) with explicit options.
    ///
    /// # Errors
    /// As for [`open`](Self::open), and [`StoreErrorKind::NoDatabase`] for a database without
    /// Porter's tables when `options.create_if_missing` is off.
    pub async fn open_with(url: &str, options: &PgOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url).map_err(|err| {
            StoreError::with_source_detail(
                StoreErrorKind::Database,
                "the PostgreSQL URL is invalid",
                err,
            )
        })?;
        // One connection of our own first: its error says why PostgreSQL cannot be reached
        // (the pool's would only say that it timed out), and it runs the migrations.
        let mut conn = tokio::time::timeout(options.acquire_timeout, connect.connect())
            .await
            .map_err(|_| StoreError::from(StoreErrorKind::Unavailable))?
            .map_err(store_error)?;
        let prepared = prepare(&mut conn, url, options.create_if_missing).await;
        // Closing politely is a courtesy; the server copes with a dropped socket too.
        let _ = conn.close().await;
        prepared?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            // Each connection is pinged before it is lent, so one left broken by a restart of
            // PostgreSQL is replaced instead of failing a call. (sqlx's default, made explicit
            // because the reconnection promised above depends on it.)
            .test_before_acquire(true)
            .connect_lazy_with(connect);
        debug!(db = %redact_location(url), "store opened");
        Ok(PgStore { pool })
    }

    /// This store as the [`SharedStore`](crate::SharedStore) the server and CLI pass around.
    pub fn shared(self) -> crate::SharedStore {
        std::sync::Arc::new(self)
    }
}

/// Checks that the connection has a schema to work in and, unless `create_if_missing`, that
/// Porter's tables are there; then applies pending migrations.
async fn prepare(conn: &mut PgConnection, url: &str, create_if_missing: bool) -> Result<()> {
    // NULL when no schema of the search_path exists: every CREATE TABLE would fail with a
    // message that does not say which setting is at fault.
    let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&mut *conn)
        .await
        .map_err(store_error)?;
    if schema.is_none() {
        return Err(StoreError::with_detail(
            StoreErrorKind::Database,
            "no schema of the search_path exists; create it first (CREATE SCHEMA ...)",
        ));
    }
    if !create_if_missing {
        let migrated: bool =
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                .fetch_one(&mut *conn)
                .await
                .map_err(store_error)?;
        if !migrated {
            return Err(StoreError::with_detail(
                StoreErrorKind::NoDatabase,
                format!("no Porter tables at {}", redact_location(url)),
            ));
        }
    }
    migrator()
        .run(&mut *conn)
        .await
        .map_err(|err| StoreError::with_source(StoreErrorKind::Migration, err))
}

/// The store's error for a failed statement: [`StoreErrorKind::Unavailable`] when PostgreSQL
/// could not be reached or dropped the connection, [`StoreErrorKind::Database`] otherwise.
fn store_error(err: sqlx::Error) -> StoreError {
    if is_unavailable(&err) {
        StoreError::with_source(StoreErrorKind::Unavailable, err)
    } else {
        StoreError::database(err)
    }
}

/// Whether `err` means "PostgreSQL is not there right now": trying again later may succeed.
fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        // No connection could be made within the acquire timeout, or one broke.
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // Class 08: connection exceptions. 57P01..57P03: the server is shutting down,
            // crashed, or is starting up. 53300: it has no connection slot left.
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// Whether `err` is the database refusing a constraint of `kind`.
fn is_violation(err: &sqlx::Error, kind: ErrorKind) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.kind() == kind)
}

/// The text an address is stored as: the canonical form (see [`canonical_addr`]), so one
/// machine has one row however it connected.
fn addr_key(addr: IpAddr) -> String {
    canonical_addr(addr).to_string()
}

/// The token hashes whose display id is `id`, as the smallest and the largest of them, so
/// that the lookup is a range scan of the primary key. `None` for anything that is not a
/// display id (hex digits, [`SESSION_ID_BYTES`](crate::SESSION_ID_BYTES) bytes' worth, in any
/// case): it matches no session.
fn session_id_range(id: &str) -> Option<(TokenHash, TokenHash)> {
    let digits = id.as_bytes();
    if digits.len() != crate::SESSION_ID_BYTES * 2 {
        return None;
    }
    let mut low = [0u8; 32];
    let mut high = [0xffu8; 32];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let byte = u8::from_str_radix(text, 16).ok()?;
        low[i] = byte;
        high[i] = byte;
    }
    Some((low, high))
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
    user_name: String,
    created_at: i64,
    expires_at: i64,
    last_seen: i64,
}

#[derive(FromRow)]
struct SessionInfoRow {
    token_hash: Vec<u8>,
    user_name: String,
    created_at: i64,
    expires_at: i64,
    last_seen: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<SessionInfoRow> for SessionInfo {
    type Error = StoreError;

    fn try_from(row: SessionInfoRow) -> Result<Self> {
        let hash = token_hash(&row.token_hash)?;
        Ok(SessionInfo {
            id: session_id(&hash),
            user: row.user_name,
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_seen: row.last_seen,
            revoked_at: row.revoked_at,
        })
    }
}

#[derive(FromRow)]
struct OperatorActionRow {
    id: i64,
    action: String,
    user_name: String,
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
        let session = row.token_hash.as_deref().map(token_hash).transpose()?;
        Ok(OperatorAction {
            id: row.id,
            kind,
            user: row.user_name,
            session,
            reason: row.reason,
            at: row.at,
        })
    }
}

/// A stored token hash as the 32 bytes the schema CHECKs it is; anything else means the
/// table was edited by hand.
fn token_hash(bytes: &[u8]) -> Result<TokenHash> {
    bytes
        .try_into()
        .map_err(|_| StoreError::with_detail(StoreErrorKind::Corrupt, "token hash is not 32 bytes"))
}

#[async_trait]
impl Store for PgStore {
    async fn name_for_addr(&self, addr: IpAddr) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT name FROM names WHERE addr = $1")
            .bind(addr_key(addr))
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)
    }

    async fn remember_name(&self, addr: IpAddr, name: &str, now: UnixTime) -> Result<()> {
        // An address keeping its name keeps its stored key too, so a visit cannot fail should
        // a newer `unicode-security` compute another key for the same name.
        sqlx::query(
            "INSERT INTO names (addr, name, name_key, first_seen, last_seen)
             VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (addr) DO UPDATE
             SET name = excluded.name,
                 name_key = CASE WHEN names.name = excluded.name THEN names.name_key
                                 ELSE excluded.name_key END,
                 last_seen = greatest(names.last_seen, excluded.last_seen)",
        )
        .bind(addr_key(addr))
        .bind(name)
        .bind(name_key(name))
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|err| {
            // The conflict on `addr` is the upsert; a unique violation left is the key's.
            if is_violation(&err, ErrorKind::UniqueViolation) {
                StoreErrorKind::NameTaken.into()
            } else {
                store_error(err)
            }
        })?;
        Ok(())
    }

    async fn list_names(&self) -> Result<Vec<NameRecord>> {
        let rows: Vec<NameRow> =
            sqlx::query_as("SELECT addr, name, first_seen, last_seen FROM names ORDER BY addr")
                .fetch_all(&self.pool)
                .await
                .map_err(store_error)?;
        rows.into_iter().map(NameRecord::try_from).collect()
    }

    async fn forget_name(&self, addr: IpAddr) -> Result<bool> {
        let done = sqlx::query("DELETE FROM names WHERE addr = $1")
            .bind(addr_key(addr))
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_user(&self, name: &str, password_hash: &str, now: UnixTime) -> Result<()> {
        // A unique violation is the exact name's or its key's: both are "exists".
        sqlx::query(
            "INSERT INTO users (name, name_key, password_hash, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(name)
        .bind(name_key(name))
        .bind(password_hash)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|err| {
            if is_violation(&err, ErrorKind::UniqueViolation) {
                StoreErrorKind::UserExists.into()
            } else {
                store_error(err)
            }
        })?;
        Ok(())
    }

    async fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT name, password_hash, created_at, updated_at FROM users WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(row.map(UserRecord::from))
    }

    async fn look_alike_user(&self, name: &str) -> Result<Option<String>> {
        sqlx::query_scalar(
            "SELECT name FROM users WHERE name_key = $1 AND name <> $2
             AND NOT EXISTS (SELECT 1 FROM users WHERE name = $2)",
        )
        .bind(name_key(name))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>> {
        let rows: Vec<UserRow> = sqlx::query_as(
            "SELECT name, password_hash, created_at, updated_at FROM users ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(rows.into_iter().map(UserRecord::from).collect())
    }

    async fn set_password(&self, name: &str, password_hash: &str, now: UnixTime) -> Result<bool> {
        let done =
            sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE name = $1")
                .bind(name)
                .bind(password_hash)
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn remove_user(&self, name: &str) -> Result<bool> {
        // Sessions go with the user through ON DELETE CASCADE, in the same statement.
        let done = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
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
            "INSERT INTO sessions (token_hash, user_name, created_at, expires_at, last_seen)
             VALUES ($1, $2, $3, $4, $3)",
        )
        .bind(&token_hash[..])
        .bind(user)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(|err| {
            if is_violation(&err, ErrorKind::ForeignKeyViolation) {
                StoreErrorKind::NotFound.into()
            } else if is_violation(&err, ErrorKind::UniqueViolation) {
                StoreErrorKind::SessionExists.into()
            } else {
                store_error(err)
            }
        })?;
        Ok(())
    }

    async fn resume_session(
        &self,
        token_hash: &TokenHash,
        now: UnixTime,
    ) -> Result<Option<SessionRecord>> {
        // Check and bump in one statement: a concurrent revocation holds the row, and this
        // statement then re-checks its WHERE against the revoked row.
        let row: Option<SessionRow> = sqlx::query_as(
            "UPDATE sessions SET last_seen = greatest(last_seen, $2)
             WHERE token_hash = $1 AND revoked_at IS NULL AND $2 < expires_at
             RETURNING user_name, created_at, expires_at, last_seen",
        )
        .bind(&token_hash[..])
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(row.map(|row| SessionRecord {
            user: row.user_name,
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_seen: row.last_seen,
        }))
    }

    async fn revoke_session(&self, token_hash: &TokenHash, now: UnixTime) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $2
             WHERE token_hash = $1 AND revoked_at IS NULL AND $2 < expires_at",
        )
        .bind(&token_hash[..])
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_session_by_id(&self, id: &str, now: UnixTime) -> Result<u64> {
        let Some((low, high)) = session_id_range(id) else {
            return Ok(0);
        };
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $3
             WHERE token_hash BETWEEN $1 AND $2 AND revoked_at IS NULL AND $3 < expires_at",
        )
        .bind(&low[..])
        .bind(&high[..])
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(done.rows_affected())
    }

    async fn revoke_user_sessions(&self, user: &str, now: UnixTime) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $2
             WHERE user_name = $1 AND revoked_at IS NULL AND $2 < expires_at",
        )
        .bind(user)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(done.rows_affected())
    }

    async fn revoke_all_sessions(&self, now: UnixTime) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE revoked_at IS NULL AND $1 < expires_at",
        )
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(done.rows_affected())
    }

    async fn purge_sessions(&self, now: UnixTime) -> Result<u64> {
        // One statement: a session resumed concurrently is either still live (kept) or
        // already dead (its resume fails on the same predicate), never half-deleted.
        let done =
            sqlx::query("DELETE FROM sessions WHERE revoked_at IS NOT NULL OR expires_at <= $1")
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
        Ok(done.rows_affected())
    }

    async fn kick(&self, user: &str, reason: Option<&str>, now: UnixTime) -> Result<()> {
        // Through the function that takes the actions' lock first (see migration 0001): a
        // plain INSERT would hold the table before it waits for the lock, and two kicks at
        // once from two instances would deadlock.
        sqlx::query("SELECT record_operator_action('kicked', $1, NULL, $2, $3)")
            .bind(user)
            .bind(reason)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn operator_actions_since(&self, after: i64, limit: u32) -> Result<Vec<OperatorAction>> {
        let rows: Vec<OperatorActionRow> = sqlx::query_as(
            "SELECT id, action, user_name, token_hash, reason, at FROM operator_actions
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.into_iter().map(OperatorAction::try_from).collect()
    }

    async fn last_operator_action(&self) -> Result<i64> {
        let last: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM operator_actions")
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(last.unwrap_or(0))
    }

    async fn purge_operator_actions(&self, before: UnixTime) -> Result<u64> {
        let done = sqlx::query("DELETE FROM operator_actions WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected())
    }

    async fn list_sessions(&self, user: Option<&str>) -> Result<Vec<SessionInfo>> {
        let rows: Vec<SessionInfoRow> = sqlx::query_as(
            "SELECT token_hash, user_name, created_at, expires_at, last_seen, revoked_at
             FROM sessions WHERE $1::text IS NULL OR user_name = $1
             ORDER BY created_at, token_hash",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.into_iter().map(SessionInfo::try_from).collect()
    }

    async fn schema_version(&self) -> Result<Option<i64>> {
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)
    }

    fn latest_schema_version(&self) -> i64 {
        MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::Path;

    #[test]
    fn every_migration_file_is_embedded_with_its_version() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
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

    #[test]
    fn a_display_id_is_the_range_of_hashes_it_starts() {
        let (low, high) = session_id_range("0001ABcdef107fff").unwrap();
        let prefix = [0x00, 0x01, 0xab, 0xcd, 0xef, 0x10, 0x7f, 0xff];
        assert_eq!(low[..8], prefix);
        assert_eq!(high[..8], prefix);
        assert!(low[8..].iter().all(|&b| b == 0));
        assert!(high[8..].iter().all(|&b| b == 0xff));
        for not_an_id in [
            "",
            "0001abcdef107ff",
            "0001abcdef107fff0",
            "0001abcdef107ffg",
        ] {
            assert_eq!(session_id_range(not_an_id), None, "{not_an_id:?}");
        }
        assert_eq!(
            session_id_range("+1+1+1+1+1+1+1+1"),
            None,
            "signs are not digits"
        );
        assert_eq!(session_id_range("ééééééé\u{301}"), None, "not ASCII");
    }

    #[test]
    fn connection_failures_are_unavailable_and_refusals_are_not() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(is_unavailable(&sqlx::Error::Io(refused)));
        assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(!is_unavailable(&sqlx::Error::PoolClosed), "closed by us");
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
    }
}
