//! Transports: WebSocket through the proxy, HTTP/2 over TLS, large streamed bodies.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::harness::server::{PUBLIC_ALL, demo_upstream, start_bare};
use crate::harness::{Backend, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_through_the_proxy() {
    let s = TestServer::start(Backend::Sqlite, "").await.unwrap();
    let alice = s.signed_in("alice").await;
    // Without a session the upgrade is refused before reaching the app.
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let req = format!("ws://{}/ws", s.addr).into_client_request().unwrap();
    let refused = tokio_tungstenite::client_async(req, stream).await;
    assert!(refused.is_err(), "anonymous upgrade must fail");

    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let mut req = format!("ws://{}/ws", s.addr).into_client_request().unwrap();
    req.headers_mut()
        .insert("cookie", alice.cookie_header().unwrap().parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::client_async(req, stream)
        .await
        .expect("upgrade through proxy");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws.send(Message::text("hello through gatehouse"))
        .await
        .unwrap();
    let echoed = ws.next().await.unwrap().unwrap();
    assert_eq!(
        echoed.into_text().unwrap().as_str(),
        "hello through gatehouse"
    );
    let big = vec![7u8; 300_000];
    ws.send(Message::binary(big.clone())).await.unwrap();
    let echoed = ws.next().await.unwrap().unwrap();
    assert_eq!(echoed.into_data().as_ref(), &big[..]);
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_over_tls_with_secure_cookies() {
    let cert = crate::harness::tls::TestCert::new(&["localhost", "127.0.0.1"]);
    let up_addr = demo_upstream().await;
    let tls_lines = format!("[server]\n{}", cert.server_keys);
    let (running, _db) = start_bare(&format!("http://{up_addr}"), |t| {
        t.replace("[server]\n", &tls_lines) + "[[routes]]\npath = \"/app/**\"\n"
    })
    .await;
    let mut a = gatehouse::accounts::NewAccount::new(
        "alice",
        "alice@example.com",
        Some(gatehouse::config::Secret::new(
            crate::harness::PASSWORD.into(),
        )),
    );
    a.is_verified = true;
    running.app.accounts.create_user(a, None).await.unwrap();

    let tls = cert.client_config();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http2()
        .build();
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build(https);
    let base = format!("https://localhost:{}", running.local_addr.port());
    let get = |uri: String, cookie: Option<String>| {
        let mut b = Request::get(uri).header("accept", "text/html");
        if let Some(c) = cookie {
            b = b.header("cookie", c);
        }
        b.body(http_body_util::Full::new(Bytes::new())).unwrap()
    };
    let r = client
        .request(get(format!("{base}/_auth/login"), None))
        .await
        .unwrap();
    assert_eq!(r.version(), Version::HTTP_2);
    assert!(
        r.headers().get("strict-transport-security").is_some(),
        "HSTS when TLS is on"
    );
    let set_cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set_cookie.starts_with("__Host-gatehouse_csrf=") && set_cookie.contains("Secure"),
        "{set_cookie}"
    );
    let csrf_cookie = set_cookie.split(';').next().unwrap().to_string();
    let html =
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let token = crate::harness::server::csrf_in(&html).unwrap();
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("csrf_token", token.as_str()),
            ("username", "alice"),
            ("password", crate::harness::PASSWORD),
            ("next", "/app/"),
        ])
        .finish();
    let post = Request::post(format!("{base}/_auth/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &csrf_cookie)
        .body(http_body_util::Full::new(Bytes::from(form)))
        .unwrap();
    let r = client.request(post).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let session = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        session.starts_with("__Host-gatehouse_session=")
            && session.contains("Secure")
            && session.contains("HttpOnly"),
        "{session}"
    );
    let session_cookie = session.split(';').next().unwrap().to_string();
    let mut req = get(format!("{base}/app/?format=json"), Some(session_cookie));
    req.headers_mut()
        .insert("accept", "application/json".parse().unwrap());
    let r = client.request(req).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.version(), Version::HTTP_2);
    let v: serde_json::Value =
        serde_json::from_slice(&r.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(v["version"], "HTTP/1.1", "the upstream speaks HTTP/1.1");
    let proto: Vec<&str> = v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p[0] == "x-forwarded-proto")
        .map(|p| p[1].as_str().unwrap())
        .collect();
    assert_eq!(proto, vec!["https"]);
    running.shutdown().await;
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways_in_flat_memory() {
    let s = TestServer::start(Backend::Sqlite, "").await.unwrap();
    let cookie = s.signed_in("alice").await.cookie_header().unwrap();
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 512; // 512 MiB
    let before = rss_kib();
    let chunk = Bytes::from(vec![42u8; CHUNK]);
    let stream = futures_util::stream::iter(
        (0..CHUNKS).map(move |_| Ok::<_, std::io::Error>(Frame::data(chunk.clone()))),
    );
    let body = StreamBody::new(stream);
    let client: hyper_util::client::legacy::Client<_, StreamBody<_>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let req = Request::post(format!("{}/echo/upload", s.base))
        .header("cookie", &cookie)
        .header("accept", "application/json")
        .body(body)
        .unwrap();
    let r = client.request(req).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value =
        serde_json::from_slice(&r.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(v["body_bytes"].as_u64(), Some((CHUNK * CHUNKS) as u64));
    // Download: count without keeping.
    let plain: hyper_util::client::legacy::Client<_, http_body_util::Empty<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let req = Request::get(format!("{}/stream?bytes={}", s.base, CHUNK * CHUNKS))
        .header("cookie", &cookie)
        .body(http_body_util::Empty::new())
        .unwrap();
    let mut body = plain.request(req).await.unwrap().into_body();
    let mut got = 0usize;
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame.unwrap().into_data() {
            got += d.len();
        }
    }
    assert_eq!(got, CHUNK * CHUNKS);
    if let (Some(b), Some(a)) = (before, rss_kib()) {
        // 1 GiB moved through the proxy; the test process (client, proxy and app) grows by far less.
        assert!(a.saturating_sub(b) < 96 * 1024, "RSS grew by {} KiB", a - b);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_with_a_private_ca() {
    // Inner: a TLS gatehouse with a public catch-all route in front of the demo app.
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let up_addr = demo_upstream().await;
    let tls_lines = format!(
        "[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert_path.display(),
        key_path.display()
    );
    let (inner, _inner_db) = start_bare(&format!("http://{up_addr}"), |t| {
        t.replace("[server]\n", &tls_lines) + PUBLIC_ALL
    })
    .await;
    // Outer: plain HTTP, upstream https://localhost:<inner> trusted through ca_file.
    let upstream = format!("https://localhost:{}", inner.local_addr.port());
    let ca_lines = format!(
        "[upstream]\nca_file = \"{}\"\npreserve_host = false\n",
        cert_path.display()
    );
    let (outer, _outer_db) = start_bare(&upstream, |t| {
        t.replace("[upstream]\n", &ca_lines) + PUBLIC_ALL
    })
    .await;
    let mut b = crate::harness::Browser::new(&format!("http://{}", outer.local_addr));
    let r = b.api("/echo/through-two", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["path"], "/echo/through-two");
    // Without the CA the same upstream is refused: 502.
    let (untrusting, _db) = start_bare(&upstream, |t| t + PUBLIC_ALL).await;
    let mut b = crate::harness::Browser::new(&format!("http://{}", untrusting.local_addr));
    assert_eq!(b.api("/echo/x", &[]).await.status, StatusCode::BAD_GATEWAY);
    untrusting.shutdown().await;
    outer.shutdown().await;
    inner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_threads_serve_and_flush_on_shutdown() {
    let up = demo_upstream().await;
    let (running, db) = start_bare(&format!("http://{up}"), |t| {
        t.replace("[server]\n", "[server]\nworkers = 2\n")
            + "[[routes]]\npath = \"/app/**\"\n"
            + PUBLIC_ALL
    })
    .await;
    let mut a = gatehouse::accounts::NewAccount::new(
        "alice",
        "alice@example.com",
        Some(gatehouse::config::Secret::new(
            crate::harness::PASSWORD.into(),
        )),
    );
    a.is_verified = true;
    running.app.accounts.create_user(a, None).await.unwrap();
    // Several browsers, so connections land on both workers.
    let mut total = 0;
    for _ in 0..4 {
        let mut b = crate::harness::Browser::new(&format!("http://{}", running.local_addr));
        b.login("alice", crate::harness::PASSWORD).await;
        for i in 0..25 {
            let r = b.api(&format!("/app/{i}"), &[]).await;
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(r.echoed("x-auth-user"), vec!["alice"]);
            total += 1;
        }
    }
    running.shutdown().await;
    let store = gatehouse::store::Store::connect(&db.url, 1).await.unwrap();
    assert_eq!(store.count_activity(Some("request")).await.unwrap(), total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_cannot_share_the_port() {
    let up = demo_upstream().await;
    let (first, _db) = start_bare(&format!("http://{up}"), |t| t + PUBLIC_ALL).await;
    let db = crate::harness::TestDb::new(Backend::Sqlite).await.unwrap();
    let toml = crate::harness::server::base_toml(&db, &format!("http://{up}")).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"{}\"", first.local_addr),
    );
    let settings = gatehouse::config::from_toml(&toml).unwrap();
    assert!(settings.server.workers > 0, "workers are the default");
    let second = gatehouse::server::start(
        settings,
        Arc::new(gatehouse::clock::ManualClock::starting_now()),
        None,
    )
    .await;
    let err = second.err().expect("the port is taken").to_string();
    assert!(err.contains(&first.local_addr.to_string()), "{err}");
    first.shutdown().await;
}
