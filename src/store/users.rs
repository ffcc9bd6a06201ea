//! The `users` table: its row, the subscription tiers, and the reads by id, name or address.
//!
//! The table's other work lives beside it, split by what a caller does: `user_write` (creating
//! and changing accounts), `user_search` (the filtered, paged listing for admins) and
//! `login_attempts` (the counters reserved before a secret is checked).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, Ts, UserId, on_pool};

/// Subscription tiers, in the spec's order.
pub const TIERS: [&str; 4] = ["free", "beta", "premium", "enterprise"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Free,
    Beta,
    Premium,
    Enterprise,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Beta => "beta",
            Tier::Premium => "premium",
            Tier::Enterprise => "enterprise",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown subscription tier {0:?}; valid tiers are: free, beta, premium, enterprise")]
pub struct UnknownTier(pub String);

impl FromStr for Tier {
    type Err = UnknownTier;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "free" => Ok(Tier::Free),
            "beta" => Ok(Tier::Beta),
            "premium" => Ok(Tier::Premium),
            "enterprise" => Ok(Tier::Enterprise),
            _ => Err(UnknownTier(s.to_string())),
        }
    }
}

/// A full row of `users`. Holds secrets (hashes, encrypted TOTP secret): never serialise it to a
/// client; use the accounts layer's public view.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub password_hash: Option<String>,
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
    pub subscription_status: String,
    pub subscription_tier: String,
    pub credits_balance: i64,
    pub twofa_enabled: bool,
    pub twofa_secret: Option<String>,
    pub twofa_last_step: Option<i64>,
    pub twofa_recovery_codes: Option<String>,
    pub failed_login_attempts: i64,
    pub account_locked_until: Option<Ts>,
    pub password_reset_token: Option<String>,
    pub password_reset_expires_at: Option<Ts>,
    /// When the last reset mail was sent, for per-account rate limiting.
    pub password_reset_sent_at: Option<Ts>,
    pub email_verification_token: Option<String>,
    pub email_verification_expires_at: Option<Ts>,
    pub pending_email: Option<String>,
    pub email_notifications: bool,
    pub sms_notifications: bool,
    pub timezone: String,
    pub language: String,
    pub created_at: Ts,
    pub updated_at: Ts,
    pub deleted_at: Option<Ts>,
    pub last_login: Option<Ts>,
    pub last_login_ip: Option<String>,
    pub login_count: i64,
    pub password_changed_at: Option<Ts>,
    pub email_verified_at: Option<Ts>,
    pub legacy_lead_id: Option<String>,
}

impl UserRow {
    pub fn is_locked(&self, now: Ts) -> bool {
        self.account_locked_until.is_some_and(|t| t > now)
    }
}

impl Store {
    pub async fn user_by_id(&self, id: UserId) -> Result<Option<UserRow>, StoreError> {
        let row = on_pool!(self, |p| sqlx::query_as::<_, UserRow>(
            "SELECT * FROM users WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(p)
        .await)?;
        Ok(row)
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        let row = on_pool!(self, |p| sqlx::query_as::<_, UserRow>(
            "SELECT * FROM users WHERE lower(username) = lower($1)"
        )
        .bind(username)
        .fetch_optional(p)
        .await)?;
        Ok(row)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let row = on_pool!(self, |p| sqlx::query_as::<_, UserRow>(
            "SELECT * FROM users WHERE lower(email) = lower($1)"
        )
        .bind(email)
        .fetch_optional(p)
        .await)?;
        Ok(row)
    }

    /// Finds a user by username or email; a username match wins over an email match.
    pub async fn user_by_login(&self, login: &str) -> Result<Option<UserRow>, StoreError> {
        let row = on_pool!(self, |p| sqlx::query_as::<_, UserRow>(
            "SELECT * FROM users WHERE lower(username) = lower($1) OR lower(email) = lower($1) \
             ORDER BY CASE WHEN lower(username) = lower($1) THEN 0 ELSE 1 END LIMIT 1"
        )
        .bind(login)
        .fetch_optional(p)
        .await)?;
        Ok(row)
    }

    /// Whether a user (deleted ones included: their names stay taken) has this skeleton.
    pub async fn username_skeleton_taken(&self, skeleton: &str) -> Result<bool, StoreError> {
        let n: i64 = on_pool!(self, |p| {
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE username_skeleton = $1")
                .bind(skeleton)
                .fetch_one(p)
                .await
        })?;
        Ok(n > 0)
    }

    /// Up to `limit` users whose skeleton is not filled in yet: (id, username).
    pub async fn users_without_skeleton(
        &self,
        limit: i64,
    ) -> Result<Vec<(UserId, String)>, StoreError> {
        let rows: Vec<(UserId, String)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT id, username FROM users WHERE username_skeleton IS NULL ORDER BY id LIMIT $1",
            )
            .bind(limit)
            .fetch_all(p)
            .await
        })?;
        Ok(rows)
    }
}

/// `first last`, or whichever is present; `None` when neither is.
pub fn full_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = [first, last]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}
