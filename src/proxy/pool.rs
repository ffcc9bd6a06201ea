//! Keep-alive connections to the upstream, for one client (one per worker thread, see
//! [`super::Upstream::local`]).
//!
//! hyper-util's pooled client did the same job at a cost the hot path felt: on every request a
//! pool lookup under its key, a race between checkout and a lazy connect, and, because the
//! response body is still streaming when the head arrives, a spawned task per request that
//! waits for the connection to come free and puts it back. Here a connection goes back when
//! the response body it carried has ended: the body that goes to the client holds the sender
//! and returns it as its last act. Connecting (DNS, TCP options, the connect timeout, TLS)
//! stays with hyper-rustls' connector; the HTTP/1 exchange is hyper's `client::conn`.

use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service as _;

/// Why a request got no response.
pub(super) enum SendError {
    /// No connection could be made.
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// The exchange failed (a request a reused connection never took has already gone to the
    /// next connection; this one is not sent twice).
    Http(hyper::Error),
}

struct Idle {
    sender: SendRequest<Incoming>,
    since: Instant,
}

/// The idle connections, and whether a sweeper task is watching them.
#[derive(Default)]
struct IdleSet {
    conns: Vec<Idle>,
    swept: bool,
}

pub(super) struct Pool {
    connector: HttpsConnector<HttpConnector>,
    /// Where new connections go (scheme and authority of the upstream URL).
    origin: Uri,
    /// Most recently used last, so the warmest connection is reused first.
    idle: Mutex<IdleSet>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Pool {
    pub(super) fn new(
        connector: HttpsConnector<HttpConnector>,
        origin: Uri,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Arc<Pool> {
        Arc::new(Pool {
            connector,
            origin,
            idle: Mutex::new(IdleSet::default()),
            max_idle,
            idle_timeout,
        })
    }

    /// Sends `req` on an idle connection, else on a new one. A request that a reused
    /// connection never took (it was closed under us) is tried on the next one; on a fresh
    /// connection a failure is final.
    pub(super) async fn send(
        self: &Arc<Self>,
        mut req: Box<Request<Incoming>>,
    ) -> Result<Response<PooledBody>, SendError> {
        loop {
            let (mut sender, reused) = match self.checkout() {
                Some(s) => (s, true),
                None => {
                    // Boxed, in a statement of its own: connecting (TLS state included) is a
                    // large future that steady state never runs; inline, or as a temporary of
                    // the awaiting statement, it would be part of every request's future.
                    let connect = Box::pin(self.connect());
                    (connect.await?, false)
                }
            };
            if reused && !sender.is_ready() {
                // Its last response has ended but the connection task has not yet asked for
                // the next request; that takes one turn of the task.
                if sender.ready().await.is_err() {
                    continue;
                }
            }
            match sender.try_send_request(*req).await {
                Ok(resp) => {
                    let back = Some((sender, Arc::downgrade(self)));
                    return Ok(resp.map(|inner| PooledBody { inner, back }));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => *req = unsent,
                    _ => return Err(SendError::Http(e.into_error())),
                },
            }
        }
    }

    fn checkout(&self) -> Option<SendRequest<Incoming>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(c) = idle.conns.pop() {
            if !c.sender.is_closed() && c.since.elapsed() < self.idle_timeout {
                return Some(c.sender);
            }
        }
        None
    }

    fn checkin(self: &Arc<Self>, sender: SendRequest<Incoming>) {
        if sender.is_closed() || self.max_idle == 0 {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        // Too old ones are dropped by checkout and by the sweeper.
        if idle.conns.len() < self.max_idle {
            idle.conns.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
        if !idle.swept && tokio::runtime::Handle::try_current().is_ok() {
            idle.swept = true;
            tokio::spawn(sweep(Arc::downgrade(self), self.idle_timeout));
        }
    }

    async fn connect(self: &Arc<Self>) -> Result<SendRequest<Incoming>, SendError> {
        let mut connector = self.connector.clone();
        let io = connector
            .call(self.origin.clone())
            .await
            .map_err(SendError::Connect)?;
        let (sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(SendError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// While the pool holds idle connections, drops those idle longer than `every`, so a pool that
/// traffic has left does not hold its connections for ever. One such task per pool at most; it
/// ends when nothing is left to watch (the next check-in starts another).
async fn sweep(pool: Weak<Pool>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        let now = Instant::now();
        let mut idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.conns
            .retain(|c| !c.sender.is_closed() && now.duration_since(c.since) < every);
        if idle.conns.is_empty() {
            idle.swept = false;
            return;
        }
    }
}

/// A response body from the upstream. When it has been read to its end its connection goes
/// back to the pool; dropped before that, the connection is closed with it.
pub struct PooledBody {
    inner: Incoming,
    back: Option<(SendRequest<Incoming>, Weak<Pool>)>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((sender, pool)) = self.back.take()
            && let Some(pool) = pool.upgrade()
        {
            pool.checkin(sender);
        }
    }

    /// Keeps the connection out of the pool (it was upgraded to a tunnel).
    pub(super) fn detach(&mut self) {
        self.back = None;
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // A body of known length is often not polled once more after its last bytes: it says
        // so through `is_end_stream`, which also covers empty bodies (HEAD, 204, 304).
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}
