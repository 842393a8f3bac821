//! A fresh self-signed certificate for each run of a TLS case (rcgen), written into the
//! server's temp dir for the server to present, and the client side that trusts exactly it.

use std::path::{Path, PathBuf};

use crate::drive::TlsClient;

/// A run's certificate: the files the server is configured with, and the harness's trust.
pub struct Certificate {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client: TlsClient,
}

impl Certificate {
    /// Makes a key pair and a certificate for 127.0.0.1 and localhost, and writes both (PEM)
    /// into `dir`; the key file is readable by its owner only.
    pub fn make(dir: &Path) -> Result<Certificate, String> {
        let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let made =
            rcgen::generate_simple_self_signed(names).map_err(|e| format!("certificate: {e}"))?;
        let cert_pem = made.cert.pem();
        let cert_file = dir.join("server.crt");
        let key_file = dir.join("server.key");
        std::fs::write(&cert_file, &cert_pem)
            .map_err(|e| format!("{}: {e}", cert_file.display()))?;
        write_private(&key_file, &made.key_pair.serialize_pem())?;
        Ok(Certificate {
            cert_file,
            key_file,
            client: TlsClient::trusting_pem(&cert_pem)?,
        })
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
}
