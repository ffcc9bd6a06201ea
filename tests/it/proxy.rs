//! The proxy through its public surface: real server, real sockets, the demo app as upstream.

use std::time::Duration;

use bytes::Bytes;
use chrono::Duration as Chrono;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::both_backends;
use crate::harness::server::{PUBLIC_ALL, start_bare};
use crate::harness::{Backend, TestServer};
use gatehouse::store::{Tier, Ts};

async fn server(b: Backend) -> TestServer {
    TestServer::start(b, "").await.expect("backend available")
}

both_backends!(
    who_gets_what,
    spoofed_identity_headers_are_stripped,
    roles_tiers_and_verified,
    expired_role_is_refused_on_next_request,
    sign_out_kills_the_session_server_side,
    idle_and_absolute_expiry,
    activity_rows_match_authenticated_requests,
    steady_state_makes_no_database_queries,
    one_connection_sees_every_session_change_at_once,
);

async fn who_gets_what(b: Backend) {
    let s = server(b).await;
    let mut anon = s.browser();
    // Public routes pass without a session.
    assert_eq!(anon.api("/", &[]).await.status, StatusCode::OK);
    assert_eq!(anon.api("/public/x", &[]).await.status, StatusCode::OK);
    // A page load is redirected to sign in, with the path and query kept.
    let r = anon.page("/app/page?x=1&y=2").await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(
        r.header("location"),
        Some("/_auth/login?next=%2Fapp%2Fpage%3Fx%3D1%26y%3D2")
    );
    // Anything else gets 401 JSON.
    let r = anon.api("/app/page", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"], "unauthenticated");
    let r = anon
        .send(
            Method::POST,
            "/app/page",
            &[("accept", "text/html")],
            Bytes::new(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "POST is never a page load"
    );
    let r = anon
        .send(
            Method::GET,
            "/app/page",
            &[
                ("accept", "text/html"),
                ("x-requested-with", "XMLHttpRequest"),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "XHR is not a page load");
    // Deny is 403 for everyone.
    assert_eq!(
        anon.api("/closed/x", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    let mut alice = s.signed_in("alice").await;
    assert_eq!(
        alice.api("/closed/x", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    // Signed in but not allowed: 403, HTML or JSON by the same rule.
    let r = alice.api("/admin/", &[]).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let r = alice.page("/admin/").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    // Method-scoped rules: writes denied, reads public.
    assert_eq!(anon.api("/readonly/doc", &[]).await.status, StatusCode::OK);
    let r = anon
        .send(Method::DELETE, "/readonly/doc", &[], Bytes::new())
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Unmatched paths need a session; signed in they pass with identity headers.
    let r = alice.api("/app/page", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.echoed("x-auth-user"), vec!["alice"]);
    assert_eq!(r.echoed("x-auth-email"), vec!["alice@example.com"]);
    assert_eq!(r.echoed("x-auth-tier"), vec!["free"]);
    assert_eq!(r.echoed("x-auth-admin"), vec!["false"]);
    assert_eq!(r.echoed("x-auth-verified"), vec!["false"]);
    assert_eq!(r.echoed("x-auth-roles"), vec![""]);
    assert!(r.echoed("x-auth-user-id")[0].parse::<i64>().is_ok());
    // Ambiguous paths are refused rather than guessed at.
    assert_eq!(
        alice.api("/public/../admin/", &[]).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        anon.api("/public/%2e%2e/admin/", &[]).await.status,
        StatusCode::BAD_REQUEST
    );
    // Percent-encoding cannot dodge a rule.
    assert_eq!(
        alice.api("/%61dmin/", &[]).await.status,
        StatusCode::FORBIDDEN
    );
}

async fn spoofed_identity_headers_are_stripped(b: Backend) {
    let s = server(b).await;
    let spoof: Vec<(&str, &str)> = vec![
        ("X-Auth-User", "root"),
        ("x-auth-user", "root2"),
        ("X_Auth_User", "root3"),
        ("x_auth_user", "root4"),
        ("X-AUTH-ROLES", "admin"),
        ("X_Auth-Admin", "true"),
        ("x-auth_user-id", "1"),
        ("X-Auth-Email", "root@example.com"),
        ("X-Auth-Name", "Root"),
        ("X-Auth-Tier", "enterprise"),
        ("X-Auth-Verified", "true"),
    ];
    let mut anon = s.browser();
    let r = anon.api("/public/x", &spoof).await;
    assert_eq!(r.status, StatusCode::OK);
    for (name, _) in &r.json()["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_string(), ()))
        .collect::<Vec<_>>()
    {
        let folded = name.replace('_', "-");
        assert!(
            !folded.starts_with("x-auth-"),
            "{name} reached the upstream on a public route"
        );
    }
    let mut alice = s.signed_in("alice").await;
    let r = alice.api("/app/x", &spoof).await;
    assert_eq!(r.echoed("x-auth-user"), vec!["alice"], "exactly one, ours");
    assert_eq!(r.echoed("x-auth-roles"), vec![""]);
    assert_eq!(r.echoed("x-auth-admin"), vec!["false"]);
    let underscored: Vec<String> = r.json()["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            p[0].as_str()
                .filter(|n| n.contains('_'))
                .map(str::to_string)
        })
        .collect();
    assert!(underscored.is_empty(), "{underscored:?}");
    // Client X-Forwarded-* is not trusted by default; our own values replace it.
    let r = anon
        .api(
            "/public/x",
            &[
                ("x-forwarded-for", "203.0.113.1"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "evil.example"),
            ],
        )
        .await;
    assert_eq!(r.echoed("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(r.echoed("x-forwarded-proto"), vec!["http"]);
    assert_eq!(r.echoed("x-forwarded-host"), vec![s.addr.to_string()]);
    assert_eq!(r.echoed("x-request-id").len(), 1);
    assert_eq!(
        r.header("x-request-id").map(str::to_string),
        r.echoed("x-request-id").first().cloned()
    );
    // Hop-by-hop headers do not pass; our cookies never reach the app.
    let r = alice
        .api(
            "/app/x",
            &[
                ("connection", "x-private"),
                ("x-private", "1"),
                ("te", "trailers"),
                ("cookie", "app_pref=dark"),
            ],
        )
        .await;
    assert!(r.echoed("x-private").is_empty());
    assert!(r.echoed("te").is_empty());
    let cookies = r.echoed("cookie").join(";");
    assert!(cookies.contains("app_pref=dark"), "{cookies}");
    assert!(
        !cookies.contains("gatehouse_session") && !cookies.contains("gatehouse_csrf"),
        "{cookies}"
    );
}

async fn roles_tiers_and_verified(b: Backend) {
    let s = server(b).await;
    let admin = s.user("boss", |a| a.is_admin = true).await;
    let _ = admin;
    let mut boss = s.browser();
    boss.login("boss", crate::harness::PASSWORD).await;
    let r = boss.api("/admin/panel", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.echoed("x-auth-roles"), vec!["admin"]);
    assert_eq!(r.echoed("x-auth-admin"), vec!["true"]);
    // Tiers.
    s.tier_user("rich", Tier::Premium).await;
    let mut rich = s.browser();
    rich.login("rich", crate::harness::PASSWORD).await;
    assert_eq!(rich.api("/premium/x", &[]).await.status, StatusCode::OK);
    assert_eq!(
        boss.api("/premium/x", &[]).await.status,
        StatusCode::FORBIDDEN,
        "free tier"
    );
    // Verified.
    s.user("vera", |a| a.is_verified = true).await;
    let mut vera = s.browser();
    vera.login("vera", crate::harness::PASSWORD).await;
    assert_eq!(vera.api("/verified/x", &[]).await.status, StatusCode::OK);
    assert_eq!(
        rich.api("/verified/x", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    // A granted role shows after the cache is refreshed for that user.
    let u = s.app().accounts.find("rich").await.unwrap();
    s.app()
        .accounts
        .grant_role(u.id, "editor", None, None)
        .await
        .unwrap();
    s.app().sessions.evict_user(u.id);
    let r = rich.api("/editors/x", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.echoed("x-auth-roles"), vec!["editor"]);
}

async fn expired_role_is_refused_on_next_request(b: Backend) {
    let s = server(b).await;
    let u = s.plain_user("ed").await;
    let until = Ts(s.app().now().0 + Chrono::minutes(10));
    s.app()
        .accounts
        .grant_role(u.id, "editor", Some(until), None)
        .await
        .unwrap();
    let mut ed = s.browser();
    ed.login("ed", crate::harness::PASSWORD).await;
    assert_eq!(ed.api("/editors/x", &[]).await.status, StatusCode::OK);
    s.clock.advance(Chrono::minutes(11));
    let r = ed.api("/editors/x", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = ed.api("/app/x", &[]).await;
    assert_eq!(r.echoed("x-auth-roles"), vec![""]);
}

async fn sign_out_kills_the_session_server_side(b: Backend) {
    let s = server(b).await;
    let mut alice = s.signed_in("alice").await;
    let name = s.app().session_cookie_name();
    let stolen = alice.cookies.get(&name).cloned().expect("session cookie");
    assert_eq!(alice.api("/app/x", &[]).await.status, StatusCode::OK);
    let r = alice.logout().await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(!alice.cookies.contains_key(&name), "cookie cleared");
    // Replaying the old cookie does not work: the session is over on the server.
    let mut thief = s.browser();
    thief.cookies.insert(name, stolen);
    assert_eq!(
        thief.api("/app/x", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Logging out needs the CSRF token.
    let mut bob = s.signed_in("bob").await;
    let r = bob
        .post_form("/_auth/logout", &[("csrf_token", "forged")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(bob.api("/app/x", &[]).await.status, StatusCode::OK);
}

async fn idle_and_absolute_expiry(b: Backend) {
    let s = server(b).await;
    let mut alice = s.signed_in("alice").await;
    // Activity keeps the session alive past the idle timeout...
    for _ in 0..3 {
        s.clock.advance(Chrono::minutes(20));
        assert_eq!(alice.api("/app/x", &[]).await.status, StatusCode::OK);
    }
    // ...but 31 idle minutes end it.
    s.clock.advance(Chrono::minutes(31));
    assert_eq!(
        alice.api("/app/x", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Absolute: 12 hours, however active.
    let mut bob = s.signed_in("bob").await;
    for _ in 0..((12 * 60) / 25) {
        s.clock.advance(Chrono::minutes(25));
        assert_eq!(bob.api("/app/x", &[]).await.status, StatusCode::OK);
    }
    s.clock.advance(Chrono::minutes(25));
    assert_eq!(
        bob.api("/app/x", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn activity_rows_match_authenticated_requests(b: Backend) {
    let mut s = server(b).await;
    let mut alice = s.signed_in("alice").await;
    let mut anon = s.browser();
    let mut n = 0;
    for i in 0..40 {
        let r = alice.api(&format!("/app/item/{i}"), &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        n += 1;
        anon.api("/public/x", &[]).await; // not authenticated: no row
    }
    assert_eq!(
        alice.api("/admin/", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    n += 1;
    let store = s.shutdown().await;
    let db = gatehouse::store::Store::connect(&s.db.url, 1)
        .await
        .unwrap();
    let _ = store;
    assert_eq!(db.count_activity(Some("request")).await.unwrap(), n);
    assert_eq!(db.count_activity(Some("login")).await.unwrap(), 1);
    let rows = db
        .list_activity(&gatehouse::store::ActivityFilter {
            activity_type: Some("request".into()),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let meta = rows[0].metadata.as_ref().unwrap().0.clone();
    assert_eq!(meta["status"], 403);
    assert_eq!(meta["path"], "/admin/");
    assert_eq!(meta["method"], "GET");
    assert_eq!(meta["route"], "/admin/**");
    assert!(meta["duration_ms"].is_number());
}

async fn steady_state_makes_no_database_queries(b: Backend) {
    let s = server(b).await;
    let mut alice = s.signed_in("alice").await;
    // Warm up: the first request may load the session.
    assert_eq!(alice.api("/app/x", &[]).await.status, StatusCode::OK);
    let before = s.app().store.query_count();
    for _ in 0..200 {
        assert_eq!(alice.api("/app/x", &[]).await.status, StatusCode::OK);
    }
    assert_eq!(
        s.app().store.query_count() - before,
        0,
        "hot path touched the database"
    );
    // The counter is on the metrics page too.
    let m = alice.get("/_auth/metrics").await;
    assert!(
        m.text().contains("gatehouse_db_queries_total"),
        "{}",
        m.text()
    );
}

#[tokio::test]
async fn garbage_cookies_are_signed_out() {
    let s = server(Backend::Sqlite).await;
    let name = s.app().session_cookie_name();
    for junk in [
        "",
        "x",
        "%%%",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "'; DROP TABLE users; --",
        &"z".repeat(5000),
    ] {
        let mut b = s.browser();
        b.cookies.insert(name.clone(), junk.to_string());
        let r = b.api("/app/x", &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{junk:?}");
    }
}

#[tokio::test]
async fn upstream_down_gives_502_then_recovers() {
    // Point the proxy at a port nothing listens on, then start something there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let upstream = format!("http://127.0.0.1:{port}");
    let (running, _db) = start_bare(&upstream, |t| t + PUBLIC_ALL).await;
    let mut b = crate::harness::Browser::new(&format!("http://{}", running.local_addr));
    let r = b.api("/x", &[]).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.json()["error"], "bad_gateway");
    assert_eq!(r.json()["request_id"].as_str(), r.header("x-request-id"));
    let page = b.page("/x").await;
    assert_eq!(page.status, StatusCode::BAD_GATEWAY);
    assert!(page.text().contains("could not be reached"));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(gatehouse::demo::upstream::serve(
        listener,
        std::future::pending(),
    ));
    assert_eq!(b.api("/x", &[]).await.status, StatusCode::OK);
    running.shutdown().await;
}

#[tokio::test]
async fn slow_upstream_gives_504() {
    // An upstream that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let (running, _db) = start_bare(&format!("http://{addr}"), |t| {
        t.replace("response_timeout = \"5s\"", "response_timeout = \"300ms\"") + PUBLIC_ALL
    })
    .await;
    let mut b = crate::harness::Browser::new(&format!("http://{}", running.local_addr));
    let started = tokio::time::Instant::now();
    let r = b.api("/x", &[]).await;
    let waited = started.elapsed();
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(r.json()["error"], "gateway_timeout");
    // The 504 comes at response_timeout, not after connect_timeout (2 s here) on top of it.
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_millis(1300),
        "504 after {waited:?}"
    );
    running.shutdown().await;
}

async fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn bad_requests_get_the_right_status() {
    let s = server(Backend::Sqlite).await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let r = raw(s.addr, big.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 431"), "{r:.60}");
    let r = raw(s.addr, b"GET / HTTP/1.1\r\nHost x\r\nbroken header\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r:.60}");
    let r = raw(s.addr, b"NOT HTTP AT ALL\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 400") || r.is_empty(), "{r:.60}");
}

#[tokio::test]
async fn slow_header_client_is_cut_off() {
    let (running, _db) = start_bare("http://127.0.0.1:9", |t| {
        t.replace("[server]\n", "[server]\nheader_read_timeout = \"300ms\"\n")
    })
    .await;
    let mut sock = TcpStream::connect(running.local_addr).await.unwrap();
    sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Never finish the headers; the server must close the connection by itself.
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "connection was not cut off");
    running.shutdown().await;
}

#[tokio::test]
async fn login_rejects_forged_csrf_and_open_redirects() {
    let s = server(Backend::Sqlite).await;
    s.plain_user("alice").await;
    let mut b = s.browser();
    let r = b
        .post_form(
            "/_auth/login",
            &[
                ("csrf_token", "nope"),
                ("username", "alice"),
                ("password", crate::harness::PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let token = b.csrf("/_auth/login").await;
    let r = b
        .post_form(
            "/_auth/login",
            &[
                ("csrf_token", &token),
                ("username", "alice"),
                ("password", crate::harness::PASSWORD),
                ("next", "//evil.example/x"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/"));
    // Wrong password: the same generic message as an unknown user. (Signed in now, so the
    // token comes from a page that shows a form either way.)
    let token = b.csrf("/_auth/reset").await;
    let wrong = b
        .post_form(
            "/_auth/login",
            &[
                ("csrf_token", &token),
                ("username", "alice"),
                ("password", "not the password"),
            ],
        )
        .await;
    let token = b.csrf("/_auth/reset").await;
    let unknown = b
        .post_form(
            "/_auth/login",
            &[
                ("csrf_token", &token),
                ("username", "nobody"),
                ("password", "not the password"),
            ],
        )
        .await;
    assert_eq!(wrong.status, unknown.status);
    let msg = |html: &str| {
        html.split("role=\"alert\"")
            .nth(1)
            .map(|s| s.split("</p>").next().unwrap_or("").to_string())
    };
    assert_eq!(msg(&wrong.text()), msg(&unknown.text()));
    assert!(msg(&wrong.text()).is_some());
    // Security headers on our pages.
    let page = b.page("/_auth/login").await;
    page.assert_page_security_headers();
}

#[tokio::test]
async fn session_id_rotates_at_sign_in() {
    let s = server(Backend::Sqlite).await;
    s.plain_user("alice").await;
    let mut b = s.browser();
    b.login("alice", crate::harness::PASSWORD).await;
    let name = s.app().session_cookie_name();
    let first = b.cookies[&name].clone();
    b.login("alice", crate::harness::PASSWORD).await;
    let second = b.cookies[&name].clone();
    assert_ne!(first, second);
    let mut old = s.browser();
    old.cookies.insert(name, first);
    assert_eq!(
        old.api("/app/x", &[]).await.status,
        StatusCode::UNAUTHORIZED,
        "the previous session ended"
    );
}

#[tokio::test]
async fn dead_database_gives_503_never_a_pass() {
    let s = server(Backend::Sqlite).await;
    let mut alice = s.signed_in("alice").await;
    assert_eq!(alice.api("/app/x", &[]).await.status, StatusCode::OK);
    s.app().store.close().await;
    // A cached session keeps working: the hot path does not need the database.
    assert_eq!(alice.api("/app/x", &[]).await.status, StatusCode::OK);
    // A session that must be looked up cannot be, and is not waved through.
    let mut stranger = s.browser();
    stranger.cookies.insert(
        s.app().session_cookie_name(),
        gatehouse::auth::bearer::random_token(),
    );
    let r = stranger.api("/app/x", &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["error"], "unavailable");
    assert_eq!(
        stranger.get("/_auth/health").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// One client connection (HTTP/1.1 keep-alive), as a browser or a proxy in front holds it.
struct OneConnection {
    send: hyper::client::conn::http1::SendRequest<http_body_util::Empty<Bytes>>,
    cookie_name: String,
}

impl OneConnection {
    async fn open(s: &TestServer) -> OneConnection {
        let io = hyper_util::rt::TokioIo::new(TcpStream::connect(s.addr).await.unwrap());
        let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        OneConnection {
            send,
            cookie_name: s.app().session_cookie_name(),
        }
    }

    /// `GET /app/x` with this session cookie (or none); fails the test if the connection was
    /// closed in between.
    async fn get(&mut self, token: Option<&str>) -> crate::harness::server::Resp {
        use http_body_util::BodyExt;
        let mut req = http::Request::get("/app/x")
            .header("host", "gatehouse.test")
            .header("accept", "application/json");
        if let Some(t) = token {
            req = req.header("cookie", format!("{}={t}", self.cookie_name));
        }
        self.send
            .ready()
            .await
            .expect("the connection is still open");
        let resp = self
            .send
            .send_request(req.body(http_body_util::Empty::new()).unwrap())
            .await
            .expect("the same connection answers");
        let (parts, body) = resp.into_parts();
        crate::harness::server::Resp {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    async fn user(&mut self, token: &str) -> Option<String> {
        let r = self.get(Some(token)).await;
        (r.status == StatusCode::OK).then(|| r.echoed("x-auth-user").join(","))
    }
}

/// A connection remembers the last session it presented, so the next request with the same
/// cookie skips the token's hash and the cache. Whatever changes a session must reach a request
/// on that same connection at once: several sessions taking turns on one connection, sign-out
/// elsewhere, an admin ending it, a role or lock change, the change feed's evictions, expiry.
async fn one_connection_sees_every_session_change_at_once(b: Backend) {
    use gatehouse::auth::bearer::hash_token;
    let s = server(b).await;
    let cookie = s.app().session_cookie_name();
    let mut tokens = std::collections::HashMap::new();
    let mut browsers = std::collections::HashMap::new();
    for name in ["alice", "bob", "carol", "dave", "erin", "fred"] {
        let b = s.signed_in(name).await;
        tokens.insert(
            name,
            b.cookies.get(&cookie).cloned().expect("session cookie"),
        );
        browsers.insert(name, b);
    }
    let t = |n: &str| tokens[n].clone();
    let app = s.app();
    let store = &app.store;
    let session_id = |token: String| async move {
        store
            .session_by_token_hash(&hash_token(&token))
            .await
            .unwrap()
            .expect("live session")
            .id
    };
    let mut c = OneConnection::open(&s).await;

    // Sessions taking turns on one connection, with requests that carry none or a bad one.
    for name in ["alice", "alice", "bob", "alice", "bob", "bob", "carol"] {
        assert_eq!(c.user(&t(name)).await.as_deref(), Some(name));
    }
    assert_eq!(c.get(None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(c.user(&t("alice")).await.as_deref(), Some("alice"));
    let mut forged = t("alice");
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(c.get(Some(&forged)).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(c.user(&t("alice")).await.as_deref(), Some("alice"));

    // Signed out on another connection.
    browsers.get_mut("alice").unwrap().logout().await;
    assert_eq!(c.user(&t("alice")).await, None, "signed out elsewhere");

    // Ended by id (account page, admin API).
    assert_eq!(c.user(&t("bob")).await.as_deref(), Some("bob"));
    let id = session_id(t("bob")).await;
    assert!(app.sessions.end_by_id(id).await.unwrap());
    assert_eq!(c.user(&t("bob")).await, None, "ended by id");

    // A role granted, then the account locked, as the admin service does them.
    assert_eq!(c.user(&t("carol")).await.as_deref(), Some("carol"));
    let carol = app.accounts.find("carol").await.unwrap();
    app.accounts
        .grant_role(carol.id, "editor", None, None)
        .await
        .unwrap();
    app.sessions.evict_user(carol.id);
    let r = c.get(Some(&t("carol"))).await;
    assert_eq!(
        r.echoed("x-auth-roles"),
        vec!["editor"],
        "role seen at once"
    );
    let until = Ts(app.now().0 + Chrono::hours(1));
    app.accounts.lock(carol.id, until, None).await.unwrap();
    app.sessions.evict_user(carol.id);
    assert_eq!(c.user(&t("carol")).await, None, "locked");

    // Ended in the database by another instance, then evicted by the change feed: by token
    // hash, or everything after a gap in the feed.
    assert_eq!(c.user(&t("dave")).await.as_deref(), Some("dave"));
    let hash = store
        .end_session(session_id(t("dave")).await)
        .await
        .unwrap();
    app.sessions
        .evict_token_hashes(&[hash.expect("ended")])
        .await;
    assert_eq!(c.user(&t("dave")).await, None, "evicted by token hash");
    assert_eq!(c.user(&t("erin")).await.as_deref(), Some("erin"));
    store
        .end_session(session_id(t("erin")).await)
        .await
        .unwrap();
    app.sessions.flush_all();
    assert_eq!(c.user(&t("erin")).await, None, "cache flushed");

    // Idle expiry is checked on every request, however the session was found.
    assert_eq!(c.user(&t("fred")).await.as_deref(), Some("fred"));
    assert_eq!(c.user(&t("fred")).await.as_deref(), Some("fred"));
    s.clock.advance(Chrono::minutes(31));
    assert_eq!(c.user(&t("fred")).await, None, "idle timeout");
}
