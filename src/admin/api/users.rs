//! `/_auth/api/users` and `/_auth/api/users/{id}` (+ restore, unlock, reset-2fa).

use http::{HeaderMap, Response, StatusCode};
use hyper::body::Incoming;

use super::input::{self};
use super::json;
use crate::admin::error::ApiError;
use crate::admin::principal::{AdminPrincipal, Scope};
use crate::admin::service::{AdminOps, PasswordSetup};
use crate::admin::views::{
    NewUserBody, SessionsEnded, Success, UserCreated, UserEnvelope, UserList, UserListQuery,
    UserPatchBody, UserUpdated,
};
use crate::app::App;
use crate::store::{Tier, UserFilter, UserId};
use crate::web::Body;

/// Largest page of users.
pub const MAX_LIMIT: i64 = 200;
pub const DEFAULT_LIMIT: i64 = 50;

/// Parses the list filters; shared with the console.
pub fn user_filter(q: &input::Query) -> Result<UserFilter, ApiError> {
    Ok(UserFilter {
        search: q.text("q").filter(|s| !s.trim().is_empty()),
        active: q.boolean("is_active")?,
        tier: q
            .text("tier")
            .filter(|t| !t.is_empty())
            .map(|t| t.parse::<Tier>())
            .transpose()
            .map_err(|e| ApiError::invalid("tier", e))?,
        role: q.text("role").filter(|r| !r.trim().is_empty()),
        verified: q.boolean("verified")?,
        deleted: q.boolean("deleted")?,
        limit: q.int("limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT),
        offset: q.int("offset", 0, i64::MAX)?.unwrap_or(0),
        ..UserFilter::default()
    })
}

pub const LIST_PARAMS: [&str; 8] = [
    "q",
    "is_active",
    "tier",
    "role",
    "verified",
    "deleted",
    "limit",
    "offset",
];

/// List users (admin). Stable order: by id.
#[utoipa::path(get, path = "/_auth/api/users", tag = "users", params(UserListQuery),
    responses((status = 200, description = "A page of users", body = UserList)))]
pub async fn list_users(
    app: &App,
    admin: &AdminPrincipal,
    uri: &http::Uri,
) -> Result<Response<Body>, ApiError> {
    let q = input::query(uri, &LIST_PARAMS)?;
    let filter = user_filter(&q)?;
    let (users, total) = AdminOps::new(app).list_users(admin, &filter).await?;
    let next = filter.offset.saturating_add(filter.limit);
    json(
        StatusCode::OK,
        &UserList {
            users,
            total,
            limit: filter.limit,
            offset: filter.offset,
            next_offset: (next < total).then_some(next),
        },
    )
}

/// Create a user (admin).
#[utoipa::path(post, path = "/_auth/api/users", tag = "users", request_body = NewUserBody,
    responses((status = 201, description = "Created", body = UserCreated),
        (status = 409, description = "Username or email taken", body = crate::admin::views::ErrorBody)))]
pub async fn create_user(
    app: &App,
    admin: &AdminPrincipal,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let body: NewUserBody = input::read(headers, body).await?;
    let ops = AdminOps::new(app);
    let (user, setup) = ops.create_user(admin, body).await?;
    json(
        StatusCode::CREATED,
        &UserCreated {
            user: ops.view(&user).await?,
            password_set: setup == PasswordSetup::Given,
            set_password_mail: setup.as_str().to_string(),
        },
    )
}

/// One user: the user themself or an admin. Never includes secrets.
#[utoipa::path(get, path = "/_auth/api/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, description = "The user", body = UserEnvelope)))]
pub async fn get_user(app: &App, _scope: &Scope, id: UserId) -> Result<Response<Body>, ApiError> {
    let ops = AdminOps::new(app);
    let user = ops.load_user(id).await?;
    json(
        StatusCode::OK,
        &UserEnvelope {
            user: ops.view(&user).await?,
        },
    )
}

/// Change fields. Unknown fields, and fields the caller may not change, are refused (422)
/// naming them; nothing is silently ignored.
#[utoipa::path(patch, path = "/_auth/api/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "User id")), request_body = UserPatchBody,
    responses((status = 200, description = "Updated", body = UserUpdated),
        (status = 409, description = "Conflict", body = crate::admin::views::ErrorBody)))]
pub async fn patch_user(
    app: &App,
    scope: &Scope,
    id: UserId,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let ops = AdminOps::new(app);
    let target = ops.load_user(id).await?;
    let obj = input::json_object(headers, body).await?;
    let (body, unknown) = input::body_and_unknown::<UserPatchBody>(obj)?;
    let (user, changed) = ops.patch_user(scope, &target, body, unknown).await?;
    json(
        StatusCode::OK,
        &UserUpdated {
            success: true,
            changed,
            user: ops.view(&user).await?,
        },
    )
}

/// Soft-delete a user (admin): restorable; ends all their sessions.
#[utoipa::path(delete, path = "/_auth/api/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, description = "Deleted", body = SessionsEnded),
        (status = 409, description = "Already deleted, or your own account", body = crate::admin::views::ErrorBody)))]
pub async fn delete_user(
    app: &App,
    admin: &AdminPrincipal,
    id: UserId,
) -> Result<Response<Body>, ApiError> {
    let n = AdminOps::new(app).soft_delete(admin, id, None).await?;
    json(
        StatusCode::OK,
        &SessionsEnded {
            success: true,
            sessions_ended: n as i64,
        },
    )
}

/// Restore a soft-deleted user (admin).
#[utoipa::path(post, path = "/_auth/api/users/{id}/restore", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, description = "Restored", body = Success),
        (status = 409, description = "Not deleted", body = crate::admin::views::ErrorBody)))]
pub async fn restore_user(
    app: &App,
    admin: &AdminPrincipal,
    id: UserId,
) -> Result<Response<Body>, ApiError> {
    AdminOps::new(app).restore(admin, id).await?;
    json(StatusCode::OK, &Success { success: true })
}

/// Unlock a user locked by failed sign-ins or by hand (admin).
#[utoipa::path(post, path = "/_auth/api/users/{id}/unlock", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, description = "Unlocked", body = Success)))]
pub async fn unlock_user(
    app: &App,
    admin: &AdminPrincipal,
    id: UserId,
) -> Result<Response<Body>, ApiError> {
    AdminOps::new(app).unlock(admin, id).await?;
    json(StatusCode::OK, &Success { success: true })
}

/// Turn two-factor sign-in off for a user (admin): clears the secret, recovery codes and
/// last used step.
#[utoipa::path(post, path = "/_auth/api/users/{id}/reset-2fa", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, description = "Reset", body = Success)))]
pub async fn reset_twofa(
    app: &App,
    admin: &AdminPrincipal,
    id: UserId,
) -> Result<Response<Body>, ApiError> {
    AdminOps::new(app).reset_twofa(admin, id, None).await?;
    json(StatusCode::OK, &Success { success: true })
}
