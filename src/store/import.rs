//! Bulk inserts for `gatehouse import-leads`.
//!
//! A batch is one transaction: either every row of it is written, with its activity rows, or
//! none is, so an interrupted import never leaves half a batch behind. Rows go in as multi-row
//! `INSERT`s (one round trip per chunk instead of one per user), and `ON CONFLICT DO NOTHING`
//! turns a clash with a user created since the import read the table into a skipped row
//! instead of a failed batch.
//!
//! The activity rows are made by the database from the users just written, found by their
//! lead ids passed as one JSON array parameter, so no value is bound per activity row.
//!
//! PostgreSQL reports the rows it wrote with `RETURNING`. SQLite would hand each returned row
//! to this thread separately, which costs more than the insert itself, so there the written
//! lead ids are worked out instead: the batch takes the write lock first (`BEGIN IMMEDIATE`),
//! so no other writer can slip in between the check of which lead ids exist and the insert.

use std::collections::HashSet;

use sqlx::{Database, QueryBuilder};

use super::sql::Bind;
use super::user_write::{USER_COLUMNS, push_user};
use super::{Backend, NewUser, Store, StoreError, Ts, on_pool};

/// Rows per statement: well under SQLite's 32,766 and PostgreSQL's 65,535 bound parameters.
const CHUNK: usize = 500;

/// What a batch wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportedBatch {
    pub written: u64,
    /// Lead ids of users left out because they clashed with a user already there.
    pub clashed: Vec<String>,
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

/// The multi-row insert of `users`, without a `RETURNING` on SQLite (see the module docs).
/// Built with the same [`push_user`] as a single insert, so the columns and their values cannot
/// drift apart. The text depends only on the row count: every full chunk reuses one prepared
/// statement. On SQLite the builder writes anonymous `?` placeholders, whose binding stays
/// linear in their number (SQLite looks a numbered parameter's name up by a linear scan).
fn users_insert<DB>(chunk: &[NewUser], now: Ts, returning: &str) -> QueryBuilder<DB>
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
    let mut qb = QueryBuilder::new(format!("INSERT INTO users ({USER_COLUMNS}) "));
    qb.push_values(chunk, |row, u| push_user(row, u, now))
        .push(" ON CONFLICT DO NOTHING")
        .push(returning);
    qb
}

fn json_array(items: &[&str]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

/// Users among the lead ids in `$1`, a JSON array of strings: SQLite has no array type, and
/// one text parameter binds the same on both backends.
fn among_leads(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "legacy_lead_id IN (SELECT value FROM json_each($1))",
        Backend::Postgres => {
            "legacy_lead_id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))"
        }
    }
}

/// One `user_imported` row per user just written, made from the users table itself.
fn activity_sql(backend: Backend) -> String {
    let metadata = match backend {
        Backend::Sqlite => "json_object('legacy_lead_id', legacy_lead_id, 'source', $3)",
        Backend::Postgres => {
            "jsonb_build_object('legacy_lead_id', legacy_lead_id, 'source', $3::text)"
        }
    };
    format!(
        "INSERT INTO user_activity_log (user_id, activity_type, activity_description, metadata, \
         created_at) SELECT id, $2, 'Imported from lead ' || legacy_lead_id, {metadata}, $4 \
         FROM users WHERE {}",
        among_leads(backend)
    )
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
    /// Users that clash with an existing username, email or legacy lead id are left out and
    /// named in the result. Every user must carry a legacy lead id.
    pub async fn import_users(
        &self,
        users: &[NewUser],
        now: Ts,
        activity: ImportActivity<'_>,
    ) -> Result<ImportedBatch, StoreError> {
        if users.is_empty() {
            return Ok(ImportedBatch::default());
        }
        let backend = self.backend();
        let begin = match backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        let leads: Vec<&str> = users
            .iter()
            .filter_map(|u| u.legacy_lead_id.as_deref())
            .collect();
        let all_leads = json_array(&leads);
        let present_sql = format!(
            "SELECT legacy_lead_id FROM users WHERE {}",
            among_leads(backend)
        );
        let (count, written) = on_pool!(self, |p| async {
            let mut tx = p.begin_with(begin).await?;
            macro_rules! present {
                () => {
                    sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(present_sql.clone()))
                        .bind(all_leads.clone())
                        .fetch_all(tx.conn())
                        .await?
                };
            }
            let before: HashSet<String> = match backend {
                Backend::Sqlite => present!().into_iter().collect(),
                Backend::Postgres => HashSet::new(),
            };
            let mut count = 0;
            let mut returned = Vec::new();
            for chunk in users.chunks(CHUNK) {
                if backend == Backend::Postgres {
                    let mut qb = users_insert(chunk, now, " RETURNING legacy_lead_id");
                    let rows = qb
                        .build_query_scalar::<Option<String>>()
                        .fetch_all(tx.conn())
                        .await?;
                    count += rows.len() as u64;
                    returned.extend(rows.into_iter().flatten());
                } else {
                    let mut qb = users_insert(chunk, now, "");
                    count += qb.build().execute(tx.conn()).await?.rows_affected();
                }
            }
            let written: Vec<String> = match backend {
                Backend::Postgres => returned,
                Backend::Sqlite if count == users.len() as u64 => {
                    leads.iter().map(|l| l.to_string()).collect()
                }
                Backend::Sqlite => {
                    let after = present!();
                    after.into_iter().filter(|l| !before.contains(l)).collect()
                }
            };
            if !written.is_empty() {
                let written: Vec<&str> = written.iter().map(String::as_str).collect();
                sqlx::query(sqlx::AssertSqlSafe(activity_sql(backend)))
                    .bind(json_array(&written))
                    .bind(activity.activity_type)
                    .bind(activity.source)
                    .bind(now)
                    .execute(tx.conn())
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>((count, written))
        }
        .await)?;
        let done: HashSet<&str> = written.iter().map(String::as_str).collect();
        let clashed = leads
            .iter()
            .filter(|l| !done.contains(*l))
            .map(|l| l.to_string())
            .collect();
        Ok(ImportedBatch {
            written: count,
            clashed,
        })
    }
}
