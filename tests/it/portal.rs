//! The sign-in portal end to end over HTTP: two-factor sign-in and enrolment, recovery codes,
//! the pending code step, throttling, CSRF, password reset, verification, sign-up, the account
//! page and its sessions, and mail to the outbox and over SMTP. TOTP codes come from the
//! harness's own RFC 6238 arithmetic; time moves with the server's ManualClock.

use chrono::Duration;
use gatehouse::clock::Clock;
use http::StatusCode;

use crate::both_backends;
use crate::harness::mail::{SmtpSink, mails_to, wait_for_mail};
use crate::harness::otp::{base32_decode, code_at};
use crate::harness::{Backend, Browser, PASSWORD, TestServer};

const NEW_PASSWORD: &str = "a completely different passphrase";

const EXTRA: &str = r#"
[[routes]]
path = "/secure/**"
require_2fa = true
[[routes]]
path = "/app/**"
"#;

async fn server(b: Backend, extra: &str) -> Option<TestServer> {
    TestServer::start(b, &format!("{EXTRA}\n{extra}")).await
}

fn outbox(s: &TestServer) -> std::path::PathBuf {
    s.db.dir.path().join("data").join("outbox")
}

fn now(s: &TestServer) -> i64 {
    s.clock.now().timestamp()
}

/// Moves to the next 30-second step, so a fresh code is not a replay.
fn next_step(s: &TestServer) {
    s.clock.advance(Duration::seconds(30));
}

fn between<'a>(html: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = html.find(start)? + start.len();
    let rest = &html[i..];
    Some(&rest[..rest.find(end)?])
}

fn secret_in(html: &str) -> Vec<u8> {
    let s = between(html, "id=\"totp-secret\" class=\"mono\">", "<").expect("#totp-secret");
    base32_decode(s)
}

fn recovery_codes_in(html: &str) -> Vec<String> {
    html.split("class=\"recovery-code mono\">")
        .skip(1)
        .map(|p| p[..p.find('<').unwrap()].to_string())
        .collect()
}

async fn post(b: &mut Browser, path: &str, fields: &[(&str, &str)]) -> crate::harness::Resp {
    let token = b.csrf("/_auth/login").await;
    let mut all = vec![("csrf_token", token.as_str())];
    all.extend_from_slice(fields);
    b.post_form(path, &all).await
}

/// Enrols the signed-in browser in 2FA; returns the secret and the recovery codes.
async fn enrol(s: &TestServer, b: &mut Browser) -> (Vec<u8>, Vec<String>) {
    let page = b.page("/_auth/account/2fa").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains("<svg"), "QR code is inline SVG");
    let secret = secret_in(&page.text());
    assert_eq!(secret.len() * 8, 160);
    let before = b.cookies.get("gatehouse_session").cloned();
    let r = post(
        b,
        "/_auth/account/2fa",
        &[("code", &code_at(&secret, now(s)))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let codes = recovery_codes_in(&r.text());
    assert_eq!(codes.len(), 10, "{}", r.text());
    assert_ne!(
        b.cookies.get("gatehouse_session").cloned(),
        before,
        "fresh session id"
    );
    (secret, codes)
}

async fn password_step(b: &mut Browser, user: &str, pw: &str) -> crate::harness::Resp {
    post(
        b,
        "/_auth/login",
        &[("username", user), ("password", pw), ("next", "/app/")],
    )
    .await
}

both_backends! {
    two_factor_sign_in,
    replayed_code_refused,
    recovery_code_single_use,
    pending_step_expires_and_limits_attempts,
    failed_sign_ins_throttled_per_ip,
    forms_need_csrf,
    password_reset_flow,
    reset_link_expires_and_unknown_address,
    verification_and_email_change,
    sign_up_open_and_closed,
    account_edits,
    sessions_list_and_revoke,
    admins_must_enrol,
    disable_and_regenerate,
}

async fn two_factor_sign_in(b: Backend) {
    let Some(s) = server(b, "").await else { return };
    let mut br = s.signed_in("ann").await;
    assert_eq!(br.api("/secure/x", &[]).await.status, StatusCode::FORBIDDEN);
    let (secret, _) = enrol(&s, &mut br).await;
    // The enrolment proved a second factor: the new session may use 2FA routes.
    assert_eq!(br.api("/secure/x", &[]).await.status, StatusCode::OK);
    br.logout().await;

    let r = password_step(&mut br, "ann", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/_auth/login/2fa"));
    assert!(
        !br.cookies.contains_key("gatehouse_session"),
        "no session before the code"
    );
    assert!(br.cookies.contains_key("gatehouse_2fa"));
    assert_eq!(br.api("/app/", &[]).await.status, StatusCode::UNAUTHORIZED);
    let page = br.page("/_auth/login/2fa").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("name=\"code\""));

    next_step(&s);
    let r = post(
        &mut br,
        "/_auth/login/2fa",
        &[("code", &code_at(&secret, now(&s)))],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(r.header("location"), Some("/app/"));
    assert!(br.cookies.contains_key("gatehouse_session"));
    assert!(!br.cookies.contains_key("gatehouse_2fa"));
    let app = br.api("/app/", &[]).await;
    assert_eq!(app.status, StatusCode::OK);
    assert_eq!(app.echoed("x-auth-user"), ["ann"]);
    assert_eq!(br.api("/secure/x", &[]).await.status, StatusCode::OK);
}

async fn replayed_code_refused(b: Backend) {
    let Some(s) = server(b, "").await else { return };
    let mut br = s.signed_in("bob").await;
    let (secret, _) = enrol(&s, &mut br).await;
    br.logout().await;
    // The enrolment used this step already.
    let code = code_at(&secret, now(&s));
    password_step(&mut br, "bob", PASSWORD).await;
    let r = post(&mut br, "/_auth/login/2fa", &[("code", &code)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("already used"), "{}", r.text());
    assert!(!br.cookies.contains_key("gatehouse_session"));
    // A new step's code works once, then not again.
    next_step(&s);
    let code = code_at(&secret, now(&s));
    let r = post(&mut br, "/_auth/login/2fa", &[("code", &code)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let mut other = s.browser();
    password_step(&mut other, "bob", PASSWORD).await;
    let r = post(&mut other, "/_auth/login/2fa", &[("code", &code)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!other.cookies.contains_key("gatehouse_session"));
    // A code of the previous step (inside the ±1 window) is refused after a newer one.
    let old = code_at(&secret, now(&s) - 30);
    let r = post(&mut other, "/_auth/login/2fa", &[("code", &old)]).await;
    assert!(
        !other.cookies.contains_key("gatehouse_session"),
        "{}",
        r.text()
    );
}

async fn recovery_code_single_use(b: Backend) {
    let Some(s) = server(b, "").await else { return };
    let mut br = s.signed_in("cat").await;
    let (_, codes) = enrol(&s, &mut br).await;
    br.logout().await;
    password_step(&mut br, "cat", PASSWORD).await;
    let r = post(
        &mut br,
        "/_auth/login/2fa",
        &[("code", &codes[3].to_uppercase())],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    br.logout().await;
    password_step(&mut br, "cat", PASSWORD).await;
    let r = post(&mut br, "/_auth/login/2fa", &[("code", &codes[3])]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!br.cookies.contains_key("gatehouse_session"));
    let r = post(&mut br, "/_auth/login/2fa", &[("code", &codes[4])]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = br.page("/_auth/account/2fa").await;
    assert!(
        page.text().contains("8 unused recovery codes"),
        "{}",
        page.text()
    );
}

async fn pending_step_expires_and_limits_attempts(b: Backend) {
    let Some(s) = server(b, "").await else { return };
    let mut br = s.signed_in("dan").await;
    let (secret, _) = enrol(&s, &mut br).await;
    br.logout().await;

    password_step(&mut br, "dan", PASSWORD).await;
    s.clock.advance(Duration::minutes(6));
    let r = post(
        &mut br,
        "/_auth/login/2fa",
        &[("code", &code_at(&secret, now(&s)))],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("expired"), "{}", r.text());
    assert!(!br.cookies.contains_key("gatehouse_session"));

    password_step(&mut br, "dan", PASSWORD).await;
    for i in 1..5 {
        let r = post(&mut br, "/_auth/login/2fa", &[("code", "000000")]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            r.text().contains(&format!("{} attempt", 5 - i)),
            "{}",
            r.text()
        );
    }
    let r = post(&mut br, "/_auth/login/2fa", &[("code", "000000")]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // Spent: even the right code does not help now.
    next_step(&s);
    let r = post(
        &mut br,
        "/_auth/login/2fa",
        &[("code", &code_at(&secret, now(&s)))],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(!br.cookies.contains_key("gatehouse_session"));
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
    assert_eq!(
        page.header("content-security-policy"),
        Some(
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self'"
        )
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
}

async fn password_reset_flow(b: Backend) {
    let Some(s) = server(b, "").await else { return };
    let mut elsewhere = s.signed_in("gus").await;
    let (secret, _) = enrol(&s, &mut elsewhere).await;
    let mut br = s.browser();
    let r = post(&mut br, "/_auth/reset", &[("email", "gus@example.com")]).await;
    assert_eq!(r.status, StatusCode::OK);
    let answer = r.text();
    let mail = wait_for_mail(&outbox(&s), "gus@example.com", 1).await;
    assert!(mail.text.contains("Subject: Reset your"), "{}", mail.text);
    let link = mail.link_path();
    assert!(link.starts_with("/_auth/reset/confirm?token="), "{link}");
    let token = mail.token();
    assert!(token.len() >= 22, "at least 128 bits");

    let form = br.page(&link).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.text().contains(&format!("value=\"{token}\"")));
    // The password rules apply.
    let r = post(
        &mut br,
        "/_auth/reset/confirm",
        &[
            ("token", &token),
            ("password", "short"),
            ("password_confirm", "short"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("at least"), "{}", r.text());
    let r = post(
        &mut br,
        "/_auth/reset/confirm",
        &[
            ("token", &token),
            ("password", NEW_PASSWORD),
            ("password_confirm", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("Password changed"));
    // Every session of the user ended; a notice went out.
    assert_eq!(
        elsewhere.api("/app/", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    let notice = wait_for_mail(&outbox(&s), "gus@example.com", 2).await;
    assert!(notice.text.contains("was changed"), "{}", notice.text);
    assert!(!notice.text.contains(&token));
    // The link works once.
    let again = br.page(&link).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    let r = post(
        &mut br,
        "/_auth/reset/confirm",
        &[
            ("token", &token),
            ("password", "yet another long passphrase"),
            ("password_confirm", "yet another long passphrase"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // The old password is gone; the new one still needs the second factor.
    let r = password_step(&mut br, "gus", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = password_step(&mut br, "gus", NEW_PASSWORD).await;
    assert_eq!(r.header("location"), Some("/_auth/login/2fa"));
    next_step(&s);
    let r = post(
        &mut br,
        "/_auth/login/2fa",
        &[("code", &code_at(&secret, now(&s)))],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);

    // An unknown address gets the very same answer, and no mail.
    let mut stranger = s.browser();
    let r = post(
        &mut stranger,
        "/_auth/reset",
        &[("email", "nobody@example.com")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), answer);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(mails_to(&outbox(&s), "nobody@example.com").is_empty());

    // No token, code, password or session id reaches the activity log.
    let store = s.app().store.clone();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let rows = store
        .list_activity(&gatehouse::store::ActivityFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let dump = serde_json::to_string(&rows).unwrap();
    for secret_text in [token.as_str(), NEW_PASSWORD, PASSWORD] {
        assert!(!dump.contains(secret_text), "activity leaks {secret_text}");
    }
    let kinds: Vec<&str> = rows.iter().map(|r| r.activity_type.as_str()).collect();
    for k in [
        "password_reset_requested",
        "password_reset",
        "twofa_enabled",
        "login",
    ] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
}

async fn reset_link_expires_and_unknown_address(b: Backend) {
    let Some(s) = server(b, "").await else { return };
    s.plain_user("hal").await;
    let mut br = s.browser();
    post(&mut br, "/_auth/reset", &[("email", "hal@example.com")]).await;
    let mail = wait_for_mail(&outbox(&s), "hal@example.com", 1).await;
    s.clock.advance(Duration::minutes(61));
    assert_eq!(
        br.page(&mail.link_path()).await.status,
        StatusCode::BAD_REQUEST
    );
    // Per account: 3 mails per window; the 4th request is answered alike but sends nothing.
    for _ in 0..3 {
        let r = post(&mut br, "/_auth/reset", &[("email", "hal@example.com")]).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    // (The first, expired link was in an earlier window.)
    wait_for_mail(&outbox(&s), "hal@example.com", 4).await;
    let r = post(&mut br, "/_auth/reset", &[("email", "hal@example.com")]).await;
    assert_eq!(r.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(mails_to(&outbox(&s), "hal@example.com").len(), 4);
    // Per address: 10 requests per window, then 429.
    for _ in 0..6 {
        post(&mut br, "/_auth/reset", &[("email", "x@example.com")]).await;
    }
    let r = post(&mut br, "/_auth/reset", &[("email", "x@example.com")]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

async fn verification_and_email_change(b: Backend) {
    let Some(s) = server(b, "[portal]\nregistration = \"open\"\n").await else {
        return;
    };
    let mut br = s.browser();
    let r = post(
        &mut br,
        "/_auth/signup",
        &[
            ("username", "ivy"),
            ("email", "ivy@example.com"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mail = wait_for_mail(&outbox(&s), "ivy@example.com", 1).await;
    br.login("ivy", PASSWORD).await;
    assert_eq!(
        br.api("/verified/x", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    let r = br.page(&mail.link_path()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(br.api("/verified/x", &[]).await.status, StatusCode::OK);
    assert_eq!(
        br.page(&mail.link_path()).await.status,
        StatusCode::BAD_REQUEST
    );

    // Change of address: nothing changes until the new address confirms.
    let r = post(
        &mut br,
        "/_auth/account/email",
        &[
            ("email", "ivy@new.example.com"),
            ("email_password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let mail = wait_for_mail(&outbox(&s), "ivy@new.example.com", 1).await;
    assert_eq!(
        br.api("/app/", &[]).await.echoed("x-auth-email"),
        ["ivy@example.com"]
    );
    let r = br.page(&mail.link_path()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        br.api("/app/", &[]).await.echoed("x-auth-email"),
        ["ivy@new.example.com"]
    );
    // A wrong password or a taken address is refused next to its field.
    s.plain_user("jon").await;
    let r = post(
        &mut br,
        "/_auth/account/email",
        &[("email", "jon@example.com"), ("email_password", PASSWORD)],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"email-error\""), "{}", r.text());
    // Verification links expire too.
    let r = post(
        &mut br,
        "/_auth/account/email",
        &[
            ("email", "ivy@third.example.com"),
            ("email_password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let mail = wait_for_mail(&outbox(&s), "ivy@third.example.com", 1).await;
    s.clock.advance(Duration::hours(25));
    assert_eq!(
        br.page(&mail.link_path()).await.status,
        StatusCode::BAD_REQUEST
    );
}

async fn sign_up_open_and_closed(b: Backend) {
    let Some(closed) = server(b, "").await else {
        return;
    };
    let mut br = closed.browser();
    assert_eq!(br.page("/_auth/signup").await.status, StatusCode::NOT_FOUND);
    let login = br.page("/_auth/login").await.text();
    assert!(!login.contains("Create an account"));
    let Some(open) = server(b, "[portal]\nregistration = \"open\"\n").await else {
        return;
    };
    let mut br = open.browser();
    assert!(
        br.page("/_auth/login")
            .await
            .text()
            .contains("Create an account")
    );
    let r = post(
        &mut br,
        "/_auth/signup",
        &[
            ("username", "kim"),
            ("email", "kim@example.com"),
            ("password", PASSWORD),
            ("password_confirm", "other"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"password_confirm-error\""));
    let r = post(
        &mut br,
        "/_auth/signup",
        &[
            ("username", "kim"),
            ("email", "kim@example.com"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let u = open
        .app()
        .accounts
        .get_by_username("kim")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.subscription_tier, "free");
    assert_eq!(u.credits_balance, 3);
    assert!(!u.is_verified && !u.is_admin);
    wait_for_mail(&outbox(&open), "kim@example.com", 1).await;
    let r = post(
        &mut br,
        "/_auth/signup",
        &[
            ("username", "KIM"),
            ("email", "kim2@example.com"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"username-error\""), "{}", r.text());
}

async fn account_edits(b: Backend) {
    let Some(s) = server(b, "").await else { return };
    let mut br = s.signed_in("lea").await;
    let mut other = s.browser();
    other.login("lea", PASSWORD).await;
    let page = br.page("/_auth/account").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("for=\"first_name\""));
    let r = post(
        &mut br,
        "/_auth/account/profile",
        &[
            ("first_name", "Lea"),
            ("last_name", "Lind"),
            ("phone", "+49 30 1234"),
            ("company_name", "Acme"),
            ("timezone", "Europe/Berlin"),
            ("language", "de"),
            ("sms_notifications", "1"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    // Identity headers refresh at once.
    assert_eq!(
        br.api("/app/", &[]).await.echoed("x-auth-name"),
        ["Lea Lind"]
    );
    let u = s
        .app()
        .accounts
        .get_by_username("lea")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.timezone, "Europe/Berlin");
    assert!(u.sms_notifications && !u.email_notifications);
    let r = post(
        &mut br,
        "/_auth/account/profile",
        &[
            ("timezone", "not a zone!"),
            ("language", "de"),
            ("first_name", "Lea"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text()
            .contains("aria-describedby=\"timezone-help timezone-error\""),
        "{}",
        r.text()
    );

    // Password change: the current one is required; other sessions end, this one stays.
    let r = post(
        &mut br,
        "/_auth/account/password",
        &[
            ("current_password", "wrong wrong wrong"),
            ("new_password", NEW_PASSWORD),
            ("new_password_confirm", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = post(
        &mut br,
        "/_auth/account/password",
        &[
            ("current_password", PASSWORD),
            ("new_password", NEW_PASSWORD),
            ("new_password_confirm", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(br.api("/app/", &[]).await.status, StatusCode::OK);
    assert_eq!(
        other.api("/app/", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    let page = br.page("/_auth/account?done=password").await.text();
    assert!(page.contains("Your password is changed"), "{page}");
    // The activity list shows the profile update (rows are written in the background).
    let mut listed = false;
    for _ in 0..40 {
        if br
            .page("/_auth/account")
            .await
            .text()
            .contains("Updated: first_name")
        {
            listed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(listed, "the profile update is in the activity list");
}

async fn sessions_list_and_revoke(b: Backend) {
    let Some(s) = server(b, "").await else { return };
    let mut a = s.signed_in("max").await;
    let mut c = s.browser();
    c.login("max", PASSWORD).await;
    let mut d = s.browser();
    d.login("max", PASSWORD).await;
    let page = a.page("/_auth/account").await.text();
    assert_eq!(page.matches("name=\"session_id\"").count(), 2, "{page}");
    assert_eq!(page.matches("(this session)").count(), 1);
    // Someone else's session cannot be revoked.
    let mut intruder = s.signed_in("nia").await;
    let first = between(&page, "name=\"session_id\" value=\"", "\"")
        .unwrap()
        .to_string();
    let r = post(
        &mut intruder,
        "/_auth/account/sessions/revoke",
        &[("session_id", &first)],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = post(
        &mut a,
        "/_auth/account/sessions/revoke",
        &[("session_id", &first)],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let alive = [
        c.api("/app/", &[]).await.status,
        d.api("/app/", &[]).await.status,
    ];
    assert_eq!(
        alive.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{alive:?}"
    );
    let r = post(&mut a, "/_auth/account/sessions/revoke-others", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(c.api("/app/", &[]).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(d.api("/app/", &[]).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.api("/app/", &[]).await.status, StatusCode::OK);
    let page = a.page("/_auth/account").await.text();
    assert_eq!(page.matches("name=\"session_id\"").count(), 0);
}

async fn admins_must_enrol(b: Backend) {
    let Some(s) =
        TestServer::start_with_security(b, "require_2fa_for_admins = true\n", EXTRA).await
    else {
        return;
    };
    s.user("root", |a| a.is_admin = true).await;
    let mut br = s.browser();
    let r = password_step(&mut br, "root", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        r.header("location")
            .unwrap()
            .starts_with("/_auth/account/2fa"),
        "{:?}",
        r.header("location")
    );
    assert_eq!(br.api("/admin/x", &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(br.api("/app/", &[]).await.echoed("x-auth-admin"), ["false"]);
    let (secret, _) = enrol(&s, &mut br).await;
    assert_eq!(br.api("/admin/x", &[]).await.status, StatusCode::OK);
    br.logout().await;
    password_step(&mut br, "root", PASSWORD).await;
    next_step(&s);
    let r = post(
        &mut br,
        "/_auth/login/2fa",
        &[("code", &code_at(&secret, now(&s)))],
    )
    .await;
    assert_eq!(r.header("location"), Some("/app/"));
    assert_eq!(br.api("/admin/x", &[]).await.status, StatusCode::OK);
}

async fn disable_and_regenerate(b: Backend) {
    let Some(s) = server(b, "").await else { return };
    let mut br = s.signed_in("oli").await;
    let (secret, old_codes) = enrol(&s, &mut br).await;
    next_step(&s);
    let r = post(
        &mut br,
        "/_auth/account/2fa/recovery-codes",
        &[
            ("password", "not the password"),
            ("code", &code_at(&secret, now(&s))),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"regenerate-password-error\""));
    let r = post(
        &mut br,
        "/_auth/account/2fa/recovery-codes",
        &[("password", PASSWORD), ("code", &code_at(&secret, now(&s)))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let new_codes = recovery_codes_in(&r.text());
    assert_eq!(new_codes.len(), 10);
    // Old codes no longer work; new ones do (here: to turn 2FA off).
    let r = post(
        &mut br,
        "/_auth/account/2fa/disable",
        &[("password", PASSWORD), ("code", &old_codes[0])],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = post(
        &mut br,
        "/_auth/account/2fa/disable",
        &[("password", PASSWORD), ("code", &new_codes[0])],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    br.logout().await;
    let r = password_step(&mut br, "oli", PASSWORD).await;
    assert_eq!(r.header("location"), Some("/app/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_over_smtp() {
    let Some(sink) = SmtpSink::start().await else {
        return;
    };
    let extra = format!(
        "[mail]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nsmtp_tls = \"none\"\nfrom = \"Gatehouse <noreply@example.com>\"\n",
        sink.port
    );
    let s = server(Backend::Sqlite, &extra).await.unwrap();
    s.plain_user("pam").await;
    let mut br = s.browser();
    let r = post(&mut br, "/_auth/reset", &[("email", "pam@example.com")]).await;
    assert_eq!(r.status, StatusCode::OK);
    let mail = wait_for_mail(sink.dir.path(), "pam@example.com", 1).await;
    assert!(mail.text.contains("noreply@example.com"));
    assert!(br.page(&mail.link_path()).await.status == StatusCode::OK);
    assert!(
        mails_to(&outbox(&s), "pam@example.com").is_empty(),
        "SMTP, not the outbox"
    );
    sink.stop().await;
}
