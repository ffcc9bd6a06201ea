use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{ActivityEvent, RequestActivity};
use crate::config::{AuditSettings, QueueFullPolicy};
use crate::store::{ActivityFilter, ActivityRow, NewActivity, Store, StoreError, UserId};

/// Where activity goes. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditLog {
    mode: Mode,
    stats: Arc<Counters>,
    /// For reading the trail back ([`AuditLog::recent_for_user`]).
    store: Store,
}

#[derive(Clone, Debug)]
enum Mode {
    /// Written at once; for the CLI and other short-lived processes.
    Direct(Store),
    Queued {
        tx: mpsc::Sender<Queued>,
        policy: QueueFullPolicy,
        /// Wakes the writer once `wake_at` rows are queued (a whole batch, or half the queue
        /// if that is less); below that it sleeps out its flush interval, so a request does not
        /// wake the writer's thread for every row.
        full_batch: Arc<Notify>,
        wake_at: usize,
    },
}

/// What travels through the queue; the writer turns it into a row.
#[derive(Debug)]
enum Queued {
    Row(NewActivity),
    /// Kept as the fixed-size record the request made: the row's text is built by the writer.
    Request(RequestActivity),
}

impl Queued {
    fn into_row(self) -> NewActivity {
        match self {
            Queued::Row(r) => r,
            Queued::Request(r) => r.into_row(),
        }
    }
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
            mode: Mode::Direct(store.clone()),
            stats: Arc::default(),
            store,
        }
    }

    /// Starts the batching writer.
    pub fn spawn(store: Store, settings: &AuditSettings) -> (AuditLog, AuditWriter) {
        let (tx, rx) = mpsc::channel(settings.queue_capacity.max(1));
        let stats = Arc::new(Counters::default());
        let (stop_tx, stop_rx) = oneshot::channel();
        let full_batch = Arc::new(Notify::new());
        let batch_size = settings.batch_size.max(1);
        let task = tokio::spawn(run(
            store.clone(),
            Inbox {
                rx,
                stop: stop_rx,
                full_batch: full_batch.clone(),
            },
            batch_size,
            settings.flush_interval,
            stats.clone(),
        ));
        (
            AuditLog {
                mode: Mode::Queued {
                    tx,
                    policy: settings.on_full,
                    full_batch,
                    wake_at: batch_size.min(settings.queue_capacity.max(1) / 2).max(1),
                },
                stats,
                store,
            },
            AuditWriter {
                stop: Some(stop_tx),
                task,
            },
        )
    }

    /// The user's latest `limit` rows, newest first (the account page's recent activity).
    /// Rows still queued are not among them yet.
    pub async fn recent_for_user(
        &self,
        user: UserId,
        limit: i64,
    ) -> Result<Vec<ActivityRow>, StoreError> {
        let filter = ActivityFilter {
            user_id: Some(user),
            limit,
            ..ActivityFilter::default()
        };
        self.store.list_activity(&filter).await
    }

    /// Records an event. Queued mode never touches the database on the caller's task.
    pub async fn record(&self, event: ActivityEvent) {
        self.send(Queued::Row(event.into_row())).await;
    }

    /// Records a proxied request of a signed-in user: the request's task only queues the
    /// record, the writer builds the row.
    pub async fn record_request(&self, r: RequestActivity) {
        self.send(Queued::Request(r)).await;
    }

    async fn send(&self, item: Queued) {
        match &self.mode {
            Mode::Direct(store) => {
                let row = item.into_row();
                // Boxed (in a statement of its own, see `SessionService::lookup`): a database
                // write is a large future, and this one (short-lived processes only) would
                // otherwise size every proxied request's future.
                let write = Box::pin(self.write_direct(store, row));
                write.await;
            }
            Mode::Queued {
                tx,
                policy,
                full_batch,
                wake_at,
            } => {
                let sent = match policy {
                    QueueFullPolicy::Wait => tx.send(item).await.is_ok(),
                    QueueFullPolicy::Drop => tx.try_send(item).is_ok(),
                };
                if sent {
                    self.stats.queued.fetch_add(1, Ordering::Relaxed);
                    if tx.max_capacity() - tx.capacity() >= *wake_at {
                        full_batch.notify_one();
                    }
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

    async fn write_direct(&self, store: &Store, row: NewActivity) {
        match store.insert_activity(std::slice::from_ref(&row)).await {
            Ok(()) => {
                self.stats.written.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, activity = %row.activity_type, "could not write activity row");
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

/// The writer's end of the queue.
struct Inbox {
    rx: mpsc::Receiver<Queued>,
    stop: oneshot::Receiver<()>,
    full_batch: Arc<Notify>,
}

async fn run(
    store: Store,
    inbox: Inbox,
    batch_size: usize,
    flush_interval: Duration,
    stats: Arc<Counters>,
) {
    let mut buf: Vec<Queued> = Vec::with_capacity(batch_size);
    let mut rows: Vec<NewActivity> = Vec::with_capacity(batch_size);
    let Inbox {
        mut rx,
        mut stop,
        full_batch,
    } = inbox;
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
            // Give the batch up to one interval to fill, so rows are written in groups. Rows
            // are not received one by one meanwhile (each would wake this task): the senders
            // wake it when a whole batch is waiting.
            if buf.len() < batch_size {
                tokio::select! {
                    () = tokio::time::sleep(flush_interval) => {}
                    () = full_batch.notified() => {}
                    _ = &mut stop => { stopping = true; rx.close(); }
                }
                if !rx.is_empty() {
                    let room = batch_size - buf.len();
                    rx.recv_many(&mut buf, room).await;
                }
            }
        } else {
            // Closed: drain what is left without waiting.
            if rx.recv_many(&mut buf, batch_size).await == 0 {
                break;
            }
        }
        rows.extend(buf.drain(..).map(Queued::into_row));
        write(&store, &mut rows, &stats).await;
    }
    rows.extend(buf.drain(..).map(Queued::into_row));
    write(&store, &mut rows, &stats).await;
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
