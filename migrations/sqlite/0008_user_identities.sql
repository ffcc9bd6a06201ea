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

-- Provider sign-ins in progress (between `/_auth/oidc/<id>/start` and its callback), shared by
-- every instance on this database so the callback may reach any of them (issue 10: no sticky
-- sessions). `token_hash` is the SHA-256 of the `gatehouse_oidc` cookie value; a row is taken
-- (deleted) once by its callback, and pruned by the servers once expired. `link_user_id` is set
-- when a signed-in user links the provider from the account page.
CREATE TABLE oidc_flows (
    token_hash     TEXT PRIMARY KEY,
    provider       TEXT NOT NULL,
    state          TEXT NOT NULL,
    nonce          TEXT NOT NULL,
    pkce_verifier  TEXT NOT NULL,
    next_path      TEXT NOT NULL,
    link_user_id   INTEGER REFERENCES users (id) ON DELETE CASCADE,
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL
);
CREATE INDEX ix_oidc_flows_expires ON oidc_flows (expires_at);
