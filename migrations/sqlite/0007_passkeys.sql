-- Passkeys (WebAuthn credentials, issue 14): a user's second factor, or both factors when the
-- authenticator verified the user. `public_key` and `dynamic_state` are the relying-party
-- library's own encodings of the credential's fixed and changing state (`transports` its bit
-- set of transports); `counter` is the last
-- signature counter seen (a lower one later is refused).
CREATE TABLE user_passkeys (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id   TEXT NOT NULL UNIQUE,
    public_key      BLOB NOT NULL,
    counter         INTEGER NOT NULL DEFAULT 0,
    dynamic_state   BLOB NOT NULL,
    transports      INTEGER NOT NULL DEFAULT 0,
    name            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    last_used_at    TEXT
);
CREATE INDEX ix_user_passkeys_user ON user_passkeys (user_id);

-- How a session was signed in, for the identity assertion's `amr`: 'pwd' (password, plus a
-- code when twofa_verified), 'pwd+hwk' (password and passkey), 'hwk' (passkey without user
-- verification), 'hwk+user' (passkey with user verification).
ALTER TABLE user_sessions ADD COLUMN auth_method TEXT NOT NULL DEFAULT 'pwd';

-- Passkey ceremonies waiting for the browser's answer (5 minutes), keyed by their challenge,
-- so that any instance can finish a ceremony another one started. Taken (deleted) once.
CREATE TABLE passkey_ceremonies (
    challenge   TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    state       BLOB NOT NULL,
    expires_at  TEXT NOT NULL
);
