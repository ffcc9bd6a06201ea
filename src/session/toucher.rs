//! Writes `last_activity` back in batches, off the request path.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::store::{SessionId, Store, Ts};

enum Msg {
    Touch(SessionId, Ts),
    Flush(oneshot::Sender<()>),
}

pub(super) struct Toucher {
    tx: mpsc::Sender<Msg>,
}

impl Toucher {
    pub fn spawn(store: Store) -> Toucher {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run(store, rx));
        Toucher { tx }
    }

    /// Never waits: when the queue is full the touch is skipped, which only makes the stored
    /// `last_activity` a little older.
    pub fn touch(&self, id: SessionId, at: Ts) {
        let _ = self.tx.try_send(Msg::Touch(id, at));
    }

    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Msg>) {
    let mut pending: HashMap<SessionId, Ts> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Msg::Touch(id, at)) => {
                    let e = pending.entry(id).or_insert(at);
                    *e = (*e).max(at);
                    if pending.len() >= 512 {
                        write(&store, &mut pending).await;
                    }
                }
                Some(Msg::Flush(done)) => {
                    write(&store, &mut pending).await;
                    let _ = done.send(());
                }
                None => break,
            },
            _ = tick.tick() => write(&store, &mut pending).await,
        }
    }
    write(&store, &mut pending).await;
}

async fn write(store: &Store, pending: &mut HashMap<SessionId, Ts>) {
    if pending.is_empty() {
        return;
    }
    let batch: Vec<(SessionId, Ts)> = pending.drain().collect();
    if let Err(e) = store.touch_sessions(&batch).await {
        tracing::warn!(error = %e, sessions = batch.len(), "could not record session activity");
    }
}
