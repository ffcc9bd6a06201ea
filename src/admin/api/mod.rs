//! The JSON API under `/_auth/api/`.
//!
//! ```text
//!  request ─▶ match endpoint (404 / 405) ─▶ authenticate (Bearer token, or session cookie +
//!          X-CSRF-Token on writes; 401 / 403 / 429) ─▶ admin check or account scope, once,
//!          by the endpoint's group (403) ─▶ handler: read the typed body (415 / 400 / 422)
//!          ─▶ AdminOps (409 / 404) ─▶ JSON
//! ```
//!
//! Admin-only handlers take an `AdminPrincipal`, account handlers a `Scope`: what a handler
//! may do is in its signature, and no handler repeats the check. Errors are
//! `{"error", "message", "fields"?}` (see [`ApiError`]). `openapi.json` and `csrf` need no
//! authentication.

pub mod access;
pub mod input;
pub mod passkeys;
pub mod users;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use serde::Serialize;

use super::error::ApiError;
use super::principal::authenticate;
use crate::app::App;
use crate::store::{SessionId, UserId};
use crate::web::csrf::Csrf;
use crate::web::{Body, RequestCtx, respond};

pub async fn handle(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> Response<Body> {
    match route(app, req, ctx).await {
        Ok(r) => r,
        Err(e) => e.into_json(),
    }
}

/// One API operation, grouped by who may call it: the router checks that once, before the
/// handler runs, and hands the handler what the check produced.
#[derive(Debug)]
enum Endpoint {
    /// Admins only: the handler takes an [`AdminPrincipal`](super::principal::AdminPrincipal).
    Admin(AdminOp),
    /// The user themself or an admin: the handler takes the [`Scope`].
    Account(UserId, AccountOp),
    /// A session's owner or an admin; who the owner is needs the session, so the handler checks.
    EndSession(SessionId),
}

#[derive(Debug)]
enum AdminOp {
    ListUsers,
    CreateUser,
    DeleteUser(UserId),
    Restore(UserId),
    Unlock(UserId),
    ResetTwofa(UserId),
    GrantRole(UserId),
    RevokeRole(UserId, String),
    Credits(UserId),
    Activity,
    RemovePasskey(UserId, i64),
}

#[derive(Debug)]
enum AccountOp {
    Get,
    Patch,
    Roles,
    Sessions,
    EndAllSessions,
    Activity,
    Passkeys,
}

fn id(seg: &str) -> Result<i64, ApiError> {
    seg.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::NotFound("no such resource".into()))
}

impl Endpoint {
    /// Matches the path first (404), then the method (405).
    fn parse(method: &Method, segs: &[&str]) -> Result<Endpoint, ApiError> {
        use {AccountOp as Own, AdminOp as A, Endpoint as E};
        let get = *method == Method::GET || *method == Method::HEAD;
        let m = |ok: bool, e: Endpoint| {
            if ok {
                Ok(e)
            } else {
                Err(ApiError::MethodNotAllowed)
            }
        };
        match segs {
            ["users"] if get => Ok(E::Admin(A::ListUsers)),
            ["users"] => m(*method == Method::POST, E::Admin(A::CreateUser)),
            ["users", u] => {
                let u = UserId(id(u)?);
                match *method {
                    Method::PATCH => Ok(E::Account(u, Own::Patch)),
                    Method::DELETE => Ok(E::Admin(A::DeleteUser(u))),
                    _ => m(get, E::Account(u, Own::Get)),
                }
            }
            [
                "users",
                u,
                action @ ("restore" | "unlock" | "reset-2fa" | "credits"),
            ] => {
                let u = UserId(id(u)?);
                let op = match *action {
                    "restore" => A::Restore(u),
                    "unlock" => A::Unlock(u),
                    "reset-2fa" => A::ResetTwofa(u),
                    _ => A::Credits(u),
                };
                m(*method == Method::POST, E::Admin(op))
            }
            ["users", u, "passkeys"] => m(get, E::Account(UserId(id(u)?), Own::Passkeys)),
            ["users", u, "passkeys", pk] => {
                let u = UserId(id(u)?);
                let op = A::RemovePasskey(u, id(pk)?);
                m(*method == Method::DELETE, E::Admin(op))
            }
            ["users", u, "roles"] => {
                let u = UserId(id(u)?);
                if *method == Method::POST {
                    Ok(E::Admin(A::GrantRole(u)))
                } else {
                    m(get, E::Account(u, Own::Roles))
                }
            }
            ["users", u, "roles", role] if !role.is_empty() => m(
                *method == Method::DELETE,
                E::Admin(A::RevokeRole(UserId(id(u)?), (*role).to_string())),
            ),
            ["users", u, "sessions"] => {
                let u = UserId(id(u)?);
                if *method == Method::DELETE {
                    Ok(E::Account(u, Own::EndAllSessions))
                } else {
                    m(get, E::Account(u, Own::Sessions))
                }
            }
            ["users", u, "activity"] => m(get, E::Account(UserId(id(u)?), Own::Activity)),
            ["sessions", s] => m(*method == Method::DELETE, E::EndSession(SessionId(id(s)?))),
            ["activity"] => m(get, E::Admin(A::Activity)),
            _ => Err(ApiError::NotFound("no such endpoint".into())),
        }
    }
}

async fn route(
    app: &App,
    req: Request<Incoming>,
    ctx: &RequestCtx,
) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    let rest = parts
        .uri
        .path()
        .strip_prefix("/_auth/api/")
        .unwrap_or_default()
        .trim_end_matches('/');
    let decoded: Vec<String> = rest
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let get = parts.method == Method::GET || parts.method == Method::HEAD;
    match segs.as_slice() {
        ["openapi.json"] if get => return Ok(openapi_json()),
        ["csrf"] if get => return Ok(csrf_token(app, &parts.headers)),
        ["openapi.json" | "csrf"] => return Err(ApiError::MethodNotAllowed),
        _ => {}
    }
    let endpoint = Endpoint::parse(&parts.method, &segs)?;
    let p = authenticate(app, &parts.method, &parts.headers, ctx).await?;
    let (uri, headers) = (&parts.uri, &parts.headers);
    match endpoint {
        Endpoint::Admin(op) => {
            let admin = p.admin(app)?;
            let a = &admin;
            match op {
                AdminOp::ListUsers => users::list_users(app, a, uri).await,
                AdminOp::CreateUser => users::create_user(app, a, headers, body).await,
                AdminOp::DeleteUser(u) => users::delete_user(app, a, u).await,
                AdminOp::Restore(u) => users::restore_user(app, a, u).await,
                AdminOp::Unlock(u) => users::unlock_user(app, a, u).await,
                AdminOp::ResetTwofa(u) => users::reset_twofa(app, a, u).await,
                AdminOp::GrantRole(u) => access::grant_role(app, a, u, headers, body).await,
                AdminOp::RevokeRole(u, role) => access::revoke_role(app, a, u, &role).await,
                AdminOp::Credits(u) => access::adjust_credits(app, a, u, headers, body).await,
                AdminOp::Activity => access::activity(app, a, uri).await,
                AdminOp::RemovePasskey(u, pk) => passkeys::remove_passkey(app, a, u, pk).await,
            }
        }
        Endpoint::Account(u, op) => {
            let scope = p.scope(app, u)?;
            let s = &scope;
            match op {
                AccountOp::Get => users::get_user(app, s, u).await,
                AccountOp::Patch => users::patch_user(app, s, u, headers, body).await,
                AccountOp::Roles => access::list_roles(app, s, u).await,
                AccountOp::Sessions => access::list_sessions(app, &p, s, u).await,
                AccountOp::EndAllSessions => access::end_all_sessions(app, s, u).await,
                AccountOp::Activity => access::user_activity(app, s, u, uri).await,
                AccountOp::Passkeys => passkeys::list_passkeys(app, s, u).await,
            }
        }
        Endpoint::EndSession(sid) => access::end_session(app, &p, sid).await,
    }
}

/// A JSON response from a typed value.
pub fn json<T: Serialize>(status: StatusCode, v: &T) -> Result<Response<Body>, ApiError> {
    let value = serde_json::to_value(v).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(respond::json(status, &value))
}

fn openapi_json() -> Response<Body> {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(super::openapi::document);
    let mut r = respond::text(StatusCode::OK, doc.clone());
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// `GET /_auth/api/csrf`: the token a script running on this site sends as `X-CSRF-Token`
/// with the session cookie. Another site cannot read it (no CORS).
fn csrf_token(app: &App, headers: &http::HeaderMap) -> Response<Body> {
    let secure = app.secure_cookies();
    let csrf = Csrf::for_request(&app.keys, headers, secure, &app.session_cookie);
    let mut r = respond::json(
        StatusCode::OK,
        &serde_json::json!({ "csrf_token": csrf.token }),
    );
    if let Some(c) = csrf.set_cookie(secure) {
        r.headers_mut().append(http::header::SET_COOKIE, c);
    }
    r
}
