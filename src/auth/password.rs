//! Password hashing (argon2id), verification of stored hashes old and new, and the policy for
//! new passwords.
//!
//! Hashing is deliberately slow, so it runs on a few dedicated threads behind a semaphore: a
//! burst of sign-ins queues (as waiting futures, no memory each) instead of starving the async
//! workers that move proxy traffic. Policy: `security.hash_concurrency` threads, by default one
//! fewer than the cores (at least one), so hashing never takes every core from proxying; each
//! thread reuses one argon2 buffer ([`super::hashpool`]), so memory stays bounded under a flood.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

use super::hashpool::HashPool;
use super::{common_passwords, legacy};
use crate::config::{Argon2Params, Secret};

/// Longest password accepted; long enough for any passphrase, short enough to bound hashing cost.
pub const MAX_PASSWORD_CHARS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password hashing task failed")]
    Join,
}

/// Why a new password is refused. The messages are shown to the person choosing it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("password must be at least {0} characters long")]
    TooShort(usize),
    #[error("password must be at most {MAX_PASSWORD_CHARS} characters long")]
    TooLong,
    #[error("password is one of the most commonly used passwords; choose another")]
    Common,
    #[error("password must not be the same as the username or email")]
    SameAsIdentity,
}

/// Checks a new password: length only (no composition rules), not a common password, not the
/// account's own name.
pub fn check_policy(
    password: &str,
    min_chars: usize,
    identities: &[&str],
) -> Result<(), PolicyError> {
    let n = password.chars().count();
    if n < min_chars {
        return Err(PolicyError::TooShort(min_chars));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(PolicyError::TooLong);
    }
    if common_passwords::is_common(password) {
        return Err(PolicyError::Common);
    }
    if identities
        .iter()
        .any(|i| !i.is_empty() && i.eq_ignore_ascii_case(password))
    {
        return Err(PolicyError::SameAsIdentity);
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// Correct. `upgrade` says the stored hash should be replaced by a fresh argon2id hash
    /// (legacy format or outdated parameters).
    Match {
        upgrade: bool,
    },
    Mismatch,
}

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    pool: Arc<HashPool>,
    /// A real hash of a random password, verified for unknown users so that "no such user"
    /// takes as long as "wrong password".
    dummy: Arc<String>,
    /// Verifications against a real stored hash (not the dummy), for
    /// `gatehouse_password_verifications_total`: how many guesses were actually checked.
    verifications: Arc<AtomicU64>,
    /// `gatehouse_password_hash_duration_seconds`: the hashing work itself, queueing excluded.
    hash_seconds: prometheus_client::metrics::histogram::Histogram,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .finish()
    }
}

impl PasswordHasher {
    pub fn new(p: Argon2Params, concurrency: usize) -> Result<Self, PasswordError> {
        let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None)
            .map_err(|e| PasswordError::Params(e.to_string()))?;
        let dummy = hash_with(&params, &super::bearer::random_token(), &mut [])?;
        let concurrency = concurrency.max(1);
        Ok(PasswordHasher {
            pool: Arc::new(HashPool::new(concurrency, params.block_count())?),
            params,
            permits: Arc::new(Semaphore::new(concurrency)),
            dummy: Arc::new(dummy),
            verifications: Arc::new(AtomicU64::new(0)),
            hash_seconds: prometheus_client::metrics::histogram::Histogram::new(
                crate::metrics::HASH_BUCKETS,
            ),
        })
    }

    pub async fn hash(&self, password: &Secret<String>) -> Result<String, PasswordError> {
        let params = self.params.clone();
        let pw = password.clone();
        self.run(move |blocks| hash_with(&params, pw.expose(), blocks))
            .await?
    }

    /// Verifies `password` against a stored hash. A missing or unrecognisable hash verifies
    /// the dummy instead and reports a mismatch, so the caller cannot tell the cases apart.
    pub async fn verify(
        &self,
        stored: Option<&str>,
        password: &Secret<String>,
    ) -> Result<Verified, PasswordError> {
        let params = self.params.clone();
        let dummy = self.dummy.clone();
        let stored = stored.map(str::to_string);
        let pw = password.clone();
        let (verified, real) = self
            .run(move |blocks| {
                verify_blocking(&params, &dummy, stored.as_deref(), pw.expose(), blocks)
            })
            .await?;
        if real {
            self.verifications.fetch_add(1, Ordering::Relaxed);
        }
        Ok(verified)
    }

    /// How many passwords have been checked against a real stored hash since start.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// How long each hash or verification took, for `/_auth/metrics`.
    pub fn hash_seconds(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.hash_seconds.clone()
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Join)?;
        let timing = self.hash_seconds.clone();
        self.pool
            .run(move |blocks| {
                let started = std::time::Instant::now();
                let out = f(blocks);
                timing.observe(started.elapsed().as_secs_f64());
                out
            })
            .await
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

/// Runs argon2 into `out` with `blocks` as its memory: the thread's buffer when it is large
/// enough, else a temporary one (a stored hash with larger parameters than configured).
fn argon2_into(
    a: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    blocks: &mut [Block],
) -> Result<(), argon2::Error> {
    let need = params.block_count();
    if blocks.len() >= need {
        a.hash_password_into_with_memory(password, salt, out, &mut blocks[..need])
    } else {
        let mut temp = vec![Block::default(); need];
        a.hash_password_into_with_memory(password, salt, out, &mut temp[..])
    }
}

/// A new argon2id hash in PHC string form, computed in `blocks`.
fn hash_with(
    params: &Params,
    password: &str,
    blocks: &mut [Block],
) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    let mut out = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    argon2_into(
        &argon2(params),
        params,
        password.as_bytes(),
        salt_raw,
        &mut out,
        blocks,
    )
    .map_err(|e| PasswordError::Hash(e.to_string()))?;
    let output = Output::new(&out).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        salt.as_str(),
        output
    ))
}

/// Verifies against a parsed argon2 hash with the parameters recorded in it, in `blocks`.
/// `None`: the hash cannot be used (unknown variant, bad parameters).
fn argon2_matches(h: &PasswordHash<'_>, password: &str, blocks: &mut [Block]) -> Option<bool> {
    let algorithm = Algorithm::try_from(h.algorithm).ok()?;
    let version = match h.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(h).ok()?;
    let expected = h.hash?;
    let mut salt_bytes = [0u8; 64];
    let salt = h.salt?.decode_b64(&mut salt_bytes).ok()?;
    let mut out = vec![0u8; expected.len()];
    let a = Argon2::new(algorithm, version, params.clone());
    argon2_into(&a, &params, password.as_bytes(), salt, &mut out, blocks).ok()?;
    // `Output`'s equality is constant-time.
    Some(Output::new(&out).ok()? == expected)
}

/// Returns the outcome and whether a real stored hash was checked (false: only the dummy).
fn verify_blocking(
    params: &Params,
    dummy: &str,
    stored: Option<&str>,
    password: &str,
    blocks: &mut [Block],
) -> (Verified, bool) {
    let burn_dummy = |blocks: &mut [Block]| {
        if let Ok(h) = PasswordHash::new(dummy) {
            let _ = argon2_matches(&h, password, blocks);
        }
        (Verified::Mismatch, false)
    };
    let Some(stored) = stored else {
        return burn_dummy(blocks);
    };
    if stored.starts_with("$argon2") {
        let Ok(h) = PasswordHash::new(stored) else {
            tracing::warn!("stored argon2 hash is malformed");
            return burn_dummy(blocks);
        };
        // Verify with the parameters recorded in the hash itself, not the current ones.
        let verified = match argon2_matches(&h, password, blocks) {
            Some(true) => Verified::Match {
                upgrade: outdated(&h, params),
            },
            Some(false) => Verified::Mismatch,
            None => {
                tracing::warn!("stored argon2 hash cannot be verified");
                return burn_dummy(blocks);
            }
        };
        return (verified, true);
    }
    if legacy::is_werkzeug_hash(stored) {
        return match legacy::verify_werkzeug(stored, password) {
            Ok(true) => (Verified::Match { upgrade: true }, true),
            Ok(false) => (Verified::Mismatch, true),
            Err(e) => {
                tracing::warn!(error = %e, "stored legacy hash cannot be verified");
                burn_dummy(blocks)
            }
        };
    }
    burn_dummy(blocks)
}

fn outdated(h: &PasswordHash<'_>, want: &Params) -> bool {
    if h.algorithm.as_str() != "argon2id" {
        return true;
    }
    match Params::try_from(h) {
        Ok(p) => {
            p.m_cost() != want.m_cost()
                || p.t_cost() != want.t_cost()
                || p.p_cost() != want.p_cost()
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> PasswordHasher {
        PasswordHasher::new(
            Argon2Params {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            2,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn argon2id_round_trip() {
        let h = fast();
        let pw = Secret::new("correct horse battery staple".to_string());
        let stored = h.hash(&pw).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            h.verify(Some(&stored), &pw).await.unwrap(),
            Verified::Match { upgrade: false }
        );
        let wrong = Secret::new("wrong".to_string());
        assert_eq!(
            h.verify(Some(&stored), &wrong).await.unwrap(),
            Verified::Mismatch
        );
    }

    /// Hashes made in a reused buffer are standard PHC strings, and standard ones verify here.
    #[tokio::test]
    async fn buffer_reuse_agrees_with_the_stock_argon2() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let h = fast();
        let pw = Secret::new("correct horse battery staple".to_string());
        for _ in 0..3 {
            let ours = h.hash(&pw).await.unwrap();
            let parsed = PasswordHash::new(&ours).unwrap();
            assert!(
                Argon2::default()
                    .verify_password(pw.expose().as_bytes(), &parsed)
                    .is_ok()
            );
        }
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let params = Params::new(128, 2, 1, None).unwrap();
        let stock = argon2(&params)
            .hash_password(pw.expose().as_bytes(), &salt)
            .unwrap()
            .to_string();
        // Larger than the pool's buffer (64 KiB): verified in a temporary one.
        assert_eq!(
            h.verify(Some(&stock), &pw).await.unwrap(),
            Verified::Match { upgrade: true }
        );
        let wrong = Secret::new("wrong".to_string());
        assert_eq!(
            h.verify(Some(&stock), &wrong).await.unwrap(),
            Verified::Mismatch
        );
        assert_eq!(h.verifications(), 2);
    }

    #[tokio::test]
    async fn outdated_params_ask_for_upgrade() {
        let old = fast();
        let pw = Secret::new("correct horse battery staple".to_string());
        let stored = old.hash(&pw).await.unwrap();
        let new = PasswordHasher::new(
            Argon2Params {
                memory_kib: 128,
                iterations: 1,
                parallelism: 1,
            },
            1,
        )
        .unwrap();
        assert_eq!(
            new.verify(Some(&stored), &pw).await.unwrap(),
            Verified::Match { upgrade: true }
        );
    }

    #[tokio::test]
    async fn missing_and_garbage_hashes_mismatch() {
        let h = fast();
        let pw = Secret::new("anything at all".to_string());
        for stored in [
            None,
            Some(""),
            Some("$argon2id$garbage"),
            Some("pbkdf2:sha256:x$y$z"),
            Some("nonsense"),
        ] {
            assert_eq!(
                h.verify(stored, &pw).await.unwrap(),
                Verified::Mismatch,
                "{stored:?}"
            );
        }
    }

    #[test]
    fn policy() {
        assert_eq!(
            check_policy("short", 12, &[]),
            Err(PolicyError::TooShort(12))
        );
        assert_eq!(
            check_policy(&"x".repeat(2000), 12, &[]),
            Err(PolicyError::TooLong)
        );
        assert!(check_policy(&"y".repeat(128), 12, &[]).is_ok());
        assert_eq!(
            check_policy("alice-the-great", 12, &["Alice-The-Great"]),
            Err(PolicyError::SameAsIdentity)
        );
        assert!(check_policy("correct horse battery staple", 12, &["alice"]).is_ok());
        // Composition rules are not imposed: a long lowercase phrase is fine.
        assert!(check_policy("ilikeeatingsoupinwinter", 12, &[]).is_ok());
    }
}
