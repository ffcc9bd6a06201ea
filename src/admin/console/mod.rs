//! The admin console at `/_auth/admin/`: server-rendered pages over the same [`AdminOps`] as
//! the JSON API. Works without JavaScript; every form posts a CSRF token (the pre-session
//! cookie's HMAC, as on the sign-in page) and is answered with a redirect back to the page (303).
//!
//! [`handle`] checks admin rights once ([`Principal::admin`], as the API does) and hands the
//! pages an [`AdminPrincipal`]; pages and form posts return `Result<Response, ApiError>`, and
//! errors become a page in the portal's look in one place. An admin's error page leads back
//! into the console; anyone refused is sent to their account page instead.
//!
//! ```text
//!  GET  /_auth/admin/                         home: counts at a glance, linking into the lists
//!                                             (with a query string: to the users list)
//!  GET  /_auth/admin/users                    users: filter bar, sortable columns, page size
//!  GET  /_auth/admin/users.csv                the same selection as CSV
//!  POST /_auth/admin/users                    create a user (who gets a set-password link)
//!  GET  /_auth/admin/users/{id}               one user: profile, status, credits, roles,
//!                                             sessions, activity, and their forms
//!  GET  /_auth/admin/users/{id}/{action}      confirmation (delete, reset-2fa,
//!                                             sessions/revoke-all): asks for a reason
//!  POST /_auth/admin/users/{id}/{action}      update, credits, roles, roles/{r}/revoke,
//!                                             sessions/{s}/revoke, lock, unlock, restore,
//!                                             passkeys/{p}/remove; and the confirmed ones
//!  GET  /_auth/admin/activity                 activity: type, user, dates, request rows
//! ```
//!
//! [`AdminOps`]: super::service::AdminOps

mod actions;
mod activity;
mod confirm;
mod form;
mod home;
mod pages;
mod users;

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
    if req.uri().path() == BASE {
        return respond::redirect(StatusCode::FOUND, &format!("{BASE}/"));
    }
    match admin_of(app, &req).await {
        Ok(admin) => match route(app, req, &admin).await {
            Ok(r) => r,
            Err(e) => error_page(app, Some(admin.username()), Back::Console, &e),
        },
        Err(Refusal::SignIn) => sign_in(&req),
        Err(Refusal::Denied { username, error }) => {
            error_page(app, username.as_deref(), Back::Account, &error)
        }
    }
}

/// Why a request gets no admin: no session (sign in first), or a caller the role check refused
/// (or a session that could not be looked up).
enum Refusal {
    SignIn,
    Denied {
        username: Option<String>,
        error: ApiError,
    },
}

/// The admin check, once per request: the signed-in user's session must carry the admin role
/// (and two-factor sign-in when required), as for the API.
async fn admin_of(app: &App, req: &Request<Incoming>) -> Result<AdminPrincipal, Refusal> {
    let session = session_of(app, req.headers())
        .await
        .map_err(|error| Refusal::Denied {
            username: None,
            error,
        })?
        .ok_or(Refusal::SignIn)?;
    let principal = Principal::from_session(&session, app.now());
    principal.admin(app).map_err(|error| Refusal::Denied {
        username: Some(principal.username().to_string()),
        error,
    })
}

/// To the sign-in page, coming back here afterwards.
fn sign_in(req: &Request<Incoming>) -> Response<Body> {
    let target = req.uri().path_and_query().map_or(BASE, |p| p.as_str());
    let next = percent_encoding::utf8_percent_encode(target, percent_encoding::NON_ALPHANUMERIC);
    respond::redirect(StatusCode::FOUND, &format!("/_auth/login?next={next}"))
}

async fn route(
    app: &App,
    req: Request<Incoming>,
    admin: &AdminPrincipal,
) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_string();
    let rest = path
        .strip_prefix(BASE)
        .unwrap_or_default()
        .trim_matches('/');
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
        // The users list lived here; old links with filters still find it.
        [] if get && req.uri().query().is_some_and(|q| !q.is_empty()) => {
            let query = req.uri().query().unwrap_or_default();
            Ok(respond::redirect(
                StatusCode::FOUND,
                &format!("{BASE}/users?{query}"),
            ))
        }
        [] if get => home::home(app, &req, admin).await,
        ["users"] if get => users::list(app, &req, admin).await,
        ["users.csv"] if get => users::csv(app, &req, admin).await,
        ["users"] if method == Method::POST => users::create(app, req, admin).await,
        ["users", id] if get => pages::user(app, &req, admin, parse_id(id)?).await,
        ["users", id, action @ ..] if get && confirm::Confirmed::of(action).is_some() => {
            let c = confirm::Confirmed::of(action).ok_or_else(no_such_page)?;
            confirm::confirm_page(app, req.headers(), admin, parse_id(id)?, c, None).await
        }
        ["activity"] if get => activity::page_of_log(app, &req, admin).await,
        ["users", id, action @ ..] if method == Method::POST && !action.is_empty() => {
            let id = parse_id(id)?;
            let action: Vec<String> = action.iter().map(|s| s.to_string()).collect();
            actions::run(app, req, admin, id, &action).await
        }
        _ => Err(no_such_page()),
    }
}

fn parse_id(s: &str) -> Result<UserId, ApiError> {
    s.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(UserId)
        .ok_or_else(no_such_page)
}

pub(super) fn no_such_page() -> ApiError {
    ApiError::NotFound("There is no such page.".into())
}

/// Where an error page leads: back into the console for an admin; to their own account for
/// anyone the console refused (the console would only refuse them again).
#[derive(Debug, Clone, Copy)]
enum Back {
    Console,
    Account,
}

/// A page showing an error, with its status, in the portal's look (`message.html`).
fn error_page(app: &App, nav_user: Option<&str>, back: Back, e: &ApiError) -> Response<Body> {
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
    let (href, text) = match back {
        Back::Console => (format!("{BASE}/"), "Back to the admin console"),
        Back::Account => ("/_auth/account".to_string(), "Go to your account"),
    };
    let ctx = minijinja::context! {
        title,
        message => e.public_message(),
        nav_user,
        link => minijinja::context! { href, text },
    };
    let mut r = match app.templates.render("message.html", ctx) {
        Ok(body) => respond::html(status, body),
        Err(_) => respond::text(status, e.public_message()),
    };
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Renders a console page with the CSRF token for its forms (setting the cookie when new).
pub(super) fn page(
    app: &App,
    req_headers: &http::HeaderMap,
    admin: &AdminPrincipal,
    template: &str,
    status: StatusCode,
    ctx: Value,
) -> Result<Response<Body>, ApiError> {
    let secure = app.secure_cookies();
    let csrf = Csrf::for_request(&app.keys, req_headers, secure, &app.session_cookie);
    let full = minijinja::context! {
        csrf_token => csrf.token.clone(),
        nav_user => admin.username().to_string(),
        base => BASE,
        ..ctx
    };
    let body = app
        .templates
        .render(template, full)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut r = respond::html(status, body);
    if let Some(c) = csrf.set_cookie(secure) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}
