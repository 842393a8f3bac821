//! Targets: the servers a case runs against, started per (case, MPM) in their own temp dir and
//! process group, and stopped by a signal to the group, a grace period, then SIGKILL.
//!
//! The `reference` target is refhttpd, linked into this binary: the harness re-executes itself
//! in a hidden `__serve` mode ([`serve_if_asked`]), so it needs no other binary — from `cargo
//! test` on a clean checkout and from an installed `mpm-harness` alike. The server's master dies
//! with the thread that started it (parent-death signal), so a SIGKILLed harness leaves nothing.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use refhttpd::config::Mpm;

use crate::observe::{Observation, Store};

// Declared here, not in lib.rs, so that it may build a `RunningServer` (private fields).
#[path = "apache.rs"]
pub mod apache;

/// The first argument that makes the harness binary run refhttpd instead.
pub const SERVE_ARG: &str = "__serve";

/// How long a server may take to print its ready line.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping server gets before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs refhttpd when this process was started as `<exe> __serve <refhttpd args>`; returns
/// otherwise. Call it first thing in every `main` that may start a reference server.
pub fn serve_if_asked() {
    let mut args = std::env::args_os();
    let _exe = args.next();
    let first = args.next();
    if first.as_deref() == Some(std::ffi::OsStr::new(crate::guard::GUARD_ARG)) {
        let rest: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
        match rest.split_first() {
            Some((program, program_args)) => crate::guard::run(program, program_args),
            None => std::process::exit(2),
        }
    }
    if first.is_some_and(|a| a == SERVE_ARG) {
        use clap::Parser;
        let rest = std::iter::once("refhttpd".into()).chain(args);
        let parsed = refhttpd::cli::Args::parse_from(rest);
        std::process::exit(refhttpd::cli::run(&parsed));
    }
}

/// Where a case runs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// refhttpd, embedded.
    Reference,
    /// Apache httpd 2.4 from the system package.
    Apache,
}

impl Target {
    pub const ALL: [Target; 2] = [Target::Reference, Target::Apache];

    pub fn as_str(self) -> &'static str {
        match self {
            Target::Reference => "reference",
            Target::Apache => "apache",
        }
    }

    /// Whether the target can run here; the reason when it cannot.
    pub fn available(self) -> Result<(), String> {
        match self {
            Target::Reference => Ok(()),
            Target::Apache => apache::available(),
        }
    }
}

/// How to start a server for one (case, MPM).
#[derive(Debug, Clone)]
pub struct Launch {
    pub mpm: Mpm,
    pub settings: Vec<(String, String)>,
    pub faults: bool,
    /// Directives for Apache only (no reference equivalent, e.g. EnableSendfile).
    pub apache_only: Vec<(String, String)>,
}

/// A started server.
pub struct RunningServer {
    pub target: Target,
    pub addr: SocketAddr,
    pub master: i32,
    pub dir: tempfile::TempDir,
    pub scoreboard: PathBuf,
    pub event_log: PathBuf,
    pub error_log: PathBuf,
    group: Pid,
    store: Store,
    /// Set when `stop` begins: the Apache observers no longer record the exits it causes.
    stopping: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// A server that would not start.
#[derive(Debug, thiserror::Error)]
#[error("{target} server for {mpm} did not start: {reason}")]
pub struct StartError {
    pub target: &'static str,
    pub mpm: Mpm,
    pub reason: String,
}

impl RunningServer {
    /// Starts the reference server; its master's exit is recorded in `store`.
    pub fn start_reference(launch: &Launch, store: &Store) -> Result<RunningServer, StartError> {
        let fail = |reason: String| StartError {
            target: "reference",
            mpm: launch.mpm,
            reason,
        };
        let dir = tempfile::Builder::new()
            .prefix("mpm-harness-")
            .tempdir()
            .map_err(|e| fail(format!("temp dir: {e}")))?;
        let scoreboard = dir.path().join("scoreboard");
        let event_log = dir.path().join("events.jsonl");
        let error_log = dir.path().join("error.log");
        let stderr = std::fs::File::create(&error_log).map_err(|e| fail(e.to_string()))?;
        let exe = std::env::current_exe().map_err(|e| fail(format!("own executable: {e}")))?;
        let mut cmd = Command::new(exe);
        cmd.arg(SERVE_ARG)
            .args(["--mpm", launch.mpm.as_str(), "--listen", "127.0.0.1:0"])
            .arg("--scoreboard")
            .arg(&scoreboard)
            .arg("--event-log")
            .arg(&event_log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0);
        if launch.faults {
            cmd.arg("--faults");
        }
        for (k, v) in &launch.settings {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        let mut child = cmd.spawn().map_err(|e| fail(format!("spawn: {e}")))?;
        let group = Pid::from_raw(child.id() as i32);
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let watcher_store = store.clone();
        std::thread::spawn(move || {
            let status = child.wait().ok();
            watcher_store.push(Observation::MasterExited {
                code: status.and_then(|s| s.code()),
            });
        });
        let line = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let mut server = RunningServer {
            target: Target::Reference,
            addr: "127.0.0.1:0".parse().expect("address"),
            master: group.as_raw(),
            dir,
            scoreboard,
            event_log,
            error_log,
            group,
            store: store.clone(),
            stopping: Default::default(),
        };
        match refhttpd::cli::Ready::parse(&line) {
            Some(ready) => {
                server.addr = ready.addr;
                server.master = ready.master;
                Ok(server)
            }
            None => {
                let log = server.error_log_text();
                // Dropping the server stops whatever was started.
                Err(fail(format!(
                    "no ready line (got {line:?}); stderr: {}",
                    log.trim()
                )))
            }
        }
    }

    /// Starts Apache httpd for `launch` (see [`apache`]); its master's exit is recorded in
    /// `store`.
    pub fn start_apache(launch: &Launch, store: &Store) -> Result<RunningServer, StartError> {
        apache::start(launch, store)
    }

    /// Starts the observers that turn this server's own records into observations: the
    /// scoreboard sampler and the event-log tail (reference); the status sampler, the `/proc`
    /// watcher and the error-log tail (Apache).
    pub fn start_observers(&self, store: &Store) -> Vec<std::thread::JoinHandle<()>> {
        match self.target {
            Target::Reference => vec![
                crate::observe::sample_scoreboard(store.clone(), self.scoreboard.clone()),
                crate::observe::tail_event_log(store.clone(), self.event_log.clone()),
            ],
            Target::Apache => apache::start_observers(self, store),
        }
    }

    /// Sends `sig` to the master.
    pub fn signal(&self, sig: Signal) -> nix::Result<()> {
        nix::sys::signal::kill(Pid::from_raw(self.master), sig)
    }

    /// The server's stderr so far.
    pub fn error_log_text(&self) -> String {
        std::fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    /// Stops the whole process group: SIGTERM, a grace period, SIGKILL.
    pub fn stop(&mut self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = killpg(self.group, Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        let exited = self.store.wait_until(deadline, |s| s.master_exited);
        // Children of a stopped master die with it; the group kill covers any straggler.
        let _ = killpg(self.group, Signal::SIGKILL);
        if !exited {
            let deadline = Instant::now() + STOP_GRACE;
            self.store.wait_until(deadline, |s| s.master_exited);
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop();
    }
}
