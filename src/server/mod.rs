//! Listeners, TLS, the HTTP/1.1 + HTTP/2 connection builder, and graceful shutdown.
//!
//! Shutdown order: stop accepting → let in-flight requests finish (bounded by
//! `server.shutdown_grace`) → flush the activity queue and session touches → close the pool.

pub mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
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
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Graceful shutdown; returns when the activity log is flushed.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Runs until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}

/// Builds the app and starts serving. With `listener`, uses it instead of binding
/// `server.listen` (tests bind port 0 first).
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
    let listener = match listener {
        Some(l) => l,
        None => TcpListener::bind(settings.server.listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: settings.server.listen,
                source,
            })?,
    };
    let local_addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: settings.server.listen,
        source,
    })?;
    let (app, writer) = App::build(settings, clock).await?;
    let (stop_tx, stop_rx) = oneshot::channel();
    let task = tokio::spawn(serve(listener, tls, app.clone(), writer, stop_rx));
    tracing::info!(
        listen = %local_addr,
        tls = app.settings.server.tls.is_some(),
        upstream = %app.settings.upstream.url,
        "gatehouse is serving"
    );
    Ok(Running {
        local_addr,
        app,
        stop: Some(stop_tx),
        task,
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

async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: App,
    writer: AuditWriter,
    mut stop: oneshot::Receiver<()>,
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
            _ = &mut stop => break,
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
    writer.shutdown().await;
    app.sessions.flush().await;
    let stats = app.audit.stats();
    tracing::info!(
        written = stats.written,
        dropped = stats.dropped,
        "activity log flushed"
    );
    app.store.close().await;
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
