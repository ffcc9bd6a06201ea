//! Password hashes written by Python Werkzeug's `generate_password_hash`.
//!
//! Apps moving behind Gatehouse from Flask keep their users' rows as they are,
//! so a login can be checked against the old hash and then re-hashed with
//! Gatehouse's own scheme. Every format any Werkzeug release has written is read:
//!
//! * `pbkdf2:<alg>:<iterations>$salt$hex` (and `pbkdf2:<alg>$salt$hex`),
//! * `scrypt:<N>:<r>:<p>$salt$hex` (and `scrypt$salt$hex`),
//! * `<alg>$salt$hex`, an HMAC keyed with the salt (Werkzeug before 2.3),
//! * `<alg>$$hex`, a bare digest (older apps; Werkzeug before 2.3 still read it).
//!
//! `plain$$password` is refused: accepting it would turn a leaked table straight
//! into working passwords, and no account should be let in on one.
//!
//! The stored row is as untrusted as the password: a hostile or corrupted row may
//! ask for any work factor, so the parameters are bounded before any hashing.

use hmac::{Hmac, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;

/// Ten times Werkzeug 3.1's own default, above anything a real app stored, yet
/// still only seconds of one core for a hostile row.
const MAX_PBKDF2_ITERATIONS: u64 = 10_000_000;
/// scrypt needs 128·N·r bytes, and its time grows with N·r·p, so one bound on
/// 128·N·r·p caps both. Werkzeug's default (N=2^15, r=8, p=1) needs 32 MiB.
const MAX_SCRYPT_COST_BYTES: u128 = 256 * 1024 * 1024;
/// No Werkzeug release writes `pbkdf2:<alg>` without a count, but each reads a
/// missing one as its own default: 50000 in 0.14, 150000 in 0.16 and 1.0,
/// 260000 in 2.0, 600000 in 2.3, 1000000 in 3.1. This follows 0.16 and 1.0; a
/// row meant for another release's default just fails to match, safely.
const UNWRITTEN_PBKDF2_ITERATIONS: u32 = 150_000;
/// `scrypt` with no parameters means Werkzeug's defaults.
const DEFAULT_SCRYPT: (u64, u64, u64) = (1 << 15, 8, 1);
/// Werkzeug leaves hashlib.scrypt's dklen at its default of 64 bytes.
const SCRYPT_LEN: usize = 64;
/// Longest method field an error repeats; real ones are at most about 25.
const MAX_QUOTED: usize = 32;

/// Error for a stored hash that is not a well-formed Werkzeug hash.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LegacyHashError {
    /// The method field names no format Werkzeug wrote (or one refused, like `plain`).
    #[error("unknown Werkzeug hash method {0:?}")]
    UnknownMethod(String),
    /// The hash does not have the shape its method requires.
    #[error("malformed Werkzeug hash: {0}")]
    Malformed(&'static str),
    /// Well-formed, but the work factor is invalid or beyond what Gatehouse will spend.
    #[error("unsupported Werkzeug hash parameters: {0}")]
    UnsupportedParameters(String),
}

/// The digests hashlib offered that Werkzeug apps used. Names match hashlib's,
/// case-insensitively, as OpenSSL's lookup behind `hashlib.new` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Alg {
    fn from_name(name: &str) -> Option<Self> {
        const NAMES: [(&str, Alg); 6] = [
            ("md5", Alg::Md5),
            ("sha1", Alg::Sha1),
            ("sha224", Alg::Sha224),
            ("sha256", Alg::Sha256),
            ("sha384", Alg::Sha384),
            ("sha512", Alg::Sha512),
        ];
        NAMES
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|&(_, alg)| alg)
    }

    fn output_len(self) -> usize {
        match self {
            Alg::Md5 => 16,
            Alg::Sha1 => 20,
            Alg::Sha224 => 28,
            Alg::Sha256 => 32,
            Alg::Sha384 => 48,
            Alg::Sha512 => 64,
        }
    }
}

/// Runs `$body` with `$ty` naming the RustCrypto type for `$alg`; the generic
/// bounds of `pbkdf2_hmac` and `Hmac` are too unwieldy to spell out once.
macro_rules! with_alg {
    ($alg:expr, $ty:ident => $body:expr) => {
        match $alg {
            Alg::Md5 => {
                type $ty = Md5;
                $body
            }
            Alg::Sha1 => {
                type $ty = Sha1;
                $body
            }
            Alg::Sha224 => {
                type $ty = Sha224;
                $body
            }
            Alg::Sha256 => {
                type $ty = Sha256;
                $body
            }
            Alg::Sha384 => {
                type $ty = Sha384;
                $body
            }
            Alg::Sha512 => {
                type $ty = Sha512;
                $body
            }
        }
    };
}

#[derive(Debug)]
enum Method {
    Pbkdf2 {
        alg: Alg,
        iterations: u32,
    },
    Scrypt(scrypt::Params),
    /// HMAC keyed with the salt, or the bare digest when the salt is empty.
    Salted(Alg),
}

impl Method {
    fn output_len(&self) -> usize {
        match self {
            Method::Pbkdf2 { alg, .. } | Method::Salted(alg) => alg.output_len(),
            Method::Scrypt(_) => SCRYPT_LEN,
        }
    }
}

/// True when `stored` looks like a Werkzeug hash (method prefix recognised), without verifying.
pub fn is_werkzeug_hash(stored: &str) -> bool {
    let Some((method, _, _)) = split_fields(stored) else {
        return false;
    };
    match method.split_once(':').map_or(method, |(name, _)| name) {
        "pbkdf2" | "scrypt" => true,
        _ => Alg::from_name(method).is_some(),
    }
}

/// Constant-time verification. Ok(false) for a wrong password; Err for a malformed/unknown hash. Never panics on any input.
pub fn verify_werkzeug(stored: &str, password: &str) -> Result<bool, LegacyHashError> {
    let (method, salt, digest_hex) =
        split_fields(stored).ok_or(LegacyHashError::Malformed("expected method$salt$hash"))?;
    let method = parse_method(method)?;
    let expected_len = method.output_len();
    // Checked before decoding so a wrong-sized row costs no hashing and is
    // reported as broken rather than as a wrong password.
    if digest_hex.len() != expected_len * 2 {
        return Err(LegacyHashError::Malformed(
            "hash has the wrong length for its method",
        ));
    }
    let stored_digest = hex::decode(digest_hex)
        .map_err(|_| LegacyHashError::Malformed("hash is not hexadecimal"))?;
    let computed = compute(&method, salt.as_bytes(), password.as_bytes())?;
    Ok(computed.ct_eq(&stored_digest).into())
}

/// Werkzeug splits on the first two `$`, so the salt never holds one.
fn split_fields(stored: &str) -> Option<(&str, &str, &str)> {
    let (method, rest) = stored.split_once('$')?;
    let (salt, digest) = rest.split_once('$')?;
    Some((method, salt, digest))
}

fn parse_method(field: &str) -> Result<Method, LegacyHashError> {
    let mut parts = field.split(':');
    match parts.next() {
        Some("pbkdf2") => {
            let alg_name = parts
                .next()
                .ok_or(LegacyHashError::Malformed("pbkdf2 without a hash name"))?;
            let alg = Alg::from_name(alg_name).ok_or_else(|| unknown(field))?;
            let iterations = match parts.next() {
                None => UNWRITTEN_PBKDF2_ITERATIONS,
                Some(count) => pbkdf2_iterations(count)?,
            };
            if parts.next().is_some() {
                return Err(LegacyHashError::Malformed(
                    "pbkdf2 takes at most two parameters",
                ));
            }
            Ok(Method::Pbkdf2 { alg, iterations })
        }
        Some("scrypt") => {
            let params: Vec<&str> = parts.collect();
            let (n, r, p) = match params.as_slice() {
                [] => DEFAULT_SCRYPT,
                [n, r, p] => (
                    number(n, "scrypt N is not a number")?,
                    number(r, "scrypt r is not a number")?,
                    number(p, "scrypt p is not a number")?,
                ),
                _ => {
                    return Err(LegacyHashError::Malformed(
                        "scrypt takes three parameters or none",
                    ));
                }
            };
            scrypt_params(n, r, p).map(Method::Scrypt)
        }
        _ => Alg::from_name(field)
            .map(Method::Salted)
            .ok_or_else(|| unknown(field)),
    }
}

fn pbkdf2_iterations(count: &str) -> Result<u32, LegacyHashError> {
    let iterations = number(count, "pbkdf2 iteration count is not a number")?;
    if iterations == 0 {
        return Err(LegacyHashError::Malformed("pbkdf2 iteration count is zero"));
    }
    if iterations > MAX_PBKDF2_ITERATIONS {
        return Err(LegacyHashError::UnsupportedParameters(format!(
            "pbkdf2 iteration count {iterations} is over the limit of {MAX_PBKDF2_ITERATIONS}"
        )));
    }
    u32::try_from(iterations).map_err(|_| {
        LegacyHashError::UnsupportedParameters(format!(
            "pbkdf2 iteration count {iterations} is too large"
        ))
    })
}

fn scrypt_params(n: u64, r: u64, p: u64) -> Result<scrypt::Params, LegacyHashError> {
    let unsupported = |why: &str| {
        LegacyHashError::UnsupportedParameters(format!("scrypt N={n}, r={r}, p={p}: {why}"))
    };
    if n < 2 || !n.is_power_of_two() {
        return Err(unsupported("N must be a power of two above 1"));
    }
    if r == 0 || p == 0 {
        return Err(unsupported("r and p must be at least 1"));
    }
    let cost = [n, r, p]
        .into_iter()
        .try_fold(128u128, |acc, factor| acc.checked_mul(u128::from(factor)));
    if cost.is_none_or(|bytes| bytes > MAX_SCRYPT_COST_BYTES) {
        return Err(unsupported("over the 256 MiB work limit"));
    }
    let log_n = u8::try_from(n.trailing_zeros()).map_err(|_| unsupported("N is too large"))?;
    let r = u32::try_from(r).map_err(|_| unsupported("r is too large"))?;
    let p = u32::try_from(p).map_err(|_| unsupported("p is too large"))?;
    // Also rejects N >= 2^(16·r), which scrypt's definition (and hashlib) forbid.
    scrypt::Params::new(log_n, r, p, SCRYPT_LEN).map_err(|_| unsupported("not valid for scrypt"))
}

/// Decimal digits only: Python's `int` would also take signs, spaces and `_`,
/// but Werkzeug never wrote those, so they point to a damaged row.
fn number(text: &str, malformed: &'static str) -> Result<u64, LegacyHashError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LegacyHashError::Malformed(malformed));
    }
    text.bytes()
        .try_fold(0u64, |acc, digit| {
            acc.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
        })
        .ok_or_else(|| {
            LegacyHashError::UnsupportedParameters(format!("{} is too large", quote(text)))
        })
}

fn compute(method: &Method, salt: &[u8], password: &[u8]) -> Result<Vec<u8>, LegacyHashError> {
    Ok(match *method {
        Method::Pbkdf2 { alg, iterations } => {
            let mut out = vec![0u8; alg.output_len()];
            with_alg!(alg, D => pbkdf2::pbkdf2_hmac::<D>(password, salt, iterations, &mut out));
            out
        }
        Method::Scrypt(params) => {
            let mut out = vec![0u8; SCRYPT_LEN];
            scrypt::scrypt(password, salt, &params, &mut out)
                .map_err(|_| LegacyHashError::Malformed("scrypt output length rejected"))?;
            out
        }
        Method::Salted(alg) if salt.is_empty() => with_alg!(alg, D => D::digest(password).to_vec()),
        Method::Salted(alg) => with_alg!(alg, D => {
            // Old Werkzeug keyed the HMAC with the salt and fed it the password.
            let mut mac = <Hmac<D> as Mac>::new_from_slice(salt)
                .map_err(|_| LegacyHashError::Malformed("salt is not a usable HMAC key"))?;
            mac.update(password);
            mac.finalize().into_bytes().to_vec()
        }),
    })
}

fn unknown(field: &str) -> LegacyHashError {
    LegacyHashError::UnknownMethod(quote(field))
}

/// Quotes a method field only when it reads like one; anything else may be a
/// stray plaintext password, so only its length is told.
fn quote(text: &str) -> String {
    let plausible = text.len() <= MAX_QUOTED
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'));
    if plausible {
        text.to_owned()
    } else {
        format!("<{} characters>", text.chars().count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Fixture {
        werkzeug: String,
        method: String,
        password: String,
        hash: String,
    }

    fn fixtures() -> Vec<Fixture> {
        serde_json::from_str(include_str!("../../tests/fixtures/werkzeug/hashes.json"))
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
}
