//! The portal's state between requests: throttles and pending two-factor sign-ins. Both live in
//! the database, so any instance can serve any step of a flow (no sticky sessions).

use std::sync::atomic::{AtomicI64, Ordering};

use crate::auth::throttle::Throttle;
use crate::config::SecuritySettings;
use crate::session::pending::PendingLogins;
use crate::store::{Store, Ts};

/// How often (on the injected clock) an instance deletes expired throttle windows and pending
/// sign-ins, piggybacked on a portal request.
const PRUNE_EVERY_SECS: i64 = 60;

#[derive(Debug)]
pub struct PortalState {
    /// Failed sign-ins (wrong password or code) per client address:
    /// `security.login_attempts_per_ip` per `security.login_throttle_window`; over it, 429.
    pub login_ip: Throttle,
    /// Mail-sending requests (reset, sign-up, resend) per client address:
    /// `security.reset_requests_per_ip` per `security.reset_throttle_window`; over it, 429.
    pub mail_ip: Throttle,
    /// Reset mails per account: `security.reset_requests_per_account` per window; over it, the
    /// request is answered as usual but no mail goes out.
    pub mail_account: Throttle,
    /// Sign-ins waiting for their second factor.
    pub pending: PendingLogins,
    store: Store,
    /// Unix seconds of the last prune (0: not yet).
    pruned_at: AtomicI64,
    /// Pending sign-ins whose first step was a passkey without user verification (by cookie
    /// token): their second step cannot be a passkey again. In memory: see the passkeys notes.
    pub passkey_first: moka::future::Cache<String, ()>,
}

impl PortalState {
    pub fn new(store: &Store, s: &SecuritySettings) -> PortalState {
        PortalState {
            login_ip: Throttle::new(
                store.clone(),
                "login_ip",
                s.login_attempts_per_ip,
                s.login_throttle_window,
            ),
            mail_ip: Throttle::new(
                store.clone(),
                "mail_ip",
                s.reset_requests_per_ip,
                s.reset_throttle_window,
            ),
            mail_account: Throttle::new(
                store.clone(),
                "mail_account",
                s.reset_requests_per_account,
                s.reset_throttle_window,
            ),
            pending: PendingLogins::new(store.clone(), s.twofa_pending_ttl, s.twofa_max_attempts),
            store: store.clone(),
            pruned_at: AtomicI64::new(0),
            passkey_first: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(s.twofa_pending_ttl)
                .build(),
        }
    }

    /// Deletes expired rows when the last prune is a minute old. Called on portal requests
    /// (no timer task to stop at shutdown); one instance's claim on the slot is enough, so a
    /// swap decides which request does the work.
    pub async fn prune_if_due(&self, now: Ts) {
        let secs = now.0.timestamp();
        let last = self.pruned_at.load(Ordering::Relaxed);
        if (secs - last).abs() < PRUNE_EVERY_SECS
            || self
                .pruned_at
                .compare_exchange(last, secs, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        match self
            .store
            .prune_shared_state(now, self.pending.prune_before(now))
            .await
        {
            Ok(n) if n > 0 => tracing::debug!(rows = n, "portal: pruned expired shared state"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "portal: cannot prune expired shared state"),
        }
    }
}
