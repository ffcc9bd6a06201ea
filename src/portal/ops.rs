//! The stylesheet, health check and metrics.

use std::sync::atomic::Ordering;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::app::App;
use crate::web::{Body, RequestCtx, respond};

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

/// Prometheus text counters, for loopback and trusted proxies only.
pub fn metrics(app: &App, ctx: &RequestCtx) -> Response<Body> {
    if !(ctx.peer.ip().is_loopback() || ctx.peer_trusted) {
        return respond::text(
            StatusCode::FORBIDDEN,
            "metrics are served to loopback and trusted proxies only",
        );
    }
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
    ];
    let body: String = lines
        .iter()
        .map(|(k, v)| format!("# TYPE {k} counter\n{k} {v}\n"))
        .collect();
    let mut r = respond::text(StatusCode::OK, body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}
