//! The fixture leads (tests/fixtures/leads/leads.json) loaded into a source database of each
//! engine, typed the way a legacy app on that engine would have them.
//!
//! SQLite gets the raw, messy values as they are (flags as 0/1/'t'/'true', timestamps as
//! text of several shapes). PostgreSQL and MariaDB get native BOOLEAN/TINYINT/BIT and
//! TIMESTAMP columns, with one PostgreSQL flag left as TEXT, because that is what such tables
//! look like in the wild.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Connection;

use crate::harness::{Backend, TestDb};

pub const LEADS_JSON: &str = include_str!("../../fixtures/leads/leads.json");

pub fn fixture() -> Value {
    serde_json::from_str(LEADS_JSON).expect("leads.json is valid")
}

pub fn leads() -> Vec<Value> {
    fixture()["leads"].as_array().expect("leads").clone()
}

/// The fixture's columns, renamed through `rename` (fixture name → source name).
fn columns(rename: &[(&str, &str)]) -> Vec<String> {
    fixture()["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            let c = c.as_str().expect("column name");
            rename
                .iter()
                .find(|(from, _)| *from == c)
                .map_or(c, |(_, to)| to)
                .to_string()
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
    MySql,
}

/// A source database holding a leads table; `None` from [`SourceDb::new`] means "skipped".
pub struct SourceDb {
    pub url: String,
    pub engine: Engine,
    _db: Option<TestDb>,
    /// The MySQL database to drop afterwards, with the server URL to drop it through.
    mysql: Option<(String, String)>,
}

pub fn mysql_url() -> Option<String> {
    match std::env::var("GATEHOUSE_TEST_MYSQL_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            crate::harness::skip_or_require(
                "GATEHOUSE_REQUIRE_MYSQL",
                "GATEHOUSE_TEST_MYSQL_URL is not set",
                "MySQL/MariaDB source tests",
                "set GATEHOUSE_TEST_MYSQL_URL to run them",
            );
            None
        }
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Binds a lead's values by column type for PostgreSQL (`$pg` true) or MySQL.
macro_rules! typed_binds {
    ($q:expr, $lead:expr, $names:expr, $pg:expr) => {{
        let mut q = $q;
        for name in &$names {
            let v = &$lead[name.as_str()];
            q = match name.as_str() {
                "id" | "credits" => q.bind(int(v)),
                "is_admin" | "is_active" | "email_notifications" | "sms_notifications" => {
                    q.bind(flag(v))
                }
                // Left as text in PostgreSQL, a BIT(1) in MySQL.
                "is_verified" if $pg => q.bind(text(v)),
                "is_verified" => q.bind(flag(v)),
                "created_at" => q.bind(utc(&$lead, "created_at").map(|t| t.naive_utc())),
                "last_login" => q.bind(utc(&$lead, "last_login")),
                _ => q.bind(text(v)),
            };
        }
        q
    }};
}

impl SourceDb {
    pub async fn new(engine: Engine) -> Option<SourceDb> {
        match engine {
            Engine::Sqlite | Engine::Postgres => {
                let backend = if engine == Engine::Sqlite {
                    Backend::Sqlite
                } else {
                    Backend::Postgres
                };
                let db = TestDb::new(backend).await?;
                let url = db.url.replace("gatehouse.db", "leads.db");
                Some(SourceDb {
                    url,
                    engine,
                    _db: Some(db),
                    mysql: None,
                })
            }
            Engine::MySql => {
                let base = mysql_url()?;
                let name = format!(
                    "gh_leads_{}_{}_{}",
                    std::process::id(),
                    SEQ.fetch_add(1, Ordering::Relaxed),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.subsec_nanos())
                );
                let mut conn = sqlx::MySqlConnection::connect(&base)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("GATEHOUSE_TEST_MYSQL_URL is set but unreachable: {e}")
                    });
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "CREATE DATABASE {name} CHARACTER SET utf8mb4"
                )))
                .execute(&mut conn)
                .await
                .expect("create database");
                let _ = conn.close().await;
                let mut url = url::Url::parse(&base).expect("MySQL URL");
                url.set_path(&name);
                Some(SourceDb {
                    url: url.to_string(),
                    engine,
                    _db: None,
                    mysql: Some((base, name)),
                })
            }
        }
    }

    /// Drops a MySQL test database (the others go with their temp folder or schema).
    pub async fn cleanup(self) {
        if let Some((base, name)) = self.mysql
            && let Ok(mut conn) = sqlx::MySqlConnection::connect(&base).await
        {
            let drop = format!("DROP DATABASE IF EXISTS {name}");
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                .execute(&mut conn)
                .await;
        }
    }

    /// Runs statements on the source.
    pub async fn exec(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self.engine {
            Engine::Sqlite => {
                let opts: sqlx::sqlite::SqliteConnectOptions = self.url.parse().unwrap();
                let mut c = sqlx::SqliteConnection::connect_with(&opts.create_if_missing(true))
                    .await
                    .unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
            }
            Engine::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
            }
            Engine::MySql => {
                let mut c = sqlx::MySqlConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
            }
        }
    }

    /// Creates `table` with the fixture's columns (renamed through `rename`) and its leads.
    pub async fn load(&self, table: &str, rename: &[(&str, &str)]) {
        let cols = columns(rename);
        let types = column_types(self.engine);
        let defs: Vec<String> = cols
            .iter()
            .zip(types)
            .map(|(c, t)| format!("{c} {t}"))
            .collect();
        self.exec(&format!("CREATE TABLE {table} ({})", defs.join(", ")))
            .await;
        let placeholders: Vec<String> = (1..=cols.len())
            .map(|i| match self.engine {
                Engine::MySql => "?".to_string(),
                _ => format!("${i}"),
            })
            .collect();
        let insert = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            cols.join(", "),
            placeholders.join(", ")
        );
        let names = columns(&[]);
        match self.engine {
            Engine::Sqlite => {
                let opts: sqlx::sqlite::SqliteConnectOptions = self.url.parse().unwrap();
                let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
                for lead in leads() {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(insert.clone()));
                    for name in &names {
                        q = match &lead[name.as_str()] {
                            Value::Number(n) => q.bind(n.as_i64()),
                            Value::String(s) => q.bind(s.clone()),
                            _ => q.bind(None::<String>),
                        };
                    }
                    q.execute(&mut c).await.unwrap();
                }
            }
            Engine::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                for lead in leads() {
                    let q = sqlx::query(sqlx::AssertSqlSafe(insert.clone()));
                    typed_binds!(q, lead, names, true)
                        .execute(&mut c)
                        .await
                        .unwrap();
                }
            }
            Engine::MySql => {
                let mut c = sqlx::MySqlConnection::connect(&self.url).await.unwrap();
                for lead in leads() {
                    let q = sqlx::query(sqlx::AssertSqlSafe(insert.clone()));
                    typed_binds!(q, lead, names, false)
                        .execute(&mut c)
                        .await
                        .unwrap();
                }
            }
        }
    }
}

fn column_types(engine: Engine) -> Vec<&'static str> {
    let names = columns(&[]);
    names
        .iter()
        .map(|c| match (engine, c.as_str()) {
            // Untyped, as many SQLite apps leave them.
            (Engine::Sqlite, "id") => "INTEGER PRIMARY KEY",
            (Engine::Sqlite, _) => "",
            (Engine::Postgres, "id") => "BIGINT PRIMARY KEY",
            (Engine::Postgres, "credits") => "INTEGER",
            (
                Engine::Postgres,
                "is_admin" | "is_active" | "email_notifications" | "sms_notifications",
            ) => "BOOLEAN",
            (Engine::Postgres, "created_at") => "TIMESTAMP",
            (Engine::Postgres, "last_login") => "TIMESTAMPTZ",
            (Engine::Postgres, _) => "TEXT",
            (Engine::MySql, "id") => "BIGINT PRIMARY KEY",
            (Engine::MySql, "credits") => "INT",
            (Engine::MySql, "is_verified") => "BIT(1)",
            (
                Engine::MySql,
                "is_admin" | "is_active" | "email_notifications" | "sms_notifications",
            ) => "TINYINT(1)",
            (Engine::MySql, "created_at") => "DATETIME(6)",
            (Engine::MySql, "last_login") => "TIMESTAMP(6) NULL",
            (Engine::MySql, "notes") => "TEXT",
            (Engine::MySql, _) => "VARCHAR(255)",
        })
        .collect()
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse::<f64>().ok().map(|f| f as i64),
        _ => None,
    }
}

fn flag(v: &Value) -> Option<bool> {
    let s = text(v)?.to_lowercase();
    Some(matches!(s.as_str(), "1" | "t" | "true" | "yes"))
}

/// The fixture's canonical UTC value of a timestamp column.
pub fn utc(lead: &Value, column: &str) -> Option<DateTime<Utc>> {
    lead["_utc"][column]
        .as_str()
        .map(|s| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))
}
