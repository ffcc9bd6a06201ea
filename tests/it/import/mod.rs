//! `gatehouse import-leads`, through the real binary: from SQLite, PostgreSQL and MariaDB
//! sources into SQLite and PostgreSQL targets, then a sign-in with the original password.

mod fixture;
mod options;
mod proxy;
mod resume;
mod store;

use std::path::Path;
use std::process::{Command, Output};

use gatehouse::accounts::{Accounts, AuthFailure, ClientInfo, NewAccount};
use gatehouse::config::Secret;
use gatehouse::store::Store;
use serde_json::Value;

use crate::both_backends;
use crate::harness::cli::succeeded;
use crate::harness::{AccountsFixture, Backend, Cli, TestDb};
use fixture::{Engine, SourceDb, leads, utc};

/// A migrated target database with the fixture's existing users, and the binary to run on it.
pub struct Target {
    pub db: TestDb,
    pub cli: Cli,
    pub store: Store,
    pub accounts: Accounts,
}

impl Target {
    pub async fn new(b: Backend) -> Target {
        let f = AccountsFixture::new(b).await.expect("backend available");
        Target {
            cli: Cli::new(&f.db),
            db: f.db,
            store: f.store,
            accounts: f.accounts,
        }
    }

    /// Creates the users the fixture's leads clash with.
    pub async fn with_existing_users(self) -> Target {
        for u in fixture::fixture()["existing_users"].as_array().unwrap() {
            let pw = Secret::new("a long enough password".to_string());
            let account = NewAccount::new(
                u["username"].as_str().unwrap(),
                u["email"].as_str().unwrap(),
                Some(pw),
            );
            self.accounts.create_user(account, None).await.unwrap();
        }
        self
    }

    /// `gatehouse import-leads ARGS`, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.cli.command(&["import-leads"]);
        cmd.args(args);
        cmd
    }

    /// Runs `gatehouse import-leads ARGS`.
    pub fn import(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run gatehouse")
    }

    /// Runs it and expects success; returns stdout.
    pub fn import_ok(&self, args: &[&str]) -> String {
        succeeded(args, self.import(args))
    }

    pub fn path(&self, name: &str) -> String {
        self.db.dir.path().join(name).display().to_string()
    }

    pub async fn user_count(&self) -> i64 {
        let (_, total) = self
            .store
            .list_users(
                &gatehouse::store::UserFilter {
                    limit: 0,
                    ..Default::default()
                },
                self.accounts.now(),
            )
            .await
            .unwrap();
        total
    }

    pub async fn imported_activity(&self) -> i64 {
        self.store
            .count_activity(Some("user_imported"))
            .await
            .unwrap()
    }
}

/// A count from the printed summary, e.g. the `16` of `  imported   16`.
pub fn summary_count(stdout: &str, label: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix(label)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no {label:?} in the summary:\n{stdout}"))
}

pub fn report(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(Path::new(path)).unwrap()).unwrap()
}

/// The summary the fixture must give on a first run into a target with its existing users.
pub fn expected_summary() -> Value {
    serde_json::json!({
        "rows": 24, "imported": 16, "already_imported": 0, "duplicate": 5, "invalid": 3,
        "unknown_hash_format": 2, "no_password": 1, "generated_usernames": 6,
        "unknown_tier": 2, "admins": 2,
    })
}

both_backends! {
    from_sqlite,
    from_postgres,
    from_mysql,
}

async fn from_sqlite(b: Backend) {
    scenario(b, Engine::Sqlite).await;
}

async fn from_postgres(b: Backend) {
    scenario(b, Engine::Postgres).await;
}

async fn from_mysql(b: Backend) {
    scenario(b, Engine::MySql).await;
}

/// Dry run, import, checks of every lead, a second run, and sign-ins.
async fn scenario(b: Backend, engine: Engine) {
    let Some(source) = SourceDb::new(engine).await else {
        return;
    };
    source.load("leads", &[]).await;
    let t = Target::new(b).await.with_existing_users().await;
    let from = source.url.clone();

    let dry_report = t.path("dry.json");
    let out = t.import_ok(&[
        "--from",
        &from,
        "--dry-run",
        "--batch",
        "4",
        "--report",
        &dry_report,
    ]);
    assert_eq!(summary_count(&out, "would import"), 16, "{out}");
    assert!(out.contains("password_hash        <- password"), "{out}");
    assert_eq!(t.user_count().await, 2, "a dry run writes no user");
    assert_eq!(
        t.imported_activity().await,
        0,
        "a dry run writes no activity"
    );
    assert_eq!(report(&dry_report)["summary"], expected_summary());

    let report_path = t.path("report.json");
    let out = t.import_ok(&["--from", &from, "--batch", "4", "--report", &report_path]);
    assert_eq!(summary_count(&out, "imported"), 16, "{out}");
    let r = report(&report_path);
    assert_eq!(r["summary"], expected_summary());
    assert_eq!(r["complete"], true);
    check_skipped(&r);
    let text = std::fs::read_to_string(&report_path).unwrap();
    assert!(
        !text.contains("hunter2") && !text.contains("$2b$"),
        "hashes leak"
    );
    let tier_warnings: Vec<&Value> = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["field"] == "subscription_tier")
        .collect();
    assert_eq!(tier_warnings.len(), 2, "{tier_warnings:?}");
    check_users(&t).await;
    assert_eq!(t.user_count().await, 18);
    assert_eq!(
        t.imported_activity().await,
        16,
        "one user_imported row per user"
    );

    let again = t.path("again.json");
    let out = t.import_ok(&["--from", &from, "--report", &again]);
    assert_eq!(summary_count(&out, "imported"), 0, "{out}");
    assert_eq!(summary_count(&out, "already imported"), 16, "{out}");
    assert_eq!(report(&again)["summary"]["already_imported"], 16);
    assert_eq!(t.user_count().await, 18, "a second run imports nothing");

    sign_in(&t).await;
    source.cleanup().await;
}

/// Each skipped lead is reported once, with the fixture's reason.
fn check_skipped(report: &Value) {
    let mut got: Vec<(String, String)> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let reason = s["reason"].as_str().unwrap().to_string();
            (s["id"].as_str().unwrap().to_string(), reason)
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = leads()
        .iter()
        .filter(|l| l["_expect"]["outcome"] == "skipped")
        .map(|l| {
            let reason = l["_expect"]["reason"].as_str().unwrap().to_string();
            (l["id"].to_string(), reason)
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
}

/// Every imported lead became the user the fixture describes.
async fn check_users(t: &Target) {
    for lead in leads()
        .iter()
        .filter(|l| l["_expect"]["outcome"] == "imported")
    {
        let e = &lead["_expect"];
        let email = lead["email"].as_str().unwrap();
        let u = t.store.user_by_email(email).await.unwrap().unwrap();
        let id = lead["id"].to_string();
        assert_eq!(u.legacy_lead_id.as_deref(), Some(id.as_str()), "lead {id}");
        assert_eq!(u.username, e["username"].as_str().unwrap(), "lead {id}");
        assert_eq!(
            u.subscription_tier,
            e["tier"].as_str().unwrap(),
            "lead {id}"
        );
        assert_eq!(
            u.credits_balance,
            e["credits"].as_i64().unwrap(),
            "lead {id}"
        );
        for (got, field) in [
            (u.is_admin, "is_admin"),
            (u.is_verified, "is_verified"),
            (u.is_active, "is_active"),
            (u.email_notifications, "email_notifications"),
            (u.sms_notifications, "sms_notifications"),
        ] {
            assert_eq!(Some(got), e[field].as_bool(), "lead {id} {field}");
        }
        assert_eq!(u.timezone, e["timezone"].as_str().unwrap(), "lead {id}");
        assert_eq!(u.language, e["language"].as_str().unwrap(), "lead {id}");
        assert_eq!(
            u.first_name.as_deref(),
            e["first_name"].as_str(),
            "lead {id}"
        );
        assert_eq!(u.last_name.as_deref(), e["last_name"].as_str(), "lead {id}");
        assert_eq!(Some(u.created_at.0), utc(lead, "created_at"), "lead {id}");
        assert_eq!(
            u.last_login.map(|t| t.0),
            utc(lead, "last_login"),
            "lead {id}"
        );
        match e["password"].as_str().unwrap() {
            "usable" => assert_eq!(u.password_hash.as_deref(), lead["password"].as_str()),
            _ => assert_eq!(u.password_hash, None, "lead {id}"),
        }
    }
}

/// Migrated users sign in with their original passwords; the hash becomes argon2id.
async fn sign_in(t: &Target) {
    let client = ClientInfo::default();
    for lead in leads()
        .iter()
        .filter(|l| l["_expect"]["outcome"] == "imported" && l["_expect"]["password"] == "usable")
    {
        let pw = Secret::new(lead["_password"].as_str().unwrap().to_string());
        // By email in another case, as a person might type it.
        let login = lead["email"].as_str().unwrap().to_uppercase();
        let u = t.accounts.authenticate(&login, &pw, &client).await;
        if lead["_expect"]["is_active"] == false {
            assert!(u.is_err(), "an inactive account stays shut");
            continue;
        }
        let u = u.unwrap_or_else(|e| panic!("lead {} cannot sign in: {e:?}", lead["id"]));
        let hash = u.password_hash.unwrap();
        assert!(
            hash.starts_with("$argon2id$"),
            "lead {}: {hash}",
            lead["id"]
        );
    }
    let pw = |s: &str| Secret::new(s.to_string());
    let alice = t
        .accounts
        .authenticate("alice", &pw("alice-pass-1"), &client)
        .await;
    assert!(alice.is_ok(), "the upgraded hash verifies too");
    let wrong = t
        .accounts
        .authenticate("alice", &pw("alice-pass-2"), &client)
        .await;
    assert!(matches!(wrong, Err(AuthFailure::InvalidCredentials)));
    // A plain-text "hash" was dropped, never trusted.
    let erin = t
        .accounts
        .authenticate("erin", &pw("hunter2"), &client)
        .await;
    assert!(matches!(erin, Err(AuthFailure::InvalidCredentials)));
}
