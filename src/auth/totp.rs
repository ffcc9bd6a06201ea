//! Time-based one-time passwords and what surrounds them.
//!
//! * Codes follow RFC 6238 as authenticator apps expect: HMAC-SHA1, 6 digits, 30-second steps,
//!   one step of tolerance either way. `totp-rs` computes them; the time always comes from the
//!   caller (the injected clock), never from the system.
//! * Secrets are 160 random bits, kept encrypted at rest with AES-256-GCM under the server's
//!   TOTP key. The stored form is `v1:` + base64(nonce ‖ ciphertext), and the user id is bound
//!   in as associated data, so a secret copied onto another row does not decrypt.
//! * Recovery codes are 80 random bits, shown once as `xxxx-xxxx-xxxx-xxxx` and stored as an
//!   HMAC under a key derived from the TOTP key (a stolen table alone cannot test guesses).
//!
//! Nothing here knows about HTTP or the database.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::{Rng, RngCore};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::store::UserId;

/// 160 bits, the size RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;
/// How many recovery codes a user gets at a time.
pub const RECOVERY_CODES: usize = 10;
/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;

const SEALED_PREFIX: &str = "v1:";
const NONCE_BYTES: usize = 12;
/// Crockford's base32 alphabet: no I, L, O or U to misread.
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    #[error("the stored two-factor secret cannot be decrypted (another server key, or damaged)")]
    Undecryptable,
    #[error("two-factor secret is unusable: {0}")]
    Invalid(String),
}

/// A fresh random secret.
pub fn new_secret() -> Secret<Vec<u8>> {
    let mut bytes = vec![0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Secret::new(bytes)
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> Result<totp_rs::Totp, TotpError> {
    // The otpauth label uses ':' as its separator, so neither part may contain one.
    let clean = |s: &str| s.replace(':', " ").trim().to_string();
    let issuer = clean(issuer);
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP_SECONDS)
        .with_secret(secret.to_vec())
        .with_account_name(clean(account))
        .with_issuer((!issuer.is_empty()).then_some(issuer))
        .build()
        .map_err(|e| TotpError::Invalid(e.to_string()))
}

/// The secret as people type it into an app: base32 without padding.
pub fn base32(secret: &[u8]) -> String {
    totp_rs::Secret::from(secret.to_vec()).to_base32()
}

/// The `otpauth://totp/...` URI an authenticator app reads from a QR code.
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> Result<String, TotpError> {
    totp(secret, issuer, account)?
        .to_url()
        .map_err(|e| TotpError::Invalid(e.to_string()))
}

/// The code for the step containing `unix_secs` (for tests and diagnostics).
pub fn code_at(secret: &[u8], unix_secs: u64) -> Result<String, TotpError> {
    Ok(totp(secret, "", "")?.generate(unix_secs).to_string())
}

/// The time step a 6-digit `code` belongs to, if it is valid at `unix_secs` (±1 step).
/// The caller must refuse a step that was already used.
pub fn matching_step(secret: &[u8], code: &str, unix_secs: u64) -> Option<i64> {
    let t = totp(secret, "", "").ok()?;
    t.check(code, unix_secs)
        .and_then(|step| i64::try_from(step).ok())
}

/// Removes spaces and dashes people type or paste with a code; lowercases letters.
pub fn normalize_code(input: &str) -> String {
    input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Whether a normalized input has the shape of a TOTP code (six digits).
pub fn is_totp_shaped(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

fn aad(user: UserId) -> Vec<u8> {
    format!("gatehouse totp secret v1 user:{}", user.0).into_bytes()
}

fn cipher(key: &Secret<[u8; 32]>) -> Aes256Gcm {
    Aes256Gcm::new(key.expose().into())
}

/// Encrypts a secret for `users.twofa_secret`.
pub fn seal(key: &Secret<[u8; 32]>, secret: &[u8], user: UserId) -> Result<String, TotpError> {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let aad = aad(user);
    let ct = cipher(key)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: secret,
                aad: &aad,
            },
        )
        .map_err(|_| TotpError::Invalid("encryption failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(out)))
}

/// Decrypts what [`seal`] produced for the same user.
pub fn open(
    key: &Secret<[u8; 32]>,
    stored: &str,
    user: UserId,
) -> Result<Secret<Vec<u8>>, TotpError> {
    let b64 = stored
        .strip_prefix(SEALED_PREFIX)
        .ok_or(TotpError::Undecryptable)?;
    let raw = STANDARD.decode(b64).map_err(|_| TotpError::Undecryptable)?;
    if raw.len() <= NONCE_BYTES {
        return Err(TotpError::Undecryptable);
    }
    let (nonce, ct) = raw.split_at(NONCE_BYTES);
    let aad = aad(user);
    cipher(key)
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
        .map(Secret::new)
        .map_err(|_| TotpError::Undecryptable)
}

/// Ten fresh recovery codes, formatted for display.
pub fn new_recovery_codes() -> Vec<Secret<String>> {
    let mut rng = rand::rngs::OsRng;
    (0..RECOVERY_CODES)
        .map(|_| {
            let chars: Vec<char> = (0..16)
                .map(|_| RECOVERY_ALPHABET[rng.gen_range(0..RECOVERY_ALPHABET.len())] as char)
                .collect();
            let groups: Vec<String> = chars.chunks(4).map(|c| c.iter().collect()).collect();
            Secret::new(groups.join("-"))
        })
        .collect()
}

/// Whether a normalized input has the shape of a recovery code.
pub fn is_recovery_shaped(code: &str) -> bool {
    code.len() == 16 && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn recovery_key(key: &Secret<[u8; 32]>) -> Hmac<Sha256> {
    let mut derive = mac(key.expose());
    derive.update(b"gatehouse recovery codes v1");
    let sub = derive.finalize().into_bytes();
    mac(&sub)
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts any key length"),
    }
}

/// The stored form of a recovery code (normalized first: case, dashes, Crockford look-alikes).
pub fn recovery_hash(key: &Secret<[u8; 32]>, user: UserId, code: &str) -> String {
    let normalized: String = normalize_code(code)
        .chars()
        .map(|c| match c {
            'o' => '0',
            'i' | 'l' => '1',
            other => other,
        })
        .collect();
    let mut m = recovery_key(key);
    m.update(format!("{}:", user.0).as_bytes());
    m.update(normalized.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// Index of `hash` in `stored`, compared in constant time per entry.
pub fn find_hash(stored: &[String], hash: &str) -> Option<usize> {
    stored
        .iter()
        .position(|h| bool::from(h.as_bytes().ct_eq(hash.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Secret<[u8; 32]> {
        Secret::new([7u8; 32])
    }

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B, SHA1, truncated to 6 digits.
        let secret = b"12345678901234567890";
        for (t, code) in [
            (59u64, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(code_at(secret, t).unwrap(), code, "t={t}");
        }
    }

    #[test]
    fn one_step_of_tolerance() {
        let s = new_secret();
        let t = 1_700_000_000u64;
        let now_step = (t / 30) as i64;
        let code = code_at(s.expose(), t).unwrap();
        assert_eq!(matching_step(s.expose(), &code, t), Some(now_step));
        assert_eq!(matching_step(s.expose(), &code, t + 30), Some(now_step));
        assert_eq!(matching_step(s.expose(), &code, t - 30), Some(now_step));
        assert_eq!(matching_step(s.expose(), &code, t + 90), None);
        assert_eq!(matching_step(s.expose(), "12345", t), None);
    }

    #[test]
    fn sealed_secret_round_trips_only_for_its_user() {
        let s = new_secret();
        assert_eq!(s.expose().len() * 8, 160);
        let sealed = seal(&key(), s.expose(), UserId(4)).unwrap();
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains(&base32(s.expose())));
        assert_eq!(
            open(&key(), &sealed, UserId(4)).unwrap().expose(),
            s.expose()
        );
        assert!(open(&key(), &sealed, UserId(5)).is_err());
        assert!(open(&Secret::new([8u8; 32]), &sealed, UserId(4)).is_err());
        assert!(open(&key(), "garbage", UserId(4)).is_err());
    }

    #[test]
    fn uri_names_issuer_and_account() {
        let uri = otpauth_uri(b"12345678901234567890", "Acme: Cloud", "ann@example.com").unwrap();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(
            uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
        assert!(uri.contains("issuer=Acme"), "{uri}");
    }

    #[test]
    fn recovery_codes_are_distinct_and_normalize() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), 10);
        let c = codes[0].expose();
        assert_eq!(c.len(), 19);
        assert!(is_recovery_shaped(&normalize_code(c)));
        let h = recovery_hash(&key(), UserId(1), c);
        assert_eq!(
            recovery_hash(&key(), UserId(1), &c.to_uppercase().replace('-', " ")),
            h
        );
        assert_ne!(recovery_hash(&key(), UserId(2), c), h);
        let stored: Vec<String> = codes
            .iter()
            .map(|c| recovery_hash(&key(), UserId(1), c.expose()))
            .collect();
        assert_eq!(find_hash(&stored, &h), Some(0));
        let unique: std::collections::HashSet<_> = stored.iter().collect();
        assert_eq!(unique.len(), 10);
    }
}
