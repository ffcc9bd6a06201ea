-- Accounts, roles, sessions and the activity log (see USER_MANAGEMENT_SYSTEM.md).
-- Timestamps are fixed-width RFC 3339 UTC text so that text order is time order.
-- Token columns hold SHA-256 hashes, never the tokens themselves.

CREATE TABLE users (
    id                            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- authentication
    username                      TEXT NOT NULL,
    email                         TEXT NOT NULL,
    password_hash                 TEXT,
    -- profile
    first_name                    TEXT,
    last_name                     TEXT,
    full_name                     TEXT,
    phone                         TEXT,
    company_name                  TEXT,
    -- status
    is_active                     BOOLEAN NOT NULL DEFAULT 1,
    is_verified                   BOOLEAN NOT NULL DEFAULT 0,
    is_admin                      BOOLEAN NOT NULL DEFAULT 0,
    is_superuser                  BOOLEAN NOT NULL DEFAULT 0,
    is_deleted                    BOOLEAN NOT NULL DEFAULT 0,
    -- subscription
    subscription_status           TEXT NOT NULL DEFAULT 'active',
    subscription_tier             TEXT NOT NULL DEFAULT 'free'
        CHECK (subscription_tier IN ('free', 'beta', 'premium', 'enterprise')),
    credits_balance               INTEGER NOT NULL DEFAULT 3 CHECK (credits_balance >= 0),
    -- security
    twofa_enabled                 BOOLEAN NOT NULL DEFAULT 0,
    twofa_secret                  TEXT,
    twofa_last_step               INTEGER,
    twofa_recovery_codes          TEXT,
    failed_login_attempts         INTEGER NOT NULL DEFAULT 0,
    account_locked_until          TEXT,
    -- tokens (hashes) and their expiry
    password_reset_token          TEXT,
    password_reset_expires_at     TEXT,
    password_reset_sent_at        TEXT,
    email_verification_token      TEXT,
    email_verification_expires_at TEXT,
    pending_email                 TEXT,
    -- preferences
    email_notifications           BOOLEAN NOT NULL DEFAULT 1,
    sms_notifications             BOOLEAN NOT NULL DEFAULT 0,
    timezone                      TEXT NOT NULL DEFAULT 'UTC',
    language                      TEXT NOT NULL DEFAULT 'en',
    -- timestamps
    created_at                    TEXT NOT NULL,
    updated_at                    TEXT NOT NULL,
    deleted_at                    TEXT,
    last_login                    TEXT,
    -- bookkeeping the product needs
    last_login_ip                 TEXT,
    login_count                   INTEGER NOT NULL DEFAULT 0,
    password_changed_at           TEXT,
    email_verified_at             TEXT,
    legacy_lead_id                TEXT
);

CREATE UNIQUE INDEX ux_users_username_ci ON users (lower(username));
CREATE UNIQUE INDEX ux_users_email_ci ON users (lower(email));
CREATE INDEX ix_users_active ON users (is_active, is_deleted);
CREATE INDEX ix_users_tier ON users (subscription_tier);
CREATE INDEX ix_users_created_at ON users (created_at);
CREATE INDEX ix_users_reset_token ON users (password_reset_token) WHERE password_reset_token IS NOT NULL;
CREATE INDEX ix_users_verification_token ON users (email_verification_token) WHERE email_verification_token IS NOT NULL;
CREATE UNIQUE INDEX ux_users_legacy_lead_id ON users (legacy_lead_id) WHERE legacy_lead_id IS NOT NULL;

CREATE TABLE user_roles (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_name   TEXT NOT NULL,
    granted_at  TEXT NOT NULL,
    granted_by  INTEGER REFERENCES users (id) ON DELETE SET NULL,
    expires_at  TEXT,
    is_active   BOOLEAN NOT NULL DEFAULT 1,
    UNIQUE (user_id, role_name)
);
CREATE INDEX ix_user_roles_role ON user_roles (role_name);

CREATE TABLE user_sessions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_token   TEXT NOT NULL UNIQUE,
    ip_address      TEXT,
    user_agent      TEXT,
    created_at      TEXT NOT NULL,
    last_activity   TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    is_active       BOOLEAN NOT NULL DEFAULT 1,
    twofa_verified  BOOLEAN NOT NULL DEFAULT 0,
    remember_me     BOOLEAN NOT NULL DEFAULT 0
);
CREATE INDEX ix_user_sessions_user ON user_sessions (user_id, is_active);
CREATE INDEX ix_user_sessions_expires ON user_sessions (expires_at);

CREATE TABLE user_activity_log (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id               INTEGER REFERENCES users (id) ON DELETE SET NULL,
    activity_type         TEXT NOT NULL,
    activity_description  TEXT,
    ip_address            TEXT,
    user_agent            TEXT,
    metadata              TEXT,
    created_at            TEXT NOT NULL
);
CREATE INDEX ix_activity_user_time ON user_activity_log (user_id, created_at);
CREATE INDEX ix_activity_type_time ON user_activity_log (activity_type, created_at);
CREATE INDEX ix_activity_time ON user_activity_log (created_at);
