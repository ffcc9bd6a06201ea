//! End to end in real Chromium, driven over WebDriver (chromedriver's HTTP API, spoken
//! directly with hyper: the usual client crates pull in a second TLS provider).
//!
//! Flow: sign in → enrol in 2FA reading the secret from `#totp-secret` → sign out → sign in
//! with password and code → reach a page that requires 2FA → ask for a reset → follow the link
//! from the outbox → set a new password → sign in again (password and code).
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the test says so and passes,
//! unless `GATEHOUSE_REQUIRE_BROWSER=1` (CI), where it fails.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use chrono::Duration as ChronoDuration;
use gatehouse::clock::Clock;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::harness::mail::wait_for_mail;
use crate::harness::otp::{base32_decode, code_at};
use crate::harness::{Backend, PASSWORD, TestServer};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

struct WebDriver {
    base: String,
    session: String,
    client: Client<HttpConnector, Full<Bytes>>,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl WebDriver {
    async fn start() -> Option<WebDriver> {
        let driver = which(&["chromedriver"]);
        let browser = which(&["chromium", "chromium-browser", "google-chrome"]);
        let (Some(driver), Some(browser)) = (driver, browser) else {
            assert!(
                std::env::var("GATEHOUSE_REQUIRE_BROWSER").as_deref() != Ok("1"),
                "GATEHOUSE_REQUIRE_BROWSER=1 but chromium and chromedriver are not installed \
                 (apt-get install chromium chromium-driver)"
            );
            crate::harness::note_skipped(
                "the browser test",
                "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let mut wd = WebDriver {
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            _driver: child,
            _profile: profile,
        };
        let mut ready = false;
        for _ in 0..100 {
            if let Some(v) = wd.try_cmd(Method::GET, "/status", None).await
                && v["ready"] == json!(true)
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not become ready");
        let args = json!([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1024,900",
            format!("--user-data-dir={}", wd._profile.path().display()),
        ]);
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": browser, "args": args },
        }}});
        let v = wd.cmd(Method::POST, "/session", Some(caps)).await;
        wd.session = v["sessionId"]
            .as_str()
            .expect("a WebDriver session")
            .to_string();
        Some(wd)
    }

    async fn try_cmd(&self, method: Method, path: &str, body: Option<Value>) -> Option<Value> {
        let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(body))
            .unwrap();
        let resp = self.client.request(req).await.ok()?;
        let bytes = resp.into_body().collect().await.ok()?.to_bytes();
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        Some(v["value"].clone())
    }

    async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let v = self
            .try_cmd(method, path, body)
            .await
            .unwrap_or_else(|| panic!("WebDriver {path} failed"));
        if let Some(err) = v.get("error") {
            panic!("WebDriver {path}: {err} {}", v["message"]);
        }
        v
    }

    fn s(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    async fn goto(&self, url: &str) {
        self.cmd(Method::POST, &self.s("/url"), Some(json!({ "url": url })))
            .await;
    }

    async fn url(&self) -> String {
        self.cmd(Method::GET, &self.s("/url"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn source(&self) -> String {
        self.cmd(Method::GET, &self.s("/source"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Finds an element, waiting up to 10 s for it to appear.
    async fn find(&self, css: &str) -> String {
        for _ in 0..100 {
            let v = self
                .try_cmd(
                    Method::POST,
                    &self.s("/element"),
                    Some(json!({ "using": "css selector", "value": css })),
                )
                .await;
            if let Some(id) = v.as_ref().and_then(|v| v[ELEMENT].as_str()) {
                return id.to_string();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "no element {css} on {}: {}",
            self.url().await,
            self.source().await
        );
    }

    async fn count(&self, css: &str) -> usize {
        self.cmd(
            Method::POST,
            &self.s("/elements"),
            Some(json!({ "using": "css selector", "value": css })),
        )
        .await
        .as_array()
        .map_or(0, Vec::len)
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.cmd(
            Method::POST,
            &self.s(&format!("/element/{id}/clear")),
            Some(json!({})),
        )
        .await;
        self.cmd(
            Method::POST,
            &self.s(&format!("/element/{id}/value")),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.cmd(
            Method::POST,
            &self.s(&format!("/element/{id}/click")),
            Some(json!({})),
        )
        .await;
    }

    async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.cmd(Method::GET, &self.s(&format!("/element/{id}/text")), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits up to 10 s for the address bar to reach a path starting with `prefix`.
    async fn wait_path(&self, prefix: &str) {
        let mut last = String::new();
        for _ in 0..100 {
            last = self.url().await;
            if url::Url::parse(&last).is_ok_and(|u| u.path().starts_with(prefix)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("expected {prefix}, at {last}: {}", self.source().await);
    }

    async fn quit(self) {
        let _ = self.try_cmd(Method::DELETE, &self.s(""), None).await;
    }
}

async fn sign_in(wd: &WebDriver, base: &str, user: &str, password: &str, next: &str) {
    wd.goto(&format!("{base}/_auth/login?next={next}")).await;
    wd.type_into("#username", user).await;
    wd.type_into("#password", password).await;
    wd.click("form[action='/_auth/login'] button[type=submit]")
        .await;
}

async fn enter_code(wd: &WebDriver, s: &TestServer, secret: &[u8]) {
    // A new time step, so the code is not a replay of the previous one.
    s.clock.advance(ChronoDuration::seconds(30));
    wd.wait_path("/_auth/login/2fa").await;
    wd.type_into("#code", &code_at(secret, s.clock.now().timestamp()))
        .await;
    wd.click("form[action='/_auth/login/2fa'] button[type=submit]")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_enrol_reset_in_chromium() {
    let Some(wd) = WebDriver::start().await else {
        return;
    };
    let routes =
        "[[routes]]\npath = \"/secure/**\"\nrequire_2fa = true\n[[routes]]\npath = \"/app/**\"\n";
    let s = TestServer::start(Backend::Sqlite, routes).await.unwrap();
    s.plain_user("rita").await;
    let base = s.base.clone();

    sign_in(&wd, &base, "rita", PASSWORD, "/app/").await;
    wd.wait_path("/app/").await;
    assert!(wd.source().await.contains("<strong>rita</strong>"));

    // Enrol: the secret is read from the page, the code computed here.
    wd.goto(&format!("{base}/_auth/account/2fa")).await;
    let secret = base32_decode(&wd.text("#totp-secret").await);
    assert_eq!(wd.count(".qr svg").await, 1);
    wd.type_into("#code", &code_at(&secret, s.clock.now().timestamp()))
        .await;
    wd.click("form[action='/_auth/account/2fa'] button[type=submit]")
        .await;
    wd.find(".recovery-code").await;
    assert_eq!(wd.count(".recovery-code").await, 10);

    // Sign out, then in again with password and code; reach a page that requires 2FA.
    wd.goto(&format!("{base}/_auth/logout")).await;
    wd.click("form[action='/_auth/logout'] button[type=submit]")
        .await;
    wd.find("a[href='/_auth/login']").await;
    sign_in(&wd, &base, "rita", PASSWORD, "/secure/page").await;
    enter_code(&wd, &s, &secret).await;
    wd.wait_path("/secure/page").await;
    assert!(wd.source().await.contains("<strong>rita</strong>"));

    // Forgot the password: ask for a link, follow it from the outbox, set a new one.
    wd.goto(&format!("{base}/_auth/reset")).await;
    wd.type_into("#email", "rita@example.com").await;
    wd.click("form[action='/_auth/reset'] button[type=submit]")
        .await;
    wd.find("a[href='/_auth/login']").await;
    let outbox = s.db.dir.path().join("data").join("outbox");
    let mail = wait_for_mail(&outbox, "rita@example.com", 1).await;
    // The link names server.public_url; this test server's real port differs, so keep the path.
    wd.goto(&format!("{base}{}", mail.link_path())).await;
    let new_password = "a brand new browser passphrase";
    wd.type_into("#password", new_password).await;
    wd.type_into("#password_confirm", new_password).await;
    wd.click("form[action='/_auth/reset/confirm'] button[type=submit]")
        .await;
    wd.find("a[href='/_auth/login']").await;
    assert!(wd.source().await.contains("Password changed"));

    // The reset signed every session out; sign in with the new password (and a code).
    wd.goto(&format!("{base}/secure/page")).await;
    wd.wait_path("/_auth/login").await;
    sign_in(&wd, &base, "rita", new_password, "/secure/page").await;
    enter_code(&wd, &s, &secret).await;
    wd.wait_path("/secure/page").await;
    assert!(wd.source().await.contains("<strong>rita</strong>"));
    wd.quit().await;
}

/// Issue 14: a passkey in Chromium's virtual authenticator (CTAP2, internal transport,
/// resident keys and user verification): register it from the account page, sign out, sign
/// in with `#passkey-signin` alone and reach a `require_2fa` route; remove it and see the
/// passwordless sign-in refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_register_sign_in_remove_in_chromium() {
    let Some(wd) = WebDriver::start().await else {
        return;
    };
    let routes = "[[routes]]\npath = \"/secure/**\"\nrequire_2fa = true\n";
    let s = TestServer::start_on_localhost(Backend::Sqlite, routes)
        .await
        .unwrap();
    s.plain_user("pia").await;
    // The origin must be the public URL's: localhost, not 127.0.0.1 (an IP is no RP id).
    let base = s.localhost_base();
    let auth_id = add_authenticator(&wd).await;

    // Register from the account page (signed in just now: no password asked again).
    sign_in(&wd, &base, "pia", PASSWORD, "/_auth/account").await;
    wd.wait_path("/_auth/account").await;
    wd.click("#passkeys-link").await;
    wd.wait_path("/_auth/account/passkeys").await;
    wd.type_into("#passkey-name", "Virtual key").await;
    wd.click("#add-passkey").await;
    wd.find("#passkey-list").await;
    assert!(wd.source().await.contains("Virtual key"));
    let creds = wd
        .cmd(
            Method::GET,
            &wd.s(&format!("/webauthn/authenticator/{auth_id}/credentials")),
            None,
        )
        .await;
    assert_eq!(creds.as_array().map_or(0, Vec::len), 1, "{creds}");

    // Sign out; the login page offers conditional mediation on the username field.
    wd.goto(&format!("{base}/_auth/logout")).await;
    wd.click("form[action='/_auth/logout'] button[type=submit]")
        .await;
    wd.find("a[href='/_auth/login']").await;
    // The login page starts a conditional request at once, which a virtual authenticator would
    // answer by itself; so the authenticator (with its key) is plugged in only after the page
    // is open, and the sign-in is the button's.
    let saved = unplug(&wd, &auth_id).await;
    wd.goto(&format!("{base}/_auth/login?next=/secure/page"))
        .await;
    let auth_id = plug(&wd, &saved).await;
    let field = wd.find("#username").await;
    let ac = wd
        .cmd(
            Method::GET,
            &wd.s(&format!("/element/{field}/attribute/autocomplete")),
            None,
        )
        .await;
    assert_eq!(ac, json!("username webauthn"));

    // The passkey alone (user verified) is both factors: the require_2fa route opens.
    wd.click("#passkey-signin").await;
    wd.wait_path("/secure/page").await;
    assert!(wd.source().await.contains("<strong>pia</strong>"));

    // Remove it (a recent sign-in), sign out, and the same passkey no longer signs in.
    wd.goto(&format!("{base}/_auth/account/passkeys")).await;
    wd.click(".remove-passkey").await;
    wd.find("#no-passkeys").await;
    wd.goto(&format!("{base}/_auth/logout")).await;
    wd.click("form[action='/_auth/logout'] button[type=submit]")
        .await;
    wd.find("a[href='/_auth/login']").await;
    let saved = unplug(&wd, &auth_id).await;
    wd.goto(&format!("{base}/_auth/login?next=/secure/page"))
        .await;
    plug(&wd, &saved).await;
    wd.click("#passkey-signin").await;
    wd.wait_path("/_auth/login/passkey").await;
    assert!(
        wd.source().await.contains("could not sign you in"),
        "{}",
        wd.source().await
    );
    wd.goto(&format!("{base}/secure/page")).await;
    wd.wait_path("/_auth/login").await;
    wd.quit().await;
}

async fn add_authenticator(wd: &WebDriver) -> String {
    let auth = wd
        .cmd(
            Method::POST,
            &wd.s("/webauthn/authenticator"),
            Some(json!({
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": true,
                "hasUserVerification": true,
                "isUserConsenting": true,
                "isUserVerified": true,
            })),
        )
        .await;
    auth.as_str().expect("an authenticator id").to_string()
}

/// Removes the virtual authenticator, returning its credentials (with their private keys).
async fn unplug(wd: &WebDriver, id: &str) -> Value {
    let creds = wd
        .cmd(
            Method::GET,
            &wd.s(&format!("/webauthn/authenticator/{id}/credentials")),
            None,
        )
        .await;
    wd.cmd(
        Method::DELETE,
        &wd.s(&format!("/webauthn/authenticator/{id}")),
        None,
    )
    .await;
    creds
}

/// A new virtual authenticator holding `creds`; returns its id.
async fn plug(wd: &WebDriver, creds: &Value) -> String {
    let id = add_authenticator(wd).await;
    for c in creds.as_array().into_iter().flatten() {
        wd.cmd(
            Method::POST,
            &wd.s(&format!("/webauthn/authenticator/{id}/credential")),
            Some(c.clone()),
        )
        .await;
    }
    id
}
