//! Roles granted by name, optionally until a time; the roles in force are those rows still
//! valid plus the implicit `admin` / `superuser` from the user's flags.

use super::{AccountError, Accounts, effective_roles, validate};
use crate::audit::ActivityKind;
use crate::store::{RoleRow, Ts, UserId, UserRow};

impl Accounts {
    pub async fn grant_role(
        &self,
        id: UserId,
        role: &str,
        expires_at: Option<Ts>,
        granted_by: Option<UserId>,
    ) -> Result<RoleRow, AccountError> {
        let role = validate::role_name(role)?;
        let now = self.now();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(AccountError::Invalid {
                field: "expires_at",
                message: "must be in the future".into(),
            });
        }
        self.get(id).await?.ok_or(AccountError::NotFound)?;
        let row = self
            .inner
            .store
            .grant_role(id, &role, granted_by, expires_at, now)
            .await?;
        self.record(
            self.event(ActivityKind::RoleGranted, Some(id))
                .describe(format!("Role {role} granted"))
                .meta(serde_json::json!({ "role": role, "expires_at": expires_at, "actor": granted_by })),
        )
        .await;
        Ok(row)
    }

    pub async fn revoke_role(
        &self,
        id: UserId,
        role: &str,
        actor: Option<UserId>,
    ) -> Result<(), AccountError> {
        let role = &validate::normalize_role(role);
        if !self.inner.store.revoke_role(id, role).await? {
            return Err(AccountError::Invalid {
                field: "role",
                message: format!("user does not hold role {role:?}"),
            });
        }
        self.record(
            self.event(ActivityKind::RoleRevoked, Some(id))
                .describe(format!("Role {role} revoked"))
                .meta(serde_json::json!({ "role": role, "actor": actor })),
        )
        .await;
        Ok(())
    }

    pub async fn roles(&self, id: UserId) -> Result<Vec<RoleRow>, AccountError> {
        Ok(self.inner.store.roles_of(id).await?)
    }

    /// Roles in force now, including the implicit `admin` / `superuser` from the user's flags.
    pub async fn effective_roles(&self, user: &UserRow) -> Result<Vec<String>, AccountError> {
        let rows = self.roles(user.id).await?;
        Ok(effective_roles(user, &rows, self.now()))
    }
}
