//! Two-factor columns of `users`: the encrypted secret, the last used time step and the hashed
//! recovery codes. Every write that must happen at most once is one conditional `UPDATE`, so
//! two requests racing with the same code cannot both win.

use super::events::{Change, ChangeKind, append_change, in_tx};
use super::sessions::end_user_sessions;
use super::{SessionId, Store, StoreError, Ts, UserId, execute};

impl Store {
    /// Stores a not-yet-confirmed secret (enrolment in progress). Refused once 2FA is on.
    pub async fn set_twofa_pending_secret(
        &self,
        id: UserId,
        sealed: &str,
        now: Ts,
    ) -> Result<bool, StoreError> {
        let n = execute!(
            self,
            "UPDATE users SET twofa_secret = $1, updated_at = $2 WHERE id = $3 AND NOT twofa_enabled",
            sealed,
            now,
            id
        )?;
        Ok(n > 0)
    }

    /// Turns 2FA on with the pending secret, recording the step of the confirming code and the
    /// recovery code hashes (a JSON array). `false` when already on or the step was used.
    pub async fn enable_twofa(
        &self,
        id: UserId,
        step: i64,
        recovery_json: &str,
        now: Ts,
    ) -> Result<bool, StoreError> {
        let change = Change::user(ChangeKind::TwofaEnabled, id);
        let n = in_tx!(self, |tx| {
            let n = sqlx::query(
                "UPDATE users SET twofa_enabled = TRUE, twofa_last_step = $1, \
                 twofa_recovery_codes = $2, updated_at = $3 WHERE id = $4 AND NOT twofa_enabled \
                 AND twofa_secret IS NOT NULL AND (twofa_last_step IS NULL OR twofa_last_step < $1)",
            )
            .bind(step)
            .bind(recovery_json)
            .bind(now)
            .bind(id)
            .execute(tx.conn())
            .await?
            .rows_affected();
            if n > 0 {
                append_change!(tx, &change).await?;
            }
            n
        })?;
        Ok(n > 0)
    }

    /// Turns 2FA off and forgets the secret, the codes and the last step.
    pub async fn disable_twofa(&self, id: UserId, now: Ts) -> Result<bool, StoreError> {
        self.clear_twofa(id, now, ChangeKind::TwofaDisabled, false)
            .await
    }

    /// Turns two-factor sign-in off (an admin's reset): clears the flag, the secret, the
    /// recovery codes, the last used step and the passkeys, and ends the user's sessions, in one transaction
    /// with its change-feed event. Returns whether the user exists.
    pub async fn reset_twofa(&self, id: UserId, now: Ts) -> Result<bool, StoreError> {
        self.clear_twofa(id, now, ChangeKind::TwofaReset, true)
            .await
    }

    async fn clear_twofa(
        &self,
        id: UserId,
        now: Ts,
        kind: ChangeKind,
        end_sessions: bool,
    ) -> Result<bool, StoreError> {
        let change = Change::user(kind, id);
        let n = in_tx!(self, |tx| {
            let n = sqlx::query(
                "UPDATE users SET twofa_enabled = FALSE, twofa_secret = NULL, \
                 twofa_recovery_codes = NULL, twofa_last_step = NULL, updated_at = $1 WHERE id = $2",
            )
            .bind(now)
            .bind(id)
            .execute(tx.conn())
            .await?
            .rows_affected();
            if n > 0 {
                if end_sessions {
                    // An admin's reset takes every second factor away, passkeys included.
                    sqlx::query("DELETE FROM user_passkeys WHERE user_id = $1")
                        .bind(id)
                        .execute(tx.conn())
                        .await?;
                    end_user_sessions!(tx, id, None::<SessionId>).await?;
                }
                append_change!(tx, &change).await?;
            }
            n
        })?;
        Ok(n > 0)
    }

    /// Records `step` as used, if it is later than any step used before. `false` means the code
    /// was replayed (or an older code came after a newer one).
    pub async fn claim_totp_step(&self, id: UserId, step: i64) -> Result<bool, StoreError> {
        let n = execute!(
            self,
            "UPDATE users SET twofa_last_step = $1 WHERE id = $2 \
             AND (twofa_last_step IS NULL OR twofa_last_step < $1)",
            step,
            id
        )?;
        Ok(n > 0)
    }

    /// Swaps the recovery code list only if it still is `old`: a code is spent exactly once.
    pub async fn swap_recovery_codes(
        &self,
        id: UserId,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let n = execute!(
            self,
            "UPDATE users SET twofa_recovery_codes = $1 WHERE id = $2 AND twofa_recovery_codes = $3",
            new,
            id,
            old
        )?;
        Ok(n > 0)
    }

    /// Replaces the recovery codes (new set made by the user).
    pub async fn set_recovery_codes(
        &self,
        id: UserId,
        json: &str,
        now: Ts,
    ) -> Result<bool, StoreError> {
        let n = execute!(
            self,
            "UPDATE users SET twofa_recovery_codes = $1, updated_at = $2 WHERE id = $3 AND twofa_enabled",
            json,
            now,
            id
        )?;
        Ok(n > 0)
    }
}
