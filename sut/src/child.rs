//! A child process's entry point, above the MPMs: how a freshly forked child starts (tied to
//! the master's life, signals set, its [`ChildShared`] built, the `FaultChildStart` fault
//! performed), which MPM it runs, and how it ends.

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::time::Instant;

use mpm_faults::Fault;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::config::{Config, Mpm};
use crate::context::{ChildShared, Control};
use crate::eventlog::EventLog;
use crate::fault::{self, Faults};
use crate::mpm;
use crate::os;
use crate::scoreboard::{Scoreboard, WorkerState};

/// Everything a freshly forked child needs.
pub struct ChildStart {
    pub cfg: Config,
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
    let shared = ChildShared {
        faults: Faults::new(&start.cfg.faults, start.faults_enabled),
        cfg: start.cfg,
        scoreboard: start.scoreboard,
        slot: start.slot,
        generation: start.generation,
        pid: std::process::id(),
        events: start.events,
        server_started: start.server_started,
        control: Control::new(start.control),
    };
    if let Some(fault) = &start.start_fault {
        fault::at_child_start(fault);
    }
    let code = match shared.cfg.mpm {
        Mpm::Prefork => mpm::prefork::run(&shared, start.listener),
        Mpm::Worker => mpm::worker::run(&shared, start.listener),
        Mpm::Event => mpm::event::run(&shared, start.listener),
    };
    for thread in 0..shared.scoreboard.thread_limit() {
        shared.worker_slot(thread).set_state(WorkerState::Dead);
    }
    code
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
