//! A mapping file for another layout, and the exit codes of commands that cannot work.

use super::fixture::{Engine, SourceDb};
use super::{Target, report};
use crate::both_backends;
use crate::harness::Backend;

const MAPPING: &str = r#"
table = "customers"

[columns]
id = "customer_no"
email = "mail"
username = "handle"
password_hash = "secret"
subscription_tier = "plan_name"
created_at = "joined"
phone = ""

[tiers]
gold = "premium"
Platinum = "enterprise"
"#;

both_backends! {
    mapping_file_for_another_layout,
}

async fn mapping_file_for_another_layout(b: Backend) {
    let source = SourceDb::new(Engine::Sqlite).await.unwrap();
    let rename = [
        ("id", "customer_no"),
        ("email", "mail"),
        ("username", "handle"),
        ("password", "secret"),
        ("subscription_tier", "plan_name"),
        ("created_at", "joined"),
    ];
    source.load("customers", &rename).await;
    let t = Target::new(b).await.with_existing_users().await;
    let mapping = t.path("mapping.toml");
    std::fs::write(&mapping, MAPPING).unwrap();
    let report_path = t.path("report.json");
    let out = t.import_ok(&[
        "--from",
        &source.url,
        "--mapping",
        &mapping,
        "--report",
        &report_path,
    ]);
    assert!(out.contains("table customers"), "{out}");
    assert!(
        out.contains("email                <- mail  (mapping file)"),
        "{out}"
    );
    assert!(out.contains("full_name            <- name\n"), "{out}");
    let summary = &report(&report_path)["summary"];
    assert_eq!(summary["imported"], 16);
    assert_eq!(summary["unknown_tier"], 0, "both odd tiers are translated");
    let carol = t.store.user_by_email("carol.smith+news@example.org").await;
    assert_eq!(carol.unwrap().unwrap().subscription_tier, "premium");
    let leo = t.store.user_by_username("leo").await.unwrap().unwrap();
    assert_eq!(leo.subscription_tier, "enterprise");
    let alice = t.store.user_by_username("alice").await.unwrap().unwrap();
    assert_eq!(alice.phone, None, "an emptied column is not read");
    assert_eq!(alice.created_at.to_string(), "2021-03-04T05:06:07Z");
    assert!(
        alice
            .password_hash
            .unwrap()
            .starts_with("pbkdf2:sha256:1000$")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_that_cannot_work_exit_2() {
    let source = SourceDb::new(Engine::Sqlite).await.unwrap();
    source.load("leads", &[]).await;
    let t = Target::new(Backend::Sqlite).await;
    let bad_mapping = t.path("bad.toml");
    std::fs::write(
        &bad_mapping,
        "[columns]\nemial = \"email\"\nphone = \"tel\"\n",
    )
    .unwrap();
    let missing = format!("sqlite://{}", t.path("missing.db"));
    for (args, code, says) in [
        (
            vec!["--from", "ftp://example.com/leads"],
            2,
            "unsupported source",
        ),
        (
            vec!["--from", &source.url, "--table", "nosuch"],
            2,
            "no table \"nosuch\"",
        ),
        (
            vec!["--from", &source.url, "--mapping", &bad_mapping],
            2,
            "emial",
        ),
        (
            vec!["--from", &source.url, "--mapping", "nope.toml"],
            2,
            "nope.toml",
        ),
        (vec!["--from", &source.url, "--batch", "0"], 2, "--batch"),
        (vec![], 2, "--from"),
        (vec!["--from", &missing], 1, "cannot open the source"),
    ] {
        let out = t.import(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // The mapping's problems are reported together.
    let out = t.import(&["--from", &source.url, "--mapping", &bad_mapping]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("emial") && err.contains("\"tel\""), "{err}");
    assert_eq!(t.user_count().await, 0);
}
