//! The sign-in portal end to end over HTTP, one flow a file: sign-in protections (`login`),
//! two-factor sign-in and enrolment (`twofa`), password reset and mail (`reset`), sign-up and
//! address verification (`signup`), the account page and its sessions (`account`). Shared
//! helpers live here. TOTP codes come from the harness's own RFC 6238 arithmetic; time moves
//! with the server's ManualClock.

mod account;
mod login;
mod reset;
mod signup;
mod twofa;

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

/// Answers the code step with the authenticator's code for this moment.
async fn code_step(s: &TestServer, b: &mut Browser, secret: &[u8]) -> crate::harness::Resp {
    post(b, "/_auth/login/2fa", &[("code", &code_at(secret, now(s)))]).await
}

async fn password_step(b: &mut Browser, user: &str, pw: &str) -> crate::harness::Resp {
    post(
        b,
        "/_auth/login",
        &[("username", user), ("password", pw), ("next", "/app/")],
    )
    .await
}
