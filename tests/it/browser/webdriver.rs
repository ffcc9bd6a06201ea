//! A small WebDriver client: chromedriver's HTTP API, spoken directly with hyper (the usual
//! client crates pull in a second TLS provider).

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

pub struct WebDriver {
    base: String,
    session: String,
    client: Client<HttpConnector, Full<Bytes>>,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl WebDriver {
    pub async fn start() -> Option<WebDriver> {
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
            "--window-size=1280,800",
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

    pub async fn try_cmd(&self, method: Method, path: &str, body: Option<Value>) -> Option<Value> {
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

    pub async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let v = self
            .try_cmd(method, path, body)
            .await
            .unwrap_or_else(|| panic!("WebDriver {path} failed"));
        if let Some(err) = v.get("error") {
            panic!("WebDriver {path}: {err} {}", v["message"]);
        }
        v
    }

    pub fn s(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub async fn goto(&self, url: &str) {
        self.cmd(Method::POST, &self.s("/url"), Some(json!({ "url": url })))
            .await;
    }

    pub async fn url(&self) -> String {
        self.cmd(Method::GET, &self.s("/url"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn source(&self) -> String {
        self.cmd(Method::GET, &self.s("/source"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Finds an element, waiting up to 10 s for it to appear.
    pub async fn find(&self, css: &str) -> String {
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

    pub async fn count(&self, css: &str) -> usize {
        self.cmd(
            Method::POST,
            &self.s("/elements"),
            Some(json!({ "using": "css selector", "value": css })),
        )
        .await
        .as_array()
        .map_or(0, Vec::len)
    }

    pub async fn type_into(&self, css: &str, text: &str) {
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

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.cmd(
            Method::POST,
            &self.s(&format!("/element/{id}/click")),
            Some(json!({})),
        )
        .await;
    }

    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.cmd(Method::GET, &self.s(&format!("/element/{id}/text")), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits up to 10 s for the address bar to reach a path starting with `prefix`.
    pub async fn wait_path(&self, prefix: &str) {
        self.wait_url(prefix, |u| u.path().starts_with(prefix))
            .await;
    }

    /// Waits up to 10 s for the address bar's query to hold `pair` (`name=value`, as the
    /// browser encodes it): after a form submitted by GET to the page it is on, the old page's
    /// elements are still there until the new one has loaded, so finding one proves nothing.
    pub async fn wait_query(&self, pair: &str) {
        self.wait_url(pair, |u| {
            u.query().is_some_and(|q| q.split('&').any(|p| p == pair))
        })
        .await;
    }

    async fn wait_url(&self, what: &str, reached: impl Fn(&url::Url) -> bool) {
        let mut last = String::new();
        for _ in 0..100 {
            last = self.url().await;
            if url::Url::parse(&last).is_ok_and(|u| reached(&u)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("expected {what}, at {last}: {}", self.source().await);
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page and returns its
    /// value, awaiting it when it is a promise.
    pub async fn exec(&self, script: &str, args: Value) -> Value {
        self.cmd(
            Method::POST,
            &self.s("/execute/sync"),
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// A Chrome DevTools Protocol command, through chromedriver.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.cmd(
            Method::POST,
            &self.s("/goog/cdp/execute"),
            Some(json!({ "cmd": cmd, "params": params })),
        )
        .await
    }

    pub async fn quit(self) {
        let _ = self.try_cmd(Method::DELETE, &self.s(""), None).await;
    }
}
