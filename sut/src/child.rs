//! A child process: what its threads share (configuration, scoreboard slot, the control pipe from
//! the master, the graceful flag), how it starts (tied to the master's life, signals set,
//! start-up faults) and how it ends.
//!
//! The master talks to a child through a pipe: one byte written to it asks for a graceful stop;
//! the byte is never read, so the pipe stays readable and every thread that polls it sees the
//! request. The pipe also hangs up when the master dies.

use std::net::TcpListener;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mpm_faults::Fault;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::config::{Config, Mpm};
use crate::eventlog::{Event, EventLog};
use crate::os;
use crate::scoreboard::{ProcessSlot, ProcessStatus, Scoreboard, WorkerSlot, WorkerState};

/// Exit code with which a child reports a fatal start-up error; the master then stops the
/// server (Apache's APEXIT_CHILDFATAL).
pub const EXIT_CHILD_FATAL: i32 = 15;

/// What the threads of one child share.
pub struct ChildShared {
    pub cfg: Config,
    pub scoreboard: &'static Scoreboard,
    pub slot: usize,
    pub generation: u32,
    pub pid: u32,
    pub faults_enabled: bool,
    pub events: EventLog,
    pub server_started: Instant,
    pub mpm: Mpm,
    control: OwnedFd,
    graceful: AtomicBool,
}

impl ChildShared {
    pub fn process_slot(&self) -> &ProcessSlot {
        self.scoreboard.process(self.slot)
    }

    pub fn worker_slot(&self, thread: usize) -> &WorkerSlot {
        self.scoreboard.worker(self.slot, thread)
    }

    /// The read end of the master's control pipe, for `poll`.
    pub fn control_fd(&self) -> BorrowedFd<'_> {
        self.control.as_fd()
    }

    /// True once this child has been asked to stop gracefully.
    pub fn is_graceful(&self) -> bool {
        self.graceful.load(Ordering::Acquire)
    }

    /// Marks this child as gracefully stopping (it accepts no more connections).
    pub fn begin_graceful(&self) {
        if !self.graceful.swap(true, Ordering::AcqRel) {
            self.process_slot().set_status(ProcessStatus::Graceful);
            self.process_slot().set_accepting(false);
        }
    }

    /// Whether the child is stopping. Threaded children learn it from their listener thread;
    /// a prefork child has only one thread, which looks at the control pipe itself.
    pub fn stopping(&self) -> bool {
        match self.mpm {
            Mpm::Prefork => self.check_control(),
            Mpm::Worker | Mpm::Event => self.is_graceful(),
        }
    }

    /// Looks at the control pipe without waiting; returns whether a graceful stop is requested.
    pub fn check_control(&self) -> bool {
        if self.is_graceful() {
            return true;
        }
        let mut fds = [PollFd::new(self.control.as_fd(), PollFlags::POLLIN)];
        if matches!(nix::poll::poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
            self.begin_graceful();
        }
        self.is_graceful()
    }
}

/// One worker thread's view: its scoreboard slot and scratch space.
pub struct WorkerCtx<'a> {
    pub child: &'a ChildShared,
    pub slot: &'a WorkerSlot,
    pub thread: usize,
    /// The `X-Served-By` value of every response this worker sends.
    pub served_by: String,
    /// Reused output buffer.
    pub out: Vec<u8>,
}

impl<'a> WorkerCtx<'a> {
    pub fn new(child: &'a ChildShared, thread: usize) -> WorkerCtx<'a> {
        let slot = child.worker_slot(thread);
        slot.set_tid(os::thread_id());
        WorkerCtx {
            child,
            slot,
            thread,
            served_by: format!("pid={} slot={} thread={thread}", child.pid, child.slot),
            out: Vec::with_capacity(1024),
        }
    }

    /// Logs a timeout that closed a connection.
    pub fn log_timeout(&self, kind: &str, client: &std::net::SocketAddr) {
        self.child.events.emit(Event::Timeout {
            kind: kind.to_string(),
            slot: self.child.slot,
            thread: Some(self.thread),
            client: client.to_string(),
        });
    }
}

/// Everything a freshly forked child needs.
pub struct ChildStart {
    pub cfg: Config,
    pub mpm: Mpm,
    pub scoreboard: &'static Scoreboard,
    pub slot: usize,
    pub generation: u32,
    pub master: Pid,
    pub faults_enabled: bool,
    pub events: EventLog,
    pub server_started: Instant,
    pub listener: TcpListener,
    pub control: OwnedFd,
    /// A start-up fault this child performs before it serves (`FaultChildStart`).
    pub start_fault: Option<Fault>,
}

/// Runs a child to its end; never returns. A panic that escapes (none should: workers catch
/// theirs) ends the child with exit code 1 and never unwinds into the master's code.
pub fn run(start: ChildStart) -> ! {
    // A handler panic is caught at the worker boundary (500); log it as Apache logs errors.
    std::panic::set_hook(Box::new(|info| {
        crate::eventlog::error_log(
            "refhttpd",
            crate::eventlog::Level::Error,
            format_args!(
                "panic in {}: {info}",
                std::thread::current().name().unwrap_or("child")
            ),
        );
    }));
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve(start))).unwrap_or(1);
    os::exit_now(code)
}

fn serve(start: ChildStart) -> i32 {
    if os::die_with_parent(Signal::SIGKILL, start.master).is_err() {
        os::exit_now(0);
    }
    set_child_signals();
    let pid = std::process::id();
    let shared = ChildShared {
        cfg: start.cfg,
        scoreboard: start.scoreboard,
        slot: start.slot,
        generation: start.generation,
        pid,
        faults_enabled: start.faults_enabled,
        events: start.events,
        server_started: start.server_started,
        mpm: start.mpm,
        control: start.control,
        graceful: AtomicBool::new(false),
    };
    if let Some(fault) = &start.start_fault {
        perform_start_fault(fault);
    }
    let code = match start.mpm {
        Mpm::Prefork => crate::mpm::prefork::run(&shared, start.listener),
        Mpm::Worker => crate::mpm::worker::run(&shared, start.listener),
        Mpm::Event => crate::mpm::event::run(&shared, start.listener),
    };
    for thread in 0..shared.scoreboard.thread_limit() {
        shared.worker_slot(thread).set_state(WorkerState::Dead);
    }
    code
}

/// Marks this child ready in the scoreboard and the event log.
pub fn announce_ready(shared: &ChildShared) {
    let slot = shared.process_slot();
    slot.set_status(ProcessStatus::Ready);
    slot.set_accepting(true);
    shared.events.emit(Event::ChildReady {
        child: shared.pid as i32,
        slot: shared.slot,
        generation: shared.generation,
    });
}

/// Children leave process-control signals to the master: TERM and INT end them (their default),
/// the graceful ones come through the control pipe.
fn set_child_signals() {
    let _ = os::unblock_signals(&os::master_signals());
    for sig in [Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGWINCH] {
        let _ = os::ignore_signal(sig);
    }
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD] {
        let _ = os::default_signal(sig);
    }
}

/// Performs a `FaultChildStart` fault before the child serves.
fn perform_start_fault(fault: &Fault) {
    match fault {
        Fault::Crash(signal) => os::raise_fatal(signal.signal_number()),
        Fault::Exit(code) => os::exit_now(i32::from(*code)),
        Fault::Sleep(d) => std::thread::sleep(*d),
        Fault::Busy(d) => crate::handler::spin_for(*d),
        Fault::Hang => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        Fault::Leak(size) => crate::handler::leak(*size),
        Fault::Panic => panic!("fault: panic while the child starts"),
        Fault::Close | Fault::Fail(_) => {}
    }
}
