-- 0002_name_keys: names cannot impersonate. Every user name and every name given from an
-- address gets its comparison key (the case-folded confusable skeleton of Unicode TS 39,
-- computed in Rust: see porter_store::name_key), unique per table, so `Bob` or `bоb` (Cyrillic
-- о) cannot exist beside `bob`. NULL is allowed, and repeated NULLs do not collide: rows from
-- before this migration get their key when the store opens, except those that look like an
-- older row, which keep NULL and keep working (see docs/PROTOCOL.md).
ALTER TABLE names ADD COLUMN name_key TEXT;
ALTER TABLE users ADD COLUMN name_key TEXT;
CREATE UNIQUE INDEX names_by_key ON names (name_key);
CREATE UNIQUE INDEX users_by_key ON users (name_key);
