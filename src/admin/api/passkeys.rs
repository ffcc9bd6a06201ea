//! A user's passkeys in the admin API: list them, remove one.

use http::{Response, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use super::json;
use crate::admin::error::ApiError;
use crate::admin::principal::{AdminPrincipal, Scope};
use crate::admin::service::AdminOps;
use crate::admin::views::{ErrorBody, Success};
use crate::app::App;
use crate::store::{PasskeyRow, Ts, UserId};
use crate::web::Body;

/// One passkey (never its key).
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyView {
    pub id: i64,
    pub name: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Ts,
    /// `null`: never used to sign in.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Ts>,
    /// Last signature counter seen.
    pub counter: i64,
}

impl PasskeyView {
    fn new(p: &PasskeyRow) -> PasskeyView {
        PasskeyView {
            id: p.id,
            name: p.name.clone(),
            created_at: p.created_at,
            last_used_at: p.last_used_at,
            counter: p.counter,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyList {
    pub passkeys: Vec<PasskeyView>,
}

/// A user's passkeys, oldest first (the user themself or an admin).
#[utoipa::path(get, path = "/_auth/api/users/{id}/passkeys", tag = "passkeys",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, description = "Passkeys", body = PasskeyList),
        (status = 404, description = "No such user", body = ErrorBody)))]
pub async fn list_passkeys(
    app: &App,
    _scope: &Scope,
    id: UserId,
) -> Result<Response<Body>, ApiError> {
    let ops = AdminOps::new(app);
    ops.load_user(id).await?;
    let rows = ops.passkeys(id).await?;
    json(
        StatusCode::OK,
        &PasskeyList {
            passkeys: rows.iter().map(PasskeyView::new).collect(),
        },
    )
}

/// Remove one passkey of a user (admin). Other instances drop the user's cached sessions.
#[utoipa::path(delete, path = "/_auth/api/users/{id}/passkeys/{passkey_id}", tag = "passkeys",
    params(("id" = i64, Path, description = "User id"),
        ("passkey_id" = i64, Path, description = "Passkey id")),
    responses((status = 200, description = "Removed", body = Success),
        (status = 404, description = "No such passkey of this user", body = ErrorBody)))]
pub async fn remove_passkey(
    app: &App,
    admin: &AdminPrincipal,
    id: UserId,
    passkey: i64,
) -> Result<Response<Body>, ApiError> {
    AdminOps::new(app)
        .remove_passkey(admin, id, passkey)
        .await?;
    json(StatusCode::OK, &Success { success: true })
}
