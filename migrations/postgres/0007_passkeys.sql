-- Passkeys (WebAuthn credentials, issue 14): a user's second factor, or both factors when the
-- authenticator verified the user. `public_key` and `dynamic_state` are the relying-party
-- library's own encodings of the credential's fixed and changing state (`transports` its bit
-- set of transports); `counter` is the last
-- signature counter seen (a lower one later is refused).
CREATE TABLE user_passkeys (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id   TEXT NOT NULL UNIQUE,
    public_key      BYTEA NOT NULL,
    counter         BIGINT NOT NULL DEFAULT 0,
    dynamic_state   BYTEA NOT NULL,
    transports      BIGINT NOT NULL DEFAULT 0,
    name            TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    last_used_at    TIMESTAMPTZ
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
    state       BYTEA NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
