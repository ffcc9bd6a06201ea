//! The real `gatehouse` binary, run the way an operator runs it: a config file on disk, the
//! database named with `--database`, in the database's folder, and none of the `GATEHOUSE_*`
//! settings of the environment the tests themselves run in (a developer's shell or CI may set
//! some; the binary would read them over the config file).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{FAST_HASH_TOML, TestDb};

/// `gatehouse` with the environment's `GATEHOUSE_*` settings removed (the log filter aside),
/// stdin closed and output captured.
pub fn gatehouse() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    for (name, _) in std::env::vars_os() {
        let is_setting = name
            .to_str()
            .is_some_and(|n| n.starts_with("GATEHOUSE_") && n != "GATEHOUSE_LOG");
        if is_setting {
            cmd.env_remove(name);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// The binary pointed at one test database through a config file.
pub struct Cli {
    pub config: PathBuf,
    database: Option<String>,
    dir: PathBuf,
}

impl Cli {
    /// Fast password hashing, on `db`.
    pub fn new(db: &TestDb) -> Cli {
        Cli::with_config(db, FAST_HASH_TOML)
    }

    /// `toml` as the config file (`cli.toml` in the database's folder), on `db`.
    pub fn with_config(db: &TestDb, toml: &str) -> Cli {
        let dir = db.dir.path().to_path_buf();
        let config = dir.join("cli.toml");
        std::fs::write(&config, toml).expect("write the CLI's config file");
        Cli {
            config,
            database: Some(db.url.clone()),
            dir,
        }
    }

    /// A config file that names its own database; runs in `dir`.
    pub fn for_file(config: &Path, dir: &Path) -> Cli {
        Cli {
            config: config.to_path_buf(),
            database: None,
            dir: dir.to_path_buf(),
        }
    }

    /// `gatehouse --config … [--database …] ARGS`, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = gatehouse();
        cmd.current_dir(&self.dir).arg("--config").arg(&self.config);
        if let Some(url) = &self.database {
            cmd.arg("--database").arg(url);
        }
        cmd.args(args);
        cmd
    }

    /// Runs `gatehouse ARGS`, writing `stdin` (a password, say) to it.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn gatehouse");
        {
            let mut input = child.stdin.take().expect("piped stdin");
            if let Some(s) = stdin {
                // The program may exit (usage error) before reading stdin.
                let _ = input.write_all(s.as_bytes());
            }
        }
        child.wait_with_output().expect("wait for gatehouse")
    }

    /// The same without blocking the test's runtime.
    pub async fn run_async(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::from(self.command(args))
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn gatehouse");
        let mut input = child.stdin.take().expect("piped stdin");
        if let Some(s) = stdin {
            let _ = input.write_all(s.as_bytes()).await;
        }
        drop(input);
        child.wait_with_output().await.expect("wait for gatehouse")
    }

    /// Runs `gatehouse ARGS` and expects success; returns stdout.
    pub fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        succeeded(args, self.run(args, stdin))
    }

    /// The same without blocking the test's runtime.
    pub async fn ok_async(&self, args: &[&str], stdin: Option<&str>) -> String {
        succeeded(args, self.run_async(args, stdin).await)
    }

    /// Runs `gatehouse ARGS` (a `--json` listing) and parses its output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args, None)).expect("valid JSON")
    }
}

/// Stdout of a run that must have succeeded; the failure names the arguments and stderr.
pub fn succeeded(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "{args:?} failed ({:?}): {}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}
