//! Counting events per key (a client address, an account) in fixed windows, in memory.
//!
//! Used on top of the per-account lockout: failed sign-ins per client address, and mail-sending
//! requests (password reset, sign-up) per address and per account. Windows are judged on the
//! injected clock, so tests move time instead of sleeping; the moka cache only bounds memory.
//! State is per process: behind several instances each one counts on its own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::future::Cache;

use crate::store::Ts;

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Ts,
    count: u32,
}

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

/// At most `limit` events per key within `window`.
#[derive(Clone)]
pub struct Throttle {
    limit: u32,
    window: chrono::Duration,
    hits: Cache<String, Arc<Mutex<Window>>>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("limit", &self.limit)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Throttle {
    pub fn new(limit: u32, window: Duration, capacity: u64) -> Throttle {
        Throttle {
            limit,
            window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::hours(1)),
            hits: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(window)
                .build(),
        }
    }

    fn current(&self, w: &mut Window, now: Ts) {
        if now.0 - w.start.0 >= self.window || now < w.start {
            *w = Window {
                start: now,
                count: 0,
            };
        }
    }

    /// Whether `key` has used up its allowance at `now` (counts nothing).
    pub async fn is_blocked(&self, key: &str, now: Ts) -> bool {
        let Some(w) = self.hits.get(key).await else {
            return false;
        };
        let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
        self.current(&mut w, now);
        w.count >= self.limit
    }

    /// Counts one event; returns whether it was within the allowance.
    pub async fn hit(&self, key: &str, now: Ts) -> bool {
        let w = self
            .hits
            .get_with(key.to_string(), async move {
                Arc::new(Mutex::new(Window {
                    start: now,
                    count: 0,
                }))
            })
            .await;
        let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
        self.current(&mut w, now);
        w.count = w.count.saturating_add(1);
        w.count <= self.limit
    }

    /// Gives back one event counted by [`Throttle::hit`] (an attempt that turned out to
    /// succeed), so that reserving before checking counts only failures in the end.
    pub async fn release(&self, key: &str) {
        if let Some(w) = self.hits.get(key).await {
            let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
            w.count = w.count.saturating_sub(1);
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
        let t = Throttle::new(2, Duration::from_secs(60), 100);
        let now = Ts(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default());
        assert!(!t.is_blocked("a", now).await);
        assert!(t.hit("a", now).await);
        assert!(t.hit("a", now).await);
        assert!(t.is_blocked("a", now).await);
        assert!(!t.hit("a", now).await);
        assert!(!t.is_blocked("b", now).await);
        let later = Ts(now.0 + chrono::Duration::seconds(61));
        assert!(!t.is_blocked("a", later).await);
        assert!(t.hit("a", later).await);
    }
}
