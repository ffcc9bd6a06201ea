//! `/_auth/metrics`: every family with `# HELP` and `# TYPE`, in the Prometheus text format
//! (0.0.4), encoded by `prometheus-client`.
//!
//! Two kinds of families:
//!
//! ```text
//!  live handles (histograms, new counters) ── registered once in Metrics::registry
//!  counters kept by their owners (store, session cache, activity writer, change feed, the
//!  atomics below) ── read at scrape time and encoded as constant values (ScrapeValues)
//! ```
//!
//! The request path never looks a series up: per-route histograms are resolved when the routes
//! are loaded ([`RouteMetrics`]), so a request does one histogram observe for its duration and
//! one for its upstream latency.

mod scrape;

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

pub use scrape::{CONTENT_TYPE, ScrapeValues, render};

/// Request and upstream latency buckets, seconds: 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Password hashing, seconds: argon2id takes tens to hundreds of milliseconds.
pub const HASH_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// Change-feed lag, seconds: the bound is 1 s.
pub const FEED_LAG_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Label of the request-duration histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route's `path` pattern, `unmatched`, or `_auth` for Gatehouse's own endpoints.
    route: String,
    /// `1xx` … `5xx`.
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Process-wide metrics, shared by every configuration the process runs (reloads keep them).
#[derive(Debug)]
pub struct Metrics {
    pub connections_open: AtomicI64,
    /// Connections closed because they missed a handshake or idle deadline.
    pub connections_timed_out: AtomicU64,
    pub requests: AtomicU64,
    pub proxied: AtomicU64,
    pub upstream_errors: AtomicU64,
    /// Time from forwarding a request to the upstream's response head.
    pub upstream_seconds: Histogram,
    /// Sign-in attempts at `/_auth/login`, by outcome.
    pub signins: SigninOutcomes,
    /// Wrong or replayed codes at the two-factor step of sign-in.
    pub second_factor_failures: Counter,
    /// `SIGHUP` reloads applied, and refused (an invalid file: the running config stays).
    pub config_reloads: Counter,
    pub config_reload_failures: Counter,
    request_seconds: HistogramFamily<RequestLabels>,
    registry: Registry,
}

/// Pre-resolved sign-in counters, one per outcome.
#[derive(Debug, Clone)]
pub struct SigninOutcomes {
    /// The password was right (a second factor may still be asked).
    pub success: Counter,
    /// Wrong password, unknown, inactive or locked account (the client is told the same).
    pub refused: Counter,
    /// Refused before checking: too many failures from the client's address.
    pub throttled: Counter,
    /// Our side failed (database unreachable).
    pub error: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let request_seconds: HistogramFamily<RequestLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "gatehouse_request_duration",
            "Time to answer a request, by route (path pattern, `unmatched`, or `_auth` for \
             Gatehouse's own pages) and status class",
            Unit::Seconds,
            request_seconds.clone(),
        );
        let upstream_seconds = latency_histogram();
        registry.register_with_unit(
            "gatehouse_upstream_duration",
            "Time from forwarding a request to the upstream's response head",
            Unit::Seconds,
            upstream_seconds.clone(),
        );
        let signin_family = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "gatehouse_signins",
            "Sign-in attempts with a password, by outcome",
            signin_family.clone(),
        );
        let outcome = |o: &'static str| {
            signin_family
                .get_or_create(&OutcomeLabels { outcome: o })
                .clone()
        };
        let signins = SigninOutcomes {
            success: outcome("success"),
            refused: outcome("refused"),
            throttled: outcome("throttled"),
            error: outcome("error"),
        };
        let second_factor_failures = Counter::default();
        registry.register(
            "gatehouse_second_factor_failures",
            "Wrong or replayed codes at the two-factor step of sign-in",
            second_factor_failures.clone(),
        );
        let config_reloads = Counter::default();
        registry.register(
            "gatehouse_config_reloads",
            "Configuration reloads (SIGHUP) applied",
            config_reloads.clone(),
        );
        let config_reload_failures = Counter::default();
        registry.register(
            "gatehouse_config_reload_failures",
            "Configuration reloads (SIGHUP) refused because the file was invalid",
            config_reload_failures.clone(),
        );
        Metrics {
            connections_open: AtomicI64::new(0),
            connections_timed_out: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            proxied: AtomicU64::new(0),
            upstream_errors: AtomicU64::new(0),
            upstream_seconds,
            signins,
            second_factor_failures,
            config_reloads,
            config_reload_failures,
            request_seconds,
            registry,
        }
    }

    /// Histograms of a set of routes, resolved now so requests need no lookup.
    pub fn routes<'a>(&self, patterns: impl IntoIterator<Item = &'a str>) -> RouteMetrics {
        RouteMetrics {
            routes: patterns.into_iter().map(|p| self.by_status(p)).collect(),
            unmatched: self.by_status("unmatched"),
            own: self.by_status("_auth"),
        }
    }

    fn by_status(&self, route: &str) -> ByStatus {
        ByStatus(["1xx", "2xx", "3xx", "4xx", "5xx"].map(|status| {
            self.request_seconds
                .get_or_create(&RequestLabels {
                    route: route.to_string(),
                    status,
                })
                .clone()
        }))
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// One histogram per status class.
#[derive(Debug, Clone)]
struct ByStatus([Histogram; 5]);

impl ByStatus {
    fn observe(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.0[class].observe(elapsed.as_secs_f64());
    }
}

/// The request-duration histograms of one route table, index for index.
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    routes: Vec<ByStatus>,
    unmatched: ByStatus,
    own: ByStatus,
}

impl RouteMetrics {
    /// A proxied request: `route` is the index of the rule that matched, if any.
    pub fn observe(&self, route: Option<usize>, status: u16, elapsed: Duration) {
        route
            .and_then(|i| self.routes.get(i))
            .unwrap_or(&self.unmatched)
            .observe(status, elapsed);
    }

    /// A request to Gatehouse's own pages and endpoints under `/_auth/`.
    pub fn observe_own(&self, status: u16, elapsed: Duration) {
        self.own.observe(status, elapsed);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_family_has_help_and_type_and_routes_are_resolved() {
        let m = Metrics::new();
        let routes = m.routes(["/a/**", "/b"]);
        routes.observe(Some(1), 204, Duration::from_millis(3));
        routes.observe(None, 404, Duration::from_millis(1));
        routes.observe(Some(7), 500, Duration::from_millis(1));
        routes.observe_own(303, Duration::from_millis(2));
        m.signins.refused.inc();
        let text = render(&m, &ScrapeValues::default()).unwrap();
        let mut helped = std::collections::HashSet::new();
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                helped.insert(rest.split(' ').next().unwrap().to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.is_empty() {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
                    .unwrap_or(name);
                assert!(typed.contains(family), "{name} has no TYPE:\n{text}");
                assert!(helped.contains(family), "{name} has no HELP:\n{text}");
            }
        }
        assert!(
            text.contains(
                "gatehouse_request_duration_seconds_count{route=\"/b\",status=\"2xx\"} 1"
            )
        );
        // An index past the table (a stale match) counts as unmatched, never panics.
        assert!(text.contains(
            "gatehouse_request_duration_seconds_count{route=\"unmatched\",status=\"5xx\"} 1"
        ));
        assert!(text.contains(
            "gatehouse_request_duration_seconds_count{route=\"_auth\",status=\"3xx\"} 1"
        ));
        assert!(text.contains("gatehouse_signins_total{outcome=\"refused\"} 1"));
        assert!(text.contains("# TYPE gatehouse_requests_total counter"));
        assert!(text.contains("# TYPE gatehouse_connections_open gauge"));
    }
}
