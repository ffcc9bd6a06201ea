//! The upstream for `bench/proxy/run.sh`: a minimal HTTP/1.1 keep-alive server that answers
//! every request with the same small static response, whatever the path.
//!
//! The proxy benchmark must compare direct access, nginx and Gatehouse against one upstream
//! whose cost is as small and as constant as possible, and Gatehouse's public and
//! authenticated routes need different paths; a path-independent answer keeps the four cases
//! byte-for-byte identical on the upstream's side. It is an example target, so it never ends
//! up in the `gatehouse` binary.
//!
//! Usage: `bench_upstream ADDR [204]` (e.g. `127.0.0.1:18081`). With `204` it answers every
//! request with an empty `204 No Content` instead: the free auth service behind nginx's
//! `auth_request` in the benchmark's forward-auth case. Worker threads follow tokio's
//! `TOKIO_WORKER_THREADS`, defaulting to one per core. Runs until killed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The whole response body: small, so the benchmark measures the proxies, not the copying.
const BODY: &[u8] = b"hello from the bench upstream\n";

async fn answer(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(resp)
}

async fn no_content(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = http::StatusCode::NO_CONTENT;
    Ok(resp)
}

async fn serve(listener: TcpListener, empty: bool) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                eprintln!("bench_upstream: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let mut builder = http1::Builder::new();
            let io = TokioIo::new(stream);
            let _ = if empty {
                builder
                    .keep_alive(true)
                    .serve_connection(io, service_fn(no_content))
                    .await
            } else {
                builder
                    .keep_alive(true)
                    .serve_connection(io, service_fn(answer))
                    .await
            };
        });
    }
}

fn main() -> ExitCode {
    let Some(addr) = std::env::args().nth(1) else {
        eprintln!("usage: bench_upstream ADDR [204]   (e.g. 127.0.0.1:18081)");
        return ExitCode::from(2);
    };
    let empty = match std::env::args().nth(2).as_deref() {
        None => false,
        Some("204") => true,
        Some(other) => {
            eprintln!("bench_upstream: the second argument can only be 204, not {other:?}");
            return ExitCode::from(2);
        }
    };
    let addr: SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench_upstream: {addr:?} is not an address: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench_upstream: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                println!("bench_upstream listening on {addr}");
                serve(listener, empty).await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("bench_upstream: cannot listen on {addr}: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
