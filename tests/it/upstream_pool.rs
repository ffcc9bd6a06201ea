//! Keep-alive connections to the upstream: reused while they work, never reused once the
//! upstream has closed them or a response was cut short. The upstream here is a small HTTP/1.1
//! server on raw sockets that counts its connections and can hang up after each answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::Browser;
use crate::harness::server::{PUBLIC_ALL, start_bare};

/// How the test upstream treats a connection after answering.
#[derive(Clone, Copy)]
enum After {
    /// Waits for the next request.
    KeepAlive,
    /// Closes the connection without saying so (no `Connection: close`), as an upstream whose
    /// keep-alive timeout ran out does.
    HangUp,
}

struct Upstream {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
    /// How many connections it has hung up on.
    hung_up: tokio::sync::watch::Receiver<usize>,
}

/// Answers `GET /big` with a 1 MiB body, `GET /huge` with 64 MiB, and anything else with
/// `ok <n>`, `n` counting requests on that connection.
async fn upstream(after: After) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    let (hung_up_tx, hung_up) = tokio::sync::watch::channel(0);
    let hung_up_tx = Arc::new(hung_up_tx);
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(s, after, hung_up_tx.clone()));
        }
    });
    Upstream {
        addr,
        connections,
        hung_up,
    }
}

async fn serve(mut s: TcpStream, after: After, hung_up: Arc<tokio::sync::watch::Sender<usize>>) {
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        let mut chunk = [0u8; 4096];
        let Ok(read) = s.read(&mut chunk).await else {
            return;
        };
        if read == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..read]);
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            n += 1;
            let big = if head.starts_with("GET /big ") {
                Some(1 << 20)
            } else if head.starts_with("GET /huge ") {
                Some(64 << 20)
            } else {
                None
            };
            let reply = if let Some(len) = big {
                let body = vec![b'x'; len];
                let mut r = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len())
                    .into_bytes();
                r.extend_from_slice(&body);
                r
            } else {
                let body = format!("ok {n}");
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            };
            if s.write_all(&reply).await.is_err() {
                return;
            }
            if let After::HangUp = after {
                let _ = s.shutdown().await;
                hung_up.send_modify(|n| *n += 1);
                return;
            }
        }
    }
}

#[tokio::test]
async fn upstream_connections_are_kept_and_reused() {
    let up = upstream(After::KeepAlive).await;
    let (running, _db) = start_bare(&format!("http://{}", up.addr), |t| t + PUBLIC_ALL).await;
    let mut b = Browser::new(&format!("http://{}", running.local_addr));
    for i in 1..=20 {
        let r = b.api("/x", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        // One request at a time: every one goes on the same upstream connection.
        assert_eq!(r.text(), format!("ok {i}"));
    }
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
    running.shutdown().await;
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_not_reused() {
    let mut up = upstream(After::HangUp).await;
    let (running, _db) = start_bare(&format!("http://{}", up.addr), |t| t + PUBLIC_ALL).await;
    let mut b = Browser::new(&format!("http://{}", running.local_addr));
    for i in 0..10 {
        // Each request goes after the upstream has closed the previous one's connection.
        up.hung_up.wait_for(|n| *n >= i).await.unwrap();
        let r = b.api("/x", &[]).await;
        // Never a 502 for a connection that was gone before the request was sent.
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.text(), "ok 1");
    }
    assert_eq!(up.connections.load(Ordering::SeqCst), 10);
    running.shutdown().await;
}

#[tokio::test]
async fn a_response_cut_short_does_not_leave_its_connection_in_the_pool() {
    let up = upstream(After::KeepAlive).await;
    let (running, _db) = start_bare(&format!("http://{}", up.addr), |t| t + PUBLIC_ALL).await;
    let gh = running.local_addr;
    // A client that reads the head of a body larger than the sockets' buffers and goes away.
    let mut s = TcpStream::connect(gh).await.unwrap();
    s.write_all(b"GET /huge HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 64];
    let n = s.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));
    drop(s);
    // The half-read upstream connection holds the rest of the body: the next request must not
    // be sent on it (it would read the old body's bytes as its answer).
    let mut b = Browser::new(&format!("http://{gh}"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = b.api("/x", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.text().starts_with("ok "), "{}", r.text());
        if up.connections.load(Ordering::SeqCst) >= 2 || tokio::time::Instant::now() > deadline {
            break;
        }
    }
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
    // And the new connection is kept from then on.
    let before = up.connections.load(Ordering::SeqCst);
    for _ in 0..5 {
        assert_eq!(b.api("/x", &[]).await.status, StatusCode::OK);
    }
    assert_eq!(up.connections.load(Ordering::SeqCst), before);
    running.shutdown().await;
}

#[tokio::test]
async fn a_large_body_streams_through_and_its_connection_is_reused() {
    let up = upstream(After::KeepAlive).await;
    let (running, _db) = start_bare(&format!("http://{}", up.addr), |t| t + PUBLIC_ALL).await;
    let mut b = Browser::new(&format!("http://{}", running.local_addr));
    for _ in 0..3 {
        let r = b.api("/big", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body.len(), 1 << 20);
    }
    assert_eq!(b.api("/x", &[]).await.text(), "ok 4");
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
    running.shutdown().await;
}
