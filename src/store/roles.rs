//! The `user_roles` table.

use std::collections::HashMap;

use serde::Serialize;

use super::events::{Change, ChangeKind, append_change, in_tx};
use super::{Backend, Store, StoreError, Ts, UserId, on_pool};

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
    /// Appends a change-feed event in the same transaction.
    pub async fn grant_role(
        &self,
        user: UserId,
        role: &str,
        granted_by: Option<UserId>,
        expires_at: Option<Ts>,
        now: Ts,
    ) -> Result<RoleRow, StoreError> {
        let change = Change::user(ChangeKind::RoleGranted, user).detail(role);
        let row = in_tx!(self, |tx| {
            let row = sqlx::query_as::<_, RoleRow>(
                "INSERT INTO user_roles (user_id, role_name, granted_at, granted_by, expires_at, \
                 is_active) VALUES ($1, $2, $3, $4, $5, TRUE) \
                 ON CONFLICT (user_id, role_name) DO UPDATE SET granted_at = excluded.granted_at, \
                 granted_by = excluded.granted_by, expires_at = excluded.expires_at, is_active = TRUE \
                 RETURNING user_id, role_name, granted_at, granted_by, expires_at, is_active",
            )
            .bind(user)
            .bind(role)
            .bind(now)
            .bind(granted_by)
            .bind(expires_at)
            .fetch_one(tx.conn())
            .await?;
            append_change!(tx, &change).await?;
            row
        })?;
        Ok(row)
    }

    /// Deactivates a role; returns whether the user held it. Appends a change-feed event in the
    /// same transaction.
    pub async fn revoke_role(&self, user: UserId, role: &str) -> Result<bool, StoreError> {
        let change = Change::user(ChangeKind::RoleRevoked, user).detail(role);
        let n = in_tx!(self, |tx| {
            let n = sqlx::query(
                "UPDATE user_roles SET is_active = FALSE WHERE user_id = $1 AND role_name = $2 \
                 AND is_active",
            )
            .bind(user)
            .bind(role)
            .execute(tx.conn())
            .await?
            .rows_affected();
            if n > 0 {
                append_change!(tx, &change).await?;
            }
            n
        })?;
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

    /// [`Store::roles_of`] for many users in one query (a listing's page, without a query per
    /// user). Every asked id is in the map, with no rows when the user holds no role.
    pub async fn roles_of_users(
        &self,
        ids: &[UserId],
    ) -> Result<HashMap<UserId, Vec<RoleRow>>, StoreError> {
        let mut by_user: HashMap<UserId, Vec<RoleRow>> =
            ids.iter().map(|&id| (id, Vec::new())).collect();
        if ids.is_empty() {
            return Ok(by_user);
        }
        // The ids travel as one JSON array parameter (SQLite has no array type), so the text
        // is the same for any number of ids and stays prepared.
        let among = match self.backend() {
            Backend::Sqlite => "user_id IN (SELECT value FROM json_each($1))",
            Backend::Postgres => {
                "user_id IN (SELECT value::bigint FROM jsonb_array_elements_text($1::jsonb))"
            }
        };
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT user_id, role_name, granted_at, granted_by, expires_at, is_active \
             FROM user_roles WHERE {among} ORDER BY user_id, role_name"
        ));
        let json = serde_json::Value::from(ids.iter().map(|id| id.0).collect::<Vec<i64>>());
        let rows = on_pool!(self, |p| sqlx::query_as::<_, RoleRow>(sql)
            .bind(json.to_string())
            .fetch_all(p)
            .await)?;
        for row in rows {
            by_user.entry(row.user_id).or_default().push(row);
        }
        Ok(by_user)
    }
}
