//! The `user_roles` table.

use serde::Serialize;

use super::{Store, StoreError, Ts, UserId, execute, on_pool};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RoleRow {
    pub user_id: UserId,
    pub role_name: String,
    pub granted_at: Ts,
    pub granted_by: Option<UserId>,
    pub expires_at: Option<Ts>,
    pub is_active: bool,
}

impl RoleRow {
    pub fn in_force(&self, now: Ts) -> bool {
        self.is_active && self.expires_at.is_none_or(|e| e > now)
    }
}

impl Store {
    /// Grants a role, or renews it (new expiry, grantor, active again) when the user had it.
    pub async fn grant_role(
        &self,
        user: UserId,
        role: &str,
        granted_by: Option<UserId>,
        expires_at: Option<Ts>,
        now: Ts,
    ) -> Result<RoleRow, StoreError> {
        let row = on_pool!(self, |p| {
            sqlx::query_as::<_, RoleRow>(
            "INSERT INTO user_roles (user_id, role_name, granted_at, granted_by, expires_at, is_active) \
             VALUES ($1, $2, $3, $4, $5, TRUE) \
             ON CONFLICT (user_id, role_name) DO UPDATE SET granted_at = excluded.granted_at, \
             granted_by = excluded.granted_by, expires_at = excluded.expires_at, is_active = TRUE \
             RETURNING user_id, role_name, granted_at, granted_by, expires_at, is_active"
        )
        .bind(user)
        .bind(role)
        .bind(now)
        .bind(granted_by)
        .bind(expires_at)
        .fetch_one(p)
        .await
        })?;
        Ok(row)
    }

    /// Deactivates a role; returns whether the user held it.
    pub async fn revoke_role(&self, user: UserId, role: &str) -> Result<bool, StoreError> {
        let n = execute!(
            self,
            "UPDATE user_roles SET is_active = FALSE WHERE user_id = $1 AND role_name = $2 AND is_active",
            user,
            role
        )?;
        Ok(n > 0)
    }

    /// Every role row of a user, active or not, by name.
    pub async fn roles_of(&self, user: UserId) -> Result<Vec<RoleRow>, StoreError> {
        let rows = on_pool!(self, |p| {
            sqlx::query_as::<_, RoleRow>(
            "SELECT user_id, role_name, granted_at, granted_by, expires_at, is_active FROM user_roles \
             WHERE user_id = $1 ORDER BY role_name"
        )
        .bind(user)
        .fetch_all(p)
        .await
        })?;
        Ok(rows)
    }
}
