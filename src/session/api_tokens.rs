//! API tokens: bearer credentials for the admin API, resolved through a short-lived moka cache
//! so an API call costs no database query in steady state.
//!
//! ```text
//!  Authorization: Bearer T ─▶ SHA-256 ─▶ cache hit? ──yes──▶ expiry check (injected clock)
//!                                         │ no
//!                                         ▼
//!                      store: token + user + roles ─▶ cache (TTL 15 s) ─▶ TokenPrincipal
//! ```
//!
//! A token acts as its user with that user's roles. The cached identity is dropped on revoke
//! and by [`ApiTokens::evict_user`] after a change to the user; the change feed (`crate::feed`)
//! calls [`ApiTokens::evict_token_hash`], [`ApiTokens::evict_user`] and [`ApiTokens::flush_all`]
//! for changes made by other processes (the CLI, another instance).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use moka::future::Cache;

use super::Identity;
use crate::audit::{ActivityEvent, ActivityKind, AuditLog};
use crate::auth::bearer::{hash_token, looks_like_token, random_token};
use crate::clock::SharedClock;
use crate::store::{NewToken, Store, StoreError, TokenId, TokenRow, Ts, UserId, UserRow};

/// How long a resolved token stays cached.
pub const CACHE_TTL: Duration = Duration::from_secs(15);

/// Failed bearer attempts allowed per client address per [`FAILURE_WINDOW`].
pub const MAX_FAILURES: u32 = 30;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Who a live token speaks for.
#[derive(Debug)]
pub struct TokenPrincipal {
    pub token_id: TokenId,
    pub identity: Identity,
    pub expires_at: Option<Ts>,
}

#[derive(Clone)]
pub struct ApiTokens {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: SharedClock,
    audit: AuditLog,
    cache: Cache<String, Arc<TokenPrincipal>>,
    /// Well-formed tokens that matched nothing live, so replaying a dead token is cheap.
    unknown: Cache<String, ()>,
    /// Failed bearer attempts per client address (a fixed window from the first failure).
    failures: Cache<IpAddr, Arc<AtomicU32>>,
    /// Bumped by every eviction, so a load that raced with one drops what it cached (as in
    /// `SessionService`).
    generation: AtomicU64,
}

impl std::fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTokens").finish_non_exhaustive()
    }
}

/// Why a token could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("name: must be 1 to 100 characters")]
    BadName,
    #[error("expires: must be in the future")]
    ExpiryInPast,
    #[error("user {0} is deleted or inactive and cannot hold a token")]
    UserCannotHoldToken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiTokens {
    pub fn new(store: Store, clock: SharedClock, audit: AuditLog) -> ApiTokens {
        ApiTokens {
            inner: Arc::new(Inner {
                store,
                clock,
                audit,
                cache: Cache::builder()
                    .max_capacity(10_000)
                    .time_to_live(CACHE_TTL)
                    .support_invalidation_closures()
                    .build(),
                unknown: Cache::builder()
                    .max_capacity(10_000)
                    .time_to_live(CACHE_TTL)
                    .build(),
                failures: Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(FAILURE_WINDOW)
                    .build(),
                generation: AtomicU64::new(0),
            }),
        }
    }

    fn now(&self) -> Ts {
        Ts(self.inner.clock.now())
    }

    /// Creates a token for `user`; returns the token (show it once) and its row.
    pub async fn create(
        &self,
        user: &UserRow,
        name: &str,
        expires_at: Option<Ts>,
        created_by: Option<UserId>,
    ) -> Result<(String, TokenRow), TokenError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(TokenError::BadName);
        }
        let now = self.now();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(TokenError::ExpiryInPast);
        }
        if user.is_deleted || !user.is_active {
            return Err(TokenError::UserCannotHoldToken(user.username.clone()));
        }
        let token = random_token();
        let hash = hash_token(&token);
        let row = self
            .inner
            .store
            .insert_token(
                &NewToken {
                    user_id: user.id,
                    name: name.to_string(),
                    token_hash: hash.clone(),
                    created_by,
                    expires_at,
                },
                now,
            )
            .await?;
        self.inner.unknown.invalidate(&hash).await;
        self.inner
            .audit
            .record(
                ActivityEvent::new(ActivityKind::TokenCreated, Some(user.id), now)
                    .describe(format!("API token {} ({}) created", row.id, row.name))
                    .meta(serde_json::json!({
                        "actor": created_by,
                        "token_id": row.id,
                        "name": row.name,
                        "expires_at": row.expires_at,
                    })),
            )
            .await;
        Ok((token, row))
    }

    /// Resolves a bearer token to its principal; `Ok(None)` for anything not live (garbage,
    /// unknown, revoked, expired, or a user who is deleted, inactive or locked).
    pub async fn authenticate(
        &self,
        token: &str,
    ) -> Result<Option<Arc<TokenPrincipal>>, StoreError> {
        if !looks_like_token(token) {
            return Ok(None);
        }
        let hash = hash_token(token);
        let now = self.now();
        let principal = match self.inner.cache.get(&hash).await {
            Some(p) => p,
            None => {
                if self.inner.unknown.contains_key(&hash) {
                    return Ok(None);
                }
                match self.load(&hash, now).await? {
                    Some(p) => p,
                    None => {
                        self.inner.unknown.insert(hash, ()).await;
                        return Ok(None);
                    }
                }
            }
        };
        if principal.expires_at.is_some_and(|e| e <= now) {
            self.inner.cache.invalidate(&hash).await;
            return Ok(None);
        }
        Ok(Some(principal))
    }

    async fn load(&self, hash: &str, now: Ts) -> Result<Option<Arc<TokenPrincipal>>, StoreError> {
        let store = &self.inner.store;
        let generation = self.inner.generation.load(Ordering::SeqCst);
        let Some(row) = store.token_by_hash(hash).await?.filter(|t| t.is_live(now)) else {
            return Ok(None);
        };
        let Some(user) = store
            .user_by_id(row.user_id)
            .await?
            .filter(|u| u.is_active && !u.is_deleted && !u.is_locked(now))
        else {
            return Ok(None);
        };
        let roles = store.roles_of(user.id).await?;
        // Written once per cache fill, not per request.
        store.touch_token(row.id, now).await?;
        let p = Arc::new(TokenPrincipal {
            token_id: row.id,
            identity: Identity::new(&user, &roles),
            expires_at: row.expires_at,
        });
        self.inner.cache.insert(hash.to_string(), p.clone()).await;
        if self.inner.generation.load(Ordering::SeqCst) != generation {
            self.inner.cache.invalidate(hash).await;
        }
        Ok(Some(p))
    }

    /// Revokes a token; `false` when it does not exist or was already revoked.
    pub async fn revoke(&self, id: TokenId, actor: Option<UserId>) -> Result<bool, StoreError> {
        let Some(hash) = self.inner.store.revoke_token(id, self.now()).await? else {
            return Ok(false);
        };
        self.inner.cache.invalidate(&hash).await;
        let owner = self.inner.store.token_by_id(id).await?.map(|t| t.user_id);
        self.inner
            .audit
            .record(
                ActivityEvent::new(ActivityKind::TokenRevoked, owner, self.now())
                    .describe(format!("API token {id} revoked"))
                    .meta(serde_json::json!({ "actor": actor, "token_id": id })),
            )
            .await;
        Ok(true)
    }

    pub async fn list(&self, user: Option<UserId>) -> Result<Vec<TokenRow>, StoreError> {
        self.inner.store.list_tokens(user).await
    }

    /// Whether `ip` has used up its failed bearer attempts for now.
    pub async fn too_many_failures(&self, ip: IpAddr) -> bool {
        self.inner
            .failures
            .get(&ip)
            .await
            .is_some_and(|n| n.load(Ordering::Relaxed) >= MAX_FAILURES)
    }

    /// Counts a failed bearer attempt from `ip`.
    pub async fn note_failure(&self, ip: IpAddr) {
        self.inner
            .failures
            .get_with(ip, async { Arc::new(AtomicU32::new(0)) })
            .await
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Drops one cached token by hash (revoked elsewhere).
    pub async fn evict_token_hash(&self, hash: &str) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        self.inner.cache.invalidate(hash).await;
    }

    /// Drops every cached token.
    pub fn flush_all(&self) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        self.inner.cache.invalidate_all();
        self.inner.unknown.invalidate_all();
    }

    /// Drops the cached identities of a user's tokens (after a role, status or profile change).
    pub fn evict_user(&self, user: UserId) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = self
            .inner
            .cache
            .invalidate_entries_if(move |_, p| p.identity.user_id == user)
        {
            tracing::error!(error = %e, "cannot evict cached tokens; clearing the whole cache");
            self.inner.cache.invalidate_all();
        }
    }
}
