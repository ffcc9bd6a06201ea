//! The numbers on the console's home page, and the lookups its lists need (roles in use,
//! usernames for ids).

use std::collections::HashMap;

use super::AdminOps;
use crate::admin::error::ApiError;
use crate::audit::ActivityKind;
use crate::store::{Ts, UserId, UserOverview};

/// Counts at a glance.
#[derive(Debug, Clone)]
pub struct Overview {
    pub users: UserOverview,
    /// Since when the sign-in counts run (24 hours ago).
    pub since: Ts,
    pub sign_ins: i64,
    pub sign_in_failures: i64,
}

impl AdminOps<'_> {
    pub async fn overview(&self) -> Result<Overview, ApiError> {
        let accounts = &self.app.accounts;
        let since = Ts(self.app.now().0 - chrono::Duration::hours(24));
        let login = ActivityKind::Login.as_str();
        let failed = ActivityKind::LoginFailed.as_str();
        let counts = accounts.activity_counts(&[login, failed], since).await?;
        let count = |t: &str| counts.iter().find(|(k, _)| k == t).map_or(0, |(_, n)| *n);
        Ok(Overview {
            users: accounts.overview().await?,
            since,
            sign_ins: count(login),
            sign_in_failures: count(failed),
        })
    }

    /// Roles someone holds now, sorted.
    pub async fn roles_in_use(&self) -> Result<Vec<String>, ApiError> {
        Ok(self.app.accounts.roles_in_use().await?)
    }

    /// Usernames by id for the given accounts.
    pub async fn usernames(&self, ids: &[UserId]) -> Result<HashMap<UserId, String>, ApiError> {
        let mut ids = ids.to_vec();
        ids.sort_unstable_by_key(|id| id.0);
        ids.dedup();
        Ok(self
            .app
            .accounts
            .usernames(&ids)
            .await?
            .into_iter()
            .collect())
    }
}
