//! The `users` table.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::events::{Change, ChangeKind, append_change, in_tx};
use super::sessions::end_user_sessions;
use super::{SessionId, Store, StoreError, Ts, UserId, execute, on_pool};

/// Subscription tiers, in the spec's order.
pub const TIERS: [&str; 4] = ["free", "beta", "premium", "enterprise"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Free,
    Beta,
    Premium,
    Enterprise,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Beta => "beta",
            Tier::Premium => "premium",
            Tier::Enterprise => "enterprise",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown subscription tier {0:?}; valid tiers are: free, beta, premium, enterprise")]
pub struct UnknownTier(pub String);

impl FromStr for Tier {
    type Err = UnknownTier;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "free" => Ok(Tier::Free),
            "beta" => Ok(Tier::Beta),
            "premium" => Ok(Tier::Premium),
            "enterprise" => Ok(Tier::Enterprise),
            _ => Err(UnknownTier(s.to_string())),
        }
    }
}

/// A full row of `users`. Holds secrets (hashes, encrypted TOTP secret): never serialise it to a
/// client; use the accounts layer's public view.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub password_hash: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub full_name: Option<String>,
    pub phone: Option<String>,
    pub company_name: Option<String>,
    pub is_active: bool,
    pub is_verified: bool,
    pub is_admin: bool,
    pub is_superuser: bool,
    pub is_deleted: bool,
    pub subscription_status: String,
    pub subscription_tier: String,
    pub credits_balance: i64,
    pub twofa_enabled: bool,
    pub twofa_secret: Option<String>,
    pub twofa_last_step: Option<i64>,
    pub twofa_recovery_codes: Option<String>,
    pub failed_login_attempts: i64,
    pub account_locked_until: Option<Ts>,
    pub password_reset_token: Option<String>,
    pub password_reset_expires_at: Option<Ts>,
    /// When the last reset mail was sent, for per-account rate limiting.
    pub password_reset_sent_at: Option<Ts>,
    pub email_verification_token: Option<String>,
    pub email_verification_expires_at: Option<Ts>,
    pub pending_email: Option<String>,
    pub email_notifications: bool,
    pub sms_notifications: bool,
    pub timezone: String,
    pub language: String,
    pub created_at: Ts,
    pub updated_at: Ts,
    pub deleted_at: Option<Ts>,
    pub last_login: Option<Ts>,
    pub last_login_ip: Option<String>,
    pub login_count: i64,
    pub password_changed_at: Option<Ts>,
    pub email_verified_at: Option<Ts>,
    pub legacy_lead_id: Option<String>,
}

impl UserRow {
    pub fn is_locked(&self, now: Ts) -> bool {
        self.account_locked_until.is_some_and(|t| t > now)
    }
}

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

/// Filters for listing users. `deleted: None` means "not deleted".
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub active: Option<bool>,
    pub tier: Option<Tier>,
    pub role: Option<String>,
    pub verified: Option<bool>,
    pub deleted: Option<bool>,
    pub search: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// A value bound into dynamically built SQL.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Text(Option<String>),
    Bool(bool),
    I64(i64),
    Ts(Option<Ts>),
}

macro_rules! bind_vals {
    ($q:expr, $vals:expr) => {{
        let mut q = $q;
        for v in $vals {
            q = match v {
                $crate::store::users::Val::Text(s) => q.bind(s.clone()),
                $crate::store::users::Val::Bool(b) => q.bind(*b),
                $crate::store::users::Val::I64(i) => q.bind(*i),
                $crate::store::users::Val::Ts(t) => q.bind(*t),
            };
        }
        q
    }};
}
pub(crate) use bind_vals;

/// Builds `SQL` text with `$n` placeholders alongside its values.
#[derive(Default)]
pub(crate) struct SqlParts {
    pub sql: String,
    pub vals: Vec<Val>,
}

impl SqlParts {
    pub fn push_val(&mut self, v: Val) -> String {
        self.vals.push(v);
        format!("${}", self.vals.len())
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
pub(crate) fn like_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The columns a new user row is written with; [`bind_user!`] binds them in this order.
/// How many columns [`USER_COLUMNS`] names.
pub(crate) const USER_PARAMS: usize = 25;
pub(crate) const USER_COLUMNS: &str = "username, email, password_hash, first_name, last_name, full_name, \
    phone, company_name, subscription_tier, subscription_status, credits_balance, is_active, \
    is_verified, is_admin, is_superuser, email_notifications, sms_notifications, timezone, \
    language, created_at, updated_at, last_login, legacy_lead_id, password_changed_at, \
    email_verified_at";
/// Binds one user's values in [`USER_COLUMNS`] order; the same for both backends.
macro_rules! bind_user {
    ($q:expr, $u:expr, $now:expr) => {{
        let u: &$crate::store::NewUser = $u;
        $q.bind(&u.username)
            .bind(&u.email)
            .bind(&u.password_hash)
            .bind(&u.first_name)
            .bind(&u.last_name)
            .bind($crate::store::users_full_name(
                u.first_name.as_deref(),
                u.last_name.as_deref(),
            ))
            .bind(&u.phone)
            .bind(&u.company_name)
            .bind(u.tier.as_str())
            .bind(&u.subscription_status)
            .bind(u.credits_balance)
            .bind(u.is_active)
            .bind(u.is_verified)
            .bind(u.is_admin)
            .bind(u.is_superuser)
            .bind(u.email_notifications)
            .bind(u.sms_notifications)
            .bind(&u.timezone)
            .bind(&u.language)
            .bind(u.created_at)
            .bind($now)
            .bind(u.last_login)
            .bind(&u.legacy_lead_id)
            .bind(u.password_hash.as_ref().map(|_| $now))
            .bind(u.is_verified.then_some(u.created_at))
    }};
}

pub(crate) use bind_user;

impl Store {
    pub async fn insert_user(&self, u: &NewUser, now: Ts) -> Result<UserRow, StoreError> {
        let placeholders: Vec<String> = (1..=USER_PARAMS).map(|i| format!("${i}")).collect();
        let sql = sqlx::AssertSqlSafe(format!(
            "INSERT INTO users ({USER_COLUMNS}) VALUES ({}) RETURNING *",
            placeholders.join(", ")
        ));
        let row = on_pool!(self, |p| bind_user!(
            sqlx::query_as::<_, UserRow>(sql),
            u,
            now
        )
        .fetch_one(p)
        .await)?;
        Ok(row)
    }

    pub async fn user_by_id(&self, id: UserId) -> Result<Option<UserRow>, StoreError> {
        let row = on_pool!(self, |p| sqlx::query_as::<_, UserRow>(
            "SELECT * FROM users WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(p)
        .await)?;
        Ok(row)
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        let row = on_pool!(self, |p| sqlx::query_as::<_, UserRow>(
            "SELECT * FROM users WHERE lower(username) = lower($1)"
        )
        .bind(username)
        .fetch_optional(p)
        .await)?;
        Ok(row)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let row = on_pool!(self, |p| sqlx::query_as::<_, UserRow>(
            "SELECT * FROM users WHERE lower(email) = lower($1)"
        )
        .bind(email)
        .fetch_optional(p)
        .await)?;
        Ok(row)
    }

    /// Finds a user by username or email; a username match wins over an email match.
    pub async fn user_by_login(&self, login: &str) -> Result<Option<UserRow>, StoreError> {
        let row = on_pool!(self, |p| sqlx::query_as::<_, UserRow>(
            "SELECT * FROM users WHERE lower(username) = lower($1) OR lower(email) = lower($1) \
             ORDER BY CASE WHEN lower(username) = lower($1) THEN 0 ELSE 1 END LIMIT 1"
        )
        .bind(login)
        .fetch_optional(p)
        .await)?;
        Ok(row)
    }

    /// Applies a patch and returns the updated row, or `None` when the user does not exist.
    pub async fn update_user(
        &self,
        id: UserId,
        patch: &UserPatch,
        now: Ts,
    ) -> Result<Option<UserRow>, StoreError> {
        let mut parts = SqlParts::default();
        let mut sets: Vec<String> = Vec::new();
        let mut set = |col: &str, v: Val, parts: &mut SqlParts| {
            let ph = parts.push_val(v);
            sets.push(format!("{col} = {ph}"));
        };
        if let Some(v) = &patch.email {
            set("email", Val::Text(Some(v.clone())), &mut parts);
        }
        for (col, v) in [
            ("first_name", &patch.first_name),
            ("last_name", &patch.last_name),
            ("full_name", &patch.full_name),
            ("phone", &patch.phone),
            ("company_name", &patch.company_name),
        ] {
            if let Some(v) = v {
                set(col, Val::Text(v.clone()), &mut parts);
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
                set(col, Val::Bool(v), &mut parts);
            }
        }
        if patch.is_verified == Some(true) {
            set("email_verified_at", Val::Ts(Some(now)), &mut parts);
        }
        for (col, v) in [
            ("timezone", &patch.timezone),
            ("language", &patch.language),
            ("subscription_status", &patch.subscription_status),
        ] {
            if let Some(v) = v {
                set(col, Val::Text(Some(v.clone())), &mut parts);
            }
        }
        if let Some(t) = patch.subscription_tier {
            set(
                "subscription_tier",
                Val::Text(Some(t.as_str().into())),
                &mut parts,
            );
        }
        if let Some(c) = patch.credits_balance {
            set("credits_balance", Val::I64(c), &mut parts);
        }
        // What the change feed names (the columns changed, without `updated_at`).
        let changed: Vec<String> = sets
            .iter()
            .filter_map(|s| s.split(' ').next().map(str::to_string))
            .collect();
        let ph = parts.push_val(Val::Ts(Some(now)));
        sets.push(format!("updated_at = {ph}"));
        let id_ph = parts.push_val(Val::I64(id.0));
        parts.sql = format!(
            "UPDATE users SET {} WHERE id = {id_ph} RETURNING *",
            sets.join(", ")
        );
        let sql = sqlx::AssertSqlSafe(parts.sql);
        let vals = parts.vals;
        let deactivated = patch.is_active == Some(false);
        let change = Change::user(ChangeKind::UserUpdated, id).detail(changed.join(","));
        let row = in_tx!(self, |tx| {
            let row = bind_vals!(sqlx::query_as::<_, UserRow>(sql), &vals)
                .fetch_optional(&mut **tx)
                .await?;
            if row.is_some() {
                // A deactivated account's sessions end with it, in the same transaction.
                if deactivated {
                    end_user_sessions!(tx, id, None::<SessionId>).await?;
                }
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
            .execute(&mut **tx)
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

    /// Whether a user (deleted ones included: their names stay taken) has this skeleton.
    pub async fn username_skeleton_taken(&self, skeleton: &str) -> Result<bool, StoreError> {
        let n: i64 = on_pool!(self, |p| {
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE username_skeleton = $1")
                .bind(skeleton)
                .fetch_one(p)
                .await
        })?;
        Ok(n > 0)
    }

    /// Up to `limit` users whose skeleton is not filled in yet: (id, username).
    pub async fn users_without_skeleton(
        &self,
        limit: i64,
    ) -> Result<Vec<(UserId, String)>, StoreError> {
        let rows: Vec<(UserId, String)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT id, username FROM users WHERE username_skeleton IS NULL ORDER BY id LIMIT $1",
            )
            .bind(limit)
            .fetch_all(p)
            .await
        })?;
        Ok(rows)
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
            .execute(&mut **tx)
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
            .execute(&mut **tx)
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

    /// Lists users matching `f`, ordered by id, with the total count of matches.
    pub async fn list_users(
        &self,
        f: &UserFilter,
        now: Ts,
    ) -> Result<(Vec<UserRow>, i64), StoreError> {
        let mut parts = SqlParts::default();
        let mut wh: Vec<String> = Vec::new();
        let deleted = parts.push_val(Val::Bool(f.deleted.unwrap_or(false)));
        wh.push(format!("is_deleted = {deleted}"));
        if let Some(a) = f.active {
            let ph = parts.push_val(Val::Bool(a));
            wh.push(format!("is_active = {ph}"));
        }
        if let Some(v) = f.verified {
            let ph = parts.push_val(Val::Bool(v));
            wh.push(format!("is_verified = {ph}"));
        }
        if let Some(t) = f.tier {
            let ph = parts.push_val(Val::Text(Some(t.as_str().into())));
            wh.push(format!("subscription_tier = {ph}"));
        }
        if let Some(role) = &f.role {
            let r = parts.push_val(Val::Text(Some(role.clone())));
            let n = parts.push_val(Val::Ts(Some(now)));
            let implicit = match role.as_str() {
                "admin" => " OR is_admin OR is_superuser",
                "superuser" => " OR is_superuser",
                _ => "",
            };
            wh.push(format!(
                "(EXISTS (SELECT 1 FROM user_roles r WHERE r.user_id = users.id AND r.role_name = {r} \
                 AND r.is_active AND (r.expires_at IS NULL OR r.expires_at > {n})){implicit})"
            ));
        }
        if let Some(s) = f.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            let ph = parts.push_val(Val::Text(Some(like_pattern(s))));
            wh.push(format!(
                "(lower(username) LIKE {ph} ESCAPE '\\' OR lower(email) LIKE {ph} ESCAPE '\\' \
                 OR lower(COALESCE(full_name, '')) LIKE {ph} ESCAPE '\\' \
                 OR lower(COALESCE(company_name, '')) LIKE {ph} ESCAPE '\\')"
            ));
        }
        let where_sql = wh.join(" AND ");
        let count_sql =
            sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM users WHERE {where_sql}"));
        let count_vals = parts.vals.clone();
        let limit = parts.push_val(Val::I64(f.limit.clamp(0, 10_000)));
        let offset = parts.push_val(Val::I64(f.offset.max(0)));
        let list_sql = sqlx::AssertSqlSafe(format!(
            "SELECT * FROM users WHERE {where_sql} ORDER BY id LIMIT {limit} OFFSET {offset}"
        ));
        let vals = parts.vals;
        let total: i64 = on_pool!(self, |p| bind_vals!(
            sqlx::query_scalar::<_, i64>(count_sql),
            &count_vals
        )
        .fetch_one(p)
        .await)?;
        let rows = on_pool!(self, |p| bind_vals!(
            sqlx::query_as::<_, UserRow>(list_sql),
            &vals
        )
        .fetch_all(p)
        .await)?;
        Ok((rows, total))
    }
}

/// `first last`, or whichever is present; `None` when neither is.
pub fn full_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = [first, last]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
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
