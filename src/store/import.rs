//! Bulk inserts for `gatehouse import-leads`.
//!
//! A batch is one transaction: either every row of it is written, with its activity rows, or
//! none is, so an interrupted import never leaves half a batch behind. Rows go in as multi-row
//! `INSERT`s (one round trip per chunk instead of one per user), and `ON CONFLICT DO NOTHING`
//! turns a clash with a user created since the import read the table into a skipped row
//! instead of a failed batch.

use serde_json::json;
use sqlx::types::Json;

use super::users::full_name;
use super::{NewUser, Store, StoreError, Ts, UserId, on_pool};

/// Columns written per user, in the order of [`USER_COLUMNS`].
const USER_PARAMS: usize = 25;
const USER_COLUMNS: &str = "username, email, password_hash, first_name, last_name, full_name, \
    phone, company_name, subscription_tier, subscription_status, credits_balance, is_active, \
    is_verified, is_admin, is_superuser, email_notifications, sms_notifications, timezone, \
    language, created_at, updated_at, last_login, legacy_lead_id, password_changed_at, \
    email_verified_at";
const ACTIVITY_PARAMS: usize = 5;
/// Rows per statement: well under SQLite's 32,766 and PostgreSQL's 65,535 bound parameters.
const CHUNK: usize = 500;

/// A user the batch created.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ImportedUser {
    pub id: UserId,
    pub legacy_lead_id: Option<String>,
}

/// The activity row written for each imported user.
#[derive(Debug, Clone, Copy)]
pub struct ImportActivity<'a> {
    pub activity_type: &'a str,
    /// Where the users came from (a masked URL and table), kept in each row's metadata.
    pub source: &'a str,
}

/// What a user row already in the table claims, for skipping duplicates before inserting.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserIdentity {
    pub username: String,
    pub email: String,
    pub legacy_lead_id: Option<String>,
}

/// `($1, ..., $n), ($n+1, ...)` for `rows` rows of `per_row` parameters.
fn placeholders(rows: usize, per_row: usize) -> String {
    let mut s = String::with_capacity(rows * per_row * 5);
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..per_row {
            if c > 0 {
                s.push_str(", ");
            }
            s.push('$');
            s.push_str(&(r * per_row + c + 1).to_string());
        }
        s.push(')');
    }
    s
}

fn users_sql(rows: usize) -> String {
    format!(
        "INSERT INTO users ({USER_COLUMNS}) VALUES {} ON CONFLICT DO NOTHING \
         RETURNING id, legacy_lead_id",
        placeholders(rows, USER_PARAMS)
    )
}

fn activity_sql(rows: usize) -> String {
    format!(
        "INSERT INTO user_activity_log (user_id, activity_type, activity_description, metadata, \
         created_at) VALUES {}",
        placeholders(rows, ACTIVITY_PARAMS)
    )
}

/// Binds one user's values in [`USER_COLUMNS`] order; the same for both backends.
macro_rules! bind_user {
    ($q:expr, $u:expr, $now:expr) => {{
        let u: &NewUser = $u;
        $q.bind(&u.username)
            .bind(&u.email)
            .bind(&u.password_hash)
            .bind(&u.first_name)
            .bind(&u.last_name)
            .bind(full_name(u.first_name.as_deref(), u.last_name.as_deref()))
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

impl Store {
    /// Every user's username, email and legacy lead id.
    pub async fn user_identities(&self) -> Result<Vec<UserIdentity>, StoreError> {
        let rows = on_pool!(self, |p| sqlx::query_as::<_, UserIdentity>(
            "SELECT username, email, legacy_lead_id FROM users"
        )
        .fetch_all(p)
        .await)?;
        Ok(rows)
    }

    /// Inserts `users` and one activity row per inserted user, all in one transaction.
    /// Users that clash with an existing username, email or legacy lead id are left out;
    /// the result lists those that were written.
    pub async fn import_users(
        &self,
        users: &[NewUser],
        now: Ts,
        activity: ImportActivity<'_>,
    ) -> Result<Vec<ImportedUser>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let inserted = on_pool!(self, |p| async {
            let mut tx = p.begin().await?;
            let mut inserted = Vec::with_capacity(users.len());
            for chunk in users.chunks(CHUNK) {
                let sql = sqlx::AssertSqlSafe(users_sql(chunk.len()));
                let mut q = sqlx::query_as::<_, ImportedUser>(sql);
                for u in chunk {
                    q = bind_user!(q, u, now);
                }
                inserted.extend(q.fetch_all(&mut *tx).await?);
            }
            for chunk in inserted.chunks(CHUNK) {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(activity_sql(chunk.len())));
                for u in chunk {
                    let lead = u.legacy_lead_id.as_deref().unwrap_or("?");
                    q = q
                        .bind(u.id)
                        .bind(activity.activity_type)
                        .bind(format!("Imported from lead {lead}"))
                        .bind(Json(json!({
                            "legacy_lead_id": u.legacy_lead_id,
                            "source": activity.source,
                        })))
                        .bind(now);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(inserted)
        }
        .await)?;
        Ok(inserted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_in_order() {
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(USER_COLUMNS.split(',').count(), USER_PARAMS);
    }
}
