//! The console's form posts: CSRF check, then the same [`ops`] as the API, then a redirect
//! back to the user page (303) or the page again with the error.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;

use super::form::{self, Fields};
use super::pages::render_user;
use super::{BASE, error_page};
use crate::admin::api::input::{Object, parse_time};
use crate::admin::error::ApiError;
use crate::admin::ops;
use crate::admin::principal::{AdminPrincipal, Principal, Scope};
use crate::app::App;
use crate::store::{SessionId, Ts, UserId};
use crate::web::{Body, csrf, respond};

pub async fn run(
    app: &App,
    req: Request<Incoming>,
    who: &Principal,
    admin: &AdminPrincipal,
    id: UserId,
    action: &[String],
) -> Response<Body> {
    let (parts, fields) = match form::read(req).await {
        Ok(x) => x,
        Err(e) => return error_page(app, Some(who), &e),
    };
    if !csrf::verify(
        &app.keys,
        &parts.headers,
        app.secure_cookies(),
        &app.session_cookie,
        fields.get(csrf::FIELD),
    ) {
        return error_page(
            app,
            Some(who),
            &ApiError::forbidden(
                "The form expired or did not come from this site. Go back, reload the page and try again.",
            ),
        );
    }
    let action: Vec<&str> = action.iter().map(String::as_str).collect();
    match act(app, who, admin, id, &action, &fields).await {
        Ok(done) => respond::redirect(
            StatusCode::SEE_OTHER,
            &format!("{BASE}/users/{id}?done={done}"),
        ),
        Err(ApiError::NotFound(m)) if m == "no such action" => error_page(
            app,
            Some(who),
            &ApiError::NotFound("There is no such page.".into()),
        ),
        Err(e) if e.is_server_side() => error_page(app, Some(who), &e),
        Err(e) => render_user(app, &parts.headers, who, admin, id, None, Some(&e)).await,
    }
}

/// Performs one action; returns the `done` code for the notice.
async fn act(
    app: &App,
    who: &Principal,
    admin: &AdminPrincipal,
    id: UserId,
    action: &[&str],
    f: &Fields,
) -> Result<&'static str, ApiError> {
    match action {
        ["update"] => {
            let target = ops::load_user(app, id).await?;
            let body = changed_fields(&target, f, admin.is_superuser())?;
            ops::patch_user(app, who, &Scope::Admin(admin.clone()), &target, &body).await?;
            Ok("updated")
        }
        ["credits"] => {
            let delta = f
                .text("delta")
                .unwrap_or_default()
                .parse::<i64>()
                .map_err(|_| ApiError::invalid("delta", "must be a whole number, e.g. 10 or -5"))?;
            let reason = f.text("reason").unwrap_or_default();
            ops::adjust_credits(app, admin, id, delta, &reason).await?;
            Ok("credits")
        }
        ["roles"] => {
            let role = f.text("role").unwrap_or_default();
            let expires = f.text("expires_at").map(|e| local_time(&e)).transpose()?;
            ops::grant_role(app, admin, id, &role, expires).await?;
            Ok("role_granted")
        }
        ["roles", role, "revoke"] => {
            ops::revoke_role(app, admin, id, role).await?;
            Ok("role_revoked")
        }
        ["sessions", "revoke-all"] => {
            ops::end_all_sessions(app, who, &Scope::Admin(admin.clone()), id).await?;
            Ok("sessions_ended")
        }
        ["sessions", sid, "revoke"] => {
            let sid = sid
                .parse::<i64>()
                .map(SessionId)
                .map_err(|_| ApiError::NotFound("no such session".into()))?;
            // The session must belong to the user whose page this is.
            let owner = app.store.session_by_id(sid).await?.map(|s| s.user_id);
            if owner != Some(id) {
                return Err(ApiError::NotFound("no such session".into()));
            }
            ops::end_session(app, who, app.settings.security.require_2fa_for_admins, sid).await?;
            Ok("session_ended")
        }
        ["passkeys", pk, "remove"] => {
            let pk = pk
                .parse::<i64>()
                .map_err(|_| ApiError::NotFound("no such passkey".into()))?;
            ops::remove_passkey(app, admin, id, pk).await?;
            Ok("passkey_removed")
        }
        ["unlock"] => ops::unlock(app, admin, id).await.map(|()| "unlocked"),
        ["delete"] => ops::soft_delete(app, admin, id).await.map(|_| "deleted"),
        ["restore"] => ops::restore(app, admin, id).await.map(|()| "restored"),
        ["reset-2fa"] => ops::reset_twofa(app, admin, id)
            .await
            .map(|()| "twofa_reset"),
        _ => Err(ApiError::NotFound("no such action".into())),
    }
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

/// The edit form as a PATCH body holding only the fields whose value differs from the
/// account's, so the activity log names exactly what changed.
fn changed_fields(
    u: &crate::store::UserRow,
    f: &Fields,
    superuser: bool,
) -> Result<Object, ApiError> {
    let mut body = Object::new();
    let mut text = |key: &str, current: &Option<String>| {
        let new = f.text(key);
        if &new != current {
            body.insert(key.to_string(), new.map_or(Value::Null, Value::String));
        }
    };
    text("first_name", &u.first_name);
    text("last_name", &u.last_name);
    text("phone", &u.phone);
    text("company_name", &u.company_name);
    let mut put = |key: &str, changed: bool, v: Value| {
        if changed {
            body.insert(key.to_string(), v);
        }
    };
    if let Some(tz) = f.text("timezone") {
        put("timezone", tz != u.timezone, Value::String(tz));
    }
    if let Some(s) = f.text("subscription_status") {
        put(
            "subscription_status",
            s != u.subscription_status,
            Value::String(s),
        );
    }
    if let Some(t) = f.text("subscription_tier") {
        put(
            "subscription_tier",
            t != u.subscription_tier,
            Value::String(t),
        );
    }
    let active = f.checked("is_active");
    put("is_active", active != u.is_active, Value::Bool(active));
    let verified = f.checked("is_verified");
    put(
        "is_verified",
        verified != u.is_verified,
        Value::Bool(verified),
    );
    let en = f.checked("email_notifications");
    put(
        "email_notifications",
        en != u.email_notifications,
        Value::Bool(en),
    );
    let sms = f.checked("sms_notifications");
    put(
        "sms_notifications",
        sms != u.sms_notifications,
        Value::Bool(sms),
    );
    if superuser {
        let a = f.checked("is_admin");
        put("is_admin", a != u.is_admin, Value::Bool(a));
        let s = f.checked("is_superuser");
        put("is_superuser", s != u.is_superuser, Value::Bool(s));
    }
    Ok(body)
}
