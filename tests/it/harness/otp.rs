//! An independent TOTP (RFC 6238: HMAC-SHA1, 6 digits, 30 s) and base32 decoder, so tests
//! check the server's codes against arithmetic of their own rather than the same library.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// RFC 4648 base32 without padding, as shown in `#totp-secret` (in groups of four: spaces are
/// skipped).
pub fn base32_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u64, 0u32);
    for c in s.trim().trim_end_matches('=').chars().filter(|c| *c != ' ') {
        let v = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u64 - 'A' as u64,
            c @ '2'..='7' => c as u64 - '2' as u64 + 26,
            other => panic!("not base32: {other:?}"),
        };
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

/// The code for the 30-second step that contains `unix_secs`.
pub fn code_at(secret: &[u8], unix_secs: i64) -> String {
    let counter = (unix_secs / 30) as u64;
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).unwrap();
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = (h[19] & 0x0f) as usize;
    let bin = (u32::from(h[off]) & 0x7f) << 24
        | u32::from(h[off + 1]) << 16
        | u32::from(h[off + 2]) << 8
        | u32::from(h[off + 3]);
    format!("{:06}", bin % 1_000_000)
}

#[test]
fn rfc6238_vector() {
    assert_eq!(code_at(b"12345678901234567890", 59), "287082");
    assert_eq!(base32_decode("GEZDGNBV"), b"12345");
}
