//! The console's form posts: CSRF check, then the same [`AdminOps`] as the API, then a redirect
//! back to the user page (303) or the page again with the error. Deleting, resetting two-factor
//! sign-in and signing out everywhere run only from their confirmation form (`confirm=yes` and
//! a reason, which the activity row records); any other post of them shows the confirmation.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::confirm::{Confirmed, confirm_page};
use super::form::{self, Fields};
use super::pages::render_user;
use super::{BASE, no_such_page};
use crate::admin::api::input::parse_time;
use crate::admin::error::ApiError;
use crate::admin::principal::{AdminPrincipal, Scope};
use crate::admin::service::AdminOps;
use crate::admin::views::UserPatchBody;
use crate::app::App;
use crate::store::{SessionId, Ts, UserId, UserRow};
use crate::web::{Body, csrf, respond};

pub async fn run(
    app: &App,
    req: Request<Incoming>,
    admin: &AdminPrincipal,
    id: UserId,
    action: &[String],
) -> Result<Response<Body>, ApiError> {
    let (parts, fields) = form::read(req).await?;
    check_csrf(app, &parts.headers, &fields)?;
    let action: Vec<&str> = action.iter().map(String::as_str).collect();
    let confirmed = match Confirmed::of(&action) {
        Some(c) => match confirmation(c, &fields) {
            Ok(reason) => Some(reason),
            Err(e) => return confirm_page(app, &parts.headers, admin, id, c, Some(&e)).await,
        },
        None => None,
    };
    match act(app, admin, id, &action, &fields, confirmed.as_deref()).await {
        Ok(done) => Ok(respond::redirect(
            StatusCode::SEE_OTHER,
            &format!("{BASE}/users/{id}?done={done}"),
        )),
        Err(Act::NoSuchAction) => Err(no_such_page()),
        Err(Act::Failed(e)) if e.is_server_side() => Err(e),
        // The user page again, showing what was wrong, with the error's status.
        Err(Act::Failed(e)) => render_user(app, &parts.headers, admin, id, None, Some(&e)).await,
    }
}

/// Refuses a form post without this site's CSRF token.
pub(super) fn check_csrf(
    app: &App,
    headers: &http::HeaderMap,
    fields: &Fields,
) -> Result<(), ApiError> {
    if csrf::verify(
        &app.keys,
        headers,
        app.secure_cookies(),
        &app.session_cookie,
        fields.get(csrf::FIELD),
    ) {
        return Ok(());
    }
    Err(ApiError::forbidden(
        "The form expired or did not come from this site. Go back, reload the page and try again.",
    ))
}

/// The reason of a confirmed post: `confirm=yes` and a reason of 1 to 500 characters, or
/// nothing runs.
fn confirmation(c: Confirmed, f: &Fields) -> Result<String, ApiError> {
    if f.get("confirm") != Some("yes") {
        return Err(ApiError::BadRequest(format!(
            "Nothing was done yet. To {}, confirm below and give a reason.",
            c.verb()
        )));
    }
    match f.text("reason") {
        Some(r) if r.chars().count() <= 500 => Ok(r),
        Some(_) => Err(ApiError::invalid(
            "reason",
            "must be at most 500 characters",
        )),
        None => Err(ApiError::invalid(
            "reason",
            "is required: say why, for the activity log",
        )),
    }
}

/// How long the Lock button locks an account for.
fn lock_until(app: &App, f: &Fields) -> Result<Ts, ApiError> {
    let hours = match f.get("lock_for").unwrap_or("forever") {
        "1h" => 1,
        "24h" => 24,
        "7d" => 24 * 7,
        "30d" => 24 * 30,
        // Until an admin unlocks it.
        "forever" => 24 * 365 * 100,
        _ => {
            return Err(ApiError::invalid(
                "lock_for",
                "must be 1h, 24h, 7d, 30d or forever",
            ));
        }
    };
    Ok(Ts(app.now().0 + chrono::Duration::hours(hours)))
}

/// Why a form post did nothing.
enum Act {
    NoSuchAction,
    Failed(ApiError),
}

impl From<ApiError> for Act {
    fn from(e: ApiError) -> Self {
        Act::Failed(e)
    }
}

/// Performs one action; returns the `done` code for the notice.
async fn act(
    app: &App,
    admin: &AdminPrincipal,
    id: UserId,
    action: &[&str],
    f: &Fields,
    reason: Option<&str>,
) -> Result<&'static str, Act> {
    let ops = AdminOps::new(app);
    let as_admin = Scope::Admin(admin.clone());
    let done = match action {
        ["update"] => {
            let target = ops.load_user(id).await?;
            let body = changed_fields(&target, f, admin.is_superuser());
            ops.patch_user(&as_admin, &target, body, Vec::new()).await?;
            "updated"
        }
        ["credits"] => {
            let delta = f
                .text("delta")
                .unwrap_or_default()
                .parse::<i64>()
                .map_err(|_| ApiError::invalid("delta", "must be a whole number, e.g. 10 or -5"))?;
            let reason = f.text("reason").unwrap_or_default();
            ops.adjust_credits(admin, id, delta, &reason).await?;
            "credits"
        }
        ["roles"] => {
            let role = f.text("role").unwrap_or_default();
            let expires = f.text("expires_at").map(|e| local_time(&e)).transpose()?;
            ops.grant_role(admin, id, &role, expires).await?;
            "role_granted"
        }
        ["roles", role, "revoke"] => {
            ops.revoke_role(admin, id, role).await?;
            "role_revoked"
        }
        ["sessions", "revoke-all"] => {
            ops.end_all_sessions(&as_admin, id, reason).await?;
            "sessions_ended"
        }
        ["sessions", sid, "revoke"] => {
            let sid = sid
                .parse::<i64>()
                .map(SessionId)
                .map_err(|_| ApiError::NotFound("no such session".into()))?;
            ops.end_session_of(admin, id, sid).await?;
            "session_ended"
        }
        ["passkeys", pk, "remove"] => {
            let pk = pk
                .parse::<i64>()
                .map_err(|_| ApiError::NotFound("no such passkey".into()))?;
            ops.remove_passkey(admin, id, pk).await?;
            "passkey_removed"
        }
        ["lock"] => {
            let until = lock_until(app, f)?;
            ops.lock(admin, id, until).await.map(|()| "locked")?
        }
        ["unlock"] => ops.unlock(admin, id).await.map(|()| "unlocked")?,
        ["delete"] => ops
            .soft_delete(admin, id, reason)
            .await
            .map(|_| "deleted")?,
        ["restore"] => ops.restore(admin, id).await.map(|()| "restored")?,
        ["reset-2fa"] => ops
            .reset_twofa(admin, id, reason)
            .await
            .map(|()| "twofa_reset")?,
        _ => return Err(Act::NoSuchAction),
    };
    Ok(done)
}

/// `2026-05-01T12:00` from a `datetime-local` input, read as UTC; RFC 3339 also works.
fn local_time(s: &str) -> Result<Ts, ApiError> {
    for fmt in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(Ts(t.and_utc()));
        }
    }
    parse_time("expires_at", s)
}

/// The edit form as a PATCH body setting only the fields whose value differs from the
/// account's, so the activity log names exactly what changed.
fn changed_fields(u: &UserRow, f: &Fields, superuser: bool) -> UserPatchBody {
    fn differs<T: PartialEq>(new: T, current: &T) -> Option<T> {
        (new != *current).then_some(new)
    }
    let text = |key: &str, current: &Option<String>| differs(f.text(key), current);
    let other = |key: &str, current: &String| f.text(key).and_then(|v| differs(v, current));
    let flag = |key: &str, current: bool| differs(f.checked(key), &current);
    UserPatchBody {
        first_name: text("first_name", &u.first_name),
        last_name: text("last_name", &u.last_name),
        phone: text("phone", &u.phone),
        company_name: text("company_name", &u.company_name),
        timezone: other("timezone", &u.timezone),
        subscription_status: other("subscription_status", &u.subscription_status),
        subscription_tier: other("subscription_tier", &u.subscription_tier),
        is_active: flag("is_active", u.is_active),
        is_verified: flag("is_verified", u.is_verified),
        email_notifications: flag("email_notifications", u.email_notifications),
        sms_notifications: flag("sms_notifications", u.sms_notifications),
        is_admin: superuser.then(|| flag("is_admin", u.is_admin)).flatten(),
        is_superuser: superuser
            .then(|| flag("is_superuser", u.is_superuser))
            .flatten(),
        credits_balance: None,
    }
}
