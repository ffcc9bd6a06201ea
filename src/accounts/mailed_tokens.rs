//! Mailed tokens: password reset and email verification.
//!
//! Both are 256-bit random tokens ([`random_token`]); only their SHA-256 is stored, with an
//! expiry (`security.reset_token_ttl`, default 1 hour; `security.verification_token_ttl`,
//! default 24 hours). Redeeming is one conditional `UPDATE` that clears the token, so a link
//! works once. A new token replaces the previous one.

use crate::audit::ActivityKind;
use crate::auth::bearer::{hash_token, looks_like_token, random_token};
use crate::config::Secret;
use crate::store::{Ts, UserId, UserRow};

use super::{AccountError, Accounts, ClientInfo, validate_email};

fn invalid_token() -> AccountError {
    AccountError::Invalid {
        field: "token",
        message: "the link is invalid, expired or already used".into(),
    }
}

fn later(now: Ts, d: std::time::Duration) -> Ts {
    Ts(now.0 + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::hours(1)))
}

impl Accounts {
    /// The account a reset request names (by email, or username), if it could sign in.
    pub async fn reset_candidate(&self, login: &str) -> Result<Option<UserRow>, AccountError> {
        let login = login.trim();
        if login.is_empty() {
            return Ok(None);
        }
        Ok(self
            .store()
            .user_by_login(login)
            .await?
            .filter(|u| u.is_active && !u.is_deleted))
    }

    /// Makes a reset token for `user` (replacing any earlier one) and records the request.
    pub async fn issue_reset_token(
        &self,
        user: &UserRow,
        client: &ClientInfo,
    ) -> Result<Secret<String>, AccountError> {
        let token = random_token();
        let expires = later(self.now(), self.security().reset_token_ttl);
        self.store()
            .set_reset_token(user.id, &hash_token(&token), expires)
            .await?;
        self.record(
            self.client_event(ActivityKind::PasswordResetRequested, Some(user.id), client)
                .describe("Password reset link sent"),
        )
        .await;
        Ok(Secret::new(token))
    }

    /// The user a reset token belongs to, while it is live.
    pub async fn reset_token_user(&self, token: &str) -> Result<Option<UserRow>, AccountError> {
        if !looks_like_token(token) {
            return Ok(None);
        }
        Ok(self
            .store()
            .user_by_reset_token(&hash_token(token), self.now())
            .await?)
    }

    /// Sets a new password through a reset token (policy-checked); the token is spent and any
    /// lockout lifted; the user's sessions end in the same transaction (the caller drops them
    /// from its cache).
    pub async fn reset_password(
        &self,
        token: &str,
        password: &Secret<String>,
        client: &ClientInfo,
    ) -> Result<UserRow, AccountError> {
        let user = self
            .reset_token_user(token)
            .await?
            .ok_or_else(invalid_token)?;
        self.check_password(password, &[&user.username, &user.email])?;
        let hash = self.hasher().hash(password).await?;
        let id = self
            .store()
            .redeem_reset_token(&hash_token(token), &hash, self.now())
            .await?
            .ok_or_else(invalid_token)?;
        self.record(
            self.client_event(ActivityKind::PasswordReset, Some(id), client)
                .describe("Password set through a reset link"),
        )
        .await;
        Ok(user)
    }

    /// Makes a verification token for the account's address, or for `new_email` (an address
    /// change, applied when the link is followed).
    pub async fn issue_verification_token(
        &self,
        id: UserId,
        new_email: Option<&str>,
    ) -> Result<Secret<String>, AccountError> {
        let token = random_token();
        let now = self.now();
        let expires = later(now, self.security().verification_token_ttl);
        if !self
            .store()
            .set_verification_token(id, &hash_token(&token), expires, new_email, now)
            .await?
        {
            return Err(AccountError::NotFound);
        }
        Ok(Secret::new(token))
    }

    /// Asks to move the account to `new_email` once [`Accounts::email_change_problems`] found
    /// none (it checks the address and the password, the one hash this costs): refuses an
    /// address another account holds, then returns a verification token for the new address.
    pub async fn request_email_change(
        &self,
        id: UserId,
        new_email: &str,
        client: &ClientInfo,
    ) -> Result<(String, Secret<String>), AccountError> {
        let email = validate_email(new_email)?;
        if self
            .store()
            .user_by_email(&email)
            .await?
            .is_some_and(|u| u.id != id)
        {
            return Err(AccountError::Duplicate { field: "email" });
        }
        let token = self.issue_verification_token(id, Some(&email)).await?;
        self.record(
            self.client_event(ActivityKind::EmailChangeRequested, Some(id), client)
                .describe("Address change requested; waiting for confirmation"),
        )
        .await;
        Ok((email, token))
    }

    /// Follows a verification link: the account is verified and, for a change, moved to the
    /// new address.
    pub async fn verify_email(
        &self,
        token: &str,
        client: &ClientInfo,
    ) -> Result<UserRow, AccountError> {
        if !looks_like_token(token) {
            return Err(invalid_token());
        }
        let before = self
            .store()
            .user_by_verification_token(&hash_token(token))
            .await?;
        let user = self
            .store()
            .redeem_verification_token(&hash_token(token), self.now())
            .await?
            .ok_or_else(invalid_token)?;
        let changed = before.is_some_and(|b| b.email != user.email);
        self.record(
            self.client_event(ActivityKind::EmailVerified, Some(user.id), client)
                .describe(if changed {
                    "Email address changed and verified"
                } else {
                    "Email address verified"
                }),
        )
        .await;
        Ok(user)
    }
}
