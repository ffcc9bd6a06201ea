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
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

mod page;
mod stream;
#[cfg(test)]
mod tests;
mod websocket;

use page::{echo, html_page};
use stream::{status, stream};
use websocket::websocket;

/// How long in-flight connections (downloads, WebSocket sessions) may keep running
/// after shutdown is requested before they are cut off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

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
