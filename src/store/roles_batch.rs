//! The roles of many users in one query, for listings (no query per listed user).

use std::collections::HashMap;

use super::{RoleRow, Store, StoreError, UserId, on_pool};

impl Store {
    /// Every role row of each of `users`, by name; users without roles are absent from the map.
    pub async fn roles_of_users(
        &self,
        users: &[UserId],
    ) -> Result<HashMap<UserId, Vec<RoleRow>>, StoreError> {
        let mut by_user: HashMap<UserId, Vec<RoleRow>> = HashMap::new();
        if users.is_empty() {
            return Ok(by_user);
        }
        let rows: Vec<RoleRow> = on_pool!(self, |p| {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT user_id, role_name, granted_at, granted_by, expires_at, is_active \
                 FROM user_roles WHERE user_id IN (",
            );
            let mut ids = q.separated(", ");
            for id in users {
                ids.push_bind(*id);
            }
            q.push(") ORDER BY user_id, role_name");
            q.build_query_as::<RoleRow>().fetch_all(p).await
        })?;
        for r in rows {
            by_user.entry(r.user_id).or_default().push(r);
        }
        Ok(by_user)
    }
}
