//! Listeners, TLS, the HTTP/1.1 + HTTP/2 connection builder, and graceful shutdown.
//!
//! Shutdown order: stop accepting → let in-flight requests finish (bounded by
//! `server.shutdown_grace`) → flush the activity queue and session touches → close the pool.

pub mod tls;
mod workers;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::app::{App, StartError};
use crate::audit::AuditWriter;
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::gateway::{self, ConnInfo};

/// A started server.
pub struct Running {
    pub local_addr: SocketAddr,
    pub app: App,
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
    let (shared_listener, addr) = if workers == 0 {
        let l = match listener {
            Some(l) => l,
            None => TcpListener::bind(listen).await.map_err(listen_err)?,
        };
        let addr = l.local_addr().map_err(listen_err)?;
        (Some(l), addr)
    } else {
        // Workers bind one port with SO_REUSEPORT. A plain bind first fails if another process
        // holds the port (so a second instance cannot silently share it) and resolves port 0.
        let addr = match listener {
            Some(l) => l.local_addr().map_err(listen_err)?,
            None => std::net::TcpListener::bind(listen)
                .and_then(|probe| probe.local_addr())
                .map_err(listen_err)?,
        };
        (None, addr)
    };
    let (app, writer) = App::build(settings, clock).await?;
    let (stop, stop_rx) = watch::channel(false);
    let (local_addr, mode) = if let Some(listener) = shared_listener {
        let task = tokio::spawn(accept_loop(listener, tls, app.clone(), stop_rx));
        (addr, Mode::Shared(task))
    } else {
        let mode = workers::spawn(workers, addr, tls, &app, stop_rx)
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
        app,
        stop,
        mode,
        writer: Some(writer),
    })
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
        .max_concurrent_streams(256);
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
async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: App,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(builder(&app));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let watcher = graceful.watcher();
                    let app = app.clone();
                    let builder = builder.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        connection(stream, peer, tls, app, builder, watcher).await;
                    });
                }
                Err(e) => {
                    // Usually EMFILE under load: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = stopped(&mut stop) => break,
        }
    }
    drop(listener);
    let grace = app.settings.server.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "in-flight requests did not finish within the grace period"
        );
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    app: App,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let info = ConnInfo {
        peer,
        tls: tls.is_some(),
    };
    let svc_app = app.clone();
    let svc = service_fn(move |req| {
        let app = svc_app.clone();
        async move { Ok::<_, Infallible>(gateway::handle(&app, req, info).await) }
    });
    let result = match tls {
        None => {
            watcher
                .watch(
                    builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .into_owned(),
                )
                .await
        }
        Some(acceptor) => {
            let timeout = app.settings.server.header_read_timeout;
            let tls_stream = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            watcher
                .watch(
                    builder
                        .serve_connection_with_upgrades(TokioIo::new(tls_stream), svc)
                        .into_owned(),
                )
                .await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

async fn shutdown_signal() {
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
