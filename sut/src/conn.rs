//! One client connection: a non-blocking socket with its TLS session if it has one, the bytes
//! read (decrypted) but not yet consumed, and I/O with deadlines (`poll` on the socket,
//! optionally also on the child's control pipe so that a graceful stop wakes a keep-alive
//! wait).
//!
//! Over TLS every read drains what rustls has decrypted into the connection's buffer, so no
//! plaintext is ever left inside the session where the socket would never signal it: a wait on
//! the socket, a peek, or event's listener parking the connection sees what a client sent.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use rustls::ServerConnection;

use crate::tls::TlsServer;

/// How much one read asks for (16 KiB).
const READ_CHUNK: usize = 16_384;
/// Apache's lingering close: read and discard for at most this long (MAX_SECS_TO_LINGER is 30 s,
/// each read waits SECONDS_TO_LINGER = 2 s).
const LINGER_TOTAL: Duration = Duration::from_secs(2);

/// How much one read of TLS records may take in all before the socket is polled again.
const TLS_READ_MAX: usize = 64 * 1024;

/// What a peek at a connection found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    Nothing,
    Bytes,
    /// The client's end (EOF, or the socket failed).
    End,
}

/// A client's byte stream: the socket, and the TLS session over it when the listener is TLS.
/// Writing plaintext encrypts it; [`Write::flush`] pushes what rustls still holds to the socket
/// and fails with `WouldBlock` while the socket takes no more.
pub struct Stream {
    tcp: TcpStream,
    tls: Option<Box<ServerConnection>>,
    /// Bytes of TLS records read from the socket so far (a handshake's MinRate counts them).
    tls_received: u64,
}

impl Stream {
    /// The plain socket (non-blocking).
    pub fn plain(tcp: TcpStream) -> Stream {
        Stream {
            tcp,
            tls: None,
            tls_received: 0,
        }
    }

    /// The socket with a server session that has not begun its handshake.
    pub fn tls(tcp: TcpStream, session: ServerConnection) -> Stream {
        Stream {
            tcp,
            tls: Some(Box::new(session)),
            tls_received: 0,
        }
    }

    pub fn as_raw_fd(&self) -> RawFd {
        self.tcp.as_raw_fd()
    }

    /// Whether the TLS handshake is still to finish (never, for a plain connection).
    pub fn is_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }

    /// Whether the client has sent something not read yet, or its end: a peek at the socket
    /// (decrypted bytes are never left in the session: see the module's header).
    pub fn still_readable(&self) -> bool {
        self.peek() != Pending::Nothing
    }

    /// What waits on the socket, nothing taken (over TLS: records, undecrypted).
    pub fn peek(&self) -> Pending {
        match self.tcp.peek(&mut [0u8; 1]) {
            Ok(0) => Pending::End,
            Ok(_) => Pending::Bytes,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Pending::Nothing,
            Err(_) => Pending::End,
        }
    }

    /// Reads what is available without waiting, appending it to `buf`. `Ok(None)`: nothing
    /// yet (over TLS: maybe records that carried no data, or a part of one); `Ok(Some(0))`: the
    /// client's end.
    fn read_available(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        let Some(tls) = self.tls.as_mut() else {
            let mut chunk = [0u8; READ_CHUNK];
            return match self.tcp.read(&mut chunk) {
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    Ok(Some(n))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(e) => Err(e),
            };
        };
        let before = buf.len();
        let mut taken = 0;
        let mut eof = false;
        while taken < TLS_READ_MAX {
            match tls.read_tls(&mut self.tcp) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    taken += n;
                    self.tls_received += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
            let state = match tls.process_new_packets() {
                Ok(state) => state,
                Err(e) => {
                    // Tell the client why (an alert), as far as the socket takes it.
                    let _ = flush_session(tls, &mut self.tcp);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            };
            let plaintext = state.plaintext_bytes_to_read();
            if plaintext > 0 {
                let at = buf.len();
                buf.resize(at + plaintext, 0);
                tls.reader().read_exact(&mut buf[at..])?;
            }
            eof |= state.peer_has_closed();
            // Handshake messages and tickets the session has to send.
            flush_session(tls, &mut self.tcp).or_else(would_block_is_ok)?;
            if eof {
                break;
            }
        }
        match (buf.len() - before, eof) {
            (0, true) => Ok(Some(0)),
            (0, false) => Ok(None),
            (n, _) => Ok(Some(n)),
        }
    }

    /// Ends the sending side: TLS's close_notify first (as far as the socket takes it), then
    /// the socket's shutdown.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
            let _ = flush_session(tls, &mut self.tcp);
        }
        self.tcp.shutdown(Shutdown::Write)
    }

    /// The socket alone, for a lingering close after [`Stream::shutdown_write`]: what still
    /// comes is discarded undecrypted.
    pub fn into_socket(self) -> TcpStream {
        self.tcp
    }
}

impl Write for Stream {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.tcp.write(bytes);
        };
        // What was encrypted before goes first: the session holds at most one write's worth.
        flush_session(tls, &mut self.tcp)?;
        let n = tls.writer().write(&bytes[..bytes.len().min(READ_CHUNK)])?;
        flush_session(tls, &mut self.tcp).or_else(would_block_is_ok)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.tls.as_mut() {
            Some(tls) => flush_session(tls, &mut self.tcp),
            None => Ok(()),
        }
    }
}

/// Writes what the session holds for the client to the socket; `WouldBlock` if some stays.
fn flush_session(tls: &mut ServerConnection, tcp: &mut TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        tls.write_tls(tcp)?;
    }
    Ok(())
}

fn would_block_is_ok(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::WouldBlock {
        Ok(())
    } else {
        Err(e)
    }
}

/// A connection accepted from a client.
pub struct Conn {
    pub stream: Stream,
    pub peer: SocketAddr,
    /// Bytes read from the client and not yet consumed by the parser.
    pub buf: Vec<u8>,
    /// Requests answered on this connection so far.
    pub requests: u32,
}

/// What a wait ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The socket is ready for the operation.
    Ready,
    /// The deadline passed first.
    TimedOut,
    /// The control pipe became readable: the child is asked to stop gracefully (or lost its
    /// master).
    Interrupted,
}

/// Why a read on a connection did not complete.
#[derive(Debug)]
pub enum IoFailure {
    TimedOut,
    /// The peer closed (EOF), reset, or the socket failed: the connection is over either way.
    Gone,
}

impl Conn {
    /// Wraps an accepted socket, making it non-blocking; with `tls`, a server session begins
    /// (its handshake runs on the worker that serves the connection: [`Conn::handshake`]).
    pub fn new(tcp: TcpStream, peer: SocketAddr, tls: Option<&TlsServer>) -> io::Result<Conn> {
        tcp.set_nonblocking(true)?;
        crate::os::set_nodelay(&tcp);
        let stream = match tls {
            Some(server) => Stream::tls(tcp, server.session()?),
            None => Stream::plain(tcp),
        };
        Ok(Conn {
            stream,
            peer,
            buf: Vec::new(),
            requests: 0,
        })
    }

    /// Drops the first `n` buffered bytes (a parsed head or body part).
    pub fn consume(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
    }

    /// Waits for `flags` on the socket until `deadline`, or until `interrupt` is readable.
    pub fn wait(
        &self,
        flags: PollFlags,
        deadline: Option<Instant>,
        interrupt: Option<BorrowedFd<'_>>,
    ) -> io::Result<Wait> {
        loop {
            let timeout = match deadline {
                None => PollTimeout::NONE,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(Wait::TimedOut);
                    }
                    poll_timeout(left)
                }
            };
            let mut fds = vec![PollFd::new(self.stream.tcp.as_fd(), flags)];
            if let Some(fd) = interrupt {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            match nix::poll::poll(&mut fds, timeout) {
                Ok(0) => continue, // re-check the deadline (poll rounds to milliseconds)
                Ok(_) => {
                    if fds.len() > 1 && fds[1].any().unwrap_or(false) {
                        return Ok(Wait::Interrupted);
                    }
                    return Ok(Wait::Ready);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reads what is available without waiting. `Ok(None)`: nothing yet; `Ok(Some(0))`: EOF.
    /// (The socket is non-blocking, so a read never sleeps and is never interrupted: EINTR
    /// cannot happen here.)
    pub fn try_fill(&mut self) -> io::Result<Option<usize>> {
        self.stream.read_available(&mut self.buf)
    }

    /// Completes the TLS handshake, each wait for the client bounded by `deadline(received)`,
    /// `received` being the bytes of TLS records read so far (MinRate extends a stage by
    /// them). Nothing to do on a plain connection.
    pub fn handshake(&mut self, deadline: impl Fn(u64) -> Instant) -> Result<(), IoFailure> {
        while self.stream.is_handshaking() {
            let flags = match self.stream.flush() {
                Ok(()) => {
                    match self.try_fill() {
                        Ok(Some(0)) | Err(_) => return Err(IoFailure::Gone),
                        Ok(_) => {}
                    }
                    if !self.stream.is_handshaking() {
                        break;
                    }
                    PollFlags::POLLIN
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => PollFlags::POLLOUT,
                Err(_) => return Err(IoFailure::Gone),
            };
            match self.wait(flags, Some(deadline(self.stream.tls_received)), None) {
                Ok(Wait::Ready) => {}
                Ok(_) => return Err(IoFailure::TimedOut),
                Err(_) => return Err(IoFailure::Gone),
            }
        }
        self.stream
            .flush()
            .or_else(would_block_is_ok)
            .map_err(|_| IoFailure::Gone)
    }

    /// Reads at least one byte into the buffer, waiting until `deadline`.
    pub fn fill(&mut self, deadline: Instant) -> Result<usize, IoFailure> {
        loop {
            match self.try_fill() {
                Ok(Some(0)) | Err(_) => return Err(IoFailure::Gone),
                Ok(Some(n)) => return Ok(n),
                Ok(None) => {}
            }
            match self.wait(PollFlags::POLLIN, Some(deadline), None) {
                Ok(Wait::Ready) => {}
                Ok(_) => return Err(IoFailure::TimedOut),
                Err(_) => return Err(IoFailure::Gone),
            }
        }
    }

    /// Closes after reading (and discarding) what the client still sends, so that an error
    /// response is not lost to a TCP reset (Apache's lingering close).
    pub fn lingering_close(mut self) {
        if self.stream.shutdown_write().is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER_TOTAL;
        let mut sink = [0u8; READ_CHUNK];
        loop {
            // From the socket itself: what comes after our close_notify is discarded undecrypted.
            match self.stream.tcp.read(&mut sink) {
                Ok(0) => return,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
            if !matches!(
                self.wait(PollFlags::POLLIN, Some(deadline), None),
                Ok(Wait::Ready)
            ) {
                return;
            }
        }
    }
}

/// A poll timeout for `d`, rounded up to the next millisecond so a wait never ends early.
pub fn poll_timeout(d: Duration) -> PollTimeout {
    let ms = d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}
