//! The activity log's writer on both backends (on SQLite, the writer's own connection; through
//! the pool on PostgreSQL, and `Store::insert_activity` on both): every queued row is stored,
//! in the order it was queued, also a row whose user has gone from the database meanwhile.

use std::time::Duration;

use gatehouse::accounts::NewAccount;
use gatehouse::audit::{AuditLog, RequestActivity, RequestFacts};
use gatehouse::clock::Clock;
use gatehouse::config::{AuditSettings, QueueFullPolicy, Secret};
use gatehouse::store::{ActivityFilter, ActivityRow, NewActivity, Store, Ts, UserId};
use gatehouse::web::RequestCtx;

use crate::both_backends;
use crate::harness::{AccountsFixture, Backend};

both_backends!(a_row_whose_user_is_gone_is_kept_unlinked);

const ROWS: u64 = 45;

/// The rows of one activity type, in the order they were stored (by id).
async fn oldest_first(store: &Store, kind: &str) -> Vec<ActivityRow> {
    let mut rows = store
        .list_activity(&ActivityFilter {
            activity_type: Some(kind.into()),
            limit: 1000,
            ..ActivityFilter::default()
        })
        .await
        .unwrap();
    rows.reverse();
    rows
}

fn path(i: u64) -> String {
    format!("/r/{i}")
}

/// Users are only ever soft-deleted by Gatehouse; a row removed by hand (or by a tool on the
/// database) between a request and the writer's batch must not cost the batch. Before, the
/// foreign key refused that row and with it every other row of its batch, five times over,
/// until the batch was dropped.
async fn a_row_whose_user_is_gone_is_kept_unlinked(b: Backend) {
    let Some(f) = AccountsFixture::new(b).await else {
        return;
    };
    let mut ids = Vec::new();
    for name in ["kept", "gone"] {
        let pw = Secret::new("correct horse battery staple".to_string());
        let account = NewAccount::new(name, format!("{name}@example.com"), Some(pw));
        ids.push(f.accounts.create_user(account, None).await.unwrap().id);
    }
    let (kept, gone) = (ids[0], ids[1]);
    f.db.execute(&format!("DELETE FROM users WHERE id = {}", gone.0))
        .await;

    let settings = AuditSettings {
        queue_capacity: 1024,
        // One batch: statements of 32, 8 and 1 rows on SQLite's own connection.
        batch_size: 64,
        flush_interval: Duration::from_millis(20),
        on_full: QueueFullPolicy::Wait,
    };
    let (log, writer) = AuditLog::spawn(f.store.clone(), &settings);
    let ctx = RequestCtx::new(
        "192.0.2.9:4000".parse().unwrap(),
        false,
        &http::HeaderMap::new(),
        &[],
        &http::HeaderName::from_static("x-request-id"),
    );
    let at = Ts(f.clock.now());
    let owner = |i: u64| if i % 3 == 1 { gone } else { kept };
    for i in 0..ROWS {
        let facts = RequestFacts {
            method: &http::Method::GET,
            path: &path(i),
            route: Some("/r/**"),
            status: 200,
            elapsed: Duration::from_micros(100),
        };
        log.record_request(RequestActivity::new(owner(i), at, &ctx, facts))
            .await;
    }
    writer.shutdown().await;
    let st = log.stats();
    assert_eq!((st.queued, st.written, st.dropped), (ROWS, ROWS, 0));

    let rows = oldest_first(&f.store, "request").await;
    let described: Vec<String> = rows
        .iter()
        .map(|r| r.activity_description.clone().unwrap_or_default())
        .collect();
    let expected: Vec<String> = (0..ROWS)
        .map(|i| format!("GET {} → 200", path(i)))
        .collect();
    assert_eq!(described, expected, "every row, in the order queued");
    for (i, r) in (0..ROWS).zip(&rows) {
        let user = (owner(i) == kept).then_some(kept);
        assert_eq!(r.user_id, user, "row {i}");
    }

    // The pool's own statement: two rows in one batch, one of them for the user who is gone.
    let row = |user: UserId, what: &str| NewActivity {
        user_id: Some(user),
        activity_type: "probe".into(),
        description: Some(what.into()),
        ip_address: None,
        user_agent: None,
        metadata: None,
        created_at: at,
    };
    f.store
        .insert_activity(&[row(gone, "gone"), row(kept, "kept")])
        .await
        .unwrap();
    let probes = oldest_first(&f.store, "probe").await;
    let seen: Vec<_> = probes
        .iter()
        .map(|r| (r.activity_description.as_deref(), r.user_id))
        .collect();
    assert_eq!(seen, [(Some("gone"), None), (Some("kept"), Some(kept))]);
}
