-- Wrong second-factor codes per account (issue 16): counted in the database so that every
-- pending sign-in and every instance share one budget. Reserved before a code is checked.
ALTER TABLE users ADD COLUMN failed_twofa_attempts INTEGER NOT NULL DEFAULT 0;
