-- 0003_operator_actions: what operators did that live connections must obey, for every
-- server instance sharing this database to read (each polls the rows after the last it saw).
-- Revocations and removals are recorded by triggers, in the same transaction as the change
-- itself, so no code path (admin command, logout, a future backend tool) can forget to;
-- kicks are inserted by `Store::kick`. Old rows are purged with dead sessions.
CREATE TABLE operator_actions (
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    action     TEXT    NOT NULL CHECK (action IN ('revoked', 'removed', 'kicked')),
    user       TEXT    NOT NULL,
    token_hash BLOB    CHECK (token_hash IS NULL OR length(token_hash) = 32),
    reason     TEXT,
    at         INTEGER NOT NULL
) STRICT;

-- A session revoked (by an operator, or by its own client's logout): its live connections end.
CREATE TRIGGER session_revoked AFTER UPDATE OF revoked_at ON sessions
WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
BEGIN
    INSERT INTO operator_actions (action, user, token_hash, at)
    VALUES ('revoked', NEW.user, NEW.token_hash, NEW.revoked_at);
END;

-- A user removed: every live connection of theirs ends. SQLite has no clock of ours, so the
-- time is the database's own; it is informational only.
CREATE TRIGGER user_removed AFTER DELETE ON users
BEGIN
    INSERT INTO operator_actions (action, user, at)
    VALUES ('removed', OLD.name, CAST(strftime('%s', 'now') AS INTEGER));
END;
