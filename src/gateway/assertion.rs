//! The signed identity assertion: a JWT (EdDSA, Ed25519) in `X-Auth-Assertion` on every
//! authorized request, in proxy and forward-auth mode, so an app can check who the user is
//! without trusting the network between it and Gatehouse. The public keys are served as a JWK
//! set at `/_auth/.well-known/jwks.json`.
//!
//! Tokens are made by `jsonwebtoken` (on ring, the TLS provider); ring reads the key pair for
//! the published JWKs. A token is kept with the session object (no lookup on the hot path) and
//! re-signed only when it has under [`REFRESH_MARGIN`] left or the session was reloaded (its
//! identity may have changed), so the hot path does not sign per request.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::HeaderValue;
use ring::signature::{Ed25519KeyPair, KeyPair};
use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::session::Session;
use crate::store::Ts;

/// A cached token is re-signed once it has less than this left.
pub const REFRESH_MARGIN: chrono::Duration = chrono::Duration::seconds(60);

/// Name of the key generated into the data folder when none is configured.
pub const GENERATED_KEY_FILE: &str = "assertion-key.pem";

#[derive(Debug, thiserror::Error)]
pub enum AssertionKeyError {
    #[error("cannot read the assertion key {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the generated assertion key {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{0} is not an Ed25519 private key in PKCS#8 PEM (`openssl genpkey -algorithm ed25519`)"
    )]
    NotEd25519(String),
    #[error("cannot generate an Ed25519 key")]
    Generate,
}

/// One key: the first configured signs, all are published.
struct Key {
    pair: Ed25519KeyPair,
    encoding: jsonwebtoken::EncodingKey,
    kid: String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("kid", &self.kid).finish()
    }
}

/// Signer and published keys; the tokens are kept with the sessions.
pub struct Assertions {
    signing: Key,
    jwks: String,
    iss: String,
    aud: String,
    ttl: chrono::Duration,
    signed: AtomicU64,
}

impl std::fmt::Debug for Assertions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assertions")
            .field("kid", &self.signing.kid)
            .field("iss", &self.iss)
            .field("aud", &self.aud)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: String,
    preferred_username: &'a str,
    email: &'a str,
    email_verified: bool,
    roles: Vec<&'a str>,
    tier: &'a str,
    amr: Vec<&'static str>,
    sid: String,
    iat: i64,
    nbf: i64,
    exp: i64,
}

impl Assertions {
    /// Loads `security.assertion_key_file` (every listed key; the first signs), or the key in
    /// the data folder, generating it on first start.
    pub fn load(s: &Settings) -> Result<Assertions, AssertionKeyError> {
        let sec = &s.security;
        let mut keys = Vec::new();
        if sec.assertion_key_files.is_empty() {
            keys.push(generated_key(&s.server.data_dir)?);
        } else {
            for path in &sec.assertion_key_files {
                let pem =
                    std::fs::read_to_string(path).map_err(|source| AssertionKeyError::Read {
                        path: path.display().to_string(),
                        source,
                    })?;
                keys.push(key_from_pem(&pem, path)?);
            }
        }
        let jwks = serde_json::json!({
            "keys": keys.iter().map(|k| jwk(&k.pair, &k.kid)).collect::<Vec<_>>()
        })
        .to_string();
        let mut keys = keys.into_iter();
        let signing = keys.next().ok_or(AssertionKeyError::Generate)?;
        let aud = sec
            .assertion_audience
            .clone()
            .unwrap_or_else(|| s.upstream.url.as_str().trim_end_matches('/').to_string());
        let ttl = chrono::Duration::from_std(sec.assertion_ttl)
            .unwrap_or_else(|_| chrono::Duration::minutes(5));
        Ok(Assertions {
            signing,
            jwks,
            iss: s
                .server
                .public_url
                .as_str()
                .trim_end_matches('/')
                .to_string(),
            aud,
            ttl,
            signed: AtomicU64::new(0),
        })
    }

    /// The JWK set (public keys only), as served.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// Tokens signed since start (the cache is working when this grows per session, not per
    /// request).
    pub fn signed(&self) -> u64 {
        self.signed.load(Ordering::Relaxed)
    }

    /// The assertion for `session` at `now`: the token kept with this session object while it
    /// has a minute left, else a new one.
    pub fn header(&self, session: &Arc<Session>, now: Ts) -> Option<HeaderValue> {
        let now_s = now.0.timestamp();
        if let Some(token) = session.assertion.get(now_s + REFRESH_MARGIN.num_seconds()) {
            return Some(token);
        }
        let exp = now_s + self.ttl.num_seconds();
        let token = self.sign(session, now, now_s, exp)?;
        let value = HeaderValue::from_str(&token).ok()?;
        session.assertion.set(value.clone(), exp);
        Some(value)
    }

    fn sign(&self, session: &Session, now: Ts, iat: i64, exp: i64) -> Option<String> {
        let id = &session.identity;
        // RFC 8176 values: a passkey is a hardware-bound key ("hwk"); with user verification
        // the authenticator also checked the person ("user").
        let amr = match session.auth_method.as_str() {
            "hwk+user" => vec!["hwk", "user"],
            "hwk" => vec!["hwk"],
            "pwd+hwk" => vec!["pwd", "hwk"],
            // A sign-in at an external provider ("ext" is not in RFC 8176's registry; "mfa"
            // is: the provider reported several factors and the provider is trusted for it).
            "ext+mfa" => vec!["ext", "mfa"],
            "ext+otp" => vec!["ext", "otp"],
            "ext+hwk" => vec!["ext", "hwk"],
            "hwk+otp" => vec!["hwk", "otp"],
            "ext" => vec!["ext"],
            _ if session.twofa_verified => vec!["pwd", "otp"],
            _ => vec!["pwd"],
        };
        let claims = Claims {
            iss: &self.iss,
            aud: &self.aud,
            sub: id.user_id.to_string(),
            preferred_username: &id.username,
            email: &id.email,
            email_verified: id.is_verified,
            roles: id.roles_at(now),
            tier: &id.tier_name,
            amr,
            sid: opaque_sid(&session.token_hash),
            iat,
            nbf: iat,
            exp,
        };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(self.signing.kid.clone());
        let text = match jsonwebtoken::encode(&header, &claims, &self.signing.encoding) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot sign the identity assertion");
                return None;
            }
        };
        self.signed.fetch_add(1, Ordering::Relaxed);
        Some(text)
    }
}

/// `GET /_auth/.well-known/jwks.json`: the public keys, cacheable for a while (a rotation
/// publishes the new key before it signs, see the README).
pub fn jwks_response(app: &crate::app::App) -> http::Response<crate::web::Body> {
    let mut r = crate::web::respond::text(http::StatusCode::OK, app.assertions.jwks());
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

/// A stable per-session id that reveals nothing: derived from the token's hash (never the
/// token), under a label of its own.
fn opaque_sid(token_hash: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"gatehouse assertion sid\0");
    h.update(token_hash.as_bytes());
    URL_SAFE_NO_PAD.encode(&h.finalize()[..16])
}

/// The public JWK of a key, with its RFC 7638 thumbprint as `kid`.
fn jwk(pair: &Ed25519KeyPair, kid: &str) -> serde_json::Value {
    serde_json::json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    })
}

fn thumbprint(pair: &Ed25519KeyPair) -> String {
    // RFC 7638: the required members in lexicographic order, no whitespace.
    let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn key_from_der(der: &[u8], path: &Path) -> Result<Key, AssertionKeyError> {
    // `maybe_unchecked` accepts PKCS#8 v1 too, which is what OpenSSL writes.
    let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
        .map_err(|_| AssertionKeyError::NotEd25519(path.display().to_string()))?;
    let kid = thumbprint(&pair);
    let encoding = jsonwebtoken::EncodingKey::from_ed_der(der);
    Ok(Key {
        pair,
        encoding,
        kid,
    })
}

fn key_from_pem(pem: &str, path: &Path) -> Result<Key, AssertionKeyError> {
    use rustls_pki_types::PrivatePkcs8KeyDer;
    use rustls_pki_types::pem::PemObject;
    let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| AssertionKeyError::NotEd25519(path.display().to_string()))?;
    key_from_der(der.secret_pkcs8_der(), path)
}

/// PEM armour for a PKCS#8 document.
pub fn pem_of(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

/// A new Ed25519 private key as PKCS#8 PEM (for tests and `openssl`-less setups).
pub fn generate_pem() -> Result<String, AssertionKeyError> {
    let rng = ring::rand::SystemRandom::new();
    let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| AssertionKeyError::Generate)?;
    Ok(pem_of(doc.as_ref()))
}

fn generated_key(data_dir: &Path) -> Result<Key, AssertionKeyError> {
    let path: PathBuf = data_dir.join(GENERATED_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(pem) => key_from_pem(&pem, &path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let pem = generate_pem()?;
            let write_err = |source| AssertionKeyError::Write {
                path: path.display().to_string(),
                source,
            };
            std::fs::create_dir_all(data_dir).map_err(write_err)?;
            crate::auth::keys::write_private(&path, &pem).map_err(write_err)?;
            tracing::info!(path = %path.display(), "generated the identity assertion key");
            key_from_pem(&pem, &path)
        }
        Err(source) => Err(AssertionKeyError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_and_thumbprint() {
        let pem = generate_pem().unwrap();
        let p = Path::new("k.pem");
        let a = key_from_pem(&pem, p).unwrap();
        let b = key_from_pem(&pem, p).unwrap();
        assert_eq!(a.kid, b.kid);
        assert_eq!(a.kid.len(), 43);
        assert!(
            key_from_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
                p
            )
            .is_err()
        );
        assert!(key_from_pem("", p).is_err());
    }

    #[test]
    fn config_keys() {
        let s = crate::config::from_toml(
            "[security]\nassertion_key_file = [\"/k/new.pem\", \"/k/old.pem\"]\nassertion_audience = \"https://app\"\n",
        )
        .unwrap();
        assert_eq!(s.security.assertion_key_files.len(), 2);
        assert_eq!(
            s.security.assertion_audience.as_deref(),
            Some("https://app")
        );
        assert_eq!(
            s.security.assertion_ttl,
            std::time::Duration::from_secs(300)
        );
        let one =
            crate::config::from_toml("[security]\nassertion_key_file = \"/k/a.pem\"\n").unwrap();
        assert_eq!(
            one.security.assertion_key_files,
            [PathBuf::from("/k/a.pem")]
        );
        let e = crate::config::from_toml("[security]\n\nassertion_ttl = \"30s\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("security.assertion_ttl") && e.contains('3'),
            "{e}"
        );
        let e = crate::config::from_toml("[security]\nassertion_key_file = []\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("security.assertion_key_file"), "{e}");
    }

    #[test]
    fn generated_key_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = generated_key(dir.path()).unwrap();
        let b = generated_key(dir.path()).unwrap();
        assert_eq!(a.kid, b.kid);
    }
}
