-- 0001_initial: Porter's schema on PostgreSQL, in one step: what SQLite's migrations 0001 to
-- 0003 built over time (no PostgreSQL database predates any of them). Names by address
-- (--auth ip), users and sessions (--auth password), and the operator actions that every
-- instance sharing the database polls.
--
-- Times are Unix seconds (BIGINT), as the store's callers count them. Text compares and sorts
-- by code point (COLLATE "C"), as SQLite's BINARY does, whatever the database's locale: user
-- names are case-sensitive and listed `Bob` before `alice` on both backends.

-- Who connected from where. `addr` is the canonical text of the IP address (IPv4-mapped IPv6
-- addresses in their IPv4 form). `name_key` is the name's comparison key (the case-folded
-- confusable skeleton of Unicode TS 39, computed in Rust: see porter_store::name_key); it is
-- unique, so `Bob` or `bоb` (Cyrillic о) cannot be given from a second address beside `bob`.
-- The unique index is also what settles two instances remembering look-alikes at the same
-- moment: the second insert waits for the first transaction and then fails.
CREATE TABLE names (
    addr       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name       TEXT COLLATE "C" NOT NULL,
    name_key   TEXT COLLATE "C" NOT NULL CONSTRAINT names_by_key UNIQUE,
    first_seen BIGINT           NOT NULL,
    last_seen  BIGINT           NOT NULL
);

-- User names are case-sensitive; their keys are unique, as for `names`. `password_hash` is a
-- PHC string made by the caller; the password itself never comes here.
CREATE TABLE users (
    name          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name_key      TEXT COLLATE "C" NOT NULL CONSTRAINT users_by_key UNIQUE,
    password_hash TEXT             NOT NULL,
    created_at    BIGINT           NOT NULL,
    updated_at    BIGINT           NOT NULL
);

-- A session is keyed by the SHA-256 of its token; the token itself is never stored, so a copy
-- of the database does not let anyone log in. Removing a user removes their sessions. (The
-- column is `user_name`: `user` is a reserved word here.)
CREATE TABLE sessions (
    token_hash BYTEA            NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    user_name  TEXT COLLATE "C" NOT NULL
               REFERENCES users (name) ON DELETE CASCADE ON UPDATE CASCADE,
    created_at BIGINT           NOT NULL,
    expires_at BIGINT           NOT NULL,
    last_seen  BIGINT           NOT NULL,
    revoked_at BIGINT
);

-- `sessions list --user`, `revoke_user_sessions` and the ON DELETE CASCADE all look up by user.
CREATE INDEX sessions_by_user ON sessions (user_name);

-- What operators did that live connections must obey. Each server instance polls the rows
-- after the last id it saw. Revocations and removals are recorded by triggers, in the same
-- transaction as the change itself, so no code path (admin command, logout, another tool) can
-- forget to; kicks are recorded by `Store::kick`. Old rows are purged by age.
CREATE TABLE operator_actions (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action     TEXT             NOT NULL CHECK (action IN ('revoked', 'removed', 'kicked')),
    user_name  TEXT COLLATE "C" NOT NULL,
    token_hash BYTEA            CHECK (token_hash IS NULL OR length(token_hash) = 32),
    reason     TEXT,
    at         BIGINT           NOT NULL
);

-- Ids must become visible in increasing order: a poll that has seen id 7 never looks below 7
-- again, so an action that drew id 6 but committed after 7 would never be obeyed. A sequence
-- does not promise that between concurrent transactions (SQLite's single writer does). A lock
-- does: a transaction takes it before it draws an id and keeps it until it commits, so actions
-- are numbered and committed one transaction at a time. EXCLUSIVE mode lets the polls'
-- SELECTs through. Operator actions are rare, so queueing them costs nothing that matters.
--
-- The lock must come before anything else the statement locks, or two statements could each
-- hold what the other waits for: an INSERT INTO operator_actions holds the table in ROW
-- EXCLUSIVE mode from its start, so two plain inserts that both wait for EXCLUSIVE deadlock.
-- Hence every action is recorded through `record_operator_action`, which takes the lock before
-- its own INSERT, and the statements that record actions through triggers take it in a
-- statement trigger, before they lock any row of theirs.
CREATE FUNCTION lock_operator_actions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE operator_actions IN EXCLUSIVE MODE;
    RETURN NULL;
END
$$;

-- Records one action, lock first (see above): `Store::kick` calls it, and so do the triggers.
-- (Its parameters are named apart from the columns, which PL/pgSQL would find ambiguous.)
CREATE FUNCTION record_operator_action(
    kind TEXT, who TEXT, session BYTEA, why TEXT, done_at BIGINT
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE operator_actions IN EXCLUSIVE MODE;
    INSERT INTO operator_actions (action, user_name, token_hash, reason, at)
    VALUES (kind, who, session, why, done_at);
END
$$;

-- A guard for any other insert (a statement trigger runs before the row's id is drawn): it
-- keeps ids in commit order, although two such inserts at once may deadlock, and one of them
-- then fails instead of an action being missed.
CREATE TRIGGER operator_action_numbered_in_commit_order
BEFORE INSERT ON operator_actions
FOR EACH STATEMENT EXECUTE FUNCTION lock_operator_actions();

CREATE TRIGGER sessions_revoking_lock_operator_actions
BEFORE UPDATE OF revoked_at ON sessions
FOR EACH STATEMENT EXECUTE FUNCTION lock_operator_actions();

CREATE TRIGGER users_removing_lock_operator_actions
BEFORE DELETE ON users
FOR EACH STATEMENT EXECUTE FUNCTION lock_operator_actions();

-- A session revoked (by an operator, or by its own client's logout): its live connections end.
CREATE FUNCTION record_session_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_operator_action('revoked', NEW.user_name, NEW.token_hash, NULL, NEW.revoked_at);
    RETURN NULL;
END
$$;

CREATE TRIGGER session_revoked
AFTER UPDATE OF revoked_at ON sessions
FOR EACH ROW WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
EXECUTE FUNCTION record_session_revoked();

-- A user removed: every live connection of theirs ends. The store is given no time for a
-- removal, so the time is the database's own; it is informational only.
CREATE FUNCTION record_user_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_operator_action(
        'removed', OLD.name, NULL, NULL, CAST(extract(epoch FROM now()) AS BIGINT));
    RETURN NULL;
END
$$;

CREATE TRIGGER user_removed
AFTER DELETE ON users
FOR EACH ROW EXECUTE FUNCTION record_user_removed();
