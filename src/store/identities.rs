//! The `user_identities` table: subjects at external OpenID Connect providers linked to users.

use serde::Serialize;

use super::{Store, StoreError, Ts, UserId, execute, on_pool};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct IdentityRow {
    pub user_id: UserId,
    pub provider: String,
    pub subject: String,
    /// The address the provider gave when the link was made.
    pub email: Option<String>,
    pub linked_at: Ts,
    pub last_used_at: Option<Ts>,
}

impl Store {
    /// The link for a provider's subject, if any.
    pub async fn identity_by_subject(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<IdentityRow>, StoreError> {
        let row = on_pool!(self, |p| {
            sqlx::query_as::<_, IdentityRow>(
                "SELECT user_id, provider, subject, email, linked_at, last_used_at \
                 FROM user_identities WHERE provider = $1 AND subject = $2",
            )
            .bind(provider)
            .bind(subject)
            .fetch_optional(p)
            .await
        })?;
        Ok(row)
    }

    /// Every provider a user has linked, by provider id.
    pub async fn identities_of(&self, user: UserId) -> Result<Vec<IdentityRow>, StoreError> {
        let rows = on_pool!(self, |p| {
            sqlx::query_as::<_, IdentityRow>(
                "SELECT user_id, provider, subject, email, linked_at, last_used_at \
                 FROM user_identities WHERE user_id = $1 ORDER BY provider",
            )
            .bind(user)
            .fetch_all(p)
            .await
        })?;
        Ok(rows)
    }

    /// Links a subject to a user; `false` when the subject is already linked (to anyone) or
    /// the user already has a link with this provider.
    pub async fn link_identity(
        &self,
        user: UserId,
        provider: &str,
        subject: &str,
        email: Option<&str>,
        now: Ts,
    ) -> Result<bool, StoreError> {
        let n = execute!(
            self,
            "INSERT INTO user_identities (user_id, provider, subject, email, linked_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT DO NOTHING",
            user,
            provider,
            subject,
            email,
            now
        )?;
        Ok(n > 0)
    }

    pub async fn touch_identity(
        &self,
        provider: &str,
        subject: &str,
        now: Ts,
    ) -> Result<(), StoreError> {
        execute!(
            self,
            "UPDATE user_identities SET last_used_at = $1 WHERE provider = $2 AND subject = $3",
            now,
            provider,
            subject
        )?;
        Ok(())
    }

    /// Removes a user's link with a provider; returns whether there was one.
    pub async fn unlink_identity(&self, user: UserId, provider: &str) -> Result<bool, StoreError> {
        let n = execute!(
            self,
            "DELETE FROM user_identities WHERE user_id = $1 AND provider = $2",
            user,
            provider
        )?;
        Ok(n > 0)
    }
}

/// A provider sign-in in progress, as stored in `oidc_flows`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OidcFlowRow {
    pub provider: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub next_path: String,
    pub link_user_id: Option<UserId>,
    pub created_at: Ts,
    pub expires_at: Ts,
}

impl Store {
    /// Stores a provider sign-in in progress under the hash of its cookie value.
    pub async fn insert_oidc_flow(
        &self,
        token_hash: &str,
        f: &OidcFlowRow,
    ) -> Result<(), StoreError> {
        execute!(
            self,
            "INSERT INTO oidc_flows (token_hash, provider, state, nonce, pkce_verifier, \
             next_path, link_user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            token_hash,
            &f.provider,
            &f.state,
            &f.nonce,
            &f.pkce_verifier,
            &f.next_path,
            f.link_user_id,
            f.created_at,
            f.expires_at
        )?;
        Ok(())
    }

    /// Takes (deletes and returns) the flow with this hash, whatever its state. One statement,
    /// so of two callbacks with the same cookie, on any instances, only one gets the flow.
    pub async fn take_oidc_flow(
        &self,
        token_hash: &str,
    ) -> Result<Option<OidcFlowRow>, StoreError> {
        let row = on_pool!(self, |p| {
            sqlx::query_as::<_, OidcFlowRow>(
                "DELETE FROM oidc_flows WHERE token_hash = $1 \
                 RETURNING provider, state, nonce, pkce_verifier, next_path, link_user_id, \
                 created_at, expires_at",
            )
            .bind(token_hash)
            .fetch_optional(p)
            .await
        })?;
        Ok(row)
    }

    /// Rows in `oidc_flows` (for tests and diagnostics).
    pub async fn oidc_flow_rows(&self) -> Result<i64, StoreError> {
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM oidc_flows"
        )
        .fetch_one(p)
        .await)?;
        Ok(n)
    }
}
