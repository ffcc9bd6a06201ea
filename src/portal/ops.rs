//! The stylesheet, health check and metrics.

use std::sync::atomic::Ordering;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::app::App;
use crate::web::{Body, RequestCtx, respond};

/// A static script, cached like the stylesheet.
pub fn script(source: &'static str) -> Response<Body> {
    let mut r = respond::text(StatusCode::OK, source);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

pub fn stylesheet(app: &App) -> Response<Body> {
    match app
        .templates
        .render("gatehouse.css", minijinja::context! {})
    {
        Ok(css) => {
            let mut r = respond::text(StatusCode::OK, css);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            );
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            r
        }
        Err(e) => super::render_failed(&e),
    }
}

/// Ready when the database answers.
pub async fn health(app: &App) -> Response<Body> {
    match app.store.ping().await {
        Ok(()) => respond::json(StatusCode::OK, &serde_json::json!({ "status": "ok" })),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unavailable");
            respond::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({ "status": "database unavailable" }),
            )
        }
    }
}

/// Headers by which a proxy says it forwarded a request.
const FORWARDING_HEADERS: [&str; 3] = ["x-forwarded-for", "forwarded", "x-real-ip"];

/// Whether `/_auth/metrics` may answer this request: the TCP peer is in
/// `server.metrics_allow`, is not a trusted proxy, and the request carries no forwarding
/// header. A TLS terminator or proxy on the same host thus never relays metrics to the world,
/// whether or not it is configured as trusted.
pub fn metrics_allowed(app: &App, peer: std::net::SocketAddr, headers: &http::HeaderMap) -> bool {
    let s = &app.settings.server;
    let ip = match peer.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
        v4 => v4,
    };
    s.metrics_allow.iter().any(|n| n.contains(&ip))
        && !s.trusted_proxies.iter().any(|n| n.contains(&ip))
        && !FORWARDING_HEADERS.iter().any(|h| headers.contains_key(*h))
}

/// `/_auth/metrics` on the main listener: 404 when it has its own (`server.metrics_listen`),
/// 403 to anyone [`metrics_allowed`] refuses.
pub fn metrics(app: &App, ctx: &RequestCtx, headers: &http::HeaderMap) -> Response<Body> {
    if app.settings.server.metrics_listen.is_some() {
        return respond::text(StatusCode::NOT_FOUND, "not found");
    }
    if !metrics_allowed(app, ctx.peer, headers) {
        return respond::text(
            StatusCode::FORBIDDEN,
            "metrics are served only to the addresses in server.metrics_allow, never through a proxy",
        );
    }
    metrics_body(app)
}

/// The Prometheus text counters.
pub fn metrics_body(app: &App) -> Response<Body> {
    let m = &app.metrics;
    let a = app.audit.stats();
    let s = app.sessions.stats();
    let lines = [
        (
            "gatehouse_requests_total",
            m.requests.load(Ordering::Relaxed),
        ),
        (
            "gatehouse_proxied_requests_total",
            m.proxied.load(Ordering::Relaxed),
        ),
        (
            "gatehouse_upstream_errors_total",
            m.upstream_errors.load(Ordering::Relaxed),
        ),
        (
            "gatehouse_password_verifications_total",
            app.accounts.hasher().verifications(),
        ),
        ("gatehouse_db_queries_total", app.store.query_count()),
        (
            "gatehouse_db_background_queries_total",
            app.store.background_query_count(),
        ),
        (
            "gatehouse_session_cache_hits_total",
            s.hits.load(Ordering::Relaxed),
        ),
        (
            "gatehouse_session_cache_misses_total",
            s.misses.load(Ordering::Relaxed),
        ),
        ("gatehouse_activity_queued_total", a.queued),
        ("gatehouse_activity_written_total", a.written),
        ("gatehouse_activity_dropped_total", a.dropped),
        (
            "gatehouse_connections_timed_out_total",
            m.connections_timed_out.load(Ordering::Relaxed),
        ),
    ];
    let mut body: String = lines
        .iter()
        .map(|(k, v)| format!("# TYPE {k} counter\n{k} {v}\n"))
        .collect();
    body.push_str(&format!(
        "# TYPE gatehouse_connections_open gauge\ngatehouse_connections_open {}\n",
        m.connections_open.load(Ordering::Relaxed)
    ));
    body.push_str(&feed_metrics(app.feed.stats()));
    let mut r = respond::text(StatusCode::OK, body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

/// The change feed: events applied, flushes, reconnects, and the lag from commit to applied.
fn feed_metrics(f: &crate::feed::FeedStats) -> String {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let secs = |us: u64| us as f64 / 1e6;
    let applied = get(&f.applied);
    let mut out = String::new();
    for (name, v) in [
        ("gatehouse_feed_events_applied_total", applied),
        ("gatehouse_feed_flushes_total", get(&f.flushes)),
        ("gatehouse_feed_reconnects_total", get(&f.reconnects)),
        ("gatehouse_feed_read_errors_total", get(&f.errors)),
    ] {
        out.push_str(&format!("# TYPE {name} counter\n{name} {v}\n"));
    }
    out.push_str(&format!(
        "# TYPE gatehouse_feed_last_id gauge\ngatehouse_feed_last_id {}\n",
        f.last_id.load(Ordering::Relaxed)
    ));
    out.push_str(&format!(
        "# TYPE gatehouse_feed_lag_seconds summary\ngatehouse_feed_lag_seconds_sum {}\n\
         gatehouse_feed_lag_seconds_count {applied}\n",
        secs(get(&f.lag_sum_us))
    ));
    for (name, us) in [
        ("gatehouse_feed_lag_last_seconds", get(&f.lag_last_us)),
        ("gatehouse_feed_lag_max_seconds", get(&f.lag_max_us)),
    ] {
        out.push_str(&format!("# TYPE {name} gauge\n{name} {}\n", secs(us)));
    }
    out
}
