-- Accounts at external OpenID Connect providers linked to Gatehouse users (issue 15). A
-- provider's subject identifies one user; a user may link one subject per provider.
CREATE TABLE user_identities (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider      TEXT NOT NULL,
    subject       TEXT NOT NULL,
    email         TEXT,
    linked_at     TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ,
    UNIQUE (provider, subject),
    UNIQUE (user_id, provider)
);
CREATE INDEX ix_user_identities_user ON user_identities (user_id);
