//! A user's own sessions: the list the account page and the admin API show, and revoking one
//! of them only when it is theirs.

use super::SessionService;
use crate::store::{SessionId, SessionRow, StoreError, Ts, UserId};

impl SessionService {
    /// The user's live sessions at `now`, newest first.
    pub async fn sessions_of_user(
        &self,
        user: UserId,
        now: Ts,
    ) -> Result<Vec<SessionRow>, StoreError> {
        self.inner.store.sessions_of(user, now).await
    }

    /// Ends session `id` if it belongs to `user`. `false` when it does not exist or is someone
    /// else's: the caller answers both alike, so ids cannot be probed.
    pub async fn revoke_owned(&self, user: UserId, id: SessionId) -> Result<bool, StoreError> {
        match self.inner.store.session_by_id(id).await? {
            Some(row) if row.user_id == user => self.end_by_id(id).await,
            _ => Ok(false),
        }
    }
}
