//! The trust boundary's headers, over HTTP/1.1 and HTTP/2: forwarding headers only from trusted
//! proxies, a consistent `Forwarded`, method overrides, our cookies, upgrades; and WebSocket
//! tunnels that end with their session.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::harness::server::{demo_upstream, start_bare};
use crate::harness::{Backend, TestServer};

/// Headers an untrusted client may not set, with a spelling WSGI servers fold to the same name.
const UNTRUSTED: [&str; 16] = [
    "Forwarded",
    "X-Real-IP",
    "X-Original-URL",
    "X-Original-URI",
    "X-Rewrite-URL",
    "X-Forwarded-Prefix",
    "X-Forwarded-Port",
    "X-Forwarded-Server",
    "X-Client-IP",
    "True-Client-IP",
    "X_Real_IP",
    "x_original_url",
    "X-FORWARDED-PREFIX",
    "X_Forwarded_For",
    "X-HTTP-Method-Override",
    "X_HTTP_Method",
];

/// The request the echo app received, as (name, value) pairs, over HTTP/1.1 or HTTP/2.
async fn echo(
    addr: SocketAddr,
    h2: bool,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Vec<(String, String)>) {
    let mut b = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("accept", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Empty::<Bytes>::new()).unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let resp = if h2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        send.send_request(req).await.unwrap()
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = req;
        req.headers_mut()
            .insert("host", addr.to_string().parse().unwrap());
        send.send_request(req).await.unwrap()
    };
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    if status != StatusCode::OK {
        return (status, Vec::new());
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let pairs = v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    (status, pairs)
}

fn values<'a>(pairs: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_forwarding_headers_are_removed_and_forwarded_is_ours() {
    let s = TestServer::start(Backend::Sqlite, "").await.unwrap();
    for h2 in [false, true] {
        let sent: Vec<(&str, &str)> = UNTRUSTED.iter().map(|h| (*h, "evil")).collect();
        let (status, got) = echo(s.addr, h2, Method::GET, "/public/x", &sent).await;
        assert_eq!(status, StatusCode::OK, "h2={h2}");
        for (k, v) in &got {
            assert!(v != "evil", "h2={h2}: {k}: {v} reached the app");
        }
        assert_eq!(
            values(&got, "x-forwarded-for"),
            vec!["127.0.0.1"],
            "h2={h2}"
        );
        assert_eq!(
            values(&got, "forwarded"),
            vec![format!("for=127.0.0.1;proto=http;host=\"{}\"", s.addr).as_str()],
            "h2={h2}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxies_may_send_forwarding_headers() {
    let up = demo_upstream().await;
    let (running, _db) = start_bare(&format!("http://{up}"), |t| {
        t.replace(
            "[server]\n",
            "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n",
        ) + "[[routes]]\npath = \"/**\"\naccess = \"public\"\n"
    })
    .await;
    let addr = running.local_addr;
    for h2 in [false, true] {
        let (_, got) = echo(
            addr,
            h2,
            Method::GET,
            "/x",
            &[
                ("x-real-ip", "203.0.113.9"),
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "app.example"),
                ("forwarded", "for=198.51.100.7"),
            ],
        )
        .await;
        assert_eq!(values(&got, "x-real-ip"), vec!["203.0.113.9"]);
        assert_eq!(
            values(&got, "x-forwarded-for"),
            vec!["203.0.113.9, 127.0.0.1"]
        );
        // Forwarded says what X-Forwarded-* say, whatever the proxy sent in it.
        assert_eq!(
            values(&got, "forwarded"),
            vec!["for=203.0.113.9, for=127.0.0.1;proto=https;host=\"app.example\""]
        );
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_overrides_are_removed_or_evaluated() {
    let s = TestServer::start(Backend::Sqlite, "").await.unwrap();
    // /readonly/** denies POST, PUT and DELETE and is public otherwise.
    for h2 in [false, true] {
        let (status, got) = echo(
            s.addr,
            h2,
            Method::GET,
            "/readonly/x",
            &[("x-http-method-override", "DELETE")],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(values(&got, "x-http-method-override").is_empty());
        let (status, _) = echo(s.addr, h2, Method::GET, "/readonly/x?_method=delete", &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "h2={h2}");
    }
    let allowed = TestServer::start(Backend::Sqlite, "[headers]\nallow_method_override = true\n")
        .await
        .unwrap();
    for h2 in [false, true] {
        let (status, _) = echo(
            allowed.addr,
            h2,
            Method::GET,
            "/readonly/x",
            &[("x-http-method-override", "DELETE")],
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "h2={h2}");
        let (status, got) = echo(
            allowed.addr,
            h2,
            Method::GET,
            "/readonly/x",
            &[("x-http-method-override", "GET")],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(values(&got, "x-http-method-override"), vec!["GET"]);
        let (status, _) = echo(
            allowed.addr,
            h2,
            Method::GET,
            "/readonly/x",
            &[("x-http-method-override", "NOT A METHOD")],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_cookies_never_reach_the_app_and_h2c_is_never_bridged() {
    let s = TestServer::start(Backend::Sqlite, "").await.unwrap();
    let cookie = "a=1; gatehouse_2fa=p; __Host-gatehouse_session=s; GATEHOUSE_SESSION=t; \
                  gatehouse_csrf=c; __Host-gatehouse_csrf=d; b=2";
    for h2 in [false, true] {
        let (_, got) = echo(s.addr, h2, Method::GET, "/public/x", &[("cookie", cookie)]).await;
        assert_eq!(values(&got, "cookie"), vec!["a=1; b=2"], "h2={h2}");
    }
    let (status, got) = echo(
        s.addr,
        false,
        Method::GET,
        "/public/x",
        &[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(values(&got, "upgrade").is_empty(), "{got:?}");
    assert!(values(&got, "http2-settings").is_empty(), "{got:?}");
}

/// `Connection` may name headers to drop at this hop: the ones it names from the client go, the
/// ones Gatehouse sets (identity, forwarding, request id) are set after and always arrive, in
/// any spelling of the names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cannot_remove_the_headers_we_set() {
    let s = TestServer::start(Backend::Sqlite, "").await.unwrap();
    let alice = s.signed_in("alice").await;
    let cookie = alice.cookie_header().unwrap();
    for named in [
        "keep-alive, X-Auth-User, x-auth-user-id, X-Forwarded-For, Forwarded, X-Request-Id, x-secret",
        "X-AUTH-USER,X-FORWARDED-FOR , forwarded,x-request-id,X-Secret, Keep-Alive",
        "close, x-auth-roles, x-forwarded-host, x-forwarded-proto, x-secret",
    ] {
        let (status, got) = echo(
            s.addr,
            false,
            Method::GET,
            "/app/x",
            &[
                ("cookie", cookie.as_str()),
                ("connection", named),
                ("x-secret", "1"),
                ("keep-alive", "timeout=5"),
                ("te", "trailers"),
                ("proxy-connection", "keep-alive"),
                ("upgrade", "websocket"),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{named}");
        for gone in [
            "x-secret",
            "keep-alive",
            "te",
            "proxy-connection",
            "upgrade",
            "connection",
        ] {
            assert!(
                values(&got, gone).is_empty(),
                "{named}: {gone} reached the app: {got:?}"
            );
        }
        assert_eq!(values(&got, "x-auth-user"), vec!["alice"], "{named}");
        assert_eq!(values(&got, "x-auth-user-id").len(), 1, "{named}");
        assert_eq!(values(&got, "x-auth-roles").len(), 1, "{named}");
        assert_eq!(
            values(&got, "x-forwarded-for"),
            vec!["127.0.0.1"],
            "{named}"
        );
        assert_eq!(values(&got, "x-forwarded-proto"), vec!["http"], "{named}");
        assert_eq!(values(&got, "x-forwarded-host").len(), 1, "{named}");
        assert_eq!(values(&got, "forwarded").len(), 1, "{named}");
        assert_eq!(values(&got, "x-request-id").len(), 1, "{named}");
    }
}

#[test]
fn h2c_cannot_be_allowed() {
    let err =
        gatehouse::config::from_toml("[upstream]\nallowed_upgrades = [\"websocket\", \"h2c\"]\n")
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("upstream.allowed_upgrades") && err.contains("line 2"),
        "{err}"
    );
}

async fn open_ws(
    addr: SocketAddr,
    cookie: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    ws.send(Message::text("ping")).await.unwrap();
    assert_eq!(
        ws.next()
            .await
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap()
            .as_str(),
        "ping"
    );
    ws
}

/// The tunnel is closed: the next read ends (or fails) within a second.
async fn assert_closed(ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) {
    let next = tokio::time::timeout(Duration::from_secs(1), ws.next())
        .await
        .expect("tunnel still open 1 s after its session ended");
    assert!(
        !matches!(next, Some(Ok(Message::Text(_) | Message::Binary(_)))),
        "{next:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_tunnels_end_with_their_session() {
    let s = TestServer::start(Backend::Sqlite, "").await.unwrap();
    let mut alice = s.signed_in("alice").await;
    let cookie = alice.cookie_header().unwrap();
    let mut ws = open_ws(s.addr, &cookie).await;
    // A change that keeps the session (identity reloaded) keeps the tunnel.
    let user = s.app().accounts.find("alice").await.unwrap();
    s.app().sessions.evict_user(user.id);
    ws.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap()
            .as_str(),
        "still here"
    );
    // Signing out elsewhere (another request with the same cookie) ends it.
    alice.logout().await;
    assert_closed(&mut ws).await;

    // So does revocation of every session of the user.
    let mut alice = s.browser();
    alice.login("alice", crate::harness::PASSWORD).await;
    let mut ws = open_ws(s.addr, &alice.cookie_header().unwrap()).await;
    s.app()
        .sessions
        .end_all_for_user(user.id, None)
        .await
        .unwrap();
    assert_closed(&mut ws).await;

    // And locking the account, as any process would: the change feed brings it here.
    let mut alice = s.browser();
    alice.login("alice", crate::harness::PASSWORD).await;
    let mut ws = open_ws(s.addr, &alice.cookie_header().unwrap()).await;
    let until = gatehouse::store::Ts(s.app().now().0 + chrono::Duration::hours(1));
    s.app().accounts.lock(user.id, until, None).await.unwrap();
    assert_closed(&mut ws).await;
}

/// On a signed-in route the session cookie is read and every spelling of our cookies removed in
/// one reading of the `Cookie` headers: the request is signed in and the app still sees only its
/// own cookies, whichever header (HTTP/1 repeats it, HTTP/2 splits it) ours arrive in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_requests_carry_none_of_our_cookies() {
    let s = TestServer::start(Backend::Sqlite, "").await.unwrap();
    let alice = s.signed_in("alice").await;
    let ours = alice.cookie_header().unwrap();
    for (h2, others) in [
        (false, "a=1; GATEHOUSE_SESSION=t; b=2"),
        (true, "a=1; __Host-Gatehouse_Csrf=d; gatehouse_2FA=p; b=2"),
        (false, "a=1;gatehouse_oidc=o;__HOST-GATEHOUSE_SESSION=s;b=2"),
        (true, "a=1; gatehouse_session =x; b=2"),
        (false, "a=1;\tgatehouse_session=\"q\"; b=2"),
        (true, "a=1; __host-gatehouse_csrf=d;b=2; gatehouse_SESSION"),
        (false, "gatehouse_2fa=; a=1; b=2"),
    ] {
        let (status, got) = echo(
            s.addr,
            h2,
            Method::GET,
            "/app/x",
            &[("cookie", ours.as_str()), ("cookie", others)],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{others}");
        assert_eq!(values(&got, "x-auth-user"), vec!["alice"], "{others}");
        assert_eq!(values(&got, "cookie"), vec!["a=1; b=2"], "h2={h2} {others}");
    }
}
