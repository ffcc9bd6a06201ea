//! The `user_activity_log` table.

use serde::Serialize;
use sqlx::types::Json;

use super::users::{SqlParts, Val, bind_vals};
use super::{Store, StoreError, Ts, UserId, on_pool};

#[derive(Debug, Clone)]
pub struct NewActivity {
    pub user_id: Option<UserId>,
    pub activity_type: String,
    pub description: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub created_at: Ts,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ActivityRow {
    pub id: i64,
    pub user_id: Option<UserId>,
    pub activity_type: String,
    pub activity_description: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub metadata: Option<Json<serde_json::Value>>,
    pub created_at: Ts,
}

#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    pub user_id: Option<UserId>,
    pub activity_type: Option<String>,
    pub since: Option<Ts>,
    pub until: Option<Ts>,
    /// Only rows with an id below this (cursor paging, newest first).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// Rows per INSERT statement: large enough to amortise statement overhead, small enough to stay
/// far below SQLite's bound-parameter limit (7 per row).
const ROWS_PER_STATEMENT: usize = 200;

fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO user_activity_log (user_id, activity_type, activity_description, \
         ip_address, user_agent, metadata, created_at) VALUES ",
    );
    for r in 0..rows {
        let b = r * 7;
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 7
        ));
    }
    sql
}

impl Store {
    /// Inserts a batch of activity rows in one transaction, many rows per statement.
    pub async fn insert_activity(&self, rows: &[NewActivity]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        on_pool!(self, |p| async {
            let mut tx = p.begin().await?;
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(insert_sql(chunk.len())));
                for r in chunk {
                    q = q
                        .bind(r.user_id)
                        .bind(&r.activity_type)
                        .bind(&r.description)
                        .bind(&r.ip_address)
                        .bind(&r.user_agent)
                        .bind(r.metadata.as_ref().map(Json))
                        .bind(r.created_at);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await
        }
        .await)?;
        Ok(())
    }

    /// Activity rows matching `f`, newest first.
    pub async fn list_activity(&self, f: &ActivityFilter) -> Result<Vec<ActivityRow>, StoreError> {
        let mut parts = SqlParts::default();
        let mut wh = vec!["1 = 1".to_string()];
        if let Some(u) = f.user_id {
            let ph = parts.push_val(Val::I64(u.0));
            wh.push(format!("user_id = {ph}"));
        }
        if let Some(t) = &f.activity_type {
            let ph = parts.push_val(Val::Text(Some(t.clone())));
            wh.push(format!("activity_type = {ph}"));
        }
        if let Some(s) = f.since {
            let ph = parts.push_val(Val::Ts(Some(s)));
            wh.push(format!("created_at >= {ph}"));
        }
        if let Some(u) = f.until {
            let ph = parts.push_val(Val::Ts(Some(u)));
            wh.push(format!("created_at < {ph}"));
        }
        if let Some(b) = f.before_id {
            let ph = parts.push_val(Val::I64(b));
            wh.push(format!("id < {ph}"));
        }
        let limit = parts.push_val(Val::I64(f.limit.clamp(0, 10_000)));
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT id, user_id, activity_type, activity_description, ip_address, user_agent, metadata, \
             created_at FROM user_activity_log WHERE {} ORDER BY id DESC LIMIT {limit}",
            wh.join(" AND ")
        ));
        let vals = parts.vals;
        let rows = on_pool!(self, |p| bind_vals!(
            sqlx::query_as::<_, ActivityRow>(sql),
            &vals
        )
        .fetch_all(p)
        .await)?;
        Ok(rows)
    }

    /// How many activity rows exist of a type (all types when `None`).
    pub async fn count_activity(&self, activity_type: Option<&str>) -> Result<i64, StoreError> {
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM user_activity_log WHERE $1 IS NULL OR activity_type = $1"
        )
        .bind(activity_type)
        .fetch_one(p)
        .await)?;
        Ok(n)
    }
}
