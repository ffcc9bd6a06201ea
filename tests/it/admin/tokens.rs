//! API tokens: expiry, revocation, current roles, throttling, and the `token` CLI.

use super::*;
use crate::both_backends;

both_backends! {
    expired_and_revoked_tokens_are_refused,
    token_cli_create_list_revoke,
}

async fn expired_and_revoked_tokens_are_refused(b: Backend) {
    let s = server(b).await;
    let boss = s.user("boss", |a| a.is_admin = true).await;
    let expiry = gatehouse::store::Ts(s.clock.now() + Duration::hours(1));
    let (short, row) = s
        .app()
        .tokens
        .create(&boss, "short", Some(expiry), None)
        .await
        .unwrap();
    let (long, long_row) = s
        .app()
        .tokens
        .create(&boss, "long", None, None)
        .await
        .unwrap();
    for t in [&short, &long] {
        assert_status(
            &api(&s, Method::GET, "/_auth/api/users", Some(t), None).await,
            StatusCode::OK,
            "live token",
        );
    }
    s.clock.advance(Duration::minutes(61));
    let r = api(&s, Method::GET, "/_auth/api/users", Some(&short), None).await;
    assert_status(&r, StatusCode::UNAUTHORIZED, "expired token");
    assert_eq!(r.json()["error"], "unauthenticated");
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    assert_status(
        &api(&s, Method::GET, "/_auth/api/users", Some(&long), None).await,
        StatusCode::OK,
        "long token",
    );
    // Revoked: refused at once, although it was cached.
    assert!(s.app().tokens.revoke(long_row.id, None).await.unwrap());
    assert!(!s.app().tokens.revoke(long_row.id, None).await.unwrap());
    assert_status(
        &api(&s, Method::GET, "/_auth/api/users", Some(&long), None).await,
        StatusCode::UNAUTHORIZED,
        "revoked",
    );
    let _ = row;
    // Garbage, wrong scheme, unknown.
    for bad in ["nope", "Basic YWxhZGRpbjpvcGVu"] {
        let r = s
            .browser()
            .send(
                Method::GET,
                "/_auth/api/users",
                &[("authorization", bad)],
                Bytes::new(),
            )
            .await;
        assert_status(&r, StatusCode::UNAUTHORIZED, bad);
    }
    // A token acts with its user's current roles: demoting the user takes effect at once.
    let (_, root_t) = {
        let root = s.user("root", |a| a.is_superuser = true).await;
        let t = token_for(&s, &root).await;
        (root, t)
    };
    let fresh = token_for(&s, &boss).await;
    assert_status(
        &api(&s, Method::GET, "/_auth/api/users", Some(&fresh), None).await,
        StatusCode::OK,
        "admin",
    );
    let r = api(
        &s,
        Method::PATCH,
        &format!("/_auth/api/users/{}", boss.id),
        Some(&root_t),
        Some(json!({"is_admin": false})),
    )
    .await;
    assert_status(&r, StatusCode::OK, "demote");
    assert_status(
        &api(&s, Method::GET, "/_auth/api/users", Some(&fresh), None).await,
        StatusCode::FORBIDDEN,
        "demoted",
    );
    // A deleted user's tokens stop working.
    let r = api(
        &s,
        Method::DELETE,
        &format!("/_auth/api/users/{}", boss.id),
        Some(&root_t),
        None,
    )
    .await;
    assert_status(&r, StatusCode::OK, "delete");
    assert_status(
        &api(
            &s,
            Method::GET,
            &format!("/_auth/api/users/{}", boss.id),
            Some(&fresh),
            None,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "deleted user's token",
    );
}

async fn token_cli_create_list_revoke(b: Backend) {
    let s = server(b).await;
    s.user("boss", |a| a.is_admin = true).await;
    let cli = Cli::new(&s.db);
    let run = |args: &[&str]| cli.command(args).output().unwrap();
    let out = run(&[
        "token",
        "create",
        "--user",
        "boss",
        "--name",
        "deploy",
        "--expires",
        "30d",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().last().unwrap().trim().to_string();
    assert_eq!(token.len(), 43, "{stdout}");
    // The real server accepts it.
    assert_status(
        &api(&s, Method::GET, "/_auth/api/users", Some(&token), None).await,
        StatusCode::OK,
        "CLI token",
    );
    let second = run(&["token", "create", "--user", "boss"]);
    let second_token = String::from_utf8(second.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let out = run(&["token", "list", "--json"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains(&token) && !text.contains("hash"), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let tokens = v["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    assert_eq!(
        (tokens[0]["name"].as_str(), tokens[0]["status"].as_str()),
        (Some("deploy"), Some("active"))
    );
    assert!(tokens[0]["expires_at"].is_string() && tokens[0]["last_used_at"].is_string());
    let id = tokens[1]["id"].to_string();
    let out = run(&["token", "revoke", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&run(&["token", "list", "--json"]).stdout).unwrap();
    assert_eq!(v["tokens"][1]["status"], "revoked");
    assert_status(
        &api(
            &s,
            Method::GET,
            "/_auth/api/users",
            Some(&second_token),
            None,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "revoked by the CLI",
    );
    let again = run(&["token", "revoke", &id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("no active token"));
    let table = String::from_utf8(run(&["token", "list"]).stdout).unwrap();
    assert!(
        table.contains("deploy") && table.contains("revoked"),
        "{table}"
    );
    assert_eq!(
        run(&["token", "create", "--user", "nobody"]).status.code(),
        Some(1)
    );
    assert_eq!(
        run(&["token", "create", "--user", "boss", "--expires", "someday"])
            .status
            .code(),
        Some(1)
    );
}

/// Guessing tokens is throttled per client address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_bearer_attempts_are_throttled() {
    let s = server(Backend::Sqlite).await;
    let (_, good) = admin(&s, "boss").await;
    let bad = "A".repeat(43);
    for _ in 0..gatehouse::session::api_tokens::MAX_FAILURES {
        let r = api(&s, Method::GET, "/_auth/api/users", Some(&bad), None).await;
        assert_status(&r, StatusCode::UNAUTHORIZED, "wrong token");
    }
    let r = api(&s, Method::GET, "/_auth/api/users", Some(&bad), None).await;
    assert_status(&r, StatusCode::TOO_MANY_REQUESTS, "throttled");
    assert_eq!(r.json()["error"], "too_many_requests");
    assert!(r.header("retry-after").is_some());
    // The browser session path is not affected.
    let mut br = s.signed_in("carol").await;
    let r = call(&mut br, Method::GET, "/_auth/api/csrf", None, None).await;
    assert_status(&r, StatusCode::OK, "csrf");
    let _ = good;
}
