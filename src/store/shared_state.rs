//! The `throttle_counts` and `pending_logins` tables: what a multi-step flow needs between
//! requests, kept here rather than in one process's memory so that any instance can serve the
//! next step. Every count is one statement the database serialises per row.

use super::{Store, StoreError, Ts, UserId, execute, on_pool};

/// A pending two-factor sign-in as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingLoginRow {
    pub user_id: UserId,
    pub remember_me: bool,
    pub next_path: String,
    pub expires_at: Ts,
    pub attempts: i64,
    /// The external provider sign-in that opened the code step (all three or none).
    pub provider_id: Option<String>,
    pub provider_name: Option<String>,
    pub provider_subject: Option<String>,
    /// The first step was a passkey without user verification.
    pub passkey_first: bool,
}

/// A pending two-factor sign-in to store.
#[derive(Debug, Clone, Copy)]
pub struct NewPendingLogin<'a> {
    pub user_id: UserId,
    pub remember_me: bool,
    pub next_path: &'a str,
    pub provider_id: Option<&'a str>,
    pub provider_name: Option<&'a str>,
    pub provider_subject: Option<&'a str>,
    pub passkey_first: bool,
}

const PENDING_COLS: &str = "user_id, remember_me, next_path, expires_at, attempts, \
                            provider_id, provider_name, provider_subject, passkey_first";

impl Store {
    /// Counts one hit for `(scope, subject)` at `now` and returns the count in the current
    /// window. A window that is over (or lies in the future: the clock went back) starts again
    /// at `now` and lasts until `window_end`. One upsert, so hits from several instances at
    /// once are all counted.
    pub async fn throttle_hit(
        &self,
        scope: &str,
        subject: &str,
        now: Ts,
        window_end: Ts,
    ) -> Result<i64, StoreError> {
        // SET expressions see the row as it was before the update, on both backends.
        let hits: i64 = on_pool!(self, |p| {
            sqlx::query_scalar(
                "INSERT INTO throttle_counts (scope, subject, window_start, expires_at, hits) \
                 VALUES ($1, $2, $3, $4, 1) \
                 ON CONFLICT (scope, subject) DO UPDATE SET \
                   hits = CASE WHEN throttle_counts.expires_at <= $3 \
                     OR throttle_counts.window_start > $3 THEN 1 \
                     ELSE throttle_counts.hits + 1 END, \
                   window_start = CASE WHEN throttle_counts.expires_at <= $3 \
                     OR throttle_counts.window_start > $3 THEN $3 \
                     ELSE throttle_counts.window_start END, \
                   expires_at = CASE WHEN throttle_counts.expires_at <= $3 \
                     OR throttle_counts.window_start > $3 THEN $4 \
                     ELSE throttle_counts.expires_at END \
                 RETURNING hits",
            )
            .bind(scope)
            .bind(subject)
            .bind(now)
            .bind(window_end)
            .fetch_one(p)
            .await
        })?;
        Ok(hits)
    }

    /// The count of `(scope, subject)` in the window that holds `now` (0 when none does).
    pub async fn throttle_count(
        &self,
        scope: &str,
        subject: &str,
        now: Ts,
    ) -> Result<i64, StoreError> {
        let hits: Option<i64> = on_pool!(self, |p| {
            sqlx::query_scalar(
                "SELECT hits FROM throttle_counts WHERE scope = $1 AND subject = $2 \
                 AND window_start <= $3 AND expires_at > $3",
            )
            .bind(scope)
            .bind(subject)
            .bind(now)
            .fetch_optional(p)
            .await
        })?;
        Ok(hits.unwrap_or(0))
    }

    /// Takes back one hit (the attempt it counted turned out to succeed).
    pub async fn throttle_release(&self, scope: &str, subject: &str) -> Result<(), StoreError> {
        execute!(
            self,
            "UPDATE throttle_counts SET hits = hits - 1 \
             WHERE scope = $1 AND subject = $2 AND hits > 0",
            scope,
            subject
        )?;
        Ok(())
    }

    /// Stores a pending sign-in under the hash of its cookie value.
    pub async fn insert_pending_login(
        &self,
        token_hash: &str,
        p: &NewPendingLogin<'_>,
        now: Ts,
        expires_at: Ts,
    ) -> Result<(), StoreError> {
        execute!(
            self,
            "INSERT INTO pending_logins \
             (token_hash, user_id, remember_me, next_path, created_at, expires_at, attempts, \
              provider_id, provider_name, provider_subject, passkey_first) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9, $10)",
            token_hash,
            p.user_id,
            p.remember_me,
            p.next_path,
            now,
            expires_at,
            p.provider_id,
            p.provider_name,
            p.provider_subject,
            p.passkey_first
        )?;
        Ok(())
    }

    /// The pending sign-in with this hash, whatever its state.
    pub async fn pending_login(
        &self,
        token_hash: &str,
    ) -> Result<Option<PendingLoginRow>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {PENDING_COLS} FROM pending_logins WHERE token_hash = $1"
        ));
        let row = on_pool!(self, |p| sqlx::query_as::<_, PendingLoginRow>(sql)
            .bind(token_hash)
            .fetch_optional(p)
            .await)?;
        Ok(row)
    }

    /// Takes one code attempt of a pending sign-in that has not expired at `now` and has used
    /// fewer than `max_attempts`; returns it with the attempt counted, or `None` (unknown,
    /// expired or spent). One statement, so parallel guesses on any instances cannot exceed
    /// the limit.
    pub async fn reserve_pending_attempt(
        &self,
        token_hash: &str,
        now: Ts,
        max_attempts: i64,
    ) -> Result<Option<PendingLoginRow>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "UPDATE pending_logins SET attempts = attempts + 1 \
             WHERE token_hash = $1 AND expires_at >= $2 AND attempts < $3 \
             RETURNING {PENDING_COLS}"
        ));
        let row = on_pool!(self, |p| sqlx::query_as::<_, PendingLoginRow>(sql)
            .bind(token_hash)
            .bind(now)
            .bind(max_attempts)
            .fetch_optional(p)
            .await)?;
        Ok(row)
    }

    pub async fn delete_pending_login(&self, token_hash: &str) -> Result<(), StoreError> {
        execute!(
            self,
            "DELETE FROM pending_logins WHERE token_hash = $1",
            token_hash
        )?;
        Ok(())
    }

    /// Deletes throttle windows over at `now`, and pending sign-ins and provider sign-ins in
    /// progress (`oidc_flows`) expired before `pending_before`; returns how many rows went.
    pub async fn prune_shared_state(&self, now: Ts, pending_before: Ts) -> Result<u64, StoreError> {
        let a = execute!(
            self,
            "DELETE FROM throttle_counts WHERE expires_at <= $1",
            now
        )?;
        let b = execute!(
            self,
            "DELETE FROM pending_logins WHERE expires_at < $1",
            pending_before
        )?;
        let c = execute!(
            self,
            "DELETE FROM oidc_flows WHERE expires_at < $1",
            pending_before
        )?;
        Ok(a + b + c)
    }

    /// Rows in `throttle_counts` and `pending_logins` (for tests and diagnostics).
    pub async fn shared_state_rows(&self) -> Result<(i64, i64), StoreError> {
        let throttles: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM throttle_counts"
        )
        .fetch_one(p)
        .await)?;
        let pending: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM pending_logins"
        )
        .fetch_one(p)
        .await)?;
        Ok((throttles, pending))
    }
}
