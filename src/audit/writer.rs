use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::request::RowText;
use super::{ActivityEvent, ActivityKind, RequestActivity};
use crate::config::{AuditSettings, QueueFullPolicy};
use crate::store::{
    ActivityFilter, ActivityInserter, ActivityRef, ActivityRow, NewActivity, SqliteActivityWriter,
    Store, StoreError, UserId,
};

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
            Sink::new(&store),
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
    ///
    /// Not an `async fn`: with room in the queue, as in steady state, the record is queued
    /// here and the future has nothing to do. Only a full queue under `on_full = "wait"`, or a
    /// direct writer, leaves a wait, boxed, so that the 288-byte record and the channel's send
    /// are not carried in every proxied request's future.
    pub fn record_request(&self, r: RequestActivity) -> impl Future<Output = ()> + Send + '_ {
        let wait = self
            .try_queue(Queued::Request(r))
            .map(|item| Box::pin(self.send(item)));
        async move {
            if let Some(wait) = wait {
                wait.await;
            }
        }
    }

    async fn send(&self, item: Queued) {
        let Some(item) = self.try_queue(item) else {
            return;
        };
        match &self.mode {
            Mode::Direct(store) => {
                let row = item.into_row();
                // Boxed (in a statement of its own, see `SessionService::lookup`): a database
                // write is a large future, and this one (short-lived processes only) would
                // otherwise size every caller's future.
                let write = Box::pin(self.write_direct(store, row));
                write.await;
            }
            Mode::Queued { tx, .. } => match tx.send(item).await {
                Ok(()) => self.queued(),
                Err(_) => self.dropped(),
            },
        }
    }

    /// Queues `item` if the queue has room, or counts it dropped under `on_full = "drop"` (or
    /// when the writer is gone). Gives `item` back when it must be waited for: a direct
    /// writer, or a full queue under `on_full = "wait"`.
    fn try_queue(&self, item: Queued) -> Option<Queued> {
        let Mode::Queued { tx, policy, .. } = &self.mode else {
            return Some(item);
        };
        match tx.try_send(item) {
            Ok(()) => self.queued(),
            Err(mpsc::error::TrySendError::Full(item)) if *policy == QueueFullPolicy::Wait => {
                return Some(item);
            }
            Err(_) => self.dropped(),
        }
        None
    }

    fn queued(&self) {
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        if let Mode::Queued {
            tx,
            full_batch,
            wake_at,
            ..
        } = &self.mode
            && tx.max_capacity() - tx.capacity() >= *wake_at
        {
            full_batch.notify_one();
        }
    }

    fn dropped(&self) {
        let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        // Log the first drop and then every 1000th, so a flood does not flood the log too.
        if n == 1 || n.is_multiple_of(1000) {
            tracing::warn!(
                dropped_total = n,
                "activity queue full or closed: row dropped"
            );
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
    mut sink: Sink,
    inbox: Inbox,
    batch_size: usize,
    flush_interval: Duration,
    stats: Arc<Counters>,
) {
    let mut buf: Vec<Queued> = Vec::with_capacity(batch_size);
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
        // Behind when another whole batch is already waiting: then the thread writes without
        // offering its core between statements (see `ActivityInserter::insert`).
        let behind = rx.len() >= batch_size;
        sink.write(&mut buf, behind, &stats).await;
    }
    sink.write(&mut buf, false, &stats).await;
}

/// Where the writer's batches go.
enum Sink {
    /// Through the pool (PostgreSQL, or a SQLite store without a file).
    Pool {
        store: Store,
        rows: Vec<NewActivity>,
    },
    /// A thread of its own with its own connection (a file-backed SQLite store).
    Thread(std::sync::mpsc::Sender<Job>),
}

/// A batch for the writer's thread; it answers with the batch (emptied when written, for its
/// allocation to be reused) and the outcome.
struct Job {
    batch: Vec<Queued>,
    /// Another whole batch was already waiting when this one was taken.
    behind: bool,
    done: oneshot::Sender<(Vec<Queued>, Result<(), StoreError>)>,
}

impl Sink {
    fn new(store: &Store) -> Sink {
        let pool = || Sink::Pool {
            store: store.clone(),
            rows: Vec::new(),
        };
        let writer = match store.sqlite_activity_writer() {
            None => return pool(),
            Some(Ok(w)) => w,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "activity writer: no connection of its own; writing through the pool");
                return pool();
            }
        };
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("gatehouse-audit".into())
            .spawn(move || write_thread(writer, rx));
        match spawned {
            Ok(_) => Sink::Thread(tx),
            Err(e) => {
                tracing::warn!(error = %e, "activity writer: no thread; writing through the pool");
                pool()
            }
        }
    }

    /// Writes `buf`, retrying a failed batch a few times; empties it either way (rows that
    /// could not be written are counted as dropped and logged).
    async fn write(&mut self, buf: &mut Vec<Queued>, behind: bool, stats: &Counters) {
        if buf.is_empty() {
            return;
        }
        let n = buf.len() as u64;
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=5 {
            let result = match self {
                Sink::Pool { store, rows } => {
                    if rows.is_empty() {
                        rows.extend(buf.drain(..).map(Queued::into_row));
                    }
                    let r = store.insert_activity(rows).await;
                    if r.is_ok() {
                        rows.clear();
                    }
                    r
                }
                Sink::Thread(tx) => match on_thread(tx, buf, behind).await {
                    Some(r) => r,
                    None => {
                        tracing::error!(rows = n, "activity writer thread is gone; batch lost");
                        stats.dropped.fetch_add(n, Ordering::Relaxed);
                        buf.clear();
                        return;
                    }
                },
            };
            match result {
                Ok(()) => {
                    stats.written.fetch_add(n, Ordering::Relaxed);
                    buf.clear();
                    return;
                }
                Err(e) if attempt < 5 => {
                    tracing::warn!(error = %e, rows = n, attempt, "activity batch failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                }
                Err(e) => {
                    stats.dropped.fetch_add(n, Ordering::Relaxed);
                    tracing::error!(error = %e, rows = n, "activity batch lost after retries");
                    buf.clear();
                    if let Sink::Pool { rows, .. } = self {
                        rows.clear();
                    }
                }
            }
        }
    }
}

/// Has the writer's thread write `buf`, which comes back (emptied if written); `None` if the
/// thread is gone with the batch.
async fn on_thread(
    tx: &std::sync::mpsc::Sender<Job>,
    buf: &mut Vec<Queued>,
    behind: bool,
) -> Option<Result<(), StoreError>> {
    let (done, answer) = oneshot::channel();
    let batch = std::mem::take(buf);
    if let Err(std::sync::mpsc::SendError(job)) = tx.send(Job {
        batch,
        behind,
        done,
    }) {
        *buf = job.batch;
        return None;
    }
    let (batch, r) = answer.await.ok()?;
    *buf = batch;
    Some(r)
}

fn write_thread(mut writer: SqliteActivityWriter, jobs: std::sync::mpsc::Receiver<Job>) {
    let mut text = RowText::default();
    while let Ok(Job {
        mut batch,
        behind,
        done,
    }) = jobs.recv()
    {
        let r = writer.write_batch(batch.len(), !behind, |ins| {
            insert_all(ins, &batch, &mut text)
        });
        if r.is_ok() {
            batch.clear();
        }
        let _ = done.send((batch, r));
    }
}

fn insert_all(
    ins: &mut ActivityInserter<'_>,
    batch: &[Queued],
    text: &mut RowText,
) -> Result<(), StoreError> {
    for item in batch {
        match item {
            Queued::Row(r) => {
                text.created_at = r.created_at.to_sqlite_text();
                ins.insert(ActivityRef {
                    user_id: r.user_id.map(|u| u.0),
                    activity_type: &r.activity_type,
                    description: r.description.as_deref(),
                    ip_address: r.ip_address.as_deref(),
                    user_agent: r.user_agent.as_deref(),
                    metadata: r.metadata.as_deref().map(serde_json::value::RawValue::get),
                    created_at: &text.created_at,
                })?;
            }
            Queued::Request(r) => {
                r.fill(text);
                ins.insert(ActivityRef {
                    user_id: Some(r.user_id().0),
                    activity_type: ActivityKind::Request.as_str(),
                    description: Some(&text.description),
                    ip_address: Some(&text.ip),
                    user_agent: r.user_agent(),
                    metadata: text.metadata(),
                    created_at: &text.created_at,
                })?;
            }
        }
    }
    Ok(())
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
            // With the drop policy neither kind of record ever awaits the queue.
            if i % 2 == 0 {
                log.record(event(i)).await;
            } else {
                log.record_request(request_record(i as u64)).await;
            }
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
                    if i % 2 == 0 {
                        log.record(event(t * 1000 + i)).await;
                    } else {
                        log.record_request(request_record(i as u64)).await;
                    }
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

    // A current-thread runtime: every row is queued before the writer first runs, so it starts
    // many batches behind (and writes them without offering its core) while still serving.
    #[tokio::test(flavor = "current_thread")]
    async fn a_writer_many_batches_behind_writes_every_row() {
        let (_dir, store) = store().await;
        let (log, writer) = AuditLog::spawn(store.clone(), &settings(4096, QueueFullPolicy::Wait));
        // Unconstrained: with a cooperative budget, a send would yield now and then.
        tokio::task::unconstrained(async {
            for i in 0..2000 {
                log.record(event(i)).await;
            }
        })
        .await;
        assert_eq!(log.stats().written, 0, "the writer has not run yet");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while log.stats().written < 2000 {
            assert!(tokio::time::Instant::now() < deadline, "{:?}", log.stats());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(store.count_activity(Some("request")).await.unwrap(), 2000);
        writer.shutdown().await;
        let st = log.stats();
        assert_eq!((st.queued, st.written, st.dropped), (2000, 2000, 0));
    }

    fn request_record(i: u64) -> RequestActivity {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::USER_AGENT, "bench/1".parse().unwrap());
        let ctx = crate::web::RequestCtx::new(
            "192.0.2.7:4000".parse().unwrap(),
            false,
            &h,
            &[],
            &http::HeaderName::from_static("x-request-id"),
        );
        RequestActivity::new(
            UserId(1),
            Ts(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap()),
            &ctx,
            crate::audit::RequestFacts {
                method: &http::Method::GET,
                path: &format!("/app/{i}"),
                route: Some("/app/**"),
                status: 200,
                elapsed: Duration::from_micros(100),
            },
        )
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_direct_log_has_written_a_request_record_when_it_returns() {
        let (_dir, store) = store().await;
        let log = AuditLog::direct(store.clone());
        log.record_request(request_record(0)).await;
        assert_eq!(store.count_activity(Some("request")).await.unwrap(), 1);
        assert_eq!(log.stats().written, 1);
    }

    /// The writer's own connection (a file-backed SQLite store) stores a request row exactly
    /// as the pool path does, across batch sizes that need statements of several lengths.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn own_connection_writes_what_the_pool_writes() {
        use crate::audit::RequestFacts;
        use crate::web::RequestCtx;
        let (_dir, store) = store().await;
        let mut h = http::HeaderMap::new();
        h.insert(http::header::USER_AGENT, "bench/1 (x11)".parse().unwrap());
        let ctx = RequestCtx::new(
            "192.0.2.7:4000".parse().unwrap(),
            false,
            &h,
            &[],
            &http::HeaderName::from_static("x-request-id"),
        );
        let at = Ts(chrono::DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap());
        let user = UserId(7);
        store
            .insert_activity(&[NewActivity {
                user_id: None,
                activity_type: "probe".into(),
                description: None,
                ip_address: None,
                user_agent: None,
                metadata: None,
                created_at: at,
            }])
            .await
            .unwrap();
        let request = |i: u64| {
            RequestActivity::new(
                user,
                at,
                &ctx,
                RequestFacts {
                    method: &http::Method::PATCH,
                    path: &format!("/app/caf\u{e9}/{i}"),
                    route: Some("/app/**"),
                    status: 204,
                    elapsed: Duration::from_micros(1500 + i),
                },
            )
        };
        // Both paths link a row to its user only if the user exists.
        sqlx_user(&store, 7).await;
        let mut s = settings(1000, QueueFullPolicy::Wait);
        s.batch_size = 173; // 5 × 32 + 8 + 5 × 1
        let (log, writer) = AuditLog::spawn(store.clone(), &s);
        for i in 0..173 {
            log.record_request(request(i)).await;
        }
        writer.shutdown().await;
        assert_eq!(log.stats().written, 173);
        store
            .insert_activity(&[request(0).into_row()])
            .await
            .unwrap();
        let rows = store
            .list_activity(&ActivityFilter {
                user_id: Some(user),
                limit: 1000,
                ..ActivityFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(rows.len(), 174);
        // Newest first: the pool's row, then the thread's row for the same request.
        let strip = |r: &ActivityRow| {
            let mut v = serde_json::to_value(r).unwrap();
            v.as_object_mut().unwrap().remove("id");
            v
        };
        let thread_row = rows.iter().find(|r| {
            r.activity_description.as_deref() == Some("PATCH /app/caf\u{e9}/0 → 204")
                && r.id != rows[0].id
        });
        assert_eq!(strip(&rows[0]), strip(thread_row.unwrap()));
        let meta = rows[0].metadata.as_ref().unwrap();
        assert_eq!(meta.0["duration_ms"], 1.5);
        assert_eq!(rows[0].user_agent.as_deref(), Some("bench/1 (x11)"));
        assert_eq!(rows[0].ip_address.as_deref(), Some("192.0.2.7"));
        assert_eq!(rows[0].created_at, at);
    }

    async fn sqlx_user(store: &Store, id: i64) {
        let crate::store::Pool::Sqlite(p) = &store.pool else {
            return;
        };
        sqlx::query(
            "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) \
             VALUES ($1, 'u7', 'u7@example.com', 'x', '2024-01-01T00:00:00.000000Z', \
             '2024-01-01T00:00:00.000000Z')",
        )
        .bind(id)
        .execute(p)
        .await
        .unwrap();
    }
}
