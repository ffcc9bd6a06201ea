//! Whole documents through [`Settings::try_from`]: defaults, every problem reported with its
//! key and line, environment overrides, route warnings and the shipped example file.

use super::super::from_toml;
use super::*;

#[test]
fn defaults_are_valid() {
    let s = from_toml("").unwrap();
    assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.session.idle_timeout, Duration::from_secs(1800));
    assert_eq!(s.security.lockout_threshold, 5);
    assert_eq!(s.headers.user.as_str(), "x-auth-user");
    assert!(s.database.url.starts_with("sqlite://"));
}

#[test]
fn every_problem_is_reported_with_key_and_line() {
    let src = "[session]\nidle_timeout = \"soon\"\n\n[[routes]]\npath = \"/a/[\"\n\n[[routes]]\npath = \"/b\"\ntiers = [\"gold\"]\n";
    let err = from_toml(src).unwrap_err().to_string();
    assert!(err.contains("session.idle_timeout (line 2)"), "{err}");
    assert!(err.contains("routes[0].path (line 5)"), "{err}");
    assert!(
        err.contains("routes[1].tiers (line 9)") && err.contains("free, beta, premium, enterprise"),
        "{err}"
    );
}

#[test]
fn unknown_key_names_its_line() {
    let err = from_toml("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 3") && err.contains("lisen"), "{err}");
}

#[test]
fn globs_match_segments() {
    let one = PathMatcher::new("/a/*", true).unwrap();
    assert!(one.is_match("/a/b") && !one.is_match("/a/b/c"));
    let deep = PathMatcher::new("/a/**", true).unwrap();
    assert!(
        deep.is_match("/a/b/c")
            && deep.is_match("/a")
            && deep.is_match("/a/")
            && !deep.is_match("/ab")
    );
    let exact = PathMatcher::new("/x", true).unwrap();
    assert!(exact.is_match("/x") && !exact.is_match("/x/"));
}

#[test]
fn shadowed_route_is_a_warning() {
    let s = from_toml("[[routes]]\npath = \"/a/**\"\n[[routes]]\npath = \"/a/b\"\naccess = \"public\"\n[[routes]]\npath = \"/c\"\n").unwrap();
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert!(s.warnings[0].contains("\"/a/b\" (line 4)"));
}

#[test]
fn portal_flow_keys() {
    let s = from_toml(
        "[security]\nreset_token_ttl = \"2h\"\nverification_token_ttl = \"3d\"\n\
         reset_requests_per_account = 2\nreset_requests_per_ip = 4\n\
         reset_throttle_window = \"30m\"\ntwofa_pending_ttl = \"2m\"\ntwofa_max_attempts = 3\n\
         [mail]\nsend_timeout = \"3s\"\n",
    )
    .unwrap();
    assert_eq!(s.security.reset_token_ttl, Duration::from_secs(7200));
    assert_eq!(
        s.security.verification_token_ttl,
        Duration::from_secs(3 * 86400)
    );
    assert_eq!(s.security.reset_requests_per_account, 2);
    assert_eq!(s.security.twofa_max_attempts, 3);
    assert_eq!(s.mail.send_timeout, Duration::from_secs(3));
    let d = from_toml("").unwrap();
    assert_eq!(d.security.reset_token_ttl, Duration::from_secs(3600));
    assert_eq!(d.security.twofa_pending_ttl, Duration::from_secs(300));
    let err = from_toml("[security]\ntwofa_max_attempts = 0\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("security.twofa_max_attempts (line 2)"),
        "{err}"
    );
}

/// The example file parses, and so does its portal section with every key uncommented.
#[test]
fn example_config_documents_real_keys() {
    let example = include_str!("../../../config/gatehouse.example.toml");
    from_toml(example).unwrap();
    let section = example
        .split("# Sign-in portal:")
        .nth(1)
        .expect("the portal section");
    let uncommented: String = section
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| {
            l.starts_with('[')
                || l.split_once(" = ")
                    .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(uncommented.contains("send_timeout"), "{uncommented}");
    from_toml(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
}

#[test]
fn env_overrides_file() {
    let doc = Document::parse("t", "[database]\nurl = \"sqlite://a.db\"\n")
        .unwrap()
        .with_env(vec![(
            "GATEHOUSE_DATABASE_URL".into(),
            "postgres://u:pw@h/db".into(),
        )]);
    let s = Settings::try_from(doc).unwrap();
    assert_eq!(s.database.url, "postgres://u:pw@h/db");
}

mod example {
    #[test]
    fn the_example_config_is_valid() {
        let s =
            super::super::super::from_toml(include_str!("../../../config/gatehouse.example.toml"))
                .unwrap();
        assert_eq!(s.routes.len(), 4);
        // The example shows a method-limited rule on purpose, with the warning it earns.
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("_method"), "{:?}", s.warnings);
    }
}
