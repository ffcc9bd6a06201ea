//! The admin JSON API, API tokens, the admin console and the `token` CLI, on both backends.
//! Shared helpers here; tests by area in the submodules.

mod access;
mod api;
mod bodies;
mod console;
mod console_activity;
mod console_ux;
mod tokens;

use bytes::Bytes;
use chrono::Duration;
use gatehouse::accounts::ClientInfo;
use gatehouse::clock::Clock;
use gatehouse::session::SessionOptions;
use gatehouse::store::{UserId, UserRow};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Backend, Browser, Cli, Resp, TestServer};

pub(crate) async fn server(b: Backend) -> TestServer {
    TestServer::start(b, "").await.expect("backend available")
}

/// A token acting as `user`.
pub(crate) async fn token_for(s: &TestServer, user: &UserRow) -> String {
    s.app()
        .tokens
        .create(user, "test", None, None)
        .await
        .expect("token")
        .0
}

pub(crate) async fn admin(s: &TestServer, name: &str) -> (UserRow, String) {
    let u = s.user(name, |a| a.is_admin = true).await;
    let t = token_for(s, &u).await;
    (u, t)
}

/// One API call with an optional bearer token and JSON body.
pub(crate) async fn call(
    b: &mut Browser,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = vec![("accept", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    let bytes = body.map_or_else(Bytes::new, |v| Bytes::from(v.to_string()));
    b.send(method, path, &headers, bytes).await
}

pub(crate) async fn api(
    s: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Resp {
    call(&mut s.browser(), method, path, token, body).await
}

/// Waits for the activity writer to flush rows matching `f`.
pub(crate) async fn activity_of(
    s: &TestServer,
    token: &str,
    query: &str,
    min: usize,
) -> Vec<Value> {
    for _ in 0..100 {
        let r = api(
            s,
            Method::GET,
            &format!("/_auth/api/{query}"),
            Some(token),
            None,
        )
        .await;
        assert_status(&r, StatusCode::OK, query);
        let rows = r.json()["activity"].as_array().cloned().unwrap_or_default();
        if rows.len() >= min {
            return rows;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("fewer than {min} activity rows for {query}");
}

/// Turns 2FA on directly in the database (the 2FA pages are not part of this suite).
pub(crate) async fn set_twofa(s: &TestServer, id: UserId) {
    const SQL: &str = "UPDATE users SET twofa_enabled = TRUE, twofa_secret = 'enc:secret', \
        twofa_recovery_codes = '[\"h1\"]', twofa_last_step = 42 WHERE id = $1";
    match s.db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&s.db.url).await.unwrap();
            sqlx::query(SQL).bind(id.0).execute(&pool).await.unwrap();
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&s.db.url).await.unwrap();
            sqlx::query(SQL).bind(id.0).execute(&pool).await.unwrap();
        }
    }
}

pub(crate) fn assert_status(r: &Resp, want: StatusCode, what: &str) {
    assert_eq!(r.status, want, "{what}: {}", r.text());
}
