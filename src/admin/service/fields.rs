//! Who may set which field of an account, and turning checked request bodies into account
//! changes. "Forbidden for this caller" is judged on the fields a typed body sets.

use super::super::error::ApiError;
use super::super::principal::Scope;
use super::super::views::{NewUserBody, UserPatchBody};
use crate::accounts::NewAccount;
use crate::config::Secret;
use crate::store::{Tier, UserPatch, UserRow};

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

/// Refuses (422) a patch that names unknown fields or sets fields above the caller's level,
/// naming all of them at once.
pub fn check_patch(
    scope: &Scope,
    target: &UserRow,
    body: &UserPatchBody,
    mut unknown: Vec<String>,
) -> Result<(), ApiError> {
    let admin = matches!(scope, Scope::Admin(_));
    let superuser = matches!(scope, Scope::Admin(a) if a.is_superuser());
    let on_self = scope.actor(target.id) == target.id;
    let forbidden: Vec<String> = body
        .fields_set()
        .into_iter()
        .filter(|f| {
            let allowed = SELF_FIELDS.contains(f)
                || (ADMIN_FIELDS.contains(f) && admin)
                || (SUPERUSER_FIELDS.contains(f) && superuser);
            !allowed || (on_self && NOT_ON_SELF.contains(f))
        })
        .map(str::to_string)
        .collect();
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

/// Refuses (422) a new account with admin flags from a caller who is not a superuser.
pub fn check_new_user(body: &NewUserBody, superuser: bool) -> Result<(), ApiError> {
    let forbidden: Vec<String> = [
        ("is_admin", body.is_admin),
        ("is_superuser", body.is_superuser),
    ]
    .into_iter()
    .filter(|(_, v)| *v == Some(true))
    .map(|(f, _)| f.to_string())
    .collect();
    if forbidden.is_empty() || superuser {
        return Ok(());
    }
    Err(ApiError::unprocessable(
        format!("only a superuser may set: {}", forbidden.join(", ")),
        forbidden,
    ))
}

/// The store's patch from a checked body; values out of range are refused naming their field.
pub fn patch_from(body: UserPatchBody) -> Result<UserPatch, ApiError> {
    Ok(UserPatch {
        first_name: body
            .first_name
            .map(|v| text("first_name", v, 100))
            .transpose()?,
        last_name: body
            .last_name
            .map(|v| text("last_name", v, 100))
            .transpose()?,
        phone: body.phone.map(|v| text("phone", v, 40)).transpose()?,
        company_name: body
            .company_name
            .map(|v| text("company_name", v, 200))
            .transpose()?,
        email_notifications: body.email_notifications,
        sms_notifications: body.sms_notifications,
        timezone: body.timezone,
        is_active: body.is_active,
        is_verified: body.is_verified,
        subscription_status: body
            .subscription_status
            .map(|s| subscription_status(&s))
            .transpose()?,
        subscription_tier: body.subscription_tier.map(|t| tier(&t)).transpose()?,
        credits_balance: body.credits_balance,
        is_admin: body.is_admin,
        is_superuser: body.is_superuser,
        ..UserPatch::default()
    })
}

/// The new account from a checked body.
pub fn new_account_from(body: NewUserBody) -> Result<NewAccount, ApiError> {
    let mut a = NewAccount::new(body.username, body.email, body.password.map(Secret::new));
    a.first_name = text("first_name", body.first_name, 100)?;
    a.last_name = text("last_name", body.last_name, 100)?;
    a.phone = text("phone", body.phone, 40)?;
    a.company_name = text("company_name", body.company_name, 200)?;
    if let Some(t) = body.subscription_tier {
        a.tier = tier(&t)?;
    }
    a.is_verified = body.is_verified.unwrap_or(false);
    a.is_admin = body.is_admin.unwrap_or(false);
    a.is_superuser = body.is_superuser.unwrap_or(false);
    Ok(a)
}

/// A text field: trimmed, blank → `None`, at most `max` characters, no control characters.
fn text(field: &str, v: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    let Some(s) = v else { return Ok(None) };
    let t = s.trim();
    if t.chars().count() > max || t.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {max} characters without control characters"),
        ));
    }
    Ok((!t.is_empty()).then(|| t.to_string()))
}

fn tier(t: &str) -> Result<Tier, ApiError> {
    t.parse::<Tier>()
        .map_err(|e| ApiError::invalid("subscription_tier", e))
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

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;
    use utoipa::openapi::{RefOr, schema::Schema};

    use super::*;

    /// The field tiers cover exactly the fields the PATCH body (and its OpenAPI schema) has.
    #[test]
    fn field_tiers_match_the_patch_schema() {
        let RefOr::T(Schema::Object(o)) = UserPatchBody::schema() else {
            panic!("UserPatchBody is not an object schema");
        };
        let mut schema: Vec<&str> = o.properties.keys().map(String::as_str).collect();
        let mut tiers: Vec<&str> = SELF_FIELDS
            .iter()
            .chain(&ADMIN_FIELDS)
            .chain(&SUPERUSER_FIELDS)
            .copied()
            .collect();
        schema.sort_unstable();
        tiers.sort_unstable();
        assert_eq!(schema, tiers);
    }
}
