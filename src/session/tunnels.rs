//! Long-lived tunnels (WebSocket) belong to the session that opened them. Whenever cached
//! sessions are evicted — sign-out, revocation, an account change seen here or through the
//! change feed — every tunnel hears about it and checks its session again; a tunnel whose
//! session is gone is closed.

use tokio::sync::broadcast;

use crate::store::UserId;

/// What was evicted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revalidate {
    User(UserId),
    TokenHash(String),
    /// Everything (a cache flush, or a listener that fell behind).
    All,
}

#[derive(Debug)]
pub struct Tunnels {
    tx: broadcast::Sender<Revalidate>,
}

impl Tunnels {
    pub fn new() -> Tunnels {
        // A tunnel that misses messages treats the gap as `All`, so the size only bounds memory.
        let (tx, _) = broadcast::channel(1024);
        Tunnels { tx }
    }

    pub fn notify(&self, what: Revalidate) {
        // No receivers means no open tunnels: nothing to tell.
        let _ = self.tx.send(what);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Revalidate> {
        self.tx.subscribe()
    }
}

impl Default for Tunnels {
    fn default() -> Self {
        Tunnels::new()
    }
}
