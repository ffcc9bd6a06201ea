//! Signing in with a password, and the lockout that guards it.
//!
//! Every refusal looks the same from outside: unknown, inactive, deleted, locked and wrong
//! password all answer [`AuthFailure::InvalidCredentials`] after the same hashing work, so
//! neither the answer nor its timing tells which accounts exist. Attempts are reserved in the
//! database before the password is checked, so concurrent guesses on several instances share
//! one budget of `security.lockout_threshold`.

use std::sync::atomic::Ordering;

use chrono::Duration as ChronoDuration;

use super::{Accounts, AuthFailure, ClientInfo};
use crate::audit::{ActivityEvent, ActivityKind};
use crate::auth::password::Verified;
use crate::config::Secret;
use crate::store::{Ts, UserId, UserRow};

impl Accounts {
    /// Signs in by username or email. Unknown user, wrong password, inactive, deleted and locked
    /// accounts all give the same [`AuthFailure::InvalidCredentials`], after the same amount of
    /// hashing work.
    pub async fn authenticate(
        &self,
        login: &str,
        password: &Secret<String>,
        client: &ClientInfo,
    ) -> Result<UserRow, AuthFailure> {
        let store = &self.inner.store;
        let now = self.now();
        let user = store.user_by_login(login.trim()).await?;
        let Some(user) = user.filter(|u| !u.is_deleted) else {
            let event = self
                .client_event(ActivityKind::LoginFailed, None, client)
                .describe("Sign-in failed: unknown account");
            return self.refuse(password, event).await;
        };
        let failed = |why: &'static str| {
            self.client_event(ActivityKind::LoginFailed, Some(user.id), client)
                .describe(format!("Sign-in failed: {why}"))
        };
        if !user.is_active {
            return self.refuse(password, failed("account inactive")).await;
        }
        // Reserve the attempt before checking it: concurrent guesses each need a slot from the
        // database, so at most `lockout_threshold` of them are ever verified per lockout.
        let threshold = i64::from(self.inner.security.lockout_threshold);
        let until = self.lock_until(now);
        let Some(attempt) = store
            .reserve_login_attempt(user.id, threshold, now, until)
            .await?
        else {
            return self.refuse(password, failed("account locked")).await;
        };
        match self
            .inner
            .hasher
            .verify(user.password_hash.as_deref(), password)
            .await?
        {
            Verified::Match { upgrade } => {
                let rehash = if upgrade {
                    Some(self.inner.hasher.hash(password).await?)
                } else {
                    None
                };
                // Gives the reserved slots back and lifts a lock this very attempt set.
                store
                    .record_login_success(user.id, now, client.ip.as_deref(), rehash.as_deref())
                    .await?;
                let refreshed = store
                    .user_by_id(user.id)
                    .await?
                    .ok_or(AuthFailure::InvalidCredentials)?;
                Ok(refreshed)
            }
            Verified::Mismatch => {
                // The slot stays taken; the one that reached the threshold locked the account.
                self.record(failed("wrong password")).await;
                if attempt >= threshold {
                    self.locked_out(user.id, until, client).await;
                }
                Err(AuthFailure::InvalidCredentials)
            }
        }
    }

    /// Refuses after the same hashing work a wrong password costs, so that the refusal cannot
    /// be told apart from one by its answer or its timing.
    async fn refuse(
        &self,
        password: &Secret<String>,
        event: ActivityEvent,
    ) -> Result<UserRow, AuthFailure> {
        self.inner.hasher.verify(None, password).await?;
        self.record(event).await;
        Err(AuthFailure::InvalidCredentials)
    }

    /// Counts and records the lock a failed attempt just set.
    async fn locked_out(&self, id: UserId, until: Ts, client: &ClientInfo) {
        self.inner.lockouts.fetch_add(1, Ordering::Relaxed);
        self.record(
            self.client_event(ActivityKind::AccountLocked, Some(id), client)
                .describe(format!(
                    "Locked until {until} after {} failed sign-ins",
                    self.inner.security.lockout_threshold
                )),
        )
        .await;
    }

    /// When a lock that starts at `now` ends (`security.lockout_duration`), in whole seconds so
    /// that the value reads back equal on both backends.
    pub(super) fn lock_until(&self, now: Ts) -> Ts {
        use chrono::SubsecRound;
        let lock_for = ChronoDuration::from_std(self.inner.security.lockout_duration)
            .unwrap_or(ChronoDuration::minutes(30));
        Ts((now.0 + lock_for).trunc_subsecs(0))
    }
}
