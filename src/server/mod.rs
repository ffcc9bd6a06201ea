//! Listeners, TLS, the HTTP/1.1 + HTTP/2 connection builder, and graceful shutdown.
//!
//! Shutdown order: stop accepting → let in-flight requests finish (bounded by
//! `server.shutdown_grace`) → flush the activity queue and session touches → close the pool.

mod conn;
mod metrics;
mod reload;
pub mod tls;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::app::{App, Live, StartError};
use crate::audit::AuditWriter;
use crate::clock::SharedClock;
use crate::config::Settings;

/// A started server.
pub struct Running {
    pub local_addr: SocketAddr,
    /// The metrics listener's address (`server.metrics_listen`), when there is one.
    pub metrics_addr: Option<SocketAddr>,
    pub app: App,
    /// The configuration in force; [`Running::reload`] replaces it.
    pub live: Live,
    stop: watch::Sender<bool>,
    mode: Mode,
    writer: Option<AuditWriter>,
}

enum Mode {
    /// One accept loop on the caller's (multi-threaded) runtime.
    Shared(JoinHandle<()>),
    /// `server.workers` threads, each with a single-threaded runtime.
    Workers {
        drained: Vec<oneshot::Receiver<()>>,
        exit: watch::Sender<bool>,
        threads: Vec<std::thread::JoinHandle<()>>,
    },
}

impl Running {
    /// Graceful shutdown; returns when the activity log is flushed.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let mut exit_workers = None;
        match self.mode {
            Mode::Shared(task) => {
                let _ = task.await;
            }
            Mode::Workers {
                drained,
                exit,
                threads,
            } => {
                for d in drained {
                    let _ = d.await;
                }
                exit_workers = Some((exit, threads));
            }
        }
        // Workers keep their runtimes (and any database connections opened on them) alive
        // until the activity log is written.
        if let Some(writer) = self.writer.take() {
            writer.shutdown().await;
        }
        self.app.sessions.flush().await;
        self.app.feed.stop();
        let stats = self.app.audit.stats();
        tracing::info!(
            written = stats.written,
            dropped = stats.dropped,
            "activity log flushed"
        );
        if let Some((exit, threads)) = exit_workers {
            let _ = exit.send(true);
            let _ = tokio::task::spawn_blocking(move || {
                for t in threads {
                    let _ = t.join();
                }
            })
            .await;
        }
        self.app.store.close().await;
    }

    /// Runs until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}

/// Builds the app and starts serving. With `listener`, uses it instead of binding
/// `server.listen` (tests bind port 0 first); `server.workers > 0` binds its own sockets.
pub async fn start(
    settings: Settings,
    clock: SharedClock,
    listener: Option<TcpListener>,
) -> Result<Running, StartError> {
    for w in &settings.warnings {
        tracing::warn!("config: {w}");
    }
    let tls = match &settings.server.tls {
        Some(files) => Some(TlsAcceptor::from(tls::server_config(files)?)),
        None => None,
    };
    let workers = settings.server.workers;
    let listen = settings.server.listen;
    let listen_err = |source| StartError::Listen {
        addr: listen,
        source,
    };
    // Bind (or probe) before building the app, so a taken port fails fast and changes nothing.
    let (shared_listener, worker_sockets, addr) = if workers == 0 {
        let l = match listener {
            Some(l) => l,
            None => TcpListener::bind(listen).await.map_err(listen_err)?,
        };
        let addr = l.local_addr().map_err(listen_err)?;
        (Some(l), Vec::new(), addr)
    } else {
        // Workers bind one port with SO_REUSEPORT. A plain bind first fails if another process
        // holds the port (so a second instance cannot silently share it) and resolves port 0.
        let addr = match listener {
            Some(l) => l.local_addr().map_err(listen_err)?,
            None => std::net::TcpListener::bind(listen)
                .and_then(|probe| probe.local_addr())
                .map_err(listen_err)?,
        };
        let sockets =
            workers::bind(workers, addr).map_err(|source| StartError::Listen { addr, source })?;
        (None, sockets, addr)
    };
    let slots = Arc::new(Semaphore::new(max_connections(
        settings.server.max_connections,
    )));
    let (app, writer) = App::build(settings, clock).await?;
    let live = Live::new(&app);
    let (stop, stop_rx) = watch::channel(false);
    let metrics_addr = metrics::spawn(&live, stop_rx.clone()).await?;
    let (local_addr, mode) = if let Some(listener) = shared_listener {
        let task = tokio::spawn(accept_loop(listener, tls, live.clone(), slots, stop_rx));
        (addr, Mode::Shared(task))
    } else {
        let mode = workers::spawn(worker_sockets, tls, &live, slots, stop_rx)
            .await
            .map_err(|source| StartError::Listen { addr, source })?;
        (addr, mode)
    };
    tracing::info!(
        listen = %local_addr,
        tls = app.settings.server.tls.is_some(),
        workers,
        upstream = %app.settings.upstream.url,
        "gatehouse is serving"
    );
    Ok(Running {
        local_addr,
        metrics_addr,
        app,
        live,
        stop,
        mode,
        writer: Some(writer),
    })
}

/// Raises the open-file limit to its hard maximum (once per process) and derives the
/// connection cap from it when `server.max_connections` is 0: each connection may hold a client
/// and an upstream socket, and the database, logs and listeners need some.
fn max_connections(configured: usize) -> usize {
    static LIMIT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let limit = *LIMIT.get_or_init(|| match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit");
            1024
        }
    });
    let derived = (limit.saturating_sub(128) / 2).max(64) as usize;
    let n = if configured == 0 { derived } else { configured };
    if configured > derived {
        tracing::warn!(
            configured,
            open_file_limit = limit,
            "server.max_connections is above what the open-file limit allows"
        );
    }
    n
}

fn builder(app: &App) -> auto::Builder<TokioExecutor> {
    let s = &app.settings.server;
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(s.header_read_timeout)
        .max_buf_size(s.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(s.max_header_bytes as u32)
        .max_concurrent_streams(256)
        // Pings find peers that vanished during a long request. They start only after a
        // silence longer than idle_timeout, so an idle connection meets `conn`'s deadline
        // first instead of being kept busy by its own pings.
        .keep_alive_interval(Some(s.idle_timeout + Duration::from_secs(1)))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// Resolves once the flag is true (or its sender is gone).
pub(super) async fn stopped(rx: &mut watch::Receiver<bool>) {
    loop {
        let done = *rx.borrow_and_update();
        if done || rx.changed().await.is_err() {
            return;
        }
    }
}

/// Accepts until `stop`, then lets open connections finish within `server.shutdown_grace`.
/// A connection is accepted only with a free slot under `server.max_connections`.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    live: Live,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let builder = Arc::new(builder(&live.current()));
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    let mut failures: u64 = 0;
    let mut last_warned: Option<Instant> = None;
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stopped(&mut stop) => break,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let ctx = conn::ConnCtx {
                        live: live.clone(),
                        tls: tls.clone(),
                        builder: builder.clone(),
                        stop: stop.clone(),
                    };
                    let slot = conn::Slot { _permit: permit, _open: open.clone() };
                    tokio::spawn(conn::serve(stream, peer, ctx, slot));
                }
                Err(e) => {
                    // Usually EMFILE: back off, and say so once in a while rather than per try.
                    failures += 1;
                    if last_warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        tracing::warn!(error = %e, failures, "accept failed; backing off");
                        last_warned = Some(Instant::now());
                    }
                    drop(permit);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stopped(&mut stop) => break,
        }
    }
    drop(listener);
    drop(open);
    let grace = live.current().settings.server.shutdown_grace;
    if tokio::time::timeout(grace, all_closed.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "in-flight requests did not finish within the grace period"
        );
    }
}

/// Resolves on SIGINT or SIGTERM (the signals a terminal and a container runtime send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
