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
mod tests;
