//! The real frameworks behind Gatehouse: Flask on Werkzeug's server and Express 4 with
//! method-override, each started as a child process that logs every handler it runs.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::harness::{python_imports, skip_or_require};

pub struct AppProcess {
    pub name: &'static str,
    pub port: u16,
    log: PathBuf,
    _child: Child,
    _dir: tempfile::TempDir,
}

fn skip(what: &str, why: &str) -> Option<AppProcess> {
    skip_or_require(
        "GATEHOUSE_REQUIRE_FRAMEWORKS",
        &format!("{what} cannot run: {why}"),
        &format!("the bypass corpus against {what}"),
        &format!("{why} (CI installs it; see .ci/run)"),
    );
    None
}

fn frameworks_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/frameworks")
}

pub async fn flask() -> Option<AppProcess> {
    if !python_imports("flask") {
        return skip("Flask", "python3 with Flask is not installed");
    }
    let script = frameworks_dir().join("flask_app.py");
    start("Flask", "python3", &[script.to_string_lossy().as_ref()]).await
}

pub async fn express() -> Option<AppProcess> {
    let dir = frameworks_dir().join("express");
    if !dir.join("node_modules/express").is_dir()
        || !dir.join("node_modules/method-override").is_dir()
    {
        return skip(
            "Express",
            "run `npm ci` in tests/frameworks/express (needs Node.js)",
        );
    }
    let script = dir.join("app.js");
    start("Express", "node", &[script.to_string_lossy().as_ref()]).await
}

async fn start(name: &'static str, program: &str, args: &[&str]) -> Option<AppProcess> {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("handlers.log");
    std::fs::write(&log, "").unwrap();
    let mut child = Command::new(program)
        .args(args)
        .arg(&log)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{name} did not print its port"))
        .unwrap()
        .unwrap_or_else(|| panic!("{name} exited before printing its port"));
    let port: u16 = first.trim().parse().unwrap();
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Some(AppProcess {
        name,
        port,
        log,
        _child: child,
        _dir: dir,
    })
}

impl AppProcess {
    /// Handlers that ran, as (handler, probe id).
    pub fn ran(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .filter_map(|l| {
                let (h, p) = l.split_once(' ')?;
                Some((h.to_string(), p.to_string()))
            })
            .collect()
    }

    pub fn handler_for(&self, probe: &str) -> Option<String> {
        self.ran()
            .into_iter()
            .find(|(_, p)| p == probe)
            .map(|(h, _)| h)
    }
}
