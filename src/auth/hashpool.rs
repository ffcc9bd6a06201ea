//! Password hashing threads, each with its own argon2 memory, reused while sign-ins arrive.
//!
//! Argon2 needs `m_cost` KiB of working memory per hash (19 MiB with the OWASP parameters).
//! Allocating it per hash on tokio's blocking pool left every buffer resident in glibc's heap
//! after a login flood (1.3 GB seen). Instead a fixed set of threads (as many as the hasher's
//! permits) each own one buffer of the configured size, allocated for the first hash and reused
//! for every later one; a stored hash with larger parameters (rare: an old configuration) gets
//! a temporary buffer for that one call. Memory for hashing is therefore at most
//! `threads × m_cost`, however many sign-ins arrive.
//!
//! When no hash has been asked for during [`RELEASE_AFTER`], a thread frees its buffer (it is
//! one `mmap`, so the pages go straight back) and asks the allocator to return what the burst
//! left behind (see [`return_freed_memory`]): an idle server holds no hashing memory, and the
//! connections, forms and futures of a flood do not stay resident after it. The price is one
//! allocation (a few milliseconds of page faults) on the first sign-in after a quiet spell.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::Block;

use super::password::PasswordError;

type Job = Box<dyn FnOnce(&mut [Block]) + Send>;

/// How long a hashing thread keeps its buffer without work. Long enough that a steady trickle
/// of sign-ins reuses it, short enough that memory is back soon after a flood ends.
pub const RELEASE_AFTER: Duration = Duration::from_secs(5);

/// A fixed pool of hashing threads fed by one queue. The threads end when the pool is dropped.
pub struct HashPool {
    tx: Mutex<mpsc::Sender<Job>>,
}

impl HashPool {
    /// Starts `threads` threads, each with `blocks` argon2 blocks of memory while busy.
    pub fn new(threads: usize, blocks: usize) -> Result<HashPool, PasswordError> {
        HashPool::with_release(threads, blocks, RELEASE_AFTER)
    }

    /// As [`HashPool::new`], with the idle time after which a thread frees its buffer.
    pub fn with_release(
        threads: usize,
        blocks: usize,
        release_after: Duration,
    ) -> Result<HashPool, PasswordError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("gatehouse-hash-{i}"))
                .spawn(move || worker(&rx, blocks, release_after))
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

fn worker(rx: &Mutex<mpsc::Receiver<Job>>, blocks: usize, release_after: Duration) {
    let mut buf: Option<Vec<Block>> = None;
    loop {
        let next = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            if buf.is_some() {
                rx.recv_timeout(release_after)
            } else {
                rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
            }
        };
        let job = match next {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                buf = None;
                let released = return_freed_memory();
                tracing::debug!(released, "hashing idle: argon2 memory released");
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return, // the pool was dropped
        };
        // `vec!` of zeroed blocks touches every page now, before the clock of the first hash.
        let memory = buf.get_or_insert_with(|| vec![Block::default(); blocks]);
        // A panicking job loses its answer (the caller sees `Join`), not the thread.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(memory)));
    }
}

/// Asks glibc to give the free pages of all its arenas back to the system. glibc returns
/// memory by itself only from the top of each heap, so after a burst of concurrent requests
/// (each connection's buffers and futures in some thread's arena) the freed pages below a
/// live allocation stay resident for good. Called only from an idle hashing thread: the call
/// walks and locks every arena in turn, which a request path should not pay. Elsewhere (musl,
/// other systems) the allocator returns memory itself and this does nothing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn return_freed_memory() -> bool {
    // SAFETY: `malloc_trim` takes no pointer and has no precondition; glibc serialises it
    // with every other allocator call (it is MT-safe).
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_freed_memory() -> bool {
    false
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashPool").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread that has released its buffer after a quiet spell allocates a full one again
    /// for the next hash, and a burst larger than the pool is served by the same threads.
    #[tokio::test]
    async fn buffer_comes_back_after_release() {
        let pool = HashPool::with_release(1, 8, Duration::from_millis(1)).unwrap();
        let first = pool.run(|b| b.len()).await.unwrap();
        assert_eq!(first, 8);
        // The worker times out after 1 ms and frees the buffer; the next job finds a new one.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let jobs: Vec<_> = (0..4).map(|_| pool.run(|b| b.len())).collect();
        for len in futures_util::future::join_all(jobs).await {
            assert_eq!(len.unwrap(), 8);
        }
    }
}
