//! Gatehouse: an authentication reverse proxy.
//!
//! Put it in front of an unchanged web app and the app gains accounts, two-factor sign-in,
//! sessions, roles and an audit trail. Gatehouse serves its own pages under `/_auth/` and
//! forwards everything else to the app with identity headers (`X-Auth-*`) it can trust.
//!
//! Dependencies point one way: `cli`/`server` → `gateway`/`portal`/`admin` →
//! `accounts`/`session`/`audit` → `store`.

pub mod accounts;
pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod feed;
pub mod gateway;
pub mod import;
pub mod logs;
pub mod mail;
pub mod metrics;
pub mod oidc;
pub mod portal;
pub mod proxy;
pub mod server;
pub mod session;
pub mod store;
pub mod web;
