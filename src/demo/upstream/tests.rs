#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use futures_util::{SinkExt as _, StreamExt as _};
use hyper::body::Frame;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, async move {
            let _ = rx.await;
        }));
        Server {
            addr,
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(2), self.task)
            .await
            .expect("serve did not end after shutdown")
            .unwrap()
            .unwrap();
    }
}

/// Sends a raw HTTP/1.1 request with `Connection: close` and returns the
/// whole response, so tests control the exact bytes on the wire.
async fn raw_request(addr: SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tcp.read_to_end(&mut buf).await.unwrap();
    String::from_utf8(buf).unwrap()
}

async fn http1_sender(
    addr: SocketAddr,
) -> hyper::client::conn::http1::SendRequest<BoxBody<Bytes, std::io::Error>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

fn no_body() -> BoxBody<Bytes, std::io::Error> {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

fn json_body(raw: &str) -> serde_json::Value {
    let body = raw.split_once("\r\n\r\n").unwrap().1;
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn json_echo_keeps_repeated_headers() {
    let server = Server::start().await;
    let raw = raw_request(
        server.addr,
        "GET /echo/some/where?a=1&b=2 HTTP/1.1\r\nHost: example.test\r\nX-Dup: one\r\n\
         X-Other: x\r\nX-Dup: two\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.contains("content-type: application/json"), "{raw}");
    let doc = json_body(&raw);
    assert_eq!(doc["method"], "GET");
    assert_eq!(doc["path"], "/echo/some/where");
    assert_eq!(doc["query"], "a=1&b=2");
    assert_eq!(doc["version"], "HTTP/1.1");
    assert_eq!(doc["body_bytes"], 0);
    let dups: Vec<&str> = doc["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0] == "x-dup")
        .map(|pair| pair[1].as_str().unwrap())
        .collect();
    assert_eq!(dups, ["one", "two"]);
    assert_eq!(doc["headers"][0][0], "host");
    server.stop().await;
}

#[tokio::test]
async fn json_is_chosen_by_accept_header_or_format_query() {
    let server = Server::start().await;
    let raw = raw_request(
        server.addr,
        "GET /app/page HTTP/1.1\r\nHost: h\r\nAccept: text/html, Application/JSON;q=0.9\r\n\
         Connection: close\r\n\r\n",
    )
    .await;
    assert_eq!(json_body(&raw)["path"], "/app/page");
    let raw = raw_request(
        server.addr,
        "GET /x?y=1&format=json HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    let doc = json_body(&raw);
    assert_eq!(doc["path"], "/x");
    assert_eq!(doc["query"], "y=1&format=json");
    let raw = raw_request(
        server.addr,
        "GET /echo HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(json_body(&raw)["query"], serde_json::Value::Null);
    server.stop().await;
}

#[tokio::test]
async fn echo_counts_a_streamed_upload() {
    const CHUNKS: usize = 100;
    const CHUNK: usize = 50_000;
    let server = Server::start().await;
    let mut sender = http1_sender(server.addr).await;
    // No size hint, so the upload goes out chunked, as a browser stream would.
    let chunks = futures_util::stream::iter(
        (0..CHUNKS).map(|_| Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![7u8; CHUNK])))),
    );
    let body = http_body_util::BodyExt::boxed(http_body_util::StreamBody::new(chunks));
    let req = Request::post("/echo/upload")
        .header("host", "h")
        .body(body)
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc["method"], "POST");
    assert_eq!(doc["body_bytes"], (CHUNKS * CHUNK) as u64);
    assert!(
        doc["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|pair| pair[0] == "transfer-encoding" && pair[1] == "chunked")
    );
    server.stop().await;
}

#[tokio::test]
async fn http2_is_reported_as_such() {
    let server = Server::start().await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::post(format!("http://{}/echo", server.addr))
        .body(Full::new(Bytes::from_static(b"hello")))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc["version"], "HTTP/2.0");
    assert_eq!(doc["body_bytes"], 5);
    drop(sender);
    server.stop().await;
}

#[tokio::test]
async fn stream_sends_exactly_n_pattern_bytes() {
    let server = Server::start().await;
    let mut sender = http1_sender(server.addr).await;
    let n: u64 = 3 * 1024 * 1024 + 123;
    let req = Request::get(format!("/stream?bytes={n}"))
        .header("host", "h")
        .body(no_body())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "application/octet-stream"
    );
    assert_eq!(
        resp.headers()[header::CONTENT_LENGTH],
        n.to_string().as_str()
    );
    let mut body = resp.into_body();
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            for (i, byte) in data.iter().enumerate() {
                assert_eq!(
                    u64::from(*byte),
                    (seen + i as u64) % 251,
                    "byte {}",
                    seen + i as u64
                );
            }
            seen += data.len() as u64;
        }
    }
    assert_eq!(seen, n);

    for (query, status) in [
        ("bytes=0", 200),
        ("bytes=-1", 400),
        ("", 400),
        ("bytes=99999999999999999", 400),
    ] {
        let req = Request::get(format!("/stream?{query}"))
            .header("host", "h")
            .body(no_body())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{query}");
        resp.into_body().collect().await.unwrap();
    }
    server.stop().await;
}

#[tokio::test]
async fn status_route() {
    let server = Server::start().await;
    let raw = raw_request(
        server.addr,
        "GET /status/418 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 418"), "{raw}");
    assert!(raw.ends_with("418 I'm a teapot\n"), "{raw}");
    let raw = raw_request(
        server.addr,
        "GET /status/204 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 204"), "{raw}");
    assert!(raw.ends_with("\r\n\r\n"), "{raw}");
    for bad in ["abc", "101", "1000", "", "-5"] {
        let raw = raw_request(
            server.addr,
            &format!("GET /status/{bad} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(raw.starts_with("HTTP/1.1 400"), "{bad}: {raw}");
    }
    server.stop().await;
}

#[tokio::test]
async fn html_page_escapes_hostile_values_and_marks_identity_headers() {
    let server = Server::start().await;
    let raw = raw_request(
        server.addr,
        "GET /app/?q=%22x%22 HTTP/1.1\r\nHost: h\r\n\
         X-Auth-User: <script>alert(\"pwned\")</script>&'\r\n\
         X-Evil: \"><img src=x onerror=alert(1)>\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(
        raw.contains("content-type: text/html; charset=utf-8"),
        "{raw}"
    );
    assert!(raw.contains("<title>Demo app behind Gatehouse</title>"));
    assert!(!raw.contains("<script>alert"), "{raw}");
    assert!(!raw.contains("<img"), "{raw}");
    assert!(
        raw.contains("&lt;script&gt;alert(&quot;pwned&quot;)&lt;&#x2f;script&gt;&amp;&#x27;"),
        "{raw}"
    );
    assert!(
        raw.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"),
        "{raw}"
    );
    assert!(
        raw.contains("<tr class=\"identity\"><td>x-auth-user</td>"),
        "{raw}"
    );
    assert!(raw.contains("<tr><td>x-evil</td>"), "{raw}");
    assert!(!raw.contains("You are not signed in"));
    assert!(raw.contains("/_auth/logout"));
    assert!(
        raw.contains("href=\"&#x2f;app&#x2f;?q=%22x%22&amp;format=json\""),
        "{raw}"
    );

    let raw = raw_request(
        server.addr,
        "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        raw.contains("You are not signed in (this is a public page)"),
        "{raw}"
    );
    assert!(raw.contains("href=\"/_auth/login\""), "{raw}");
    assert!(!raw.contains("class=\"identity\""), "{raw}");
    server.stop().await;
}

#[tokio::test]
async fn websocket_echo_round_trip() {
    let server = Server::start().await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(format!("ws://{}/ws", server.addr), tcp)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);

    ws.send(Message::text("hello, gatehouse")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("hello, gatehouse")
    );
    let blob: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    ws.send(Message::binary(blob.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(blob));

    ws.close(None).await.unwrap();
    // After our Close, the server's Close reply arrives, then the stream ends.
    while let Some(msg) = ws.next().await {
        assert!(matches!(msg.unwrap(), Message::Close(_)));
    }
    server.stop().await;
}

#[tokio::test]
async fn ws_without_upgrade_is_426() {
    let server = Server::start().await;
    let raw = raw_request(
        server.addr,
        "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 426"), "{raw}");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_ends_serve() {
    // Nothing connected.
    Server::start().await.stop().await;

    // An idle keep-alive connection must not hold shutdown up.
    let server = Server::start().await;
    let mut sender = http1_sender(server.addr).await;
    let req = Request::get("/status/200")
        .header("host", "h")
        .body(no_body())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    resp.into_body().collect().await.unwrap();
    server.stop().await;

    // An open WebSocket is told the server is going away, then released.
    let server = Server::start().await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{}/ws", server.addr), tcp)
        .await
        .unwrap();
    ws.send(Message::text("ping")).await.unwrap();
    ws.next().await.unwrap().unwrap();
    let stopping = tokio::spawn(server.stop());
    match ws.next().await.unwrap().unwrap() {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a Close frame, got {other:?}"),
    }
    while ws.next().await.is_some() {}
    stopping.await.unwrap();
}
