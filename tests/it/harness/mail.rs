//! Reading mails the server wrote to its outbox or handed to a local SMTP server, and starting
//! that SMTP server (Python's aiosmtpd, see tests/fixtures/smtp_sink.py).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// A received mail: its raw text with quoted-printable soft breaks and `=3D` undone.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub path: PathBuf,
    pub text: String,
}

impl ReceivedMail {
    /// The first link in the mail, as path and query (the host is the configured public URL).
    pub fn link_path(&self) -> String {
        let i = self.text.find("http").expect("a link in the mail");
        let url: String = self.text[i..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        let u = url::Url::parse(&url).unwrap();
        format!("{}?{}", u.path(), u.query().unwrap_or(""))
    }

    pub fn token(&self) -> String {
        let p = self.link_path();
        p.split("token=").nth(1).unwrap().to_string()
    }
}

fn decode(raw: &str) -> String {
    raw.replace("=\r\n", "").replace("=3D", "=")
}

/// Every mail in `dir` addressed to `to`, oldest first.
pub fn mails_to(dir: &Path, to: &str) -> Vec<ReceivedMail> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| {
            let text = decode(&std::fs::read_to_string(&p).ok()?);
            let addressed = text
                .lines()
                .take_while(|l| !l.is_empty())
                .any(|l| l.to_ascii_lowercase().starts_with("to:") && l.contains(to));
            addressed.then_some(ReceivedMail { path: p, text })
        })
        .collect()
}

/// Waits (up to 10 s) until `dir` holds at least `n` mails to `to`; returns the newest.
pub async fn wait_for_mail(dir: &Path, to: &str, n: usize) -> ReceivedMail {
    for _ in 0..200 {
        let mails = mails_to(dir, to);
        if mails.len() >= n {
            return mails.last().unwrap().clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no mail #{n} to {to} in {}", dir.display());
}

/// A running aiosmtpd that stores each message as an .eml file in `dir`.
pub struct SmtpSink {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: tokio::process::Child,
}

impl SmtpSink {
    /// Starts the sink, or returns `None` (with a message) when aiosmtpd is not installed.
    /// Under `GATEHOUSE_REQUIRE_SMTP=1` a missing aiosmtpd fails the test instead.
    pub async fn start() -> Option<SmtpSink> {
        if !super::python_imports("aiosmtpd") {
            super::skip_or_require(
                "GATEHOUSE_REQUIRE_SMTP",
                "Python's aiosmtpd is not importable (pip install aiosmtpd)",
                "the SMTP test",
                "Python's aiosmtpd is not installed (pip install aiosmtpd)",
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smtp_sink.py");
        let mut child = tokio::process::Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the SMTP sink");
        use tokio::io::AsyncBufReadExt;
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("SMTP sink starts in time")
            .unwrap();
        assert_eq!(ready.as_deref(), Some("ready"), "SMTP sink did not start");
        Some(SmtpSink { port, dir, child })
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
