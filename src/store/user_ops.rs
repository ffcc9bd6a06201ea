//! Single-statement updates of `users` for the admin API: credit adjustments that can never
//! overdraw, and clearing two-factor state.

use super::events::{Change, ChangeKind, append_change, in_tx};
use super::sessions::end_user_sessions;
use super::{SessionId, Store, StoreError, Ts, UserId, on_pool};

/// The outcome of [`Store::adjust_credits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditChange {
    /// Applied; the new balance.
    Applied(i64),
    /// Refused: the balance would go below zero (or the user does not exist; check).
    Refused,
}

impl Store {
    /// Adds `delta` (which may be negative) to the balance in one `UPDATE ... WHERE balance +
    /// delta >= 0`, so concurrent adjustments can never take the balance below zero.
    pub async fn adjust_credits(
        &self,
        id: UserId,
        delta: i64,
        now: Ts,
    ) -> Result<CreditChange, StoreError> {
        let balance: Option<i64> = on_pool!(self, |p| sqlx::query_scalar(
            "UPDATE users SET credits_balance = credits_balance + $1, updated_at = $2 \
             WHERE id = $3 AND credits_balance + $1 >= 0 RETURNING credits_balance"
        )
        .bind(delta)
        .bind(now)
        .bind(id)
        .fetch_optional(p)
        .await)?;
        Ok(balance.map_or(CreditChange::Refused, CreditChange::Applied))
    }

    /// Turns two-factor sign-in off (an admin's reset): clears the flag, the secret, the
    /// recovery codes and the last used step, and ends the user's sessions, in one transaction
    /// with its change-feed event. Returns whether the user exists.
    pub async fn reset_twofa(&self, id: UserId, now: Ts) -> Result<bool, StoreError> {
        let change = Change::user(ChangeKind::TwofaReset, id);
        let found = in_tx!(self, |tx| {
            let n = sqlx::query(
                "UPDATE users SET twofa_enabled = FALSE, twofa_secret = NULL, \
                 twofa_recovery_codes = NULL, twofa_last_step = NULL, updated_at = $1 WHERE id = $2",
            )
            .bind(now)
            .bind(id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if n > 0 {
                end_user_sessions!(tx, id, None::<SessionId>).await?;
                append_change!(tx, &change).await?;
            }
            n > 0
        })?;
        Ok(found)
    }
}
