//! Password hashing threads, each with its own argon2 memory, allocated once.
//!
//! Argon2 needs `m_cost` KiB of working memory per hash (19 MiB with the OWASP parameters).
//! Allocating it per hash on tokio's blocking pool left every buffer resident in glibc's heap
//! after a login flood (the issue saw 1.3 GB). Instead a fixed set of threads (as many as the
//! hasher's permits) each own one buffer of the configured size, allocated when the thread
//! starts and reused for every hash; a stored hash with larger parameters (rare: an old
//! configuration) gets a temporary buffer for that one call. Memory for hashing is therefore
//! `threads × m_cost`, fixed at start, however many sign-ins arrive.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use argon2::Block;

use super::password::PasswordError;

type Job = Box<dyn FnOnce(&mut [Block]) + Send>;

/// A fixed pool of hashing threads fed by one queue. The threads end when the pool is dropped.
pub struct HashPool {
    tx: Mutex<mpsc::Sender<Job>>,
}

impl HashPool {
    /// Starts `threads` threads, each with `blocks` argon2 blocks of memory.
    pub fn new(threads: usize, blocks: usize) -> Result<HashPool, PasswordError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("gatehouse-hash-{i}"))
                .spawn(move || worker(&rx, blocks))
                .map_err(|e| PasswordError::Hash(format!("cannot start a hashing thread: {e}")))?;
        }
        Ok(HashPool { tx: Mutex::new(tx) })
    }

    /// Runs `f` on a hashing thread with that thread's buffer.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |blocks| {
            let _ = done.send(f(blocks));
        });
        self.tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job)
            .map_err(|_| PasswordError::Join)?;
        result.await.map_err(|_| PasswordError::Join)
    }
}

fn worker(rx: &Mutex<mpsc::Receiver<Job>>, blocks: usize) {
    // Touch the whole buffer now, so the memory is resident (and counted) from the start
    // instead of growing during the first flood.
    let mut buf = vec![Block::default(); blocks];
    loop {
        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(job) = job else {
            return; // the pool was dropped
        };
        // A panicking job loses its answer (the caller sees `Join`), not the thread.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut buf)));
    }
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashPool").finish_non_exhaustive()
    }
}
