//! Command-line interface: `gatehouse <noun> <verb>`.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error (clap's own, and ours for bad arguments).
//! `--json` output is a stable contract documented in the README.

pub mod deploy;
mod import;
mod output;
mod role;
mod serve;
mod token;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::accounts::Accounts;
use crate::audit::AuditLog;
use crate::auth::PasswordHasher;
use crate::config::Settings;
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Authentication reverse proxy: accounts, 2FA, sessions, roles and an audit trail in front of an unchanged web app"
)]
pub struct Cli {
    /// Config file [default: ./gatehouse.toml if present, else built-in defaults]
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Database URL (sqlite://PATH or postgres://...), overriding [database] url
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database: Option<String>,
    /// Log filter, e.g. "info" or "gatehouse=debug"
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_LOG",
        default_value = crate::logs::DEFAULT_FILTER,
        value_parser = crate::logs::parse_filter
    )]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (applies migrations first)
    Serve,
    /// Run a self-contained demo: proxy, demo app, example routes and accounts
    Demo(serve::DemoArgs),
    /// Create or update the database schema
    Migrate,
    /// Manage user accounts
    #[command(subcommand)]
    User(user::UserCommand),
    /// Grant, revoke and list roles
    #[command(subcommand)]
    Role(role::RoleCommand),
    /// Create, list and revoke API tokens for the admin API
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Validate the configuration and print a summary
    CheckConfig,
    /// Import users from an existing app's `leads` table
    ImportLeads(import::ImportArgs),
    /// Serve the demo app on its own (the upstream `gatehouse demo` runs in-process)
    DemoApp(deploy::DemoAppArgs),
    /// Migrate, prepare the shared keys in the data folder and create the demo accounts
    DemoSeed,
    /// Probe the readiness endpoint (/_auth/readyz); exit 0 when ready. For container health checks
    Healthcheck(deploy::HealthcheckArgs),
}

/// Logs to stderr in `[log] format`. The config is read here only for that key; an invalid
/// file is reported (with every problem) by the command itself, in the default format.
pub fn init_tracing(cli: &Cli) {
    let format = crate::config::load(cli.config.as_deref())
        .map(|s| s.log.format)
        .unwrap_or_default();
    // Colour only for a person at a terminal: journald, `docker logs` and files would keep the
    // escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    crate::logs::init(
        &cli.log,
        matches!(format, crate::config::LogFormat::Json),
        ansi,
    );
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::CheckConfig => check_config(&cli),
        Command::Serve => serve::serve(&cli).await,
        Command::Demo(args) => serve::demo(&cli, args).await,
        Command::Migrate => {
            let ctx = Ctx::open(&cli).await?;
            println!(
                "database {} is up to date",
                crate::store::mask_url(&ctx.settings.database.url)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::User(cmd) => user::run(&Ctx::open(&cli).await?, cmd).await,
        Command::Role(cmd) => role::run(&Ctx::open(&cli).await?, cmd).await,
        Command::Token(cmd) => token::run(&Ctx::open(&cli).await?, cmd).await,
        Command::ImportLeads(args) => import::run(&cli, args).await,
        Command::DemoApp(args) => deploy::demo_app(args).await,
        Command::DemoSeed => deploy::demo_seed(&cli).await,
        Command::Healthcheck(args) => deploy::healthcheck(&cli, args).await,
    }
}

/// Loads settings, applying `--database` over the file and environment.
pub fn load_settings(cli: &Cli) -> anyhow::Result<Settings> {
    let mut settings = crate::config::load(cli.config.as_deref())?;
    if let Some(url) = &cli.database {
        if crate::store::Backend::of_url(url).is_none() {
            anyhow::bail!(
                "--database {} is not a sqlite:// or postgres:// URL",
                crate::store::mask_url(url)
            );
        }
        settings.database.url = url.clone();
    }
    Ok(settings)
}

fn check_config(cli: &Cli) -> anyhow::Result<ExitCode> {
    let s = load_settings(cli)?;
    for w in &s.warnings {
        println!("warning: {w}");
    }
    println!("configuration is valid");
    println!(
        "  listen:    {}{}",
        s.server.listen,
        if s.server.tls.is_some() { " (TLS)" } else { "" }
    );
    println!("  upstream:  {}", s.upstream.url);
    println!("  database:  {}", crate::store::mask_url(&s.database.url));
    println!(
        "  routes:    {} (unmatched paths: {})",
        s.routes.len(),
        s.server.default_access.as_str()
    );
    Ok(ExitCode::SUCCESS)
}

/// What a database command needs: settings, an open (migrated) store and the accounts service.
pub struct Ctx {
    pub settings: Settings,
    pub store: Store,
    pub accounts: Accounts,
}

impl Ctx {
    pub async fn open(cli: &Cli) -> anyhow::Result<Ctx> {
        let settings = load_settings(cli)?;
        let store = Store::connect(&settings.database.url, 2).await?;
        store.migrate().await.with_context(|| {
            format!(
                "migrating {}",
                crate::store::mask_url(&settings.database.url)
            )
        })?;
        let hasher =
            PasswordHasher::new(settings.security.argon2, settings.security.hash_concurrency)?;
        let accounts = Accounts::new(
            store.clone(),
            hasher,
            crate::clock::system(),
            AuditLog::direct(store.clone()),
            settings.security.clone(),
        );
        Ok(Ctx {
            settings,
            store,
            accounts,
        })
    }
}
