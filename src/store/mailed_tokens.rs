//! Mailed tokens: the password-reset and email-verification links sent to a user, kept on
//! `users` (API tokens are another thing, in `api_tokens`). Only SHA-256 hashes are stored;
//! redeeming a token is one conditional `UPDATE` that also clears it, so a token works once.

use super::events::{Change, ChangeKind, append_change, in_tx};
use super::sessions::end_user_sessions;
use super::{SessionId, Store, StoreError, Ts, UserId, UserRow, execute, on_pool};

impl Store {
    /// Stores a reset token hash (replacing any earlier one: only the newest link works).
    pub async fn set_reset_token(
        &self,
        id: UserId,
        hash: &str,
        expires_at: Ts,
    ) -> Result<bool, StoreError> {
        let n = execute!(
            self,
            "UPDATE users SET password_reset_token = $1, password_reset_expires_at = $2 WHERE id = $3",
            hash,
            expires_at,
            id
        )?;
        Ok(n > 0)
    }

    /// The user a live reset token belongs to.
    pub async fn user_by_reset_token(
        &self,
        hash: &str,
        now: Ts,
    ) -> Result<Option<UserRow>, StoreError> {
        let row = on_pool!(self, |p| {
            sqlx::query_as::<_, UserRow>(
            "SELECT * FROM users WHERE password_reset_token = $1 AND password_reset_expires_at > $2 \
             AND NOT is_deleted"
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(p)
        .await
        })?;
        Ok(row)
    }

    /// Redeems a reset token: sets the new password hash, clears the token and any lockout, and
    /// ends every session of the user, in one transaction with its change-feed event. Returns
    /// the user when the token was live.
    pub async fn redeem_reset_token(
        &self,
        hash: &str,
        password_hash: &str,
        now: Ts,
    ) -> Result<Option<UserId>, StoreError> {
        let id = in_tx!(self, |tx| {
            let id: Option<UserId> = sqlx::query_scalar(
                "UPDATE users SET password_hash = $1, password_changed_at = $2, updated_at = $2, \
                 password_reset_token = NULL, password_reset_expires_at = NULL, \
                 failed_login_attempts = 0, account_locked_until = NULL \
                 WHERE password_reset_token = $3 AND password_reset_expires_at > $2 \
                 AND NOT is_deleted RETURNING id",
            )
            .bind(password_hash)
            .bind(now)
            .bind(hash)
            .fetch_optional(tx.conn())
            .await?;
            if let Some(user) = id {
                end_user_sessions!(tx, user, None::<SessionId>).await?;
                let change = Change::user(ChangeKind::PasswordReset, user);
                append_change!(tx, &change).await?;
            }
            id
        })?;
        Ok(id)
    }

    /// Stores a verification token hash, with the address it verifies when that is a change.
    pub async fn set_verification_token(
        &self,
        id: UserId,
        hash: &str,
        expires_at: Ts,
        pending_email: Option<&str>,
        now: Ts,
    ) -> Result<bool, StoreError> {
        let n = execute!(
            self,
            "UPDATE users SET email_verification_token = $1, email_verification_expires_at = $2, \
             pending_email = $3, updated_at = $4 WHERE id = $5",
            hash,
            expires_at,
            pending_email,
            now,
            id
        )?;
        Ok(n > 0)
    }

    /// Redeems a verification token: marks the user verified and, for a change, swaps in the
    /// pending address. A clash with another account's address is a `Duplicate` error.
    pub async fn redeem_verification_token(
        &self,
        hash: &str,
        now: Ts,
    ) -> Result<Option<UserRow>, StoreError> {
        let row = in_tx!(self, |tx| {
            let row = sqlx::query_as::<_, UserRow>(
                "UPDATE users SET email = COALESCE(pending_email, email), pending_email = NULL, \
                 is_verified = TRUE, email_verified_at = $1, updated_at = $1, \
                 email_verification_token = NULL, email_verification_expires_at = NULL \
                 WHERE email_verification_token = $2 AND email_verification_expires_at > $1 \
                 AND NOT is_deleted RETURNING *",
            )
            .bind(now)
            .bind(hash)
            .fetch_optional(tx.conn())
            .await?;
            if let Some(u) = &row {
                let change = Change::user(ChangeKind::EmailVerified, u.id);
                append_change!(tx, &change).await?;
            }
            row
        })?;
        Ok(row)
    }
}

impl Store {
    /// The user holding a verification token (live or not); for describing what it changes.
    pub async fn user_by_verification_token(
        &self,
        hash: &str,
    ) -> Result<Option<UserRow>, StoreError> {
        let row = on_pool!(self, |p| sqlx::query_as::<_, UserRow>(
            "SELECT * FROM users WHERE email_verification_token = $1"
        )
        .bind(hash)
        .fetch_optional(p)
        .await)?;
        Ok(row)
    }
}
