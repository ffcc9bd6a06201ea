//! The `user_sessions` table. `session_token` holds SHA-256 of the cookie value, hex-encoded.

use serde::Serialize;

use super::events::{Change, ChangeKind, append_change, in_tx};
use super::{SessionId, Store, StoreError, Ts, UserId, execute, on_pool};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SessionRow {
    pub id: SessionId,
    pub user_id: UserId,
    #[serde(skip)]
    pub session_token: String,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: Ts,
    pub last_activity: Ts,
    pub expires_at: Ts,
    pub is_active: bool,
    pub twofa_verified: bool,
    pub remember_me: bool,
    /// 'pwd', 'pwd+hwk', 'hwk' or 'hwk+user' (see migration 0007).
    pub auth_method: String,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub user_id: UserId,
    pub token_hash: String,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub expires_at: Ts,
    pub twofa_verified: bool,
    pub remember_me: bool,
    pub auth_method: &'static str,
}

/// Inside a transaction (`&mut Transaction`): ends every active session of `$user` except
/// `$keep` (`Option<SessionId>`); evaluates to the ended token hashes.
macro_rules! end_user_sessions {
    ($tx:expr, $user:expr, $keep:expr) => {
        sqlx::query_scalar::<_, String>(
            "UPDATE user_sessions SET is_active = FALSE WHERE user_id = $1 AND is_active \
             AND id <> $2 RETURNING session_token",
        )
        .bind($user)
        .bind($keep.map_or(-1, |k: $crate::store::SessionId| k.0))
        .fetch_all($tx.conn())
    };
}
pub(crate) use end_user_sessions;

const COLS: &str = "id, user_id, session_token, ip_address, user_agent, created_at, last_activity, \
    expires_at, is_active, twofa_verified, remember_me, auth_method";

impl Store {
    pub async fn insert_session(&self, s: &NewSession, now: Ts) -> Result<SessionRow, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "INSERT INTO user_sessions (user_id, session_token, ip_address, user_agent, created_at, \
             last_activity, expires_at, is_active, twofa_verified, remember_me, auth_method) \
             VALUES ($1, $2, $3, $4, $5, $5, $6, TRUE, $7, $8, $9) RETURNING {COLS}"
        ));
        let row = on_pool!(self, |p| sqlx::query_as::<_, SessionRow>(sql)
            .bind(s.user_id)
            .bind(&s.token_hash)
            .bind(&s.ip_address)
            .bind(&s.user_agent)
            .bind(now)
            .bind(s.expires_at)
            .bind(s.twofa_verified)
            .bind(s.remember_me)
            .bind(s.auth_method)
            .fetch_one(p)
            .await)?;
        Ok(row)
    }

    /// The active session with this token hash, if any (expiry is the caller's to judge).
    pub async fn session_by_token_hash(
        &self,
        hash: &str,
    ) -> Result<Option<SessionRow>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM user_sessions WHERE session_token = $1 AND is_active"
        ));
        let row = on_pool!(self, |p| sqlx::query_as::<_, SessionRow>(sql)
            .bind(hash)
            .fetch_optional(p)
            .await)?;
        Ok(row)
    }

    pub async fn session_by_id(&self, id: SessionId) -> Result<Option<SessionRow>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM user_sessions WHERE id = $1"));
        let row = on_pool!(self, |p| sqlx::query_as::<_, SessionRow>(sql)
            .bind(id)
            .fetch_optional(p)
            .await)?;
        Ok(row)
    }

    /// Active sessions of a user, newest first.
    pub async fn sessions_of(&self, user: UserId, now: Ts) -> Result<Vec<SessionRow>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM user_sessions WHERE user_id = $1 AND is_active AND expires_at > $2 \
             ORDER BY created_at DESC, id DESC"
        ));
        let rows = on_pool!(self, |p| sqlx::query_as::<_, SessionRow>(sql)
            .bind(user)
            .bind(now)
            .fetch_all(p)
            .await)?;
        Ok(rows)
    }

    /// Ends one session; returns its token hash when it was active. Appends a change-feed event
    /// in the same transaction.
    pub async fn end_session(&self, id: SessionId) -> Result<Option<String>, StoreError> {
        let hash = in_tx!(self, |tx| {
            let ended: Option<(String, UserId)> = sqlx::query_as(
                "UPDATE user_sessions SET is_active = FALSE WHERE id = $1 AND is_active \
                 RETURNING session_token, user_id",
            )
            .bind(id)
            .fetch_optional(tx.conn())
            .await?;
            if let Some((hash, user)) = &ended {
                let change = Change::token(ChangeKind::SessionEnded, Some(*user), hash);
                append_change!(tx, &change).await?;
            }
            ended.map(|(h, _)| h)
        })?;
        Ok(hash)
    }

    /// Ends every active session of a user except `keep`; returns the ended token hashes.
    /// Appends a change-feed event in the same transaction when any ended.
    pub async fn end_sessions_of(
        &self,
        user: UserId,
        keep: Option<SessionId>,
    ) -> Result<Vec<String>, StoreError> {
        let hashes = in_tx!(self, |tx| {
            let hashes = end_user_sessions!(tx, user, keep).await?;
            if !hashes.is_empty() {
                let change = Change::user(ChangeKind::SessionsEnded, user);
                append_change!(tx, &change).await?;
            }
            hashes
        })?;
        Ok(hashes)
    }

    /// Writes back `last_activity` for many sessions at once (one transaction).
    pub async fn touch_sessions(&self, touches: &[(SessionId, Ts)]) -> Result<(), StoreError> {
        if touches.is_empty() {
            return Ok(());
        }
        in_tx!(self, |tx| {
            for (id, at) in touches {
                sqlx::query(
                    "UPDATE user_sessions SET last_activity = $1 WHERE id = $2 AND last_activity < $1",
                )
                .bind(*at)
                .bind(*id)
                .execute(tx.conn())
                .await?;
            }
        })?;
        Ok(())
    }

    /// Marks sessions past their expiry inactive; returns how many.
    pub async fn expire_sessions(&self, now: Ts) -> Result<u64, StoreError> {
        let n = execute!(
            self,
            "UPDATE user_sessions SET is_active = FALSE WHERE is_active AND expires_at <= $1",
            now
        )?;
        Ok(n)
    }
}
