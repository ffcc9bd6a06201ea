//! What the admin API and console do, apart from HTTP: permission rules beyond the role check,
//! calls into the accounts library (which records the activity rows), and cache eviction so a
//! change is in force on the caller's next request.

use serde_json::Value;

use super::api::input::{self, Object};
use super::error::ApiError;
use super::principal::{AdminPrincipal, Principal, Scope};
use crate::accounts::{NewAccount, UserView};
use crate::app::App;
use crate::audit::ActivityKind;
use crate::config::Secret;
use crate::store::{RoleRow, SessionId, Tier, Ts, UserFilter, UserId, UserPatch, UserRow};

/// Fields a user may change on their own account (the spec's `allowed_fields`).
pub const SELF_FIELDS: [&str; 7] = [
    "first_name",
    "last_name",
    "phone",
    "company_name",
    "email_notifications",
    "sms_notifications",
    "timezone",
];
/// Fields an admin may change besides [`SELF_FIELDS`].
pub const ADMIN_FIELDS: [&str; 5] = [
    "is_active",
    "is_verified",
    "subscription_status",
    "subscription_tier",
    "credits_balance",
];
/// Fields only a superuser may change.
pub const SUPERUSER_FIELDS: [&str; 2] = ["is_admin", "is_superuser"];
/// Fields nobody may change on their own account through the API (it would lock them out).
const NOT_ON_SELF: [&str; 3] = ["is_active", "is_admin", "is_superuser"];

/// Roles that carry admin power; only a superuser grants or revokes them.
const PRIVILEGED_ROLES: [&str; 2] = ["admin", "superuser"];

pub async fn load_user(app: &App, id: UserId) -> Result<UserRow, ApiError> {
    app.accounts
        .get(id)
        .await?
        .ok_or_else(ApiError::user_not_found)
}

/// Drops cached identities of `user` (sessions and API tokens), so the next request sees the
/// change.
pub fn refresh(app: &App, user: UserId) {
    app.sessions.evict_user(user);
    app.tokens.evict_user(user);
}

/// A plain admin may not act on a superuser's account (beyond reading it).
fn guard_target(admin: &AdminPrincipal, target: &UserRow) -> Result<(), ApiError> {
    if target.is_superuser && !admin.is_superuser() && target.id != admin.user_id() {
        return Err(ApiError::forbidden(
            "only a superuser may change a superuser's account",
        ));
    }
    Ok(())
}

/// Removes one passkey of a user (a superuser's only by a superuser) and ends the user's
/// sessions: one signed in with a lost key must not outlive its removal.
pub async fn remove_passkey(
    app: &App,
    admin: &AdminPrincipal,
    id: UserId,
    passkey: i64,
) -> Result<(), ApiError> {
    let target = load_user(app, id).await?;
    guard_target(admin, &target)?;
    let client = crate::accounts::ClientInfo::default();
    if !app
        .accounts
        .remove_passkey(id, passkey, Some(admin.user_id()), &client)
        .await?
    {
        return Err(ApiError::NotFound("no such passkey of this user".into()));
    }
    app.sessions.end_all_for_user(id, None).await?;
    app.sessions.evict_user(id);
    Ok(())
}

pub async fn view(app: &App, user: &UserRow) -> Result<UserView, ApiError> {
    Ok(app.accounts.view(user).await?)
}

pub async fn list_users(
    app: &App,
    _admin: &AdminPrincipal,
    filter: &UserFilter,
) -> Result<(Vec<UserView>, i64), ApiError> {
    let (rows, total) = app.accounts.list(filter).await?;
    let mut views = Vec::with_capacity(rows.len());
    for u in &rows {
        views.push(app.accounts.view(u).await?);
    }
    Ok((views, total))
}

/// Applies a PATCH body. Every key must be one the caller may change, or the whole request is
/// refused naming the offending keys.
pub async fn patch_user(
    app: &App,
    caller: &Principal,
    scope: &Scope,
    target: &UserRow,
    body: &Object,
) -> Result<(UserRow, Vec<String>), ApiError> {
    if let Scope::Admin(a) = scope {
        guard_target(a, target)?;
    }
    check_patch_fields(caller, scope, target, body)?;
    let patch = patch_from(body)?;
    let changed: Vec<String> = body.keys().cloned().collect();
    if changed.is_empty() {
        return Ok((target.clone(), changed));
    }
    let user = app
        .accounts
        .update(target.id, patch, Some(caller.user_id()))
        .await?;
    refresh(app, user.id);
    Ok((user, changed))
}

/// Refuses (422) keys that are unknown or read-only, and keys above the caller's level.
fn check_patch_fields(
    caller: &Principal,
    scope: &Scope,
    target: &UserRow,
    body: &Object,
) -> Result<(), ApiError> {
    let admin = matches!(scope, Scope::Admin(_));
    let superuser = matches!(scope, Scope::Admin(a) if a.is_superuser());
    let mut unknown = Vec::new();
    let mut forbidden = Vec::new();
    for key in body.keys() {
        let k = key.as_str();
        let allowed = if SELF_FIELDS.contains(&k) {
            true
        } else if ADMIN_FIELDS.contains(&k) {
            admin
        } else if SUPERUSER_FIELDS.contains(&k) {
            superuser
        } else {
            unknown.push(key.clone());
            continue;
        };
        if !allowed || (target.id == caller.user_id() && NOT_ON_SELF.contains(&k)) {
            forbidden.push(key.clone());
        }
    }
    if unknown.is_empty() && forbidden.is_empty() {
        return Ok(());
    }
    let mut parts = Vec::new();
    if !unknown.is_empty() {
        parts.push(format!(
            "unknown or read-only fields: {}",
            unknown.join(", ")
        ));
    }
    if !forbidden.is_empty() {
        parts.push(format!(
            "fields you may not change here: {}",
            forbidden.join(", ")
        ));
    }
    unknown.extend(forbidden);
    Err(ApiError::unprocessable(parts.join("; "), unknown))
}

/// The typed patch; a value of the wrong type is refused naming its field.
fn patch_from(body: &Object) -> Result<UserPatch, ApiError> {
    Ok(UserPatch {
        first_name: input::nullable_text(body, "first_name", 100)?,
        last_name: input::nullable_text(body, "last_name", 100)?,
        phone: input::nullable_text(body, "phone", 40)?,
        company_name: input::nullable_text(body, "company_name", 200)?,
        email_notifications: input::boolean(body, "email_notifications")?,
        sms_notifications: input::boolean(body, "sms_notifications")?,
        timezone: input::string(body, "timezone")?,
        is_active: input::boolean(body, "is_active")?,
        is_verified: input::boolean(body, "is_verified")?,
        subscription_status: input::string(body, "subscription_status")?
            .map(|s| subscription_status(&s))
            .transpose()?,
        subscription_tier: input::string(body, "subscription_tier")?
            .map(|t| t.parse::<Tier>())
            .transpose()
            .map_err(|e| ApiError::invalid("subscription_tier", e))?,
        credits_balance: input::integer(body, "credits_balance")?,
        is_admin: input::boolean(body, "is_admin")?,
        is_superuser: input::boolean(body, "is_superuser")?,
        ..UserPatch::default()
    })
}

fn subscription_status(s: &str) -> Result<String, ApiError> {
    let s = s.trim();
    if s.is_empty()
        || s.len() > 32
        || !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(ApiError::invalid(
            "subscription_status",
            "must be 1 to 32 of a-z, 0-9 and _ (e.g. active, past_due, canceled)",
        ));
    }
    Ok(s.to_string())
}

pub const NEW_USER_FIELDS: [&str; 11] = [
    "username",
    "email",
    "password",
    "first_name",
    "last_name",
    "phone",
    "company_name",
    "subscription_tier",
    "is_verified",
    "is_admin",
    "is_superuser",
];

/// How the new user will get a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordSetup {
    /// The request gave one.
    Given,
    /// A set-password link (a reset token) was mailed to the new user.
    Mailed,
}

impl PasswordSetup {
    pub fn as_str(self) -> &'static str {
        match self {
            PasswordSetup::Given => "not_needed",
            PasswordSetup::Mailed => "sent",
        }
    }
}

pub async fn create_user(
    app: &App,
    admin: &AdminPrincipal,
    body: &Object,
) -> Result<(UserRow, PasswordSetup), ApiError> {
    input::only_known(body, &NEW_USER_FIELDS)?;
    let forbidden: Vec<String> = SUPERUSER_FIELDS
        .iter()
        .filter(|f| body.get(**f).is_some_and(|v| v != &Value::Bool(false)))
        .map(|f| f.to_string())
        .collect();
    if !forbidden.is_empty() && !admin.is_superuser() {
        return Err(ApiError::unprocessable(
            format!("only a superuser may set: {}", forbidden.join(", ")),
            forbidden,
        ));
    }
    let password = input::string(body, "password")?.map(Secret::new);
    let mut a = NewAccount::new(
        input::required_string(body, "username")?,
        input::required_string(body, "email")?,
        password.clone(),
    );
    a.first_name = input::nullable_text(body, "first_name", 100)?.flatten();
    a.last_name = input::nullable_text(body, "last_name", 100)?.flatten();
    a.phone = input::nullable_text(body, "phone", 40)?.flatten();
    a.company_name = input::nullable_text(body, "company_name", 200)?.flatten();
    if let Some(t) = input::string(body, "subscription_tier")? {
        a.tier = t
            .parse()
            .map_err(|e| ApiError::invalid("subscription_tier", e))?;
    }
    a.is_verified = input::boolean(body, "is_verified")?.unwrap_or(false);
    a.is_admin = input::boolean(body, "is_admin")?.unwrap_or(false);
    a.is_superuser = input::boolean(body, "is_superuser")?.unwrap_or(false);
    let user = app.accounts.create_user(a, Some(admin.user_id())).await?;
    if password.is_some() {
        return Ok((user, PasswordSetup::Given));
    }
    // The account has no password: mail a one-time link to the reset form to choose one.
    let token = app
        .accounts
        .issue_reset_token(&user, &crate::accounts::ClientInfo::default())
        .await?;
    let s = &app.settings;
    app.mailer.send_later(crate::mail::set_password_link(
        &s.server.public_url,
        &s.portal.product_name,
        &user.email,
        token.expose(),
        &humantime::format_duration(s.security.reset_token_ttl).to_string(),
    ));
    Ok((user, PasswordSetup::Mailed))
}

pub async fn soft_delete(app: &App, admin: &AdminPrincipal, id: UserId) -> Result<usize, ApiError> {
    let target = load_user(app, id).await?;
    guard_target(admin, &target)?;
    if id == admin.user_id() {
        return Err(ApiError::conflict(
            "you cannot delete your own account here",
        ));
    }
    let ended = app.accounts.soft_delete(id, Some(admin.user_id())).await?;
    app.sessions.evict_token_hashes(&ended).await;
    refresh(app, id);
    Ok(ended.len())
}

pub async fn restore(app: &App, admin: &AdminPrincipal, id: UserId) -> Result<(), ApiError> {
    let target = load_user(app, id).await?;
    guard_target(admin, &target)?;
    app.accounts.restore(id, Some(admin.user_id())).await?;
    refresh(app, id);
    Ok(())
}

pub async fn unlock(app: &App, admin: &AdminPrincipal, id: UserId) -> Result<(), ApiError> {
    let target = load_user(app, id).await?;
    guard_target(admin, &target)?;
    app.accounts.unlock(id, Some(admin.user_id())).await?;
    refresh(app, id);
    Ok(())
}

pub async fn reset_twofa(app: &App, admin: &AdminPrincipal, id: UserId) -> Result<(), ApiError> {
    let target = load_user(app, id).await?;
    guard_target(admin, &target)?;
    app.accounts.reset_twofa(id, Some(admin.user_id())).await?;
    refresh(app, id);
    Ok(())
}

pub async fn roles(app: &App, user: &UserRow) -> Result<(Vec<RoleRow>, Vec<String>), ApiError> {
    let rows = app.accounts.roles(user.id).await?;
    let effective = crate::accounts::effective_roles(user, &rows, app.now());
    Ok((rows, effective))
}

fn guard_role(admin: &AdminPrincipal, role: &str) -> Result<(), ApiError> {
    // Judged on the normalised name: `Admin` or ` ADMIN ` is the admin role.
    let role = crate::accounts::normalize_role(role);
    if PRIVILEGED_ROLES.contains(&role.as_str()) && !admin.is_superuser() {
        return Err(ApiError::forbidden(format!(
            "only a superuser may grant or revoke the {role} role"
        )));
    }
    Ok(())
}

pub async fn grant_role(
    app: &App,
    admin: &AdminPrincipal,
    id: UserId,
    role: &str,
    expires_at: Option<Ts>,
) -> Result<RoleRow, ApiError> {
    let target = load_user(app, id).await?;
    guard_target(admin, &target)?;
    guard_role(admin, role)?;
    let row = app
        .accounts
        .grant_role(id, role, expires_at, Some(admin.user_id()))
        .await?;
    refresh(app, id);
    Ok(row)
}

pub async fn revoke_role(
    app: &App,
    admin: &AdminPrincipal,
    id: UserId,
    role: &str,
) -> Result<(), ApiError> {
    let target = load_user(app, id).await?;
    guard_target(admin, &target)?;
    guard_role(admin, role)?;
    let role = &crate::accounts::normalize_role(role);
    let held = app
        .accounts
        .roles(id)
        .await?
        .iter()
        .any(|r| r.role_name == *role && r.is_active);
    if !held {
        return Err(ApiError::NotFound(format!(
            "the user does not hold the role {role:?}"
        )));
    }
    app.accounts
        .revoke_role(id, role, Some(admin.user_id()))
        .await?;
    refresh(app, id);
    Ok(())
}

async fn record_session_end(app: &App, owner: UserId, actor: UserId, what: String) {
    app.accounts
        .record(
            app.accounts
                .event(ActivityKind::SessionRevoked, Some(owner))
                .describe(what)
                .meta(serde_json::json!({ "actor": actor })),
        )
        .await;
}

/// Ends one session: its owner or an admin.
pub async fn end_session(
    app: &App,
    caller: &Principal,
    require_2fa: bool,
    sid: SessionId,
) -> Result<(), ApiError> {
    let not_found = || ApiError::NotFound("no such session".into());
    let row = app.store.session_by_id(sid).await?.ok_or_else(not_found)?;
    match caller.scope(row.user_id, require_2fa) {
        Ok(Scope::Admin(a)) => guard_target(&a, &load_user(app, row.user_id).await?)?,
        Ok(Scope::Own) => {}
        // Someone else's session: do not reveal that it exists.
        Err(_) => return Err(not_found()),
    }
    if !row.is_active || !app.sessions.end_by_id(sid).await? {
        return Err(ApiError::conflict("the session has already ended"));
    }
    record_session_end(
        app,
        row.user_id,
        caller.user_id(),
        format!("Session {sid} ended"),
    )
    .await;
    Ok(())
}

/// Signs a user out everywhere.
pub async fn end_all_sessions(
    app: &App,
    caller: &Principal,
    scope: &Scope,
    id: UserId,
) -> Result<usize, ApiError> {
    let target = load_user(app, id).await?;
    if let Scope::Admin(a) = scope {
        guard_target(a, &target)?;
    }
    let n = app.sessions.end_all_for_user(id, None).await?;
    record_session_end(
        app,
        id,
        caller.user_id(),
        format!("Signed out everywhere ({n} sessions)"),
    )
    .await;
    Ok(n)
}

pub async fn adjust_credits(
    app: &App,
    admin: &AdminPrincipal,
    id: UserId,
    delta: i64,
    reason: &str,
) -> Result<i64, ApiError> {
    let target = load_user(app, id).await?;
    guard_target(admin, &target)?;
    let balance = app
        .accounts
        .adjust_credits(id, delta, reason, Some(admin.user_id()))
        .await?;
    refresh(app, id);
    Ok(balance)
}
