//! Abuse resistance over HTTP: concurrent guesses against one account and from one
//! address are bounded by slots taken in the database (or throttle) before any check.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::sync::Barrier;

use crate::both_backends;
use crate::harness::otp::{base32_decode, code_at};
use crate::harness::{Backend, Browser, PASSWORD, Resp, TestServer};

both_backends! {
    concurrent_guesses_verify_at_most_threshold,
    concurrent_failures_throttled_per_ip,
    account_page_password_checks_throttled_per_ip,
    twofa_budget_shared_by_pending_sign_ins,
    ipv6_clients_throttled_per_64,
    role_names_normalised_in_routes,
    sign_up_answers_the_same_for_a_taken_address,
    csrf_token_bound_to_the_session,
    look_alike_usernames_refused,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_only_for_allowed_clients_never_through_a_proxy() {
    let b = Backend::Sqlite;
    let s = TestServer::start(b, "").await.unwrap();
    let mut br = s.browser();
    assert_eq!(br.get("/_auth/metrics").await.status, StatusCode::OK);
    for (h, v) in [
        ("x-forwarded-for", "203.0.113.5"),
        ("forwarded", "for=203.0.113.5"),
        ("x-real-ip", "203.0.113.5"),
    ] {
        let r = br
            .send(Method::GET, "/_auth/metrics", &[(h, v)], Bytes::new())
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{h}");
    }
    // From a trusted proxy: refused even for a loopback client.
    let s = behind_proxy(b, "", "").await.unwrap();
    assert_eq!(
        s.browser().get("/_auth/metrics").await.status,
        StatusCode::FORBIDDEN
    );
    // Loopback not in metrics_allow.
    let s = TestServer::start_edited(b, crate::harness::server::ROUTES, |t| {
        t.replace("[server]\n", "[server]\nmetrics_allow = [\"10.0.0.0/8\"]\n")
    })
    .await
    .unwrap();
    assert_eq!(
        s.browser().get("/_auth/metrics").await.status,
        StatusCode::FORBIDDEN
    );
    // Its own listener: the main one answers 404.
    let s = TestServer::start_edited(b, crate::harness::server::ROUTES, |t| {
        t.replace("[server]\n", "[server]\nmetrics_listen = \"127.0.0.1:0\"\n")
    })
    .await
    .unwrap();
    assert_eq!(
        s.browser().get("/_auth/metrics").await.status,
        StatusCode::NOT_FOUND
    );
    let addr = s.running.as_ref().unwrap().metrics_addr.unwrap();
    let mut m = Browser::new(&format!("http://{addr}"));
    let r = m.get("/_auth/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("gatehouse_password_verifications_total "));
    assert_eq!(m.get("/app/").await.status, StatusCode::NOT_FOUND);
    let r = m
        .send(
            Method::GET,
            "/_auth/metrics",
            &[("x-forwarded-for", "203.0.113.5")],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
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

/// One form post: the browser's cookies, the path, the fields.
pub type Post = (HashMap<String, String>, &'static str, Vec<(String, String)>);

/// Form posts sent all at once (released together by a barrier), each from its own browser
/// holding the given cookies. Returns the responses in order.
pub async fn concurrent_posts(s: &TestServer, jobs: Vec<Post>) -> Vec<Resp> {
    let barrier = Arc::new(Barrier::new(jobs.len()));
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|(cookies, path, fields)| {
            let mut b = Browser::new(&s.base);
            b.cookies = cookies;
            let barrier = barrier.clone();
            let body: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields)
                .finish();
            tokio::spawn(async move {
                barrier.wait().await;
                b.send(
                    Method::POST,
                    path,
                    &[("content-type", "application/x-www-form-urlencoded")],
                    Bytes::from(body),
                )
                .await
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in futures_util::future::join_all(tasks).await {
        out.push(t.unwrap());
    }
    out
}

/// `n` sign-in form posts for `username` at once, sharing one CSRF cookie. Returns statuses.
pub async fn concurrent_logins(
    s: &TestServer,
    n: usize,
    username: &str,
    password: &str,
) -> Vec<StatusCode> {
    let mut first = s.browser();
    let token = first.csrf("/_auth/login").await;
    let fields = vec![
        ("csrf_token".to_string(), token),
        ("username".to_string(), username.to_string()),
        ("password".to_string(), password.to_string()),
        ("next".to_string(), "/app/".to_string()),
    ];
    let jobs = (0..n)
        .map(|_| (first.cookies.clone(), "/_auth/login", fields.clone()))
        .collect();
    concurrent_posts(s, jobs)
        .await
        .into_iter()
        .map(|r| r.status)
        .collect()
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

/// The account page checks the current password too (password and email changes): the
/// address's allowance is taken before the check, so concurrent wrong guesses from a signed-in
/// browser are verified no more often than the throttle allows.
async fn account_page_password_checks_throttled_per_ip(b: Backend) {
    let keys = "login_attempts_per_ip = 3\nlogin_throttle_window = \"10m\"\n";
    let Some(s) = TestServer::start_with_security(b, keys, "").await else {
        return;
    };
    let mut br = s.signed_in("carol").await;
    let token = br.csrf("/_auth/account").await;
    let before = metric(&s, "gatehouse_password_verifications_total").await;
    let fields: Vec<(String, String)> = [
        ("csrf_token", token.as_str()),
        ("current_password", "not the password at all"),
        ("new_password", "a new and long enough passphrase"),
        ("new_password_confirm", "a new and long enough passphrase"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let jobs = (0..30)
        .map(|_| {
            (
                br.cookies.clone(),
                "/_auth/account/password",
                fields.clone(),
            )
        })
        .collect();
    let statuses: Vec<StatusCode> = concurrent_posts(&s, jobs)
        .await
        .into_iter()
        .map(|r| r.status)
        .collect();
    let throttled = statuses
        .iter()
        .filter(|st| **st == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(throttled, 27, "{statuses:?}");
    assert_eq!(
        metric(&s, "gatehouse_password_verifications_total").await - before,
        3
    );
    // The address has used its allowance: the right password is not even checked now.
    let r = br
        .post_form(
            "/_auth/account/password",
            &[
                ("csrf_token", &token),
                ("current_password", PASSWORD),
                ("new_password", "a new and long enough passphrase"),
                ("new_password_confirm", "a new and long enough passphrase"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

/// Turns 2FA on for `username` through the library; returns the TOTP secret.
pub async fn with_twofa(s: &TestServer, username: &str) -> Vec<u8> {
    use gatehouse::clock::Clock;
    let app = s.app();
    let user = s.plain_user(username).await;
    let e = app
        .accounts
        .twofa_enrolment(&app.keys, &user, "Gatehouse")
        .await
        .unwrap();
    let secret = base32_decode(e.secret_base32.expose());
    let code = code_at(&secret, s.clock.now().timestamp());
    app.accounts
        .confirm_twofa(&app.keys, user.id, &code, &Default::default())
        .await
        .unwrap();
    secret
}

async fn twofa_budget_shared_by_pending_sign_ins(b: Backend) {
    let keys = "login_attempts_per_ip = 100000
";
    let Some(s) = TestServer::start_with_security(b, keys, "").await else {
        return;
    };
    use gatehouse::clock::Clock;
    let secret = with_twofa(&s, "carol").await;
    let now = s.clock.now().timestamp();
    let right: Vec<String> = (-1..=1).map(|k| code_at(&secret, now + 30 * k)).collect();
    let wrong = ["000000", "111111", "222222", "333333"]
        .into_iter()
        .find(|c| !right.iter().any(|r| r == c))
        .unwrap();
    // Ten pending sign-ins (password accepted, waiting for a code), five wrong codes each.
    let mut jobs = Vec::new();
    for _ in 0..10 {
        let mut br = s.browser();
        let token = br.csrf("/_auth/login").await;
        let r = br
            .post_form(
                "/_auth/login",
                &[
                    ("csrf_token", &token),
                    ("username", "carol"),
                    ("password", PASSWORD),
                    ("next", "/app/"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
        assert!(br.cookies.contains_key("gatehouse_2fa"));
        let fields = vec![
            ("csrf_token".to_string(), token),
            ("code".to_string(), wrong.to_string()),
        ];
        for _ in 0..5 {
            jobs.push((br.cookies.clone(), "/_auth/login/2fa", fields.clone()));
        }
    }
    let rs = concurrent_posts(&s, jobs).await;
    let checked = rs
        .iter()
        .filter(|r| r.status == StatusCode::OK && r.text().contains("not right"))
        .count();
    // Every other attempt is refused unchecked: 429 once the budget is spent, or 400 when a
    // concurrent attempt on the same pending sign-in has already ended it ("sign in again").
    let refused = rs
        .iter()
        .filter(|r| {
            r.status == StatusCode::TOO_MANY_REQUESTS
                || (r.status == StatusCode::BAD_REQUEST && r.text().contains("Sign in"))
        })
        .count();
    let statuses: Vec<u16> = rs.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(
        (checked, refused),
        (5, 45),
        "budget of 5 codes per account; statuses {statuses:?}"
    );
    let sessions = rs
        .iter()
        .flat_map(|r| r.headers.get_all("set-cookie"))
        .filter(|c| c.to_str().unwrap_or("").starts_with("gatehouse_session="))
        .count();
    assert_eq!(sessions, 0, "no wrong code starts a session");
    let row = s.app().accounts.find("carol").await.unwrap();
    assert!(
        row.is_locked(s.app().now()),
        "five wrong codes lock the account"
    );
    // Locked: the password step does not open a new code step.
    let mut br = s.browser();
    let token = br.csrf("/_auth/login").await;
    let r = br
        .post_form(
            "/_auth/login",
            &[
                ("csrf_token", &token),
                ("username", "carol"),
                ("password", PASSWORD),
                ("next", "/app/"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!br.cookies.contains_key("gatehouse_2fa"));
}

/// A server behind a trusted proxy on loopback, so tests choose the client address with
/// `X-Forwarded-For`.
pub async fn behind_proxy(b: Backend, security: &str, extra: &str) -> Option<TestServer> {
    TestServer::start_edited(
        b,
        &format!("{security}\n{}\n{extra}", crate::harness::server::ROUTES),
        |t| {
            t.replace(
                "[server]\n",
                "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n",
            )
        },
    )
    .await
}

async fn ipv6_clients_throttled_per_64(b: Backend) {
    let keys = "login_attempts_per_ip = 2\nlogin_throttle_window = \"10m\"\n";
    let Some(s) = behind_proxy(b, keys, "").await else {
        return;
    };
    s.plain_user("dora").await;
    let mut br = s.browser();
    let token = br.csrf("/_auth/login").await;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("csrf_token", token.as_str()),
            ("username", "dora"),
            ("password", "not the password at all"),
        ])
        .finish();
    let mut from = async |addr: &str| {
        br.send(
            Method::POST,
            "/_auth/login",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("x-forwarded-for", addr),
            ],
            Bytes::from(body.clone()),
        )
        .await
        .status
    };
    // Three addresses of one /64: two failures, then the third is throttled.
    assert_eq!(from("2001:db8:7:1::1").await, StatusCode::OK);
    assert_eq!(from("2001:db8:7:1::2").await, StatusCode::OK);
    assert_eq!(
        from("2001:db8:7:1:abcd:ef01:2345:6789").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another /64 has its own allowance.
    assert_eq!(from("2001:db8:7:2::1").await, StatusCode::OK);
}

async fn role_names_normalised_in_routes(b: Backend) {
    let routes = "[[routes]]\npath = \"/staff/**\"\nroles = [\" Staff \"]\n";
    let Some(s) = TestServer::start(b, routes).await else {
        return;
    };
    let u = s.plain_user("erin").await;
    let row = s
        .app()
        .accounts
        .grant_role(u.id, "STAFF", None, None)
        .await
        .unwrap();
    assert_eq!(row.role_name, "staff");
    let mut br = s.browser();
    br.login("erin", PASSWORD).await;
    let r = br.api("/staff/x", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.echoed("x-auth-roles"), vec!["staff".to_string()]);
}

async fn sign_up_answers_the_same_for_a_taken_address(b: Backend) {
    use crate::harness::mail::{mails_to, wait_for_mail};
    let Some(s) = TestServer::start(b, "[portal]\nregistration = \"open\"\n").await else {
        return;
    };
    s.plain_user("kim").await; // kim@example.com
    let outbox = s.db.dir.path().join("data").join("outbox");
    let sign_up = async |username: &str, email: &str| {
        let mut br = s.browser();
        let token = br.csrf("/_auth/signup").await;
        br.post_form(
            "/_auth/signup",
            &[
                ("csrf_token", &token),
                ("username", username),
                ("email", email),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await
    };
    let fresh = sign_up("newbie", "newbie@example.com").await;
    let taken = sign_up("other1", "KIM@example.com").await;
    // Both are the same redirect (the new account's with its session cookie).
    assert_eq!(fresh.status, StatusCode::SEE_OTHER, "{}", fresh.text());
    assert_eq!(taken.status, fresh.status);
    assert_eq!(taken.header("location"), fresh.header("location"));
    assert_eq!(
        taken
            .text()
            .replace("other1", "newbie")
            .replace("KIM@example.com", "newbie@example.com"),
        fresh.text(),
        "the page does not tell whether the address has an account"
    );
    assert!(
        s.app()
            .accounts
            .get_by_username("other1")
            .await
            .unwrap()
            .is_none()
    );
    let mail = wait_for_mail(&outbox, "kim@example.com", 1).await;
    assert!(
        mail.text.contains("Someone tried to sign up"),
        "{}",
        mail.text
    );
    assert!(mail.text.contains("/_auth/reset"));
    assert_eq!(mails_to(&outbox, "kim@example.com").len(), 1);
}

async fn csrf_token_bound_to_the_session(b: Backend) {
    let Some(s) = TestServer::start(b, "").await else {
        return;
    };
    let mut a = s.signed_in("ann").await;
    let mut bob = s.signed_in("bob").await;
    let token_a = a.csrf("/_auth/account").await;
    // Bob's browser with Ann's CSRF cookie and token (as if planted): his session differs.
    bob.cookies.insert(
        "gatehouse_csrf".into(),
        a.cookies.get("gatehouse_csrf").unwrap().clone(),
    );
    let fields = [("csrf_token", token_a.as_str()), ("first_name", "Mallory")];
    let r = bob.post_form("/_auth/account/profile", &fields).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    // The same token in Ann's own browser works.
    let r = a.post_form("/_auth/account/profile", &fields).await;
    assert_ne!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    // A token minted before sign-in (no session) no longer passes once there is a session.
    let mut c = s.browser();
    let anonymous = c.csrf("/_auth/login").await;
    c.login("ann", PASSWORD).await;
    let r = c
        .post_form(
            "/_auth/account/profile",
            &[("csrf_token", anonymous.as_str())],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// Posts the sign-up form; returns the response.
async fn sign_up_as(s: &TestServer, username: &str, email: &str) -> Resp {
    let mut br = s.browser();
    let token = br.csrf("/_auth/signup").await;
    br.post_form(
        "/_auth/signup",
        &[
            ("csrf_token", &token),
            ("username", username),
            ("email", email),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ],
    )
    .await
}

async fn look_alike_usernames_refused(b: Backend) {
    let open = "[portal]\nregistration = \"open\"\n";
    let Some(s) = TestServer::start(b, open).await else {
        return;
    };
    s.plain_user("admin").await;
    // Fullwidth letters are NFKC-normalised to "admin": taken.
    let r = sign_up_as(&s, "ａｄｍｉｎ", "fw@example.com").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("already taken"), "{}", r.text());
    // Cyrillic "а": outside the default pattern.
    let r = sign_up_as(&s, "\u{430}dmin", "cy@example.com").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("ASCII letters"), "{}", r.text());
    // ASCII look-alike ("rn" for "m"): same skeleton, refused like a taken name.
    let r = sign_up_as(&s, "adrnin", "rn@example.com").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("already taken"), "{}", r.text());
    // Email-style names work; normalised names are stored normalised.
    assert_eq!(
        sign_up_as(&s, "kim+work@example.com", "kw@example.com")
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        sign_up_as(&s, "ｌｅｅ２", "lee@example.com").await.status,
        StatusCode::SEE_OTHER
    );
    assert!(
        s.app()
            .accounts
            .get_by_username("lee2")
            .await
            .unwrap()
            .is_some()
    );

    // A wider pattern admits other scripts; the skeleton still catches the look-alike.
    let keys = "username_pattern = \"[\\\\p{L}0-9._-]+\"\n";
    let Some(s) = TestServer::start_with_security(b, keys, open).await else {
        return;
    };
    s.plain_user("admin").await;
    let r = sign_up_as(&s, "\u{430}dmin", "cy@example.com").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("already taken"), "{}", r.text());
    assert_eq!(
        sign_up_as(&s, "zoë", "zoe@example.com").await.status,
        StatusCode::SEE_OTHER
    );
}

#[test]
fn username_pattern_checked_at_load() {
    let err = gatehouse::config::from_toml("[security]\nusername_pattern = \"[a-z\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("security.username_pattern (line 2)"), "{err}");
}
