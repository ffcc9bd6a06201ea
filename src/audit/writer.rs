use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::ActivityEvent;
use crate::config::{AuditSettings, QueueFullPolicy};
use crate::store::{NewActivity, Store};

/// Where activity goes. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditLog {
    mode: Mode,
    stats: Arc<Counters>,
}

#[derive(Clone, Debug)]
enum Mode {
    /// Written at once; for the CLI and other short-lived processes.
    Direct(Store),
    Queued {
        tx: mpsc::Sender<NewActivity>,
        policy: QueueFullPolicy,
    },
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
}

/// A snapshot of the audit counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AuditStats {
    pub queued: u64,
    pub written: u64,
    pub dropped: u64,
}

/// The background writer; [`AuditWriter::shutdown`] flushes everything still queued.
pub struct AuditWriter {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl AuditLog {
    pub fn direct(store: Store) -> AuditLog {
        AuditLog {
            mode: Mode::Direct(store),
            stats: Arc::default(),
        }
    }

    /// Starts the batching writer.
    pub fn spawn(store: Store, settings: &AuditSettings) -> (AuditLog, AuditWriter) {
        let (tx, rx) = mpsc::channel(settings.queue_capacity.max(1));
        let stats = Arc::new(Counters::default());
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(run(
            store,
            rx,
            stop_rx,
            settings.batch_size.max(1),
            settings.flush_interval,
            stats.clone(),
        ));
        (
            AuditLog {
                mode: Mode::Queued {
                    tx,
                    policy: settings.on_full,
                },
                stats,
            },
            AuditWriter {
                stop: Some(stop_tx),
                task,
            },
        )
    }

    /// Records an event. Queued mode never touches the database on the caller's task.
    pub async fn record(&self, event: ActivityEvent) {
        let row = event.into_row();
        match &self.mode {
            Mode::Direct(store) => match store.insert_activity(std::slice::from_ref(&row)).await {
                Ok(()) => {
                    self.stats.written.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, activity = %row.activity_type, "could not write activity row");
                }
            },
            Mode::Queued { tx, policy } => {
                let sent = match policy {
                    QueueFullPolicy::Wait => tx.send(row).await.is_ok(),
                    QueueFullPolicy::Drop => tx.try_send(row).is_ok(),
                };
                if sent {
                    self.stats.queued.fetch_add(1, Ordering::Relaxed);
                } else {
                    let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    // Log the first drop and then every 1000th, so a flood does not flood the log too.
                    if n == 1 || n.is_multiple_of(1000) {
                        tracing::warn!(
                            dropped_total = n,
                            "activity queue full or closed: row dropped"
                        );
                    }
                }
            }
        }
    }

    pub fn stats(&self) -> AuditStats {
        AuditStats {
            queued: self.stats.queued.load(Ordering::Relaxed),
            written: self.stats.written.load(Ordering::Relaxed),
            dropped: self.stats.dropped.load(Ordering::Relaxed),
        }
    }
}

impl AuditWriter {
    /// Stops taking new rows, writes every queued row, and returns when done.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "activity writer task failed");
        }
    }
}

async fn run(
    store: Store,
    mut rx: mpsc::Receiver<NewActivity>,
    mut stop: oneshot::Receiver<()>,
    batch_size: usize,
    flush_interval: Duration,
    stats: Arc<Counters>,
) {
    let mut buf: Vec<NewActivity> = Vec::with_capacity(batch_size);
    let mut stopping = false;
    loop {
        if !stopping {
            tokio::select! {
                n = rx.recv_many(&mut buf, batch_size) => {
                    if n == 0 { break; }
                }
                _ = &mut stop => {
                    stopping = true;
                    rx.close();
                    continue;
                }
            }
            // Give the batch up to one interval to fill, so rows are written in groups.
            if buf.len() < batch_size {
                let deadline = tokio::time::sleep(flush_interval);
                tokio::pin!(deadline);
                while buf.len() < batch_size {
                    let room = batch_size - buf.len();
                    tokio::select! {
                        _ = &mut deadline => break,
                        n = rx.recv_many(&mut buf, room) => if n == 0 { break },
                        _ = &mut stop, if !stopping => { stopping = true; rx.close(); }
                    }
                }
            }
        } else {
            // Closed: drain what is left without waiting.
            if rx.recv_many(&mut buf, batch_size).await == 0 {
                break;
            }
        }
        write(&store, &mut buf, &stats).await;
    }
    write(&store, &mut buf, &stats).await;
}

async fn write(store: &Store, buf: &mut Vec<NewActivity>, stats: &Counters) {
    if buf.is_empty() {
        return;
    }
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=5 {
        match store.insert_activity(buf).await {
            Ok(()) => {
                stats.written.fetch_add(buf.len() as u64, Ordering::Relaxed);
                buf.clear();
                return;
            }
            Err(e) if attempt < 5 => {
                tracing::warn!(error = %e, rows = buf.len(), attempt, "activity batch failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
            Err(e) => {
                stats.dropped.fetch_add(buf.len() as u64, Ordering::Relaxed);
                tracing::error!(error = %e, rows = buf.len(), "activity batch lost after retries");
                buf.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{ActivityEvent, ActivityKind};
    use crate::store::{Ts, UserId};

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.db").display());
        let s = Store::connect(&url, 2).await.unwrap();
        s.migrate().await.unwrap();
        (dir, s)
    }

    fn settings(capacity: usize, on_full: QueueFullPolicy) -> AuditSettings {
        AuditSettings {
            queue_capacity: capacity,
            batch_size: 64,
            flush_interval: Duration::from_millis(50),
            on_full,
        }
    }

    fn event(i: i64) -> ActivityEvent {
        ActivityEvent::new(
            ActivityKind::Request,
            None::<UserId>,
            Ts(chrono::DateTime::from_timestamp(1_700_000_000 + i, 0).unwrap()),
        )
    }

    // A current-thread runtime: the writer cannot run while this test loops without yielding,
    // so a full queue is certain.
    #[tokio::test(flavor = "current_thread")]
    async fn drop_policy_counts_what_it_drops() {
        let (_dir, store) = store().await;
        let (log, writer) = AuditLog::spawn(store.clone(), &settings(10, QueueFullPolicy::Drop));
        for i in 0..100 {
            // `record` with the drop policy never awaits the queue.
            log.record(event(i)).await;
        }
        writer.shutdown().await;
        let st = log.stats();
        assert_eq!(st.queued + st.dropped, 100);
        assert_eq!(st.queued, 10);
        assert_eq!(st.written, 10);
        assert_eq!(store.count_activity(None).await.unwrap(), 10);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wait_policy_loses_nothing_on_shutdown() {
        let (_dir, store) = store().await;
        let (log, writer) = AuditLog::spawn(store.clone(), &settings(8, QueueFullPolicy::Wait));
        let mut tasks = Vec::new();
        for t in 0..4 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..250 {
                    log.record(event(t * 1000 + i)).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        writer.shutdown().await;
        assert_eq!(log.stats().dropped, 0);
        assert_eq!(store.count_activity(Some("request")).await.unwrap(), 1000);
    }
}
