//! The integration suite: one binary, one harness. Store tests run on SQLite and, when
//! `GATEHOUSE_TEST_POSTGRES_URL` is set, on PostgreSQL too (each test in a fresh schema).

// Test code may unwrap: a failure here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

mod abuse;
mod accounts;
mod admin;
mod assertion;
mod audit;
mod auth_routes;
mod boundary;
mod browser;
mod bypass;
mod cli;
mod cluster;
mod compose;
mod deadlines;
mod feed;
mod forward_auth;
mod import;
mod migrations;
mod oidc;
mod ops;
mod passkeys;
mod portal;
mod proxy;
mod transport;
mod upstream_pool;
