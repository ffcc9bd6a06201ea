//! Several instances on one database with no sticky sessions: a two-factor sign-in started on
//! one instance finishes on another, throttles counted on one hold on the others, and the
//! shared rows are pruned once expired. (Changes made on one instance and enforced by another
//! within 1 s are in `feed.rs`.)

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gatehouse::clock::Clock;
use http::StatusCode;

use crate::abuse::with_twofa;
use crate::both_backends;
use crate::forward_auth::{FrontProxy, free_port, front_proxy_available, spawn};
use crate::harness::otp::code_at;
use crate::harness::{Backend, Browser, PASSWORD, Resp, TestServer};

both_backends! {
    behind_one_balancer,
    twofa_sign_in_started_on_one_instance_finishes_on_another,
    throttles_counted_on_one_instance_hold_on_another,
    expired_shared_state_is_pruned,
}

/// The same browser (cookies) pointed at another instance.
fn moved_to(other: &TestServer, b: &Browser) -> Browser {
    let mut moved = other.browser();
    moved.cookies = b.cookies.clone();
    moved
}

/// Both instances read the same time, so codes and windows agree.
fn same_time(a: &TestServer, b: &TestServer) {
    b.clock.set(a.clock.now());
}

async fn code_step(b: &mut Browser, csrf: &str, code: &str) -> Resp {
    b.post_form("/_auth/login/2fa", &[("csrf_token", csrf), ("code", code)])
        .await
}

async fn password_step(b: &mut Browser, username: &str, password: &str) -> Resp {
    let token = b.csrf("/_auth/login").await;
    b.post_form(
        "/_auth/login",
        &[
            ("csrf_token", &token),
            ("username", username),
            ("password", password),
            ("next", "/app/"),
        ],
    )
    .await
}

async fn twofa_sign_in_started_on_one_instance_finishes_on_another(b: Backend) {
    let Some(a) = TestServer::start(b, "").await else {
        return;
    };
    let second = a.second("").await;
    same_time(&a, &second);
    let secret = with_twofa(&a, "tess").await;
    // The enrolment used the current time step's code; sign in one step later.
    for s in [&a, &second] {
        s.clock.advance(chrono::Duration::seconds(30));
    }
    let now = a.clock.now().timestamp();
    let right = code_at(&secret, now);
    let wrong = ["000000", "111111", "222222"]
        .into_iter()
        .find(|c| (-1..=1).all(|k| code_at(&secret, now + 30 * k) != *c))
        .unwrap();

    // Password on A.
    let mut on_a = a.browser();
    let r = password_step(&mut on_a, "tess", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(r.header("location"), Some("/_auth/login/2fa"));
    assert!(on_a.cookies.contains_key("gatehouse_2fa"));
    let csrf = on_a.csrf("/_auth/login/2fa").await;

    // The code step is served by B: the pending sign-in and its attempt count are shared.
    let mut on_b = moved_to(&second, &on_a);
    assert_eq!(on_b.page("/_auth/login/2fa").await.status, StatusCode::OK);
    let r = code_step(&mut on_b, &csrf, wrong).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("4 attempts left"), "{}", r.text());
    let r = code_step(&mut on_a, &csrf, wrong).await;
    assert!(
        r.text().contains("3 attempts left"),
        "A counts on: {}",
        r.text()
    );

    let r = code_step(&mut on_b, &csrf, &right).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(r.header("location"), Some("/app/"));
    assert!(on_b.cookies.contains_key("gatehouse_session"));
    let r = on_b.api("/app/", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.echoed("x-auth-user"), vec!["tess"]);
    // The session works on A as well, and the pending sign-in is gone everywhere.
    let mut back_on_a = moved_to(&a, &on_b);
    assert_eq!(back_on_a.api("/app/", &[]).await.status, StatusCode::OK);
    let mut replay = moved_to(&a, &on_a);
    let r = code_step(&mut replay, &csrf, &right).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
}

async fn throttles_counted_on_one_instance_hold_on_another(b: Backend) {
    let keys = "login_attempts_per_ip = 3\nlogin_throttle_window = \"10m\"\n\
                reset_requests_per_ip = 2\nreset_throttle_window = \"10m\"\n";
    let Some(a) = TestServer::start_with_security(b, keys, "").await else {
        return;
    };
    let second = a.second_with_security(keys, "").await;
    same_time(&a, &second);
    a.plain_user("uma").await;

    // Failed sign-ins per address: two on A and one on B use up the allowance of three.
    let (mut on_a, mut on_b) = (a.browser(), second.browser());
    for i in 0..3 {
        let br = if i == 1 { &mut on_b } else { &mut on_a };
        let r = password_step(br, "uma", "not the password at all").await;
        assert_eq!(r.status, StatusCode::OK, "failure {i} is answered");
    }
    for br in [&mut on_b, &mut on_a] {
        let r = password_step(br, "uma", "not the password at all").await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    }
    // The right password too: the address is throttled on every instance.
    let r = password_step(&mut on_b, "uma", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);

    // The window is judged on the clock: once it is over, B lets the address try again.
    for s in [&a, &second] {
        s.clock.advance(chrono::Duration::minutes(11));
    }
    let r = password_step(&mut on_b, "uma", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());

    // Mail requests per address: two on A, the third on B is refused.
    for (i, s) in [&a, &a, &second].into_iter().enumerate() {
        let mut br = s.browser();
        let token = br.csrf("/_auth/reset").await;
        let r = br
            .post_form(
                "/_auth/reset",
                &[("csrf_token", &token), ("email", "uma@example.com")],
            )
            .await;
        let want = if i < 2 {
            StatusCode::SEE_OTHER
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(r.status, want, "reset request {i}: {}", r.text());
    }
}

async fn expired_shared_state_is_pruned(b: Backend) {
    let keys = "login_throttle_window = \"10m\"\nreset_throttle_window = \"10m\"\n\
                twofa_pending_ttl = \"5m\"\n";
    let Some(a) = TestServer::start_with_security(b, keys, "").await else {
        return;
    };
    with_twofa(&a, "vic").await;
    a.plain_user("wes").await;
    let mut br = a.browser();
    assert_eq!(
        password_step(&mut br, "vic", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        password_step(&mut br, "wes", "not the password at all")
            .await
            .status,
        StatusCode::OK
    );
    let token = br.csrf("/_auth/reset").await;
    let r = br
        .post_form(
            "/_auth/reset",
            &[("csrf_token", &token), ("email", "nobody@example.com")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let store = &a.app().store;
    let (throttles, pending) = store.shared_state_rows().await.unwrap();
    assert_eq!(throttles, 2, "sign-ins and mail requests from this address");
    assert_eq!(pending, 1, "one sign-in waits for its code");

    // Past every window and past the pending sign-in's expiry (plus the hour an expired one is
    // kept to be reported as expired): the next portal form prunes.
    a.clock.advance(chrono::Duration::minutes(70));
    let r = password_step(&mut a.browser(), "wes", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let (throttles, pending) = store.shared_state_rows().await.unwrap();
    assert_eq!(
        (throttles, pending),
        (1, 0),
        "only the window opened by the last sign-in is left"
    );
}

/// The compose setup's Caddyfile in front of two test instances: the same balancing, on a
/// loopback port. Its active health check is left out: it probes the readiness endpoint, which
/// the compose test checks; here both instances are up for the whole test.
async fn balancer(a: &TestServer, b: &TestServer) -> FrontProxy {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let compose = include_str!("../../config/compose/Caddyfile");
    assert!(compose.contains("reverse_proxy gatehouse-a:8080 gatehouse-b:8080 {"));
    let body: String = compose
        .lines()
        .filter(|l| !l.trim_start().starts_with("health_"))
        .map(|l| format!("{l}\n"))
        .collect();
    let conf = format!(
        "{{\n\tadmin off\n\tauto_https off\n}}\n{}",
        body.replace(":80 {", &format!("http://127.0.0.1:{port} {{"))
            .replace("gatehouse-a:8080", &a.addr.to_string())
            .replace("gatehouse-b:8080", &b.addr.to_string())
    );
    let path = dir.path().join("Caddyfile");
    std::fs::write(&path, conf).unwrap();
    let child = spawn(
        tokio::process::Command::new("caddy")
            .arg("run")
            .arg("--config")
            .arg(&path)
            .arg("--adapter")
            .arg("caddyfile")
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_CONFIG_HOME", dir.path().join("config")),
    );
    FrontProxy {
        child,
        port,
        _dir: dir,
    }
    .ready()
    .await
}

fn served(s: &TestServer) -> u64 {
    s.app().metrics.requests.load(Ordering::Relaxed)
}

/// Two instances behind one address (round robin, no stickiness): a two-factor sign-in and the
/// pages after it work whichever instance each request reaches, and a sign-out is enforced by
/// both within 1 s.
async fn behind_one_balancer(b: Backend) {
    if !front_proxy_available("caddy") {
        return;
    }
    let Some(a) = TestServer::start(b, "").await else {
        return;
    };
    let second = a.second("").await;
    let lb = balancer(&a, &second).await;
    let secret = with_twofa(&a, "yara").await;
    same_time(&a, &second);
    for s in [&a, &second] {
        s.clock.advance(chrono::Duration::seconds(30));
    }
    let code = code_at(&secret, a.clock.now().timestamp());
    let before = (served(&a), served(&second));

    let mut br = Browser::new(&format!("http://127.0.0.1:{}", lb.port));
    let r = password_step(&mut br, "yara", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let csrf = br.csrf("/_auth/login/2fa").await;
    let r = code_step(&mut br, &csrf, &code).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(r.header("location"), Some("/app/"));
    for _ in 0..4 {
        let r = br.api("/app/", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.echoed("x-auth-user"), vec!["yara"]);
    }
    let after = (served(&a), served(&second));
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "both instances served the flow: {before:?} -> {after:?}"
    );

    // Signed out on one of them: within 1 s neither lets the old cookie in (two refusals in a
    // row, so both instances answered).
    let old = br.cookies.clone();
    assert_eq!(br.logout().await.status, StatusCode::SEE_OTHER);
    let mut replay = Browser::new(&format!("http://127.0.0.1:{}", lb.port));
    replay.cookies = old;
    let start = Instant::now();
    let mut refusals = 0;
    while refusals < 2 {
        let r = replay.api("/app/", &[]).await;
        refusals = if r.status == StatusCode::UNAUTHORIZED {
            refusals + 1
        } else {
            0
        };
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "sign-out not enforced everywhere after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
