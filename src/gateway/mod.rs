//! The request pipeline. Every request enters [`handle`]; `/_auth/` goes to its router
//! ([`auth_routes`]: portal pages, admin API and console, operational [`endpoints`]), the rest
//! through these phases, in this order:
//!
//! ```text
//!  request ─▶ read the target as the app will (method, Host, canonical path; 400 if ambiguous)
//!          ─▶ strip spoofed headers (X-Auth-*, method overrides, untrusted forwarding)
//!          ─▶ match route (first wins) ─▶ load session (the connection's memo, cache)
//!          ─▶ authorize every reading (HEAD as GET, overrides, trailing slash; strictest wins)
//!          ─▶ rewrite headers (upgrades allowed, hop-by-hop, our cookies, forwarding, identity
//!             and its signed assertion, see [`assertion`])
//!          ─▶ forward to upstream (streaming; a tunnel closes when its session ends)
//!          ─▶ record activity (queued, never awaited on the database)
//! ```
//!
//! The upstream receives the canonical path the rules were matched on, so the rule and the app
//! cannot read the request two ways. [`pipeline`] reads top to bottom with `?`; [`handle`]
//! turns a [`GateError`] into a response (a redirect or HTML page for browsers, JSON for
//! programs) and logs.
//!
//! Every request's future runs with its id in a task-local ([`crate::logs::in_request`]), so
//! each line logged while handling it carries the id. [`proxied`] then does one histogram observe for the route's duration
//! (handles resolved when the routes were loaded, see [`crate::metrics::RouteMetrics`]) and,
//! with `[log] access = true`, writes the access line; `pipeline` observes the upstream's
//! latency. The `App` a request gets is the configuration in force when it arrived
//! (`crate::app::Live`): a reload never changes it midway.

pub mod assertion;
pub mod auth_routes;
pub mod endpoints;
mod error;
pub mod forward_auth;
mod path;
#[cfg(test)]
mod prop_tests;
mod routes;
mod target;

use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response, header};
use hyper::body::Incoming;

pub use error::{GateError, Missing};
pub use path::{CanonicalPath, PathPolicy, canonicalize, fold_case};
pub use routes::{Decision, authorize_all, decide};
pub use target::Target;

use crate::app::App;
use crate::audit::{RequestActivity, RequestFacts};
use crate::proxy::TunnelGuard;
use crate::proxy::headers;
use crate::session::{Session, SessionMemo};
use crate::web::{Body, RequestCtx, cookies, negotiate};

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: std::net::SocketAddr,
    pub tls: bool,
}

/// What the pipeline learned, for the activity row and the log line.
#[derive(Default)]
struct Outcome<'a> {
    session: Option<Arc<Session>>,
    route: Option<&'a str>,
    /// Index of the matching rule in `settings.routes`, for its latency histogram.
    route_index: Option<usize>,
}

/// `memo` is the connection's: see [`SessionMemo`].
pub async fn handle(
    app: &App,
    req: Box<Request<Incoming>>,
    conn: ConnInfo,
    memo: &SessionMemo,
) -> Response<Body> {
    app.metrics
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let s = &app.settings;
    let ctx = RequestCtx::new(
        conn.peer,
        conn.tls,
        req.headers(),
        &s.server.trusted_proxies,
        &s.headers.request_id,
    );
    // Every line logged while handling the request carries its id.
    let id = ctx.request_id.clone();
    let path = req.uri().path();
    let mut resp = if path == "/_auth" || path.starts_with("/_auth/") {
        // Boxed: hyper keeps one allocation of this future's size per connection for its
        // whole life, and the portal's futures (database queries, hashing) are far larger than
        // the proxy's; a request under /_auth/ pays one allocation instead.
        //
        // Made in a statement of its own: as a temporary of the awaiting statement the
        // unboxed future would keep its storage in this one across the await.
        let portal = Box::pin(crate::logs::in_request(
            id,
            auth_routes::handle(app, *req, &ctx),
        ));
        let r = portal.await;
        app.route_metrics
            .observe_own(r.status().as_u16(), started.elapsed());
        r
    } else {
        crate::logs::in_request(id, proxied(app, req, &ctx, memo, started)).await
    };
    resp.headers_mut()
        .insert(s.headers.request_id.clone(), ctx.request_id.header_value());
    resp
}

async fn proxied(
    app: &App,
    req: Box<Request<Incoming>>,
    ctx: &RequestCtx,
    memo: &SessionMemo,
    started: Instant,
) -> Response<Body> {
    let method = req.method().clone();
    // Shares the request's bytes: nothing is copied unless a row or an error page needs it.
    let target = req.uri().path_and_query().cloned();
    let page_load = negotiate::is_page_load(&method, req.headers());
    let mut outcome = Outcome::default();
    let resp = match pipeline(app, req, ctx, memo, &mut outcome).await {
        Ok(r) => r,
        Err(e) => {
            if e.is_server_side() {
                tracing::warn!(request_id = %ctx.request_id, error = %e, "request failed");
            }
            e.into_response(
                app,
                ctx,
                page_load,
                target.as_ref().map_or("/", |t| t.as_str()),
            )
        }
    };
    let path = target.as_ref().map_or("/", |t| t.path());
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    app.route_metrics
        .observe(outcome.route_index, status, elapsed);
    let ms = elapsed.as_secs_f64() * 1000.0;
    if app.settings.log.access {
        // The path without its query, which may carry tokens; never headers or cookies.
        tracing::info!(
            %method,
            path,
            status,
            duration_ms = (ms * 1000.0).round() / 1000.0,
            user_id = outcome.session.as_ref().map(|s| s.identity.user_id.0),
            request_id = %ctx.request_id,
            "access"
        );
    }
    tracing::debug!(request_id = %ctx.request_id, %method, path, status, ms, user = outcome.session.as_ref().map(|s| s.identity.user_id.0), "proxied");
    if let Some(session) = &outcome.session {
        let record = RequestActivity::new(
            session.identity.user_id,
            app.now(),
            ctx,
            RequestFacts {
                method: &method,
                path,
                route: outcome.route,
                status,
                elapsed,
            },
        );
        app.audit.record_request(record).await;
    }
    resp
}

async fn pipeline<'a>(
    app: &'a App,
    mut req: Box<Request<Incoming>>,
    ctx: &RequestCtx,
    memo: &SessionMemo,
    out: &mut Outcome<'a>,
) -> Result<Response<Body>, GateError> {
    let s = &app.settings;
    let target = target::read(&mut req, s)?;
    app.strip.strip(req.headers_mut(), ctx.peer_trusted);
    let default = s.server.default_access;
    let decision = decide(&s.routes, default, req.method(), &target.path.matching);
    out.route = decision.rule.map(|r| r.pattern.as_str());
    out.route_index = decision
        .rule
        .and_then(|rule| s.routes.iter().position(|r| std::ptr::eq(r, rule)));
    // The app never needs our cookies, and must not be able to leak the session token: they
    // are read and removed in one go.
    let token = cookies::take(
        req.headers_mut(),
        Some(&app.session_cookie),
        &app.own_cookies,
    );
    let session = match &token {
        Some(token) => app.sessions.lookup_on(token, memo).await?,
        None => None,
    };
    out.session = session.clone();
    authorize_all(&s.routes, default, &target, session.as_deref(), app.now())?;

    let host = authority(&req);
    let h = req.headers_mut();
    // Room for what is added below at once, instead of the map growing several times.
    h.reserve(16);
    let upgrade = headers::filter_upgrade(h, &s.upstream.allowed_upgrades);
    headers::remove_hop_by_hop(h, upgrade);
    headers::join_cookies(h);
    headers::set_forwarded(h, ctx, host.as_ref(), &s.headers);
    if let Some(sess) = &session {
        headers::inject_identity(h, &sess.identity, app.now(), &s.headers);
        if let Some(v) = app.assertions.header(sess, app.now()) {
            h.insert(s.headers.assertion.clone(), v);
        }
    }
    let guard = match (upgrade, token, &session) {
        (true, Some(token), Some(sess)) => Some(tunnel_guard(app, token, sess.clone())),
        _ => None,
    };
    app.metrics
        .proxied
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let asked = Instant::now();
    let mut resp = app
        .upstream
        .local()
        .forward(req, host.as_ref(), guard)
        .await?;
    app.metrics
        .upstream_seconds
        .observe(asked.elapsed().as_secs_f64());
    let switching = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    headers::remove_hop_by_hop(resp.headers_mut(), switching);
    Ok(resp)
}

/// Completes when the session behind a tunnel has ended: it checks the session again whenever
/// sessions are evicted (here or through the change feed) and when it would expire.
fn tunnel_guard(app: &App, token: String, session: Arc<Session>) -> TunnelGuard {
    use crate::session::tunnels::Revalidate;
    use tokio::sync::broadcast::error::RecvError;
    let sessions = app.sessions.clone();
    let mut events = sessions.tunnel_events();
    Box::pin(async move {
        let mut current = session;
        loop {
            let wait = sessions
                .time_left(&current)
                .max(std::time::Duration::from_millis(200));
            let recheck = tokio::select! {
                ev = events.recv() => match ev {
                    Ok(Revalidate::User(u)) => u == current.identity.user_id,
                    Ok(Revalidate::TokenHash(h)) => h == current.token_hash,
                    Ok(Revalidate::All) | Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => return,
                },
                () = tokio::time::sleep(wait) => true,
            };
            if !recheck {
                continue;
            }
            match sessions.lookup(&token).await {
                Ok(Some(s)) if s.id == current.id => current = s,
                _ => return,
            }
        }
    })
}

/// The authority the client asked for: `Host` (when it is text), or the HTTP/2 `:authority`.
/// The `Host` value is shared with the request, not copied.
fn authority(req: &Request<Incoming>) -> Option<http::HeaderValue> {
    req.headers()
        .get(header::HOST)
        .filter(|h| h.to_str().is_ok())
        .cloned()
        .or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
        })
}
