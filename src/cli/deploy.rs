//! Commands for running Gatehouse as separate services (the Docker Compose setup):
//! `gatehouse demo-app` (the demo's upstream on its own), `gatehouse demo-seed` (the demo
//! accounts and shared keys, once) and `gatehouse healthcheck` (the container's readiness
//! probe, so the runtime image needs no curl).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::{Cli, Ctx, load_settings};

#[derive(Debug, Args)]
pub struct DemoAppArgs {
    /// Address for the demo app
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// URL to probe [default: /_auth/readyz on the configured `server.listen`, over loopback]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Give up after this long
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// The path a container health check probes: ready means database reachable, schema current
/// and change feed connected.
pub const READINESS_PATH: &str = "/_auth/readyz";

/// Serves the demo upstream (what `gatehouse demo` runs in-process) until SIGINT or SIGTERM.
pub async fn demo_app(args: &DemoAppArgs) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding the demo app to {}", args.listen))?;
    tracing::info!(listen = %args.listen, "demo app listening");
    crate::demo::upstream::serve(listener, crate::server::shutdown_signal())
        .await
        .context("serving the demo app")?;
    Ok(ExitCode::SUCCESS)
}

/// Migrates, makes sure the data folder holds the keys every instance shares (when they are
/// not configured), and creates the demo accounts, printing each new password once.
pub async fn demo_seed(cli: &Cli) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::open(cli).await?;
    let s = &ctx.settings;
    crate::auth::keys::Keys::load(&s.security, &s.server.data_dir)
        .context("preparing the secret key")?;
    crate::gateway::assertion::Assertions::load(s).context("preparing the assertion key")?;
    let created = crate::demo::ensure_users(&ctx.accounts).await?;
    if created.is_empty() {
        println!("Demo accounts admin and demo exist already (passwords were shown when made)");
    } else {
        println!("Demo accounts (passwords shown once):");
        for (user, pw, what) in &created {
            println!("  {user:<6} {pw}   ({what})");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where a client on this host reaches `listen`: loopback for a wildcard address.
fn local_target(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// The URL `healthcheck` probes by default.
pub fn default_probe_url(settings: &crate::config::Settings) -> String {
    format!(
        "http://{}{READINESS_PATH}",
        local_target(settings.server.listen)
    )
}

/// Exit 0 when the probe answers 2xx, 1 otherwise (the reason on stderr).
pub async fn healthcheck(cli: &Cli, args: &HealthcheckArgs) -> anyhow::Result<ExitCode> {
    let url = match &args.url {
        Some(u) => u.clone(),
        None => {
            let settings = load_settings(cli)?;
            if settings.server.tls.is_some() {
                anyhow::bail!(
                    "server.tls is set: give the probe's https URL with --url (plain HTTP only)"
                );
            }
            default_probe_url(&settings)
        }
    };
    let uri: http::Uri = url.parse().with_context(|| format!("{url} is not a URL"))?;
    if uri.scheme() != Some(&http::uri::Scheme::HTTP) {
        anyhow::bail!("{url}: only http:// URLs can be probed");
    }
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let probe = client.get(uri);
    match tokio::time::timeout(args.timeout, probe).await {
        Ok(Ok(resp)) if resp.status().is_success() => Ok(ExitCode::SUCCESS),
        Ok(Ok(resp)) => {
            use http_body_util::BodyExt as _;
            let status = resp.status();
            let body = match tokio::time::timeout(args.timeout, resp.into_body().collect()).await {
                Ok(Ok(b)) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                _ => String::new(),
            };
            eprintln!("{url}: {status} {}", body.trim());
            Ok(ExitCode::FAILURE)
        }
        Ok(Err(e)) => {
            eprintln!("{url}: {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(_) => {
            eprintln!("{url}: no answer within {:?}", args.timeout);
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_is_probed_over_loopback() {
        let t = |s: &str| local_target(s.parse().unwrap()).to_string();
        assert_eq!(t("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(t("[::]:8080"), "[::1]:8080");
        assert_eq!(t("10.1.2.3:81"), "10.1.2.3:81");
    }
}
