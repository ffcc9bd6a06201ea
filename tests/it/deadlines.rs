//! Every connection has a deadline: silent, trickling and idle connections are cut, and a
//! flood of them does not stop the server from answering.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::server::{PUBLIC_ALL, demo_upstream, start_bare};

const DEADLINES: &str = "[server]\nhandshake_timeout = \"1s\"\nidle_timeout = \"2s\"\n";

async fn server(extra_server_keys: &str) -> (gatehouse::server::Running, crate::harness::TestDb) {
    let up = demo_upstream().await;
    let keys = format!("{DEADLINES}{extra_server_keys}");
    start_bare(&format!("http://{up}"), move |t| {
        t.replace("[server]\n", &keys) + PUBLIC_ALL
    })
    .await
}

/// Waits until the peer closes the connection; returns how long that took.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(s: &mut S, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, s.read(&mut buf)).await {
            Err(_) => panic!("connection still open after {limit:?}"),
            Ok(Ok(0) | Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

async fn get(addr: SocketAddr) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_silent_connections_are_cut_and_others_are_served() {
    let (running, _db) = server("").await;
    let addr = running.local_addr;
    let mut silent = Vec::new();
    for _ in 0..1000 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // While they are open, a normal request is answered at once.
    let t = Instant::now();
    assert_eq!(get(addr).await, 200);
    let served_in = t.elapsed();
    let t = Instant::now();
    let waits = futures_util::future::join_all(
        silent
            .iter_mut()
            .map(|s| closed_within(s, Duration::from_secs(5))),
    )
    .await;
    let slowest = waits.iter().max().copied().unwrap_or_default();
    println!(
        "normal request served in {served_in:?} beside 1000 silent connections; all 1000 cut within {:?}",
        t.elapsed()
    );
    assert!(
        slowest <= Duration::from_secs(4),
        "slowest cut after {slowest:?}"
    );
    assert!(served_in < Duration::from_secs(1), "{served_in:?}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_preface_and_idle_keep_alive_are_cut() {
    let (running, _db) = server("").await;
    let addr = running.local_addr;
    // An HTTP/2 preface one byte at a time never becomes a request.
    let mut trickle = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    for b in b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" {
        if trickle.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    closed_within(&mut trickle, Duration::from_secs(4)).await;
    assert!(started.elapsed() < Duration::from_secs(5));

    // HTTP/1.1 keep-alive: one request, then silence until idle_timeout.
    let mut ka = TcpStream::connect(addr).await.unwrap();
    ka.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let n = ka.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let idle = closed_within(&mut ka, Duration::from_secs(6)).await;
    assert!(
        idle >= Duration::from_millis(1500),
        "cut too early: {idle:?}"
    );

    // HTTP/2 (h2c): settings exchanged, one request, then idle.
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let conn_task = tokio::spawn(conn);
    let resp = send
        .send_request(
            http::Request::get(format!("http://{addr}/x"))
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let _ = resp.into_body().collect().await;
    tokio::time::timeout(Duration::from_secs(6), conn_task)
        .await
        .expect("idle HTTP/2 connection still open")
        .unwrap()
        .ok();
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_after_the_tls_handshake_is_cut() {
    let cert = crate::harness::tls::TestCert::new(&["localhost"]);
    let (running, _db) = server(&cert.server_keys).await;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cert.client_config()));
    let tcp = TcpStream::connect(running.local_addr).await.unwrap();
    let mut stream = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .expect("handshake completes");
    closed_within(&mut stream, Duration::from_secs(4)).await;
    // A client that never starts the handshake is cut too.
    let mut raw = TcpStream::connect(running.local_addr).await.unwrap();
    closed_within(&mut raw, Duration::from_secs(4)).await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_for_a_slot() {
    let (running, _db) = server("max_connections = 8\nworkers = 0\n").await;
    let addr = running.local_addr;
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // The ninth waits in the backlog until the silent ones are cut, then is served.
    let status = tokio::time::timeout(Duration::from_secs(6), get(addr))
        .await
        .expect("a request over the cap was never served");
    assert_eq!(status, 200);
    let cut = running
        .app
        .metrics
        .connections_timed_out
        .load(std::sync::atomic::Ordering::Relaxed);
    // Served only once a silent connection had been cut: without the cap it would not wait.
    assert!(cut >= 1, "served before any slot was freed");
    running.shutdown().await;
}
