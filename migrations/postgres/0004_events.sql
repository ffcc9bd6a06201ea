-- The change feed: every change that running processes must apply to their caches (a session
-- ended, an account locked, a role revoked, ...) appends a row here in the same transaction as
-- the change. Every server LISTENs on the schema's channel, reads rows by id when woken and
-- evicts what each row names. Rows are pruned after an hour by the tailers.
--
-- Writers take `LOCK TABLE change_events IN EXCLUSIVE MODE` right before their insert (the last
-- statement of their transaction), so ids become visible in id order and a reader that has
-- seen id n has seen every committed id below n.

CREATE TABLE change_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    kind        TEXT NOT NULL,
    user_id     BIGINT,
    token_hash  TEXT,
    detail      TEXT
);
CREATE INDEX ix_change_events_created ON change_events (created_at);

-- One channel per schema (several deployments, or the test suite, may share a database); the
-- name is hashed to stay within the 63-byte identifier limit. NOTIFY is delivered at commit.
CREATE FUNCTION change_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gatehouse_changes_' || md5(TG_TABLE_SCHEMA), '');
    RETURN NULL;
END
$$;

CREATE TRIGGER change_events_notify AFTER INSERT ON change_events
    FOR EACH STATEMENT EXECUTE FUNCTION change_events_notify();
