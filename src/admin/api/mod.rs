//! The JSON API under `/_auth/api/`.
//!
//! ```text
//!  request ─▶ match endpoint (404 / 405) ─▶ authenticate (Bearer token, or session cookie +
//!          X-CSRF-Token on writes; 401 / 403 / 429) ─▶ handler: scope or admin check (403)
//!          ─▶ read input strictly (415 / 400 / 422) ─▶ ops (409 / 404) ─▶ JSON
//! ```
//!
//! Errors are `{"error", "message", "fields"?}` (see [`ApiError`]). `openapi.json` and `csrf`
//! need no authentication.

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

/// One API operation, with its path parameters.
#[derive(Debug)]
enum Endpoint {
    ListUsers,
    CreateUser,
    GetUser(UserId),
    PatchUser(UserId),
    DeleteUser(UserId),
    Restore(UserId),
    Unlock(UserId),
    ResetTwofa(UserId),
    ListRoles(UserId),
    GrantRole(UserId),
    RevokeRole(UserId, String),
    ListSessions(UserId),
    EndAllSessions(UserId),
    EndSession(SessionId),
    Credits(UserId),
    UserActivity(UserId),
    Activity,
    ListPasskeys(UserId),
    RemovePasskey(UserId, i64),
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
        use Endpoint as E;
        let get = *method == Method::GET || *method == Method::HEAD;
        let m = |ok: bool, e: Endpoint| {
            if ok {
                Ok(e)
            } else {
                Err(ApiError::MethodNotAllowed)
            }
        };
        match segs {
            ["users"] if get => Ok(E::ListUsers),
            ["users"] => m(*method == Method::POST, E::CreateUser),
            ["users", u] => {
                let u = UserId(id(u)?);
                match *method {
                    Method::PATCH => Ok(E::PatchUser(u)),
                    Method::DELETE => Ok(E::DeleteUser(u)),
                    _ => m(get, E::GetUser(u)),
                }
            }
            [
                "users",
                u,
                action @ ("restore" | "unlock" | "reset-2fa" | "credits"),
            ] => {
                let u = UserId(id(u)?);
                let e = match *action {
                    "restore" => E::Restore(u),
                    "unlock" => E::Unlock(u),
                    "reset-2fa" => E::ResetTwofa(u),
                    _ => E::Credits(u),
                };
                m(*method == Method::POST, e)
            }
            ["users", u, "passkeys"] => m(get, E::ListPasskeys(UserId(id(u)?))),
            ["users", u, "passkeys", pk] => {
                let u = UserId(id(u)?);
                m(*method == Method::DELETE, E::RemovePasskey(u, id(pk)?))
            }
            ["users", u, "roles"] => {
                let u = UserId(id(u)?);
                if *method == Method::POST {
                    Ok(E::GrantRole(u))
                } else {
                    m(get, E::ListRoles(u))
                }
            }
            ["users", u, "roles", role] if !role.is_empty() => m(
                *method == Method::DELETE,
                E::RevokeRole(UserId(id(u)?), (*role).to_string()),
            ),
            ["users", u, "sessions"] => {
                let u = UserId(id(u)?);
                if *method == Method::DELETE {
                    Ok(E::EndAllSessions(u))
                } else {
                    m(get, E::ListSessions(u))
                }
            }
            ["users", u, "activity"] => m(get, E::UserActivity(UserId(id(u)?))),
            ["sessions", s] => m(*method == Method::DELETE, E::EndSession(SessionId(id(s)?))),
            ["activity"] => m(get, E::Activity),
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
    use Endpoint as E;
    match endpoint {
        E::ListUsers => users::list_users(app, &p, uri).await,
        E::CreateUser => users::create_user(app, &p, headers, body).await,
        E::GetUser(u) => users::get_user(app, &p, u).await,
        E::PatchUser(u) => users::patch_user(app, &p, u, headers, body).await,
        E::DeleteUser(u) => users::delete_user(app, &p, u).await,
        E::Restore(u) => users::restore_user(app, &p, u).await,
        E::Unlock(u) => users::unlock_user(app, &p, u).await,
        E::ResetTwofa(u) => users::reset_twofa(app, &p, u).await,
        E::ListRoles(u) => access::list_roles(app, &p, u).await,
        E::GrantRole(u) => access::grant_role(app, &p, u, headers, body).await,
        E::RevokeRole(u, role) => access::revoke_role(app, &p, u, &role).await,
        E::ListSessions(u) => access::list_sessions(app, &p, u).await,
        E::EndAllSessions(u) => access::end_all_sessions(app, &p, u).await,
        E::EndSession(s) => access::end_session(app, &p, s).await,
        E::Credits(u) => access::adjust_credits(app, &p, u, headers, body).await,
        E::UserActivity(u) => access::user_activity(app, &p, u, uri).await,
        E::Activity => access::activity(app, &p, uri).await,
        E::ListPasskeys(u) => passkeys::list_passkeys(app, &p, u).await,
        E::RemovePasskey(u, pk) => passkeys::remove_passkey(app, &p, u, pk).await,
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
