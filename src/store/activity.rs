//! The `user_activity_log` table.

use serde::Serialize;
use sqlx::types::Json;

use sqlx::{Database, QueryBuilder, Sqlite};

use super::sql::{Bind, Counted};
use super::{Pool, Store, StoreError, Ts, UserId, on_pool};

#[derive(Debug, Clone)]
pub struct NewActivity {
    pub user_id: Option<UserId>,
    pub activity_type: String,
    pub description: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub metadata: Option<Box<serde_json::value::RawValue>>,
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
    /// Leaves rows of this type out (the per-request rows, in the console's default view).
    pub exclude_type: Option<String>,
    pub since: Option<Ts>,
    pub until: Option<Ts>,
    /// Only rows with an id below this (cursor paging, newest first).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// Rows per SQLite INSERT statement, largest first. A batch is cut into statements of these
/// sizes only, so their text is one of four and each stays prepared in the connection's
/// statement cache (the builder's queries are cached by their text), instead of a new statement
/// (parsed and planned anew) for every batch length. 128 rows are 896 parameters, below
/// SQLite's bound-parameter limit. The builder writes SQLite's placeholders as anonymous `?`:
/// with numbered ones SQLite looks each parameter's name up by a linear scan, which makes a
/// large statement quadratic.
const SQLITE_CHUNKS: [usize; 4] = [128, 32, 8, 1];

/// What follows `INSERT` (or `INSERT OR …`) up to the `VALUES` list in both SQLite inserts,
/// the pool's and the writer's own connection's (`activity_sqlite::insert_sql`), and what
/// follows the list: the rows' user ids are joined to `users`, so a row whose user no longer
/// exists is stored unlinked, not refused with the rest of its batch.
pub(super) const SQLITE_INTO_JOINED: &str = "INTO user_activity_log (user_id, activity_type, \
     activity_description, ip_address, user_agent, metadata, created_at) \
     SELECT u.id, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7 FROM (";
pub(super) const SQLITE_JOIN_USERS: &str = ") AS v LEFT JOIN users AS u ON u.id = v.column1";

/// Bytes of row data per PostgreSQL statement. sqlx does not set `TCP_NODELAY` on its socket,
/// and a statement message larger than what one write puts on the wire (the initial socket
/// buffer is 16 KiB) sends its tail only after an ACK that the server delays by 40 ms: 512 rows
/// in one statement ran at ~12,000 rows/s, 128 at ~2,700. Statements of at most this much data
/// go out in one write.
const PG_BYTES_PER_STATEMENT: usize = 12 * 1024;

/// About how many bytes a row adds to the statement's message (text plus the arrays' per-element
/// lengths and fixed-width fields).
fn pg_row_bytes(r: &NewActivity) -> usize {
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    64 + r.activity_type.len()
        + text(&r.description)
        + text(&r.ip_address)
        + text(&r.user_agent)
        + r.metadata.as_ref().map_or(0, |m| m.get().len())
}

/// Appends the `WHERE`, order and limit of [`Store::list_activity`] for `f`.
fn push_list_tail<DB>(qb: &mut QueryBuilder<DB>, f: &ActivityFilter)
where
    DB: Database,
    i64: Bind<DB>,
    String: Bind<DB>,
    Ts: Bind<DB>,
{
    qb.push(" WHERE 1 = 1");
    if let Some(u) = f.user_id {
        qb.push(" AND user_id = ").push_bind(u.0);
    }
    if let Some(t) = &f.activity_type {
        qb.push(" AND activity_type = ").push_bind(t);
    }
    if let Some(t) = &f.exclude_type {
        qb.push(" AND activity_type <> ").push_bind(t);
    }
    if let Some(s) = f.since {
        qb.push(" AND created_at >= ").push_bind(s);
    }
    if let Some(u) = f.until {
        qb.push(" AND created_at < ").push_bind(u);
    }
    if let Some(b) = f.before_id {
        qb.push(" AND id < ").push_bind(b);
    }
    qb.push(" ORDER BY id DESC LIMIT ")
        .push_bind(f.limit.clamp(0, 10_000));
}

/// PostgreSQL: a statement of fixed text (prepared once per connection), one array per column.
/// Joined to `users` as on SQLite, so a row whose user no longer exists is stored unlinked;
/// ordered by position, because the ids (and so the activity list's order) follow insertion.
const PG_INSERT: &str = "INSERT INTO user_activity_log (user_id, activity_type, \
     activity_description, ip_address, user_agent, metadata, created_at) \
     SELECT u.id, t.kind, t.description, t.ip, t.agent, t.metadata, t.at \
     FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], \
     $6::TEXT[]::JSONB[], $7::TIMESTAMPTZ[]) \
     WITH ORDINALITY AS t(uid, kind, description, ip, agent, metadata, at, n) \
     LEFT JOIN users AS u ON u.id = t.uid ORDER BY t.n";

impl Store {
    /// Inserts a batch of activity rows in one transaction.
    pub async fn insert_activity(&self, rows: &[NewActivity]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        match &self.pool {
            Pool::Sqlite(p) => {
                let mut tx = Counted::new(p, self.counter()).begin().await?;
                let mut qb = QueryBuilder::<Sqlite>::new(format!("INSERT {SQLITE_INTO_JOINED}"));
                let mut rest = rows;
                while let Some(&n) = SQLITE_CHUNKS.iter().find(|&&n| n <= rest.len()) {
                    let (chunk, tail) = rest.split_at(n);
                    qb.reset().push_values(chunk, |mut row, r| {
                        row.push_bind(r.user_id)
                            .push_bind(&r.activity_type)
                            .push_bind(&r.description)
                            .push_bind(&r.ip_address)
                            .push_bind(&r.user_agent)
                            .push_bind(r.metadata.as_deref().map(Json))
                            .push_bind(r.created_at);
                    });
                    qb.push(SQLITE_JOIN_USERS);
                    qb.build().execute(tx.conn()).await?;
                    rest = tail;
                }
                tx.commit().await?;
            }
            Pool::Postgres(p) => {
                let mut tx = Counted::new(p, self.counter()).begin().await?;
                let mut rest = rows;
                while !rest.is_empty() {
                    let mut bytes = 0;
                    let take = rest
                        .iter()
                        .take_while(|r| {
                            bytes += pg_row_bytes(r);
                            bytes <= PG_BYTES_PER_STATEMENT
                        })
                        .count()
                        .max(1);
                    let (chunk, tail) = rest.split_at(take);
                    rest = tail;
                    let n = chunk.len();
                    let mut user_id = Vec::with_capacity(n);
                    let mut kind = Vec::with_capacity(n);
                    let mut description = Vec::with_capacity(n);
                    let mut ip = Vec::with_capacity(n);
                    let mut agent = Vec::with_capacity(n);
                    let mut metadata = Vec::with_capacity(n);
                    let mut at = Vec::with_capacity(n);
                    for r in chunk {
                        user_id.push(r.user_id.map(|u| u.0));
                        kind.push(r.activity_type.as_str());
                        description.push(r.description.as_deref());
                        ip.push(r.ip_address.as_deref());
                        agent.push(r.user_agent.as_deref());
                        metadata.push(r.metadata.as_deref().map(serde_json::value::RawValue::get));
                        at.push(r.created_at.0);
                    }
                    sqlx::query(PG_INSERT)
                        .bind(user_id)
                        .bind(kind)
                        .bind(description)
                        .bind(ip)
                        .bind(agent)
                        .bind(metadata)
                        .bind(at)
                        .execute(tx.conn())
                        .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Activity rows matching `f`, newest first.
    pub async fn list_activity(&self, f: &ActivityFilter) -> Result<Vec<ActivityRow>, StoreError> {
        let rows = on_pool!(self, |p| {
            let mut qb = QueryBuilder::new(
                "SELECT id, user_id, activity_type, activity_description, ip_address, user_agent, \
                 metadata, created_at FROM user_activity_log",
            );
            push_list_tail(&mut qb, f);
            qb.build_query_as::<ActivityRow>().fetch_all(p).await
        })?;
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

    /// How many rows of each of `types` were written at or after `since` (types without rows
    /// are left out).
    pub async fn count_activity_since(
        &self,
        types: &[&str],
        since: Ts,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        if types.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, i64)> = on_pool!(self, |p| {
            let mut qb = QueryBuilder::new(
                "SELECT activity_type, COUNT(*) FROM user_activity_log WHERE created_at >= ",
            );
            qb.push_bind(since).push(" AND activity_type IN (");
            let mut list = qb.separated(", ");
            for t in types {
                list.push_bind(t.to_string());
            }
            qb.push(") GROUP BY activity_type");
            qb.build_query_as().fetch_all(p).await
        })?;
        Ok(rows)
    }
}
