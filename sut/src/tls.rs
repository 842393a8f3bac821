//! mod_ssl's part: the certificate and key that `SSLCertificateFile` and
//! `SSLCertificateKeyFile` name, checked when the directive is read, and the rustls server
//! configuration built from them once, at start-up, before any child is forked. The crypto
//! provider is *ring* (it builds with a C compiler alone).
//!
//! A TLS session on a connection lives in [`crate::conn::Stream`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// The server side of TLS: what every connection's session starts from.
#[derive(Clone)]
pub struct TlsServer {
    cert_file: PathBuf,
    key_file: PathBuf,
    config: Arc<ServerConfig>,
}

impl TlsServer {
    /// Builds the configuration from the certificate chain in `cert_file` and the private key
    /// in `key_file` (or, as mod_ssl allows, in `cert_file` too).
    pub fn load(cert_file: &Path, key_file: Option<&Path>) -> Result<TlsServer, String> {
        let certs = certificates(cert_file)?;
        let key_file = key_file.unwrap_or(cert_file);
        let key = private_key(key_file)?;
        // ring's key exchanges are the classical ones (X25519, P-256, P-384): the post-quantum
        // hybrids need aws-lc-rs, whose build needs cmake.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| {
                format!(
                    "the key in {} does not serve the certificate in {}: {e}",
                    key_file.display(),
                    cert_file.display()
                )
            })?;
        Ok(TlsServer {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            config: Arc::new(config),
        })
    }

    /// A new server session, for a connection just accepted.
    pub fn session(&self) -> std::io::Result<rustls::ServerConnection> {
        rustls::ServerConnection::new(self.config.clone()).map_err(std::io::Error::other)
    }
}

impl PartialEq for TlsServer {
    fn eq(&self, other: &TlsServer) -> bool {
        self.cert_file == other.cert_file && self.key_file == other.key_file
    }
}

impl fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServer")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

/// The certificates (PEM) in `path`: at least one.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate (PEM) in {}", path.display()));
    }
    Ok(certs)
}

/// The private key (PEM: PKCS#8, PKCS#1 or SEC1) in `path`.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("cannot read a private key from {}: {e}", path.display()))
}
