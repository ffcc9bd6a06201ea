//! Test harness: databases on both backends, accounts with fast hashing, the real CLI binary
//! ([`cli`]), and optional services that skip with a note or fail when required ([`optional`]).

#![allow(dead_code, unused_imports)]

pub mod cli;
pub mod db;
pub mod mail;
pub mod optional;
pub mod otp;
pub mod server;
pub mod tls;

pub use cli::Cli;
pub use db::{Backend, TestDb};
pub use optional::{note_skipped, python_imports, skip_or_require};
pub use server::{Browser, PASSWORD, Resp, TestServer};

use std::sync::Arc;

use gatehouse::accounts::Accounts;
use gatehouse::audit::AuditLog;
use gatehouse::auth::PasswordHasher;
use gatehouse::clock::ManualClock;
use gatehouse::config::{Argon2Params, SecuritySettings};
use gatehouse::store::Store;

/// Argon2 parameters small enough that tests hash in microseconds.
pub const FAST_ARGON2: Argon2Params = Argon2Params {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

/// TOML that makes a server or CLI hash quickly.
pub const FAST_HASH_TOML: &str = "[security]\nargon2_memory_kib = 64\nargon2_iterations = 1\n";

pub fn security_settings() -> SecuritySettings {
    let mut s = gatehouse::config::from_toml(FAST_HASH_TOML)
        .expect("test config is valid")
        .security;
    s.argon2 = FAST_ARGON2;
    s
}

/// An accounts service over a fresh database, with a clock the test moves.
pub struct AccountsFixture {
    pub db: TestDb,
    pub store: Store,
    pub clock: Arc<ManualClock>,
    pub accounts: Accounts,
}

impl AccountsFixture {
    pub async fn new(backend: Backend) -> Option<AccountsFixture> {
        let db = TestDb::new(backend).await?;
        let store = Store::connect(&db.url, 4).await.expect("connect");
        store.migrate().await.expect("migrate");
        let clock = Arc::new(ManualClock::starting_now());
        let accounts = Accounts::new(
            store.clone(),
            PasswordHasher::new(FAST_ARGON2, 4).expect("hasher"),
            clock.clone(),
            AuditLog::direct(store.clone()),
            security_settings(),
        );
        Some(AccountsFixture {
            db,
            store,
            clock,
            accounts,
        })
    }
}

/// For each `async fn name(Backend)`, declares tests `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::harness::Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if $crate::harness::db::postgres_url().is_some() {
                        super::$name($crate::harness::Backend::Postgres).await;
                    }
                }
            }
        )+
    };
}
