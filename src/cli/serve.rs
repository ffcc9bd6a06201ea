//! `gatehouse serve` and `gatehouse demo`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::{Cli, load_settings};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address for the proxy [default: 127.0.0.1:8080, or server.listen of --config]
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Folder for the demo's database and keys [default: gatehouse-data; with --config, its
    /// server.data_dir]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

const DEMO_LISTEN: &str = "127.0.0.1:8080";
const DEMO_DATA_DIR: &str = "gatehouse-data";

pub async fn serve(cli: &Cli) -> anyhow::Result<ExitCode> {
    let settings = load_settings(cli)?;
    let running = crate::server::start(settings, crate::clock::system(), None).await?;
    // SIGHUP reads the same file, with the same overrides, again.
    let path = cli.config.clone();
    let database = cli.database.clone();
    let load = move || {
        let mut s = crate::config::load(path.as_deref())?;
        if let Some(url) = &database {
            s.database.url = url.clone();
        }
        Ok(s)
    };
    running.run_until_signal_reloading(load).await;
    Ok(ExitCode::SUCCESS)
}

pub async fn demo(cli: &Cli, args: &DemoArgs) -> anyhow::Result<ExitCode> {
    if let (Some(path), Some(_)) = (&cli.config, &args.data_dir) {
        eprintln!(
            "error: --data-dir is not used with --config: the data folder is server.data_dir of {}",
            path.display()
        );
        return Ok(ExitCode::from(2));
    }
    let upstream_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("starting the demo app")?;
    let upstream_addr = upstream_listener.local_addr()?;
    let (stop_app, app_stopped) = tokio::sync::oneshot::channel::<()>();
    let app_task = tokio::spawn(crate::demo::upstream::serve(
        upstream_listener,
        async move {
            let _ = app_stopped.await;
        },
    ));
    let settings = demo_settings(cli, args, upstream_addr)?;
    let data_dir = settings.server.data_dir.clone();
    let listen = settings.server.listen;
    let running = crate::server::start(settings, crate::clock::system(), None)
        .await
        .with_context(|| format!("starting the proxy on {listen}"))?;
    let created = crate::demo::ensure_users(&running.app.accounts).await?;
    let url = format!("http://{}/", running.local_addr);
    println!();
    println!("  Gatehouse demo is running: {url}");
    println!(
        "  The demo app behind it is on {upstream_addr}; data is in {}",
        data_dir.display()
    );
    println!();
    if created.is_empty() {
        println!("  Demo accounts: admin, demo (passwords were printed when they were created;");
        println!(
            "  set new ones with: gatehouse --database sqlite://{}/gatehouse.db user set-password demo)",
            data_dir.display()
        );
    } else {
        println!("  Sign in with (shown once):");
        for (user, pw, what) in &created {
            println!("    {user:<6} {pw}   ({what})");
        }
    }
    println!();
    println!(
        "  Try {url} (public), {url}app/ (signed in), {url}admin/ (role admin), {url}premium/ (premium tier)."
    );
    println!("  Press Ctrl-C to stop.");
    println!();
    running.run_until_signal().await;
    let _ = stop_app.send(());
    let _ = app_task.await;
    Ok(ExitCode::SUCCESS)
}

/// The demo's own configuration; or, with `--config` (or `GATEHOUSE_CONFIG`), that file's with
/// the demo app as its upstream and the demo's routes where the file has none.
fn demo_settings(
    cli: &Cli,
    args: &DemoArgs,
    upstream: SocketAddr,
) -> anyhow::Result<crate::config::Settings> {
    let fallback_listen = || {
        DEMO_LISTEN
            .parse::<SocketAddr>()
            .context("the demo's address")
    };
    let Some(path) = &cli.config else {
        let listen = args.listen.map_or_else(fallback_listen, Ok)?;
        let data_dir = args
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEMO_DATA_DIR));
        return Ok(crate::demo::settings(
            listen,
            &data_dir,
            upstream,
            cli.database.as_deref(),
        )?);
    };
    let base = load_settings(cli).with_context(|| format!("reading {}", path.display()))?;
    let demo = crate::demo::settings(
        args.listen.unwrap_or(base.server.listen),
        &base.server.data_dir,
        upstream,
        None,
    )?;
    Ok(crate::demo::over_config(base, demo, args.listen))
}
