//! Porter's durable storage: names by address (`--auth ip`), users and sessions
//! (`--auth password`).
//!
//! This file owns the storage interface: the [`Store`] trait the server and the admin CLI
//! program against, the records it returns, [`SharedStore`], the handle they pass around,
//! and [`open`], which picks the backend from a path or URL so that no caller names one
//! ([`redact_location`] shows such a URL without its password).
//! Errors are one opaque [`StoreError`] whose [`kind`](StoreError::kind) callers match on;
//! no backend type appears in this crate's public API apart from the backend itself.
//! Two backends implement it, each on its own concrete pool with its own migrations: SQLite
//! in [`sqlite`] (one file, for a single server) and PostgreSQL in [`postgres`] (shared by
//! several server instances). All SQL of the crate is in those two files.
//!
//! Contracts every backend keeps:
//! - Nothing is acknowledged before it is durable: a mutating method returns `Ok` only after
//!   its transaction committed.
//! - Several handles (a server and an admin CLI, in two processes, or several server
//!   instances) may write at the same time; every acknowledged write is kept, and a race for
//!   one name has exactly one winner, the others getting the name's policy error.
//! - Times are Unix seconds ([`UnixTime`]) passed in by the caller, never read from a clock
//!   here, so tests can use tiny lifetimes without sleeping.
//! - Secrets never reach this crate in clear: passwords arrive as PHC hash strings and session
//!   tokens as their SHA-256. Records that carry a hash redact it in `Debug`.
//! - The hashing itself (Argon2, SHA-256) is done by the caller.
//! - Addresses are canonical: an IPv4-mapped IPv6 address is the same machine as its IPv4
//!   form, for every method that takes or returns one.
//! - Names cannot impersonate: no two users, and no two addresses, have names with the same
//!   [`name_key`] (the case-folded confusable skeleton of UTS 39), so `Bob` and `bоb` (with a
//!   Cyrillic `о`) cannot exist beside `bob`. The store computes the key itself, on every
//!   write; lookups stay exact. Which characters a name may hold at all is the caller's policy
//!   (the server's `names` module); the store keeps whatever it is given.
//! - Files holding secrets are private: a backend that keeps files creates them readable by
//!   their owner only, and tightens looser permissions it finds at open (saying so in a
//!   `warn` event).
//!
//! These contracts, and the behaviour documented on each [`Store`] method, are also executable:
//! the `contract` module (cargo feature `contract`) is one test suite that any backend runs
//! against itself with `store_contract_tests!`. A rule written here should have a case there.

#![deny(missing_docs)]

#[cfg(feature = "contract")]
pub mod contract;
mod error;
mod name_key;
mod open;
pub mod postgres;
pub mod sqlite;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;

pub use error::{Result, StoreError, StoreErrorKind};
pub use name_key::name_key;
pub use open::{open, open_existing, redact_location};
pub use postgres::{PgOptions, PgStore};
pub use sqlite::{SqliteOptions, SqliteStore};

/// A point in time as Unix seconds (UTC).
pub type UnixTime = i64;

/// The SHA-256 of a session token: how sessions are looked up. The token itself is never stored.
pub type TokenHash = [u8; 32];

/// How many leading bytes of a token hash make a session's display id (see [`session_id`]).
///
/// Eight bytes (16 hex digits) are unique in practice and, being part of a one-way hash,
/// do not help anyone forge a token.
pub const SESSION_ID_BYTES: usize = 8;

/// The handle the server and the CLI share: any backend behind an `Arc`.
pub type SharedStore = Arc<dyn Store>;

/// Durable storage for Porter.
///
/// Object safe, so callers hold a [`SharedStore`] and do not know the backend.
/// Every method can fail with [`StoreErrorKind::Unavailable`] when a database server cannot be
/// reached (try again later), and with [`StoreErrorKind::Database`] when the database fails
/// otherwise or stays locked longer than the busy timeout; other errors are listed per method.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The name remembered for `addr`, if any.
    ///
    /// A pure read: it does not bump `last_seen`. The server calls
    /// [`remember_name`](Store::remember_name) once a client is identified (known or new),
    /// which records the visit. IPv4-mapped IPv6 addresses are looked up as IPv4.
    async fn name_for_addr(&self, addr: IpAddr) -> Result<Option<String>>;

    /// Remembers that `addr` is `name`, seen at `now`.
    ///
    /// An upsert: a new address gets `first_seen = last_seen = now`; a known one gets the new
    /// name and `last_seen = now` (never moved backwards) and keeps its `first_seen`.
    ///
    /// # Errors
    /// [`StoreErrorKind::NameTaken`] if another address holds a name with the same
    /// [`name_key`] (an address renaming itself to a look-alike of its own name is fine, and
    /// an address keeping its name is never refused, even a legacy one without a key).
    async fn remember_name(&self, addr: IpAddr, name: &str, now: UnixTime) -> Result<()>;

    /// Every remembered address, ordered by address text.
    async fn list_names(&self) -> Result<Vec<NameRecord>>;

    /// Forgets `addr`. Returns whether it was known.
    async fn forget_name(&self, addr: IpAddr) -> Result<bool>;

    /// Creates a user with an already hashed password.
    ///
    /// Names are looked up exactly (case-sensitively), but a name that looks like an existing
    /// one (same [`name_key`]: `Alice` beside `alice`) cannot be created.
    ///
    /// # Errors
    /// [`StoreErrorKind::UserExists`] if a user with that name, or with a name with the same
    /// key, exists.
    async fn create_user(&self, name: &str, password_hash: &str, now: UnixTime) -> Result<()>;

    /// The user called exactly `name`, with its password hash (redacted in `Debug`).
    async fn user(&self, name: &str) -> Result<Option<UserRecord>>;

    /// The existing user, other than one called exactly `name`, whose name looks like `name`
    /// (has the same [`name_key`]): the user that would make
    /// [`create_user`](Store::create_user) refuse `name`. `None` when `name` is free or is
    /// itself a user.
    async fn look_alike_user(&self, name: &str) -> Result<Option<String>>;

    /// Every user, ordered by name.
    async fn list_users(&self) -> Result<Vec<UserRecord>>;

    /// Replaces the password hash of `name` and sets `updated_at = now`.
    /// Returns whether the user exists.
    ///
    /// Existing sessions are left alone; call
    /// [`revoke_user_sessions`](Store::revoke_user_sessions) to log the user out everywhere.
    async fn set_password(&self, name: &str, password_hash: &str, now: UnixTime) -> Result<bool>;

    /// Removes `name` and all their sessions. Returns whether the user existed.
    async fn remove_user(&self, name: &str) -> Result<bool>;

    /// Records a new session for `user`, valid while `now < expires_at`.
    ///
    /// # Errors
    /// [`StoreErrorKind::NotFound`] if `user` does not exist;
    /// [`StoreErrorKind::SessionExists`] if the hash is already stored (a token was reused).
    async fn create_session(
        &self,
        token_hash: &TokenHash,
        user: &str,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> Result<()>;

    /// The session for `token_hash` if it exists, is not revoked and has not expired at `now`
    /// (it has expired once `now >= expires_at`). Bumps its `last_seen` to `now` (never
    /// backwards) in the same statement, so a concurrent revoke either wins or comes after.
    async fn resume_session(
        &self,
        token_hash: &TokenHash,
        now: UnixTime,
    ) -> Result<Option<SessionRecord>>;

    /// Revokes the session for `token_hash` at `now`. Returns whether a live (unrevoked,
    /// unexpired) session was revoked.
    async fn revoke_session(&self, token_hash: &TokenHash, now: UnixTime) -> Result<bool>;

    /// Revokes the live session(s) whose display id ([`SessionInfo::id`]) is `id`, for
    /// `porter sessions revoke ID`. Returns how many were revoked (0 or, in practice, 1).
    async fn revoke_session_by_id(&self, id: &str, now: UnixTime) -> Result<u64>;

    /// Revokes every live session of `user` at `now`. Returns how many were revoked
    /// (0 for an unknown user).
    async fn revoke_user_sessions(&self, user: &str, now: UnixTime) -> Result<u64>;

    /// Revokes every live session at `now`. Returns how many were revoked.
    async fn revoke_all_sessions(&self, now: UnixTime) -> Result<u64>;

    /// Deletes every session that expired at or before `now` (`expires_at <= now`) or was
    /// revoked, so dead sessions do not pile up in the table and in `porter sessions list`.
    /// Live sessions are untouched. Returns how many were deleted; like every mutation, the
    /// deletion is durable before `Ok` is returned.
    async fn purge_sessions(&self, now: UnixTime) -> Result<u64>;

    /// Sessions of `user` (or of everyone for `None`), including revoked and expired ones,
    /// oldest first. They carry a display id, never anything that lets one log in.
    async fn list_sessions(&self, user: Option<&str>) -> Result<Vec<SessionInfo>>;

    /// Records that an operator removed `user` from the chat room, for `reason`: every live
    /// connection of that name ends, on every server instance, without the session being
    /// revoked (the user may come back).
    async fn kick(&self, user: &str, reason: Option<&str>, now: UnixTime) -> Result<()>;

    /// What operators did after the action `after` (an [`OperatorAction::id`]; 0 for all),
    /// oldest first, at most `limit` of them. Revoking a session (by an operator, or a client's
    /// own logout), removing a user and [`kick`](Store::kick) each record one action per
    /// session or user, durably with the change itself; a running server polls this to end
    /// the connections concerned.
    async fn operator_actions_since(&self, after: i64, limit: u32) -> Result<Vec<OperatorAction>>;

    /// The id of the last operator action recorded (0 when there is none): where a server
    /// that starts now begins to poll.
    async fn last_operator_action(&self) -> Result<i64>;

    /// Deletes operator actions recorded before `before`: a server polls every second, so an
    /// hour-old action has long been obeyed. Returns how many were deleted.
    async fn purge_operator_actions(&self, before: UnixTime) -> Result<u64>;

    /// The highest schema version applied to the database (`None` before any migration), for
    /// diagnostics and tests. Versions count this backend's own migrations.
    async fn schema_version(&self) -> Result<Option<i64>>;

    /// The latest schema version this build of the backend knows: what
    /// [`schema_version`](Store::schema_version) returns once the store is open, since opening
    /// applies every pending migration.
    fn latest_schema_version(&self) -> i64;

    /// Closes the store's connections gracefully (a clean shutdown checkpoints SQLite's WAL).
    /// Later calls fail with [`StoreErrorKind::Database`]. Dropping the store without closing
    /// is safe too: every acknowledged write is already durable.
    async fn close(&self) {}
}

/// The one form of an address the store keys on: an IPv4-mapped IPv6 address
/// (`::ffff:1.2.3.4`, what a dual-stack listener reports for IPv4 clients) becomes its IPv4
/// form, so one machine has one record however it connected. Every backend goes through
/// this function for every address it is given.
pub(crate) fn canonical_addr(addr: IpAddr) -> IpAddr {
    addr.to_canonical()
}

/// A remembered address and the name given from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameRecord {
    /// The address (IPv4-mapped IPv6 addresses are stored as IPv4).
    pub addr: IpAddr,
    /// The name the client gave.
    pub name: String,
    /// When the address was first remembered.
    pub first_seen: UnixTime,
    /// When the address was last remembered.
    pub last_seen: UnixTime,
}

/// A user account.
///
/// `Debug` redacts the password hash: hashes must never reach logs.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The user name (case-sensitive).
    pub name: String,
    /// The password as a PHC string (for example `$argon2id$v=19$...`).
    pub password_hash: String,
    /// When the user was created.
    pub created_at: UnixTime,
    /// When the password was last set.
    pub updated_at: UnixTime,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("name", &self.name)
            .field("password_hash", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// A live session, as returned by [`Store::resume_session`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The user the session belongs to.
    pub user: String,
    /// When the session was created.
    pub created_at: UnixTime,
    /// The session is valid while `now < expires_at`.
    pub expires_at: UnixTime,
    /// When the session was last used (the `now` of this resume).
    pub last_seen: UnixTime,
}

/// What an operator did, as [`Store::operator_actions_since`] reports it.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorAction {
    /// Increasing with every action recorded: the cursor of a poll.
    pub id: i64,
    /// What was done.
    pub kind: OperatorActionKind,
    /// To whom: the user (or, for a kick in `--auth ip`, the chat name).
    pub user: String,
    /// For [`OperatorActionKind::Revoked`]: the session revoked.
    pub session: Option<TokenHash>,
    /// For [`OperatorActionKind::Kicked`]: why, as the operator wrote it.
    pub reason: Option<String>,
    /// When, Unix seconds.
    pub at: UnixTime,
}

impl fmt::Debug for OperatorAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorAction")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("user", &self.user)
            .field("session", &self.session.as_ref().map(session_id))
            .field("reason", &self.reason)
            .field("at", &self.at)
            .finish()
    }
}

/// The kinds of [`OperatorAction`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OperatorActionKind {
    /// A session was revoked: its connections end.
    Revoked,
    /// A user was removed: all their connections end.
    Removed,
    /// A user was removed from the chat room; their session stays valid.
    Kicked,
}

/// A session as shown to an administrator by [`Store::list_sessions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Display id: lowercase hex of the first [`SESSION_ID_BYTES`] bytes of the token hash
    /// (see [`session_id`]). Enough to name a session, useless for logging in.
    pub id: String,
    /// The user the session belongs to.
    pub user: String,
    /// When the session was created.
    pub created_at: UnixTime,
    /// The session is valid while `now < expires_at`.
    pub expires_at: UnixTime,
    /// When the session was last used.
    pub last_seen: UnixTime,
    /// When the session was revoked, if it was.
    pub revoked_at: Option<UnixTime>,
}

impl SessionInfo {
    /// Whether the session can still be resumed at `now`.
    pub fn is_active(&self, now: UnixTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// The display id of a session: lowercase hex of the first [`SESSION_ID_BYTES`] bytes of its
/// token hash. Safe to log and to show (`session = %session_id(&hash)`).
pub fn session_id(token_hash: &TokenHash) -> String {
    use fmt::Write as _;
    let mut id = String::with_capacity(SESSION_ID_BYTES * 2);
    for byte in &token_hash[..SESSION_ID_BYTES] {
        // Writing to a String cannot fail.
        let _ = write!(id, "{byte:02x}");
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_record_debug_redacts_the_password_hash() {
        let user = UserRecord {
            name: "alice".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
            created_at: 1,
            updated_at: 2,
        };
        let shown = format!("{user:?}");
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains("argon2"), "{shown}");
        assert!(!shown.contains("aGFzaGhhc2hoYXNo"), "{shown}");
    }

    #[test]
    fn session_id_is_hex_of_the_first_eight_bytes() {
        let mut hash = [0u8; 32];
        hash[..8].copy_from_slice(&[0x00, 0x01, 0xab, 0xcd, 0xef, 0x10, 0x7f, 0xff]);
        hash[8..].fill(0xee);
        assert_eq!(session_id(&hash), "0001abcdef107fff");
    }

    #[test]
    fn session_is_active_until_revoked_or_expired() {
        let mut info = SessionInfo {
            id: String::new(),
            user: "alice".into(),
            created_at: 0,
            expires_at: 10,
            last_seen: 0,
            revoked_at: None,
        };
        assert!(info.is_active(9));
        assert!(!info.is_active(10), "expired at now == expires_at");
        info.revoked_at = Some(5);
        assert!(!info.is_active(6));
    }

    #[test]
    fn store_is_object_safe() {
        fn takes(_: Option<SharedStore>) {}
        takes(None);
    }
}
