-- The change feed: every change that running processes must apply to their caches (a session
-- ended, an account locked, a role revoked, ...) appends a row here in the same transaction as
-- the change. Every server tails the table by id and evicts what each row names. Rows are
-- pruned after an hour by the tailers.
--
-- AUTOINCREMENT: ids are never reused, so "id > last seen" never skips a row.

CREATE TABLE change_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    kind        TEXT NOT NULL,
    user_id     INTEGER,
    token_hash  TEXT,
    detail      TEXT
);
CREATE INDEX ix_change_events_created ON change_events (created_at);
