//! What the code inside a child runs with: what all threads of the child share
//! ([`ChildShared`]: configuration, scoreboard slot, faults, the control pipe from the master and
//! the graceful flag) and one worker thread's view ([`WorkerCtx`]). The MPMs, the connection
//! loop and the handlers work on these; the child's entry point builds them.
//!
//! The master talks to a child through a pipe: one byte written to it asks for a graceful stop;
//! the byte is never read, so the pipe stays readable and every thread that polls it sees the
//! request. The pipe also hangs up when the master dies.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::config::{Config, Mpm};
use crate::eventlog::{Event, EventLog, TimeoutKind};
use crate::fault::Faults;
use crate::os;
use crate::scoreboard::{ProcessSlot, ProcessStatus, Scoreboard, WorkerSlot};

/// What the threads of one child share.
pub struct ChildShared {
    pub cfg: Config,
    pub scoreboard: &'static Scoreboard,
    pub slot: usize,
    pub generation: u32,
    pub pid: u32,
    pub faults: Faults,
    pub events: EventLog,
    pub server_started: Instant,
    pub control: Control,
}

/// The read end of the master's control pipe, and whether it has asked for a graceful stop.
pub struct Control {
    pipe: OwnedFd,
    graceful: AtomicBool,
}

impl Control {
    pub fn new(pipe: OwnedFd) -> Control {
        Control {
            pipe,
            graceful: AtomicBool::new(false),
        }
    }
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
        self.control.pipe.as_fd()
    }

    /// True once this child has been asked to stop gracefully.
    pub fn is_graceful(&self) -> bool {
        self.control.graceful.load(Ordering::Acquire)
    }

    /// Marks this child as gracefully stopping (it accepts no more connections).
    pub fn begin_graceful(&self) {
        if !self.control.graceful.swap(true, Ordering::AcqRel) {
            self.process_slot().set_status(ProcessStatus::Graceful);
            self.process_slot().set_accepting(false);
        }
    }

    /// Whether the child is stopping. Threaded children learn it from their listener thread;
    /// a prefork child has only one thread, which looks at the control pipe itself.
    pub fn stopping(&self) -> bool {
        match self.cfg.mpm {
            Mpm::Prefork => self.check_control(),
            Mpm::Worker | Mpm::Event => self.is_graceful(),
        }
    }

    /// Looks at the control pipe without waiting; returns whether a graceful stop is requested.
    pub fn check_control(&self) -> bool {
        if self.is_graceful() {
            return true;
        }
        let mut fds = [PollFd::new(self.control_fd(), PollFlags::POLLIN)];
        if matches!(nix::poll::poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
            self.begin_graceful();
        }
        self.is_graceful()
    }

    /// Marks this child ready in the scoreboard and the event log.
    pub fn announce_ready(&self) {
        let slot = self.process_slot();
        slot.set_status(ProcessStatus::Ready);
        slot.set_accepting(true);
        self.events.emit(Event::ChildReady {
            child: self.pid as i32,
            slot: self.slot,
            generation: self.generation,
        });
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
            served_by: crate::served_by::ServedBy {
                pid: child.pid as i32,
                slot: Some(child.slot as u32),
                thread: Some(thread as u32),
            }
            .to_string(),
            out: Vec::with_capacity(1024),
        }
    }

    /// Logs a timeout that closed a connection.
    pub fn log_timeout(&self, kind: TimeoutKind, client: &std::net::SocketAddr) {
        self.child.events.emit(Event::Timeout {
            kind,
            slot: self.child.slot,
            thread: Some(self.thread),
            client: client.to_string(),
        });
    }
}
