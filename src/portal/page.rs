//! What every portal handler shares: rendering with the CSRF cookie, reading a CSRF-checked
//! form, finding the signed-in session, and the stock answers (403, 429, 503, messages).

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use hyper::body::Incoming;
use minijinja::{Value, context};

use super::forms::{self, Form};
use crate::app::App;
use crate::audit::{ActivityEvent, ActivityKind};
use crate::session::Session;
use crate::store::UserId;
use crate::web::csrf::{self, Csrf};
use crate::web::{Body, RequestCtx, cookies, respond};

/// Renders `name` with `ctx` plus the CSRF token; sets the CSRF cookie when it is new.
pub fn render(
    app: &App,
    name: &str,
    csrf: &Csrf,
    ctx: Value,
    status: StatusCode,
) -> Response<Body> {
    let ctx = context! { csrf_token => csrf.token.clone(), ..ctx };
    match app.templates.render(name, ctx) {
        Ok(body) => {
            let mut r = respond::html(status, body);
            if let Some(c) = csrf.set_cookie(app.secure_cookies()) {
                r.headers_mut().append(header::SET_COOKIE, c);
            }
            r
        }
        Err(e) => super::render_failed(&e),
    }
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

/// A form POST with a valid CSRF token, or the response to send instead (415, 413, 403).
pub async fn checked_form(
    app: &App,
    req: http::Request<Incoming>,
) -> Result<(http::request::Parts, Form, Csrf), Response<Body>> {
    let (parts, form) = match forms::read(req).await {
        Ok(x) => x,
        Err(status) => return Err(respond::text(status, "unreadable form")),
    };
    let secure = app.secure_cookies();
    let session = &app.session_cookie;
    if !csrf::verify(
        &app.keys,
        &parts.headers,
        secure,
        session,
        form.get(csrf::FIELD),
    ) {
        return Err(super::login::forbidden_csrf());
    }
    let csrf = Csrf::for_request(&app.keys, &parts.headers, secure, session);
    Ok((parts, form, csrf))
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
) -> Result<Arc<Session>, Response<Body>> {
    match session(app, headers).await {
        Some(s) => Ok(s),
        None => {
            let next =
                percent_encoding::utf8_percent_encode(back_to, percent_encoding::NON_ALPHANUMERIC);
            Err(respond::redirect(
                StatusCode::SEE_OTHER,
                &format!("/_auth/login?next={next}"),
            ))
        }
    }
}

/// A titled message page with an optional link.
pub fn message(
    app: &App,
    status: StatusCode,
    title: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> Response<Body> {
    let ctx = context! {
        title,
        message => text,
        link => link.map(|(href, text)| context! { href, text }),
    };
    match app.templates.render("message.html", ctx) {
        Ok(b) => respond::html(status, b),
        Err(e) => super::render_failed(&e),
    }
}

pub fn too_many(app: &App) -> Response<Body> {
    let mut r = message(
        app,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts",
        "There were too many attempts from your network. Wait a while, then try again.",
        None,
    );
    let secs = app.settings.security.login_throttle_window.as_secs().max(1);
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Our side failed; never the user's fault, and says nothing about any account.
pub fn unavailable(e: &dyn std::fmt::Display) -> Response<Body> {
    tracing::error!(error = %e, "portal request failed on our side");
    respond::text(
        StatusCode::SERVICE_UNAVAILABLE,
        "This is temporarily unavailable. Please try again shortly.",
    )
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
