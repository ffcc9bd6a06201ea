//! Forward-auth mode: a front proxy (nginx `auth_request`, Traefik `forwardAuth`, Caddy
//! `forward_auth`) asks whether a request it holds may pass, and Gatehouse answers with the
//! same phases as proxy mode, for the request the proxy describes:
//!
//! ```text
//!  ask ─▶ peer in server.trusted_proxies? (else 403: the description could be forged)
//!      ─▶ describe: X-Forwarded-Method/-Proto/-Host/-Uri or X-Original-Method/-URI/-URL
//!      ─▶ read the target as the app will (method, Host, canonical path; refused if ambiguous)
//!      ─▶ match route ─▶ session from the cookie (cache) ─▶ authorize every reading
//!      ─▶ 200 + identity headers and assertion │ 401 / 302 to sign in │ 403
//!      ─▶ record activity (queued, never awaited on the database)
//! ```
//!
//! Nothing is forwarded from here: the front proxy does that, copying the identity headers
//! from this response into the request it sends to the app.

use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use super::{GateError, authorize_all, decide, target};
use crate::app::App;
use crate::audit::{RequestActivity, RequestFacts};
use crate::proxy::headers;
use crate::session::Session;
use crate::web::{Body, RequestCtx, cookies, negotiate, respond};

/// Which front proxy convention the endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// nginx `auth_request`: only 2xx, 401 and 403 are understood; the sign-in URL travels in
    /// `X-Auth-Redirect` for `error_page 401`.
    AuthRequest,
    /// Traefik `forwardAuth` and Caddy `forward_auth`: a non-2xx answer goes to the client as
    /// it is, so a page load gets the redirect itself.
    ForwardAuth,
}

/// Response header carrying the sign-in URL (with `next`) on a 401.
pub const REDIRECT_HEADER: &str = "x-auth-redirect";

/// Why a description of the original request cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    #[error("the peer is not in server.trusted_proxies")]
    Untrusted,
    #[error("no X-Forwarded-Uri, X-Original-URI or X-Original-URL")]
    NoUri,
    #[error("{0} is sent more than once")]
    Repeated(&'static str),
    #[error("{0} is not a valid value")]
    Invalid(&'static str),
    #[error("X-Forwarded-Uri and X-Original-URI disagree")]
    Conflict,
}

/// The original request as the front proxy describes it.
#[derive(Debug)]
struct Described {
    method: Method,
    scheme: String,
    host: Option<String>,
    /// Path and query, as sent by the client.
    uri: String,
}

impl Described {
    /// The original URL, for `next` after signing in.
    fn url(&self) -> String {
        match &self.host {
            Some(h) => format!("{}://{h}{}", self.scheme, self.uri),
            None => self.uri.clone(),
        }
    }
}

pub async fn handle<B>(
    app: &App,
    req: Request<B>,
    ctx: &RequestCtx,
    flavor: Flavor,
) -> Response<Body> {
    let started = Instant::now();
    // The body (if any) is never read: it is dropped with the request.
    let (parts, _body) = req.into_parts();
    let described = if ctx.peer_trusted {
        describe(&parts.method, &parts.headers, ctx)
    } else {
        Err(DescribeError::Untrusted)
    };
    let described = match described {
        Ok(d) => d,
        Err(e) => {
            // A forged description is how forward-auth is bypassed: say loudly why we refused.
            tracing::warn!(request_id = %ctx.request_id, peer = %ctx.peer, reason = %e, "forward-auth request refused");
            return respond::json(
                StatusCode::FORBIDDEN,
                &serde_json::json!({ "error": "forbidden", "message": e.to_string(), "request_id": ctx.request_id }),
            );
        }
    };
    let page_load = negotiate::is_page_load(&described.method, &parts.headers);
    let mut session = None;
    let mut route = None;
    let result = verdict(app, &parts.headers, &described, &mut session, &mut route).await;
    let resp = match result {
        Ok(()) => allowed(app, session.as_ref()).await,
        Err(e) => refused(app, ctx, flavor, page_load, &described, e),
    };
    let status = resp.status().as_u16();
    let path = described.uri.split('?').next().unwrap_or("/");
    let elapsed = started.elapsed();
    let ms = elapsed.as_secs_f64() * 1000.0;
    tracing::debug!(request_id = %ctx.request_id, method = %described.method, path, status, ms, "forward-auth");
    if let Some(sess) = &session {
        let record = RequestActivity::new(
            sess.identity.user_id,
            app.now(),
            ctx,
            RequestFacts {
                method: &described.method,
                path,
                route,
                status,
                elapsed,
            },
        );
        app.audit.record_request(record).await;
    }
    resp
}

/// The proxy-mode phases on the described request. The session and the matched route are left
/// in the out-parameters for the activity row, whatever the verdict.
async fn verdict<'a>(
    app: &'a App,
    headers: &HeaderMap,
    d: &Described,
    session_out: &mut Option<Arc<Session>>,
    route_out: &mut Option<&'a str>,
) -> Result<(), GateError> {
    let s = &app.settings;
    // The request the app would receive: the original method and URI, with the client's
    // headers (the front proxy passes them on), so method overrides count as in proxy mode.
    let mut req = Request::new(());
    *req.method_mut() = d.method.clone();
    *req.uri_mut() = d
        .uri
        .parse()
        .map_err(|_| GateError::BadPath("the original URI is not a request target"))?;
    let h = req.headers_mut();
    for (k, v) in headers {
        if k != header::HOST {
            h.append(k.clone(), v.clone());
        }
    }
    if let Some(host) = &d.host {
        let v = HeaderValue::from_str(host)
            .map_err(|_| GateError::BadRequest("the original Host is not valid"))?;
        h.insert(header::HOST, v);
    }
    let target = target::read(&mut req, s)?;
    let default = s.server.default_access;
    let decision = decide(&s.routes, default, req.method(), &target.path.matching);
    *route_out = decision.rule.map(|r| r.pattern.as_str());
    let session = match cookies::get(headers, &app.session_cookie) {
        Some(token) => app.sessions.lookup(&token).await?,
        None => None,
    };
    *session_out = session;
    authorize_all(
        &s.routes,
        default,
        &target,
        session_out.as_deref(),
        app.now(),
    )
}

/// `200`, with the identity headers for the front proxy to copy into the app's request. Every
/// one is present, empty when nobody is signed in (a public route): a proxy that copies them
/// then overwrites a client's own copies, and Caddy 2.6, which copies a missing header as its
/// literal placeholder text, has a value to copy.
async fn allowed(app: &App, session: Option<&Arc<Session>>) -> Response<Body> {
    let mut resp = respond::text(StatusCode::OK, "");
    let names = &app.settings.headers;
    let h = resp.headers_mut();
    match session {
        Some(sess) => {
            headers::inject_identity(h, &sess.identity, app.now(), names);
            if let Some(v) = app.assertions.header(sess, app.now()) {
                h.insert(names.assertion.clone(), v);
            }
        }
        None => {
            for name in names.identity() {
                h.insert(name.clone(), HeaderValue::from_static(""));
            }
        }
    }
    resp
}

fn refused(
    app: &App,
    ctx: &RequestCtx,
    flavor: Flavor,
    page_load: bool,
    d: &Described,
    e: GateError,
) -> Response<Body> {
    if e.is_server_side() {
        tracing::warn!(request_id = %ctx.request_id, error = %e, "forward-auth failed");
    }
    match (&e, flavor) {
        (GateError::Unauthenticated, _) => {
            let login = login_url(app, d);
            let mut resp = if flavor == Flavor::ForwardAuth && page_load {
                respond::redirect(StatusCode::FOUND, &login)
            } else {
                respond::json(
                    StatusCode::UNAUTHORIZED,
                    &serde_json::json!({ "error": "unauthenticated", "message": "Sign in to continue.", "login_url": login, "request_id": ctx.request_id }),
                )
            };
            if let Ok(v) = HeaderValue::from_str(&login) {
                resp.headers_mut().insert(REDIRECT_HEADER, v);
            }
            resp
        }
        // nginx treats any status but 2xx, 401 and 403 as an internal error; a request we will
        // not interpret is refused as forbidden so the client sees a denial, not a 500.
        (
            GateError::BadPath(_) | GateError::BadRequest(_) | GateError::MethodNotAllowed,
            Flavor::AuthRequest,
        ) => {
            tracing::debug!(request_id = %ctx.request_id, error = %e, "forward-auth: request not interpretable");
            respond::text(StatusCode::FORBIDDEN, "forbidden")
        }
        _ => e.into_response(app, ctx, page_load, &d.uri),
    }
}

/// The sign-in page on `server.public_url`, with `next` set to where the user was going: the
/// path alone when the app is served on the public URL's origin (the portal accepts only
/// local `next` values), else the whole URL.
fn login_url(app: &App, d: &Described) -> String {
    let public = &app.settings.server.public_url;
    // Compared as parsed origins, so `https://h:443` and `https://h` are the same.
    let same_origin = d.host.as_deref().is_none_or(|h| {
        url::Url::parse(&format!("{}://{h}/", d.scheme))
            .is_ok_and(|u| u.origin() == public.origin())
    });
    let next = if same_origin { d.uri.clone() } else { d.url() };
    let next = percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC);
    let base = public.as_str().trim_end_matches('/');
    format!("{base}/_auth/login?next={next}")
}

/// Reads the front proxy's description of the original request. Only called for trusted
/// peers. Each header may appear once; the two URI conventions must agree when both are sent.
fn describe(
    own_method: &Method,
    h: &HeaderMap,
    ctx: &RequestCtx,
) -> Result<Described, DescribeError> {
    let method = match one(h, "x-forwarded-method")?.or(one(h, "x-original-method")?) {
        Some(m) => {
            let m = m.trim();
            Method::from_bytes(m.as_bytes())
                .map_err(|_| DescribeError::Invalid("the original method"))?
        }
        // nginx's auth_request subrequest carries the original method itself.
        None => own_method.clone(),
    };
    let fwd_uri = one(h, "x-forwarded-uri")?;
    let orig_uri = one(h, "x-original-uri")?;
    let orig_url = one(h, "x-original-url")?;
    let mut host = one(h, "x-forwarded-host")?.map(|v| v.trim().to_string());
    let mut scheme = one(h, "x-forwarded-proto")?.map(|v| v.trim().to_ascii_lowercase());
    let uri = match (fwd_uri, orig_uri) {
        (Some(a), Some(b)) if a != b => return Err(DescribeError::Conflict),
        (Some(u), _) | (None, Some(u)) => u.to_string(),
        (None, None) => {
            let url = orig_url.ok_or(DescribeError::NoUri)?;
            let parsed: http::Uri = url
                .parse()
                .map_err(|_| DescribeError::Invalid("X-Original-URL"))?;
            if let Some(a) = parsed.authority() {
                host.get_or_insert_with(|| a.as_str().to_string());
            }
            if let Some(s) = parsed.scheme_str() {
                scheme.get_or_insert_with(|| s.to_ascii_lowercase());
            }
            parsed
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string())
        }
    };
    // An origin-form target only: an absolute URI here would carry a second host.
    if !uri.starts_with('/') {
        return Err(DescribeError::Invalid("the original URI"));
    }
    if host.as_deref().is_none_or(str::is_empty) {
        host = h
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
    }
    let scheme = match scheme.as_deref() {
        Some("https") => "https",
        Some("http") => "http",
        Some(_) => return Err(DescribeError::Invalid("X-Forwarded-Proto")),
        None => ctx.scheme,
    };
    Ok(Described {
        method,
        scheme: scheme.to_string(),
        host,
        uri,
    })
}

/// The value of a header sent at most once.
fn one<'h>(h: &'h HeaderMap, name: &'static str) -> Result<Option<&'h str>, DescribeError> {
    let mut all = h.get_all(name).iter();
    let Some(v) = all.next() else { return Ok(None) };
    if all.next().is_some() {
        return Err(DescribeError::Repeated(name));
    }
    v.to_str()
        .map(Some)
        .map_err(|_| DescribeError::Invalid(name))
}
