//! One client connection, with a deadline for every phase:
//!
//! ```text
//!  accepted ─▶ TLS handshake ─▶ first request        (server.handshake_timeout, from accept)
//!           ─▶ requests … idle ─▶ next request        (server.idle_timeout, no request in
//!                                                      flight and no bytes either way)
//!           ─▶ HTTP/2: keep-alive pings; a peer that does not answer is dropped
//! ```
//!
//! A connection that misses its deadline is shut down gracefully (HTTP/2 `GOAWAY`) and dropped
//! a second later if it has not gone. The count of open connections is capped by a semaphore
//! shared by every accept loop (`server.max_connections`), so a flood waits in the kernel's
//! backlog instead of exhausting file descriptors.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::app::Live;
use crate::gateway::{self, ConnInfo};
use crate::session::SessionMemo;

/// A connection's state shared by the socket wrapper and the request service: what the
/// deadlines look at, and the last session its requests presented.
struct Activity {
    opened: Instant,
    /// Milliseconds since `opened` of the last byte read or written.
    last_io_ms: AtomicU64,
    in_flight: AtomicU32,
    served: AtomicBool,
    session: SessionMemo,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            served: AtomicBool::new(false),
            session: SessionMemo::default(),
        }
    }

    fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_io_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes when the connection has missed its deadline: no first request within
    /// `handshake`, or, after one, nothing in flight and no bytes for `idle`.
    async fn expired(&self, handshake: Duration, idle: Duration) {
        loop {
            let deadline = if self.served.load(Ordering::Relaxed) {
                Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed)) + idle
            } else {
                handshake
            };
            let now = self.opened.elapsed();
            if self.in_flight.load(Ordering::Relaxed) > 0 {
                // A request waiting on the upstream is bounded by the upstream timeouts.
                tokio::time::sleep(idle.min(Duration::from_secs(5))).await;
            } else if now >= deadline {
                return;
            } else {
                tokio::time::sleep(deadline - now).await;
            }
        }
    }
}

/// Decrements the in-flight count however the request future ends.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket that notes when bytes move.
struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Held by a connection for its life: its slot under `max_connections`, and its part in the
/// count the shutdown waits on (the receiver sees `None` once every sender is gone).
pub(super) struct Slot {
    pub _permit: OwnedSemaphorePermit,
    pub _open: mpsc::Sender<()>,
}

pub(super) struct ConnCtx {
    pub live: Live,
    pub tls: Option<TlsAcceptor>,
    pub builder: Arc<auto::Builder<TokioExecutor>>,
    pub stop: watch::Receiver<bool>,
}

pub(super) async fn serve(stream: TcpStream, peer: SocketAddr, c: ConnCtx, slot: Slot) {
    let ConnCtx {
        live,
        tls,
        builder,
        mut stop,
    } = c;
    // Deadlines are the configuration's at accept; each request loads the one then in force.
    let app = live.current();
    let s = &app.settings.server;
    let (handshake, idle) = (s.handshake_timeout, s.idle_timeout);
    let activity = Arc::new(Activity::new());
    app.metrics.connections_open.fetch_add(1, Ordering::Relaxed);
    let info = ConnInfo {
        peer,
        tls: tls.is_some(),
    };
    let svc_activity = activity.clone();
    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        // Boxed once, here: the request passes by value through every phase down to the
        // upstream connection, and each `async fn` on the way keeps its own slot for it in the
        // request's future (hyper holds one allocation of that future's size per connection).
        // A pointer is moved instead of 264 bytes at each step.
        let req = Box::new(req);
        let app = live.current();
        let activity = svc_activity.clone();
        activity.served.store(true, Ordering::Relaxed);
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        let guard = InFlight(activity);
        async move {
            let resp = gateway::handle(&app, req, info, &guard.0.session).await;
            drop(guard);
            Ok::<_, Infallible>(resp)
        }
    });
    let io = Tracked {
        inner: stream,
        activity: activity.clone(),
    };
    let result = match tls {
        None => {
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
            drive(conn, &activity, handshake, idle, &mut stop).await
        }
        Some(acceptor) => match tokio::time::timeout(handshake, acceptor.accept(io)).await {
            Ok(Ok(tls_stream)) => {
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls_stream), svc);
                drive(conn, &activity, handshake, idle, &mut stop).await
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                Ok(())
            }
            Err(_) => {
                app.metrics
                    .connections_timed_out
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "TLS handshake timed out");
                Ok(())
            }
        },
    };
    match result {
        Err(Ended::Error(e)) => {
            tracing::debug!(%peer, error = %e, "connection ended with an error")
        }
        Err(Ended::Deadline) => {
            app.metrics
                .connections_timed_out
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "connection closed: deadline passed");
        }
        Ok(()) => {}
    }
    app.metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
    drop(slot);
}

enum Ended {
    Error(Box<dyn std::error::Error + Send + Sync>),
    Deadline,
}

/// Runs a connection until it ends, its deadline passes or the server stops.
async fn drive<I, S, B>(
    conn: auto::UpgradeableConnection<'_, I, S, TokioExecutor>,
    activity: &Activity,
    handshake: Duration,
    idle: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), Ended>
where
    S: hyper::service::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>,
    S::Future: 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    TokioExecutor: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    tokio::pin!(conn);
    let why = tokio::select! {
        r = conn.as_mut() => return r.map_err(Ended::Error),
        () = activity.expired(handshake, idle) => Ended::Deadline,
        () = super::stopped(stop) => Ended::Error("server stopping".into()),
    };
    conn.as_mut().graceful_shutdown();
    match why {
        Ended::Deadline => {
            // A peer that ignores GOAWAY is not waited for.
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
            Err(Ended::Deadline)
        }
        // Stopping: in-flight requests finish; the server bounds the wait with shutdown_grace.
        Ended::Error(_) => conn.await.map_err(Ended::Error),
    }
}
