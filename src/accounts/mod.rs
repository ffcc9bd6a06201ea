//! The account rules (the spec's `UserManager`): creating users, signing in with lockout,
//! profile updates, passwords, roles, soft delete. Handlers and CLI commands only parse input
//! and render results; the rules live here.

mod admin;
mod error;
mod external;
mod passkeys;
mod profile;
mod tokens;
mod twofa;
mod validate;
mod view;

use std::sync::Arc;

use chrono::Duration as ChronoDuration;

use crate::audit::{ActivityEvent, ActivityKind, AuditLog};
use crate::auth::password::{PasswordHasher, Verified, check_policy};
use crate::clock::SharedClock;
use crate::config::{Secret, SecuritySettings};
use crate::store::{RoleRow, Store, Tier, Ts, UserFilter, UserId, UserPatch, UserRow};

pub use admin::{MAX_CREDIT_DELTA, actor_meta};
pub use error::{AccountError, AuthFailure};
pub use external::{ExternalMatch, ExternalRefusal};
pub use passkeys::{MAX_PASSKEY_NAME, PasskeyFailure, PasskeyUse, passkey_name};
pub use profile::ProfileInput;
pub use twofa::{Enrolment, SecondFactor, TwofaError};
pub use validate::{
    DEFAULT_USERNAME_PATTERN, UsernameRules, is_timezone_name, normalize_role, role_name_is_valid,
    username_skeleton, validate_email, validate_username,
};
pub use view::{UserView, effective_roles};

/// Where a request came from, for the activity log and `last_login_ip`.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Input for [`Accounts::create_user`].
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub username: String,
    pub email: String,
    /// `None` creates an account that cannot sign in with a password until one is set.
    pub password: Option<Secret<String>>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub company_name: Option<String>,
    pub tier: Tier,
    pub is_admin: bool,
    pub is_superuser: bool,
    pub is_verified: bool,
}

impl NewAccount {
    pub fn new(
        username: impl Into<String>,
        email: impl Into<String>,
        password: Option<Secret<String>>,
    ) -> Self {
        NewAccount {
            username: username.into(),
            email: email.into(),
            password,
            first_name: None,
            last_name: None,
            phone: None,
            company_name: None,
            tier: Tier::Free,
            is_admin: false,
            is_superuser: false,
            is_verified: false,
        }
    }
}

/// Credits a new free account starts with.
pub const FREE_TIER_CREDITS: i64 = 3;

/// The accounts service. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Accounts {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    hasher: PasswordHasher,
    clock: SharedClock,
    audit: AuditLog,
    security: SecuritySettings,
    /// Accounts locked by failed sign-ins, for `gatehouse_lockouts_total`.
    lockouts: std::sync::atomic::AtomicU64,
}

impl Accounts {
    pub fn new(
        store: Store,
        hasher: PasswordHasher,
        clock: SharedClock,
        audit: AuditLog,
        security: SecuritySettings,
    ) -> Accounts {
        Accounts {
            inner: Arc::new(Inner {
                store,
                hasher,
                clock,
                audit,
                security,
                lockouts: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    /// Accounts this process locked after too many failed sign-ins.
    pub fn lockouts(&self) -> u64 {
        self.inner
            .lockouts
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn hasher(&self) -> &PasswordHasher {
        &self.inner.hasher
    }

    pub fn audit(&self) -> &AuditLog {
        &self.inner.audit
    }

    pub fn security(&self) -> &SecuritySettings {
        &self.inner.security
    }

    pub fn now(&self) -> Ts {
        Ts(self.inner.clock.now())
    }

    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// Appends to the activity log (the spec's `log_user_activity`).
    pub async fn record(&self, event: ActivityEvent) {
        self.inner.audit.record(event).await;
    }

    pub fn event(&self, kind: ActivityKind, user: Option<UserId>) -> ActivityEvent {
        ActivityEvent::new(kind, user, self.now())
    }

    /// Checks a new password against the policy, naming the account's identities.
    pub fn check_password(
        &self,
        password: &Secret<String>,
        identities: &[&str],
    ) -> Result<(), AccountError> {
        check_policy(
            password.expose(),
            self.inner.security.min_password_length,
            identities,
        )
        .map_err(AccountError::Policy)
    }

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
            self.inner.hasher.verify(None, password).await?;
            self.record(
                self.event(ActivityKind::LoginFailed, None)
                    .client(client.ip.clone(), client.user_agent.clone())
                    .describe("Sign-in failed: unknown account"),
            )
            .await;
            return Err(AuthFailure::InvalidCredentials);
        };
        let failed = |why: &'static str| {
            self.event(ActivityKind::LoginFailed, Some(user.id))
                .client(client.ip.clone(), client.user_agent.clone())
                .describe(format!("Sign-in failed: {why}"))
        };
        if !user.is_active {
            self.inner.hasher.verify(None, password).await?;
            self.record(failed("account inactive")).await;
            return Err(AuthFailure::InvalidCredentials);
        }
        // Reserve the attempt before checking it: concurrent guesses each need a slot from the
        // database, so at most `lockout_threshold` of them are ever verified per lockout.
        let threshold = i64::from(self.inner.security.lockout_threshold);
        let until = self.lock_until(now);
        let Some(attempt) = store
            .reserve_login_attempt(user.id, threshold, now, until)
            .await?
        else {
            // Locked: the same hashing work as a wrong password, so it looks the same.
            self.inner.hasher.verify(None, password).await?;
            self.record(failed("account locked")).await;
            return Err(AuthFailure::InvalidCredentials);
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
                    self.inner
                        .lockouts
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.record(
                        self.event(ActivityKind::AccountLocked, Some(user.id))
                            .client(client.ip.clone(), client.user_agent.clone())
                            .describe(format!(
                                "Locked until {until} after {} failed sign-ins",
                                self.inner.security.lockout_threshold
                            )),
                    )
                    .await;
                }
                Err(AuthFailure::InvalidCredentials)
            }
        }
    }

    /// When a lock that starts at `now` ends (`security.lockout_duration`), in whole seconds so
    /// that the value reads back equal on both backends.
    fn lock_until(&self, now: Ts) -> Ts {
        use chrono::SubsecRound;
        let lock_for = ChronoDuration::from_std(self.inner.security.lockout_duration)
            .unwrap_or(ChronoDuration::minutes(30));
        Ts((now.0 + lock_for).trunc_subsecs(0))
    }

    pub async fn get(&self, id: UserId) -> Result<Option<UserRow>, AccountError> {
        Ok(self.inner.store.user_by_id(id).await?)
    }

    pub async fn get_by_username(&self, username: &str) -> Result<Option<UserRow>, AccountError> {
        Ok(self.inner.store.user_by_username(username).await?)
    }

    pub async fn get_by_email(&self, email: &str) -> Result<Option<UserRow>, AccountError> {
        Ok(self.inner.store.user_by_email(email).await?)
    }

    /// Finds a user by numeric id, username or email, in that order.
    pub async fn find(&self, key: &str) -> Result<UserRow, AccountError> {
        let key = key.trim();
        if let Ok(id) = key.parse::<i64>()
            && let Some(u) = self.inner.store.user_by_id(UserId(id)).await?
        {
            return Ok(u);
        }
        if let Some(u) = self.inner.store.user_by_login(key).await? {
            return Ok(u);
        }
        Err(AccountError::UnknownUser(key.to_string()))
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

    pub async fn list(&self, filter: &UserFilter) -> Result<(Vec<UserRow>, i64), AccountError> {
        if let Some(role) = filter.role.as_deref().map(validate::normalize_role)
            && Some(&role) != filter.role.as_ref()
        {
            let filter = UserFilter {
                role: Some(role),
                ..filter.clone()
            };
            return Ok(self.inner.store.list_users(&filter, self.now()).await?);
        }
        Ok(self.inner.store.list_users(filter, self.now()).await?)
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
        self.record(
            self.event(ActivityKind::UserLocked, Some(id))
                .describe(format!("Locked until {until}"))
                .meta(serde_json::json!({ "actor": actor })),
        )
        .await;
        Ok(())
    }

    pub async fn unlock(&self, id: UserId, actor: Option<UserId>) -> Result<(), AccountError> {
        if !self.inner.store.set_lock(id, None, self.now()).await? {
            return Err(AccountError::NotFound);
        }
        self.record(
            self.event(ActivityKind::UserUnlocked, Some(id))
                .describe("Unlocked")
                .meta(serde_json::json!({ "actor": actor })),
        )
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
            return match self.get(id).await? {
                Some(_) => Err(AccountError::Conflict("user is not deleted".into())),
                None => Err(AccountError::NotFound),
            };
        }
        self.record(
            self.event(ActivityKind::UserRestored, Some(id))
                .describe("Account restored")
                .meta(serde_json::json!({ "actor": actor })),
        )
        .await;
        Ok(())
    }

    pub async fn grant_role(
        &self,
        id: UserId,
        role: &str,
        expires_at: Option<Ts>,
        granted_by: Option<UserId>,
    ) -> Result<RoleRow, AccountError> {
        let role = validate::role_name(role)?;
        let now = self.now();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(AccountError::Invalid {
                field: "expires_at",
                message: "must be in the future".into(),
            });
        }
        self.get(id).await?.ok_or(AccountError::NotFound)?;
        let row = self
            .inner
            .store
            .grant_role(id, &role, granted_by, expires_at, now)
            .await?;
        self.record(
            self.event(ActivityKind::RoleGranted, Some(id))
                .describe(format!("Role {role} granted"))
                .meta(serde_json::json!({ "role": role, "expires_at": expires_at, "actor": granted_by })),
        )
        .await;
        Ok(row)
    }

    pub async fn revoke_role(
        &self,
        id: UserId,
        role: &str,
        actor: Option<UserId>,
    ) -> Result<(), AccountError> {
        let role = &validate::normalize_role(role);
        if !self.inner.store.revoke_role(id, role).await? {
            return Err(AccountError::Invalid {
                field: "role",
                message: format!("user does not hold role {role:?}"),
            });
        }
        self.record(
            self.event(ActivityKind::RoleRevoked, Some(id))
                .describe(format!("Role {role} revoked"))
                .meta(serde_json::json!({ "role": role, "actor": actor })),
        )
        .await;
        Ok(())
    }

    pub async fn roles(&self, id: UserId) -> Result<Vec<RoleRow>, AccountError> {
        Ok(self.inner.store.roles_of(id).await?)
    }

    /// Roles in force now, including the implicit `admin` / `superuser` from the user's flags.
    pub async fn effective_roles(&self, user: &UserRow) -> Result<Vec<String>, AccountError> {
        let rows = self.roles(user.id).await?;
        Ok(effective_roles(user, &rows, self.now()))
    }

    pub async fn view(&self, user: &UserRow) -> Result<UserView, AccountError> {
        let roles = self.effective_roles(user).await?;
        Ok(UserView::new(user, roles, self.now()))
    }
}

fn clean(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}
