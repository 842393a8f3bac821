//! Where a client's bytes go: [`Endpoint`] (the server's address, and the certificate to trust
//! when it speaks TLS) and [`Wire`], one connection's byte stream, plain or TLS (rustls, ring
//! provider), shared by the thread that writes requests and the one that reads responses.
//!
//! The TLS handshake is lazy, as a browser's is: it starts with the first bytes written and
//! completes while the response is read, so opening a connection never waits for a worker —
//! the handshake runs on one (TL-2). A client that stalls half-way through it is
//! [`stall_handshake`].

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// A server to connect to.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// Speak TLS, trusting exactly this certificate.
    pub tls: Option<TlsClient>,
}

impl Endpoint {
    pub fn plain(addr: SocketAddr) -> Endpoint {
        Endpoint { addr, tls: None }
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme(), self.addr)
    }
}

/// The client side of TLS: a configuration that trusts one certificate, the server's.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
}

impl TlsClient {
    /// Trusts the certificate(s) in the PEM file at `path`.
    pub fn trusting(path: &Path) -> Result<TlsClient, String> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|c| c.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        TlsClient::trusting_certs(certs)
    }

    /// Trusts the certificate(s) in `pem`.
    pub fn trusting_pem(pem: &str) -> Result<TlsClient, String> {
        let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("not a PEM certificate: {e}"))?;
        TlsClient::trusting_certs(certs)
    }

    /// Trusts nothing but what the server presents: for `mpm-harness load https://…` against a
    /// server whose certificate the user did not give. Every handshake is still a full one.
    pub fn trusting_anything() -> TlsClient {
        let provider = Arc::new(provider());
        let verifier = Arc::new(AcceptAny(provider.clone()));
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        TlsClient::from_config(config)
    }

    fn trusting_certs(certs: Vec<CertificateDer<'static>>) -> Result<TlsClient, String> {
        if certs.is_empty() {
            return Err("no certificate to trust".into());
        }
        let mut roots = RootCertStore::empty();
        for cert in certs {
            roots.add(cert).map_err(|e| e.to_string())?;
        }
        let config = ClientConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsClient::from_config(config))
    }

    fn from_config(mut config: ClientConfig) -> TlsClient {
        // Every connection makes a full handshake, as a new visitor's does.
        config.resumption = rustls::client::Resumption::disabled();
        TlsClient {
            config: Arc::new(config),
        }
    }

    /// A new client session for a server at `addr` (its certificate names 127.0.0.1 and
    /// localhost).
    pub fn session(&self, addr: SocketAddr) -> io::Result<ClientConnection> {
        let name = ServerName::IpAddress(addr.ip().into());
        ClientConnection::new(self.config.clone(), name).map_err(io::Error::other)
    }
}

/// ring's classical key exchanges (the post-quantum hybrids need aws-lc-rs, whose build needs
/// cmake), X25519 offered first as browsers and OpenSSL do: ring's provider puts P-384 first,
/// whose ring code is generic and several times slower, and the server follows the client's
/// order — a load's handshakes would measure it, on both sides.
fn provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::kx_group;
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
    provider
}

/// A connection's byte stream; clones share the socket and the TLS session.
pub struct Wire {
    tcp: TcpStream,
    tls: Option<Arc<Mutex<ClientConnection>>>,
}

impl Wire {
    /// Over a connected socket: plain, or with a new session whose handshake starts with the
    /// first write.
    pub fn over(tcp: TcpStream, endpoint: &Endpoint) -> io::Result<Wire> {
        let tls = match &endpoint.tls {
            Some(client) => Some(Arc::new(Mutex::new(client.session(endpoint.addr)?))),
            None => None,
        };
        Ok(Wire { tcp, tls })
    }

    /// Plain bytes over `tcp` (no session), whatever the endpoint speaks.
    pub fn raw(tcp: TcpStream) -> Wire {
        Wire { tcp, tls: None }
    }

    pub fn try_clone(&self) -> io::Result<Wire> {
        Ok(Wire {
            tcp: self.tcp.try_clone()?,
            tls: self.tls.clone(),
        })
    }

    pub fn socket(&self) -> &TcpStream {
        &self.tcp
    }

    fn session(&self) -> Option<MutexGuard<'_, ClientConnection>> {
        self.tls
            .as_ref()
            .map(|t| t.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Writes all of `bytes` (encrypted, over TLS), blocking.
    pub fn send(&self, bytes: &[u8]) -> io::Result<()> {
        match self.session() {
            None => (&self.tcp).write_all(bytes),
            Some(mut tls) => {
                tls.writer().write_all(bytes)?;
                send_records(&mut tls, &mut &self.tcp).map(drop)
            }
        }
    }

    /// Reads at most `chunk.len()` bytes from the socket into `chunk`, blocking (or until the
    /// socket's read timeout), and appends what they carry to `buf`: the bytes, or over TLS
    /// what they decrypt to (maybe nothing yet). Returns the socket bytes read: 0 is the end
    /// (the server's close, or its close_notify). A slow reader's rate counts socket bytes.
    pub fn fill(&self, buf: &mut Vec<u8>, chunk: &mut [u8]) -> io::Result<usize> {
        let n = (&self.tcp).read(chunk)?;
        let Some(mut tls) = self.session() else {
            buf.extend_from_slice(&chunk[..n]);
            return Ok(n);
        };
        if n == 0 || decrypt(&mut tls, &chunk[..n], buf)? {
            return Ok(0);
        }
        // The handshake's next flight, and the requests written before it completed.
        send_records(&mut tls, &mut &self.tcp)?;
        Ok(n)
    }

    /// Ends the writing side: close_notify first over TLS, then the socket's FIN.
    pub fn half_close(&self) -> io::Result<()> {
        if let Some(mut tls) = self.session() {
            tls.send_close_notify();
            let _ = send_records(&mut tls, &mut &self.tcp);
        }
        self.tcp.shutdown(Shutdown::Write)
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.tcp.shutdown(how)
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp.set_read_timeout(timeout)
    }
}

impl AsFd for Wire {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.tcp.as_fd()
    }
}

/// Feeds `records` (bytes read from the socket) to `tls` and appends all the plaintext they
/// decrypt to to `buf`: plaintext left in the session would never be signalled again by the
/// socket. True when the server sent close_notify (its end of the connection; what follows is
/// not read).
pub(super) fn decrypt(
    tls: &mut ClientConnection,
    mut records: &[u8],
    buf: &mut Vec<u8>,
) -> io::Result<bool> {
    while !records.is_empty() {
        if tls.read_tls(&mut records)? == 0 {
            break;
        }
        let state = tls
            .process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let plaintext = state.plaintext_bytes_to_read();
        if plaintext > 0 {
            let at = buf.len();
            buf.resize(at + plaintext, 0);
            tls.reader().read_exact(&mut buf[at..])?;
        }
        if state.peer_has_closed() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Sends `tls`'s pending records on `out`: true when all went, false when a non-blocking socket
/// took no more (its writable edge resumes it; a blocking one always takes all).
pub(super) fn send_records(tls: &mut ClientConnection, out: &mut impl Write) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(out) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Opens the TLS handshake on `tcp` and stops half-way: sends the first `bytes` of a
/// ClientHello (`None`: half of it), then nothing (TL-2). Returns how many were sent.
pub fn stall_handshake(
    tcp: &TcpStream,
    endpoint: &Endpoint,
    bytes: Option<usize>,
) -> io::Result<usize> {
    let client = match &endpoint.tls {
        Some(c) => c.clone(),
        None => TlsClient::trusting_anything(),
    };
    let mut session = client.session(endpoint.addr)?;
    let mut hello = Vec::new();
    while session.wants_write() {
        session.write_tls(&mut hello)?;
    }
    let n = bytes.unwrap_or(hello.len() / 2).min(hello.len());
    (&*tcp).write_all(&hello[..n])?;
    Ok(n)
}

/// Accepts any certificate (signatures are still checked): for a load run against a server
/// whose certificate the user did not give.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
