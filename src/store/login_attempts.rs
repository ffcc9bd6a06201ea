//! The per-account attempt counters on `users` (`failed_login_attempts`,
//! `failed_twofa_attempts`) and the lock they lead to.
//!
//! An attempt is reserved before the secret is checked, in one statement the database
//! serialises per row, so concurrent guesses on any instance cannot all pass a lock check made
//! earlier; a success gives the slots back.

use super::{Store, StoreError, Ts, UserId, execute, on_pool};

impl Store {
    /// Takes one password attempt for the account before the password is checked, so that
    /// concurrent guesses cannot all pass a lock check made earlier: one statement that the
    /// database serialises per row. Refused (`None`) while the account is locked. The slot that
    /// reaches `threshold` sets `account_locked_until = lock_until` in the same statement, so
    /// at most `threshold` attempts are ever verified per lockout. An expired lock starts the
    /// count afresh. A successful sign-in gives the slots back ([`Store::record_login_success`]).
    /// Returns the attempt's number (1-based); `threshold` means this attempt locked.
    pub async fn reserve_login_attempt(
        &self,
        id: UserId,
        threshold: i64,
        now: Ts,
        lock_until: Ts,
    ) -> Result<Option<i64>, StoreError> {
        self.reserve_attempt(AttemptCounter::Password, id, threshold, now, lock_until)
            .await
    }

    /// Takes one second-factor attempt for the account before the code is checked: the same
    /// statement as [`Store::reserve_login_attempt`] over `failed_twofa_attempts`, shared by
    /// every pending sign-in and instance. `None` while the account is locked; the slot that
    /// reaches `budget` locks it until `lock_until`.
    pub async fn reserve_twofa_attempt(
        &self,
        id: UserId,
        budget: i64,
        now: Ts,
        lock_until: Ts,
    ) -> Result<Option<i64>, StoreError> {
        self.reserve_attempt(AttemptCounter::SecondFactor, id, budget, now, lock_until)
            .await
    }

    async fn reserve_attempt(
        &self,
        counter: AttemptCounter,
        id: UserId,
        limit: i64,
        now: Ts,
        lock_until: Ts,
    ) -> Result<Option<i64>, StoreError> {
        // `base` is the count before this attempt: 0 after an expired lock (or a count left
        // at the limit without a lock, which only imported data can hold).
        let c = counter.column();
        let base = format!(
            "(CASE WHEN account_locked_until IS NOT NULL OR {c} >= $1 THEN 0 ELSE {c} END)"
        );
        // Built from a fixed column name only: nothing a caller passes reaches the text.
        let sql = format!(
            "UPDATE users SET \
               account_locked_until = CASE WHEN {base} + 1 >= $1 THEN $2 ELSE NULL END, \
               {c} = {base} + 1 \
             WHERE id = $3 AND (account_locked_until IS NULL OR account_locked_until <= $4) \
             RETURNING {c}"
        );
        let attempt: Option<i64> = on_pool!(self, |p| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
                .bind(limit)
                .bind(lock_until)
                .bind(id)
                .bind(now)
                .fetch_optional(p)
                .await
        })?;
        Ok(attempt)
    }

    /// Gives back the second-factor slots after a right code, lifting the lock only if it is
    /// the one this attempt's reservation set (`set_lock`), not a lock made since.
    pub async fn release_twofa_attempts(
        &self,
        id: UserId,
        set_lock: Option<Ts>,
    ) -> Result<(), StoreError> {
        execute!(
            self,
            "UPDATE users SET failed_twofa_attempts = 0, account_locked_until = \
               CASE WHEN account_locked_until = $1 THEN NULL ELSE account_locked_until END \
             WHERE id = $2",
            set_lock,
            id
        )?;
        Ok(())
    }

    /// Records a successful sign-in; `rehash` replaces the stored hash (legacy or outdated).
    pub async fn record_login_success(
        &self,
        id: UserId,
        now: Ts,
        ip: Option<&str>,
        rehash: Option<&str>,
    ) -> Result<(), StoreError> {
        on_pool!(self, |p| {
            sqlx::query(
            "UPDATE users SET failed_login_attempts = 0, account_locked_until = NULL, last_login = $1, \
             last_login_ip = $2, login_count = login_count + 1, \
             password_hash = COALESCE($3, password_hash) WHERE id = $4"
        )
        .bind(now)
        .bind(ip)
        .bind(rehash)
        .bind(id)
        .execute(p)
        .await
        .map(|_| ())
        })?;
        Ok(())
    }
}

/// The per-account counters that are reserved before a secret is checked.
#[derive(Debug, Clone, Copy)]
enum AttemptCounter {
    Password,
    SecondFactor,
}

impl AttemptCounter {
    fn column(self) -> &'static str {
        match self {
            AttemptCounter::Password => "failed_login_attempts",
            AttemptCounter::SecondFactor => "failed_twofa_attempts",
        }
    }
}
