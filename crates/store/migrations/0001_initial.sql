-- 0001_initial: Porter's first schema: names by address (--auth ip), users and sessions
-- (--auth password). Times are Unix seconds. Tables are STRICT so a wrong type is an error
-- instead of a silent conversion.

-- Who connected from where. `addr` is the canonical text of the IP address; an IPv4-mapped
-- IPv6 address is stored in its IPv4 form, so one machine has one row whichever way it came.
CREATE TABLE names (
    addr       TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
) STRICT;

-- User names are case-sensitive (BINARY collation): "alice" and "Alice" are two users.
-- `password_hash` is a PHC string made by the caller; the password itself never comes here.
CREATE TABLE users (
    name          TEXT    NOT NULL PRIMARY KEY,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

-- A session is keyed by the SHA-256 of its token; the token itself is never stored, so a
-- copy of this file does not let anyone log in. Removing a user removes their sessions.
CREATE TABLE sessions (
    token_hash BLOB    NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    user       TEXT    NOT NULL REFERENCES users (name) ON DELETE CASCADE ON UPDATE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT, WITHOUT ROWID;

-- `sessions list --user`, `revoke_user_sessions` and the ON DELETE CASCADE all look up by user.
CREATE INDEX sessions_by_user ON sessions (user);
