//! An account's life: creation (with confusable-name checks), edits by an administrator or
//! the CLI, password changes, locks, soft delete and restore. Each change is one store call
//! (one transaction where sessions end with it) followed by its activity row naming the actor.

use super::{AccountError, Accounts, FREE_TIER_CREDITS, NewAccount, validate};
use super::{username_skeleton, validate_email, view};
use crate::audit::ActivityKind;
use crate::config::Secret;
use crate::store::{Ts, UserId, UserPatch, UserRow};

impl Accounts {
    pub async fn create_user(
        &self,
        a: NewAccount,
        actor: Option<UserId>,
    ) -> Result<UserRow, AccountError> {
        let username = self.inner.security.username_rules.check(&a.username)?;
        let email = validate_email(&a.email)?;
        // A name that looks like an existing one is "taken", like the same name.
        let skeleton = username_skeleton(&username);
        if self.skeleton_taken(&skeleton).await?
            || (username.contains('@')
                && self.inner.store.user_by_email(&username).await?.is_some())
        {
            return Err(AccountError::Duplicate { field: "username" });
        }
        let password_hash = match &a.password {
            Some(pw) => {
                self.check_password(pw, &[&username, &email])?;
                Some(self.inner.hasher.hash(pw).await?)
            }
            None => None,
        };
        let now = self.now();
        let new = crate::store::NewUser {
            username,
            email,
            password_hash,
            first_name: clean(a.first_name),
            last_name: clean(a.last_name),
            phone: clean(a.phone),
            company_name: clean(a.company_name),
            tier: a.tier,
            subscription_status: "active".into(),
            credits_balance: FREE_TIER_CREDITS,
            is_active: true,
            is_verified: a.is_verified,
            is_admin: a.is_admin || a.is_superuser,
            is_superuser: a.is_superuser,
            email_notifications: true,
            sms_notifications: false,
            timezone: "UTC".into(),
            language: "en".into(),
            created_at: now,
            last_login: None,
            legacy_lead_id: None,
        };
        let user = self.inner.store.insert_user(&new, now).await?;
        self.inner
            .store
            .set_username_skeleton(user.id, &skeleton)
            .await?;
        self.record(
            self.event(ActivityKind::UserCreated, Some(user.id))
                .describe(format!("Account {} created", user.username))
                .meta(serde_json::json!({ "actor": actor, "tier": user.subscription_tier })),
        )
        .await;
        Ok(user)
    }

    /// Whether an existing username has this confusable skeleton. Fills in the skeletons of
    /// users made without one first (before the column existed, or by an import).
    async fn skeleton_taken(&self, skeleton: &str) -> Result<bool, AccountError> {
        let store = &self.inner.store;
        loop {
            let missing = store.users_without_skeleton(500).await?;
            if missing.is_empty() {
                break;
            }
            for (id, name) in missing {
                store
                    .set_username_skeleton(id, &username_skeleton(&name))
                    .await?;
            }
        }
        Ok(store.username_skeleton_taken(skeleton).await?)
    }

    /// Applies a patch after validating the fields it touches; records which fields changed.
    pub async fn update(
        &self,
        id: UserId,
        mut patch: UserPatch,
        actor: Option<UserId>,
    ) -> Result<UserRow, AccountError> {
        let current = self.get(id).await?.ok_or(AccountError::NotFound)?;
        if let Some(e) = &patch.email {
            patch.email = Some(validate_email(e)?);
        }
        if patch.first_name.is_some() || patch.last_name.is_some() {
            let first = patch
                .first_name
                .clone()
                .unwrap_or(current.first_name.clone());
            let last = patch.last_name.clone().unwrap_or(current.last_name.clone());
            patch.full_name = Some(crate::store::users_full_name(
                first.as_deref(),
                last.as_deref(),
            ));
        }
        if let Some(tz) = &patch.timezone {
            validate::timezone(tz)?;
        }
        if patch.credits_balance.is_some_and(|c| c < 0) {
            return Err(AccountError::Invalid {
                field: "credits_balance",
                message: "must not be negative".into(),
            });
        }
        let fields = view::patch_fields(&patch);
        let now = self.now();
        let user = self
            .inner
            .store
            .update_user(id, &patch, now)
            .await?
            .ok_or(AccountError::NotFound)?;
        if !fields.is_empty() {
            self.record(
                self.event(ActivityKind::ProfileUpdate, Some(id))
                    .describe(format!("Updated: {}", fields.join(", ")))
                    .meta(serde_json::json!({ "fields": fields, "actor": actor })),
            )
            .await;
        }
        Ok(user)
    }

    /// Sets a new password (policy-checked) and ends all the user's sessions but `keep`.
    pub async fn change_password(
        &self,
        id: UserId,
        password: &Secret<String>,
        keep: Option<crate::store::SessionId>,
    ) -> Result<Vec<String>, AccountError> {
        let user = self.get(id).await?.ok_or(AccountError::NotFound)?;
        self.check_password(password, &[&user.username, &user.email])?;
        let hash = self.inner.hasher.hash(password).await?;
        // One transaction: the new hash, the ended sessions and the change-feed event.
        let ended = self
            .inner
            .store
            .set_password_ending_sessions(id, Some(&hash), Some(keep), self.now())
            .await?
            .ok_or(AccountError::NotFound)?;
        self.record(
            self.event(ActivityKind::PasswordChange, Some(id))
                .describe("Password changed"),
        )
        .await;
        Ok(ended)
    }

    /// Locks an account until `until` (by hand, e.g. from the CLI or console); the user's
    /// sessions end with it.
    pub async fn lock(
        &self,
        id: UserId,
        until: Ts,
        actor: Option<UserId>,
    ) -> Result<(), AccountError> {
        if !self
            .inner
            .store
            .set_lock(id, Some(until), self.now())
            .await?
        {
            return Err(AccountError::NotFound);
        }
        self.record_by_actor(
            ActivityKind::UserLocked,
            id,
            actor,
            format!("Locked until {until}"),
        )
        .await;
        Ok(())
    }

    pub async fn unlock(&self, id: UserId, actor: Option<UserId>) -> Result<(), AccountError> {
        if !self.inner.store.set_lock(id, None, self.now()).await? {
            return Err(AccountError::NotFound);
        }
        self.record_by_actor(ActivityKind::UserUnlocked, id, actor, "Unlocked")
            .await;
        Ok(())
    }

    /// Soft delete: the row stays (restorable), sign-in stops and all sessions end.
    /// Returns the ended sessions' token hashes so a cache can drop them.
    pub async fn soft_delete(
        &self,
        id: UserId,
        actor: Option<UserId>,
    ) -> Result<Vec<String>, AccountError> {
        self.soft_delete_because(id, actor, None).await
    }

    pub async fn restore(&self, id: UserId, actor: Option<UserId>) -> Result<(), AccountError> {
        if !self.inner.store.set_deleted(id, false, self.now()).await? {
            return Err(self.conflict_if_exists(id, "user is not deleted").await?);
        }
        self.record_by_actor(ActivityKind::UserRestored, id, actor, "Account restored")
            .await;
        Ok(())
    }

    /// Records a change `actor` made to account `id`.
    async fn record_by_actor(
        &self,
        kind: ActivityKind,
        id: UserId,
        actor: Option<UserId>,
        what: impl Into<String>,
    ) {
        self.record(
            self.event(kind, Some(id))
                .describe(what)
                .meta(serde_json::json!({ "actor": actor })),
        )
        .await;
    }

    /// Why a change that found nothing to change failed: the account is already in the state
    /// asked for (`conflict`), or there is no such account.
    async fn conflict_if_exists(
        &self,
        id: UserId,
        conflict: &str,
    ) -> Result<AccountError, AccountError> {
        Ok(match self.get(id).await? {
            Some(_) => AccountError::Conflict(conflict.into()),
            None => AccountError::NotFound,
        })
    }
}

fn clean(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}
