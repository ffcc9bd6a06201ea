//! One scrape: the live registry, then the values other parts keep, read now.

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::Metrics;

/// The Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Values read at scrape time from the parts that keep them.
#[derive(Debug, Default)]
pub struct ScrapeValues {
    pub password_verifications: u64,
    pub password_hash_seconds: Option<Histogram>,
    pub lockouts: u64,
    pub db_queries: u64,
    pub db_background_queries: u64,
    pub session_cache_hits: u64,
    pub session_cache_misses: u64,
    pub activity_queued: u64,
    pub activity_written: u64,
    pub activity_dropped: u64,
    pub feed_applied: u64,
    pub feed_flushes: u64,
    pub feed_reconnects: u64,
    pub feed_read_errors: u64,
    pub feed_last_id: i64,
    pub feed_connected: bool,
    pub feed_lag_seconds: Option<Histogram>,
    pub feed_lag_last_seconds: f64,
    pub feed_lag_max_seconds: f64,
}

/// The whole exposition. Counter names gain `_total` and units their suffix as the format
/// requires, so `gatehouse_requests` is scraped as `gatehouse_requests_total`.
pub fn render(m: &Metrics, v: &ScrapeValues) -> Result<String, std::fmt::Error> {
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    let mut r = Registry::default();
    let mut counter = |name: &str, help: &str, value: u64| {
        r.register(name, help, ConstCounter::new(value));
    };
    counter(
        "gatehouse_requests",
        "Requests received on the main listener",
        m.requests.load(relaxed),
    );
    counter(
        "gatehouse_proxied_requests",
        "Requests forwarded to the upstream",
        m.proxied.load(relaxed),
    );
    counter(
        "gatehouse_upstream_errors",
        "Forwarded requests that got no answer from the upstream",
        m.upstream_errors.load(relaxed),
    );
    counter(
        "gatehouse_connections_timed_out",
        "Connections closed because they missed the handshake or idle deadline",
        m.connections_timed_out.load(relaxed),
    );
    counter(
        "gatehouse_password_verifications",
        "Passwords checked against a real stored hash",
        v.password_verifications,
    );
    counter(
        "gatehouse_lockouts",
        "Accounts locked after too many failed sign-ins",
        v.lockouts,
    );
    counter(
        "gatehouse_db_queries",
        "Database statements run on the request path",
        v.db_queries,
    );
    counter(
        "gatehouse_db_background_queries",
        "Database statements run by background work (activity writer, change feed, session touches)",
        v.db_background_queries,
    );
    counter(
        "gatehouse_session_cache_hits",
        "Session lookups answered from the cache",
        v.session_cache_hits,
    );
    counter(
        "gatehouse_session_cache_misses",
        "Session lookups that went to the database",
        v.session_cache_misses,
    );
    counter(
        "gatehouse_activity_queued",
        "Activity rows queued for the writer",
        v.activity_queued,
    );
    counter(
        "gatehouse_activity_written",
        "Activity rows written to the database",
        v.activity_written,
    );
    counter(
        "gatehouse_activity_dropped",
        "Activity rows dropped because the queue was full or closed",
        v.activity_dropped,
    );
    counter(
        "gatehouse_feed_events_applied",
        "Change-feed events applied to the caches",
        v.feed_applied,
    );
    counter(
        "gatehouse_feed_flushes",
        "Whole-cache flushes after a gap in the change feed",
        v.feed_flushes,
    );
    counter(
        "gatehouse_feed_reconnects",
        "Change-feed listening connections lost and made again",
        v.feed_reconnects,
    );
    counter(
        "gatehouse_feed_read_errors",
        "Change-feed reads that failed (retried)",
        v.feed_read_errors,
    );
    r.register(
        "gatehouse_connections_open",
        "Client connections open now",
        ConstGauge::new(m.connections_open.load(relaxed)),
    );
    r.register(
        "gatehouse_activity_queue_depth",
        "Activity rows queued and not yet written",
        ConstGauge::new(v.activity_queued.saturating_sub(v.activity_written) as i64),
    );
    r.register(
        "gatehouse_feed_last_id",
        "Id of the last change-feed event applied",
        ConstGauge::new(v.feed_last_id),
    );
    r.register(
        "gatehouse_feed_connected",
        "1 when the change feed is reading (PostgreSQL: its LISTEN connection is up)",
        ConstGauge::new(i64::from(v.feed_connected)),
    );
    r.register_with_unit(
        "gatehouse_feed_lag_last",
        "Lag of the last change-feed event, from its commit to applied",
        Unit::Seconds,
        ConstGauge::new(v.feed_lag_last_seconds),
    );
    r.register_with_unit(
        "gatehouse_feed_lag_max",
        "Largest change-feed lag since start",
        Unit::Seconds,
        ConstGauge::new(v.feed_lag_max_seconds),
    );
    if let Some(h) = &v.feed_lag_seconds {
        r.register_with_unit(
            "gatehouse_feed_lag",
            "Change-feed lag, from an event's commit to applied to the caches",
            Unit::Seconds,
            h.clone(),
        );
    }
    if let Some(h) = &v.password_hash_seconds {
        r.register_with_unit(
            "gatehouse_password_hash_duration",
            "Time to hash or verify one password (argon2id or a legacy scheme)",
            Unit::Seconds,
            h.clone(),
        );
    }
    let mut out = String::with_capacity(16 * 1024);
    prometheus_text::encode(&mut out, m.registry())?;
    prometheus_text::encode(&mut out, &r)?;
    Ok(out)
}
