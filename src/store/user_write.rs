//! Creating and changing accounts in `users`.
//!
//! Apart from the reads because every write here either builds its SQL at run time (a new
//! row's `VALUES`, shared with the bulk import; a patch's `SET` list) or ends sessions and
//! appends a change-feed event in the same transaction, which the reads never do.

use sqlx::query_builder::Separated;
use sqlx::{Database, QueryBuilder};

use super::events::{Change, ChangeKind, append_change, in_tx};
use super::sessions::end_user_sessions;
use super::sql::Bind;
use super::{SessionId, Store, StoreError, Tier, Ts, UserId, UserRow, execute, on_pool};

/// What creating a user needs. `password_hash` is already hashed (or a copied legacy hash).
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub password_hash: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub company_name: Option<String>,
    pub tier: Tier,
    pub subscription_status: String,
    pub credits_balance: i64,
    pub is_active: bool,
    pub is_verified: bool,
    pub is_admin: bool,
    pub is_superuser: bool,
    pub email_notifications: bool,
    pub sms_notifications: bool,
    pub timezone: String,
    pub language: String,
    pub created_at: Ts,
    pub last_login: Option<Ts>,
    pub legacy_lead_id: Option<String>,
}

/// A partial update. `None` leaves a column alone; for nullable text, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub email: Option<String>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub full_name: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub company_name: Option<Option<String>>,
    pub email_notifications: Option<bool>,
    pub sms_notifications: Option<bool>,
    pub timezone: Option<String>,
    pub language: Option<String>,
    pub is_active: Option<bool>,
    pub is_verified: Option<bool>,
    pub is_admin: Option<bool>,
    pub is_superuser: Option<bool>,
    pub subscription_status: Option<String>,
    pub subscription_tier: Option<Tier>,
    pub credits_balance: Option<i64>,
}

/// The columns a new user row is written with; [`push_user`] binds them in this order.
pub(crate) const USER_COLUMNS: &str = "username, email, password_hash, first_name, last_name, \
    full_name, phone, company_name, subscription_tier, subscription_status, credits_balance, \
    is_active, is_verified, is_admin, is_superuser, email_notifications, sms_notifications, \
    timezone, language, created_at, updated_at, last_login, legacy_lead_id, password_changed_at, \
    email_verified_at";

/// Binds one user's values in [`USER_COLUMNS`] order, as one row of a `push_values` list; the
/// same for both backends.
pub(crate) fn push_user<DB>(mut row: Separated<'_, DB, &'static str>, u: &NewUser, now: Ts)
where
    DB: Database,
    String: Bind<DB>,
    Option<String>: Bind<DB>,
    &'static str: Bind<DB>,
    bool: Bind<DB>,
    i64: Bind<DB>,
    Ts: Bind<DB>,
    Option<Ts>: Bind<DB>,
{
    row.push_bind(&u.username)
        .push_bind(&u.email)
        .push_bind(&u.password_hash)
        .push_bind(&u.first_name)
        .push_bind(&u.last_name)
        .push_bind(super::users_full_name(
            u.first_name.as_deref(),
            u.last_name.as_deref(),
        ))
        .push_bind(&u.phone)
        .push_bind(&u.company_name)
        .push_bind(u.tier.as_str())
        .push_bind(&u.subscription_status)
        .push_bind(u.credits_balance)
        .push_bind(u.is_active)
        .push_bind(u.is_verified)
        .push_bind(u.is_admin)
        .push_bind(u.is_superuser)
        .push_bind(u.email_notifications)
        .push_bind(u.sms_notifications)
        .push_bind(&u.timezone)
        .push_bind(&u.language)
        .push_bind(u.created_at)
        .push_bind(now)
        .push_bind(u.last_login)
        .push_bind(&u.legacy_lead_id)
        .push_bind(u.password_hash.as_ref().map(|_| now))
        .push_bind(u.is_verified.then_some(u.created_at));
}

/// The `SET` list of an update, and the columns it names (for the change feed).
struct Sets<'q, DB: Database> {
    list: Separated<'q, DB, &'static str>,
    changed: Vec<&'static str>,
}

impl<DB: Database> Sets<'_, DB> {
    fn set<T: Bind<DB>>(&mut self, col: &'static str, value: T) {
        self.list
            .push(col)
            .push_unseparated(" = ")
            .push_bind_unseparated(value);
        self.changed.push(col);
    }
}

/// Appends `col = value, …` for every field `patch` sets, then `updated_at`, the `WHERE` and
/// `RETURNING *`. Returns the changed columns (`updated_at` aside) for the change feed.
fn push_patch<DB>(
    qb: &mut QueryBuilder<DB>,
    id: UserId,
    patch: &UserPatch,
    now: Ts,
) -> Vec<&'static str>
where
    DB: Database,
    String: Bind<DB>,
    Option<String>: Bind<DB>,
    &'static str: Bind<DB>,
    bool: Bind<DB>,
    i64: Bind<DB>,
    Ts: Bind<DB>,
{
    let mut sets = Sets {
        list: qb.separated(", "),
        changed: Vec::new(),
    };
    if let Some(v) = &patch.email {
        sets.set("email", v);
    }
    for (col, v) in [
        ("first_name", &patch.first_name),
        ("last_name", &patch.last_name),
        ("full_name", &patch.full_name),
        ("phone", &patch.phone),
        ("company_name", &patch.company_name),
    ] {
        if let Some(v) = v {
            sets.set(col, v);
        }
    }
    for (col, v) in [
        ("email_notifications", patch.email_notifications),
        ("sms_notifications", patch.sms_notifications),
        ("is_active", patch.is_active),
        ("is_verified", patch.is_verified),
        ("is_admin", patch.is_admin),
        ("is_superuser", patch.is_superuser),
    ] {
        if let Some(v) = v {
            sets.set(col, v);
        }
    }
    if patch.is_verified == Some(true) {
        sets.set("email_verified_at", now);
    }
    for (col, v) in [
        ("timezone", &patch.timezone),
        ("language", &patch.language),
        ("subscription_status", &patch.subscription_status),
    ] {
        if let Some(v) = v {
            sets.set(col, v);
        }
    }
    if let Some(t) = patch.subscription_tier {
        sets.set("subscription_tier", t.as_str());
    }
    if let Some(c) = patch.credits_balance {
        sets.set("credits_balance", c);
    }
    sets.list.push("updated_at = ").push_bind_unseparated(now);
    let changed = sets.changed;
    qb.push(" WHERE id = ").push_bind(id.0).push(" RETURNING *");
    changed
}

impl Store {
    pub async fn insert_user(&self, u: &NewUser, now: Ts) -> Result<UserRow, StoreError> {
        let row = on_pool!(self, |p| {
            let mut qb = QueryBuilder::new(format!("INSERT INTO users ({USER_COLUMNS}) "));
            qb.push_values([u], |row, u| push_user(row, u, now))
                .push(" RETURNING *");
            qb.build_query_as::<UserRow>().fetch_one(p).await
        })?;
        Ok(row)
    }

    /// Applies a patch and returns the updated row, or `None` when the user does not exist.
    pub async fn update_user(
        &self,
        id: UserId,
        patch: &UserPatch,
        now: Ts,
    ) -> Result<Option<UserRow>, StoreError> {
        let deactivated = patch.is_active == Some(false);
        let row = in_tx!(self, |tx| {
            let mut qb = QueryBuilder::new("UPDATE users SET ");
            let changed = push_patch(&mut qb, id, patch, now);
            let row = qb
                .build_query_as::<UserRow>()
                .fetch_optional(tx.conn())
                .await?;
            if row.is_some() {
                // A deactivated account's sessions end with it, in the same transaction.
                if deactivated {
                    end_user_sessions!(tx, id, None::<SessionId>).await?;
                }
                let change = Change::user(ChangeKind::UserUpdated, id).detail(changed.join(","));
                append_change!(tx, &change).await?;
            }
            row
        })?;
        Ok(row)
    }

    /// Sets (or clears) the password hash; appends a change-feed event.
    pub async fn set_password_hash(
        &self,
        id: UserId,
        hash: Option<&str>,
        now: Ts,
    ) -> Result<bool, StoreError> {
        Ok(self
            .set_password_ending_sessions(id, hash, None, now)
            .await?
            .is_some())
    }

    /// Sets (or clears) the password hash and, with `end_sessions = Some(keep)`, ends every
    /// session of the user but `keep`, in one transaction with its change-feed event. Returns
    /// the ended sessions' token hashes, or `None` when the user does not exist.
    pub async fn set_password_ending_sessions(
        &self,
        id: UserId,
        hash: Option<&str>,
        end_sessions: Option<Option<SessionId>>,
        now: Ts,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let change = Change::user(ChangeKind::PasswordChanged, id);
        let ended = in_tx!(self, |tx| {
            let n = sqlx::query(
                "UPDATE users SET password_hash = $1, password_changed_at = $2, updated_at = $2, \
                 password_reset_token = NULL, password_reset_expires_at = NULL WHERE id = $3",
            )
            .bind(hash)
            .bind(now)
            .bind(id)
            .execute(tx.conn())
            .await?
            .rows_affected();
            if n == 0 {
                None
            } else {
                let ended = match end_sessions {
                    Some(keep) => end_user_sessions!(tx, id, keep).await?,
                    None => Vec::new(),
                };
                append_change!(tx, &change).await?;
                Some(ended)
            }
        })?;
        Ok(ended)
    }

    pub async fn set_username_skeleton(
        &self,
        id: UserId,
        skeleton: &str,
    ) -> Result<(), StoreError> {
        execute!(
            self,
            "UPDATE users SET username_skeleton = $1 WHERE id = $2",
            skeleton,
            id
        )?;
        Ok(())
    }

    /// Locks (`Some(until)`) or unlocks (`None`) an account by hand. Locking also ends the
    /// user's sessions; both append a change-feed event in the same transaction.
    pub async fn set_lock(
        &self,
        id: UserId,
        until: Option<Ts>,
        now: Ts,
    ) -> Result<bool, StoreError> {
        let kind = match until {
            Some(_) => ChangeKind::UserLocked,
            None => ChangeKind::UserUnlocked,
        };
        let change = Change::user(kind, id);
        let found = in_tx!(self, |tx| {
            let n = sqlx::query(
                "UPDATE users SET account_locked_until = $1, failed_login_attempts = 0, \
                 failed_twofa_attempts = 0, updated_at = $2 WHERE id = $3",
            )
            .bind(until)
            .bind(now)
            .bind(id)
            .execute(tx.conn())
            .await?
            .rows_affected();
            if n > 0 {
                if until.is_some() {
                    end_user_sessions!(tx, id, None::<SessionId>).await?;
                }
                append_change!(tx, &change).await?;
            }
            n > 0
        })?;
        Ok(found)
    }

    /// Soft delete (`true`) or restore (`false`). Returns whether a row changed state.
    pub async fn set_deleted(
        &self,
        id: UserId,
        deleted: bool,
        now: Ts,
    ) -> Result<bool, StoreError> {
        Ok(self
            .set_deleted_ending_sessions(id, deleted, now)
            .await?
            .is_some())
    }

    /// Soft delete (`true`, which also ends every session) or restore (`false`), in one
    /// transaction with its change-feed event. Returns the ended sessions' token hashes, or
    /// `None` when no row changed state.
    pub async fn set_deleted_ending_sessions(
        &self,
        id: UserId,
        deleted: bool,
        now: Ts,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let deleted_at = deleted.then_some(now);
        let kind = if deleted {
            ChangeKind::UserDeleted
        } else {
            ChangeKind::UserRestored
        };
        let change = Change::user(kind, id);
        let ended = in_tx!(self, |tx| {
            let n = sqlx::query(
                "UPDATE users SET is_deleted = $1, deleted_at = $2, updated_at = $3 \
                 WHERE id = $4 AND is_deleted <> $1",
            )
            .bind(deleted)
            .bind(deleted_at)
            .bind(now)
            .bind(id)
            .execute(tx.conn())
            .await?
            .rows_affected();
            if n == 0 {
                None
            } else {
                let ended = if deleted {
                    end_user_sessions!(tx, id, None::<SessionId>).await?
                } else {
                    Vec::new()
                };
                append_change!(tx, &change).await?;
                Some(ended)
            }
        })?;
        Ok(ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Ts {
        Ts(chrono::DateTime::UNIX_EPOCH)
    }

    fn user() -> NewUser {
        NewUser {
            username: "alice".into(),
            email: "alice@example.com".into(),
            password_hash: None,
            first_name: Some("Alice".into()),
            last_name: None,
            phone: None,
            company_name: None,
            tier: Tier::Free,
            subscription_status: "active".into(),
            credits_balance: 0,
            is_active: true,
            is_verified: false,
            is_admin: false,
            is_superuser: false,
            email_notifications: true,
            sms_notifications: false,
            timezone: "UTC".into(),
            language: "en".into(),
            created_at: now(),
            last_login: None,
            legacy_lead_id: None,
        }
    }

    #[test]
    fn a_user_row_binds_every_column_in_order() {
        let (a, b) = (user(), user());
        let mut qb = QueryBuilder::<sqlx::Postgres>::new("");
        qb.push_values([&a, &b], |row, u| push_user(row, u, now()));
        let sql = qb.into_string();
        let n = USER_COLUMNS.split(',').count();
        assert_eq!(sql.matches('$').count(), 2 * n);
        assert!(sql.starts_with("VALUES ($1, $2, "));
        assert!(sql.ends_with(&format!(", ${})", 2 * n)));
    }

    #[test]
    fn a_patch_sets_and_names_only_its_fields() {
        let patch = UserPatch {
            email: Some("a@example.com".into()),
            phone: Some(None),
            is_verified: Some(true),
            subscription_tier: Some(Tier::Beta),
            ..UserPatch::default()
        };
        let mut qb = QueryBuilder::<sqlx::Sqlite>::new("UPDATE users SET ");
        let changed = push_patch(&mut qb, UserId(7), &patch, now());
        assert_eq!(
            changed,
            [
                "email",
                "phone",
                "is_verified",
                "email_verified_at",
                "subscription_tier"
            ]
        );
        assert_eq!(
            qb.into_string(),
            "UPDATE users SET email = ?, phone = ?, is_verified = ?, email_verified_at = ?, \
             subscription_tier = ?, updated_at = ? WHERE id = ? RETURNING *"
        );
    }
}
