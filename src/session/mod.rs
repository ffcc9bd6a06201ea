//! Sessions: a moka cache in front of `user_sessions`, so the proxy's hot path answers from
//! memory.
//!
//! ```text
//!  cookie ─▶ SHA-256 ─▶ cache hit? ──yes──▶ idle/absolute check (injected clock) ─▶ Session
//!                          │ no                    │ touch due? ─▶ touch queue ─▶ batched UPDATE
//!                          ▼                       ▼ expired
//!                 negative cache? ─▶ store: session + user + roles ─▶ cache     end in store, evict
//! ```
//!
//! Steady state is zero queries per request: `last_activity` is written back at most once per
//! `touch_interval` per session, by a background task. Sign-out and revocation evict at once;
//! [`SessionService::evict_token_hashes`], [`SessionService::evict_user`] and
//! [`SessionService::flush_all`] are the hooks the change feed (`crate::feed`) calls for changes
//! made by other processes.
//!
//! A load from the database races with an eviction: a request may read a session just before
//! another process ends it, and cache it just after the feed evicted it. Every eviction bumps a
//! generation counter before and after it runs; a load that sees the counter move while it ran
//! drops what it cached.
//!
//! In front of the cache, each client connection keeps the last session it presented
//! ([`SessionMemo`]): a browser sends one cookie on all its requests over a connection, so the
//! next request with the same cookie skips hashing the token and the cache's bookkeeping. The
//! memo is trusted only while the generation is the one read before the session was found, so
//! any eviction anywhere (sign-out, revocation, a role or status change, the change feed)
//! sends every connection back to the cache; the idle and absolute checks run on every request
//! whichever way the session was found.

pub mod api_tokens;
mod identity;
mod owned;
pub mod pending;
mod toucher;
pub mod tunnels;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use moka::future::Cache;
use subtle::ConstantTimeEq;

pub use api_tokens::{ApiTokens, TokenPrincipal};
pub use identity::Identity;

use crate::accounts::ClientInfo;
use crate::auth::bearer::{hash_token, looks_like_token, random_token};
use crate::clock::SharedClock;
use crate::config::SessionSettings;
use crate::store::{NewSession, SessionId, Store, StoreError, Ts, UserId, UserRow};

/// A live session as the proxy sees it.
#[derive(Debug)]
pub struct Session {
    pub id: SessionId,
    pub token_hash: String,
    pub identity: Identity,
    pub created_at: Ts,
    /// Absolute end of life.
    pub expires_at: Ts,
    pub twofa_verified: bool,
    /// How it was signed in: 'pwd', 'pwd+hwk', 'hwk' or 'hwk+user'.
    pub auth_method: String,
    /// Last request seen (unix microseconds), for the idle timeout.
    last_seen: AtomicI64,
    /// Last `last_activity` written to the store (unix microseconds).
    last_written: AtomicI64,
    /// The identity assertion made for this session object (see `gateway::assertion`).
    pub assertion: AssertionSlot,
}

/// A signed assertion kept with the session object it was made from: a reloaded session (whose
/// identity may have changed) is a new object with an empty slot.
#[derive(Debug, Default)]
pub struct AssertionSlot(std::sync::Mutex<Option<(http::HeaderValue, i64)>>);

impl AssertionSlot {
    /// The token, if it expires at `min_exp` (unix seconds) or later.
    pub fn get(&self, min_exp: i64) -> Option<http::HeaderValue> {
        let slot = self.0.lock().ok()?;
        slot.as_ref()
            .filter(|(_, exp)| *exp >= min_exp)
            .map(|(v, _)| v.clone())
    }

    pub fn set(&self, token: http::HeaderValue, exp: i64) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some((token, exp));
        }
    }
}

impl Session {
    pub fn last_seen(&self) -> Ts {
        Ts(micros_to_dt(self.last_seen.load(Ordering::Relaxed)))
    }
}

fn dt_to_micros(t: Ts) -> i64 {
    t.0.timestamp_micros()
}

fn micros_to_dt(m: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(m).unwrap_or_default()
}

/// Options for a new session.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionOptions {
    pub remember_me: bool,
    pub twofa_verified: bool,
}

/// Counters for the metrics page and the "no query on the hot path" check.
#[derive(Debug, Default)]
pub struct SessionStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

/// The last session one client connection presented; see the module docs. One per connection,
/// given to [`SessionService::lookup_on`] with each of its requests.
#[derive(Default)]
pub struct SessionMemo(std::sync::Mutex<Option<Memo>>);

struct Memo {
    /// The [`SessionService`] that found it (a reload may build another, whose generations
    /// count from zero again).
    service: u64,
    generation: u64,
    /// Unix microseconds; a memo lives no longer than a cache entry.
    stored_us: i64,
    token: Box<str>,
    session: Arc<Session>,
}

impl std::fmt::Debug for SessionMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionMemo").finish_non_exhaustive()
    }
}

impl SessionMemo {
    fn get(
        &self,
        token: &str,
        service: u64,
        generation: u64,
        oldest_us: i64,
    ) -> Option<Arc<Session>> {
        let slot = self.0.lock().ok()?;
        let m = slot.as_ref()?;
        // Compared in constant time: a connection must not learn, byte by byte, the token its
        // previous request carried (a connection may carry several clients' requests, e.g.
        // from a proxy in front).
        let same =
            m.token.len() == token.len() && bool::from(m.token.as_bytes().ct_eq(token.as_bytes()));
        (same && m.service == service && m.generation == generation && m.stored_us >= oldest_us)
            .then(|| m.session.clone())
    }

    fn set(&self, memo: Option<Memo>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = memo;
        }
    }
}

/// Tells one [`SessionService`] from another for [`SessionMemo`].
static SERVICE_IDS: AtomicU64 = AtomicU64::new(0);

#[derive(Clone)]
pub struct SessionService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: SharedClock,
    settings: SessionSettings,
    cache: Cache<String, Arc<Session>>,
    /// How long a cache entry (and so a [`SessionMemo`]) lives.
    ttl: Duration,
    id: u64,
    /// Well-formed tokens that matched no session, so a replayed dead cookie costs one query
    /// per minute rather than one per request.
    unknown: Cache<String, ()>,
    toucher: toucher::Toucher,
    stats: SessionStats,
    /// Bumped by every eviction; see the module docs.
    generation: AtomicU64,
    /// `security.require_2fa_for_admins`: sessions of admins that did not pass a two-factor
    /// step carry no admin powers.
    admin_requires_2fa: bool,
    tunnels: tunnels::Tunnels,
}

impl std::fmt::Debug for SessionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService").finish_non_exhaustive()
    }
}

impl SessionService {
    pub fn new(store: Store, clock: SharedClock, settings: SessionSettings) -> SessionService {
        Self::with_admin_2fa(store, clock, settings, false)
    }

    /// Like [`SessionService::new`]; with `admin_requires_2fa`, a session of an admin that did
    /// not pass a two-factor step is built with [`Identity::suspend_admin`].
    pub fn with_admin_2fa(
        store: Store,
        clock: SharedClock,
        settings: SessionSettings,
        admin_requires_2fa: bool,
    ) -> SessionService {
        // Entries live no longer than the idle timeout; the change feed evicts what other
        // processes change much sooner, and this bounds the damage should it fall behind.
        let ttl = settings.idle_timeout.min(Duration::from_secs(15 * 60));
        let cache = Cache::builder()
            .max_capacity(settings.cache_capacity)
            .time_to_live(ttl)
            .support_invalidation_closures()
            .build();
        let unknown = Cache::builder()
            .max_capacity(settings.cache_capacity)
            .time_to_live(Duration::from_secs(60))
            .build();
        let toucher = toucher::Toucher::spawn(store.for_background());
        SessionService {
            inner: Arc::new(Inner {
                store,
                clock,
                settings,
                cache,
                ttl,
                id: SERVICE_IDS.fetch_add(1, Ordering::Relaxed),
                unknown,
                toucher,
                stats: SessionStats::default(),
                generation: AtomicU64::new(0),
                admin_requires_2fa,
                tunnels: tunnels::Tunnels::new(),
            }),
        }
    }

    pub fn settings(&self) -> &SessionSettings {
        &self.inner.settings
    }

    pub fn stats(&self) -> &SessionStats {
        &self.inner.stats
    }

    fn now(&self) -> Ts {
        Ts(self.inner.clock.now())
    }

    fn identity(
        &self,
        user: &UserRow,
        roles: &[crate::store::RoleRow],
        twofa_verified: bool,
    ) -> Identity {
        let mut id = Identity::new(user, roles);
        if self.inner.admin_requires_2fa && !twofa_verified && id.is_admin_at(self.now()) {
            id.suspend_admin();
        }
        id
    }

    /// Creates a session for a user who just proved who they are; returns the cookie value.
    pub async fn create(
        &self,
        user: &UserRow,
        client: &ClientInfo,
        opts: SessionOptions,
    ) -> Result<(String, Arc<Session>), StoreError> {
        self.create_with(user, client, opts, "pwd").await
    }

    /// [`SessionService::create`], naming how the user signed in (`auth_method`: 'pwd',
    /// 'pwd+hwk', 'hwk', 'hwk+user').
    pub async fn create_with(
        &self,
        user: &UserRow,
        client: &ClientInfo,
        opts: SessionOptions,
        auth_method: &'static str,
    ) -> Result<(String, Arc<Session>), StoreError> {
        let now = self.now();
        let lifetime = match (opts.remember_me, self.inner.settings.remember_me_timeout) {
            (true, Some(d)) => d,
            _ => self.inner.settings.absolute_timeout,
        };
        let expires_at =
            Ts(now.0 + chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::hours(12)));
        let token = random_token();
        let hash = hash_token(&token);
        let row = self
            .inner
            .store
            .insert_session(
                &NewSession {
                    user_id: user.id,
                    token_hash: hash.clone(),
                    ip_address: client.ip.clone(),
                    user_agent: client.user_agent.as_deref().map(truncate_agent),
                    expires_at,
                    twofa_verified: opts.twofa_verified,
                    remember_me: opts.remember_me,
                    auth_method,
                },
                now,
            )
            .await?;
        let roles = self.inner.store.roles_of(user.id).await?;
        let session = Arc::new(Session {
            id: row.id,
            token_hash: hash.clone(),
            identity: self.identity(user, &roles, row.twofa_verified),
            created_at: row.created_at,
            expires_at: row.expires_at,
            twofa_verified: row.twofa_verified,
            auth_method: row.auth_method.clone(),
            last_seen: AtomicI64::new(dt_to_micros(now)),
            last_written: AtomicI64::new(dt_to_micros(now)),
            assertion: AssertionSlot::default(),
        });
        self.inner.unknown.invalidate(&hash).await;
        self.inner.cache.insert(hash, session.clone()).await;
        Ok((token, session))
    }

    /// Resolves a cookie value to a live session. `Ok(None)` for anything that is not one
    /// (garbage, unknown, ended, expired, or a user who can no longer sign in).
    pub async fn lookup(&self, token: &str) -> Result<Option<Arc<Session>>, StoreError> {
        self.lookup_at(token, self.now()).await
    }

    /// [`SessionService::lookup`] for a request on a client connection, through the
    /// connection's memo of the last session it presented.
    pub async fn lookup_on(
        &self,
        token: &str,
        memo: &SessionMemo,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        // Read before the session is found: an eviction that runs while it is found moves the
        // generation past this one, and the memo is not trusted again.
        let generation = self.inner.generation.load(Ordering::SeqCst);
        let now = self.now();
        let now_us = dt_to_micros(now);
        let oldest_us = now_us.saturating_sub(self.inner.ttl.as_micros() as i64);
        if let Some(session) = memo.get(token, self.inner.id, generation, oldest_us) {
            self.inner.stats.hits.fetch_add(1, Ordering::Relaxed);
            return self.admit(session, now).await;
        }
        // Boxed, in a statement of its own: the cache's lookup is a large future (moka's `get`
        // alone is over 700 bytes) that the steady state, a memo hit, never runs; inline it
        // would size every proxied request's future, which hyper keeps per connection.
        let lookup = Box::pin(self.lookup_at(token, now));
        let found = lookup.await?;
        memo.set(found.as_ref().map(|session| Memo {
            service: self.inner.id,
            generation,
            stored_us: now_us,
            token: token.into(),
            session: session.clone(),
        }));
        Ok(found)
    }

    async fn lookup_at(&self, token: &str, now: Ts) -> Result<Option<Arc<Session>>, StoreError> {
        if !looks_like_token(token) {
            return Ok(None);
        }
        let hash = hash_token(token);
        let session = match self.inner.cache.get(&hash).await {
            Some(s) => {
                self.inner.stats.hits.fetch_add(1, Ordering::Relaxed);
                s
            }
            None => {
                self.inner.stats.misses.fetch_add(1, Ordering::Relaxed);
                if self.inner.unknown.contains_key(&hash) {
                    return Ok(None);
                }
                // The database paths are boxed: their futures are large, and held inline
                // they would be part of (and copied with) every request's future, which in
                // steady state only takes the cached path.
                // Each box is made in a statement of its own: as a temporary of the
                // awaiting statement (`Box::pin(..).await`) the unboxed future would keep its
                // storage here across the await.
                let load = Box::pin(self.load(&hash));
                match load.await? {
                    Some(s) => s,
                    None => {
                        let remember = Box::pin(self.inner.unknown.insert(hash, ()));
                        remember.await;
                        return Ok(None);
                    }
                }
            }
        };
        self.admit(session, now).await
    }

    /// The checks every request makes of the session it found, however it found it: the
    /// absolute and idle timeouts (an expired session is ended), then the touch that keeps
    /// `last_activity` current.
    async fn admit(
        &self,
        session: Arc<Session>,
        now: Ts,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        let idle = chrono::Duration::from_std(self.inner.settings.idle_timeout)
            .unwrap_or(chrono::Duration::minutes(30));
        if now >= session.expires_at || now.0 - session.last_seen().0 > idle {
            let end = Box::pin(self.end_hash(&session.token_hash));
            end.await?;
            return Ok(None);
        }
        let now_us = dt_to_micros(now);
        session.last_seen.fetch_max(now_us, Ordering::Relaxed);
        let touch_every = self.inner.settings.touch_interval.as_micros() as i64;
        let written = session.last_written.load(Ordering::Relaxed);
        if now_us - written >= touch_every
            && session
                .last_written
                .compare_exchange(written, now_us, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.inner.toucher.touch(session.id, now);
        }
        Ok(Some(session))
    }

    async fn load(&self, hash: &str) -> Result<Option<Arc<Session>>, StoreError> {
        let store = &self.inner.store;
        let generation = self.inner.generation.load(Ordering::SeqCst);
        let Some(row) = store.session_by_token_hash(hash).await? else {
            return Ok(None);
        };
        let Some(user) = store.user_by_id(row.user_id).await? else {
            return Ok(None);
        };
        if user.is_deleted || !user.is_active {
            store.end_session(row.id).await?;
            return Ok(None);
        }
        // A locked account's sessions are refused but not ended: a lockout after failed
        // sign-ins (which anyone can cause) must not sign the owner out for good. A lock made
        // by hand ends the sessions itself.
        if user.is_locked(self.now()) {
            return Ok(None);
        }
        let roles = store.roles_of(user.id).await?;
        let session = Arc::new(Session {
            id: row.id,
            token_hash: hash.to_string(),
            identity: self.identity(&user, &roles, row.twofa_verified),
            created_at: row.created_at,
            expires_at: row.expires_at,
            twofa_verified: row.twofa_verified,
            auth_method: row.auth_method.clone(),
            last_seen: AtomicI64::new(dt_to_micros(row.last_activity)),
            last_written: AtomicI64::new(dt_to_micros(row.last_activity)),
            assertion: AssertionSlot::default(),
        });
        self.inner
            .cache
            .insert(hash.to_string(), session.clone())
            .await;
        if self.inner.generation.load(Ordering::SeqCst) != generation {
            // An eviction ran while we read: what we read may predate it.
            self.inner.cache.invalidate(hash).await;
        }
        Ok(Some(session))
    }

    /// Signs out the session behind a cookie value.
    pub async fn end_token(&self, token: &str) -> Result<(), StoreError> {
        if looks_like_token(token) {
            self.end_hash(&hash_token(token)).await?;
        }
        Ok(())
    }

    async fn end_hash(&self, hash: &str) -> Result<(), StoreError> {
        // Gone from here (and from every memo) first, should the store fail below: fail closed.
        let cached = self.inner.cache.remove(hash).await;
        self.bump_generation();
        let row_id = match cached {
            Some(s) => Some(s.id),
            None => self
                .inner
                .store
                .session_by_token_hash(hash)
                .await?
                .map(|r| r.id),
        };
        if let Some(id) = row_id {
            self.inner.store.end_session(id).await?;
        }
        // A request that read the row before it was ended may have cached it again meanwhile.
        self.evict_token_hashes(&[hash.to_string()]).await;
        Ok(())
    }

    /// Ends one session by id (account page, admin API).
    pub async fn end_by_id(&self, id: SessionId) -> Result<bool, StoreError> {
        match self.inner.store.end_session(id).await? {
            Some(hash) => {
                self.evict_token_hashes(&[hash]).await;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Ends every session of a user except `keep`.
    pub async fn end_all_for_user(
        &self,
        user: UserId,
        keep: Option<SessionId>,
    ) -> Result<usize, StoreError> {
        let hashes = self.inner.store.end_sessions_of(user, keep).await?;
        self.evict_token_hashes(&hashes).await;
        Ok(hashes.len())
    }

    /// Drops cached sessions by token hash (after the store ended them).
    pub async fn evict_token_hashes(&self, hashes: &[String]) {
        self.bump_generation();
        for h in hashes {
            self.inner.cache.invalidate(h).await;
            self.inner
                .tunnels
                .notify(tunnels::Revalidate::TokenHash(h.clone()));
        }
        self.bump_generation();
    }

    /// Called before and after every eviction. The bump before makes a load that overlapped
    /// it drop what it cached; the bump after, once the cache no longer holds what was
    /// evicted, makes every [`SessionMemo`] recorded before (or while it ran) untrusted.
    fn bump_generation(&self) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Drops every cached session of a user, so the next request reloads their identity (after
    /// a profile, role or status change).
    pub fn evict_user(&self, user: UserId) {
        self.bump_generation();
        if let Err(e) = self
            .inner
            .cache
            .invalidate_entries_if(move |_, s| s.identity.user_id == user)
        {
            tracing::error!(error = %e, "cannot evict cached sessions; clearing the whole cache");
            self.inner.cache.invalidate_all();
        }
        self.bump_generation();
        self.inner.tunnels.notify(tunnels::Revalidate::User(user));
    }

    /// How long until `s` expires (idle or absolute), as of now.
    pub fn time_left(&self, s: &Session) -> Duration {
        let idle = chrono::Duration::from_std(self.inner.settings.idle_timeout)
            .unwrap_or(chrono::Duration::minutes(30));
        let end = s.expires_at.0.min(s.last_seen().0 + idle);
        (end - self.now().0).to_std().unwrap_or(Duration::ZERO)
    }

    /// Evictions, for tunnels that must close when their session ends.
    pub fn tunnel_events(&self) -> tokio::sync::broadcast::Receiver<tunnels::Revalidate> {
        self.inner.tunnels.subscribe()
    }

    /// Drops every cached session (and the cache of unknown tokens), so every next request
    /// reloads from the database; for the change feed after a gap it cannot account for.
    /// Every tunnel checks its session again.
    pub fn flush_all(&self) {
        self.bump_generation();
        self.inner.cache.invalidate_all();
        self.inner.unknown.invalidate_all();
        self.bump_generation();
        self.inner.tunnels.notify(tunnels::Revalidate::All);
    }

    /// Writes pending `last_activity` updates; for shutdown.
    pub async fn flush(&self) {
        self.inner.toucher.flush().await;
    }
}

/// User agents are client-controlled; keep the column bounded.
fn truncate_agent(ua: &str) -> String {
    ua.chars().take(512).collect()
}
