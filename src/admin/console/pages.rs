//! The console's pages (GET).

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use minijinja::{Value, context};

use super::form::Fields;
use super::page;
use crate::admin::api::access::activity_filter;
use crate::admin::api::input::Query;
use crate::admin::api::users::user_filter;
use crate::admin::error::ApiError;
use crate::admin::principal::AdminPrincipal;
use crate::admin::service::AdminOps;
use crate::admin::views::{RoleView, SessionView};
use crate::app::App;
use crate::store::{ActivityFilter, TIERS, UserId};
use crate::web::Body;

const PAGE_SIZE: i64 = 25;

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
        "unlocked" => "Account unlocked.",
        "deleted" => "Account deleted. It can be restored.",
        "restored" => "Account restored.",
        "twofa_reset" => "Two-factor sign-in turned off.",
        "passkey_removed" => "Passkey removed.",
        _ => return None,
    })
}

/// Query string for a link: the current filters with some keys replaced (an empty value
/// removes the key).
fn link(fields: &Fields, replace: &[(&str, String)]) -> String {
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

pub async fn users(
    app: &App,
    req: &Request<Incoming>,
    admin: &AdminPrincipal,
) -> Result<Response<Body>, ApiError> {
    let fields = super::form::query(req.uri());
    let q = Query::from_pairs(fields.pairs());
    let mut status = StatusCode::OK;
    let mut error = None;
    let mut filter = match user_filter(&q) {
        Ok(f) => f,
        Err(e) => {
            status = e.status_and_code().0;
            error = Some(e.public_message());
            crate::store::UserFilter::default()
        }
    };
    filter.limit = PAGE_SIZE;
    filter.offset = q.int("offset", 0, i64::MAX).ok().flatten().unwrap_or(0);
    let (users, total) = if error.is_none() {
        AdminOps::new(app).list_users(admin, &filter).await?
    } else {
        (Vec::new(), 0)
    };
    let prev = (filter.offset > 0).then(|| {
        link(
            &fields,
            &[("offset", (filter.offset - PAGE_SIZE).max(0).to_string())],
        )
    });
    let next = (filter.offset + PAGE_SIZE < total).then(|| {
        link(
            &fields,
            &[("offset", (filter.offset + PAGE_SIZE).to_string())],
        )
    });
    let f = |k: &str| fields.get(k).unwrap_or("").to_string();
    page(
        app,
        req.headers(),
        admin,
        "admin/users.html",
        status,
        context! {
            users => Value::from_serialize(&users),
            total,
            first => if total == 0 { 0 } else { filter.offset + 1 },
            last => filter.offset + users.len() as i64,
            prev, next, error,
            tiers => TIERS.to_vec(),
            q => f("q"), tier => f("tier"), role => f("role"), is_active => f("is_active"),
            verified => f("verified"), deleted => f("deleted"),
        },
    )
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
    let activity = ops
        .activity_page(&ActivityFilter {
            user_id: Some(id),
            limit: 20,
            ..ActivityFilter::default()
        })
        .await?;
    let activity: Vec<Value> = activity.activity.iter().map(activity_row).collect();
    Ok(context! {
        user => Value::from_serialize(&view),
        roles => Value::from_serialize(&roles),
        effective,
        sessions => Value::from_serialize(&sessions),
        passkeys,
        activity,
        tiers => TIERS.to_vec(),
        is_self => id == who.user_id(),
    })
}

fn activity_row(a: &crate::admin::views::ActivityView) -> Value {
    context! {
        row => Value::from_serialize(a),
        metadata => a.metadata.as_ref().map(|m| m.to_string()),
    }
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

pub async fn activity(
    app: &App,
    req: &Request<Incoming>,
    admin: &AdminPrincipal,
) -> Result<Response<Body>, ApiError> {
    let fields = super::form::query(req.uri());
    let q = Query::from_pairs(fields.pairs());
    let mut status = StatusCode::OK;
    let mut error = None;
    let mut rows = Vec::new();
    let mut next = None;
    match activity_filter(&q) {
        Ok(mut f) => {
            f.limit = 50;
            let p = AdminOps::new(app).activity_page(&f).await?;
            rows = p.activity.iter().map(activity_row).collect();
            next = p
                .next_before
                .map(|b| link(&fields, &[("before", b.to_string())]));
        }
        Err(e) => {
            status = e.status_and_code().0;
            error = Some(e.public_message());
        }
    }
    let f = |k: &str| fields.get(k).unwrap_or("").to_string();
    page(
        app,
        req.headers(),
        admin,
        "admin/activity.html",
        status,
        context! {
            rows, next, error,
            newest => fields.get("before").map(|_| link(&fields, &[("before", String::new())])),
            type_ => f("type"), user_id => f("user_id"), since => f("since"), until => f("until"),
        },
    )
}
