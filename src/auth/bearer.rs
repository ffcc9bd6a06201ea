//! Random bearer values (session cookies, reset links, API tokens) and how they are stored.
//!
//! Only SHA-256 of a token is ever written to the database, so a leaked table cannot be
//! replayed. The tokens carry 256 random bits, so a fast hash is enough.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// 256 random bits from the OS generator, base64url without padding (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Hex SHA-256 of a token: what the database keeps.
pub fn hash_token(token: &str) -> String {
    // Through a stack buffer: `hex::encode` builds its String a char at a time, which cost a
    // signed-in request more than the hash itself.
    let digest = Sha256::digest(token.as_bytes());
    let mut out = [0u8; 64];
    if hex::encode_to_slice(digest, &mut out).is_ok()
        && let Ok(hex) = std::str::from_utf8(&out)
    {
        return hex.to_owned();
    }
    hex::encode(digest)
}

/// Whether a string has the shape of one of our tokens (cheap pre-check before any lookup).
pub fn looks_like_token(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_well_formed() {
        let a = random_token();
        let b = random_token();
        assert_ne!(a, b);
        assert!(looks_like_token(&a));
        assert_eq!(hash_token(&a).len(), 64);
        // FIPS 180-2's example: the stored form is lower-case hex of the plain SHA-256.
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(hash_token(&a), hash_token(&b));
        assert!(!looks_like_token("short"));
    }
}
