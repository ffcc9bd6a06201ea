//! A fresh database per test: a SQLite file in a temp folder, or a new PostgreSQL schema.
//!
//! PostgreSQL tests run when `GATEHOUSE_TEST_POSTGRES_URL` is set and skip with a message
//! otherwise. With `GATEHOUSE_REQUIRE_POSTGRES=1` (CI) a missing URL fails instead.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    /// Keeps the SQLite file's folder alive for the test's duration.
    pub dir: tempfile::TempDir,
}

pub fn postgres_url() -> Option<String> {
    match std::env::var("GATEHOUSE_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            super::skip_or_require(
                "GATEHOUSE_REQUIRE_POSTGRES",
                "GATEHOUSE_TEST_POSTGRES_URL is not set",
                "PostgreSQL tests",
                "set GATEHOUSE_TEST_POSTGRES_URL to run them",
            );
            None
        }
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl TestDb {
    pub async fn new(backend: Backend) -> Option<TestDb> {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => Some(TestDb {
                url: format!("sqlite://{}", dir.path().join("gatehouse.db").display()),
                backend,
                dir,
            }),
            Backend::Postgres => {
                let base = postgres_url()?;
                let schema = format!(
                    "gh_test_{}_{}_{}",
                    std::process::id(),
                    SEQ.fetch_add(1, Ordering::Relaxed),
                    rand_suffix()
                );
                let mut conn = sqlx::PgConnection::connect(&base)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("GATEHOUSE_TEST_POSTGRES_URL is set but unreachable: {e}")
                    });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut conn)
                    .await
                    .expect("create schema");
                let _ = conn.close().await;
                let sep = if base.contains('?') { '&' } else { '?' };
                Some(TestDb {
                    url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
                    backend,
                    dir,
                })
            }
        }
    }

    /// Runs `sql` on the test database from outside Gatehouse, on a connection of its own.
    pub async fn execute(&self, sql: &str) {
        use sqlx::Connection;
        macro_rules! run {
            ($conn:ty) => {{
                let mut c = <$conn>::connect(&self.url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }};
        }
        match self.backend {
            Backend::Sqlite => run!(sqlx::SqliteConnection),
            Backend::Postgres => run!(sqlx::PgConnection),
        }
    }
}

fn rand_suffix() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}
