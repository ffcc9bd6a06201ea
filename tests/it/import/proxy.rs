//! Imported users sign in through the running proxy with their original Werkzeug passwords.

use http::StatusCode;

use super::fixture::{Engine, SourceDb};
use crate::both_backends;
use crate::harness::{Backend, Cli, TestServer};

both_backends! {
    imported_users_sign_in_through_the_proxy,
}

async fn imported_users_sign_in_through_the_proxy(b: Backend) {
    let source = SourceDb::new(Engine::Sqlite).await.unwrap();
    source.load("leads", &[]).await;
    let Some(mut s) = TestServer::start(b, "").await else {
        return;
    };
    Cli::new(&s.db).ok(&["import-leads", "--from", &source.url], None);

    // alice: pbkdf2, premium, admin. bob: scrypt, signs in by email in another case.
    let mut alice = s.browser();
    alice.login("alice", "alice-pass-1").await;
    let r = alice.api("/premium/report", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.echoed("x-auth-user"), vec!["alice"]);
    assert_eq!(alice.api("/admin/panel", &[]).await.status, StatusCode::OK);
    let mut bob = s.browser();
    bob.login("BOB@example.com", "bob pass ✓").await;
    assert_eq!(
        bob.api("/app/", &[]).await.echoed("x-auth-user"),
        vec!["bob"]
    );

    let store = s.app().store.clone();
    for name in ["alice", "bob"] {
        let u = store.user_by_username(name).await.unwrap().unwrap();
        let hash = u.password_hash.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{name}: {hash}");
        assert!(u.last_login.is_some());
    }
    let _ = s.shutdown().await;
}
