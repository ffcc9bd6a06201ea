-- Accounts at external OpenID Connect providers linked to Gatehouse users (issue 15). A
-- provider's subject identifies one user; a user may link one subject per provider.
CREATE TABLE user_identities (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider      TEXT NOT NULL,
    subject       TEXT NOT NULL,
    email         TEXT,
    linked_at     TEXT NOT NULL,
    last_used_at  TEXT,
    UNIQUE (provider, subject),
    UNIQUE (user_id, provider)
);
CREATE INDEX ix_user_identities_user ON user_identities (user_id);
