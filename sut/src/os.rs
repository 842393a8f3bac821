//! The platform calls that need care: fork, signal dispositions, raising fatal signals, process
//! lifetime ties (parent-death signals) and resource limits.
//!
//! Every `unsafe` block of the process model lives here (the scoreboard's `mmap` lives with the
//! scoreboard layout). Nothing here knows about HTTP or MPMs.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};
use nix::unistd::Pid;

/// Which side of a `fork()` we are on.
pub enum Forked {
    Parent(Pid),
    Child,
}

/// Forks the calling process.
///
/// The master calls this only while it is single-threaded, so the child starts from a consistent
/// copy of its memory (no lock held by a thread that does not exist in the child).
pub fn fork() -> io::Result<Forked> {
    // SAFETY: the master process is single-threaded: it never spawns threads, and `run` starts
    // no master in a process that has other threads (`thread_count`). So the child inherits no
    // lock held by another thread and may allocate and run arbitrary code.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child)),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// Asks the kernel to send `sig` to this process when its parent dies, and returns an error if the
/// parent is already gone (it was not `expected_parent` any more when the request took effect).
pub fn die_with_parent(sig: Signal, expected_parent: Pid) -> io::Result<()> {
    nix::sys::prctl::set_pdeathsig(sig).map_err(io::Error::from)?;
    if nix::unistd::getppid() != expected_parent {
        return Err(io::Error::other("parent process already exited"));
    }
    Ok(())
}

/// The signals the master handles through a signalfd.
pub fn master_signals() -> SigSet {
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGWINCH,
    ] {
        set.add(sig);
    }
    set
}

/// Blocks `set` for the calling thread (and for threads it creates later).
pub fn block_signals(set: &SigSet) -> io::Result<()> {
    signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(set), None).map_err(io::Error::from)
}

/// Unblocks `set` for the calling thread.
pub fn unblock_signals(set: &SigSet) -> io::Result<()> {
    signal::pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(set), None).map_err(io::Error::from)
}

/// Sets a signal to be ignored (writes to a closed socket must fail with EPIPE, not kill us).
pub fn ignore_signal(sig: Signal) -> io::Result<()> {
    set_disposition(sig, SigHandler::SigIgn)
}

/// Restores a signal's default disposition.
pub fn default_signal(sig: Signal) -> io::Result<()> {
    set_disposition(sig, SigHandler::SigDfl)
}

fn set_disposition(sig: Signal, handler: SigHandler) -> io::Result<()> {
    let action = SigAction::new(handler, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_IGN and SIG_DFL are not functions, so no handler code runs in signal context.
    unsafe { signal::sigaction(sig, &action) }
        .map(drop)
        .map_err(io::Error::from)
}

/// Raises `signo` in the calling thread with its default (fatal) action, so that nothing, neither
/// a handler of ours nor the Rust runtime's stack-overflow handler, can contain it: the whole
/// process dies of that signal, as a crashing Apache module would.
pub fn raise_fatal(signo: i32) -> ! {
    if let Ok(sig) = Signal::try_from(signo) {
        let _ = default_signal(sig);
        let mut set = SigSet::empty();
        set.add(sig);
        let _ = unblock_signals(&set);
        let _ = nix::sys::pthread::pthread_kill(nix::sys::pthread::pthread_self(), sig);
    }
    // The signal is delivered before pthread_kill returns to a thread that does not block it;
    // should it somehow not be, end the process the same way.
    std::process::abort()
}

/// Ends the calling process at once with `code`, running no destructor or exit handler
/// (as `exit()` from a crashing module would leave no chance to clean up).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and takes no pointers.
    unsafe { libc::_exit(code) }
}

/// Raises the soft open-files limit to the hard limit (the event MPM holds thousands of
/// connections).
pub fn raise_open_files_limit() -> io::Result<u64> {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(io::Error::from)?;
    Ok(hard)
}

/// Turns off core dumps: crashing children on purpose must not fill the disk or slow the reap.
pub fn disable_core_dumps() -> io::Result<()> {
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(io::Error::from)
}

/// How many threads this process runs: the `Threads:` line of `/proc/self/status`.
pub fn thread_count() -> io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no Threads: line in /proc/self/status"))
}

/// The kernel thread id of the calling thread.
pub fn thread_id() -> i32 {
    nix::unistd::gettid().as_raw()
}

/// Creates a listening TCP socket: SO_REUSEADDR, close-on-exec, non-blocking (children share it
/// and each decides when to accept), with the given backlog; `send_buffer` > 0 sets its
/// SO_SNDBUF, which every accepted connection inherits (SendBufferSize).
pub fn listen(
    addr: SocketAddr,
    backlog: u32,
    send_buffer: u32,
) -> io::Result<std::net::TcpListener> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd: OwnedFd = socket::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(io::Error::from)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(io::Error::from)?;
    if send_buffer > 0 {
        socket::setsockopt(&fd, sockopt::SndBuf, &(send_buffer as usize))
            .map_err(io::Error::from)?;
    }
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr)).map_err(io::Error::from)?;
    let backlog = i32::try_from(backlog)
        .unwrap_or(i32::MAX)
        .min(libc::SOMAXCONN);
    let backlog = socket::Backlog::new(backlog).map_err(io::Error::from)?;
    socket::listen(&fd, backlog).map_err(io::Error::from)?;
    Ok(std::net::TcpListener::from(fd))
}

/// Sets TCP_NODELAY: responses are written whole, so Nagle only adds latency.
pub fn set_nodelay(stream: &std::net::TcpStream) {
    let _ = stream.set_nodelay(true);
}
