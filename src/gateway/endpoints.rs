//! Operational endpoints under `/_auth/`: for load balancers, monitoring and front proxies
//! rather than people. Health (`/health`, `/healthz`, `/readyz`), Prometheus metrics
//! (`/metrics`), the identity assertion's public keys (`/.well-known/jwks.json`, see
//! [`super::assertion`]) and forward-auth (`/authz/auth-request`, `/authz/forward-auth`, see
//! [`super::forward_auth`]). They answer in JSON or plain text and write no shared state.

use std::sync::atomic::Ordering;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::forward_auth::{self, Flavor};
use crate::app::App;
use crate::web::{Body, RequestCtx, respond};

/// An operational endpoint; the router maps paths and methods to these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Health,
    Healthz,
    Readyz,
    Metrics,
    Jwks,
    AuthRequest,
    ForwardAuth,
}

pub async fn serve(
    app: &App,
    endpoint: Endpoint,
    req: Request<Incoming>,
    ctx: &RequestCtx,
) -> Response<Body> {
    match endpoint {
        Endpoint::Health => health(app).await,
        Endpoint::Healthz => healthz(),
        Endpoint::Readyz => readyz(app).await,
        Endpoint::Metrics => metrics(app, ctx, req.headers()),
        Endpoint::Jwks => super::assertion::jwks_response(app),
        Endpoint::AuthRequest => forward_auth::handle(app, req, ctx, Flavor::AuthRequest).await,
        Endpoint::ForwardAuth => forward_auth::handle(app, req, ctx, Flavor::ForwardAuth).await,
    }
}

/// `/_auth/healthz`: the process is up and answering. Touches nothing else, so a slow
/// database never gets a healthy process restarted.
pub fn healthz() -> Response<Body> {
    respond::json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

/// `/_auth/readyz`: the database answers, its schema is the one this build expects, and the
/// change feed is reading (on PostgreSQL, its `LISTEN` connection is up). 503 with the reason
/// otherwise, so a load balancer sends no traffic to an instance that would serve stale caches.
pub async fn readyz(app: &App) -> Response<Body> {
    let store = app.store.for_background();
    let not_ready = |reason: &str, detail: serde_json::Value| {
        respond::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "status": "not ready", "reason": reason, "detail": detail }),
        )
    };
    if let Err(e) = store.ping().await {
        tracing::warn!(error = %e, "readiness: database unavailable");
        return not_ready("database unavailable", serde_json::Value::Null);
    }
    match store.schema_versions().await {
        Ok((applied, expected)) if applied == expected => {}
        Ok((applied, expected)) => {
            return not_ready(
                "schema version mismatch",
                serde_json::json!({ "applied": applied, "expected": expected }),
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness: cannot read the schema version");
            return not_ready("schema version unreadable", serde_json::Value::Null);
        }
    }
    if !app.feed.stats().connected.load(Ordering::Relaxed) {
        return not_ready("change feed not connected", serde_json::Value::Null);
    }
    respond::json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
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

/// The Prometheus text exposition: the live families and the counters other parts keep.
pub fn metrics_body(app: &App) -> Response<Body> {
    let a = app.audit.stats();
    let s = app.sessions.stats();
    let f = app.feed.stats();
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let secs = |us: u64| us as f64 / 1e6;
    let values = crate::metrics::ScrapeValues {
        password_verifications: app.accounts.hasher().verifications(),
        password_hash_seconds: Some(app.accounts.hasher().hash_seconds()),
        lockouts: app.accounts.lockouts(),
        db_queries: app.store.query_count(),
        db_background_queries: app.store.background_query_count(),
        session_cache_hits: get(&s.hits),
        session_cache_misses: get(&s.misses),
        activity_queued: a.queued,
        activity_written: a.written,
        activity_dropped: a.dropped,
        feed_applied: get(&f.applied),
        feed_flushes: get(&f.flushes),
        feed_reconnects: get(&f.reconnects),
        feed_read_errors: get(&f.errors),
        feed_last_id: f.last_id.load(Ordering::Relaxed),
        feed_connected: f.connected.load(Ordering::Relaxed),
        feed_lag_seconds: Some(f.lag.clone()),
        feed_lag_last_seconds: secs(get(&f.lag_last_us)),
        feed_lag_max_seconds: secs(get(&f.lag_max_us)),
    };
    match crate::metrics::render(&app.metrics, &values) {
        Ok(body) => {
            let mut r = respond::text(StatusCode::OK, body);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the metrics");
            respond::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the metrics",
            )
        }
    }
}
