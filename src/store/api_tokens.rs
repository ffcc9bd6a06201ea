//! The `api_tokens` table: bearer tokens for the admin API (the links mailed to users are in
//! `mailed_tokens`). `token_hash` holds SHA-256 of the token, hex-encoded; the token itself is
//! shown once at creation and never stored.

use serde::Serialize;

use super::events::{Change, ChangeKind, append_change, in_tx};
use super::{Store, StoreError, TokenId, Ts, UserId, on_pool};

/// A token row with its owner's username (every query joins `users`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TokenRow {
    pub id: TokenId,
    pub user_id: UserId,
    pub username: String,
    pub name: String,
    #[serde(skip)]
    pub token_hash: String,
    pub created_at: Ts,
    pub created_by: Option<UserId>,
    pub expires_at: Option<Ts>,
    pub last_used_at: Option<Ts>,
    pub revoked_at: Option<Ts>,
}

impl TokenRow {
    /// Not revoked and not past its expiry.
    pub fn is_live(&self, now: Ts) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

/// What creating a token needs; `token_hash` is already hashed.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub user_id: UserId,
    pub name: String,
    pub token_hash: String,
    pub created_by: Option<UserId>,
    pub expires_at: Option<Ts>,
}

const COLS: &str = "t.id, t.user_id, u.username, t.name, t.token_hash, t.created_at, t.created_by, \
    t.expires_at, t.last_used_at, t.revoked_at";

impl Store {
    pub async fn insert_token(&self, t: &NewToken, now: Ts) -> Result<TokenRow, StoreError> {
        let id: TokenId = on_pool!(self, |p| {
            sqlx::query_scalar(
            "INSERT INTO api_tokens (user_id, name, token_hash, created_at, created_by, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"
        )
        .bind(t.user_id)
        .bind(&t.name)
        .bind(&t.token_hash)
        .bind(now)
        .bind(t.created_by)
        .bind(t.expires_at)
        .fetch_one(p)
        .await
        })?;
        self.token_by_id(id).await?.ok_or(StoreError::NotFound)
    }

    pub async fn token_by_id(&self, id: TokenId) -> Result<Option<TokenRow>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1"
        ));
        let row = on_pool!(self, |p| sqlx::query_as::<_, TokenRow>(sql)
            .bind(id)
            .fetch_optional(p)
            .await)?;
        Ok(row)
    }

    /// The token with this hash, revoked or not (the caller judges).
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1"
        ));
        let row = on_pool!(self, |p| sqlx::query_as::<_, TokenRow>(sql)
            .bind(hash)
            .fetch_optional(p)
            .await)?;
        Ok(row)
    }

    /// Tokens, of one user or all, oldest first.
    pub async fn list_tokens(&self, user: Option<UserId>) -> Result<Vec<TokenRow>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE $1 IS NULL OR t.user_id = $1 ORDER BY t.id"
        ));
        let rows = on_pool!(self, |p| sqlx::query_as::<_, TokenRow>(sql)
            .bind(user)
            .fetch_all(p)
            .await)?;
        Ok(rows)
    }

    /// Revokes a token; returns its hash when it was not revoked before. Appends a change-feed
    /// event in the same transaction.
    pub async fn revoke_token(&self, id: TokenId, now: Ts) -> Result<Option<String>, StoreError> {
        let hash = in_tx!(self, |tx| {
            let revoked: Option<(String, UserId)> = sqlx::query_as(
                "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL \
                 RETURNING token_hash, user_id",
            )
            .bind(now)
            .bind(id)
            .fetch_optional(tx.conn())
            .await?;
            if let Some((hash, user)) = &revoked {
                let change = Change::token(ChangeKind::TokenRevoked, Some(*user), hash);
                append_change!(tx, &change).await?;
            }
            revoked.map(|(h, _)| h)
        })?;
        Ok(hash)
    }

    pub async fn touch_token(&self, id: TokenId, now: Ts) -> Result<(), StoreError> {
        on_pool!(self, |p| sqlx::query(
            "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2"
        )
        .bind(now)
        .bind(id)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}
