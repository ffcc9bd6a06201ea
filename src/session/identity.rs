use std::sync::OnceLock;

use http::HeaderValue;

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
    /// The identity headers' values, made on the first request that sends them; every later
    /// request of the session shares them.
    values: OnceLock<IdentityValues>,
}

/// Values of the identity headers (`None`: not a valid header value, the header is left
/// out).
#[derive(Debug, Clone)]
pub struct IdentityValues {
    pub user_id: Option<HeaderValue>,
    pub user: Option<HeaderValue>,
    pub email: Option<HeaderValue>,
    pub name: Option<HeaderValue>,
    pub tier: Option<HeaderValue>,
    pub admin: HeaderValue,
    pub verified: HeaderValue,
    /// The roles in force from `roles_from` until `roles_until` (the next expiry, if any).
    roles: Option<HeaderValue>,
    roles_from: Ts,
    roles_until: Option<Ts>,
}

fn value(s: &str) -> Option<HeaderValue> {
    // Values are UTF-8; bytes ≥ 0x80 are allowed in field values (obs-text). Control
    // characters are not, and cannot occur in validated account fields.
    HeaderValue::from_bytes(s.as_bytes()).ok()
}

fn flag(b: bool) -> HeaderValue {
    HeaderValue::from_static(if b { "true" } else { "false" })
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
            values: OnceLock::new(),
        }
    }

    /// The identity headers' values at `now`, built once per identity; the roles value is
    /// reused while no role in it has expired since.
    pub fn header_values(&self, now: Ts) -> (&IdentityValues, Option<HeaderValue>) {
        let v = self.values.get_or_init(|| IdentityValues {
            user_id: value(&self.user_id.to_string()),
            user: value(&self.username),
            email: value(&self.email),
            name: value(self.full_name.as_deref().unwrap_or("")),
            tier: value(&self.tier_name),
            admin: flag(self.is_admin),
            verified: flag(self.is_verified),
            roles: value(&self.roles_at(now).join(",")),
            roles_from: now,
            roles_until: self
                .roles
                .iter()
                .filter_map(|(_, exp)| *exp)
                .filter(|e| *e > now)
                .min(),
        });
        let roles = if now >= v.roles_from && v.roles_until.is_none_or(|u| now < u) {
            v.roles.clone()
        } else {
            value(&self.roles_at(now).join(","))
        };
        (v, roles)
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
        self.values = OnceLock::new();
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
