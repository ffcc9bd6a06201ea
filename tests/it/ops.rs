//! What operators rely on: `/_auth/healthz` and `/_auth/readyz`, `/_auth/metrics` read by a
//! real Prometheus text parser, `SIGHUP` reload of a running `gatehouse serve`, and JSON logs.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::harness::{self, Backend, Browser, Cli, FAST_HASH_TOML, PASSWORD, TestDb, TestServer};

/// Polls `check` until it holds or `limit` passes; panics with `what` then.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

crate::both_backends!(health_and_readiness);

async fn health_and_readiness(b: Backend) {
    // Loopback is outside metrics_allow: the probes must answer all the same.
    let Some(s) = TestServer::start_edited(b, crate::harness::server::ROUTES, |t| {
        t.replace("[server]\n", "[server]\nmetrics_allow = [\"10.0.0.0/8\"]\n")
    })
    .await
    else {
        return;
    };
    let mut br = s.browser();
    assert_eq!(br.get("/_auth/metrics").await.status, StatusCode::FORBIDDEN);
    let h = br.get("/_auth/healthz").await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.json(), serde_json::json!({ "status": "ok" }));
    let base = s.base.clone();
    eventually(Duration::from_secs(5), "readyz 200", || {
        let base = base.clone();
        async move { Browser::new(&base).get("/_auth/readyz").await.status == StatusCode::OK }
    })
    .await;
    // No session, no throttle: many probes in a row all answer.
    for _ in 0..50 {
        assert_eq!(br.get("/_auth/readyz").await.status, StatusCode::OK);
    }

    // A schema newer than this build (a newer release migrated it): not ready, with the reason.
    s.db.execute(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         SELECT 99999999999999, 'from the future', success, checksum, execution_time \
         FROM _sqlx_migrations WHERE version = (SELECT MIN(version) FROM _sqlx_migrations)",
    )
    .await;
    let r = br.get("/_auth/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    let v = r.json();
    assert_eq!(v["reason"], "schema version mismatch", "{v}");
    assert_eq!(v["detail"]["applied"], 99999999999999_i64, "{v}");
    assert_eq!(br.get("/_auth/healthz").await.status, StatusCode::OK);
    s.db.execute("DELETE FROM _sqlx_migrations WHERE version = 99999999999999")
        .await;
    assert_eq!(br.get("/_auth/readyz").await.status, StatusCode::OK);

    // The database gone: not ready; the process itself is still healthy.
    s.app().store.close().await;
    let r = br.get("/_auth/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["reason"], "database unavailable");
    assert_eq!(br.get("/_auth/healthz").await.status, StatusCode::OK);
}

/// `/_auth/metrics` read by Python's `prometheus_client.parser`, the reference parser of the
/// Prometheus text format: every family has HELP and TYPE, and the histograms are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_with_the_prometheus_parser() {
    if !harness::python_imports("prometheus_client.parser") {
        harness::skip_or_require(
            "GATEHOUSE_REQUIRE_PROMETHEUS_PARSER",
            "Python's prometheus_client is missing",
            "the Prometheus parser test",
            "install it with `python3 -m pip install prometheus-client`",
        );
        return;
    }
    let s = TestServer::start(Backend::Sqlite, "").await.unwrap();
    // Traffic: a sign-in, a refused one, proxied requests on a route and off the table.
    let mut br = s.signed_in("metered").await;
    assert_eq!(br.get("/public/x").await.status, StatusCode::OK);
    assert_eq!(br.get("/closed/x").await.status, StatusCode::FORBIDDEN);
    assert_eq!(br.get("/app/").await.status, StatusCode::OK);
    let mut other = s.browser();
    let token = other.csrf("/_auth/login").await;
    other
        .post_form(
            "/_auth/login",
            &[
                ("csrf_token", &token),
                ("username", "metered"),
                ("password", "not the password"),
            ],
        )
        .await;
    let r = s.browser().get("/_auth/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        r.header("content-type")
    );
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    out[f.name] = {"type": f.type, "help": f.documentation,
                   "samples": [[s.name, s.labels, s.value] for s in f.samples]}
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&r.body).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "parser refused the exposition: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        r.text()
    );
    let families: serde_json::Map<String, Value> = serde_json::from_slice(&out.stdout).unwrap();
    for (name, f) in &families {
        assert!(
            name.starts_with("gatehouse_"),
            "{name}: a family without TYPE (parsed as a bare sample)"
        );
        assert_ne!(f["type"], "unknown", "{name} has no TYPE");
        assert!(
            !f["help"].as_str().unwrap_or("").is_empty(),
            "{name} has no HELP"
        );
    }
    let family = |name: &str, ty: &str| -> &Value {
        let f = families
            .get(name)
            .unwrap_or_else(|| panic!("no family {name}: {:?}", families.keys()));
        assert_eq!(f["type"], ty, "{name}");
        f
    };
    let count_of = |f: &Value, labels: &[(&str, &str)]| -> f64 {
        f["samples"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s[0].as_str().is_some_and(|n| n.ends_with("_count")))
            .filter(|s| labels.iter().all(|(k, v)| s[1][*k] == *v))
            .map(|s| s[2].as_f64().unwrap())
            .sum()
    };
    let req = family("gatehouse_request_duration_seconds", "histogram");
    assert!(count_of(req, &[("route", "/public/**"), ("status", "2xx")]) >= 1.0);
    assert!(count_of(req, &[("route", "/closed/**"), ("status", "4xx")]) >= 1.0);
    assert!(count_of(req, &[("route", "unmatched"), ("status", "2xx")]) >= 1.0);
    assert!(count_of(req, &[("route", "_auth"), ("status", "3xx")]) >= 1.0);
    assert!(
        count_of(
            family("gatehouse_upstream_duration_seconds", "histogram"),
            &[]
        ) >= 2.0
    );
    assert!(
        count_of(
            family("gatehouse_password_hash_duration_seconds", "histogram"),
            &[]
        ) >= 2.0
    );
    family("gatehouse_feed_lag_seconds", "histogram");
    let value = |name: &str, ty: &str, labels: &[(&str, &str)]| -> f64 {
        family(name, ty)["samples"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| labels.iter().all(|(k, v)| s[1][*k] == *v))
            .map(|s| s[2].as_f64().unwrap())
            .sum()
    };
    assert!(value("gatehouse_signins", "counter", &[("outcome", "success")]) >= 1.0);
    assert!(value("gatehouse_signins", "counter", &[("outcome", "refused")]) >= 1.0);
    assert!(value("gatehouse_requests", "counter", &[]) >= 5.0);
    assert!(value("gatehouse_proxied_requests", "counter", &[]) >= 2.0);
    assert!(value("gatehouse_password_verifications", "counter", &[]) >= 2.0);
    assert!(value("gatehouse_session_cache_hits", "counter", &[]) >= 1.0);
    assert!(value("gatehouse_connections_open", "gauge", &[]) >= 1.0);
    for (name, ty) in [
        ("gatehouse_db_queries", "counter"),
        ("gatehouse_db_background_queries", "counter"),
        ("gatehouse_session_cache_misses", "counter"),
        ("gatehouse_lockouts", "counter"),
        ("gatehouse_second_factor_failures", "counter"),
        ("gatehouse_feed_events_applied", "counter"),
        ("gatehouse_activity_queued", "counter"),
        ("gatehouse_activity_written", "counter"),
        ("gatehouse_activity_dropped", "counter"),
        ("gatehouse_config_reloads", "counter"),
        ("gatehouse_config_reload_failures", "counter"),
        ("gatehouse_connections_timed_out", "counter"),
        ("gatehouse_activity_queue_depth", "gauge"),
        ("gatehouse_feed_connected", "gauge"),
    ] {
        family(name, ty);
    }
}

/// A `gatehouse serve` child with its stderr parsed line by line as JSON.
struct Child {
    child: tokio::process::Child,
    lines: Arc<Mutex<Vec<Value>>>,
    raw: Arc<Mutex<Vec<String>>>,
}

impl Child {
    fn spawn(cli: &Cli) -> Child {
        let mut child = tokio::process::Command::from(cli.command(&["serve"]))
            .env("GATEHOUSE_LOG", "info,sqlx=warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn gatehouse serve");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let (l, r) = (lines.clone(), raw.clone());
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                r.lock().unwrap().push(line.clone());
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| Value::String(format!("NOT JSON ({e}): {line}")));
                l.lock().unwrap().push(v);
            }
        });
        Child { child, lines, raw }
    }

    fn find(&self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|v| pred(v))
            .cloned()
            .collect()
    }

    fn all(&self) -> String {
        self.raw.lock().unwrap().join("\n")
    }

    /// Waits (up to 20 s) until `found` finds a log line.
    async fn wait_until<T>(&self, what: &str, found: impl Fn(&Self) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(v) = found(self) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no log line for {what}; stderr:\n{}",
                self.all()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_until(what, |c| c.find(&pred).into_iter().next())
            .await
    }

    /// Waits for a raw stderr line that `pred` accepts (for the text format).
    async fn wait_for_raw(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_until(what, |c| {
            c.raw.lock().unwrap().iter().find(|l| pred(l)).cloned()
        })
        .await
    }

    fn signal_hup(&self) {
        let pid = self.child.id().expect("child running");
        let st = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

fn message(v: &Value) -> &str {
    v["message"].as_str().unwrap_or("")
}

fn config(db: &TestDb, upstream: SocketAddr, routes: &str, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 2\ndata_dir = \"{data}\"\n\
         [upstream]\nurl = \"http://{upstream}\"\n\
         [database]\nurl = \"{url}\"\n\
         [log]\nformat = \"json\"\naccess = true\n\
         {FAST_HASH_TOML}{extra}\n{routes}",
        data = db.dir.path().join("data").display(),
        url = db.url,
    )
}

const ROUTES_BEFORE: &str = "[[routes]]\npath = \"/open/**\"\naccess = \"public\"\n\
                             [[routes]]\npath = \"/later/**\"\naccess = \"deny\"\n";
const ROUTES_AFTER: &str = "[[routes]]\npath = \"/open/**\"\naccess = \"public\"\n\
                            [[routes]]\npath = \"/later/**\"\naccess = \"public\"\n";

/// `SIGHUP` to a running `gatehouse serve`: a changed route is enforced without a restart, a key
/// that needs one is named, and a broken file is refused with every problem's key and line
/// while the running configuration keeps serving. Logs are JSON, with the request id on every
/// line logged for a request and no secret anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_refuses_a_broken_file_json_logs() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let upstream = harness::server::demo_upstream().await;
    let path = db.dir.path().join("gatehouse.toml");
    std::fs::write(&path, config(&db, upstream, ROUTES_BEFORE, "")).unwrap();

    // An account made with the CLI on the same database (the server migrates it on start).
    let cli = Cli::for_file(&path, db.dir.path());
    let serve = Child::spawn(&cli);
    let serving = serve
        .wait_for("gatehouse is serving", |v| {
            message(v) == "gatehouse is serving"
        })
        .await;
    let addr: SocketAddr = serving["listen"].as_str().unwrap().parse().unwrap();
    let base = format!("http://{addr}");
    cli.ok_async(
        &[
            "user",
            "create",
            "--username",
            "logger",
            "--email",
            "logger@example.com",
            "--password-stdin",
        ],
        Some(PASSWORD),
    )
    .await;

    let mut br = Browser::new(&base);
    assert_eq!(br.get("/open/x").await.status, StatusCode::OK);
    assert_eq!(br.get("/later/x").await.status, StatusCode::FORBIDDEN);
    br.login("logger", PASSWORD).await;
    let r = br.get("/open/signed-in").await;
    assert_eq!(r.status, StatusCode::OK);
    let request_id = r.header("x-request-id").expect("request id").to_string();

    // The access line: one per proxied request, with the user and the request id.
    let access = serve
        .wait_for("the access line", |v| {
            message(v) == "access" && v["path"] == "/open/signed-in"
        })
        .await;
    assert_eq!(access["method"], "GET", "{access}");
    assert_eq!(access["status"], 200, "{access}");
    assert!(access["duration_ms"].as_f64().is_some(), "{access}");
    assert!(access["user_id"].as_i64().is_some(), "{access}");
    assert_eq!(access["request_id"], request_id, "{access}");
    assert_eq!(access["span"]["request_id"], request_id, "{access}");
    assert_eq!(access["span"]["name"], "request", "{access}");

    // A line logged by Gatehouse's own pages carries the request id the same way: a
    // forward-auth request from a peer that is not a trusted proxy is refused with a warning.
    let r = br.get("/_auth/authz/forward-auth").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let refused_id = r.header("x-request-id").expect("request id").to_string();
    let refused = serve
        .wait_for("the forward-auth refusal", |v| {
            message(v) == "forward-auth request refused" && v["span"]["request_id"] == refused_id
        })
        .await;
    assert_eq!(refused["level"], "WARN", "{refused}");
    // Lines logged outside any request carry no `span`.
    let serving_line = serve.find(|v| message(v) == "gatehouse is serving");
    assert!(serving_line[0].get("span").is_none(), "{}", serving_line[0]);

    // Change a route and a key that needs a restart; SIGHUP.
    std::fs::write(
        &path,
        config(
            &db,
            upstream,
            ROUTES_AFTER,
            "[session]\nidle_timeout = \"7m\"\n[portal]\nproduct_name = \"Reloaded Gate\"\n",
        ),
    )
    .unwrap();
    serve.signal_hup();
    eventually(Duration::from_secs(10), "the reloaded route", || {
        let base = base.clone();
        async move { Browser::new(&base).get("/later/x").await.status == StatusCode::OK }
    })
    .await;
    let warned = serve
        .wait_for("the restart warning", |v| {
            v["keys"].as_str().is_some_and(|k| k.contains("[session]"))
        })
        .await;
    assert!(message(&warned).contains("need a restart"), "{warned}");
    // Branding too, and the session survives the reload.
    assert!(
        Browser::new(&base)
            .get("/_auth/login")
            .await
            .text()
            .contains("Reloaded Gate")
    );
    // The session survives the reload.
    assert_eq!(br.get("/open/still").await.status, StatusCode::OK);

    // A broken file: two problems, each logged with key and line; the running config stays.
    let broken = format!(
        "{}[[routes]]\npath = \"/bad/[\"\naccess = \"sometimes\"\n",
        config(&db, upstream, ROUTES_BEFORE, "")
    );
    let bad_line = broken
        .lines()
        .position(|l| l == "path = \"/bad/[\"")
        .unwrap()
        + 1;
    std::fs::write(&path, &broken).unwrap();
    serve.signal_hup();
    let refused = |key: &'static str| {
        move |v: &Value| message(v).starts_with("config reload refused") && v["key"] == key
    };
    let path_problem = serve
        .wait_for("the refused path", refused("routes[2].path"))
        .await;
    assert_eq!(path_problem["line"], bad_line, "{path_problem}");
    let access_problem = serve
        .wait_for("the refused access", refused("routes[2].access"))
        .await;
    assert_eq!(access_problem["line"], bad_line + 1, "{access_problem}");
    assert_eq!(path_problem["level"], "ERROR");
    // Still the reloaded (good) configuration, not the broken one nor the first.
    assert_eq!(
        Browser::new(&base).get("/later/x").await.status,
        StatusCode::OK
    );
    assert_eq!(br.get("/open/y").await.status, StatusCode::OK);

    // Another upstream (nothing listens there): every worker thread's client follows it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    std::fs::write(&path, config(&db, dead, ROUTES_AFTER, "")).unwrap();
    serve.signal_hup();
    eventually(Duration::from_secs(10), "the new upstream", || {
        let base = base.clone();
        async move {
            Browser::new(&base)
                .get("/open/z")
                .await
                .status
                .is_server_error()
        }
    })
    .await;
    for _ in 0..8 {
        let r = Browser::new(&base).get("/open/z").await;
        assert!(r.status.is_server_error(), "{}", r.status);
    }
    let metrics = Browser::new(&base).get("/_auth/metrics").await.text();
    let metric = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
    };
    assert_eq!(metric("gatehouse_config_reloads_total"), 2.0);
    assert_eq!(metric("gatehouse_config_reload_failures_total"), 1.0);

    // Every line is JSON; no secret anywhere in the log.
    let all = serve.all();
    for v in serve.find(|_| true) {
        assert!(v.is_object(), "not a JSON object: {v}");
    }
    let session = br
        .cookie_header()
        .unwrap_or_default()
        .split("; ")
        .filter_map(|c| c.split_once('=').map(|(_, v)| v.to_string()))
        .filter(|v| v.len() >= 16)
        .collect::<Vec<_>>();
    assert!(!session.is_empty());
    assert!(!all.contains(PASSWORD), "the password is in the log");
    for token in &session {
        assert!(
            !all.contains(token.as_str()),
            "a cookie value is in the log"
        );
    }
    let mut serve = serve;
    serve.child.kill().await.unwrap();
}

/// Text logs that go to a pipe (journald, `docker logs`, a file) carry no terminal escape codes
/// (colour is for a person at a terminal only), and the lines logged while a request is handled
/// carry its id after the level, as `request{request_id=…}:`, on the proxied path and on
/// Gatehouse's own pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_are_plain_in_a_pipe_and_carry_the_request_id() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let upstream = harness::server::demo_upstream().await;
    let path = db.dir.path().join("gatehouse.toml");
    let text =
        config(&db, upstream, ROUTES_BEFORE, "").replace("format = \"json\"", "format = \"text\"");
    std::fs::write(&path, text).unwrap();
    let serve = Child::spawn(&Cli::for_file(&path, db.dir.path()));
    let serving = serve
        .wait_for_raw("gatehouse is serving", |l| {
            l.contains("gatehouse is serving")
        })
        .await;
    assert!(serving.contains(" INFO "), "{serving}");
    assert!(!serving.contains("request{"), "{serving}");
    let addr = serving
        .split("listen=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("listen address in the line");
    assert!(addr.starts_with("127.0.0.1:"), "{serving}");
    let mut br = Browser::new(&format!("http://{addr}"));
    let r = br.get("/open/text").await;
    assert_eq!(r.status, StatusCode::OK);
    let id = r.header("x-request-id").expect("request id").to_string();
    let access = serve
        .wait_for_raw("the access line", |l| l.contains("path=\"/open/text\""))
        .await;
    assert!(
        access.contains(&format!(" INFO request{{request_id={id}}}: access ")),
        "{access}"
    );

    let r = br.get("/_auth/authz/forward-auth").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let id = r.header("x-request-id").expect("request id").to_string();
    let refused = serve
        .wait_for_raw("the forward-auth refusal", |l| {
            l.contains("forward-auth request refused")
        })
        .await;
    assert!(
        refused.contains(&format!(
            " WARN request{{request_id={id}}}: forward-auth request refused"
        )),
        "{refused}"
    );
    let all = serve.all();
    assert!(
        !all.contains('\u{1b}'),
        "escape codes in piped logs:\n{all:?}"
    );
}
