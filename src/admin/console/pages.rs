//! The user page, and what the console's pages share (notices, filter links).

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use minijinja::{Value, context};

use super::form::Fields;
use super::page;
use crate::admin::error::ApiError;
use crate::admin::principal::AdminPrincipal;
use crate::admin::service::AdminOps;
use crate::admin::views::{RoleView, SessionView};
use crate::app::App;
use crate::store::{TIERS, UserId};
use crate::web::Body;

/// Messages shown after a successful form post (`?done=...`); a fixed table, so the query
/// string cannot put text on the page.
fn done_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "updated" => "Changes saved.",
        "credits" => "Credits adjusted.",
        "role_granted" => "Role granted.",
        "role_revoked" => "Role revoked.",
        "session_ended" => "Session ended.",
        "sessions_ended" => "Signed out everywhere.",
        "locked" => "Account locked.",
        "unlocked" => "Account unlocked.",
        "created" => "Account created. A link to choose a password was mailed to the user.",
        "deleted" => "Account deleted. It can be restored.",
        "restored" => "Account restored.",
        "twofa_reset" => "Two-factor sign-in turned off.",
        "passkey_removed" => "Passkey removed.",
        _ => return None,
    })
}

/// Query string for a link: the current filters with some keys replaced (an empty value
/// removes the key).
pub(super) fn link(fields: &Fields, replace: &[(&str, String)]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    let mut pairs: Vec<(&String, &String)> = fields
        .pairs()
        .filter(|(k, _)| !replace.iter().any(|(r, _)| r == k))
        .collect();
    pairs.sort();
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    for (k, v) in replace.iter().filter(|(_, v)| !v.is_empty()) {
        ser.append_pair(k, v);
    }
    ser.finish()
}

/// Everything the user page shows.
async fn user_context(app: &App, who: &AdminPrincipal, id: UserId) -> Result<Value, ApiError> {
    let ops = AdminOps::new(app);
    let user = ops.load_user(id).await?;
    let view = ops.view(&user).await?;
    let (roles, effective) = ops.roles(&user).await?;
    let now = app.now();
    let roles: Vec<RoleView> = roles.iter().map(|r| RoleView::new(r, now)).collect();
    let sessions: Vec<SessionView> = ops
        .sessions(id)
        .await?
        .iter()
        .map(|s| SessionView::new(s, who.session_id()))
        .collect();
    let passkeys: Vec<Value> = ops
        .passkeys(id)
        .await?
        .iter()
        .map(|p| {
            context! {
                id => p.id,
                name => p.name.clone(),
                created_at => p.created_at.0.to_rfc3339(),
                last_used_at => p.last_used_at.map(|t| t.0.to_rfc3339()),
            }
        })
        .collect();
    let activity = super::activity::recent_of(app, id).await?;
    Ok(context! {
        user => Value::from_serialize(&view),
        roles => Value::from_serialize(&roles),
        effective,
        sessions => Value::from_serialize(&sessions),
        passkeys,
        activity,
        activity_query => url::form_urlencoded::Serializer::new(String::new())
            .append_pair("user", &view.username)
            .finish(),
        tiers => TIERS.to_vec(),
        is_self => id == who.user_id(),
    })
}

pub async fn user(
    app: &App,
    req: &Request<Incoming>,
    admin: &AdminPrincipal,
    id: UserId,
) -> Result<Response<Body>, ApiError> {
    let fields = super::form::query(req.uri());
    let notice = fields.get("done").and_then(done_message);
    render_user(app, req.headers(), admin, id, notice, None).await
}

/// The user page, with a notice or an error (whose status the page takes).
pub async fn render_user(
    app: &App,
    headers: &http::HeaderMap,
    admin: &AdminPrincipal,
    id: UserId,
    notice: Option<&str>,
    error: Option<&ApiError>,
) -> Result<Response<Body>, ApiError> {
    let ctx = user_context(app, admin, id).await?;
    page(
        app,
        headers,
        admin,
        "admin/user.html",
        error.map_or(StatusCode::OK, |e| e.status_and_code().0),
        context! {
            notice,
            error => error.map(ApiError::public_message),
            error_fields => error.map(|e| e.fields().to_vec()),
            superuser => admin.is_superuser(),
            ..ctx
        },
    )
}
