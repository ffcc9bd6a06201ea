//! Account rules the admin API and console add: credit adjustments and resetting two-factor
//! sign-in (each records an activity row naming the actor), and the reads of listings: many
//! users' public views at once, and the activity log.

use super::{AccountError, Accounts, UserView, effective_roles};
use crate::audit::ActivityKind;
use crate::store::{ActivityFilter, ActivityRow, CreditChange, UserId, UserRow};

/// Largest credit adjustment accepted at once; keeps the sum far from integer overflow.
pub const MAX_CREDIT_DELTA: i64 = 1_000_000_000;

impl Accounts {
    /// Adds a signed `delta` to the user's credits; refuses (conflict) when the balance would go
    /// below zero. Atomic: one conditional `UPDATE`. Returns the new balance.
    pub async fn adjust_credits(
        &self,
        id: UserId,
        delta: i64,
        reason: &str,
        actor: Option<UserId>,
    ) -> Result<i64, AccountError> {
        // A range check, not `abs()`: `i64::MIN.abs()` overflows.
        if delta == 0 || !(-MAX_CREDIT_DELTA..=MAX_CREDIT_DELTA).contains(&delta) {
            return Err(AccountError::Invalid {
                field: "delta",
                message: format!(
                    "must be a non-zero integer between -{MAX_CREDIT_DELTA} and {MAX_CREDIT_DELTA}"
                ),
            });
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(AccountError::Invalid {
                field: "reason",
                message: "must be 1 to 500 characters".into(),
            });
        }
        let balance = match self.store().adjust_credits(id, delta, self.now()).await? {
            CreditChange::Applied(b) => b,
            CreditChange::Refused => {
                let user = self.get(id).await?.ok_or(AccountError::NotFound)?;
                return Err(AccountError::Conflict(format!(
                    "the balance is {} and cannot go below zero",
                    user.credits_balance
                )));
            }
        };
        self.record(
            self.event(ActivityKind::CreditsAdjusted, Some(id))
                .describe(format!("Credits {delta:+}: {reason}"))
                .meta(serde_json::json!({
                    "actor": actor,
                    "fields": ["credits_balance"],
                    "delta": delta,
                    "reason": reason,
                    "balance": balance,
                })),
        )
        .await;
        Ok(balance)
    }

    /// Turns two-factor sign-in off for a user who lost their device: clears the secret,
    /// recovery codes and last used step; the user's sessions end with it.
    pub async fn reset_twofa(&self, id: UserId, actor: Option<UserId>) -> Result<(), AccountError> {
        if !self.store().reset_twofa(id, self.now()).await? {
            return Err(AccountError::NotFound);
        }
        self.record(
            self.event(ActivityKind::TwofaDisabled, Some(id))
                .describe("Two-factor sign-in reset by an administrator")
                .meta(serde_json::json!({
                    "actor": actor,
                    "fields": ["twofa_enabled", "twofa_secret", "twofa_recovery_codes", "twofa_last_step"],
                })),
        )
        .await;
        Ok(())
    }

    /// The public views of many users, with their roles read in one query.
    pub async fn views(&self, users: &[UserRow]) -> Result<Vec<UserView>, AccountError> {
        let ids: Vec<UserId> = users.iter().map(|u| u.id).collect();
        let mut roles = self.store().roles_of_users(&ids).await?;
        let now = self.now();
        Ok(users
            .iter()
            .map(|u| {
                let rows = roles.remove(&u.id).unwrap_or_default();
                UserView::new(u, effective_roles(u, &rows, now), now)
            })
            .collect())
    }

    /// Activity rows matching `filter`, newest first.
    pub async fn activity(
        &self,
        filter: &ActivityFilter,
    ) -> Result<Vec<ActivityRow>, AccountError> {
        Ok(self.store().list_activity(filter).await?)
    }
}
