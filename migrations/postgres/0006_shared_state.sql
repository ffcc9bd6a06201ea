-- State a multi-step flow needs, shared by every instance on this database (issue 10: no
-- sticky sessions). Both tables are pruned by the servers once their rows have expired.

-- Fixed-window counters: failed sign-ins per client address, mail requests per address and per
-- account. One row per (scope, subject); a hit is one upsert that starts a new window when the
-- old one is over, so concurrent hits on several instances are all counted.
CREATE TABLE throttle_counts (
    scope         TEXT NOT NULL,
    subject       TEXT NOT NULL,
    window_start  TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    hits          BIGINT NOT NULL,
    PRIMARY KEY (scope, subject)
);
CREATE INDEX ix_throttle_counts_expires ON throttle_counts (expires_at);

-- Sign-ins whose password was right, waiting for the second factor. `token_hash` is the SHA-256
-- of the cookie value; `attempts` counts codes tried on this pending sign-in. The `provider_*`
-- columns are set (all three) when an external identity provider, not a password, opened the
-- code step: its id, display name and the subject it signed in, for the activity row.
-- `passkey_first` is set when the first step was a passkey without user verification: the
-- second step cannot then be a passkey again.
CREATE TABLE pending_logins (
    token_hash   TEXT PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    remember_me  BOOLEAN NOT NULL DEFAULT FALSE,
    next_path    TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    provider_id       TEXT,
    provider_name     TEXT,
    provider_subject  TEXT,
    passkey_first     BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX ix_pending_logins_expires ON pending_logins (expires_at);
