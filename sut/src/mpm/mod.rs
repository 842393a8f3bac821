//! The three multi-processing modules. Each runs inside a child process forked by the master:
//!
//! - [`prefork`]: one thread, one connection at a time, keep-alive waits included (PF-1).
//! - [`worker`]: `ThreadsPerChild` workers and a listener that accepts only for an idle worker;
//!   a worker owns its connection through every keep-alive wait (WK-1, WK-2).
//! - [`event`]: as worker, but a `mio` listener holds idle keep-alive connections, finishes
//!   writes and lingering closes, and hands a connection to a worker only when a request is
//!   readable (EV-1…EV-5).
//!
//! What they share: the exit code of a fatal start-up error, starting the worker threads of a
//! threaded child ([`run_threaded`]), waiting for the listening socket or the master's control
//! pipe, and accepting (with the `FaultAccept` site).

pub mod event;
pub mod prefork;
pub mod worker;

use std::io;
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::conn::Conn;
use crate::context::ChildShared;
use crate::eventlog::Event;

/// Exit code with which a child reports a fatal start-up error; the master then stops the
/// server (Apache's APEXIT_CHILDFATAL).
pub const EXIT_CHILD_FATAL: i32 = 15;

/// Runs a threaded child (worker, event): starts `ThreadsPerChild` worker threads named
/// `worker-N`, each running `worker(N)`, then runs `listener` on the calling thread while they
/// serve. `on_started(n)` is called as each thread starts, with the number started so far.
///
/// Returns `listener`'s exit code once every worker thread has ended (so `listener` must have
/// made them stop), or [`EXIT_CHILD_FATAL`] without running `listener` when not one worker
/// thread could be started. A thread that could not be started is left out; the others serve.
pub fn run_threaded(
    shared: &ChildShared,
    worker: impl Fn(usize) + Sync,
    mut on_started: impl FnMut(usize),
    listener: impl FnOnce() -> i32,
) -> i32 {
    let threads = shared.cfg.threads_per_child as usize;
    let worker = &worker;
    std::thread::scope(|scope| {
        let mut started = 0;
        for thread in 0..threads {
            let spawned = std::thread::Builder::new()
                .name(format!("worker-{thread}"))
                .spawn_scoped(scope, move || worker(thread));
            if spawned.is_ok() {
                started += 1;
                on_started(started);
            }
        }
        if started == 0 {
            return EXIT_CHILD_FATAL;
        }
        listener()
    })
}

/// What waiting on the listening socket ended with.
pub enum ListenWait {
    /// A connection may be waiting (another child may take it first).
    Readable,
    /// The master asked for a graceful stop (or is gone).
    Stop,
    /// Nothing within the timeout.
    Idle,
}

/// Waits until the listening socket is readable or the control pipe speaks.
pub fn wait_for_listener(
    shared: &ChildShared,
    listener: &TcpListener,
    timeout: PollTimeout,
) -> ListenWait {
    let mut fds = [
        PollFd::new(listener.as_fd(), PollFlags::POLLIN),
        PollFd::new(shared.control_fd(), PollFlags::POLLIN),
    ];
    match nix::poll::poll(&mut fds, timeout) {
        Ok(0) | Err(nix::errno::Errno::EINTR) => ListenWait::Idle,
        Ok(_) if fds[1].any().unwrap_or(true) => ListenWait::Stop,
        Ok(_) => ListenWait::Readable,
        Err(_) => ListenWait::Stop,
    }
}

/// What an accept attempt gave.
pub enum Accepted {
    Conn(Conn),
    /// Nothing to accept (another child was faster).
    Nothing,
    /// accept() failed; the caller backs off for [`ACCEPT_BACKOFF`], then tries again.
    Failed,
    /// The master shut the listening socket down (graceful stop): stop accepting, quietly.
    ListenerClosed,
}

/// How long a child waits after a failed accept() (EMFILE, ENOBUFS…) before it tries again:
/// the connection stays in the backlog meanwhile.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Accepts one connection from the shared, non-blocking listening socket.
pub fn accept(shared: &ChildShared, listener: &TcpListener) -> Accepted {
    // A FaultAccept failure stands in for accept()'s own result: it meets the same handling.
    let accepted = match shared.faults.accept() {
        Some(error) => Err(error),
        None => listener.accept(),
    };
    match accepted {
        Ok((stream, peer)) => match Conn::new(stream, peer, shared.cfg.tls.as_ref()) {
            Ok(conn) => Accepted::Conn(conn),
            Err(_) => Accepted::Nothing,
        },
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock
                    | io::ErrorKind::Interrupted
                    | io::ErrorKind::ConnectionAborted
            ) =>
        {
            Accepted::Nothing
        }
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Accepted::ListenerClosed,
        Err(e) => {
            log_accept_error(shared, &e);
            Accepted::Failed
        }
    }
}

fn log_accept_error(shared: &ChildShared, error: &io::Error) {
    shared.events.emit(Event::AcceptError {
        slot: shared.slot,
        error: error.to_string(),
    });
    crate::eventlog::error_log(
        "core",
        crate::eventlog::Level::Error,
        format_args!("accept: {error}"),
    );
}

/// Whether this child has reached MaxConnectionsPerChild.
pub fn connections_exhausted(shared: &ChildShared, accepted: u64) -> bool {
    let max = shared.cfg.max_connections_per_child;
    max > 0 && accepted >= u64::from(max)
}
