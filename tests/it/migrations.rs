//! Migrations that rewrite data, run against a database left by the migrations before them.

use std::path::Path;

use gatehouse::store::{Store, UserId};
use sqlx::migrate::Migrator;

use crate::both_backends;
use crate::harness::{Backend, TestDb};

/// A migrator with only the migrations numbered below `before`, from `migrations/<backend>`.
async fn migrations_before(backend: Backend, before: i64, into: &Path) -> Migrator {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        });
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let version: i64 = name.split('_').next().unwrap().parse().unwrap();
        if version < before {
            std::fs::copy(&path, into.join(&name)).unwrap();
        }
    }
    Migrator::new(into).await.unwrap()
}

/// Runs `sql` statements on the test database as it is, outside the application.
async fn run_sql(db: &TestDb, old: &Migrator, sql: &[&str]) {
    match db.backend {
        Backend::Sqlite => {
            use std::str::FromStr;
            let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&db.url)
                .unwrap()
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
            old.run(&pool).await.unwrap();
            for s in sql {
                sqlx::raw_sql(sqlx::AssertSqlSafe(*s))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            old.run(&pool).await.unwrap();
            for s in sql {
                sqlx::raw_sql(sqlx::AssertSqlSafe(*s))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
    }
}

both_backends! {
    role_names_written_before_normalisation_are_rewritten,
}

/// Rows granted before role names were normalised (`Admin`, ` ADMIN `) reach the app as
/// `admin`; where a user holds several spellings, one row stays, the active one first.
async fn role_names_written_before_normalisation_are_rewritten(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let old = migrations_before(backend, 9, dir.path()).await;
    let now = match backend {
        Backend::Sqlite => "'2026-01-01T00:00:00Z'",
        Backend::Postgres => "TIMESTAMPTZ '2026-01-01 00:00:00Z'",
    };
    let (t, f) = match backend {
        Backend::Sqlite => ("1", "0"),
        Backend::Postgres => ("TRUE", "FALSE"),
    };
    let overriding = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => "OVERRIDING SYSTEM VALUE",
    };
    let users = format!(
        "INSERT INTO users (id, username, email, created_at, updated_at) {overriding} VALUES \
         (1, 'ann', 'ann@example.com', {now}, {now}), \
         (2, 'bob', 'bob@example.com', {now}, {now}), \
         (3, 'cid', 'cid@example.com', {now}, {now})"
    );
    // ann: one odd spelling. bob: an inactive normal row and an active odd one (the active
    // one must win). cid: two odd spellings of one role and an unrelated role.
    let roles = format!(
        "INSERT INTO user_roles (user_id, role_name, granted_at, is_active) VALUES \
         (1, 'Admin', {now}, {t}), \
         (2, 'admin', {now}, {f}), (2, ' ADMIN ', {now}, {t}), \
         (3, 'Editor', {now}, {t}), (3, 'EDITOR', {now}, {t}), (3, 'support', {now}, {t})"
    );
    run_sql(&db, &old, &[&users, &roles]).await;

    let store = Store::connect(&db.url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let roles = |id: i64| {
        let store = store.clone();
        async move {
            let mut r: Vec<(String, bool)> = store
                .roles_of(UserId(id))
                .await
                .unwrap()
                .into_iter()
                .map(|r| (r.role_name, r.is_active))
                .collect();
            r.sort();
            r
        }
    };
    assert_eq!(roles(1).await, vec![("admin".to_string(), true)]);
    assert_eq!(roles(2).await, vec![("admin".to_string(), true)]);
    assert_eq!(
        roles(3).await,
        vec![("editor".to_string(), true), ("support".to_string(), true)]
    );
}
