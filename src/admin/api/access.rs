//! Roles, sessions, credits and activity of a user, and the global activity log.

use http::{HeaderMap, Response, StatusCode};
use hyper::body::Incoming;

use super::input;
use super::json;
use crate::admin::error::ApiError;
use crate::admin::ops;
use crate::admin::principal::Principal;
use crate::admin::views::{
    ActivityPage, ActivityQuery, ActivityView, CreditsBody, CreditsResult, ErrorBody,
    GrantRoleBody, RoleGranted, RoleList, RoleView, SessionList, SessionView, SessionsEnded,
    Success,
};
use crate::app::App;
use crate::store::{ActivityFilter, SessionId, UserId};
use crate::web::Body;

fn require_2fa(app: &App) -> bool {
    app.settings.security.require_2fa_for_admins
}

/// A user's roles (the user themself or an admin).
#[utoipa::path(get, path = "/_auth/api/users/{id}/roles", tag = "roles",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, description = "Roles", body = RoleList)))]
pub async fn list_roles(app: &App, p: &Principal, id: UserId) -> Result<Response<Body>, ApiError> {
    p.scope(id, require_2fa(app))?;
    let user = ops::load_user(app, id).await?;
    let (rows, effective) = ops::roles(app, &user).await?;
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
    p: &Principal,
    id: UserId,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let admin = p.admin(require_2fa(app))?;
    let body = input::json_object(headers, body).await?;
    input::only_known(&body, &["role", "expires_at"])?;
    let role = input::required_string(&body, "role")?;
    let expires_at = input::time(&body, "expires_at")?;
    let row = ops::grant_role(app, &admin, id, &role, expires_at).await?;
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
    p: &Principal,
    id: UserId,
    role: &str,
) -> Result<Response<Body>, ApiError> {
    let admin = p.admin(require_2fa(app))?;
    ops::revoke_role(app, &admin, id, role).await?;
    json(StatusCode::OK, &Success { success: true })
}

/// A user's active sessions, newest first (the user themself or an admin).
#[utoipa::path(get, path = "/_auth/api/users/{id}/sessions", tag = "sessions",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, description = "Active sessions", body = SessionList)))]
pub async fn list_sessions(
    app: &App,
    p: &Principal,
    id: UserId,
) -> Result<Response<Body>, ApiError> {
    p.scope(id, require_2fa(app))?;
    ops::load_user(app, id).await?;
    let rows = app.store.sessions_of(id, app.now()).await?;
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
    p: &Principal,
    id: UserId,
) -> Result<Response<Body>, ApiError> {
    let scope = p.scope(id, require_2fa(app))?;
    let n = ops::end_all_sessions(app, p, &scope, id).await?;
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
    ops::end_session(app, p, require_2fa(app), id).await?;
    json(StatusCode::OK, &Success { success: true })
}

/// Add or spend credits (admin). Atomic; the balance never goes below zero (409).
#[utoipa::path(post, path = "/_auth/api/users/{id}/credits", tag = "credits",
    params(("id" = i64, Path, description = "User id")), request_body = CreditsBody,
    responses((status = 200, description = "New balance", body = CreditsResult),
        (status = 409, description = "The balance would go below zero", body = ErrorBody)))]
pub async fn adjust_credits(
    app: &App,
    p: &Principal,
    id: UserId,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let admin = p.admin(require_2fa(app))?;
    let body = input::json_object(headers, body).await?;
    input::only_known(&body, &["delta", "reason"])?;
    let delta =
        input::integer(&body, "delta")?.ok_or_else(|| ApiError::invalid("delta", "is required"))?;
    let reason = input::required_string(&body, "reason")?;
    let balance = ops::adjust_credits(app, &admin, id, delta, &reason).await?;
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
    })
}

/// A page of activity rows, newest first, plus the cursor for the next page.
pub async fn activity_page(app: &App, f: &ActivityFilter) -> Result<ActivityPage, ApiError> {
    // One extra row tells whether another page follows.
    let mut probe = f.clone();
    probe.limit = f.limit + 1;
    let mut rows = app.store.list_activity(&probe).await?;
    let more = rows.len() as i64 > f.limit;
    rows.truncate(f.limit.max(0) as usize);
    let next_before = if more {
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok(ActivityPage {
        activity: rows.into_iter().map(ActivityView::from).collect(),
        next_before,
    })
}

/// A user's activity (the user themself or an admin), newest first.
#[utoipa::path(get, path = "/_auth/api/users/{id}/activity", tag = "activity",
    params(("id" = i64, Path, description = "User id"), ActivityQuery),
    responses((status = 200, description = "Activity, newest first", body = ActivityPage)))]
pub async fn user_activity(
    app: &App,
    p: &Principal,
    id: UserId,
    uri: &http::Uri,
) -> Result<Response<Body>, ApiError> {
    p.scope(id, require_2fa(app))?;
    ops::load_user(app, id).await?;
    let q = input::query(uri, &ACTIVITY_PARAMS)?;
    let mut f = activity_filter(&q)?;
    f.user_id = Some(id);
    json(StatusCode::OK, &activity_page(app, &f).await?)
}

/// All activity (admin), newest first.
#[utoipa::path(get, path = "/_auth/api/activity", tag = "activity",
    params(ActivityQuery, ("user_id" = Option<i64>, Query, minimum = 1, description = "Only rows about this user")),
    responses((status = 200, description = "Activity, newest first", body = ActivityPage)))]
pub async fn activity(
    app: &App,
    p: &Principal,
    uri: &http::Uri,
) -> Result<Response<Body>, ApiError> {
    p.admin(require_2fa(app))?;
    let q = input::query(uri, &GLOBAL_ACTIVITY_PARAMS)?;
    let f = activity_filter(&q)?;
    json(StatusCode::OK, &activity_page(app, &f).await?)
}
