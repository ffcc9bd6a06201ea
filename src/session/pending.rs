//! The step between a correct password and a correct second factor.
//!
//! A password that passes for an account with two-factor sign-in does not make a session: it
//! makes a *pending* sign-in, stored in the `pending_logins` table under the SHA-256 of a random
//! cookie value, that lives `security.twofa_pending_ttl` (default 5 minutes, judged on the
//! injected clock) and allows `security.twofa_max_attempts` code attempts (default 5). Only a
//! correct code turns it into a real session. Being in the database, the code step may reach any
//! instance, and the attempt budget holds across all of them: each attempt is one conditional
//! `UPDATE … RETURNING`.

use std::time::Duration;

use crate::auth::bearer::{hash_token, looks_like_token, random_token};
use crate::store::{NewPendingLogin, PendingLoginRow, Store, StoreError, Ts, UserId};

/// What the code step needs to finish the sign-in.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    pub user_id: UserId,
    pub remember_me: bool,
    pub next: String,
    attempts: u32,
    /// Set when an external provider, not a password, opened the code step.
    pub provider: Option<ProviderSignIn>,
    /// The first step was a passkey without user verification: the second cannot be one.
    pub passkey_first: bool,
}

/// The provider sign-in that opened a code step, for the activity row that ends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSignIn {
    pub id: String,
    pub name: String,
    pub subject: String,
}

impl PendingLogin {
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

impl From<PendingLoginRow> for PendingLogin {
    fn from(r: PendingLoginRow) -> Self {
        PendingLogin {
            user_id: r.user_id,
            remember_me: r.remember_me,
            next: r.next_path,
            attempts: u32::try_from(r.attempts).unwrap_or(u32::MAX),
            // All three columns or none: they are written together.
            provider: match (r.provider_id, r.provider_name, r.provider_subject) {
                (Some(id), Some(name), Some(subject)) => Some(ProviderSignIn { id, name, subject }),
                _ => None,
            },
            passkey_first: r.passkey_first,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PendingError {
    #[error("no pending sign-in")]
    Unknown,
    #[error("the pending sign-in expired")]
    Expired,
    #[error("too many wrong codes")]
    TooManyAttempts,
    /// The database could not be asked (logged where it happened).
    #[error("pending sign-ins are unavailable")]
    Unavailable,
}

/// How long a pending sign-in's row is kept after it expired, so that a late code step is told
/// "expired" rather than "unknown".
const KEEP_EXPIRED: chrono::Duration = chrono::Duration::hours(1);

#[derive(Clone)]
pub struct PendingLogins {
    store: Store,
    ttl: chrono::Duration,
    max_attempts: u32,
}

impl std::fmt::Debug for PendingLogins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogins").finish_non_exhaustive()
    }
}

fn unavailable(e: &StoreError) -> PendingError {
    tracing::error!(error = %e, "pending sign-in: database error");
    PendingError::Unavailable
}

impl PendingLogins {
    pub fn new(store: Store, ttl: Duration, max_attempts: u32) -> PendingLogins {
        PendingLogins {
            store,
            ttl: chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(5)),
            max_attempts: max_attempts.max(1),
        }
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Before this, an expired pending sign-in may be deleted.
    pub fn prune_before(&self, now: Ts) -> Ts {
        Ts(now.0 - KEEP_EXPIRED)
    }

    /// Starts a pending sign-in; returns the cookie value.
    pub async fn start(
        &self,
        user_id: UserId,
        remember_me: bool,
        next: String,
        now: Ts,
    ) -> Result<String, StoreError> {
        self.start_with(user_id, remember_me, next, None, now).await
    }

    /// [`PendingLogins::start`] after a passkey without user verification (one factor).
    pub async fn start_after_passkey(
        &self,
        user_id: UserId,
        next: String,
        now: Ts,
    ) -> Result<String, StoreError> {
        self.insert(user_id, false, next, None, true, now).await
    }

    /// [`PendingLogins::start`], also after a sign-in with an external provider.
    pub async fn start_with(
        &self,
        user_id: UserId,
        remember_me: bool,
        next: String,
        provider: Option<ProviderSignIn>,
        now: Ts,
    ) -> Result<String, StoreError> {
        self.insert(user_id, remember_me, next, provider, false, now)
            .await
    }

    async fn insert(
        &self,
        user_id: UserId,
        remember_me: bool,
        next: String,
        provider: Option<ProviderSignIn>,
        passkey_first: bool,
        now: Ts,
    ) -> Result<String, StoreError> {
        let token = random_token();
        let expires = Ts(now.0 + self.ttl);
        self.store
            .insert_pending_login(
                &hash_token(&token),
                &NewPendingLogin {
                    user_id,
                    remember_me,
                    next_path: &next,
                    provider_id: provider.as_ref().map(|p| p.id.as_str()),
                    provider_name: provider.as_ref().map(|p| p.name.as_str()),
                    provider_subject: provider.as_ref().map(|p| p.subject.as_str()),
                    passkey_first,
                },
                now,
                expires,
            )
            .await?;
        Ok(token)
    }

    /// Why a pending sign-in cannot be used at `now`, or it as stored.
    async fn classify(&self, hash: &str, now: Ts) -> Result<PendingLoginRow, PendingError> {
        let row = self
            .store
            .pending_login(hash)
            .await
            .map_err(|e| unavailable(&e))?
            .ok_or(PendingError::Unknown)?;
        if now > row.expires_at {
            return Err(PendingError::Expired);
        }
        if row.attempts >= i64::from(self.max_attempts) {
            return Err(PendingError::TooManyAttempts);
        }
        Ok(row)
    }

    /// The pending sign-in behind a cookie value, if it is still usable (counts nothing).
    pub async fn peek(&self, token: &str, now: Ts) -> Result<PendingLogin, PendingError> {
        if !looks_like_token(token) {
            return Err(PendingError::Unknown);
        }
        self.classify(&hash_token(token), now).await.map(Into::into)
    }

    /// Uses up one attempt and returns the pending sign-in to check a code against. Every
    /// attempt counts, so parallel guesses cannot exceed the limit.
    pub async fn attempt(&self, token: &str, now: Ts) -> Result<PendingLogin, PendingError> {
        if !looks_like_token(token) {
            return Err(PendingError::Unknown);
        }
        let hash = hash_token(token);
        match self
            .store
            .reserve_pending_attempt(&hash, now, i64::from(self.max_attempts))
            .await
        {
            Ok(Some(row)) => Ok(row.into()),
            // Refused: say why (a concurrent attempt may have just spent the last slot).
            Ok(None) => match self.classify(&hash, now).await {
                Ok(_) => Err(PendingError::TooManyAttempts),
                Err(e) => Err(e),
            },
            Err(e) => Err(unavailable(&e)),
        }
    }

    /// Ends a pending sign-in (it succeeded, or it is spent).
    pub async fn finish(&self, token: &str) {
        if looks_like_token(token)
            && let Err(e) = self.store.delete_pending_login(&hash_token(token)).await
        {
            tracing::error!(error = %e, "pending sign-in: cannot delete");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewUser, Tier};

    fn user(name: &str, now: Ts) -> NewUser {
        NewUser {
            username: name.into(),
            email: format!("{name}@example.com"),
            password_hash: None,
            first_name: None,
            last_name: None,
            phone: None,
            company_name: None,
            tier: Tier::Free,
            subscription_status: "active".into(),
            credits_balance: 0,
            is_active: true,
            is_verified: true,
            is_admin: false,
            is_superuser: false,
            email_notifications: true,
            sms_notifications: false,
            timezone: "UTC".into(),
            language: "en".into(),
            created_at: now,
            last_login: None,
            legacy_lead_id: None,
        }
    }

    #[tokio::test]
    async fn expires_and_counts_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let store = Store::connect(&url, 2).await.unwrap();
        store.migrate().await.unwrap();
        let t0 = Ts(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default());
        let mut ids = Vec::new();
        for name in ["one", "two"] {
            let u = store.insert_user(&user(name, t0), t0).await.unwrap();
            ids.push(u.id);
        }
        let p = PendingLogins::new(store, Duration::from_secs(300), 2);
        let tok = p.start(ids[0], false, "/".into(), t0).await.unwrap();
        assert_eq!(p.peek(&tok, t0).await.unwrap().user_id, ids[0]);
        assert_eq!(p.attempt(&tok, t0).await.unwrap().attempts(), 1);
        assert_eq!(p.attempt(&tok, t0).await.unwrap().attempts(), 2);
        assert_eq!(
            p.attempt(&tok, t0).await.unwrap_err(),
            PendingError::TooManyAttempts
        );
        assert_eq!(
            p.peek(&tok, t0).await.unwrap_err(),
            PendingError::TooManyAttempts
        );
        let via = ProviderSignIn {
            id: "corp".into(),
            name: "Corp SSO".into(),
            subject: "sub-1".into(),
        };
        let tok3 = p
            .start_with(ids[1], false, "/y".into(), Some(via.clone()), t0)
            .await
            .unwrap();
        let got = p.attempt(&tok3, t0).await.unwrap();
        assert_eq!((got.provider, got.next.as_str()), (Some(via), "/y"));
        let tok2 = p.start(ids[1], true, "/x".into(), t0).await.unwrap();
        assert_eq!(p.peek(&tok2, t0).await.unwrap().provider, None);
        let late = Ts(t0.0 + chrono::Duration::seconds(301));
        assert_eq!(
            p.attempt(&tok2, late).await.unwrap_err(),
            PendingError::Expired
        );
        p.finish(&tok2).await;
        assert_eq!(p.peek(&tok2, t0).await.unwrap_err(), PendingError::Unknown);
        assert_eq!(p.peek("nope", t0).await.unwrap_err(), PendingError::Unknown);
    }
}
