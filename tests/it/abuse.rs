//! Abuse resistance over HTTP (issue 16): concurrent guesses against one account and from one
//! address are bounded by slots taken in the database (or throttle) before any check.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::sync::Barrier;

use crate::both_backends;
use crate::harness::{Backend, Browser, PASSWORD, TestServer};

both_backends! {
    concurrent_guesses_verify_at_most_threshold,
    concurrent_failures_throttled_per_ip,
}

/// Reads one counter from `/_auth/metrics`.
pub async fn metric(s: &TestServer, name: &str) -> u64 {
    let r = s.browser().get("/_auth/metrics").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.text()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {}", r.text()))
        .trim()
        .parse()
        .unwrap()
}

/// `n` sign-in form posts for `username`, all released at once by a barrier. Each gets its
/// own browser carrying the same CSRF cookie. Returns the statuses.
pub async fn concurrent_logins(
    s: &TestServer,
    n: usize,
    username: &str,
    password: &str,
) -> Vec<StatusCode> {
    let mut first = s.browser();
    let token = first.csrf("/_auth/login").await;
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("csrf_token", token.as_str()),
            ("username", username),
            ("password", password),
            ("next", "/app/"),
        ])
        .finish();
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let mut b = Browser::new(&s.base);
            b.cookies = first.cookies.clone();
            let barrier = barrier.clone();
            let body = Bytes::from(body.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                b.send(
                    Method::POST,
                    "/_auth/login",
                    &[("content-type", "application/x-www-form-urlencoded")],
                    body,
                )
                .await
                .status
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in futures_util::future::join_all(tasks).await {
        out.push(t.unwrap());
    }
    out
}

async fn concurrent_guesses_verify_at_most_threshold(b: Backend) {
    // The per-address throttle is opened wide so that only the account's lockout is tested.
    let keys = "login_attempts_per_ip = 100000\n";
    let Some(s) = TestServer::start_with_security(b, keys, "").await else {
        return;
    };
    s.plain_user("alice").await;
    let before = metric(&s, "gatehouse_password_verifications_total").await;
    let statuses = concurrent_logins(&s, 150, "alice", "not the password at all").await;
    assert!(
        statuses.iter().all(|st| *st == StatusCode::OK),
        "{statuses:?}"
    );
    let verified = metric(&s, "gatehouse_password_verifications_total").await - before;
    let threshold = u64::from(s.app().settings.security.lockout_threshold);
    assert_eq!(threshold, 5);
    assert!(
        (1..=threshold).contains(&verified),
        "{verified} passwords verified out of 150 (threshold {threshold})"
    );
    // Locked now: the right password gives no session and is not even verified.
    let mut br = s.browser();
    let token = br.csrf("/_auth/login").await;
    let r = br
        .post_form(
            "/_auth/login",
            &[
                ("csrf_token", &token),
                ("username", "alice"),
                ("password", PASSWORD),
                ("next", "/app/"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "refused with the generic page");
    assert!(!br.cookies.contains_key("gatehouse_session"));
    assert_eq!(
        metric(&s, "gatehouse_password_verifications_total").await - before,
        verified
    );
    let row = s.app().accounts.find("alice").await.unwrap();
    assert!(row.is_locked(s.app().now()));
}

async fn concurrent_failures_throttled_per_ip(b: Backend) {
    let keys = "login_attempts_per_ip = 3\nlogin_throttle_window = \"10m\"\n";
    let Some(s) = TestServer::start_with_security(b, keys, "").await else {
        return;
    };
    let before = metric(&s, "gatehouse_password_verifications_total").await;
    s.plain_user("bob").await;
    let statuses = concurrent_logins(&s, 40, "bob", "not the password at all").await;
    let answered = statuses.iter().filter(|st| **st == StatusCode::OK).count();
    let throttled = statuses
        .iter()
        .filter(|st| **st == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((answered, throttled), (3, 37), "{statuses:?}");
    assert_eq!(
        metric(&s, "gatehouse_password_verifications_total").await - before,
        3
    );
}
