//! The change feed's tailer: how a change made by another process (the CLI, a second instance)
//! reaches this process's caches within a second.
//!
//! Every store write that caches must see appends a row to `change_events` in its own
//! transaction (`crate::store::events`). Each server runs one tailer:
//!
//! ```text
//!  PostgreSQL: LISTEN gatehouse_changes_<md5(schema)> ──NOTIFY at commit──┐
//!              (+ a read every 5 s, in case a wake-up is ever lost)        ├─▶ SELECT … WHERE id > last
//!  SQLite:     a read every 100 ms (the CLI and the server share the file) ┘        │
//!                                                                                    ▼
//!        session_ended ─▶ SessionService::evict_token_hashes     token_revoked ─▶ ApiTokens::evict_token_hash
//!        any other row naming a user ─▶ SessionService::evict_user + ApiTokens::evict_user
//!        (the next request reloads the user from the database: ended, refused, or new roles)
//! ```
//!
//! A gap — the listening connection lost, or an id missing between two rows read — means the
//! tailer cannot know what it missed: it flushes both caches ([`SessionService::flush_all`],
//! [`ApiTokens::flush_all`]) and resumes from the newest id. On PostgreSQL ids become visible in
//! order (see the migration), so a missing id is a rolled-back transaction; flushing then is
//! merely cautious. Rows older than an hour that this process has applied are pruned, once a
//! minute. All its queries are background queries: the proxy's hot path stays at zero.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::{Clock, SystemClock};
use crate::session::{ApiTokens, SessionService};
use crate::store::events::READ_BATCH;
use crate::store::{ChangeKind, ChangeRow, Store, StoreError};

/// How often SQLite is polled (the bound is 1 s; the issue asks for at most 250 ms).
pub const SQLITE_POLL: Duration = Duration::from_millis(100);
/// How often PostgreSQL is read without a wake-up.
pub const PG_SAFETY_POLL: Duration = Duration::from_secs(5);
/// Wait before reconnecting a lost listener after a failed attempt, doubling up to the maximum
/// while the database stays unreachable.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Events older than this are deleted.
pub const RETENTION_SECS: i64 = 3600;
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Counters for `/_auth/metrics`.
#[derive(Debug)]
pub struct FeedStats {
    /// Events applied to the caches.
    pub applied: AtomicU64,
    /// Whole-cache flushes after a gap.
    pub flushes: AtomicU64,
    /// Listener connections lost and made again (PostgreSQL).
    pub reconnects: AtomicU64,
    /// Reads that failed (the tailer retries; reading by id loses nothing).
    pub errors: AtomicU64,
    /// The last event id applied.
    pub last_id: AtomicI64,
    /// Lag of the last event applied (commit-side `created_at` to applied), microseconds.
    pub lag_last_us: AtomicU64,
    pub lag_sum_us: AtomicU64,
    pub lag_max_us: AtomicU64,
    /// Lag of every event applied, seconds (`gatehouse_feed_lag_seconds`).
    pub lag: prometheus_client::metrics::histogram::Histogram,
    /// Whether the tailer is reading: its last read worked and, on PostgreSQL, its `LISTEN`
    /// connection is up. `/_auth/readyz` needs it.
    pub connected: std::sync::atomic::AtomicBool,
}

impl Default for FeedStats {
    fn default() -> Self {
        FeedStats {
            applied: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_id: AtomicI64::new(0),
            lag_last_us: AtomicU64::new(0),
            lag_sum_us: AtomicU64::new(0),
            lag_max_us: AtomicU64::new(0),
            lag: prometheus_client::metrics::histogram::Histogram::new(
                crate::metrics::FEED_LAG_BUCKETS,
            ),
            connected: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// The running tailer. Dropping it (with the app) stops the task.
#[derive(Debug)]
pub struct Feed {
    stats: Arc<FeedStats>,
    stop: watch::Sender<bool>,
}

impl Feed {
    /// Reads the newest event id (so nothing committed from now on is missed) and spawns the
    /// tailer on the current runtime.
    pub async fn start(
        store: Store,
        sessions: SessionService,
        tokens: ApiTokens,
    ) -> Result<Feed, StoreError> {
        let store = store.for_background();
        let store_is_sqlite = store.backend() == crate::store::Backend::Sqlite;
        let last = store.newest_change_id().await?;
        let stats = Arc::new(FeedStats::default());
        stats.last_id.store(last, Ordering::Relaxed);
        let (stop, stop_rx) = watch::channel(false);
        let tailer = Tailer {
            store,
            sessions,
            tokens,
            stats: stats.clone(),
            last,
            pruned_at: tokio::time::Instant::now(),
            stop: stop_rx,
            listening: store_is_sqlite,
        };
        tokio::spawn(tailer.run());
        Ok(Feed { stats, stop })
    }

    pub fn stats(&self) -> &FeedStats {
        &self.stats
    }

    /// Stops the tailer (shutdown).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

struct Tailer {
    store: Store,
    sessions: SessionService,
    tokens: ApiTokens,
    stats: Arc<FeedStats>,
    /// The last id applied.
    last: i64,
    pruned_at: tokio::time::Instant,
    stop: watch::Receiver<bool>,
    /// PostgreSQL: the `LISTEN` connection is up. SQLite has nothing to lose: always true.
    listening: bool,
}

/// Whether the loop should go on after a read error.
enum Next {
    Continue,
    Stop,
}

impl Tailer {
    async fn run(mut self) {
        match self.store.backend() {
            crate::store::Backend::Sqlite => self.run_polling().await,
            crate::store::Backend::Postgres => self.run_listening().await,
        }
        tracing::debug!("change feed stopped");
    }

    /// Waits `d` or until stopped; `false` when stopped.
    async fn pause(&mut self, d: Duration) -> bool {
        tokio::select! {
            r = self.stop.changed() => r.is_ok() && !*self.stop.borrow(),
            () = tokio::time::sleep(d) => true,
        }
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    async fn run_polling(&mut self) {
        loop {
            if let Next::Stop = self.catch_up().await {
                return;
            }
            if !self.pause(SQLITE_POLL).await {
                return;
            }
        }
    }

    async fn run_listening(&mut self) {
        let mut first = true;
        let mut backoff = RECONNECT_BACKOFF;
        loop {
            if self.stopped() {
                return;
            }
            let mut listener = match self.store.change_listener().await {
                Ok(Some(l)) => l,
                Ok(None) => return,
                Err(e) => {
                    if e.is_closed() {
                        return;
                    }
                    self.stats.connected.store(false, Ordering::Relaxed);
                    tracing::warn!(error = %e, retry_in = ?backoff, "change feed: cannot listen");
                    if !self.pause(backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
                    continue;
                }
            };
            backoff = RECONNECT_BACKOFF;
            self.listening = true;
            if !first {
                // Wake-ups were lost while the connection was down: start over from a clean
                // cache at the newest id.
                self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                if let Next::Stop = self.resync().await {
                    return;
                }
            }
            first = false;
            // The listener lives in its own task, so waiting on it is never cancelled midway;
            // it reports wake-ups (`true`) and the loss of its connection (`false`).
            let (wake_tx, mut wake) = tokio::sync::mpsc::channel::<bool>(1);
            let listening = tokio::spawn(async move {
                loop {
                    match listener.try_recv().await {
                        Ok(Some(_)) => {
                            // Full means a wake-up is already pending, which is as good.
                            let _ = wake_tx.try_send(true);
                        }
                        Ok(None) => {
                            tracing::warn!("change feed: listening connection lost; reconnecting");
                            let _ = wake_tx.send(false).await;
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "change feed: listening connection failed; reconnecting");
                            let _ = wake_tx.send(false).await;
                            return;
                        }
                    }
                }
            });
            let stop = loop {
                if let Next::Stop = self.catch_up().await {
                    break true;
                }
                tokio::select! {
                    r = self.stop.changed() => {
                        if r.is_err() || *self.stop.borrow() {
                            break true;
                        }
                    }
                    w = wake.recv() => {
                        if w != Some(true) {
                            break false;
                        }
                    }
                    () = tokio::time::sleep(PG_SAFETY_POLL) => {}
                }
            };
            listening.abort();
            if stop {
                return;
            }
            self.listening = false;
            self.stats.connected.store(false, Ordering::Relaxed);
        }
    }

    /// Flushes every cache and moves to the newest id. The id is read before the flush: an
    /// event committed after the read is still read by id; one committed before it is in the
    /// database every load after the flush sees (and a load that straddles the flush is dropped
    /// by the caches' generation check). Without the newest id, it flushes and keeps reading
    /// from the last id applied, which loses nothing either.
    async fn resync(&mut self) -> Next {
        let newest = self.store.newest_change_id().await;
        self.flush();
        match newest {
            Ok(newest) => {
                self.set_last(newest.max(self.last));
                Next::Continue
            }
            Err(e) => self.read_failed(e),
        }
    }

    fn flush(&self) {
        self.stats.flushes.fetch_add(1, Ordering::Relaxed);
        self.sessions.flush_all();
        self.tokens.flush_all();
    }

    fn set_last(&mut self, id: i64) {
        self.last = id;
        self.stats.last_id.store(id, Ordering::Relaxed);
    }

    fn read_failed(&self, e: StoreError) -> Next {
        if e.is_closed() {
            return Next::Stop;
        }
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        self.stats.connected.store(false, Ordering::Relaxed);
        tracing::warn!(error = %e, "change feed: read failed; retrying");
        Next::Continue
    }

    /// Applies every event after `last`, then prunes when due.
    async fn catch_up(&mut self) -> Next {
        loop {
            let rows = match self.store.changes_after(self.last).await {
                Ok(rows) => rows,
                Err(e) => return self.read_failed(e),
            };
            let full = rows.len() as i64 >= READ_BATCH;
            for row in rows {
                if row.id != self.last + 1 {
                    // Pruned before we read it, or (PostgreSQL) a rolled-back transaction: we
                    // cannot tell what it held.
                    tracing::debug!(
                        expected = self.last + 1,
                        got = row.id,
                        "change feed: id gap; flushing caches"
                    );
                    self.flush();
                }
                self.apply(&row).await;
                self.set_last(row.id);
            }
            if !full {
                break;
            }
        }
        self.stats
            .connected
            .store(self.listening, Ordering::Relaxed);
        if self.pruned_at.elapsed() >= PRUNE_EVERY {
            self.pruned_at = tokio::time::Instant::now();
            match self.store.prune_changes(self.last, RETENTION_SECS).await {
                Ok(n) if n > 0 => tracing::debug!(rows = n, "change feed: pruned old events"),
                Ok(_) => {}
                Err(e) => return self.read_failed(e),
            }
        }
        Next::Continue
    }

    async fn apply(&self, row: &ChangeRow) {
        match (ChangeKind::parse(&row.kind), row.user_id, &row.token_hash) {
            (Some(ChangeKind::SessionEnded), _, Some(hash)) => {
                self.sessions
                    .evict_token_hashes(std::slice::from_ref(hash))
                    .await;
            }
            (Some(ChangeKind::TokenRevoked), _, Some(hash)) => {
                self.tokens.evict_token_hash(hash).await;
            }
            (_, Some(user), _) => {
                self.sessions.evict_user(user);
                self.tokens.evict_user(user);
            }
            // A row we cannot place (written by a newer version): be safe.
            _ => self.flush(),
        }
        self.stats.applied.fetch_add(1, Ordering::Relaxed);
        // Real time, not the injected clock: lag is a property of this machine.
        let lag = SystemClock.now() - row.created_at.0;
        let us = u64::try_from(lag.num_microseconds().unwrap_or(0)).unwrap_or(0);
        self.stats.lag_last_us.store(us, Ordering::Relaxed);
        self.stats.lag_sum_us.fetch_add(us, Ordering::Relaxed);
        self.stats.lag_max_us.fetch_max(us, Ordering::Relaxed);
        self.stats.lag.observe(us as f64 / 1e6);
    }
}
