//! One client connection: a non-blocking socket, the bytes read but not yet consumed, and I/O
//! with deadlines (`poll` on the socket, optionally also on the child's control pipe so that a
//! graceful stop wakes a keep-alive wait).

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};

/// How much one read asks for (16 KiB).
const READ_CHUNK: usize = 16_384;
/// Apache's lingering close: read and discard for at most this long (MAX_SECS_TO_LINGER is 30 s,
/// each read waits SECONDS_TO_LINGER = 2 s).
const LINGER_TOTAL: Duration = Duration::from_secs(2);

/// A connection accepted from a client.
pub struct Conn {
    pub stream: TcpStream,
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
    /// Wraps an accepted stream, making it non-blocking.
    pub fn new(stream: TcpStream, peer: SocketAddr) -> io::Result<Conn> {
        stream.set_nonblocking(true)?;
        crate::os::set_nodelay(&stream);
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
            let mut fds = vec![PollFd::new(self.stream.as_fd(), flags)];
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
        let mut chunk = [0u8; READ_CHUNK];
        match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(Some(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
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
        if self.stream.shutdown(Shutdown::Write).is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER_TOTAL;
        loop {
            self.buf.clear();
            match self.fill(deadline) {
                Ok(_) => continue,
                Err(_) => return,
            }
        }
    }
}

/// A poll timeout for `d`, rounded up to the next millisecond so a wait never ends early.
pub fn poll_timeout(d: Duration) -> PollTimeout {
    let ms = d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}
