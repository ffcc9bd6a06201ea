//! Boots the real server in-process on a free port, in front of the demo app as upstream,
//! with its own database and a clock the test moves.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use gatehouse::clock::ManualClock;
use gatehouse::config::Secret;
use gatehouse::server::Running;
use gatehouse::store::{Tier, UserRow};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::{Backend, FAST_HASH_TOML, TestDb};

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestServer {
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub base: String,
    pub clock: Arc<ManualClock>,
    pub db: TestDb,
    pub upstream: SocketAddr,
    stop_upstream: Option<oneshot::Sender<()>>,
}

/// Routes most tests use, mirroring the demo.
pub const ROUTES: &str = r#"
[[routes]]
path = "/"
access = "public"
[[routes]]
path = "/public/**"
access = "public"
[[routes]]
path = "/closed/**"
access = "deny"
[[routes]]
path = "/admin/**"
roles = ["admin"]
[[routes]]
path = "/editors/**"
roles = ["editor"]
[[routes]]
path = "/premium/**"
tiers = ["premium", "enterprise"]
[[routes]]
path = "/verified/**"
require_verified = true
[[routes]]
path = "/readonly/**"
methods = ["POST", "PUT", "DELETE"]
access = "deny"
[[routes]]
path = "/readonly/**"
access = "public"
"#;

impl TestServer {
    /// Starts with [`ROUTES`] and `extra` TOML appended (which may add tables).
    pub async fn start(backend: Backend, extra: &str) -> Option<TestServer> {
        Self::start_full(backend, &format!("{ROUTES}\n{extra}")).await
    }

    /// Starts with [`ROUTES`], extra `[security]` keys (the base config ends in that table)
    /// and `extra` TOML.
    pub async fn start_with_security(
        backend: Backend,
        security_keys: &str,
        extra: &str,
    ) -> Option<TestServer> {
        Self::start_full(backend, &format!("{security_keys}\n{ROUTES}\n{extra}")).await
    }

    /// Starts with exactly `config` (plus server/upstream/database and fast hashing).
    pub async fn start_full(backend: Backend, config: &str) -> Option<TestServer> {
        Self::start_edited(backend, config, |t| t).await
    }

    /// Like [`TestServer::start_full`], with `edit` applied to the whole TOML (e.g. to add
    /// keys to `[server]`, which the base config opens).
    pub async fn start_edited(
        backend: Backend,
        config: &str,
        edit: impl FnOnce(String) -> String,
    ) -> Option<TestServer> {
        let up_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = up_listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        tokio::spawn(gatehouse::demo::upstream::serve(up_listener, async move {
            let _ = stop_rx.await;
        }));
        let mut s =
            Self::start_in_front_of_edited(backend, &format!("http://{upstream}"), config, edit)
                .await?;
        s.stop_upstream = Some(stop_tx);
        Some(s)
    }

    /// As [`TestServer::start_in_front_of`], with `server_keys` added to the `[server]` table
    /// (e.g. `public_url`, `trusted_proxies`).
    pub async fn start_with_server_keys(
        backend: Backend,
        upstream_url: &str,
        server_keys: &str,
        config: &str,
    ) -> Option<TestServer> {
        let keys = format!("[server]\n{server_keys}\n");
        Self::start_in_front_of_edited(backend, upstream_url, config, move |t| {
            t.replacen("[server]\n", &keys, 1)
        })
        .await
    }

    /// Starts in front of an upstream the test runs itself, with exactly `config` (plus
    /// server/upstream/database and fast hashing).
    pub async fn start_in_front_of(
        backend: Backend,
        upstream_url: &str,
        config: &str,
    ) -> Option<TestServer> {
        Self::start_in_front_of_edited(backend, upstream_url, config, |t| t).await
    }

    async fn start_in_front_of_edited(
        backend: Backend,
        upstream_url: &str,
        config: &str,
        edit: impl FnOnce(String) -> String,
    ) -> Option<TestServer> {
        let db = TestDb::new(backend).await?;
        let upstream: SocketAddr = upstream_url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap();
        let toml = edit(base_toml(&db, upstream_url) + config);
        let settings =
            gatehouse::config::from_toml(&toml).unwrap_or_else(|e| panic!("test config: {e}"));
        let clock = Arc::new(ManualClock::starting_now());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = gatehouse::server::start(settings, clock.clone(), Some(listener))
            .await
            .expect("server starts");
        let addr = running.local_addr;
        Some(TestServer {
            running: Some(running),
            addr,
            base: format!("http://{addr}"),
            clock,
            db,
            upstream,
            stop_upstream: None,
        })
    }

    /// Like [`TestServer::start`], with `server.public_url` set to `http://localhost:{port}`
    /// of the port the server listens on (the browser's origin must be the public URL's, as
    /// for passkeys). Open pages at [`TestServer::localhost_base`].
    pub async fn start_on_localhost(backend: Backend, extra: &str) -> Option<TestServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let keys = format!("public_url = \"http://localhost:{port}\"");
        TestServer::start_on(backend, listener, &keys, extra).await
    }

    /// Like [`TestServer::start`] (with [`ROUTES`] and `extra`), on a listener the test bound
    /// first because it needed the address earlier (e.g. for a callback URL registered at an
    /// identity provider); `server_keys` go into `[server]`.
    pub async fn start_on(
        backend: Backend,
        listener: TcpListener,
        server_keys: &str,
        extra: &str,
    ) -> Option<TestServer> {
        let db = TestDb::new(backend).await?;
        let up_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = up_listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        tokio::spawn(gatehouse::demo::upstream::serve(up_listener, async move {
            let _ = stop_rx.await;
        }));
        let toml = (base_toml(&db, &format!("http://{upstream}")) + &format!("{ROUTES}\n{extra}"))
            .replacen("[server]\n", &format!("[server]\n{server_keys}\n"), 1);
        let settings =
            gatehouse::config::from_toml(&toml).unwrap_or_else(|e| panic!("test config: {e}"));
        let clock = Arc::new(ManualClock::starting_now());
        let running = gatehouse::server::start(settings, clock.clone(), Some(listener))
            .await
            .expect("server starts");
        let addr = running.local_addr;
        Some(TestServer {
            running: Some(running),
            addr,
            base: format!("http://{addr}"),
            clock,
            db,
            upstream,
            stop_upstream: Some(stop_tx),
        })
    }

    /// `http://localhost:{port}`: the public URL of [`TestServer::start_on_localhost`].
    pub fn localhost_base(&self) -> String {
        format!("http://localhost:{}", self.addr.port())
    }

    /// A second instance on this server's database (and data folder, so the same keys), in
    /// front of the same upstream, with [`ROUTES`] and `extra` — as for [`TestServer::start`].
    /// It has its own caches and clock, as another process would; the first server must
    /// outlive it.
    pub async fn second(&self, extra: &str) -> TestServer {
        self.second_with_security("", extra).await
    }

    /// As [`TestServer::second`], with extra `[security]` keys first (as for
    /// [`TestServer::start_with_security`]).
    pub async fn second_with_security(&self, security_keys: &str, extra: &str) -> TestServer {
        self.second_edited(security_keys, extra, |t| t).await
    }

    /// As [`TestServer::second`], with `server_keys` added to the `[server]` table (e.g. the
    /// first instance's `public_url`, as two instances behind one address have).
    pub async fn second_with_server_keys(&self, server_keys: &str, extra: &str) -> TestServer {
        let keys = format!("[server]\n{server_keys}\n");
        self.second_edited("", extra, move |t| t.replacen("[server]\n", &keys, 1))
            .await
    }

    /// A second instance of a [`TestServer::start_on_localhost`] server, with the same
    /// `server.public_url` (as behind one load balancer).
    pub async fn second_on_same_localhost(&self, extra: &str) -> TestServer {
        let line = format!("[server]\npublic_url = \"{}\"\n", self.localhost_base());
        self.second_edited("", extra, move |t| t.replacen("[server]\n", &line, 1))
            .await
    }

    async fn second_edited(
        &self,
        security_keys: &str,
        extra: &str,
        edit: impl FnOnce(String) -> String,
    ) -> TestServer {
        let toml = edit(
            base_toml(&self.db, &format!("http://{}", self.upstream))
                + &format!("{security_keys}\n{ROUTES}\n{extra}"),
        );
        let settings =
            gatehouse::config::from_toml(&toml).unwrap_or_else(|e| panic!("test config: {e}"));
        let clock = Arc::new(ManualClock::starting_now());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = gatehouse::server::start(settings, clock.clone(), Some(listener))
            .await
            .expect("second server starts");
        let addr = running.local_addr;
        TestServer {
            running: Some(running),
            addr,
            base: format!("http://{addr}"),
            clock,
            db: TestDb {
                url: self.db.url.clone(),
                backend: self.db.backend,
                dir: tempfile::tempdir().expect("temp dir"),
            },
            upstream: self.upstream,
            stop_upstream: None,
        }
    }

    pub fn app(&self) -> &gatehouse::app::App {
        &self.running.as_ref().expect("server running").app
    }

    /// The activity log so far (up to 1000 rows, newest first). Rows are written in the
    /// background: a test that needs a row it just caused waits or polls.
    pub async fn activity(&self) -> Vec<gatehouse::store::ActivityRow> {
        self.app()
            .store
            .list_activity(&gatehouse::store::ActivityFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("read the activity log")
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.base)
    }

    /// Creates a user with [`PASSWORD`], optionally with flags set by `f`.
    pub async fn user(
        &self,
        username: &str,
        f: impl FnOnce(&mut gatehouse::accounts::NewAccount),
    ) -> UserRow {
        let mut a = gatehouse::accounts::NewAccount::new(
            username,
            format!("{username}@example.com"),
            Some(Secret::new(PASSWORD.into())),
        );
        f(&mut a);
        self.app()
            .accounts
            .create_user(a, None)
            .await
            .expect("create user")
    }

    pub async fn plain_user(&self, username: &str) -> UserRow {
        self.user(username, |_| {}).await
    }

    pub async fn tier_user(&self, username: &str, tier: Tier) -> UserRow {
        self.user(username, |a| a.tier = tier).await
    }

    /// A browser signed in as a new user named `username`.
    pub async fn signed_in(&self, username: &str) -> Browser {
        self.plain_user(username).await;
        let mut b = self.browser();
        b.login(username, PASSWORD).await;
        b
    }

    /// Stops gracefully (flushing the activity log) and returns the store for inspection.
    pub async fn shutdown(&mut self) -> gatehouse::store::Store {
        let running = self.running.take().expect("server running");
        let store = running.app.store.clone();
        running.shutdown().await;
        if let Some(s) = self.stop_upstream.take() {
            let _ = s.send(());
        }
        store
    }
}

pub fn base_toml(db: &TestDb, upstream: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[upstream]\nurl = \"{upstream}\"\nconnect_timeout = \"2s\"\nresponse_timeout = \"5s\"\n[database]\nurl = \"{}\"\n[audit]\nflush_interval = \"20ms\"\n{FAST_HASH_TOML}",
        db.dir.path().join("data").display(),
        db.url
    )
}

/// A response, body read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the security headers every page under `/_auth/` carries.
    #[track_caller]
    pub fn assert_page_security_headers(&self) {
        assert_eq!(
            self.header("content-security-policy"),
            Some(
                "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self'"
            )
        );
        assert_eq!(self.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(self.header("referrer-policy"), Some("no-referrer"));
    }

    /// Values of a header the upstream echo app received (lowercase name).
    pub fn echoed(&self, name: &str) -> Vec<String> {
        self.json()["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p[0].as_str() == Some(name))
            .map(|p| p[1].as_str().unwrap_or("").to_string())
            .collect()
    }
}

/// A minimal browser: a cookie jar and helpers for our forms.
pub struct Browser {
    pub base: String,
    pub cookies: HashMap<String, String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            base: base.to_string(),
            cookies: HashMap::new(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub fn cookie_header(&self) -> Option<String> {
        (!self.cookies.is_empty()).then(|| {
            self.cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// Sends a request with the jar's cookies; stores cookies the response sets.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Resp {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if let Some(c) = self.cookie_header() {
            b = b.header("cookie", c);
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = self
            .client
            .request(b.body(Full::new(body)).unwrap())
            .await
            .expect("request sent");
        let (parts, body) = resp.into_parts();
        for sc in parts.headers.get_all("set-cookie") {
            let c = cookie::Cookie::parse(sc.to_str().unwrap().to_string()).unwrap();
            if c.value().is_empty() || c.max_age() == Some(cookie::time::Duration::ZERO) {
                self.cookies.remove(c.name());
            } else {
                self.cookies
                    .insert(c.name().to_string(), c.value().to_string());
            }
        }
        let body = body.collect().await.expect("body").to_bytes();
        Resp {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    /// A GET as a browser page load (Accept: text/html).
    pub async fn page(&mut self, path: &str) -> Resp {
        self.send(
            Method::GET,
            path,
            &[("accept", "text/html,application/xhtml+xml,*/*;q=0.8")],
            Bytes::new(),
        )
        .await
    }

    /// A GET asking the echo app for JSON.
    pub async fn api(&mut self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut h = vec![("accept", "application/json")];
        h.extend_from_slice(headers);
        self.send(Method::GET, path, &h, Bytes::new()).await
    }

    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(
            Method::POST,
            path,
            &[("content-type", "application/x-www-form-urlencoded")],
            Bytes::from(body),
        )
        .await
    }

    /// The CSRF token of the form on `path`.
    pub async fn csrf(&mut self, path: &str) -> String {
        let page = self.page(path).await;
        csrf_in(&page.text()).unwrap_or_else(|| panic!("no csrf_token on {path}: {}", page.text()))
    }

    /// Signs in through the login form; asserts the redirect.
    pub async fn login(&mut self, username: &str, password: &str) -> Resp {
        let token = self.csrf("/_auth/login").await;
        let r = self
            .post_form(
                "/_auth/login",
                &[
                    ("csrf_token", &token),
                    ("username", username),
                    ("password", password),
                    ("next", "/app/"),
                ],
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::SEE_OTHER,
            "login failed: {}",
            r.text()
        );
        r
    }

    pub async fn logout(&mut self) -> Resp {
        let token = self.csrf("/_auth/logout").await;
        self.post_form("/_auth/logout", &[("csrf_token", &token)])
            .await
    }
}

/// Extracts `name="csrf_token" value="..."` from a page.
pub fn csrf_in(html: &str) -> Option<String> {
    let i = html.find("name=\"csrf_token\" value=\"")? + "name=\"csrf_token\" value=\"".len();
    let rest = &html[i..];
    Some(rest[..rest.find('"')?].to_string())
}

/// A catch-all public route, for tests about transport rather than access.
pub const PUBLIC_ALL: &str = "[[routes]]\npath = \"/**\"\naccess = \"public\"\n";

/// A server on a fresh SQLite database in front of `upstream`, configured by `edit` applied to
/// the base TOML. Returns the running server and the database (keep it alive).
pub async fn start_bare(upstream: &str, edit: impl FnOnce(String) -> String) -> (Running, TestDb) {
    let db = TestDb::new(Backend::Sqlite).await.expect("sqlite");
    let toml = edit(base_toml(&db, upstream));
    let settings =
        gatehouse::config::from_toml(&toml).unwrap_or_else(|e| panic!("test config: {e}"));
    let running = gatehouse::server::start(
        settings,
        Arc::new(ManualClock::starting_now()),
        Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
    )
    .await
    .expect("server starts");
    (running, db)
}

/// Starts the demo app on a free port.
pub async fn demo_upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(gatehouse::demo::upstream::serve(l, std::future::pending()));
    addr
}
