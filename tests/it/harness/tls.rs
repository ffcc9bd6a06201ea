//! A self-signed certificate for TLS tests: the `[server]` keys that serve it and a client
//! that trusts it.

use std::sync::Arc;

pub struct TestCert {
    cert: rcgen::CertifiedKey<rcgen::KeyPair>,
    /// `tls_cert = …` and `tls_key = …` lines for the `[server]` table.
    pub server_keys: String,
    _dir: tempfile::TempDir,
}

impl TestCert {
    pub fn new(names: &[&str]) -> TestCert {
        let cert = rcgen::generate_simple_self_signed(
            names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
        let server_keys = format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert_path.display(),
            key_path.display()
        );
        TestCert {
            cert,
            server_keys,
            _dir: dir,
        }
    }

    /// A rustls client configuration (ring) that trusts only this certificate.
    pub fn client_config(&self) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.cert.der().clone()).unwrap();
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
    }
}
