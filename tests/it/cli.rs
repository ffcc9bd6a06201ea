//! The real `gatehouse` binary, on both backends.

use crate::both_backends;
use crate::harness::cli::gatehouse;
use crate::harness::{Backend, Cli, TestDb};

/// A fresh database and the binary pointed at it (the database lives as long as the first).
async fn fresh(b: Backend) -> (TestDb, Cli) {
    let db = TestDb::new(b).await.expect("backend available");
    let cli = Cli::new(&db);
    (db, cli)
}

const PW: &str = "correct horse battery staple";

both_backends! {
    create_then_show_json,
    bad_input_is_reported,
    list_filters_and_roles,
    lock_delete_restore,
}

async fn create_then_show_json(b: Backend) {
    let (_db, cli) = fresh(b).await;
    assert!(cli.ok(&["migrate"], None).contains("up to date"));
    cli.ok(
        &[
            "user",
            "create",
            "--username",
            "alice",
            "--email",
            "alice@example.com",
            "--password-stdin",
        ],
        Some(PW),
    );
    let v = cli.json(&["user", "show", "alice", "--json"]);
    assert_eq!(v["subscription_tier"], "free");
    assert_eq!(v["credits_balance"], 3);
    assert_eq!(v["username"], "alice");
    let text = v.to_string();
    for secret in [
        "password_hash",
        "twofa_secret",
        "recovery_codes",
        "password_reset_token",
        "email_verification_token",
    ] {
        assert!(!text.contains(secret), "{secret} printed");
    }
    // By email and by id too.
    assert_eq!(
        cli.json(&["user", "show", "ALICE@example.com", "--json"])["id"],
        v["id"]
    );
    let id = v["id"].to_string();
    assert_eq!(
        cli.json(&["user", "show", &id, "--json"])["username"],
        "alice"
    );
}

async fn bad_input_is_reported(b: Backend) {
    let (_db, cli) = fresh(b).await;
    cli.ok(
        &[
            "user",
            "create",
            "--username",
            "alice",
            "--email",
            "alice@example.com",
            "--password-stdin",
        ],
        Some(PW),
    );
    let dup = cli.run(
        &[
            "user",
            "create",
            "--username",
            "ALICE",
            "--email",
            "new@example.com",
            "--password-stdin",
        ],
        Some(PW),
    );
    assert_eq!(dup.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("username is already taken"));
    let dup = cli.run(
        &[
            "user",
            "create",
            "--username",
            "al2",
            "--email",
            "Alice@Example.com",
            "--password-stdin",
        ],
        Some(PW),
    );
    assert!(String::from_utf8_lossy(&dup.stderr).contains("email is already taken"));

    let tier = cli.run(
        &[
            "user",
            "create",
            "--username",
            "b",
            "--email",
            "b@example.com",
            "--tier",
            "gold",
            "--password-stdin",
        ],
        Some(PW),
    );
    assert_eq!(tier.status.code(), Some(2));
    let err = String::from_utf8_lossy(&tier.stderr);
    assert!(
        err.contains("free")
            && err.contains("beta")
            && err.contains("premium")
            && err.contains("enterprise"),
        "{err}"
    );

    let argv_pw = cli.run(
        &[
            "user",
            "create",
            "--username",
            "b",
            "--email",
            "b@example.com",
            "--password",
            PW,
        ],
        None,
    );
    assert_eq!(
        argv_pw.status.code(),
        Some(2),
        "passwords are never taken from argv"
    );

    let weak = cli.run(
        &[
            "user",
            "create",
            "--username",
            "b",
            "--email",
            "b@example.com",
            "--password-stdin",
        ],
        Some("short"),
    );
    assert_eq!(weak.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 12 characters"));

    let missing = cli.run(&["user", "show", "nobody"], None);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nobody"));
}

#[test]
fn unreachable_database_masks_password() {
    let out = gatehouse()
        .args([
            "--database",
            "postgres://app:s3cret-pw@127.0.0.1:9/nowhere",
            "migrate",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("postgres://app:****@127.0.0.1:9/nowhere"),
        "{err}"
    );
    assert!(!err.contains("s3cret-pw"), "{err}");
}

/// A log filter that does not parse is refused at the command line, from the flag or the
/// environment, instead of running at a level the operator did not ask for.
#[test]
fn bad_log_filter_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, env) in [
        (Some("gatehouse=loud"), None),
        (None, Some("gatehouse=loud")),
        (Some("info,sqlx=[x"), None),
    ] {
        let mut cmd = gatehouse();
        cmd.current_dir(dir.path()).env_remove("GATEHOUSE_LOG");
        if let Some(f) = flag {
            cmd.args(["--log", f]);
        }
        if let Some(e) = env {
            cmd.env("GATEHOUSE_LOG", e);
        }
        let out = cmd.arg("check-config").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag:?} {env:?}: {err}");
        assert!(err.contains("--log"), "{err}");
        assert!(err.contains(flag.or(env).unwrap_or_default()), "{err}");
    }
    // Filters with spans and fields are still taken.
    for good in ["gatehouse[request]=debug,warn", "info,sqlx=warn", "debug"] {
        let out = gatehouse()
            .current_dir(dir.path())
            .args(["--log", good, "check-config"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{good:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn bad_config_names_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:8080\"\n\n[[routes]]\npath = \"/a/[\"\naccess = \"sometimes\"\n").unwrap();
    let out = gatehouse()
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("routes[0].path (line 5)"), "{err}");
    assert!(err.contains("routes[0].access (line 6)"), "{err}");
}

async fn list_filters_and_roles(b: Backend) {
    let (_db, cli) = fresh(b).await;
    for (u, tier) in [("alice", "free"), ("bob", "premium"), ("carol", "premium")] {
        let email = format!("{u}@example.com");
        cli.ok(
            &[
                "user",
                "create",
                "--username",
                u,
                "--email",
                &email,
                "--tier",
                tier,
                "--password-stdin",
            ],
            Some(PW),
        );
    }
    let v = cli.json(&["user", "list", "--tier", "premium", "--json"]);
    assert_eq!(v["total"], 2);
    assert_eq!(v["users"][0]["username"], "bob");
    let v = cli.json(&["user", "list", "--search", "CAR", "--json"]);
    assert_eq!(v["users"].as_array().unwrap().len(), 1);
    let v = cli.json(&["user", "list", "--limit", "1", "--offset", "1", "--json"]);
    assert_eq!(
        (v["total"].as_i64(), v["users"][0]["username"].as_str()),
        (Some(3), Some("bob"))
    );

    cli.ok(
        &["role", "grant", "alice", "editor", "--expires", "2h"],
        None,
    );
    cli.ok(
        &[
            "role",
            "grant",
            "bob",
            " Editor ",
            "--expires",
            "2099-01-01T00:00:00Z",
        ],
        None,
    );
    let r = cli.json(&["role", "list", "alice", "--json"]);
    assert_eq!(r["effective"], serde_json::json!(["editor"]));
    assert!(r["roles"][0]["expires_at"].is_string());
    // Role names are normalised (trimmed, lowercase) wherever they come in.
    let v = cli.json(&["user", "list", "--role", "Editor", "--json"]);
    assert_eq!(v["total"], 2);
    cli.ok(&["role", "revoke", "alice", "EDITOR"], None);
    let v = cli.json(&["user", "list", "--role", "editor", "--json"]);
    assert_eq!(v["total"], 1);
    let bad = cli.run(
        &["role", "grant", "alice", "editor", "--expires", "someday"],
        None,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("someday"));
}

async fn lock_delete_restore(b: Backend) {
    let (_db, cli) = fresh(b).await;
    cli.ok(
        &[
            "user",
            "create",
            "--username",
            "alice",
            "--email",
            "alice@example.com",
            "--password-stdin",
        ],
        Some(PW),
    );
    cli.ok(&["user", "lock", "alice", "--for", "1h"], None);
    assert_eq!(
        cli.json(&["user", "show", "alice", "--json"])["is_locked"],
        true
    );
    cli.ok(&["user", "unlock", "alice"], None);
    assert_eq!(
        cli.json(&["user", "show", "alice", "--json"])["is_locked"],
        false
    );
    cli.ok(
        &["user", "set-password", "alice", "--password-stdin"],
        Some("another long passphrase"),
    );
    cli.ok(&["user", "delete", "alice"], None);
    assert_eq!(
        cli.json(&["user", "show", "alice", "--json"])["is_deleted"],
        true
    );
    assert_eq!(cli.json(&["user", "list", "--json"])["total"], 0);
    assert_eq!(
        cli.json(&["user", "list", "--deleted", "--json"])["total"],
        1
    );
    cli.ok(&["user", "restore", "alice"], None);
    assert_eq!(
        cli.json(&["user", "show", "alice", "--json"])["is_deleted"],
        false
    );
}
