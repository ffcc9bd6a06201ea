//! Account rules the admin API and console add: credit adjustments and resetting two-factor
//! sign-in (each records an activity row naming the actor), and the reads of listings: many
//! users' public views at once, the activity log and the console's overview counts.

use super::{AccountError, Accounts, UserView, effective_roles};
use crate::audit::ActivityKind;
use crate::store::{ActivityFilter, ActivityRow, CreditChange, Ts, UserId, UserOverview, UserRow};

/// The metadata of an administrator's action on an account: who acted, and why when they
/// said (the console asks for a reason before destructive actions).
pub fn actor_meta(actor: Option<UserId>, reason: Option<&str>) -> serde_json::Value {
    let mut meta = serde_json::json!({ "actor": actor });
    if let Some(r) = reason.map(str::trim).filter(|r| !r.is_empty()) {
        meta["reason"] = r.into();
    }
    meta
}

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
        self.reset_twofa_because(id, actor, None).await
    }

    /// [`Accounts::reset_twofa`] by an administrator who may say why (kept in the activity row).
    pub async fn reset_twofa_because(
        &self,
        id: UserId,
        actor: Option<UserId>,
        reason: Option<&str>,
    ) -> Result<(), AccountError> {
        if !self.store().reset_twofa(id, self.now()).await? {
            return Err(AccountError::NotFound);
        }
        let mut meta = actor_meta(actor, reason);
        meta["fields"] = serde_json::json!([
            "twofa_enabled",
            "twofa_secret",
            "twofa_recovery_codes",
            "twofa_last_step"
        ]);
        self.record(
            self.event(ActivityKind::TwofaDisabled, Some(id))
                .describe("Two-factor sign-in reset by an administrator")
                .meta(meta),
        )
        .await;
        Ok(())
    }

    /// [`Accounts::soft_delete`] by an administrator who may say why (kept in the activity
    /// row).
    pub async fn soft_delete_because(
        &self,
        id: UserId,
        actor: Option<UserId>,
        reason: Option<&str>,
    ) -> Result<Vec<String>, AccountError> {
        let now = self.now();
        // One transaction: the flag, the ended sessions and the change-feed event.
        let Some(ended) = self
            .store()
            .set_deleted_ending_sessions(id, true, now)
            .await?
        else {
            return match self.get(id).await? {
                Some(_) => Err(AccountError::Conflict("user is already deleted".into())),
                None => Err(AccountError::NotFound),
            };
        };
        self.record(
            self.event(ActivityKind::UserDeleted, Some(id))
                .describe("Account deleted (soft)")
                .meta(actor_meta(actor, reason)),
        )
        .await;
        Ok(ended)
    }

    /// Counts for the console's home page: accounts by tier and status, live sessions.
    pub async fn overview(&self) -> Result<UserOverview, AccountError> {
        Ok(self.store().user_overview(self.now()).await?)
    }

    /// How many activity rows of each of `types` were written since `since`.
    pub async fn activity_counts(
        &self,
        types: &[&str],
        since: Ts,
    ) -> Result<Vec<(String, i64)>, AccountError> {
        Ok(self.store().count_activity_since(types, since).await?)
    }

    /// The roles someone holds now, for the console's role filter.
    pub async fn roles_in_use(&self) -> Result<Vec<String>, AccountError> {
        Ok(self.store().roles_in_use(self.now()).await?)
    }

    /// Usernames of the given accounts, for showing activity by name.
    pub async fn usernames(&self, ids: &[UserId]) -> Result<Vec<(UserId, String)>, AccountError> {
        Ok(self.store().usernames(ids).await?)
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
