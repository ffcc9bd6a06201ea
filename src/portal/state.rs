//! The portal's in-memory state, built once at start.

use crate::auth::throttle::Throttle;
use crate::config::SecuritySettings;
use crate::session::pending::PendingLogins;

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
    /// Pending sign-ins whose first step was a passkey without user verification (by cookie
    /// token): their second step cannot be a passkey again.
    pub passkey_first: moka::future::Cache<String, ()>,
}

impl PortalState {
    pub fn new(s: &SecuritySettings) -> PortalState {
        PortalState {
            login_ip: Throttle::new(s.login_attempts_per_ip, s.login_throttle_window, 100_000),
            mail_ip: Throttle::new(s.reset_requests_per_ip, s.reset_throttle_window, 100_000),
            mail_account: Throttle::new(
                s.reset_requests_per_account,
                s.reset_throttle_window,
                100_000,
            ),
            pending: PendingLogins::new(s.twofa_pending_ttl, s.twofa_max_attempts),
            passkey_first: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(s.twofa_pending_ttl)
                .build(),
        }
    }
}
