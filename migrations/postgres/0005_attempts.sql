-- Wrong second-factor codes per account (issue 16): counted in the database so that every
-- pending sign-in and every instance share one budget. Reserved before a code is checked.
ALTER TABLE users ADD COLUMN failed_twofa_attempts BIGINT NOT NULL DEFAULT 0;

-- The confusable skeleton of the username (Unicode TR39, case-folded), so that a new name that
-- looks like an existing one is refused. Filled in by the application (rows made before this
-- column, or by an import, are filled in before the next check).
ALTER TABLE users ADD COLUMN username_skeleton TEXT;
CREATE INDEX ix_users_username_skeleton ON users (username_skeleton);
