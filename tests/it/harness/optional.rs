//! Optional services: PostgreSQL, MariaDB, an SMTP sink, Chromium, nginx and Caddy, an OpenID
//! provider, Python packages, real framework apps. Where one is missing its tests are skipped
//! with a `note: skipping …` line, unless the group's `GATEHOUSE_REQUIRE_*` variable is `1`
//! (CI sets them all), where a missing service fails the test instead of passing silently.

/// Whether `var` (a `GATEHOUSE_REQUIRE_*` variable) demands the service: set to `1`.
pub fn required(var: &str) -> bool {
    std::env::var(var).as_deref() == Ok("1")
}

/// A service is missing: fails the test saying `{var}=1 but {missing}` when `var` requires it;
/// otherwise notes once that `what` is skipped, and `how` to run it.
#[track_caller]
pub fn skip_or_require(var: &str, missing: &str, what: &str, how: &str) {
    assert!(!required(var), "{var}=1 but {missing}");
    note_skipped(what, how);
}

/// Whether `python3 -c "import {modules}"` succeeds (e.g. `"jwt, cryptography"`).
pub fn python_imports(modules: &str) -> bool {
    std::process::Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Says once per test run, past the test harness's output capture (which hides what passing
/// tests print), that a group of tests was skipped and how to run it.
pub fn note_skipped(what: &str, how: &str) {
    use std::collections::HashSet;
    use std::io::Write;
    use std::sync::Mutex;
    static SAID: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if said
        .get_or_insert_with(HashSet::new)
        .insert(what.to_string())
    {
        let _ = writeln!(std::io::stderr(), "note: skipping {what}: {how}");
    }
}
