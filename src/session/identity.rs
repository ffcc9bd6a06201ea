use crate::store::{RoleRow, Tier, Ts, UserId, UserRow};

/// Who a session belongs to, as the proxy tells the upstream app.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: UserId,
    pub username: String,
    pub email: String,
    pub full_name: Option<String>,
    pub tier: Option<Tier>,
    pub tier_name: String,
    pub is_admin: bool,
    pub is_superuser: bool,
    pub is_verified: bool,
    pub twofa_enabled: bool,
    /// Under `security.require_2fa_for_admins`: an admin whose session has not passed a
    /// two-factor step. Such a session holds no admin powers (see [`Identity::suspend_admin`])
    /// until the user enrols and signs in with a code.
    pub admin_suspended: bool,
    /// Explicit roles with their expiry; judged per request so an expiry takes effect on the
    /// next request without a reload.
    roles: Vec<(String, Option<Ts>)>,
}

impl Identity {
    pub fn new(user: &UserRow, roles: &[RoleRow]) -> Identity {
        let mut explicit: Vec<(String, Option<Ts>)> = roles
            .iter()
            .filter(|r| r.is_active)
            .map(|r| (r.role_name.clone(), r.expires_at))
            .collect();
        if user.is_admin || user.is_superuser {
            explicit.push(("admin".into(), None));
        }
        if user.is_superuser {
            explicit.push(("superuser".into(), None));
        }
        explicit.sort();
        explicit.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        Identity {
            user_id: user.id,
            username: user.username.clone(),
            email: user.email.clone(),
            full_name: user.full_name.clone(),
            tier: user.subscription_tier.parse().ok(),
            tier_name: user.subscription_tier.clone(),
            is_admin: user.is_admin || user.is_superuser,
            is_superuser: user.is_superuser,
            is_verified: user.is_verified,
            twofa_enabled: user.twofa_enabled,
            admin_suspended: false,
            roles: explicit,
        }
    }

    /// Whether the user is an admin: the `is_admin`/`is_superuser` flags or an `admin` or
    /// `superuser` role in force at `now`.
    pub fn is_admin_at(&self, now: Ts) -> bool {
        self.is_admin || self.has_any_role(&["admin".into(), "superuser".into()], now)
    }

    /// Drops every admin power from this identity (flags and the `admin`/`superuser` roles), so
    /// routes, identity headers and the admin console all treat the session as a plain user's.
    pub fn suspend_admin(&mut self) {
        self.is_admin = false;
        self.is_superuser = false;
        self.roles.retain(|(r, _)| r != "admin" && r != "superuser");
        self.admin_suspended = true;
    }

    /// Roles in force at `now`, sorted, without duplicates.
    pub fn roles_at(&self, now: Ts) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .roles
            .iter()
            .filter(|(_, exp)| exp.is_none_or(|e| e > now))
            .map(|(r, _)| r.as_str())
            .collect();
        v.dedup();
        v
    }

    pub fn has_any_role(&self, wanted: &[String], now: Ts) -> bool {
        self.roles
            .iter()
            .any(|(r, exp)| exp.is_none_or(|e| e > now) && wanted.iter().any(|w| w == r))
    }
}
