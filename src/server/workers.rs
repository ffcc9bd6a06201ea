//! `server.workers = N`: N threads, each running a single-threaded runtime with its own
//! `SO_REUSEPORT` listener and its own upstream client. The kernel spreads connections over
//! the listeners; a connection's request, its upstream exchange and the tasks between them stay
//! on one thread, which saves the cross-thread wake-ups a shared work-stealing runtime pays on
//! every proxied request.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};
use tokio_rustls::TlsAcceptor;

use super::{Mode, accept_loop};
use crate::app::Live;

/// Binds the workers' `SO_REUSEPORT` listeners at once, before the (slow) app build, so the
/// port found free a moment earlier is held from then on: a port released during the build
/// could be taken by another process binding port 0, and a second server with `SO_REUSEPORT`
/// would then silently share it.
pub(super) fn bind(n: usize, addr: SocketAddr) -> std::io::Result<Vec<std::net::TcpListener>> {
    (0..n)
        .map(|_| reuseport_listener(addr).and_then(TcpListener::into_std))
        .collect()
}

pub(super) async fn spawn(
    listeners: Vec<std::net::TcpListener>,
    tls: Option<TlsAcceptor>,
    live: &Live,
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<Mode> {
    let n = listeners.len();
    let (exit, exit_rx) = watch::channel(false);
    let mut drained = Vec::with_capacity(n);
    let mut threads = Vec::with_capacity(n);
    let mut ready = Vec::with_capacity(n);
    for (i, socket) in listeners.into_iter().enumerate() {
        let (ready_tx, ready_rx) = oneshot::channel::<std::io::Result<()>>();
        let (drained_tx, drained_rx) = oneshot::channel();
        let (live, tls, stop, mut exit_rx, slots) = (
            live.clone(),
            tls.clone(),
            stop.clone(),
            exit_rx.clone(),
            slots.clone(),
        );
        let thread = std::thread::Builder::new()
            .name(format!("gatehouse-worker-{i}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match TcpListener::from_std(socket) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    match live.current().upstream.for_worker() {
                        Ok(u) => u.install_for_this_thread(),
                        Err(e) => {
                            let _ = ready_tx.send(Err(std::io::Error::other(e.to_string())));
                            return;
                        }
                    }
                    let _ = ready_tx.send(Ok(()));
                    accept_loop(listener, tls, live, slots, stop).await;
                    let _ = drained_tx.send(());
                    super::stopped(&mut exit_rx).await;
                });
            })?;
        threads.push(thread);
        drained.push(drained_rx);
        ready.push(ready_rx);
    }
    for r in ready {
        match r.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(std::io::Error::other("worker thread ended during start")),
        }
    }
    Ok(Mode::Workers {
        drained,
        exit,
        threads,
    })
}

fn reuseport_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
