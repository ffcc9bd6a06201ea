//! Roles, sessions, credits and activity of a user, and the global activity log.

use http::{HeaderMap, Response, StatusCode};
use hyper::body::Incoming;

use super::input;
use super::json;
use crate::admin::error::ApiError;
use crate::admin::principal::{AdminPrincipal, Principal, Scope};
use crate::admin::service::AdminOps;
use crate::admin::views::{
    ActivityPage, ActivityQuery, CreditsBody, CreditsResult, ErrorBody, GrantRoleBody, RoleGranted,
    RoleList, RoleView, SessionList, SessionView, SessionsEnded, Success,
};
use crate::app::App;
use crate::store::{ActivityFilter, SessionId, UserId};
use crate::web::Body;

/// A user's roles (the user themself or an admin).
#[utoipa::path(get, path = "/_auth/api/users/{id}/roles", tag = "roles",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, description = "Roles", body = RoleList)))]
pub async fn list_roles(app: &App, _scope: &Scope, id: UserId) -> Result<Response<Body>, ApiError> {
    let ops = AdminOps::new(app);
    let user = ops.load_user(id).await?;
    let (rows, effective) = ops.roles(&user).await?;
    let now = app.now();
    json(
        StatusCode::OK,
        &RoleList {
            user_id: id,
            roles: rows.iter().map(|r| RoleView::new(r, now)).collect(),
            effective,
        },
    )
}

/// Grant a role, optionally until `expires_at` (admin; `admin`/`superuser` need a superuser).
/// Granting a role the user holds renews it.
#[utoipa::path(post, path = "/_auth/api/users/{id}/roles", tag = "roles",
    params(("id" = i64, Path, description = "User id")), request_body = GrantRoleBody,
    responses((status = 201, description = "Granted", body = RoleGranted)))]
pub async fn grant_role(
    app: &App,
    admin: &AdminPrincipal,
    id: UserId,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let body: GrantRoleBody = input::read(headers, body).await?;
    let row = AdminOps::new(app)
        .grant_role(admin, id, &body.role, body.expires_at)
        .await?;
    json(
        StatusCode::CREATED,
        &RoleGranted {
            role: RoleView::new(&row, app.now()),
        },
    )
}

/// Revoke a role (admin; `admin`/`superuser` need a superuser).
#[utoipa::path(delete, path = "/_auth/api/users/{id}/roles/{role}", tag = "roles",
    params(("id" = i64, Path, description = "User id"), ("role" = String, Path, description = "Role name")),
    responses((status = 200, description = "Revoked", body = Success)))]
pub async fn revoke_role(
    app: &App,
    admin: &AdminPrincipal,
    id: UserId,
    role: &str,
) -> Result<Response<Body>, ApiError> {
    AdminOps::new(app).revoke_role(admin, id, role).await?;
    json(StatusCode::OK, &Success { success: true })
}

/// A user's active sessions, newest first (the user themself or an admin).
#[utoipa::path(get, path = "/_auth/api/users/{id}/sessions", tag = "sessions",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, description = "Active sessions", body = SessionList)))]
pub async fn list_sessions(
    app: &App,
    p: &Principal,
    _scope: &Scope,
    id: UserId,
) -> Result<Response<Body>, ApiError> {
    let ops = AdminOps::new(app);
    ops.load_user(id).await?;
    let rows = ops.sessions(id).await?;
    let current = p.session_id();
    json(
        StatusCode::OK,
        &SessionList {
            sessions: rows.iter().map(|s| SessionView::new(s, current)).collect(),
        },
    )
}

/// Sign a user out everywhere (the user themself or an admin). In force at once.
#[utoipa::path(delete, path = "/_auth/api/users/{id}/sessions", tag = "sessions",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, description = "Sessions ended", body = SessionsEnded)))]
pub async fn end_all_sessions(
    app: &App,
    scope: &Scope,
    id: UserId,
) -> Result<Response<Body>, ApiError> {
    let n = AdminOps::new(app).end_all_sessions(scope, id, None).await?;
    json(
        StatusCode::OK,
        &SessionsEnded {
            success: true,
            sessions_ended: n as i64,
        },
    )
}

/// End one session (its owner or an admin). In force at once.
#[utoipa::path(delete, path = "/_auth/api/sessions/{id}", tag = "sessions",
    params(("id" = i64, Path, description = "Session id")),
    responses((status = 200, description = "Ended", body = Success),
        (status = 409, description = "Already ended", body = ErrorBody)))]
pub async fn end_session(
    app: &App,
    p: &Principal,
    id: SessionId,
) -> Result<Response<Body>, ApiError> {
    AdminOps::new(app).end_session(p, id).await?;
    json(StatusCode::OK, &Success { success: true })
}

/// Add or spend credits (admin). Atomic; the balance never goes below zero (409).
#[utoipa::path(post, path = "/_auth/api/users/{id}/credits", tag = "credits",
    params(("id" = i64, Path, description = "User id")), request_body = CreditsBody,
    responses((status = 200, description = "New balance", body = CreditsResult),
        (status = 409, description = "The balance would go below zero", body = ErrorBody)))]
pub async fn adjust_credits(
    app: &App,
    admin: &AdminPrincipal,
    id: UserId,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let CreditsBody { delta, reason } = input::read(headers, body).await?;
    let balance = AdminOps::new(app)
        .adjust_credits(admin, id, delta, &reason)
        .await?;
    json(
        StatusCode::OK,
        &CreditsResult {
            user_id: id,
            delta,
            credits_balance: balance,
        },
    )
}

const ACTIVITY_PARAMS: [&str; 5] = ["type", "since", "until", "before", "limit"];
const GLOBAL_ACTIVITY_PARAMS: [&str; 6] = ["type", "since", "until", "before", "limit", "user_id"];

/// Parses activity filters; shared with the console.
pub fn activity_filter(q: &input::Query) -> Result<ActivityFilter, ApiError> {
    Ok(ActivityFilter {
        user_id: q.int("user_id", 1, i64::MAX)?.map(UserId),
        activity_type: q.text("type").filter(|t| !t.trim().is_empty()),
        since: q.time("since")?,
        until: q.time("until")?,
        before_id: q.int("before", 1, i64::MAX)?,
        limit: q
            .int("limit", 1, super::users::MAX_LIMIT)?
            .unwrap_or(super::users::DEFAULT_LIMIT),
        ..ActivityFilter::default()
    })
}

/// A user's activity (the user themself or an admin), newest first.
#[utoipa::path(get, path = "/_auth/api/users/{id}/activity", tag = "activity",
    params(("id" = i64, Path, description = "User id"), ActivityQuery),
    responses((status = 200, description = "Activity, newest first", body = ActivityPage)))]
pub async fn user_activity(
    app: &App,
    _scope: &Scope,
    id: UserId,
    uri: &http::Uri,
) -> Result<Response<Body>, ApiError> {
    let ops = AdminOps::new(app);
    ops.load_user(id).await?;
    let q = input::query(uri, &ACTIVITY_PARAMS)?;
    let mut f = activity_filter(&q)?;
    f.user_id = Some(id);
    json(StatusCode::OK, &ops.activity_page(&f).await?)
}

/// All activity (admin), newest first.
#[utoipa::path(get, path = "/_auth/api/activity", tag = "activity",
    params(ActivityQuery, ("user_id" = Option<i64>, Query, minimum = 1, description = "Only rows about this user")),
    responses((status = 200, description = "Activity, newest first", body = ActivityPage)))]
pub async fn activity(
    app: &App,
    _admin: &AdminPrincipal,
    uri: &http::Uri,
) -> Result<Response<Body>, ApiError> {
    let q = input::query(uri, &GLOBAL_ACTIVITY_PARAMS)?;
    let f = activity_filter(&q)?;
    json(StatusCode::OK, &AdminOps::new(app).activity_page(&f).await?)
}
