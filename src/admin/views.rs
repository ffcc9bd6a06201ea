//! The JSON shapes of the admin API: request bodies and responses. They derive their OpenAPI
//! schemas, so the document at `/_auth/api/openapi.json` is generated from these types, and
//! request bodies are parsed into the same types (`api::input::body`): one schema serves both.
//! Field names are a contract.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::accounts::UserView;
use crate::store::{ActivityRow, RoleRow, SessionRow, Ts, UserId};

/// Every error: a stable code, a message for people, and the fields it concerns (if any).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// `bad_request`, `unauthenticated`, `forbidden`, `csrf_failed`, `not_found`,
    /// `method_not_allowed`, `conflict`, `payload_too_large`, `unsupported_media_type`,
    /// `validation_failed`, `too_many_requests`, `unavailable` or `internal`.
    pub error: String,
    pub message: String,
    /// The request fields the error is about (unknown, forbidden or invalid ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub fields: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserEnvelope {
    pub user: UserView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserView>,
    /// How many users match the filters in all.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    /// The `offset` of the next page; `null` on the last page.
    pub next_offset: Option<i64>,
}

/// Filters for `GET /_auth/api/users`. Unknown parameters are refused (422).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// Matches username, email, full name or company (case-insensitive substring).
    pub q: Option<String>,
    pub is_active: Option<bool>,
    /// `free`, `beta`, `premium` or `enterprise`.
    #[param(inline, value_type = Option<TierName>)]
    pub tier: Option<String>,
    /// Users holding this role now (`admin` includes the `is_admin` flag).
    pub role: Option<String>,
    pub verified: Option<bool>,
    /// `true` lists soft-deleted users instead of live ones.
    pub deleted: Option<bool>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// A subscription tier.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TierName {
    Free,
    Beta,
    Premium,
    Enterprise,
}

/// Fields `PATCH /_auth/api/users/{id}` accepts. A user may change the profile and
/// notification fields of their own account; an admin also the status, subscription and
/// credits fields; only a superuser `is_admin` and `is_superuser`. Any other field, or one the
/// caller may not change, is refused with 422 naming it.
/// A text field that is absent stays as it is; `null` (or blank text) clears it.
#[derive(Debug, Default, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatchBody {
    #[schema(max_length = 100)]
    #[serde(default, deserialize_with = "nullable")]
    pub first_name: Option<Option<String>>,
    #[schema(max_length = 100)]
    #[serde(default, deserialize_with = "nullable")]
    pub last_name: Option<Option<String>>,
    #[schema(max_length = 40)]
    #[serde(default, deserialize_with = "nullable")]
    pub phone: Option<Option<String>>,
    #[schema(max_length = 200)]
    #[serde(default, deserialize_with = "nullable")]
    pub company_name: Option<Option<String>>,
    pub email_notifications: Option<bool>,
    pub sms_notifications: Option<bool>,
    /// A zone name like `Europe/Berlin`.
    #[schema(pattern = "^[A-Za-z0-9/_+-]{1,64}$")]
    pub timezone: Option<String>,
    pub is_active: Option<bool>,
    pub is_verified: Option<bool>,
    #[schema(pattern = "^[a-z0-9_]{1,32}$")]
    pub subscription_status: Option<String>,
    #[schema(value_type = Option<TierName>)]
    pub subscription_tier: Option<String>,
    #[schema(minimum = 0)]
    pub credits_balance: Option<i64>,
    pub is_admin: Option<bool>,
    pub is_superuser: Option<bool>,
}

impl UserPatchBody {
    /// Names of the fields the body sets, sorted: what the caller asks to change.
    pub fn fields_set(&self) -> Vec<&'static str> {
        let set = [
            ("first_name", self.first_name.is_some()),
            ("last_name", self.last_name.is_some()),
            ("phone", self.phone.is_some()),
            ("company_name", self.company_name.is_some()),
            ("email_notifications", self.email_notifications.is_some()),
            ("sms_notifications", self.sms_notifications.is_some()),
            ("timezone", self.timezone.is_some()),
            ("is_active", self.is_active.is_some()),
            ("is_verified", self.is_verified.is_some()),
            ("subscription_status", self.subscription_status.is_some()),
            ("subscription_tier", self.subscription_tier.is_some()),
            ("credits_balance", self.credits_balance.is_some()),
            ("is_admin", self.is_admin.is_some()),
            ("is_superuser", self.is_superuser.is_some()),
        ];
        let mut names: Vec<&'static str> = set
            .into_iter()
            .filter(|(_, present)| *present)
            .map(|(name, _)| name)
            .collect();
        names.sort_unstable();
        names
    }
}

/// A present field's value, `null` included: `Some(None)` clears, an absent field stays `None`
/// (through `#[serde(default)]`).
fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// An RFC 3339 time or `null`, refused with the text that did not parse.
fn rfc3339_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ts>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s.trim())
            .map(|t| Some(Ts(t.with_timezone(&chrono::Utc))))
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not an RFC 3339 time"))),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserUpdated {
    pub success: bool,
    /// Names of the fields the request set.
    pub changed: Vec<String>,
    pub user: UserView,
}

/// `POST /_auth/api/users`. Without `password` the account is created without one and the user
/// sets it through the emailed link (see `set_password_mail` in the answer).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    /// Letters, digits, `.`, `_`, `-`; at most 64.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub username: String,
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// At least `security.min_password_length` characters, not a common password.
    #[schema(min_length = 12, max_length = 1024)]
    pub password: Option<String>,
    #[schema(max_length = 100)]
    pub first_name: Option<String>,
    #[schema(max_length = 100)]
    pub last_name: Option<String>,
    #[schema(max_length = 40)]
    pub phone: Option<String>,
    #[schema(max_length = 200)]
    pub company_name: Option<String>,
    #[schema(value_type = Option<TierName>)]
    pub subscription_tier: Option<String>,
    pub is_verified: Option<bool>,
    /// Superusers only.
    pub is_admin: Option<bool>,
    /// Superusers only.
    pub is_superuser: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserCreated {
    pub user: UserView,
    pub password_set: bool,
    /// `not_needed` when a password was given; otherwise `sent`, or `pending` while this build
    /// has no mail hook (an admin then sets the password with `gatehouse user set-password`).
    pub set_password_mail: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Success {
    pub success: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsEnded {
    pub success: bool,
    pub sessions_ended: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleView {
    pub role: String,
    #[schema(value_type = String, format = DateTime)]
    pub granted_at: Ts,
    #[schema(value_type = Option<i64>)]
    pub granted_by: Option<UserId>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Ts>,
    pub is_active: bool,
    /// Active and not expired now.
    pub in_force: bool,
}

impl RoleView {
    pub fn new(r: &RoleRow, now: Ts) -> RoleView {
        RoleView {
            role: r.role_name.clone(),
            granted_at: r.granted_at,
            granted_by: r.granted_by,
            expires_at: r.expires_at,
            is_active: r.is_active,
            in_force: r.in_force(now),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleList {
    #[schema(value_type = i64)]
    pub user_id: UserId,
    pub roles: Vec<RoleView>,
    /// Roles in force now, including `admin` / `superuser` implied by the account flags.
    pub effective: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleGranted {
    pub role: RoleView,
}

/// `POST /_auth/api/users/{id}/roles`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRoleBody {
    /// Letters, digits, `_`, `-`, `.`, `:`; at most 64. `admin` and `superuser` need a superuser.
    #[schema(pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    pub role: String,
    /// RFC 3339; in the future. `null` or absent: no expiry.
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, deserialize_with = "rfc3339_or_null")]
    pub expires_at: Option<Ts>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    #[schema(value_type = i64)]
    pub id: crate::store::SessionId,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Ts,
    #[schema(value_type = String, format = DateTime)]
    pub last_activity: Ts,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Ts,
    pub twofa_verified: bool,
    pub remember_me: bool,
    /// Whether this is the session making the request.
    pub current: bool,
}

impl SessionView {
    pub fn new(s: &SessionRow, current: Option<crate::store::SessionId>) -> SessionView {
        SessionView {
            id: s.id,
            ip_address: s.ip_address.clone(),
            user_agent: s.user_agent.clone(),
            created_at: s.created_at,
            last_activity: s.last_activity,
            expires_at: s.expires_at,
            twofa_verified: s.twofa_verified,
            remember_me: s.remember_me,
            current: current == Some(s.id),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

/// `POST /_auth/api/users/{id}/credits`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditsBody {
    /// Added to the balance; negative to spend. Never takes the balance below zero (409).
    #[schema(minimum = -1_000_000_000, maximum = 1_000_000_000)]
    pub delta: i64,
    /// Why, for the activity log (1 to 500 characters).
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreditsResult {
    #[schema(value_type = i64)]
    pub user_id: UserId,
    pub delta: i64,
    pub credits_balance: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityView {
    pub id: i64,
    #[schema(value_type = Option<i64>)]
    pub user_id: Option<UserId>,
    pub activity_type: String,
    pub activity_description: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    /// Context: the acting user (`actor`), changed field names, and so on. Never secrets.
    pub metadata: Option<serde_json::Value>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Ts,
}

impl From<ActivityRow> for ActivityView {
    fn from(r: ActivityRow) -> Self {
        ActivityView {
            id: r.id,
            user_id: r.user_id,
            activity_type: r.activity_type,
            activity_description: r.activity_description,
            ip_address: r.ip_address,
            user_agent: r.user_agent,
            metadata: r.metadata.map(|j| j.0),
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityPage {
    pub activity: Vec<ActivityView>,
    /// Pass as `before` for the next (older) page; `null` on the last page.
    pub next_before: Option<i64>,
}

/// Filters for the activity endpoints. Unknown parameters are refused (422).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// Only this `activity_type` (e.g. `login`, `profile_update`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub activity_type: Option<String>,
    /// From this time on (RFC 3339, inclusive).
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// Before this time (RFC 3339, exclusive).
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
    /// Only rows with an id below this: the `next_before` of the previous page.
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CsrfToken {
    /// Send as `X-CSRF-Token` on writes made with the browser session cookie.
    pub csrf_token: String,
}
