//! The Docker Compose setup (`docker-compose.yml`, `Dockerfile`, `config/compose/`) agrees with
//! Gatehouse's own settings: `docker-compose config` accepts the file, and the Gatehouse config
//! it mounts, loaded by Gatehouse's loader with the environment compose gives each instance,
//! listens where the load balancer sends traffic, reaches the compose PostgreSQL and demo app,
//! shares one secret key across the instances, and has the demo's routes.
//!
//! Needs the `docker-compose` binary (Debian package `docker-compose`; no Docker engine): without
//! it the compose checks are skipped with a note, unless `GATEHOUSE_REQUIRE_COMPOSE=1` (CI)
//! makes that a failure. The `healthcheck` command's own test needs nothing.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

use gatehouse::config::{Document, Settings};
use serde_json::Value;

use crate::both_backends;
use crate::harness::cli::gatehouse;
use crate::harness::db::TestDb;
use crate::harness::{Backend, Browser, Cli, FAST_HASH_TOML, TestServer, skip_or_require};

both_backends! {
    demo_seed_prepares_keys_and_accounts_once,
}

const INSTANCES: [&str; 2] = ["gatehouse-a", "gatehouse-b"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn compose_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let found = std::env::split_paths(&path)
        .map(|d| d.join("docker-compose"))
        .find(|p| p.is_file());
    if found.is_none() {
        skip_or_require(
            "GATEHOUSE_REQUIRE_COMPOSE",
            "docker-compose is not installed",
            "docker-compose.yml checks",
            "apt-get install docker-compose, or set GATEHOUSE_REQUIRE_COMPOSE=1 to fail instead",
        );
    }
    found
}

/// The database password the checks run with (compose interpolates `POSTGRES_PASSWORD`).
const DB_PASSWORD: &str = "pw-from-the-environment";

/// Runs `docker-compose … config <args>` on the repository's file with a known environment and
/// no `.env` file; returns stdout, failing the test on a non-zero exit.
fn compose_config(bin: &Path, args: &[&str]) -> String {
    let empty_env = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new(bin)
        .current_dir(root())
        .env("POSTGRES_PASSWORD", DB_PASSWORD)
        .env_remove("GATEHOUSE_PORT")
        .arg("--env-file")
        .arg(empty_env.path())
        .arg("-f")
        .arg(root().join("docker-compose.yml"))
        .arg("config")
        .args(args)
        .output()
        .expect("run docker-compose");
    assert!(
        out.status.success(),
        "docker-compose config {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn str_list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
        Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        other => panic!("not a list: {other}"),
    }
}

fn environment(service: &Value) -> Vec<(String, String)> {
    let env = &service["environment"];
    match env {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        Value::Null => Vec::new(),
        other => panic!("environment as a list is not expected here: {other}"),
    }
}

fn env_var<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// (source, target) of each volume, in the short (`a:b:ro`) or the long syntax.
fn volumes(service: &Value) -> Vec<(String, String)> {
    service["volumes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| match v {
                    Value::String(s) => {
                        let mut parts = s.split(':');
                        let source = parts.next().unwrap().to_string();
                        let target = parts.next().unwrap().to_string();
                        (source, target)
                    }
                    long => (
                        long["source"].as_str().unwrap().to_string(),
                        long["target"].as_str().unwrap().to_string(),
                    ),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `ENV` of the Dockerfile's last stage (the runtime image), which compose's own
/// `environment` overrides.
fn image_env() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let last_stage = text.rsplit("\nFROM ").next().unwrap();
    last_stage
        .lines()
        .filter_map(|l| l.strip_prefix("ENV "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A service's settings as Gatehouse loads them in its container: the config file compose
/// mounts at `GATEHOUSE_CONFIG`, with the image's and the service's `GATEHOUSE_*` variables.
fn settings_of(service: &Value) -> (Settings, Vec<(String, String)>) {
    let mut env = image_env();
    env.extend(environment(service));
    let config = env_var(&env, "GATEHOUSE_CONFIG")
        .expect("GATEHOUSE_CONFIG is set")
        .to_string();
    let (host, _) = volumes(service)
        .into_iter()
        .find(|(_, target)| *target == config)
        .unwrap_or_else(|| panic!("{config} is mounted"));
    let text = std::fs::read_to_string(&host).unwrap();
    let gatehouse_env: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with("GATEHOUSE_"))
        .cloned()
        .collect();
    let doc = Document::parse(host, &text)
        .unwrap()
        .with_env(gatehouse_env);
    let settings = Settings::try_from(doc).unwrap_or_else(|e| panic!("{e}"));
    (settings, env)
}

/// What each route rule decides (not where it is written).
fn routes(s: &Settings) -> Vec<String> {
    s.routes
        .iter()
        .map(|r| {
            format!(
                "{} {:?} roles={:?} tiers={:?} methods={:?} verified={} 2fa={}",
                r.pattern, r.access, r.roles, r.tiers, r.methods, r.require_verified, r.require_2fa
            )
        })
        .collect()
}

fn command(service: &Value) -> Vec<String> {
    str_list(&service["command"])
}

/// The value after `flag` in a command line.
fn flag<'a>(cmd: &'a [String], flag: &str) -> &'a str {
    let i = cmd.iter().position(|a| a == flag).unwrap();
    &cmd[i + 1]
}

#[test]
fn compose_file_agrees_with_the_settings() {
    let Some(bin) = compose_binary() else {
        return;
    };
    compose_config(&bin, &["-q"]);
    let resolved: Value = serde_yaml_ng::from_str(&compose_config(&bin, &[])).unwrap();
    let services = &resolved["services"];
    for name in [
        "postgres",
        "seed",
        "demo-app",
        "gatehouse-a",
        "gatehouse-b",
        "lb",
    ] {
        assert!(services[name].is_object(), "service {name}");
    }
    let pg = &services["postgres"];
    assert!(pg["image"].as_str().unwrap().starts_with("postgres:"));
    let pg_env = environment(pg);
    let lb = &services["lb"];
    assert!(lb["image"].as_str().unwrap().starts_with("caddy:"));

    // Every Gatehouse command the file runs exists in this build.
    for name in ["seed", "demo-app", "gatehouse-a", "gatehouse-b"] {
        let cmd = command(&services[name]);
        let out = gatehouse().arg(&cmd[0]).arg("--help").output().unwrap();
        assert!(out.status.success(), "{name}: gatehouse {} exists", cmd[0]);
    }
    assert_eq!(command(&services["seed"]), vec!["demo-seed"]);
    let app_cmd = command(&services["demo-app"]);
    assert_eq!(app_cmd[0], "demo-app");
    let app_listen: SocketAddr = flag(&app_cmd, "--listen").parse().unwrap();
    assert!(
        app_listen.ip().is_unspecified(),
        "reachable from the instances"
    );

    // The load balancer: Caddy's site on the published port's target, in front of both
    // instances, probing the readiness endpoint.
    let caddyfile = volumes(lb)
        .into_iter()
        .find(|(_, t)| t == "/etc/caddy/Caddyfile")
        .map(|(s, _)| std::fs::read_to_string(s).unwrap())
        .expect("the Caddyfile is mounted");
    let port = &lb["ports"][0];
    let (published, target) = match port {
        Value::String(s) => {
            let (p, t) = s.rsplit_once(':').unwrap();
            (p.parse::<u16>().unwrap(), t.parse::<u16>().unwrap())
        }
        long => (
            long["published"]
                .to_string()
                .trim_matches('"')
                .parse()
                .unwrap(),
            long["target"].as_u64().unwrap() as u16,
        ),
    };
    assert!(
        caddyfile
            .lines()
            .any(|l| l.trim() == format!(":{target} {{")),
        "Caddy serves the published port's target :{target}"
    );
    let proxied: Vec<&str> = caddyfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("reverse_proxy "))
        .expect("a reverse_proxy line")
        .trim_end_matches('{')
        .split_whitespace()
        .collect();
    let readiness = gatehouse::cli::deploy::READINESS_PATH;
    assert_eq!(readiness, "/_auth/readyz");
    assert!(
        caddyfile.contains(&format!("health_uri {readiness}")),
        "Caddy sends traffic only to ready instances"
    );
    let lb_ip: IpAddr = lb["networks"]["gatehouse-net"]["ipv4_address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let (seed, seed_env) = settings_of(&services["seed"]);
    assert!(
        env_var(&seed_env, "GATEHOUSE_SECRET_KEY").is_none()
            && seed.security.secret_key_file.is_none(),
        "demo-seed generates the key (into its data folder) when none is there"
    );
    let generated_key = seed.server.data_dir.join("secret.key");
    let demo_routes = routes(
        &gatehouse::demo::settings(
            "127.0.0.1:8080".parse().unwrap(),
            Path::new("/tmp"),
            app_listen,
            None,
        )
        .unwrap(),
    );

    let mut keys = Vec::new();
    for name in INSTANCES {
        let service = &services[name];
        let (s, env) = settings_of(service);
        // Listens where Caddy sends traffic, on every interface of its container.
        assert!(
            s.server.listen.ip().is_unspecified(),
            "{name} listens on all"
        );
        assert!(
            proxied.contains(&format!("{name}:{}", s.server.listen.port()).as_str()),
            "Caddy proxies to {name}:{} ({proxied:?})",
            s.server.listen.port()
        );
        assert!(
            s.server.tls.is_none(),
            "the probe and Caddy speak plain HTTP"
        );
        assert_eq!(
            gatehouse::cli::deploy::default_probe_url(&s),
            format!("http://127.0.0.1:{}{readiness}", s.server.listen.port())
        );
        // Trusts forwarding headers from the balancer alone.
        assert_eq!(
            format!("{:?}", s.server.trusted_proxies),
            format!("{:?}", seed.server.trusted_proxies)
        );
        assert!(
            format!("{:?}", s.server.trusted_proxies).contains(&lb_ip.to_string()),
            "{name} trusts the balancer {lb_ip}: {:?}",
            s.server.trusted_proxies
        );
        // The public URL is the balancer's published port.
        let public = &s.server.public_url;
        assert_eq!(public.port_or_known_default(), Some(published));
        // The compose PostgreSQL, with its user, password and database.
        let db = url::Url::parse(&s.database.url).unwrap();
        assert_eq!(db.scheme(), "postgres");
        assert_eq!(db.host_str(), Some("postgres"));
        assert_eq!(db.port_or_known_default(), Some(5432));
        assert_eq!(db.username(), env_var(&pg_env, "POSTGRES_USER").unwrap());
        assert_eq!(db.password(), Some(DB_PASSWORD));
        assert_eq!(
            db.path().trim_start_matches('/'),
            env_var(&pg_env, "POSTGRES_DB").unwrap()
        );
        assert_eq!(s.database.url, seed.database.url);
        // The demo app's service and port.
        let up = &s.upstream.url;
        assert_eq!(up.host_str(), Some("demo-app"));
        assert_eq!(up.port_or_known_default(), Some(app_listen.port()));
        // The key demo-seed wrote, in the volume both instances and the seed mount there.
        let key = s.security.secret_key_file.clone().expect("a key file");
        assert!(s.security.secret_key.is_none());
        assert_eq!(key, generated_key, "{name} reads the key demo-seed writes");
        assert_eq!(s.server.data_dir, seed.server.data_dir);
        let data_volume = |svc: &Value| {
            volumes(svc)
                .into_iter()
                .find(|(_, t)| Path::new(t) == s.server.data_dir)
                .map(|(src, _)| src)
        };
        assert_eq!(data_volume(service), Some("gatehouse-data".into()));
        assert_eq!(data_volume(&services["seed"]), data_volume(service));
        keys.push(key);
        // The same walk-through as `gatehouse demo`.
        assert_eq!(routes(&s), demo_routes, "{name} routes");
        assert_eq!(
            env_var(&env, "GATEHOUSE_CONFIG"),
            Some("/etc/gatehouse/gatehouse.toml")
        );
        // Starts after the schema, keys and accounts are there.
        let deps = &service["depends_on"];
        assert_eq!(deps["seed"]["condition"], "service_completed_successfully");
        assert_eq!(deps["postgres"]["condition"], "service_healthy");
    }
    assert_eq!(keys[0], keys[1], "both instances share one key");

    // The image's health check is the readiness probe of the same config.
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains(r#"CMD ["/usr/local/bin/gatehouse", "healthcheck"]"#),
        "HEALTHCHECK runs gatehouse healthcheck"
    );
    assert!(
        dockerfile.contains("FROM rust:1.95"),
        "the pinned toolchain"
    );
    let toolchain = std::fs::read_to_string(root().join("rust-toolchain.toml")).unwrap();
    assert!(toolchain.contains("channel = \"1.95"), "{toolchain}");
}

/// `gatehouse healthcheck` exits 0 for a 2xx answer and 1 otherwise: a real server and the
/// real binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_command_reports_the_probe() {
    let Some(s) = TestServer::start(Backend::Sqlite, "").await else {
        return;
    };
    let run = |path: &str| {
        let url = format!("{}{path}", s.base);
        async move {
            tokio::process::Command::from(gatehouse())
                .args(["healthcheck", "--timeout", "5s", "--url", &url])
                .output()
                .await
                .unwrap()
        }
    };
    let up = run("/_auth/readyz").await;
    assert_eq!(
        up.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let missing = run("/_auth/no-such-probe").await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
}

/// What the compose `seed` service does: the schema, the shared key in the data folder and the
/// demo accounts, with their passwords printed once; a second run changes nothing.
async fn demo_seed_prepares_keys_and_accounts_once(b: Backend) {
    let Some(db) = TestDb::new(b).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cli = Cli::with_config(
        &db,
        &format!(
            "[server]\ndata_dir = \"{}\"\n{FAST_HASH_TOML}",
            data.display()
        ),
    );
    let out = cli.ok_async(&["demo-seed"], None).await;
    let password = |user: &str| -> String {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{user} ")))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("{user}'s password printed: {out}"))
            .to_string()
    };
    let key = std::fs::read_to_string(data.join("secret.key")).unwrap();
    assert!(!key.trim().is_empty(), "the shared key is written");

    let store = gatehouse::store::Store::connect(&db.url, 2).await.unwrap();
    let accounts = gatehouse::accounts::Accounts::new(
        store.clone(),
        gatehouse::auth::PasswordHasher::new(crate::harness::FAST_ARGON2, 2).unwrap(),
        std::sync::Arc::new(gatehouse::clock::SystemClock),
        gatehouse::audit::AuditLog::direct(store),
        crate::harness::security_settings(),
    );
    for (user, admin) in [("admin", true), ("demo", false)] {
        let pw = gatehouse::config::Secret::new(password(user));
        let row = accounts
            .authenticate(user, &pw, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("{user} signs in with the printed password: {e:?}"));
        assert_eq!(row.is_admin, admin, "{user}");
        assert!(row.is_verified);
    }

    let again = cli.ok_async(&["demo-seed"], None).await;
    assert!(again.contains("exist already"), "{again}");
    assert_eq!(
        std::fs::read_to_string(data.join("secret.key")).unwrap(),
        key,
        "the key is kept"
    );
}

/// `gatehouse demo-app` serves the demo upstream on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_app_serves_the_demo_upstream() {
    let port = crate::forward_auth::free_port();
    let mut child = tokio::process::Command::from(gatehouse())
        .args(["demo-app", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // No readiness signal to await: wait (bounded) until it accepts connections.
    let start = std::time::Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(child.try_wait().unwrap().is_none(), "demo-app exited");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "demo-app did not listen"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut b = Browser::new(&format!("http://127.0.0.1:{port}"));
    let r = b.api("/app/hello", &[("x-auth-user", "someone")]).await;
    assert_eq!(r.status, http::StatusCode::OK, "{}", r.text());
    assert_eq!(r.echoed("x-auth-user"), vec!["someone"], "{}", r.text());
    child.kill().await.unwrap();
}
