//! Single-statement updates of `users` for the admin API: credit adjustments that can never
//! overdraw. (Clearing two-factor state lives with the other 2FA writes in `twofa.rs`.)

use super::{Store, StoreError, Ts, UserId, on_pool};

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
}
