//! The built-in demo upstream: a tiny web app that `gatehouse demo` puts behind
//! the proxy, and that the integration tests use as their in-process upstream.
//!
//! Its only job is to show, from the app's side of the proxy, what Gatehouse
//! forwards: the request line, every header (with the `X-Auth-*` identity
//! headers Gatehouse injects highlighted) and whether bodies, large downloads,
//! arbitrary status codes and WebSocket upgrades make it through intact.
//!
//! Routes:
//! - `GET /ws` with a WebSocket upgrade: echoes every text/binary message.
//! - `/stream?bytes=N`: an `N`-byte `application/octet-stream` body, generated
//!   on the fly. Byte `i` is `i % 251`, so a client can detect reordered or
//!   duplicated chunks, not just a wrong length.
//! - `/status/<code>`: that status with a short text body.
//! - `/echo`, `/echo/...`, or any other path when the request asks for JSON
//!   (`Accept: application/json` or `format=json` in the query): a JSON
//!   description of the request, including how many body bytes arrived.
//! - Anything else: an HTML page describing the request, for browsers.
//!
//! Everything streams: uploads are counted chunk by chunk and downloads are
//! produced chunk by chunk, so multi-gigabyte transfers run in flat memory.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

/// How long in-flight connections (downloads, WebSocket sessions) may keep running
/// after shutdown is requested before they are cut off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Bound on the WebSocket closing handshake, so a peer that never answers our
/// Close frame cannot keep the echo task alive.
const WS_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Size of each chunk `/stream` emits.
const STREAM_CHUNK: usize = 64 * 1024;

/// `/stream` refuses more than this; the limit only guards against typos
/// turning into a download that effectively never ends.
const MAX_STREAM_BYTES: u64 = 1 << 40;

/// Period of the `/stream` byte pattern. A prime, so it never lines up with
/// power-of-two chunk or buffer sizes and misplaced chunks become visible.
const PATTERN_PERIOD: usize = 251;

/// One chunk's worth of pattern plus one extra period, so any chunk can be a
/// zero-copy slice starting at the stream's current phase.
static PATTERN: [u8; STREAM_CHUNK + PATTERN_PERIOD] = build_pattern();

// Evaluated at compile time, so the large array never lives on a runtime stack.
#[allow(clippy::large_stack_arrays)]
const fn build_pattern() -> [u8; STREAM_CHUNK + PATTERN_PERIOD] {
    let mut out = [0u8; STREAM_CHUNK + PATTERN_PERIOD];
    let mut i = 0;
    while i < out.len() {
        // `try_from` isn't usable in a const fn; the value is always < 251.
        #[allow(clippy::cast_possible_truncation)]
        {
            out[i] = (i % PATTERN_PERIOD) as u8;
        }
        i += 1;
    }
    out
}

type ResponseBody = BoxBody<Bytes, Infallible>;

/// Serves the demo app on `listener` until `shutdown` resolves; in-flight connections are then given a moment to finish.
///
/// # Errors
///
/// None in practice: accept failures are logged and retried rather than
/// ending the server, because they are almost always transient (a client that
/// gave up, or momentary file-descriptor exhaustion).
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Without a timer hyper silently skips the header-read timeout, which is
    // what stops a slow client from pinning a connection forever.
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());

    let graceful = GracefulShutdown::new();
    // Upgraded WebSockets are no longer hyper connections, so the graceful
    // watcher cannot reach them; they listen on this channel instead, and
    // `stop_tx.closed()` tells us when the last of them has finished.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();

    tokio::pin!(shutdown);
    loop {
        // Reap finished tasks so a long-running server doesn't accumulate them.
        while connections.try_join_next().is_some() {}

        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    if !is_per_connection_error(&err) {
                        // Typically fd exhaustion; spinning on accept would
                        // only make that worse, so give the system a moment.
                        tracing::warn!(error = %err, "demo upstream: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
        };
        // Small echo/WebSocket replies shouldn't wait on Nagle's algorithm.
        let _ = stream.set_nodelay(true);

        let stop = stop_rx.clone();
        let service = service_fn(move |req| handle(req, stop.clone()));
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        connections.spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(%peer, error = %err, "demo upstream: connection ended with error");
            }
        });
    }

    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        graceful.shutdown().await;
        stop_tx.closed().await;
    })
    .await;
    if drained.is_err() {
        tracing::debug!("demo upstream: grace period over, dropping remaining connections");
    }
    // Dropping the set aborts whatever outlived the grace period.
    drop(connections);
    Ok(())
}

/// Errors that concern only the one connection being accepted, after which
/// the listener is immediately usable again.
fn is_per_connection_error(err: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        err.kind(),
        ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionRefused
            | ErrorKind::Interrupted
            | ErrorKind::WouldBlock
            | ErrorKind::TimedOut
    )
}

async fn handle(
    req: Request<Incoming>,
    stop: watch::Receiver<bool>,
) -> Result<Response<ResponseBody>, Infallible> {
    let path = req.uri().path();
    let response = if path == "/ws" {
        websocket(req, stop)
    } else if path == "/stream" {
        stream(req.uri().query())
    } else if let Some(code) = path.strip_prefix("/status/") {
        status(code)
    } else if path == "/echo" || path.starts_with("/echo/") || wants_json(&req) {
        echo(req).await
    } else {
        html_page(&req)
    };
    Ok(response)
}

fn wants_json(req: &Request<Incoming>) -> bool {
    let accept_json = req.headers().get_all(header::ACCEPT).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains("application/json"))
    });
    accept_json || query_param(req.uri().query(), "format") == Some("json")
}

/// First value of `key` in a raw query string. No percent-decoding: the
/// parameters this app understands never need it.
fn query_param<'q>(query: Option<&'q str>, key: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

fn full(body: impl Into<Bytes>) -> ResponseBody {
    Full::new(body.into()).boxed()
}

fn empty() -> ResponseBody {
    Full::new(Bytes::new()).boxed()
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: ResponseBody,
) -> Response<ResponseBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Pages show per-user identity headers; no cache anywhere should keep them.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<ResponseBody> {
    response(status, "text/plain; charset=utf-8", full(body))
}

// ---------------------------------------------------------------- WebSocket

/// True if a comma-separated header (such as `Connection`) lists `token`.
fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    })
}

fn websocket(mut req: Request<Incoming>, stop: watch::Receiver<bool>) -> Response<ResponseBody> {
    let headers = req.headers();
    let is_upgrade = req.method() == Method::GET
        && header_has_token(headers, header::CONNECTION, "upgrade")
        && header_has_token(headers, header::UPGRADE, "websocket");
    if !is_upgrade {
        let mut resp = text(
            StatusCode::UPGRADE_REQUIRED,
            "/ws is a WebSocket echo endpoint; connect with a WebSocket client.\n",
        );
        resp.headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        return resp;
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        // RFC 6455 §4.4: tell the client which version we do speak.
        let mut resp = text(
            StatusCode::UPGRADE_REQUIRED,
            "Unsupported WebSocket version; this server speaks version 13.\n",
        );
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return resp;
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return text(StatusCode::BAD_REQUEST, "Missing Sec-WebSocket-Key.\n");
    };
    let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Could not derive the accept key.\n",
        );
    };

    // Must be taken before the response goes out; it resolves once hyper has
    // written the 101 and handed the raw connection over.
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                echo_websocket(ws, stop).await;
            }
            Err(err) => tracing::debug!(error = %err, "demo upstream: WebSocket upgrade failed"),
        }
    });

    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    resp
}

async fn echo_websocket<S>(mut ws: WebSocketStream<S>, mut stop: watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        tokio::select! {
            // Also fires if the server is gone entirely (sender dropped). The
            // borrow guard is dropped inside, as it must not live across awaits.
            () = async { let _ = stop.wait_for(|stopping| *stopping).await; } => {
                let frame = CloseFrame { code: CloseCode::Away, reason: "server shutting down".into() };
                let _ = tokio::time::timeout(WS_CLOSE_TIMEOUT, async {
                    if ws.close(Some(frame)).await.is_ok() {
                        // Wait for the peer's Close so the handshake completes cleanly.
                        while let Some(Ok(_)) = ws.next().await {}
                    }
                })
                .await;
                return;
            }
            msg = ws.next() => match msg {
                Some(Ok(msg @ (Message::Text(_) | Message::Binary(_)))) => {
                    if let Err(err) = ws.send(msg).await {
                        tracing::debug!(error = %err, "demo upstream: WebSocket send failed");
                        return;
                    }
                }
                // tungstenite answers pings and Close frames itself; after a
                // Close the stream yields `None` once the handshake is done.
                Some(Ok(_)) => {}
                Some(Err(err)) => {
                    tracing::debug!(error = %err, "demo upstream: WebSocket read failed");
                    return;
                }
                None => return,
            },
        }
    }
}

// ---------------------------------------------------------------- /stream

/// A body of `remaining` pattern bytes, produced lazily in slices of the
/// static pattern, so even a multi-gigabyte response allocates nothing.
struct PatternBody {
    /// Position within the pattern period where the next chunk starts.
    phase: usize,
    remaining: u64,
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let len = usize::try_from(self.remaining).map_or(STREAM_CHUNK, |r| r.min(STREAM_CHUNK));
        // phase < PATTERN_PERIOD and len <= STREAM_CHUNK, so this is in bounds.
        let chunk = Bytes::from_static(&PATTERN[self.phase..self.phase + len]);
        self.phase = (self.phase + len) % PATTERN_PERIOD;
        self.remaining -= len as u64;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        // An exact hint makes hyper send Content-Length instead of chunking.
        SizeHint::with_exact(self.remaining)
    }
}

fn stream(query: Option<&str>) -> Response<ResponseBody> {
    let Some(raw) = query_param(query, "bytes") else {
        return text(StatusCode::BAD_REQUEST, "Usage: /stream?bytes=N\n");
    };
    match raw.parse::<u64>() {
        Ok(n) if n <= MAX_STREAM_BYTES => response(
            StatusCode::OK,
            "application/octet-stream",
            PatternBody {
                phase: 0,
                remaining: n,
            }
            .boxed(),
        ),
        Ok(_) => text(
            StatusCode::BAD_REQUEST,
            format!("bytes must be at most {MAX_STREAM_BYTES}\n"),
        ),
        Err(_) => text(
            StatusCode::BAD_REQUEST,
            "bytes must be a non-negative whole number\n",
        ),
    }
}

// ---------------------------------------------------------------- /status

fn status(code: &str) -> Response<ResponseBody> {
    let Some(status) = code
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
    else {
        return text(
            StatusCode::BAD_REQUEST,
            "Usage: /status/<code>, code in 200..=999\n",
        );
    };
    if status.is_informational() {
        // A 1xx can't be a final response; hyper would mangle the exchange.
        return text(
            StatusCode::BAD_REQUEST,
            "1xx codes cannot be a final response\n",
        );
    }
    if matches!(status.as_u16(), 204 | 205 | 304) {
        // These statuses must not carry content.
        return response(status, "text/plain; charset=utf-8", empty());
    }
    let reason = status.canonical_reason().unwrap_or("");
    text(status, format!("{} {reason}\n", status.as_u16()))
}

// ---------------------------------------------------------------- JSON echo

async fn echo(req: Request<Incoming>) -> Response<ResponseBody> {
    let (parts, mut body) = req.into_parts();
    let mut body_bytes: u64 = 0;
    // Count frame by frame instead of collecting, so huge uploads stay cheap.
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    body_bytes += data.len() as u64;
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, "demo upstream: reading request body failed");
                return text(
                    StatusCode::BAD_REQUEST,
                    "Failed to read the request body.\n",
                );
            }
        }
    }

    // HeaderMap keeps names in first-seen order and repeated values together,
    // which is as close to wire order as hyper exposes.
    let headers: Vec<[String; 2]> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            [
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ]
        })
        .collect();
    let doc = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_bytes": body_bytes,
    });
    match serde_json::to_vec_pretty(&doc) {
        Ok(json) => response(StatusCode::OK, "application/json", full(json)),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Could not encode JSON.\n",
        ),
    }
}

// ---------------------------------------------------------------- HTML page

fn escape_html(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const PAGE_STYLE: &str = "\
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.4}\
nav a{margin-right:1rem}\
table{border-collapse:collapse;width:100%;font-size:.9rem}\
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}\
td{font-family:ui-monospace,monospace;word-break:break-all}\
tr.identity td{background:#fff4c2;font-weight:600}\
.note{background:#f3f6fa;border-left:4px solid #4a7bd0;padding:.5rem 1rem}\
code{background:#f0f0f0;padding:0 .2rem}";

// Progressive enhancement only: writes via textContent, so echoed data can
// never become markup.
const PAGE_SCRIPT: &str = "\
(function(){\
var out=document.getElementById('ws-status');\
if(!out||!window.WebSocket)return;\
var ws=new WebSocket((location.protocol==='https:'?'wss://':'ws://')+location.host+'/ws');\
var sent='hello from the browser at '+new Date().toLocaleTimeString();\
out.textContent='Connecting to /ws\\u2026';\
ws.onopen=function(){ws.send(sent);};\
ws.onmessage=function(e){out.textContent='Echo received: '+e.data;ws.close();};\
ws.onerror=function(){out.textContent='WebSocket connection failed.';};\
})();";

fn is_identity_header(name: &str) -> bool {
    name.len() >= 7 && name[..7].eq_ignore_ascii_case("x-auth-")
}

fn html_page(req: &Request<Incoming>) -> Response<ResponseBody> {
    let uri = req.uri();
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let headers = req.headers();
    let user = headers
        .get("x-auth-user")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());

    let mut page = String::with_capacity(4096);
    // Writing into a String cannot fail, so the fmt::Results are ignored.
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Demo app behind Gatehouse</title>\n<style>{PAGE_STYLE}</style>\n</head>\n<body>\n\
         <h1>Demo app behind Gatehouse</h1>\n\
         <nav><a href=\"/\">Home</a><a href=\"/app/\">/app/</a><a href=\"/admin/\">/admin/</a>\
         <a href=\"/premium/\">/premium/</a><a href=\"/_auth/account\">Account</a>\
         <a href=\"/_auth/logout\">Sign out</a></nav>\n"
    );
    match &user {
        Some(user) => {
            let _ = writeln!(
                page,
                "<p>Signed in as <strong>{}</strong>.</p>",
                escape_html(user)
            );
        }
        None => {
            page.push_str(
                "<p>You are not signed in (this is a public page). \
                 <a href=\"/_auth/login\">Sign in</a></p>\n",
            );
        }
    }
    let _ = write!(
        page,
        "<h2>Request</h2>\n<table>\n<tr><th>Method</th><td>{}</td></tr>\n\
         <tr><th>Path</th><td>{}</td></tr>\n<tr><th>Version</th><td>{:?}</td></tr>\n</table>\n\
         <h2>Headers received</h2>\n\
         <p class=\"note\">Highlighted <code>X-Auth-*</code> rows are identity headers that \
         Gatehouse injected after authenticating you. The app behind it learns who you are and \
         what roles you hold from these headers alone and never has to handle passwords.</p>\n\
         <table>\n<tr><th>Name</th><th>Value</th></tr>\n",
        escape_html(req.method().as_str()),
        escape_html(path_and_query),
        req.version(),
    );
    for (name, value) in headers {
        let class = if is_identity_header(name.as_str()) {
            " class=\"identity\""
        } else {
            ""
        };
        let _ = writeln!(
            page,
            "<tr{class}><td>{}</td><td>{}</td></tr>",
            escape_html(name.as_str()),
            escape_html(&String::from_utf8_lossy(value.as_bytes())),
        );
    }
    let json_link = match uri.query() {
        Some(query) => format!("{}?{query}&format=json", uri.path()),
        None => format!("{}?format=json", uri.path()),
    };
    let _ = write!(
        page,
        "</table>\n<p>The same request as JSON: <a href=\"{link}\">{link}</a></p>\n\
         <h2>WebSocket</h2>\n<p id=\"ws-status\">A WebSocket echo check runs here when \
         JavaScript is enabled.</p>\n<script>{PAGE_SCRIPT}</script>\n</body>\n</html>\n",
        link = escape_html(&json_link),
    );
    response(StatusCode::OK, "text/html; charset=utf-8", full(page))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

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
            (0..CHUNKS)
                .map(|_| Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![7u8; CHUNK])))),
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
            raw.contains("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;&amp;&#39;"),
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
            raw.contains("href=\"/app/?q=%22x%22&amp;format=json\""),
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

        assert_eq!(
            escape_html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[tokio::test]
    async fn websocket_echo_round_trip() {
        let server = Server::start().await;
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let (mut ws, resp) =
            tokio_tungstenite::client_async(format!("ws://{}/ws", server.addr), tcp)
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
}
