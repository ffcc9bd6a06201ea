//! What guards the sign-in forms: the per-address throttle, CSRF tokens on every form, and the
//! security headers on every portal page.

use super::*;

both_backends! {
    failed_sign_ins_throttled_per_ip,
    forms_need_csrf,
}

async fn failed_sign_ins_throttled_per_ip(b: Backend) {
    let keys = "login_attempts_per_ip = 3\nlogin_throttle_window = \"10m\"\n";
    let Some(s) = TestServer::start_with_security(b, keys, EXTRA).await else {
        return;
    };
    throttle_checks(s).await;
}

async fn throttle_checks(s: TestServer) {
    s.plain_user("eve").await;
    let mut br = s.browser();
    for _ in 0..3 {
        let r = password_step(&mut br, "eve", "wrong password here").await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = password_step(&mut br, "eve", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.header("retry-after").is_some());
    s.clock.advance(Duration::minutes(11));
    let r = password_step(&mut br, "eve", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

async fn forms_need_csrf(b: Backend) {
    let Some(s) = server(b, "[portal]\nregistration = \"open\"\n").await else {
        return;
    };
    s.plain_user("fay").await;
    let mut br = s.browser();
    let _ = br.page("/_auth/login").await; // gets the CSRF cookie
    for (path, fields) in [
        (
            "/_auth/login",
            vec![("username", "fay"), ("password", PASSWORD)],
        ),
        ("/_auth/reset", vec![("email", "fay@example.com")]),
        (
            "/_auth/signup",
            vec![("username", "x"), ("email", "x@example.com")],
        ),
        ("/_auth/login/2fa", vec![("code", "123456")]),
        ("/_auth/account/profile", vec![("first_name", "F")]),
    ] {
        let r = br.post_form(path, &fields).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path} without token");
        let mut with_bad = fields.clone();
        with_bad.push(("csrf_token", "forged"));
        let r = br.post_form(path, &with_bad).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{path} with a forged token"
        );
    }
    // A token from another browser's cookie does not fit this one's.
    let mut other = s.browser();
    let foreign = other.csrf("/_auth/login").await;
    let r = br
        .post_form(
            "/_auth/login",
            &[
                ("csrf_token", &foreign),
                ("username", "fay"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Every /_auth/ page carries the security headers.
    let page = br.page("/_auth/reset").await;
    page.assert_page_security_headers();
}
