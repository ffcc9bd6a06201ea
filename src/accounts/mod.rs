//! The account rules (the spec's `UserManager`). Handlers and CLI commands only parse input
//! and render results; the rules live here, on one cheap-to-clone [`Accounts`] service that
//! owns the store, the password hasher, the clock and the activity log.
//!
//! Every rule reads the time from the injected clock, checks its input, makes one store call
//! (one transaction where sessions end with the change) and records an activity row naming the
//! actor. The rules are grouped by what they are about:
//!
//! - `signin`: password sign-in and the lockout that guards it;
//! - `lifecycle`: creating, editing, locking, deleting and restoring accounts;
//! - `roles`: granting and revoking roles, and the roles in force;
//! - `profile`, `mailed_tokens`, `twofa`, `passkeys`, `external`: the self-service flows
//!   (profile, reset and verification links, second factors, provider sign-in);
//! - `admin`: what only the admin surfaces do (credits, resetting two-factor sign-in).

mod admin;
mod error;
mod external;
mod form_checks;
mod lifecycle;
mod mailed_tokens;
mod passkeys;
mod profile;
mod roles;
mod signin;
mod twofa;
mod validate;
mod view;

use std::sync::Arc;

use crate::audit::{ActivityEvent, ActivityKind, AuditLog};
use crate::auth::password::{PasswordHasher, check_policy};
use crate::clock::SharedClock;
use crate::config::{Secret, SecuritySettings};
use crate::store::{Store, Tier, Ts, UserFilter, UserId, UserRow};

pub use admin::{MAX_CREDIT_DELTA, actor_meta};
pub use error::{AccountError, AuthFailure};
pub use external::{ExternalMatch, ExternalRefusal};
pub use form_checks::Problems;
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

    /// An event for something a request did, naming where it came from.
    pub fn client_event(
        &self,
        kind: ActivityKind,
        user: Option<UserId>,
        client: &ClientInfo,
    ) -> ActivityEvent {
        self.event(kind, user)
            .client(client.ip.clone(), client.user_agent.clone())
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
}
