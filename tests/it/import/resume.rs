//! An import that stops part-way leaves whole batches only, and the same command finishes it:
//! once when a batch fails on a constraint the test provokes, once when the process is killed.

use std::io::{BufRead, BufReader};

use sqlx::Connection;

use super::fixture::{Engine, SourceDb};
use super::{Target, report, summary_count};
use crate::both_backends;
use crate::harness::Backend;

both_backends! {
    failed_batch_leaves_no_half_batch,
    killed_run_resumes,
}

/// Runs SQL on the target outside the store, to add and drop a trigger.
async fn exec_on_target(t: &Target, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    match t.db.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&t.db.url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&t.db.url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
        }
    }
}

async fn failed_batch_leaves_no_half_batch(b: Backend) {
    let source = SourceDb::new(Engine::Sqlite).await.unwrap();
    source.load("leads", &[]).await;
    let t = Target::new(b).await.with_existing_users().await;
    // Accepted leads in batches of 4: [1 2 3 4] [10 11 12 15] ...; lead 15 cannot be written.
    let trigger = match b {
        Backend::Sqlite => {
            "CREATE TRIGGER provoked BEFORE INSERT ON users WHEN NEW.email = 'henry@example.com' \
             BEGIN SELECT RAISE(ABORT, 'provoked failure'); END;"
        }
        Backend::Postgres => {
            "CREATE FUNCTION provoked() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.email = 'henry@example.com' THEN RAISE EXCEPTION 'provoked failure'; END IF; \
             RETURN NEW; END $$; \
             CREATE TRIGGER provoked BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION provoked();"
        }
    };
    exec_on_target(&t, trigger).await;

    let report_path = t.path("failed.json");
    let out = t.import(&[
        "--from",
        &source.url,
        "--batch",
        "4",
        "--report",
        &report_path,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("leads 10..15") && err.contains("provoked failure"),
        "{err}"
    );
    assert!(err.contains("run the same command again"), "{err}");
    assert_eq!(
        t.user_count().await,
        2 + 4,
        "only the first batch is written"
    );
    assert_eq!(t.imported_activity().await, 4);
    for email in ["erin@example.com", "gina@example.com", "henry@example.com"] {
        let user = t.store.user_by_email(email).await.unwrap();
        assert!(user.is_none(), "{email} of the failed batch was written");
    }
    assert_eq!(report(&report_path)["complete"], false);

    let drop = match b {
        Backend::Sqlite => "DROP TRIGGER provoked;",
        Backend::Postgres => "DROP TRIGGER provoked ON users; DROP FUNCTION provoked();",
    };
    exec_on_target(&t, drop).await;
    let out = t.import_ok(&["--from", &source.url, "--batch", "4"]);
    assert_eq!(summary_count(&out, "imported"), 12, "{out}");
    assert_eq!(summary_count(&out, "already imported"), 4, "{out}");
    assert_eq!(t.user_count().await, 18);
    assert_eq!(t.imported_activity().await, 16);
}

const BATCH: i64 = 100;

async fn killed_run_resumes(b: Backend) {
    // Enough rows that the import is still busy when the kill lands, even on a loaded machine;
    // writing to PostgreSQL is several times slower, so it needs fewer.
    let big: i64 = match b {
        Backend::Sqlite => 50_000,
        Backend::Postgres => 10_000,
    };
    let source = SourceDb::new(Engine::Sqlite).await.unwrap();
    let hash = super::fixture::leads()[0]["password"]
        .as_str()
        .unwrap()
        .to_string();
    source
        .exec(&format!(
            "CREATE TABLE leads (id INTEGER PRIMARY KEY, email TEXT, username TEXT, \
             password TEXT, created_at TEXT); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {big}) \
             INSERT INTO leads SELECT i, 'lead' || i || '@example.com', NULL, '{hash}', \
             '2020-01-01 00:00:00' FROM n;"
        ))
        .await;
    let t = Target::new(b).await;
    let batch = BATCH.to_string();
    let mut child = t
        .command(&["--from", &source.url, "--batch", &batch])
        .spawn()
        .unwrap();
    // Progress lines come after committed batches; kill at the first one, mid-import.
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.find(|l| l.as_ref().is_ok_and(|l| l.starts_with("progress:")));
    assert!(first.is_some(), "no progress line");
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the import finished before it could be killed"
    );

    let written = t.user_count().await;
    assert!(
        written > 0 && written < big,
        "{written} users after the kill"
    );
    assert_eq!(written % BATCH, 0, "a half batch was left: {written} users");
    assert_eq!(t.imported_activity().await, written);

    let out = t.import_ok(&["--from", &source.url, "--batch", &batch]);
    assert_eq!(
        summary_count(&out, "already imported"),
        written as u64,
        "{out}"
    );
    assert_eq!(t.user_count().await, big);
    assert_eq!(t.imported_activity().await, big);
}
