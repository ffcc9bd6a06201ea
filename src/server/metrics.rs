//! The optional metrics listener (`server.metrics_listen`): `/_auth/metrics` on its own
//! address, e.g. a port that only the monitoring network reaches, so that nothing the main
//! listener receives — through a proxy or not — can read it. The same `server.metrics_allow`
//! check applies here. HTTP/1.1 only; every other path answers 404.

use std::convert::Infallible;
use std::net::SocketAddr;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::{App, Live, StartError};
use crate::web::{Body, respond};

/// Binds `server.metrics_listen` when set and serves it until `stop`; returns its address.
pub(super) async fn spawn(
    live: &Live,
    stop: watch::Receiver<bool>,
) -> Result<Option<SocketAddr>, StartError> {
    let Some(addr) = live.current().settings.server.metrics_listen else {
        return Ok(None);
    };
    let listen_err = |source| StartError::Listen { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(listen_err)?;
    let local = listener.local_addr().map_err(listen_err)?;
    tokio::spawn(accept_loop(listener, live.clone(), stop));
    tracing::info!(listen = %local, "metrics listener");
    Ok(Some(local))
}

async fn accept_loop(listener: TcpListener, live: Live, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let app = live.current();
                    let svc_live = live.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| {
                            let app = svc_live.current();
                            async move { Ok::<_, Infallible>(answer(&app, &req, peer)) }
                        });
                        let conn = hyper::server::conn::http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(app.settings.server.header_read_timeout)
                            .serve_connection(TokioIo::new(stream), svc);
                        if let Err(e) = conn.await {
                            tracing::debug!(%peer, error = %e, "metrics connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = super::stopped(&mut stop) => break,
        }
    }
}

fn answer(app: &App, req: &Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    if req.uri().path() != "/_auth/metrics" || req.method() != Method::GET {
        return respond::text(StatusCode::NOT_FOUND, "not found");
    }
    if !crate::gateway::endpoints::metrics_allowed(app, peer, req.headers()) {
        return respond::text(
            StatusCode::FORBIDDEN,
            "metrics are served only to the addresses in server.metrics_allow",
        );
    }
    crate::gateway::endpoints::metrics_body(app)
}
