//! Sessions and credentials: `[session]` (cookie and lifetimes) and `[security]` (lockout,
//! hashing cost, password policy, mailed-link lifetimes, two-factor limits, signed assertions).

use std::path::PathBuf;
use std::time::Duration;

use super::super::Secret;
use super::super::raw::{RawSecurity, RawSession};
use super::super::settings::*;
use super::Ctx;

pub(super) fn session(c: &mut Ctx<'_>, se: &RawSession) -> SessionSettings {
    let idle_timeout = c.duration(
        "session.idle_timeout",
        &se.idle_timeout,
        Duration::from_secs(30 * 60),
    );
    let absolute_timeout = c.duration(
        "session.absolute_timeout",
        &se.absolute_timeout,
        Duration::from_secs(12 * 3600),
    );
    if idle_timeout > absolute_timeout {
        let line = se.idle_timeout.as_ref().map(|s| c.line(s));
        c.problem(
            "session.idle_timeout",
            line,
            "must not be longer than session.absolute_timeout",
        );
    }
    let remember_me_timeout = se.remember_me.unwrap_or(false).then(|| {
        c.duration(
            "session.remember_me_timeout",
            &se.remember_me_timeout,
            Duration::from_secs(30 * 24 * 3600),
        )
    });
    let cookie_name = match c.text(&se.cookie_name, None) {
        None => "gatehouse_session".to_string(),
        Some((v, line)) => {
            if v.is_empty()
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                c.problem(
                    "session.cookie_name",
                    line,
                    "use letters, digits, '_' and '-' only",
                );
            }
            v
        }
    };
    let cache_capacity = c.int(
        "session.cache_capacity",
        &se.cache_capacity,
        100_000,
        1,
        100_000_000,
    ) as u64;
    let touch_interval = c.duration(
        "session.touch_interval",
        &se.touch_interval,
        Duration::from_secs(60),
    );

    let cookie_domain = c.text(&se.cookie_domain, None).and_then(|(v, line)| {
        // A leading dot is how older browsers wrote it; RFC 6265 ignores it.
        let d = v.trim().trim_start_matches('.').to_ascii_lowercase();
        let valid = !d.is_empty()
            && d.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if valid {
            Some(d)
        } else {
            c.problem(
                "session.cookie_domain",
                line,
                format!("{v:?} is not a domain name (e.g. \"example.com\")"),
            );
            None
        }
    });

    SessionSettings {
        cookie_name,
        idle_timeout,
        absolute_timeout,
        remember_me_timeout,
        cache_capacity,
        touch_interval,
        cookie_domain,
    }
}

pub(super) fn security(c: &mut Ctx<'_>, sec: &RawSecurity) -> SecuritySettings {
    let argon2 = Argon2Params {
        memory_kib: c.int(
            "security.argon2_memory_kib",
            &sec.argon2_memory_kib,
            19_456,
            8,
            4 * 1024 * 1024,
        ) as u32,
        iterations: c.int(
            "security.argon2_iterations",
            &sec.argon2_iterations,
            2,
            1,
            100,
        ) as u32,
        parallelism: c.int(
            "security.argon2_parallelism",
            &sec.argon2_parallelism,
            1,
            1,
            64,
        ) as u32,
    };
    let username_rules = match c.text(&sec.username_pattern, None) {
        None => crate::accounts::UsernameRules::default(),
        Some((v, line)) => crate::accounts::UsernameRules::new(&v).unwrap_or_else(|e| {
            c.problem(
                "security.username_pattern",
                line,
                format!("{v:?} is not a valid regular expression: {e}"),
            );
            crate::accounts::UsernameRules::default()
        }),
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as i64;
    SecuritySettings {
        lockout_threshold: c.int(
            "security.lockout_threshold",
            &sec.lockout_threshold,
            5,
            1,
            1000,
        ) as u32,
        lockout_duration: c.duration(
            "security.lockout_duration",
            &sec.lockout_duration,
            Duration::from_secs(30 * 60),
        ),
        argon2,
        // Hashing never takes every core from proxying: one fewer than the cores, at least one.
        hash_concurrency: c.int(
            "security.hash_concurrency",
            &sec.hash_concurrency,
            (cores - 1).max(1),
            1,
            1024,
        ) as usize,
        min_password_length: c.int(
            "security.min_password_length",
            &sec.min_password_length,
            12,
            8,
            128,
        ) as usize,
        secret_key: c
            .text(&sec.secret_key, Some("GATEHOUSE_SECRET_KEY"))
            .map(|(v, _)| Secret::new(v)),
        secret_key_file: c.path(&sec.secret_key_file, Some("GATEHOUSE_SECRET_KEY_FILE")),
        require_2fa_for_admins: sec.require_2fa_for_admins.unwrap_or(false),
        login_attempts_per_ip: c.int(
            "security.login_attempts_per_ip",
            &sec.login_attempts_per_ip,
            20,
            1,
            1_000_000,
        ) as u32,
        login_throttle_window: c.duration(
            "security.login_throttle_window",
            &sec.login_throttle_window,
            Duration::from_secs(15 * 60),
        ),
        // --- portal flows ---
        reset_token_ttl: c.duration(
            "security.reset_token_ttl",
            &sec.reset_token_ttl,
            Duration::from_secs(3600),
        ),
        verification_token_ttl: c.duration(
            "security.verification_token_ttl",
            &sec.verification_token_ttl,
            Duration::from_secs(24 * 3600),
        ),
        reset_requests_per_account: c.int(
            "security.reset_requests_per_account",
            &sec.reset_requests_per_account,
            3,
            1,
            1_000_000,
        ) as u32,
        reset_requests_per_ip: c.int(
            "security.reset_requests_per_ip",
            &sec.reset_requests_per_ip,
            10,
            1,
            1_000_000,
        ) as u32,
        reset_throttle_window: c.duration(
            "security.reset_throttle_window",
            &sec.reset_throttle_window,
            Duration::from_secs(3600),
        ),
        twofa_pending_ttl: c.duration(
            "security.twofa_pending_ttl",
            &sec.twofa_pending_ttl,
            Duration::from_secs(5 * 60),
        ),
        twofa_max_attempts: c.int(
            "security.twofa_max_attempts",
            &sec.twofa_max_attempts,
            5,
            1,
            100,
        ) as u32,
        twofa_attempts_per_account: c.int(
            "security.twofa_attempts_per_account",
            &sec.twofa_attempts_per_account,
            5,
            1,
            1000,
        ) as u32,
        username_rules,
        assertion_key_files: assertion_key_files(c, sec),
        assertion_audience: c
            .text(&sec.assertion_audience, None)
            .map(|(v, _)| v)
            .filter(|v| !v.is_empty()),
        assertion_ttl: assertion_ttl(c, sec),
    }
}

fn assertion_key_files(c: &mut Ctx<'_>, sec: &RawSecurity) -> Vec<PathBuf> {
    use crate::config::raw::OneOrMany;
    let Some(v) = &sec.assertion_key_file else {
        return Vec::new();
    };
    let list: Vec<&String> = match v.get_ref() {
        OneOrMany::One(p) => vec![p],
        OneOrMany::Many(ps) => ps.iter().collect(),
    };
    if list.is_empty() || list.iter().any(|p| p.trim().is_empty()) {
        let line = c.line(v);
        c.problem(
            "security.assertion_key_file",
            Some(line),
            "give a path, or a list of paths (the first signs)",
        );
    }
    list.into_iter()
        .filter(|p| !p.trim().is_empty())
        .map(PathBuf::from)
        .collect()
}

fn assertion_ttl(c: &mut Ctx<'_>, sec: &RawSecurity) -> Duration {
    let default = Duration::from_secs(5 * 60);
    let ttl = c.duration("security.assertion_ttl", &sec.assertion_ttl, default);
    // Tokens are re-signed with a minute left, so a shorter lifetime would mean a signature
    // on nearly every request; a long one widens the window of a leaked token.
    if !(Duration::from_secs(120)..=Duration::from_secs(3600)).contains(&ttl) {
        let line = sec.assertion_ttl.as_ref().map(|s| c.line(s));
        c.problem("security.assertion_ttl", line, "must be between 2m and 1h");
        return default;
    }
    ttl
}
