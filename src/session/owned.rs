//! A user's sessions as the account page and the admin surfaces see them: listing, and ending
//! one only when it belongs to the user named.

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

    /// Whose session `id` is (live or ended); `None` for an unknown id.
    pub async fn owner_of(&self, id: SessionId) -> Result<Option<UserId>, StoreError> {
        Ok(self.inner.store.session_by_id(id).await?.map(|s| s.user_id))
    }

    /// Ends session `id` if it is a live session of `user`, in force at once. `false` when it
    /// is not theirs, unknown, or already ended: the caller cannot tell someone else's session
    /// from none.
    pub async fn revoke_owned(&self, user: UserId, id: SessionId) -> Result<bool, StoreError> {
        match self.inner.store.session_by_id(id).await? {
            Some(s) if s.user_id == user && s.is_active => self.end_by_id(id).await,
            _ => Ok(false),
        }
    }
}
