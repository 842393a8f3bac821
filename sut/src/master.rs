//! The master (Apache's parent process): binds the listening socket, creates the scoreboard,
//! forks children, reaps them, keeps the pool between its spare limits once a second, and
//! answers the process-control signals (PM-1…PM-6). It never serves a request and never starts
//! a thread, so forking stays safe.
//!
//! Signals arrive through a signalfd, so the whole master is one loop: wait for a signal or the
//! next maintenance tick, act, repeat.

use std::borrow::Cow;
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mpm_faults::Fault;
use nix::poll::{PollFd, PollFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::child::{self, ChildStart};
use crate::config::{Config, Mpm};
use crate::eventlog::{error_log, ControlSignal, Event, EventLog, Level, SignalAction, StopReason};
use crate::fault::Faults;
use crate::mpm::EXIT_CHILD_FATAL;
use crate::os::{self, Forked};
use crate::scoreboard::{ProcessStatus, Scoreboard, WorkerState};

/// Apache's MAX_SPAWN_RATE: children started per maintenance tick at most.
const MAX_SPAWN_RATE: u32 = 32;
/// The maintenance period (Apache: one second).
const TICK: Duration = Duration::from_secs(1);
/// How long a stop waits for children after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// The longest back-off after children that die while starting.
const MAX_BACKOFF: Duration = Duration::from_secs(32);

/// What the command line decided, beyond the configuration itself.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub mpm: Mpm,
    pub config_file: Option<PathBuf>,
    pub sets: Vec<String>,
    pub faults_enabled: bool,
    pub scoreboard: Option<PathBuf>,
    pub event_log: Option<PathBuf>,
}

/// A child process the master started.
struct ChildProc {
    pid: Pid,
    generation: u32,
    /// Write end of the child's control pipe.
    control: OwnedFd,
    /// Asked to stop gracefully: not replaced when it exits.
    retiring: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// WINCH: children finish, then the master exits (at the deadline at the latest).
    GracefulStop {
        deadline: Option<Instant>,
    },
}

/// Why the master loop ended, and the process exit code that goes with it.
pub enum Exit {
    Stopped,
    GracefulStopped,
    ChildFatal,
}

impl Exit {
    pub fn code(&self) -> i32 {
        match self {
            Exit::Stopped | Exit::GracefulStopped => 0,
            Exit::ChildFatal => 1,
        }
    }
}

/// The running master.
pub struct Master {
    /// This process, the master.
    pid: Pid,
    opts: ServerOptions,
    cfg: Config,
    scoreboard: &'static Scoreboard,
    listener: Option<TcpListener>,
    signals: Option<SignalFd>,
    children: Vec<Option<ChildProc>>,
    generation: u32,
    events: EventLog,
    started: Instant,
    phase: Phase,
    spawn_rate: u32,
    max_workers_reported: bool,
    startup_failures: u32,
    no_spawn_before: Instant,
    /// Children still to start for a new generation (graceful restart), as slots free up.
    pending_starts: u32,
    /// `FaultFork` and `FaultChildStart`, fired here.
    faults: Faults,
    next_tick: Instant,
}

/// A master that could not start: the message, and the exit code (2 for configuration).
#[derive(Debug)]
pub struct StartError {
    pub message: String,
    pub code: i32,
}

impl Master {
    /// Loads the configuration, binds, creates the scoreboard and the signalfd. Nothing is forked
    /// yet.
    pub fn start(opts: ServerOptions) -> Result<Master, StartError> {
        let cfg = Config::load(
            opts.mpm,
            opts.config_file.as_deref(),
            &opts.sets,
            opts.faults_enabled,
        )
        .map_err(|e| StartError {
            message: e.to_string(),
            code: 2,
        })?;
        for warning in &cfg.warnings {
            error_log(module(opts.mpm), Level::Warn, format_args!("{warning}"));
        }
        let fail = |what: &str, e: std::io::Error| StartError {
            message: format!("{what}: {e}"),
            code: 1,
        };
        let _ = os::raise_open_files_limit();
        let _ = os::disable_core_dumps();
        os::ignore_signal(Signal::SIGPIPE).map_err(|e| fail("ignoring SIGPIPE", e))?;
        let signals = os::master_signals();
        os::block_signals(&signals).map_err(|e| fail("blocking signals", e))?;
        let signalfd =
            SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
                .map_err(|e| fail("signalfd", e.into()))?;
        let listener = os::listen(cfg.listen, cfg.listen_backlog, cfg.send_buffer_size)
            .map_err(|e| fail(&format!("could not bind to address {}", cfg.listen), e))?;
        let scoreboard = Scoreboard::create(
            opts.mpm,
            cfg.server_limit,
            cfg.thread_limit,
            cfg.threads_per_child,
            opts.scoreboard.as_deref(),
        )
        .map_err(|e| StartError {
            message: format!("scoreboard: {e}"),
            code: 1,
        })?;
        let events = match &opts.event_log {
            Some(path) => EventLog::open(path)
                .map_err(|e| fail(&format!("event log {}", path.display()), e))?,
            None => EventLog::disabled(),
        };
        let scoreboard: &'static Scoreboard = Box::leak(Box::new(scoreboard));
        scoreboard
            .header()
            .set_master_pid(std::process::id() as i32);
        let slots = cfg.server_limit as usize;
        let faults = Faults::new(&cfg.faults, opts.faults_enabled);
        Ok(Master {
            pid: Pid::this(),
            opts,
            cfg,
            scoreboard,
            listener: Some(listener),
            signals: Some(signalfd),
            children: (0..slots).map(|_| None).collect(),
            generation: 0,
            events,
            started: Instant::now(),
            phase: Phase::Running,
            spawn_rate: 1,
            max_workers_reported: false,
            startup_failures: 0,
            no_spawn_before: Instant::now(),
            pending_starts: 0,
            faults,
            next_tick: Instant::now() + TICK,
        })
    }

    /// The address the listening socket is bound to (port 0 resolved).
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        match &self.listener {
            Some(l) => l.local_addr(),
            None => Err(std::io::Error::other("not listening")),
        }
    }

    /// Starts StartServers children, announces readiness, and runs until the server stops.
    pub fn run(mut self, announce: impl FnOnce(std::net::SocketAddr)) -> Exit {
        self.start_generation(0);
        if let Ok(addr) = self.local_addr() {
            self.events.emit(Event::Ready {
                addr: addr.to_string(),
                mpm: self.opts.mpm.as_str().to_string(),
            });
            announce(addr);
        }
        loop {
            self.wait_for_signal_or_tick();
            if let Some(exit) = self.handle_signals() {
                return exit;
            }
            if let Some(exit) = self.reap() {
                return exit;
            }
            if let Some(exit) = self.check_graceful_stop() {
                return exit;
            }
            if Instant::now() >= self.next_tick {
                self.next_tick = Instant::now() + TICK;
                self.maintenance();
            }
        }
    }

    fn wait_for_signal_or_tick(&self) {
        let Some(signals) = &self.signals else { return };
        let mut wake = self.next_tick;
        if let Phase::GracefulStop {
            deadline: Some(deadline),
        } = self.phase
        {
            wake = wake.min(deadline);
        }
        let left = wake.saturating_duration_since(Instant::now());
        let mut fds = [PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        let _ = nix::poll::poll(&mut fds, crate::conn::poll_timeout(left));
    }

    /// Acts on the signals that arrived; returns Some when the master is to exit.
    fn handle_signals(&mut self) -> Option<Exit> {
        loop {
            let info = match self.signals.as_ref()?.read_signal() {
                Ok(Some(info)) => info,
                Ok(None) | Err(_) => return None,
            };
            let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            match sig {
                Signal::SIGCHLD => {}
                Signal::SIGTERM => return Some(self.stop_now(ControlSignal::Term)),
                Signal::SIGINT => return Some(self.stop_now(ControlSignal::Int)),
                Signal::SIGHUP => self.restart_now(),
                Signal::SIGUSR1 => self.graceful_restart(),
                Signal::SIGWINCH => self.graceful_stop(),
                _ => {}
            }
        }
    }

    fn note_signal(&self, signal: ControlSignal, action: SignalAction) {
        self.events.emit(Event::Signal { signal, action });
        error_log(
            module(self.opts.mpm),
            Level::Notice,
            format_args!("caught {signal}, {action}"),
        );
    }

    /// TERM (or INT): children are killed, in-flight requests cut (PM-6).
    fn stop_now(&mut self, signal: ControlSignal) -> Exit {
        self.note_signal(signal, SignalAction::ShuttingDown);
        self.terminate_children();
        self.events.emit(Event::Stopped {
            reason: StopReason::Signal(signal),
        });
        Exit::Stopped
    }

    /// HUP: children are killed, the configuration re-read, a new generation started.
    fn restart_now(&mut self) {
        self.note_signal(ControlSignal::Hup, SignalAction::Restart);
        self.terminate_children();
        self.reload_config();
        self.start_generation(self.generation + 1);
    }

    /// USR1: children finish what they serve and leave; a new generation starts at once;
    /// nothing in flight is lost.
    fn graceful_restart(&mut self) {
        self.note_signal(ControlSignal::Usr1, SignalAction::GracefulRestart);
        self.retire_all();
        self.reload_config();
        self.start_generation(self.generation + 1);
    }

    /// WINCH: as USR1, but no new generation; the master leaves with its last child, or at
    /// GracefulShutdownTimeout.
    fn graceful_stop(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        self.note_signal(ControlSignal::Winch, SignalAction::ShuttingDownGracefully);
        if let Some(listener) = self.listener.take() {
            // Shutting the listening socket down refuses new connections in every process
            // that shares it.
            let _ = nix::sys::socket::shutdown(
                std::os::fd::AsRawFd::as_raw_fd(&listener),
                nix::sys::socket::Shutdown::Read,
            );
        }
        self.retire_all();
        self.pending_starts = 0;
        self.phase = Phase::GracefulStop {
            deadline: self
                .cfg
                .graceful_shutdown_timeout
                .map(|t| Instant::now() + t),
        };
    }

    fn check_graceful_stop(&mut self) -> Option<Exit> {
        let Phase::GracefulStop { deadline } = self.phase else {
            return None;
        };
        if self.live_children() == 0 {
            self.events.emit(Event::Stopped {
                reason: StopReason::GracefulStop,
            });
            return Some(Exit::GracefulStopped);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            error_log(
                module(self.opts.mpm),
                Level::Notice,
                format_args!("GracefulShutdownTimeout reached, killing the remaining children"),
            );
            self.terminate_children();
            self.events.emit(Event::Stopped {
                reason: StopReason::GracefulShutdownTimeout,
            });
            return Some(Exit::GracefulStopped);
        }
        None
    }

    /// Re-reads the configuration for a restart; a bad file keeps the old one.
    fn reload_config(&mut self) {
        match Config::load(
            self.opts.mpm,
            self.opts.config_file.as_deref(),
            &self.opts.sets,
            self.opts.faults_enabled,
        ) {
            Ok(mut cfg) => {
                // The scoreboard and the socket outlive restarts, as in Apache.
                cfg.server_limit = self.cfg.server_limit;
                cfg.thread_limit = self.cfg.thread_limit;
                cfg.listen = self.cfg.listen;
                cfg.threads_per_child = cfg.threads_per_child.min(cfg.thread_limit);
                self.faults.reconfigure(&cfg.faults);
                self.cfg = cfg;
            }
            Err(e) => error_log(
                module(self.opts.mpm),
                Level::Error,
                format_args!("configuration not reloaded, keeping the old one: {e}"),
            ),
        }
    }

    /// Starts generation `generation` (0 at start-up, as Apache counts) of StartServers children.
    fn start_generation(&mut self, generation: u32) {
        self.generation = generation;
        self.scoreboard.header().set_generation(self.generation);
        self.events.emit(Event::Generation {
            generation: self.generation,
        });
        self.max_workers_reported = false;
        self.spawn_rate = 1;
        self.pending_starts = self.cfg.start_servers.min(self.cfg.max_children());
        self.start_pending();
    }

    /// Starts pending children of the current generation into free slots.
    fn start_pending(&mut self) {
        while self.pending_starts > 0 && self.phase == Phase::Running {
            let Some(slot) = self.free_slot() else { return };
            if self.spawn(slot).is_err() {
                return;
            }
            self.pending_starts -= 1;
        }
    }

    fn free_slot(&self) -> Option<usize> {
        self.children.iter().position(Option::is_none)
    }

    fn live_children(&self) -> usize {
        self.children.iter().flatten().count()
    }

    /// Children that are not retiring: those of the current generation, since a restart
    /// retires every child of the one before (`retire_all`, `terminate_children`).
    fn active_children(&self) -> impl Iterator<Item = (usize, &ChildProc)> {
        self.children
            .iter()
            .enumerate()
            .filter_map(|(slot, c)| c.as_ref().map(|c| (slot, c)))
            .filter(|(_, c)| !c.retiring)
    }

    /// Forks a child into `slot`.
    fn spawn(&mut self, slot: usize) -> Result<(), ()> {
        if Instant::now() < self.no_spawn_before {
            return Err(());
        }
        if let Some(error) = self.faults.fork() {
            self.fork_failed(slot, error);
            return Err(());
        }
        let (control_read, control_write) = match nix::unistd::pipe() {
            Ok(pair) => pair,
            Err(e) => {
                self.fork_failed(slot, e.into());
                return Err(());
            }
        };
        self.prepare_slot(slot);
        let start_fault = self.faults.child_start();
        match os::fork() {
            Err(e) => {
                self.scoreboard.process(slot).reset();
                self.fork_failed(slot, e);
                Err(())
            }
            Ok(Forked::Child) => {
                drop(control_write);
                self.become_child(slot, control_read, start_fault)
            }
            Ok(Forked::Parent(pid)) => {
                drop(control_read);
                self.scoreboard.process(slot).set_pid(pid.as_raw());
                self.children[slot] = Some(ChildProc {
                    pid,
                    generation: self.generation,
                    control: control_write,
                    retiring: false,
                });
                self.events.emit(Event::ChildSpawned {
                    child: pid.as_raw(),
                    slot,
                    generation: self.generation,
                });
                Ok(())
            }
        }
    }

    /// Marks a slot as starting before the fork, so the scoreboard never shows a gap.
    fn prepare_slot(&self, slot: usize) {
        let process = self.scoreboard.process(slot);
        process.reset();
        process.set_generation(self.generation);
        process.set_status(ProcessStatus::Starting);
        let threads = self.cfg.threads_per_child as usize;
        for thread in 0..self.scoreboard.thread_limit() {
            let state = if thread < threads {
                WorkerState::Starting
            } else {
                WorkerState::Dead
            };
            self.scoreboard.worker(slot, thread).set_state(state);
        }
    }

    /// In the new child: drop what belongs to the master, then run the MPM. Never returns.
    fn become_child(&mut self, slot: usize, control: OwnedFd, start_fault: Option<Fault>) -> ! {
        drop(self.signals.take());
        // Other children's control pipes: only the master may hold their write ends, or their
        // children would not see the master die.
        self.children.clear();
        let Some(listener) = self.listener.take() else {
            os::exit_now(0)
        };
        child::run(ChildStart {
            cfg: self.cfg.clone(),
            scoreboard: self.scoreboard,
            slot,
            generation: self.generation,
            master: self.pid,
            faults_enabled: self.opts.faults_enabled,
            events: self.events.clone(),
            server_started: self.started,
            listener,
            control,
            start_fault,
        })
    }

    fn fork_failed(&mut self, slot: usize, error: std::io::Error) {
        self.events.emit(Event::ForkFailed {
            slot,
            error: error.to_string(),
        });
        error_log(
            module(self.opts.mpm),
            Level::Error,
            format_args!("fork: Unable to fork new process: {error}"),
        );
        self.back_off();
    }

    /// Doubles the pause before the next spawn (1 s, 2 s, … 32 s).
    fn back_off(&mut self) {
        self.startup_failures += 1;
        let delay = TICK
            .saturating_mul(1 << (self.startup_failures - 1).min(5))
            .min(MAX_BACKOFF);
        self.no_spawn_before = Instant::now() + delay;
        self.events.emit(Event::StartupBackoff {
            failures: self.startup_failures,
            delay_ms: delay.as_millis() as u64,
        });
    }

    /// Collects every child that exited; returns Some when the server must stop.
    fn reap(&mut self) -> Option<Exit> {
        loop {
            let ending = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return None,
                Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => status,
                Ok(_) => continue,
            };
            if let Some(exit) = self.child_exited(ending) {
                return Some(exit);
            }
        }
    }

    /// A child ended: `ending` is its `Exited` or `Signaled` status.
    fn child_exited(&mut self, ending: WaitStatus) -> Option<Exit> {
        let pid = ending.pid()?;
        let slot = self
            .children
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| c.pid == pid))?;
        let child = self.children[slot].take()?;
        let process = self.scoreboard.process(slot);
        let during_startup = process.status() == ProcessStatus::Starting;
        self.clear_slot(slot);
        self.log_exit(slot, &child, ending, during_startup);
        if self.phase != Phase::Running || child.retiring || child.generation != self.generation {
            self.start_pending();
            return None;
        }
        if during_startup {
            if matches!(ending, WaitStatus::Exited(_, EXIT_CHILD_FATAL)) {
                return Some(self.child_fatal(pid, EXIT_CHILD_FATAL));
            }
            self.back_off();
            self.pending_starts += 1;
            return None;
        }
        // A child that died while serving is replaced at once (PM-4).
        if self.spawn(slot).is_err() {
            self.pending_starts += 1;
        }
        None
    }

    fn clear_slot(&self, slot: usize) {
        self.scoreboard.process(slot).reset();
        for thread in 0..self.scoreboard.thread_limit() {
            self.scoreboard
                .worker(slot, thread)
                .set_state(WorkerState::Dead);
        }
    }

    fn log_exit(&self, slot: usize, child: &ChildProc, ending: WaitStatus, during_startup: bool) {
        let (code, signal) = match ending {
            WaitStatus::Exited(_, code) => (Some(code), None),
            WaitStatus::Signaled(_, sig, _) => (None, Some(sig)),
            _ => (None, None),
        };
        self.events.emit(Event::ChildExited {
            child: child.pid.as_raw(),
            slot,
            generation: child.generation,
            code,
            signal: signal.map(|s| s as i32),
            signal_name: signal.map(|s| apr_signal_description(s as i32).into_owned()),
            during_startup,
        });
        match ending {
            // AH00052, in APR's words.
            WaitStatus::Signaled(_, sig, _) if signal_death_logged(sig) => error_log(
                module(self.opts.mpm),
                Level::Notice,
                format_args!(
                    "child pid {} exit signal {} ({})",
                    child.pid,
                    apr_signal_description(sig as i32),
                    sig as i32
                ),
            ),
            // A child's exit, whatever its code, Apache does not log (only a fatal start-up
            // error, `child_fatal`); the event log has it.
            _ => {}
        }
    }

    fn child_fatal(&mut self, pid: Pid, code: i32) -> Exit {
        self.events.emit(Event::ChildFatal {
            child: pid.as_raw(),
            code,
        });
        error_log(
            module(self.opts.mpm),
            Level::Error,
            format_args!("child process {pid} exited with status {code} -- Aborting."),
        );
        self.terminate_children();
        self.events.emit(Event::Stopped {
            reason: StopReason::ChildFatal,
        });
        Exit::ChildFatal
    }

    /// Asks every child to stop gracefully (they finish what they serve).
    fn retire_all(&mut self) {
        for slot in 0..self.children.len() {
            self.retire(slot);
        }
    }

    fn retire(&mut self, slot: usize) {
        let Some(child) = self.children[slot].as_mut() else {
            return;
        };
        if !child.retiring {
            child.retiring = true;
            let _ = nix::unistd::write(&child.control, b"G");
        }
    }

    /// SIGTERM to every child, a grace period, then SIGKILL; all are reaped.
    fn terminate_children(&mut self) {
        for child in self.children.iter_mut().flatten() {
            child.retiring = true;
            let _ = kill(child.pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while self.live_children() > 0 {
            if Instant::now() >= deadline {
                for child in self.children.iter().flatten() {
                    let _ = kill(child.pid, Signal::SIGKILL);
                }
            }
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, _)) | Ok(WaitStatus::Signaled(pid, _, _)) => {
                    if let Some(slot) = self
                        .children
                        .iter()
                        .position(|c| c.as_ref().is_some_and(|c| c.pid == pid))
                    {
                        self.children[slot] = None;
                        self.clear_slot(slot);
                    }
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(2)),
                Err(_) => break,
            }
        }
    }

    /// Once a second (PM-2, PM-3): count idle workers; start children at a doubling rate when
    /// below the minimum spare, retire one when above the maximum, report MaxRequestWorkers.
    fn maintenance(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        self.start_pending();
        let (idle, active, any_ready) = self.count_idle();
        if any_ready {
            self.startup_failures = 0;
        }
        let (min_spare, max_spare) = self.spare_limits();
        if idle > max_spare {
            if self.may_retire() {
                self.retire_idle_child();
            }
            self.spawn_rate = 1;
        } else if idle < min_spare {
            self.spawn_spares(active, idle);
        } else {
            self.spawn_rate = 1;
        }
    }

    /// Idle workers (idle or starting) in active children, the number of active children, and
    /// whether one of them is ready.
    fn count_idle(&self) -> (u32, u32, bool) {
        let threads = self.cfg.threads_per_child as usize;
        let mut idle = 0;
        let mut active = 0;
        let mut ready = false;
        for (slot, _) in self.active_children() {
            active += 1;
            let process = self.scoreboard.process(slot);
            ready |= process.status() == ProcessStatus::Ready;
            if process.status() == ProcessStatus::Graceful {
                continue;
            }
            for thread in 0..threads {
                let state = self.scoreboard.worker(slot, thread).state();
                if matches!(state, WorkerState::Idle | WorkerState::Starting) {
                    idle += 1;
                }
            }
        }
        (idle, active, ready)
    }

    fn spare_limits(&self) -> (u32, u32) {
        match self.opts.mpm {
            Mpm::Prefork => (self.cfg.min_spare_servers, self.cfg.max_spare_servers),
            Mpm::Worker | Mpm::Event => (self.cfg.min_spare_threads, self.cfg.max_spare_threads),
        }
    }

    fn spawn_spares(&mut self, active: u32, idle: u32) {
        let room = self.cfg.max_children().saturating_sub(active);
        if room == 0 {
            if idle == 0 && !self.max_workers_reported {
                self.max_workers_reported = true;
                self.events.emit(Event::MaxRequestWorkers {
                    limit: self.cfg.max_request_workers,
                });
                error_log(
                    module(self.opts.mpm),
                    Level::Error,
                    format_args!(
                        "server reached MaxRequestWorkers setting, consider raising the MaxRequestWorkers setting"
                    ),
                );
            }
            self.spawn_rate = 1;
            return;
        }
        let mut started = 0;
        while started < self.spawn_rate.min(room) {
            let Some(slot) = self.free_slot() else { break };
            if self.spawn(slot).is_err() {
                break;
            }
            started += 1;
        }
        self.spawn_rate = (self.spawn_rate * 2).min(MAX_SPAWN_RATE);
    }

    /// Apache's event asks no further child to leave while one it retired is still stopping,
    /// unless the scoreboard has room for a whole pool beside the children it holds
    /// (`perform_idle_server_maintenance`'s `do_kill`): stopping children that finish long
    /// requests must not fill the scoreboard. prefork and worker retire one child every tick.
    fn may_retire(&self) -> bool {
        if self.opts.mpm != Mpm::Event {
            return true;
        }
        let total = self.children.iter().flatten().count() as u32;
        let stopping = self.children.iter().flatten().any(|c| c.retiring);
        !stopping || self.cfg.server_limit.saturating_sub(total) > self.cfg.max_children()
    }

    /// Retires one child whose workers are all idle (the highest slot, as Apache does).
    fn retire_idle_child(&mut self) {
        let threads = self.cfg.threads_per_child as usize;
        let candidate = self
            .active_children()
            .filter(|(slot, _)| {
                (0..threads).all(|t| self.scoreboard.worker(*slot, t).state() == WorkerState::Idle)
            })
            .map(|(slot, c)| (slot, c.pid))
            .last();
        if let Some((slot, pid)) = candidate {
            self.retire(slot);
            self.events.emit(Event::ChildRetired {
                child: pid.as_raw(),
                slot,
            });
        }
    }
}

/// glibc's `_NSIG` on Linux: signals 0 to 64. APR sizes its table with it.
const APR_NUMSIG: i32 = 65;

/// How Apache names a signal in its log: APR's `apr_signal_description_get`
/// (threadproc/unix/signals.c), from APR's own table, which it uses wherever the C library
/// declares no `sys_siglist` (glibc since 2.32). Its words are not strsignal's: `Abort`, not
/// `Aborted`; `Arithmetic exception`, not `Floating point exception`. Where two names share a
/// number on Linux, the one APR stores last wins (SIGIOT and SIGABRT: `Abort`; SIGPOLL and
/// SIGIO: `socket I/O possible`); a number APR names nothing is `signal #N`.
pub fn apr_signal_description(signum: i32) -> Cow<'static, str> {
    let known = match signum {
        0 => "Signal 0",
        libc::SIGHUP => "Hangup",
        libc::SIGINT => "Interrupt",
        libc::SIGQUIT => "Quit",
        libc::SIGILL => "Illegal instruction",
        libc::SIGTRAP => "Trace/BPT trap",
        libc::SIGABRT => "Abort",
        libc::SIGFPE => "Arithmetic exception",
        libc::SIGKILL => "Killed",
        libc::SIGBUS => "Bus error",
        libc::SIGSEGV => "Segmentation fault",
        libc::SIGSYS => "Bad system call",
        libc::SIGPIPE => "Broken pipe",
        libc::SIGALRM => "Alarm clock",
        libc::SIGTERM => "Terminated",
        libc::SIGUSR1 => "User defined signal 1",
        libc::SIGUSR2 => "User defined signal 2",
        libc::SIGCHLD => "Child status change",
        libc::SIGPWR => "Power-fail restart",
        libc::SIGWINCH => "Window changed",
        libc::SIGURG => "urgent socket condition",
        libc::SIGIO => "socket I/O possible",
        libc::SIGSTOP => "Stopped (signal)",
        libc::SIGTSTP => "Stopped",
        libc::SIGCONT => "Continued",
        libc::SIGTTIN => "Stopped (tty input)",
        libc::SIGTTOU => "Stopped (tty output)",
        libc::SIGVTALRM => "virtual timer expired",
        libc::SIGPROF => "profiling timer expired",
        libc::SIGXCPU => "exceeded cpu limit",
        libc::SIGXFSZ => "exceeded file size limit",
        n if (0..APR_NUMSIG).contains(&n) => return Cow::Owned(format!("signal #{n}")),
        _ => "unknown signal (number)",
    };
    Cow::Borrowed(known)
}

/// Whether Apache's master logs a child's death by this signal (`ap_process_child_status`): not
/// for the signals it sends its children itself — TERM, HUP, the graceful signal (USR1) and KILL.
fn signal_death_logged(sig: Signal) -> bool {
    !matches!(
        sig,
        Signal::SIGTERM | Signal::SIGHUP | Signal::SIGUSR1 | Signal::SIGKILL
    )
}

/// The error-log module name for an MPM.
pub fn module(mpm: Mpm) -> &'static str {
    match mpm {
        Mpm::Prefork => "mpm_prefork",
        Mpm::Worker => "mpm_worker",
        Mpm::Event => "mpm_event",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_described_in_aprs_words() {
        let words = |n: i32| apr_signal_description(n).into_owned();
        assert_eq!(words(libc::SIGSEGV), "Segmentation fault");
        assert_eq!(words(libc::SIGABRT), "Abort");
        assert_eq!(words(libc::SIGIOT), "Abort");
        assert_eq!(words(libc::SIGBUS), "Bus error");
        assert_eq!(words(libc::SIGFPE), "Arithmetic exception");
        assert_eq!(words(libc::SIGKILL), "Killed");
        assert_eq!(words(libc::SIGPOLL), "socket I/O possible");
        assert_eq!(words(libc::SIGCHLD), "Child status change");
        assert_eq!(words(0), "Signal 0");
        // Linux's SIGSTKFLT and the real-time signals are not in APR's table.
        assert_eq!(words(libc::SIGSTKFLT), "signal #16");
        assert_eq!(
            words(libc::SIGRTMIN()),
            format!("signal #{}", libc::SIGRTMIN())
        );
        assert_eq!(words(64), "signal #64");
        assert_eq!(words(65), "unknown signal (number)");
        assert_eq!(words(-1), "unknown signal (number)");
        // Every other signal nix knows has a description of its own, none of strsignal's.
        for sig in Signal::iterator().filter(|&s| s != Signal::SIGSTKFLT) {
            let w = words(sig as i32);
            assert!(!w.starts_with("signal #"), "{sig}: {w}");
            assert!(!["Aborted", "Floating point exception"].contains(&w.as_ref()));
        }
    }

    #[test]
    fn the_signals_apache_sends_its_children_are_not_logged() {
        for sig in [
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGUSR1,
            Signal::SIGKILL,
        ] {
            assert!(!signal_death_logged(sig), "{sig}");
        }
        for sig in [
            Signal::SIGSEGV,
            Signal::SIGABRT,
            Signal::SIGBUS,
            Signal::SIGUSR2,
        ] {
            assert!(signal_death_logged(sig), "{sig}");
        }
    }
}
