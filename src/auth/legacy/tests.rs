//! Verification against hashes real Werkzeug releases wrote (tests/fixtures/werkzeug), and
//! every way a damaged or hostile row must fail without a panic or unbounded work.

use super::*;

#[derive(serde::Deserialize)]
struct Fixture {
    werkzeug: String,
    method: String,
    password: String,
    hash: String,
}

fn fixtures() -> Vec<Fixture> {
    serde_json::from_str(include_str!("../../../tests/fixtures/werkzeug/hashes.json"))
        .expect("hashes.json parses")
}

/// Rows cheap enough to hash many times over in a debug build.
fn is_cheap(hash: &str) -> bool {
    [
        "pbkdf2:sha1:1000$",
        "pbkdf2:sha256:1000$",
        "pbkdf2:sha512:1000$",
        "scrypt:1024:8:1$",
    ]
    .iter()
    .any(|prefix| hash.starts_with(prefix))
        || (!hash.starts_with("pbkdf2") && !hash.starts_with("scrypt"))
}

#[test]
fn fixtures_cover_every_format() {
    let all = fixtures();
    let has = |pred: &dyn Fn(&Fixture) -> bool| all.iter().any(pred);
    for prefix in [
        "pbkdf2:sha1:",
        "pbkdf2:sha256:",
        "pbkdf2:sha512:",
        "scrypt:1024:8:1$",
        "scrypt:32768:8:1$",
        "pbkdf2:sha256:150000$",
        "pbkdf2:sha256$",
        "sha256$",
        "sha1$",
        "md5$$",
    ] {
        assert!(
            has(&|f| f.hash.starts_with(prefix)),
            "no fixture for {prefix}"
        );
    }
    assert!(
        has(&|f| f.werkzeug.starts_with("3.")),
        "no current Werkzeug fixture"
    );
    assert!(
        has(&|f| f.werkzeug.starts_with("0.")),
        "no old Werkzeug fixture"
    );
    assert!(has(&|f| !f.password.is_ascii()), "no non-ASCII password");
    assert!(
        has(&|f| f.method == "pbkdf2"),
        "no default-parameter pbkdf2"
    );
    assert!(
        has(&|f| f.method == "scrypt"),
        "no default-parameter scrypt"
    );
}

#[test]
fn werkzeug_fixtures_verify() {
    for f in fixtures() {
        let what = format!("{} {} {:?}", f.werkzeug, f.method, f.hash);
        assert!(is_werkzeug_hash(&f.hash), "{what}: not recognised");
        assert_eq!(
            verify_werkzeug(&f.hash, &f.password),
            Ok(true),
            "{what}: right password"
        );
    }
}

#[test]
fn werkzeug_fixtures_reject_wrong_passwords() {
    for f in fixtures().into_iter().filter(|f| is_cheap(&f.hash)) {
        let what = format!("{} {:?}", f.method, f.hash);
        for wrong in [
            format!("{}x", f.password),
            f.password.to_uppercase() + "!",
            String::new(),
        ] {
            if wrong != f.password {
                assert_eq!(
                    verify_werkzeug(&f.hash, &wrong),
                    Ok(false),
                    "{what}: {wrong:?}"
                );
            }
        }
    }
}

#[test]
fn wrong_password_against_default_cost_hashes() {
    for f in fixtures()
        .into_iter()
        .filter(|f| f.method == "scrypt" || f.method == "pbkdf2")
    {
        assert_eq!(verify_werkzeug(&f.hash, "not it"), Ok(false), "{}", f.hash);
    }
}

#[test]
fn digest_name_and_hex_case_do_not_matter() {
    let f = fixtures()
        .into_iter()
        .find(|f| f.hash.starts_with("sha256$") && !f.hash.starts_with("sha256$$"))
        .expect("a salted sha256 fixture");
    let (_, rest) = f.hash.split_once('$').expect("has $");
    let (salt, hex) = rest.split_once('$').expect("has two $");
    let shouting = format!("SHA256${salt}${}", hex.to_uppercase());
    assert_eq!(verify_werkzeug(&shouting, &f.password), Ok(true));
}

#[test]
fn missing_iteration_count_means_150000() {
    let f = fixtures()
        .into_iter()
        .find(|f| f.hash.starts_with("pbkdf2:sha256:150000$"))
        .expect("the old default pbkdf2 fixture");
    let without = f.hash.replacen(":150000", "", 1);
    assert_eq!(verify_werkzeug(&without, &f.password), Ok(true));
    let other_count = f.hash.replacen(":150000", ":150001", 1);
    assert_eq!(verify_werkzeug(&other_count, &f.password), Ok(false));
}

#[test]
fn tampered_salt_or_digest_fails() {
    for f in fixtures().into_iter().filter(|f| is_cheap(&f.hash)) {
        let (method, rest) = f.hash.split_once('$').expect("has $");
        let (salt, hex) = rest.split_once('$').expect("has two $");
        if !salt.is_empty() {
            let other_salt = format!("{method}${salt}x${hex}");
            assert_eq!(
                verify_werkzeug(&other_salt, &f.password),
                Ok(false),
                "{other_salt}"
            );
        }
        let flipped: String = hex
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    if c == '0' { '1' } else { '0' }
                } else {
                    c
                }
            })
            .collect();
        let other_digest = format!("{method}${salt}${flipped}");
        assert_eq!(
            verify_werkzeug(&other_digest, &f.password),
            Ok(false),
            "{other_digest}"
        );
    }
}

/// Well-formed digests sized for sha256 and for scrypt, for rows whose other
/// fields are under test.
const H32: &str = "00000000000000000000000000000000000000000000000000000000000000ff";
const H64: &str = "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

fn malformed(stored: &str) {
    let got = verify_werkzeug(stored, "password");
    assert!(
        matches!(got, Err(LegacyHashError::Malformed(_))),
        "{stored:?}: {got:?}"
    );
}

fn unknown_method(stored: &str) {
    let got = verify_werkzeug(stored, "password");
    assert!(
        matches!(got, Err(LegacyHashError::UnknownMethod(_))),
        "{stored:?}: {got:?}"
    );
}

fn unsupported(stored: &str) {
    let got = verify_werkzeug(stored, "password");
    assert!(
        matches!(got, Err(LegacyHashError::UnsupportedParameters(_))),
        "{stored:?}: {got:?}"
    );
}

#[test]
fn shape_errors() {
    for stored in [
        "",
        "$",
        "sha256",
        "sha256$salt",
        "pbkdf2:sha256:1000",
        "hunter2",
    ] {
        malformed(stored);
    }
    // Wrong digest length, including none at all and a trailing `$`.
    malformed("sha256$salt$");
    malformed("sha256$salt$abcd");
    malformed(&format!("sha256$salt${H32}00"));
    malformed(&format!("sha256$salt${H32}$"));
    malformed(&format!("md5$${H32}"));
    malformed(&format!("scrypt:1024:8:1$salt${H32}"));
    malformed(&format!("pbkdf2:sha512:1000$salt${H32}"));
}

#[test]
fn bad_hex_is_an_error() {
    let bad = format!("zz{}", &H32[2..]);
    malformed(&format!("sha256$salt${bad}"));
    malformed(&format!("pbkdf2:sha256:1000$salt${bad}"));
    let non_ascii = format!("é{}", &H32[2..]);
    malformed(&format!("sha256$salt${non_ascii}"));
    malformed(&format!("sha256$salt${}", " ".repeat(64)));
}

#[test]
fn bad_pbkdf2_parameters() {
    for count in [
        "",
        "abc",
        "-5",
        "+5",
        " 1000",
        "1_000",
        "1e3",
        "0",
        "00",
        "１０００",
    ] {
        malformed(&format!("pbkdf2:sha256:{count}$salt${H32}"));
    }
    malformed(&format!("pbkdf2:sha256:1000:1$salt${H32}"));
    malformed(&format!("pbkdf2$salt${H32}"));
    unknown_method(&format!("pbkdf2:md4:1000$salt${H32}"));
    unknown_method(&format!("pbkdf2::1000$salt${H32}"));
    unsupported(&format!("pbkdf2:sha256:10000001$salt${H32}"));
    unsupported(&format!("pbkdf2:sha256:4294967296$salt${H32}"));
    unsupported(&format!("pbkdf2:sha256:{}$salt${H32}", "9".repeat(40)));
}

#[test]
fn bad_scrypt_parameters() {
    for params in [
        "1024:8",
        "1024:8:1:1",
        "1024",
        ":8:1",
        "1024::1",
        "0x400:8:1",
        "-1024:8:1",
    ] {
        malformed(&format!("scrypt:{params}$salt${H64}"));
    }
    for params in [
        "1000:8:1", // N not a power of two
        "1:8:1",    // N must be above 1
        "0:8:1",
        "1024:0:1", // r and p must be at least 1
        "1024:8:0",
        "1048576:8:1",  // 1 GiB of memory
        "524288:8:1",   // 512 MiB
        "16384:8:1000", // p multiplies the work
        "65536:1:1",    // N >= 2^(16r) is outside scrypt's definition
        "9223372036854775808:8:1",
        "18446744073709551616:8:1",
        "1024:18446744073709551615:18446744073709551615",
    ] {
        unsupported(&format!("scrypt:{params}$salt${H64}"));
    }
}

#[test]
fn scrypt_limit_is_inclusive() {
    // 128·N·r·p = 256 MiB exactly is allowed; one step further is not.
    assert!(parse_method("scrypt:262144:8:1").is_ok());
    assert!(parse_method("scrypt:262144:8:2").is_err());
    assert!(parse_method("scrypt:262144:9:1").is_err());
}

#[test]
fn refused_and_foreign_formats() {
    unknown_method("plain$$password");
    unknown_method(&format!("sha3_256$salt${H32}"));
    unknown_method(&format!("sha256:1000$salt${H32}"));
    unknown_method(&format!("Pbkdf2:sha256:1000$salt${H32}"));
    unknown_method("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA");
    unknown_method("$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW");
    for stored in [
        "plain$$password",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        "",
        "sha256",
        "sha256$onlyone",
        "sha3_256$salt$00",
    ] {
        assert!(!is_werkzeug_hash(stored), "{stored:?}");
    }
    for stored in [
        "sha256$salt$junk",
        "pbkdf2:sha256:1000$s$h",
        "scrypt$s$h",
        "md5$$",
    ] {
        assert!(is_werkzeug_hash(stored), "{stored:?}");
    }
}

#[test]
fn errors_do_not_echo_the_whole_row() {
    let secret = "my-secret-plaintext-password-that-goes-on-and-on";
    for stored in [
        secret.to_owned(),
        format!("{secret}$$"),
        format!("{secret}:x$salt$00"),
    ] {
        let err = verify_werkzeug(&stored, "x").expect_err("not a hash");
        assert!(!err.to_string().contains(secret), "{err}");
    }
}

/// Every prefix and every one-character deletion of real hashes must give an
/// answer, never a panic; these stay cheap because the cost fields only shrink.
#[test]
fn damaged_fixtures_never_panic() {
    for f in fixtures().into_iter().filter(|f| is_cheap(&f.hash)) {
        let chars: Vec<(usize, char)> = f.hash.char_indices().collect();
        for &(i, c) in &chars {
            let prefix = &f.hash[..i];
            let deleted = format!("{}{}", prefix, &f.hash[i + c.len_utf8()..]);
            for stored in [prefix, deleted.as_str()] {
                let got = verify_werkzeug(stored, &f.password);
                assert_ne!(got, Ok(true), "{stored:?} matched after damage");
            }
        }
    }
}
