//! Forward-auth mode: the two endpoints asked directly, as a front proxy would, and
//! then behind a real nginx (`auth_request`) and a real Caddy (`forward_auth`).
//!
//! The front-proxy tests need the `nginx` and `caddy` binaries (Debian packages); without them
//! they are skipped with a note, unless `GATEHOUSE_REQUIRE_FRONT_PROXIES=1` (CI) makes that a
//! failure.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both_backends;
use crate::harness::server::{Browser, PASSWORD, ROUTES, TestServer, demo_upstream};
use crate::harness::{Backend, skip_or_require};

both_backends!(
    untrusted_peer_is_refused,
    anonymous_answers,
    signed_in_answers_and_activity,
    behind_nginx,
    behind_caddy,
);

const AUTH_REQUEST: &str = "/_auth/authz/auth-request";
const FORWARD_AUTH: &str = "/_auth/authz/forward-auth";
const HTML: &str = "text/html,application/xhtml+xml,*/*;q=0.8";

/// Gatehouse trusting only 127.0.0.1, with `public_url` on `public` (the front proxy's
/// address when there is one).
async fn server(b: Backend, public: Option<&str>) -> TestServer {
    let up = demo_upstream().await;
    let public_line = public.map_or(String::new(), |p| format!("public_url = \"{p}\"\n"));
    TestServer::start_with_server_keys(
        b,
        &format!("http://{up}"),
        &format!("{public_line}trusted_proxies = [\"127.0.0.1/32\"]"),
        ROUTES,
    )
    .await
    .expect("backend available")
}

/// A request from `from` (any loopback address), written by hand so the source address is
/// ours to choose. Returns the status and the raw response head.
async fn raw_from(
    from: [u8; 4],
    to: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((from, 0))).unwrap();
    let mut conn = sock.connect(to).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    conn.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Asks an endpoint as a front proxy would: the description of the original request in
/// headers, the client's cookies and `Accept` passed on.
async fn ask(
    b: &mut Browser,
    endpoint: &str,
    method: &str,
    uri: &str,
    accept: &str,
) -> crate::harness::server::Resp {
    b.send(
        Method::GET,
        endpoint,
        &[
            ("x-forwarded-method", method),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "app.test"),
            ("x-forwarded-uri", uri),
            ("accept", accept),
        ],
        Bytes::new(),
    )
    .await
}

async fn untrusted_peer_is_refused(b: Backend) {
    let s = server(b, None).await;
    let spoof = [
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Uri", "/"),
        ("X-Original-URI", "/"),
        ("X-Forwarded-Host", "app.test"),
    ];
    for endpoint in [AUTH_REQUEST, FORWARD_AUTH] {
        // From 127.0.0.2, outside trusted_proxies: the description is not believed.
        let (status, text) = raw_from([127, 0, 0, 2], s.addr, endpoint, &spoof).await;
        assert_eq!(status, 403, "{endpoint}: {text}");
        assert!(text.contains("trusted_proxies"), "{text}");
        // The same description from the trusted address passes (the route is public).
        let (status, text) = raw_from([127, 0, 0, 1], s.addr, endpoint, &spoof).await;
        assert_eq!(status, 200, "{endpoint}: {text}");
    }
    // In proxy mode, an untrusted client's X-Forwarded-Uri never reaches the app.
    let (status, text) = raw_from(
        [127, 0, 0, 2],
        s.addr,
        "/public/x",
        &[
            ("Accept", "application/json"),
            ("X-Forwarded-Uri", "/admin/"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(
        !text.to_ascii_lowercase().contains("x-forwarded-uri"),
        "{text}"
    );
}

async fn anonymous_answers(b: Backend) {
    let s = server(b, Some("https://auth.example.com")).await;
    let mut anon = s.browser();
    // nginx: 401, and the sign-in URL for error_page.
    let r = ask(&mut anon, AUTH_REQUEST, "GET", "/app/x?y=1", HTML).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.header("x-auth-redirect"),
        Some("https://auth.example.com/_auth/login?next=http%3A%2F%2Fapp%2Etest%2Fapp%2Fx%3Fy%3D1")
    );
    // Traefik / Caddy: a page load is redirected, a program gets 401 JSON.
    let r = ask(&mut anon, FORWARD_AUTH, "GET", "/app/x", HTML).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert!(
        r.header("location")
            .unwrap()
            .starts_with("https://auth.example.com/_auth/login?next="),
        "{:?}",
        r.headers
    );
    let r = ask(&mut anon, FORWARD_AUTH, "GET", "/app/x", "application/json").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"], "unauthenticated");
    // A POST is never a page load.
    let r = ask(&mut anon, FORWARD_AUTH, "POST", "/app/x", HTML).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Public routes pass without a session, with no identity headers.
    let r = ask(&mut anon, AUTH_REQUEST, "GET", "/public/x", HTML).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-auth-user"), Some(""));
    // The method counts: /readonly/** is public for GET, denied for POST.
    let r = ask(&mut anon, AUTH_REQUEST, "POST", "/readonly/x", HTML).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Refused: a description that can be read two ways, or none at all.
    for (endpoint, want) in [(AUTH_REQUEST, 403), (FORWARD_AUTH, 400)] {
        let r = anon
            .send(
                Method::GET,
                endpoint,
                &[
                    ("x-forwarded-uri", "/public/x"),
                    ("x-original-uri", "/admin/"),
                ],
                Bytes::new(),
            )
            .await;
        assert_eq!(r.status, 403, "{endpoint} conflicting URIs");
        let r = anon.send(Method::GET, endpoint, &[], Bytes::new()).await;
        assert_eq!(r.status, 403, "{endpoint} no URI");
        // The trust-boundary rules apply to the described URI.
        let r = ask(&mut anon, endpoint, "GET", "/public/%2e%2e/admin/", HTML).await;
        assert_eq!(r.status.as_u16(), want, "{endpoint} ambiguous path");
    }
    // nginx's own spelling: X-Original-URI, the method being the subrequest's.
    let r = anon
        .send(
            Method::POST,
            AUTH_REQUEST,
            &[("x-original-uri", "/readonly/x")],
            Bytes::from_static(b"ignored"),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

async fn signed_in_answers_and_activity(b: Backend) {
    let mut s = server(b, None).await;
    s.plain_user("alice").await;
    let mut alice = s.browser();
    alice.login("alice", PASSWORD).await;
    // Warm up: the first request may load the session.
    let r = ask(&mut alice, AUTH_REQUEST, "GET", "/app/x", HTML).await;
    assert_eq!(r.status, StatusCode::OK);
    let before = s.app().store.query_count();
    let mut n = 1;
    for (endpoint, uri, want) in [
        (AUTH_REQUEST, "/app/y", 200),
        (FORWARD_AUTH, "/app/y", 200),
        (AUTH_REQUEST, "/admin/x", 403),
        (FORWARD_AUTH, "/admin/x", 403),
        (FORWARD_AUTH, "/ADMIN/x", 403),
        (FORWARD_AUTH, "/app/x?_method=DELETE&q=/admin/", 200),
    ] {
        let r = ask(&mut alice, endpoint, "GET", uri, HTML).await;
        assert_eq!(r.status.as_u16(), want, "{endpoint} {uri}");
        n += 1;
        if want == 200 {
            assert_eq!(r.header("x-auth-user"), Some("alice"));
            assert_eq!(r.header("x-auth-email"), Some("alice@example.com"));
            assert_eq!(r.header("x-auth-assertion").unwrap().split('.').count(), 3);
        } else {
            assert!(r.header("x-auth-user").is_none());
        }
    }
    assert_eq!(
        s.app().store.query_count() - before,
        0,
        "forward-auth made database queries"
    );
    let store = s.shutdown().await;
    drop(store);
    let db = gatehouse::store::Store::connect(&s.db.url, 1)
        .await
        .unwrap();
    assert_eq!(db.count_activity(Some("request")).await.unwrap(), n);
    let rows = db
        .list_activity(&gatehouse::store::ActivityFilter {
            activity_type: Some("request".into()),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let meta = rows[0].metadata.as_ref().unwrap().0.clone();
    assert_eq!(meta["status"], 200);
    assert_eq!(meta["method"], "GET");
}

// ---- real front proxies -------------------------------------------------------------------

/// Whether `binary` is installed; says why not (or fails under CI's requirement).
pub(crate) fn front_proxy_available(binary: &str) -> bool {
    let found = ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"]
        .iter()
        .any(|d| Path::new(d).join(binary).exists());
    if !found {
        skip_or_require(
            "GATEHOUSE_REQUIRE_FRONT_PROXIES",
            &format!("{binary} is not installed"),
            &format!("forward-auth tests behind {binary}"),
            "apt-get install nginx caddy, or set GATEHOUSE_REQUIRE_FRONT_PROXIES=1 to fail instead",
        );
    }
    found
}

/// A free loopback port (released again; the proxy binds it a moment later).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A front proxy process, killed when dropped.
pub(crate) struct FrontProxy {
    pub(crate) child: tokio::process::Child,
    pub(crate) port: u16,
    pub(crate) _dir: tempfile::TempDir,
}

impl FrontProxy {
    /// Waits until the proxy accepts connections (it has no readiness signal to await).
    pub(crate) async fn ready(mut self) -> FrontProxy {
        for _ in 0..500 {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err).await;
                }
                panic!("front proxy exited with {status}: {err}");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return self;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("front proxy did not listen on {}", self.port);
    }
}

pub(crate) fn spawn(cmd: &mut tokio::process::Command) -> tokio::process::Child {
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn start_nginx(port: u16, gatehouse: SocketAddr, app: SocketAddr) -> FrontProxy {
    let dir = tempfile::tempdir().unwrap();
    let example = include_str!("../../config/nginx-auth-request.conf");
    // The example's server block, pointed at this test's ports, in a minimal main config.
    let server_block = example
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace("server_name app.example.com;", "server_name _;")
        .replace("127.0.0.1:4180", &gatehouse.to_string())
        .replace("127.0.0.1:3000", &app.to_string());
    let tmp = dir.path().display();
    let conf = format!(
        "worker_processes 1;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {tmp}/body;\n  proxy_temp_path {tmp}/proxy;\n  fastcgi_temp_path {tmp}/fastcgi;\n  uwsgi_temp_path {tmp}/uwsgi;\n  scgi_temp_path {tmp}/scgi;\n{server_block}\n}}\n"
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = spawn(
        tokio::process::Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .arg("-g")
            .arg(format!(
                // One process: killing it on drop leaves no orphaned workers behind.
                "daemon off; master_process off; pid {tmp}/nginx.pid; error_log stderr;"
            )),
    );
    FrontProxy {
        child,
        port,
        _dir: dir,
    }
    .ready()
    .await
}

async fn start_caddy(port: u16, gatehouse: SocketAddr, app: SocketAddr) -> FrontProxy {
    let dir = tempfile::tempdir().unwrap();
    let example = include_str!("../../config/Caddyfile.forward-auth");
    let conf = example
        .replace("app.example.com", &format!("http://127.0.0.1:{port}"))
        .replace("127.0.0.1:4180", &gatehouse.to_string())
        .replace("127.0.0.1:3000", &app.to_string())
        .replacen(
            "{\n",
            "{\n\tadmin off\n\tauto_https off\n\tdefault_bind 127.0.0.1\n",
            1,
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

/// The scenario of the issue, through a front proxy on `port`.
async fn through_front_proxy(s: &TestServer, port: u16) {
    let base = format!("http://127.0.0.1:{port}");
    s.plain_user("alice").await;
    s.user("ada", |a| a.is_admin = true).await;
    // Anonymous page load → the sign-in page, with next set to where the user was going.
    let mut anon = Browser::new(&base);
    let r = anon.page("/app/page?x=1").await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let location = r.header("location").unwrap().to_string();
    assert_eq!(
        location,
        format!("{base}/_auth/login?next=%2Fapp%2Fpage%3Fx%3D1")
    );
    let login = anon.page(location.trim_start_matches(&base)).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.text().contains("csrf_token"), "{}", login.text());
    // A client's own identity headers never reach the app, signed in or not.
    let r = anon
        .api(
            "/public/x",
            &[("x-auth-user", "mallory"), ("x-auth-roles", "admin")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    for h in ["x-auth-user", "x-auth-roles", "x-auth-assertion"] {
        assert!(
            r.echoed(h).iter().all(String::is_empty),
            "{h}: {}",
            r.text()
        );
    }
    // Sign in through the front proxy; the protected page then reaches the app with identity.
    let mut alice = Browser::new(&base);
    alice.login("alice", PASSWORD).await;
    let r = alice.api("/app/page", &[("x-auth-user", "mallory")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.echoed("x-auth-user"), ["alice"]);
    assert_eq!(r.echoed("x-auth-email"), ["alice@example.com"]);
    // The app verifies the assertion with nothing but the JWKS URL, through the front proxy.
    let token = r.echoed("x-auth-assertion").pop().unwrap();
    if crate::assertion::pyjwt_available() {
        let iss = s
            .app()
            .settings
            .server
            .public_url
            .as_str()
            .trim_end_matches('/')
            .to_string();
        let v = crate::assertion::pyjwt(
            &format!("{base}/_auth/.well-known/jwks.json"),
            &format!("http://{}", s.upstream),
            &iss,
            &token,
        )
        .await
        .unwrap();
        assert_eq!(v["claims"]["preferred_username"], "alice");
    }
    // The user without the role → 403; the one with it passes.
    let r = alice.api("/admin/x", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let mut ada = Browser::new(&base);
    ada.login("ada", PASSWORD).await;
    let r = ada.api("/admin/x", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(
        r.echoed("x-auth-roles")[0].contains("admin"),
        "{}",
        r.text()
    );
    // Spoofed description straight to either endpoint, from an untrusted address → 403.
    for endpoint in [AUTH_REQUEST, FORWARD_AUTH] {
        let (status, text) = raw_from(
            [127, 0, 0, 3],
            s.addr,
            endpoint,
            &[
                ("X-Forwarded-Uri", "/admin/x"),
                ("X-Original-URI", "/admin/x"),
                ("Cookie", &alice.cookie_header().unwrap()),
            ],
        )
        .await;
        assert_eq!(status, 403, "{endpoint}: {text}");
    }
}

async fn behind_nginx(b: Backend) {
    if !front_proxy_available("nginx") {
        return;
    }
    let port = free_port();
    let s = server(b, Some(&format!("http://127.0.0.1:{port}"))).await;
    let _nginx = start_nginx(port, s.addr, s.upstream).await;
    through_front_proxy(&s, port).await;
}

async fn behind_caddy(b: Backend) {
    if !front_proxy_available("caddy") {
        return;
    }
    let port = free_port();
    let s = server(b, Some(&format!("http://127.0.0.1:{port}"))).await;
    let _caddy = start_caddy(port, s.addr, s.upstream).await;
    through_front_proxy(&s, port).await;
}

both_backends!(cookie_domain_scopes_the_session_cookie);

async fn cookie_domain_scopes_the_session_cookie(b: Backend) {
    let up = demo_upstream().await;
    let s = TestServer::start_with_server_keys(
        b,
        &format!("http://{up}"),
        "behind_tls_proxy = true\ntrusted_proxies = [\"127.0.0.1/32\"]",
        &format!("{ROUTES}\n[session]\ncookie_domain = \".Example.COM\"\n"),
    )
    .await
    .expect("backend");
    s.plain_user("alice").await;
    let mut alice = s.browser();
    let r = alice.login("alice", PASSWORD).await;
    let set: Vec<&str> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let session = set
        .iter()
        .find(|c| c.starts_with("gatehouse_session="))
        .unwrap_or_else(|| panic!("{set:?}"));
    for part in ["Domain=example.com", "Secure", "HttpOnly", "Path=/"] {
        assert!(session.contains(part), "{session}");
    }
    // Only the session cookie is shared; the others stay on the portal's host.
    assert!(
        set.iter()
            .all(|c| c.starts_with("gatehouse_session=") || !c.contains("Domain")),
        "{set:?}"
    );
    let r = ask(&mut alice, FORWARD_AUTH, "GET", "/app/x", HTML).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-auth-user"), Some("alice"));
    // Signing out clears it for the same domain.
    let r = alice.logout().await;
    let cleared = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("gatehouse_session="))
        .unwrap();
    assert!(cleared.contains("Domain=example.com"), "{cleared}");
    // Without cookie_domain the cookie keeps its __Host- prefix and no Domain.
    let plain = TestServer::start_with_server_keys(
        b,
        &format!("http://{up}"),
        "behind_tls_proxy = true",
        ROUTES,
    )
    .await
    .expect("backend");
    plain.plain_user("bob").await;
    let mut bob = plain.browser();
    let r = bob.login("bob", PASSWORD).await;
    let all: Vec<&str> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        all.iter()
            .any(|c| c.starts_with("__Host-gatehouse_session=") && !c.contains("Domain")),
        "{all:?}"
    );
}
