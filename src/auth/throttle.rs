//! Counting events per key (a client address, an account) in fixed windows, in the database.
//!
//! Used on top of the per-account lockout: failed sign-ins per client address, and mail-sending
//! requests (password reset, sign-up) per address and per account. The counts live in the
//! `throttle_counts` table, so every instance on the database shares them: a client cannot get
//! a fresh allowance by reaching another instance. Each hit is one atomic upsert. Windows are
//! judged on the injected clock, so tests move time instead of sleeping.
//!
//! When the database cannot be reached a throttle lets the request through (and logs it): what
//! it guards (a password check, a mail to an account) needs the database as well and fails
//! there, so failing open adds no exposure and keeps one error path.

use std::time::Duration;

use crate::store::{Store, Ts};

/// The throttle key for a client address: an IPv4 address as is, an IPv6 address by its /64
/// (one subscriber's network: a client rotating through its /64 stays one key). IPv4-mapped
/// IPv6 addresses count as the IPv4 address.
pub fn address_key(ip: std::net::IpAddr) -> String {
    use std::net::{IpAddr, Ipv6Addr};
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let net = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        },
    }
}

/// At most `limit` events per key within `window`; `scope` names the counter in the table.
#[derive(Clone)]
pub struct Throttle {
    store: Store,
    scope: &'static str,
    limit: u32,
    window: chrono::Duration,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("scope", &self.scope)
            .field("limit", &self.limit)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Throttle {
    pub fn new(store: Store, scope: &'static str, limit: u32, window: Duration) -> Throttle {
        Throttle {
            store,
            scope,
            limit,
            window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::hours(1)),
        }
    }

    pub fn window(&self) -> chrono::Duration {
        self.window
    }

    /// Whether `key` has used up its allowance at `now` (counts nothing).
    pub async fn is_blocked(&self, key: &str, now: Ts) -> bool {
        match self.store.throttle_count(self.scope, key, now).await {
            Ok(n) => n >= i64::from(self.limit),
            Err(e) => {
                tracing::error!(error = %e, scope = self.scope, "throttle: cannot read the count");
                false
            }
        }
    }

    /// Counts one event; returns whether it was within the allowance.
    pub async fn hit(&self, key: &str, now: Ts) -> bool {
        let end = Ts(now.0 + self.window);
        match self.store.throttle_hit(self.scope, key, now, end).await {
            Ok(n) => n <= i64::from(self.limit),
            Err(e) => {
                tracing::error!(error = %e, scope = self.scope, "throttle: cannot count a hit");
                true
            }
        }
    }

    /// Gives back one event counted by [`Throttle::hit`] (an attempt that turned out to
    /// succeed), so that reserving before checking counts only failures in the end.
    pub async fn release(&self, key: &str) {
        if let Err(e) = self.store.throttle_release(self.scope, key).await {
            tracing::error!(error = %e, scope = self.scope, "throttle: cannot give back a hit");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_keyed_by_its_64() {
        let k = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(k("2001:db8:1:2::1"), k("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(k("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        assert_eq!(k("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(k("192.0.2.7"), "192.0.2.7");
    }

    #[tokio::test]
    async fn limits_per_key_and_window() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url, 2).await.unwrap();
        store.migrate().await.unwrap();
        let t = Throttle::new(store.clone(), "test", 2, Duration::from_secs(60));
        let other = Throttle::new(store, "other", 2, Duration::from_secs(60));
        let now = Ts(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default());
        assert!(!t.is_blocked("a", now).await);
        assert!(t.hit("a", now).await);
        assert!(t.hit("a", now).await);
        assert!(t.is_blocked("a", now).await);
        assert!(!t.hit("a", now).await);
        assert!(!t.is_blocked("b", now).await);
        assert!(!other.is_blocked("a", now).await, "scopes count apart");
        t.release("a").await;
        t.release("a").await;
        assert!(!t.is_blocked("a", now).await);
        let later = Ts(now.0 + chrono::Duration::seconds(61));
        assert!(!t.is_blocked("a", later).await);
        assert!(t.hit("a", later).await);
        let earlier = Ts(now.0 - chrono::Duration::seconds(10));
        assert!(
            t.hit("a", earlier).await,
            "a window in the future starts again"
        );
    }
}
