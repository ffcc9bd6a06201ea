//! The server's secret key and the sub-keys derived from it (CSRF tokens, TOTP secret
//! encryption). Several instances must share one key, so it comes from config
//! (`security.secret_key` or `security.secret_key_file`); a single instance without one
//! generates a key into its data folder on first start and warns.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::{Secret, SecuritySettings};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read secret key file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write generated secret key to {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("secret key in {0} is empty")]
    Empty(String),
}

/// Purpose-bound keys; the master key itself is not kept.
#[derive(Clone)]
pub struct Keys {
    pub csrf: Secret<[u8; 32]>,
    pub totp: Secret<[u8; 32]>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys([redacted])")
    }
}

impl Keys {
    pub fn from_master(master: &[u8]) -> Keys {
        Keys {
            csrf: Secret::new(derive(master, b"gatehouse csrf v1")),
            totp: Secret::new(derive(master, b"gatehouse totp-secret encryption v1")),
        }
    }

    /// Loads the configured key, or the generated one in `data_dir`, creating it if needed.
    pub fn load(security: &SecuritySettings, data_dir: &Path) -> Result<Keys, KeyError> {
        if let Some(k) = &security.secret_key {
            return Ok(Keys::from_master(k.expose().as_bytes()));
        }
        if let Some(path) = &security.secret_key_file {
            let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let text = text.trim();
            if text.is_empty() {
                return Err(KeyError::Empty(path.display().to_string()));
            }
            return Ok(Keys::from_master(text.as_bytes()));
        }
        let path = data_dir.join("secret.key");
        match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => Ok(Keys::from_master(text.trim().as_bytes())),
            _ => {
                let mut bytes = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut bytes);
                let text = STANDARD.encode(bytes);
                let write_err = |source| KeyError::Write {
                    path: path.display().to_string(),
                    source,
                };
                std::fs::create_dir_all(data_dir).map_err(write_err)?;
                write_private(&path, &text).map_err(write_err)?;
                tracing::warn!(
                    path = %path.display(),
                    "no security.secret_key configured: generated one; instances that share a database must share this key"
                );
                Ok(Keys::from_master(text.as_bytes()))
            }
        }
    }

    /// A tag binding `data` to the CSRF key.
    pub fn csrf_tag(&self, data: &[u8]) -> String {
        let mut mac = hmac(self.csrf.expose());
        mac.update(data);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// The WebAuthn user handle of a user: stable, opaque (no id or name an authenticator could
    /// leak), and the same on every instance sharing the data folder.
    pub fn passkey_user_handle(&self, user_id: i64) -> [u8; 16] {
        let mut mac = hmac(self.csrf.expose());
        mac.update(b"gatehouse passkey user handle\0");
        mac.update(&user_id.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }
}

fn hmac(key: &[u8]) -> Hmac<Sha256> {
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        // HMAC takes keys of any length.
        Err(_) => unreachable!("HMAC accepts any key length"),
    }
}

fn derive(master: &[u8], label: &[u8]) -> [u8; 32] {
    // HMAC-SHA256(SHA-256(master), label): a standard PRF-based derivation with a fixed-size key.
    let key = Sha256::digest(master);
    let mut mac = hmac(&key);
    mac.update(label);
    mac.finalize().into_bytes().into()
}

/// Creates `path` (it must not exist) readable by its owner only, and writes a secret to it.
#[cfg(unix)]
pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subkeys_differ_and_are_stable() {
        let a = Keys::from_master(b"master");
        let b = Keys::from_master(b"master");
        assert_eq!(a.csrf.expose(), b.csrf.expose());
        assert_ne!(a.csrf.expose(), a.totp.expose());
        assert_ne!(a.csrf_tag(b"x"), a.csrf_tag(b"y"));
        assert_eq!(format!("{a:?}"), "Keys([redacted])");
    }

    #[test]
    fn generated_key_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::config::from_toml("").unwrap().security;
        let a = Keys::load(&s, dir.path()).unwrap();
        let b = Keys::load(&s, dir.path()).unwrap();
        assert_eq!(a.csrf.expose(), b.csrf.expose());
    }
}
