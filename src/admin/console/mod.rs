//! The admin console at `/_auth/admin/`: server-rendered pages over the same [`ops`] as the
//! JSON API. Works without JavaScript; every form posts a CSRF token (the pre-session cookie's
//! HMAC, as on the sign-in page) and is answered with a redirect back to the page (303).
//!
//! ```text
//!  GET  /_auth/admin/                         users: search, filters, paging
//!  GET  /_auth/admin/users/{id}               one user: profile, status, credits, roles,
//!                                             sessions, activity, and their forms
//!  POST /_auth/admin/users/{id}/{action}      update, credits, roles, roles/{r}/revoke,
//!                                             sessions/{s}/revoke, sessions/revoke-all,
//!                                             unlock, delete, restore, reset-2fa
//!  GET  /_auth/admin/activity                 all activity: type, user, time, paging
//! ```
//!
//! [`ops`]: super::ops

mod actions;
mod form;
mod pages;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use minijinja::Value;

use super::error::ApiError;
use super::principal::{AdminPrincipal, Principal, session_of};
use crate::app::App;
use crate::store::UserId;
use crate::web::csrf::Csrf;
use crate::web::{Body, RequestCtx, respond};

pub const BASE: &str = "/_auth/admin";

pub async fn handle(app: &App, req: Request<Incoming>, _ctx: &RequestCtx) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == BASE {
        return respond::redirect(StatusCode::FOUND, &format!("{BASE}/"));
    }
    let (principal, admin) = match who(app, &req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let rest = path
        .strip_prefix(BASE)
        .unwrap_or_default()
        .trim_matches('/')
        .to_string();
    let segs: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let method = req.method().clone();
    let get = method == Method::GET || method == Method::HEAD;
    match segs.as_slice() {
        [] | ["users"] if get => pages::users(app, &req, &principal, &admin).await,
        ["users", id] if get => match parse_id(id) {
            Some(id) => pages::user(app, &req, &principal, &admin, id).await,
            None => not_found(app, &principal),
        },
        ["activity"] if get => pages::activity(app, &req, &principal, &admin).await,
        ["users", id, action @ ..] if method == Method::POST && !action.is_empty() => {
            match parse_id(id) {
                Some(id) => {
                    let action: Vec<String> = action.iter().map(|s| s.to_string()).collect();
                    actions::run(app, req, &principal, &admin, id, &action).await
                }
                None => not_found(app, &principal),
            }
        }
        _ => not_found(app, &principal),
    }
}

fn parse_id(s: &str) -> Option<UserId> {
    s.parse::<i64>().ok().filter(|n| *n > 0).map(UserId)
}

/// The signed-in admin, or the response to send instead: the sign-in page for anonymous
/// browsers, a 403 page for everyone else.
async fn who(
    app: &App,
    req: &Request<Incoming>,
) -> Result<(Principal, AdminPrincipal), Response<Body>> {
    let session = match session_of(app, req.headers()).await {
        Ok(s) => s,
        Err(e) => return Err(error_page(app, None, &e)),
    };
    let Some(session) = session else {
        let target = req
            .uri()
            .path_and_query()
            .map_or(BASE, |p| p.as_str())
            .to_string();
        let next =
            percent_encoding::utf8_percent_encode(&target, percent_encoding::NON_ALPHANUMERIC);
        return Err(respond::redirect(
            StatusCode::FOUND,
            &format!("/_auth/login?next={next}"),
        ));
    };
    let principal = Principal::from_session(&session, app.now());
    match principal.admin(app.settings.security.require_2fa_for_admins) {
        Ok(admin) => Ok((principal, admin)),
        Err(e) => Err(error_page(app, Some(&principal), &e)),
    }
}

/// A page showing an error, with its status.
pub(super) fn error_page(app: &App, who: Option<&Principal>, e: &ApiError) -> Response<Body> {
    if e.is_server_side() {
        tracing::error!(error = %e, "admin console request failed");
    }
    let (status, _) = e.status_and_code();
    let title = match status {
        StatusCode::FORBIDDEN => "Access denied",
        StatusCode::NOT_FOUND => "Not found",
        s if s.is_server_error() => "Something went wrong",
        _ => "That did not work",
    };
    let ctx = minijinja::context! {
        title,
        message => e.public_message(),
        nav_user => who.map(|p| p.username().to_string()),
        link => minijinja::context! { href => format!("{BASE}/"), text => "Back to the admin console" },
    };
    match app.templates.render("message.html", ctx) {
        Ok(body) => respond::html(status, body),
        Err(_) => respond::text(status, e.public_message()),
    }
}

fn not_found(app: &App, who: &Principal) -> Response<Body> {
    error_page(
        app,
        Some(who),
        &ApiError::NotFound("There is no such page.".into()),
    )
}

/// Renders a console page with the CSRF token for its forms (setting the cookie when new).
pub(super) fn page(
    app: &App,
    req_headers: &http::HeaderMap,
    who: &Principal,
    template: &str,
    status: StatusCode,
    ctx: Value,
) -> Response<Body> {
    let secure = app.secure_cookies();
    let csrf = Csrf::for_request(&app.keys, req_headers, secure, &app.session_cookie);
    let full = minijinja::context! {
        csrf_token => csrf.token.clone(),
        nav_user => who.username().to_string(),
        base => BASE,
        ..ctx
    };
    match app.templates.render(template, full) {
        Ok(body) => {
            let mut r = respond::html(status, body);
            if let Some(c) = csrf.set_cookie(secure) {
                r.headers_mut().append(header::SET_COOKIE, c);
            }
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => error_page(app, Some(who), &ApiError::Internal(e.to_string())),
    }
}
