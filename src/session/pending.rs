//! The step between a correct password and a correct second factor.
//!
//! A password that passes for an account with two-factor sign-in does not make a session: it
//! makes a *pending* sign-in, held here in memory under the SHA-256 of a random cookie value,
//! that lives `security.twofa_pending_ttl` (default 5 minutes, judged on the injected clock)
//! and allows `security.twofa_max_attempts` code attempts (default 5). Only a correct code turns
//! it into a real session. State is per process: behind several instances, the code step must
//! reach the instance that took the password (sticky sessions), or the user signs in again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::future::Cache;

use crate::auth::tokens::{hash_token, looks_like_token, random_token};
use crate::store::{Ts, UserId};

/// What the code step needs to finish the sign-in.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    pub user_id: UserId,
    pub remember_me: bool,
    pub next: String,
    created: Ts,
    attempts: u32,
    /// Set when an external provider, not a password, opened the code step.
    pub provider: Option<ProviderSignIn>,
}

/// The provider sign-in that opened a code step, for the activity row that ends it.
#[derive(Debug, Clone)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PendingError {
    #[error("no pending sign-in")]
    Unknown,
    #[error("the pending sign-in expired")]
    Expired,
    #[error("too many wrong codes")]
    TooManyAttempts,
}

#[derive(Clone)]
pub struct PendingLogins {
    ttl: chrono::Duration,
    max_attempts: u32,
    entries: Cache<String, Arc<Mutex<PendingLogin>>>,
}

impl std::fmt::Debug for PendingLogins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogins").finish_non_exhaustive()
    }
}

impl PendingLogins {
    pub fn new(ttl: Duration, max_attempts: u32) -> PendingLogins {
        PendingLogins {
            ttl: chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(5)),
            max_attempts: max_attempts.max(1),
            // Memory bound only; expiry is judged on the injected clock.
            entries: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl + Duration::from_secs(60))
                .build(),
        }
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Starts a pending sign-in; returns the cookie value.
    pub async fn start(&self, user_id: UserId, remember_me: bool, next: String, now: Ts) -> String {
        self.start_with(user_id, remember_me, next, None, now).await
    }

    /// [`PendingLogins::start`] after a sign-in with an external provider.
    pub async fn start_with(
        &self,
        user_id: UserId,
        remember_me: bool,
        next: String,
        provider: Option<ProviderSignIn>,
        now: Ts,
    ) -> String {
        let token = random_token();
        let entry = PendingLogin {
            user_id,
            remember_me,
            next,
            created: now,
            attempts: 0,
            provider,
        };
        self.entries
            .insert(hash_token(&token), Arc::new(Mutex::new(entry)))
            .await;
        token
    }

    async fn entry(&self, token: &str) -> Result<Arc<Mutex<PendingLogin>>, PendingError> {
        if !looks_like_token(token) {
            return Err(PendingError::Unknown);
        }
        self.entries
            .get(&hash_token(token))
            .await
            .ok_or(PendingError::Unknown)
    }

    /// The pending sign-in behind a cookie value, if it is still usable (counts nothing).
    pub async fn peek(&self, token: &str, now: Ts) -> Result<PendingLogin, PendingError> {
        let e = self.entry(token).await?;
        let p = e.lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.usable(&p, now)?;
        Ok(p)
    }

    fn usable(&self, p: &PendingLogin, now: Ts) -> Result<(), PendingError> {
        if now.0 - p.created.0 > self.ttl {
            return Err(PendingError::Expired);
        }
        if p.attempts >= self.max_attempts {
            return Err(PendingError::TooManyAttempts);
        }
        Ok(())
    }

    /// Uses up one attempt and returns the pending sign-in to check a code against. Every
    /// attempt counts, so parallel guesses cannot exceed the limit.
    pub async fn attempt(&self, token: &str, now: Ts) -> Result<PendingLogin, PendingError> {
        let e = self.entry(token).await?;
        let snapshot = {
            let mut p = e.lock().unwrap_or_else(|e| e.into_inner());
            self.usable(&p, now)?;
            p.attempts += 1;
            p.clone()
        };
        Ok(snapshot)
    }

    /// Ends a pending sign-in (it succeeded, or it is spent).
    pub async fn finish(&self, token: &str) {
        if looks_like_token(token) {
            self.entries.invalidate(&hash_token(token)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn expires_and_counts_attempts() {
        let p = PendingLogins::new(Duration::from_secs(300), 2);
        let t0 = Ts(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default());
        let tok = p.start(UserId(1), false, "/".into(), t0).await;
        assert_eq!(p.peek(&tok, t0).await.unwrap().user_id, UserId(1));
        assert!(p.attempt(&tok, t0).await.is_ok());
        assert!(p.attempt(&tok, t0).await.is_ok());
        assert_eq!(
            p.attempt(&tok, t0).await.unwrap_err(),
            PendingError::TooManyAttempts
        );
        let tok2 = p.start(UserId(2), false, "/".into(), t0).await;
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
