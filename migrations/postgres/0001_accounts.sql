-- Accounts, roles, sessions and the activity log (see USER_MANAGEMENT_SYSTEM.md).
-- Timestamps are TIMESTAMPTZ; metadata is JSONB.
-- Token columns hold SHA-256 hashes, never the tokens themselves.

CREATE TABLE users (
    id                            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    is_active                     BOOLEAN NOT NULL DEFAULT TRUE,
    is_verified                   BOOLEAN NOT NULL DEFAULT FALSE,
    is_admin                      BOOLEAN NOT NULL DEFAULT FALSE,
    is_superuser                  BOOLEAN NOT NULL DEFAULT FALSE,
    is_deleted                    BOOLEAN NOT NULL DEFAULT FALSE,
    -- subscription
    subscription_status           TEXT NOT NULL DEFAULT 'active',
    subscription_tier             TEXT NOT NULL DEFAULT 'free'
        CHECK (subscription_tier IN ('free', 'beta', 'premium', 'enterprise')),
    credits_balance               BIGINT NOT NULL DEFAULT 3 CHECK (credits_balance >= 0),
    -- security
    twofa_enabled                 BOOLEAN NOT NULL DEFAULT FALSE,
    twofa_secret                  TEXT,
    twofa_last_step               BIGINT,
    twofa_recovery_codes          TEXT,
    failed_login_attempts         BIGINT NOT NULL DEFAULT 0,
    account_locked_until          TIMESTAMPTZ,
    -- tokens (hashes) and their expiry
    password_reset_token          TEXT,
    password_reset_expires_at     TIMESTAMPTZ,
    password_reset_sent_at        TIMESTAMPTZ,
    email_verification_token      TEXT,
    email_verification_expires_at TIMESTAMPTZ,
    pending_email                 TEXT,
    -- preferences
    email_notifications           BOOLEAN NOT NULL DEFAULT TRUE,
    sms_notifications             BOOLEAN NOT NULL DEFAULT FALSE,
    timezone                      TEXT NOT NULL DEFAULT 'UTC',
    language                      TEXT NOT NULL DEFAULT 'en',
    -- timestamps
    created_at                    TIMESTAMPTZ NOT NULL,
    updated_at                    TIMESTAMPTZ NOT NULL,
    deleted_at                    TIMESTAMPTZ,
    last_login                    TIMESTAMPTZ,
    -- bookkeeping the product needs
    last_login_ip                 TEXT,
    login_count                   BIGINT NOT NULL DEFAULT 0,
    password_changed_at           TIMESTAMPTZ,
    email_verified_at             TIMESTAMPTZ,
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
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_name   TEXT NOT NULL,
    granted_at  TIMESTAMPTZ NOT NULL,
    granted_by  BIGINT REFERENCES users (id) ON DELETE SET NULL,
    expires_at  TIMESTAMPTZ,
    is_active   BOOLEAN NOT NULL DEFAULT TRUE,
    UNIQUE (user_id, role_name)
);
CREATE INDEX ix_user_roles_role ON user_roles (role_name);

CREATE TABLE user_sessions (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_token   TEXT NOT NULL UNIQUE,
    ip_address      TEXT,
    user_agent      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    last_activity   TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    is_active       BOOLEAN NOT NULL DEFAULT TRUE,
    twofa_verified  BOOLEAN NOT NULL DEFAULT FALSE,
    remember_me     BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX ix_user_sessions_user ON user_sessions (user_id, is_active);
CREATE INDEX ix_user_sessions_expires ON user_sessions (expires_at);

CREATE TABLE user_activity_log (
    id                    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id               BIGINT REFERENCES users (id) ON DELETE SET NULL,
    activity_type         TEXT NOT NULL,
    activity_description  TEXT,
    ip_address            TEXT,
    user_agent            TEXT,
    metadata              JSONB,
    created_at            TIMESTAMPTZ NOT NULL
);
CREATE INDEX ix_activity_user_time ON user_activity_log (user_id, created_at);
CREATE INDEX ix_activity_type_time ON user_activity_log (activity_type, created_at);
CREATE INDEX ix_activity_time ON user_activity_log (created_at);
