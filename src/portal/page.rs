//! What every portal handler shares: rendering with the CSRF cookie, reading a CSRF-checked
//! form, finding the signed-in session, throttles, and message pages. Each returns
//! `Result<_, PortalError>`, so handlers read straight through with `?`.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use hyper::body::Incoming;
use minijinja::{Value, context};

use super::error::PortalError;
use super::forms::{self, Form};
use crate::app::App;
use crate::audit::{ActivityEvent, ActivityKind};
use crate::auth::throttle::Throttle;
use crate::session::Session;
use crate::store::UserId;
use crate::web::csrf::{self, Csrf};
use crate::web::{Body, RequestCtx, cookies, respond};

/// Renders `name` with `ctx` plus the CSRF token; sets the CSRF cookie when it is new. Every
/// portal page goes through here.
pub fn render(
    app: &App,
    name: &str,
    csrf: &Csrf,
    ctx: Value,
    status: StatusCode,
) -> Result<Response<Body>, PortalError> {
    let ctx = context! { csrf_token => csrf.token.clone(), ..ctx };
    let mut r = respond::html(status, app.templates.render(name, ctx)?);
    if let Some(c) = csrf.set_cookie(app.secure_cookies()) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}

/// The CSRF state for a page about to be rendered.
pub fn csrf_for(app: &App, headers: &HeaderMap) -> Csrf {
    Csrf::for_request(
        &app.keys,
        headers,
        app.secure_cookies(),
        &app.session_cookie,
    )
}

/// The page that shows the form posted to `path`: where a person goes back to after a CSRF
/// failure. A reset link's page needs its token, so the reset request stands in for it.
fn form_page(path: &str) -> &'static str {
    const PAGES: [&str; 6] = [
        "/_auth/account/2fa",
        "/_auth/account/passkeys",
        "/_auth/account",
        "/_auth/reset",
        "/_auth/signup",
        "/_auth/logout",
    ];
    PAGES
        .into_iter()
        .find(|p| path.starts_with(p))
        .unwrap_or("/_auth/login")
}

/// A form POST with a valid CSRF token (else 415, 413 or 403).
pub async fn checked_form(
    app: &App,
    req: http::Request<Incoming>,
) -> Result<(http::request::Parts, Form, Csrf), PortalError> {
    let (parts, form) = forms::read(req).await.map_err(PortalError::Form)?;
    let secure = app.secure_cookies();
    let session = &app.session_cookie;
    if !csrf::verify(
        &app.keys,
        &parts.headers,
        secure,
        session,
        form.get(csrf::FIELD),
    ) {
        return Err(PortalError::Csrf {
            form: form_page(parts.uri.path()),
        });
    }
    let csrf = Csrf::for_request(&app.keys, &parts.headers, secure, session);
    Ok((parts, form, csrf))
}

/// A signed-in, CSRF-checked form post; without a session, to sign-in and back to `back_to`.
pub async fn signed_in_form(
    app: &App,
    req: http::Request<Incoming>,
    back_to: &str,
) -> Result<(http::request::Parts, Arc<Session>, Form, Csrf), PortalError> {
    let (parts, form, csrf) = checked_form(app, req).await?;
    let s = require_session(app, &parts.headers, back_to).await?;
    Ok((parts, s, form, csrf))
}

/// The live session behind the request's session cookie.
pub async fn session(app: &App, headers: &HeaderMap) -> Option<Arc<Session>> {
    let token = cookies::get(headers, &app.session_cookie_name())?;
    match app.sessions.lookup(&token).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "session lookup failed");
            None
        }
    }
}

/// The signed-in session, or a redirect to the sign-in page that comes back to `back_to`.
pub async fn require_session(
    app: &App,
    headers: &HeaderMap,
    back_to: &str,
) -> Result<Arc<Session>, PortalError> {
    session(app, headers)
        .await
        .ok_or_else(|| PortalError::SignIn {
            next: back_to.to_string(),
        })
}

/// Counts one event for `key` against `throttle`; over its limit, the 429 that says when to
/// come back.
pub async fn hit(app: &App, throttle: &Throttle, key: &str) -> Result<(), PortalError> {
    if throttle.hit(key, app.now()).await {
        Ok(())
    } else {
        Err(PortalError::throttled(throttle))
    }
}

/// A titled message page with an optional link.
pub fn message(
    app: &App,
    status: StatusCode,
    title: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> Result<Response<Body>, PortalError> {
    let ctx = context! {
        title,
        message => text,
        link => link.map(|(href, text)| context! { href, text }),
    };
    Ok(respond::html(
        status,
        app.templates.render("message.html", ctx)?,
    ))
}

/// An activity event with the request's client filled in.
pub fn event(
    app: &App,
    kind: ActivityKind,
    user: Option<UserId>,
    ctx: &RequestCtx,
) -> ActivityEvent {
    app.accounts.event(kind, user).client(
        Some(ctx.client_ip.to_string()),
        ctx.user_agent.as_deref().map(str::to_string),
    )
}

/// The client address as a throttle key (an IPv6 client by its /64).
pub fn ip_key(ctx: &RequestCtx) -> String {
    crate::auth::throttle::address_key(ctx.client_ip)
}

/// A cookie name, `__Host-` prefixed when cookies are `Secure`.
pub fn cookie_name(app: &App, base: &str) -> String {
    cookies::name(base, app.secure_cookies())
}

/// Appends a `Set-Cookie` header.
pub fn set_cookie(resp: &mut Response<Body>, value: Option<HeaderValue>) {
    if let Some(v) = value {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Field errors as a template value: `{ field: message }`.
pub fn errors(list: &[(&str, String)]) -> Value {
    Value::from_iter(list.iter().map(|(k, v)| ((*k).to_string(), v.clone())))
}

/// A duration for people: "1 hour", "24 hours", "30 minutes".
pub fn human(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let plural = |n: u64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if s >= 3600 && s.is_multiple_of(3600) {
        plural(s / 3600, "hour")
    } else if s >= 60 {
        plural(s / 60, "minute")
    } else {
        plural(s, "second")
    }
}
