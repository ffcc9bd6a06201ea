//! What of a user may leave the server: no password hash, TOTP secret, recovery codes or token
//! columns, ever.

use serde::Serialize;

use super::{AccountError, Accounts};
use crate::store::{RoleRow, Ts, UserId, UserPatch, UserRow};

/// The public shape of a user (CLI `--json`, the admin API). Field names are a stable contract.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct UserView {
    #[schema(value_type = i64)]
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub full_name: Option<String>,
    pub phone: Option<String>,
    pub company_name: Option<String>,
    pub is_active: bool,
    pub is_verified: bool,
    pub is_admin: bool,
    pub is_superuser: bool,
    pub is_deleted: bool,
    pub is_locked: bool,
    pub subscription_status: String,
    pub subscription_tier: String,
    pub credits_balance: i64,
    pub twofa_enabled: bool,
    pub failed_login_attempts: i64,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub account_locked_until: Option<Ts>,
    pub email_notifications: bool,
    pub sms_notifications: bool,
    pub timezone: String,
    pub language: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Ts,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Ts,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deleted_at: Option<Ts>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_login: Option<Ts>,
    pub last_login_ip: Option<String>,
    pub login_count: i64,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub password_changed_at: Option<Ts>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub email_verified_at: Option<Ts>,
    pub legacy_lead_id: Option<String>,
    pub roles: Vec<String>,
}

impl UserView {
    pub fn new(u: &UserRow, roles: Vec<String>, now: Ts) -> UserView {
        UserView {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            full_name: u.full_name.clone(),
            phone: u.phone.clone(),
            company_name: u.company_name.clone(),
            is_active: u.is_active,
            is_verified: u.is_verified,
            is_admin: u.is_admin,
            is_superuser: u.is_superuser,
            is_deleted: u.is_deleted,
            is_locked: u.is_locked(now),
            subscription_status: u.subscription_status.clone(),
            subscription_tier: u.subscription_tier.clone(),
            credits_balance: u.credits_balance,
            twofa_enabled: u.twofa_enabled,
            failed_login_attempts: u.failed_login_attempts,
            account_locked_until: u.account_locked_until.filter(|t| *t > now),
            email_notifications: u.email_notifications,
            sms_notifications: u.sms_notifications,
            timezone: u.timezone.clone(),
            language: u.language.clone(),
            created_at: u.created_at,
            updated_at: u.updated_at,
            deleted_at: u.deleted_at,
            last_login: u.last_login,
            last_login_ip: u.last_login_ip.clone(),
            login_count: u.login_count,
            password_changed_at: u.password_changed_at,
            email_verified_at: u.email_verified_at,
            legacy_lead_id: u.legacy_lead_id.clone(),
            roles,
        }
    }
}

impl Accounts {
    /// The user as the CLI and admin API show them, with the roles in force now.
    pub async fn view(&self, user: &UserRow) -> Result<UserView, AccountError> {
        let roles = self.effective_roles(user).await?;
        Ok(UserView::new(user, roles, self.now()))
    }
}

/// Active, unexpired roles plus the implicit ones: `is_admin` → `admin`; `is_superuser` →
/// `superuser` and `admin`. Sorted and unique.
pub fn effective_roles(user: &UserRow, rows: &[RoleRow], now: Ts) -> Vec<String> {
    let mut roles: Vec<String> = rows
        .iter()
        .filter(|r| r.in_force(now))
        .map(|r| r.role_name.clone())
        .collect();
    if user.is_admin || user.is_superuser {
        roles.push("admin".into());
    }
    if user.is_superuser {
        roles.push("superuser".into());
    }
    roles.sort();
    roles.dedup();
    roles
}

/// Names of the columns a patch touches, for the activity log.
pub(super) fn patch_fields(p: &UserPatch) -> Vec<&'static str> {
    let mut f = Vec::new();
    let mut add = |present: bool, name: &'static str| {
        if present {
            f.push(name);
        }
    };
    add(p.email.is_some(), "email");
    add(p.first_name.is_some(), "first_name");
    add(p.last_name.is_some(), "last_name");
    add(p.phone.is_some(), "phone");
    add(p.company_name.is_some(), "company_name");
    add(p.email_notifications.is_some(), "email_notifications");
    add(p.sms_notifications.is_some(), "sms_notifications");
    add(p.timezone.is_some(), "timezone");
    add(p.language.is_some(), "language");
    add(p.is_active.is_some(), "is_active");
    add(p.is_verified.is_some(), "is_verified");
    add(p.is_admin.is_some(), "is_admin");
    add(p.is_superuser.is_some(), "is_superuser");
    add(p.subscription_status.is_some(), "subscription_status");
    add(p.subscription_tier.is_some(), "subscription_tier");
    add(p.credits_balance.is_some(), "credits_balance");
    f
}
