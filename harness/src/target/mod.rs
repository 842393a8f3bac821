//! Targets: the servers a case runs against, behind one trait ([`TargetKind`]), each declaring
//! what it can show ([`Capabilities`]).
//!
//! A server is started per (case, MPM) in its own temp dir and process group, observed by the
//! samplers and log tails the target registers on the run's [`Store`], and stopped by a signal
//! to the group, a grace period, then SIGKILL ([`Group::stop`], with a typed [`Termination`]).
//!
//! A new target is one module implementing [`TargetKind`] and one registration: a variant of
//! [`Target`] and its arm in [`Target::kind`].
//!
//! A target is handed a [`Launch`]: the case's settings for the MPM with the values a target
//! interprets typed once (`launch`). Every `pre_exec` hook and every other `unsafe` step of
//! starting and supervising a server is in `spawn`, each a small named function. A TLS case's
//! server presents a certificate made for its run (`tls`), which the harness's clients trust.

mod apache;
pub mod guard;
mod launch;
mod reference;
mod spawn;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};

use crate::drive::Endpoint;
use nix::unistd::Pid;
use refhttpd::{EventKind, Mpm};
use serde::Serialize;

use crate::observe::{Ending, Observation, Store};
use crate::spec::condition::Source;
pub use crate::spec::Target;

pub use apache::{parse_log_line, ApacheBoard, LogLine};
pub use launch::{Directive, Launch, Settings, Typed};
pub use reference::{serve_if_asked, SERVE_ARG};

/// How long a server may take to be ready.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping server gets before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What a target can show and do.
#[derive(Debug, Clone, Serialize)]
pub struct Capabilities {
    /// Where it can be observed (scoreboard, /proc, process exits).
    pub sources: &'static [Source],
    /// The server event kinds it reports.
    pub events: &'static [EventKind],
    /// It serves `/fault/...` when the case enables faults.
    pub fault_paths: bool,
    /// It honours the Fault* directives (fault sites outside requests).
    pub fault_sites: bool,
    /// Expectations marked reference-only are judged here (the reference server itself).
    pub judges_reference_only: bool,
}

impl Capabilities {
    pub fn has(&self, source: Source) -> bool {
        self.sources.contains(&source)
    }

    pub fn reports(&self, kind: EventKind) -> bool {
        self.events.contains(&kind)
    }

    /// Whether it honours this directive.
    pub fn honours(&self, directive: &str) -> bool {
        !refhttpd::Config::is_fault_directive(directive) || self.fault_sites
    }
}

/// A server that would not start.
#[derive(Debug, thiserror::Error)]
#[error("{target} server for {mpm} did not start: {reason}")]
pub struct StartError {
    pub target: Target,
    pub mpm: Mpm,
    pub reason: String,
}

/// How the harness's stop ended the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Termination {
    /// The master had already exited (the scenario stopped it, or it died).
    AlreadyExited,
    /// The master exited after SIGTERM to the group, within the grace period.
    Terminated,
    /// The master outlived the grace period: the group was SIGKILLed.
    Killed,
}

/// A running server.
pub trait Server: Send {
    /// Where to reach it, and how (plain or TLS, trusting its certificate).
    fn endpoint(&self) -> Endpoint;
    fn addr(&self) -> SocketAddr {
        self.endpoint().addr
    }
    /// The master's pid.
    fn master(&self) -> i32;
    /// Sends `sig` to the master.
    fn signal(&self, sig: Signal) -> nix::Result<()>;
    /// Stops the whole process group.
    fn stop(&mut self) -> Termination;
    /// The server's error log so far.
    fn error_log(&self) -> String;
}

/// A started server and the observers it registered on the store (they end when the store
/// closes).
pub struct Started {
    pub server: Box<dyn Server>,
    pub observers: Vec<JoinHandle<()>>,
}

/// One kind of target.
pub trait TargetKind: Sync {
    fn capabilities(&self) -> Capabilities;
    /// Whether it can run here; the reason when it cannot.
    fn available(&self) -> Result<(), String>;
    /// Starts a server for `launch`, recording into `store`.
    fn start(&self, launch: &Launch, store: &Store) -> Result<Started, StartError>;
}

impl Target {
    /// The registration: each target's implementation.
    pub fn kind(self) -> &'static dyn TargetKind {
        match self {
            Target::Reference => &reference::Reference,
            Target::Apache => &apache::Apache,
        }
    }

    pub fn capabilities(self) -> Capabilities {
        self.kind().capabilities()
    }

    pub fn available(self) -> Result<(), String> {
        self.kind().available()
    }
}

/// A server's process group, with its master's ending watched.
pub struct Group {
    group: Pid,
    store: Store,
    /// Set when `stop` begins: observers no longer record the exits the stop causes.
    stopping: Arc<AtomicBool>,
}

impl Group {
    /// Watches `child` (the group leader, started in a new process group): its ending is
    /// recorded as the master's. A server that logs no `stopped` event of its own
    /// (`announce_stop`) gets one recorded when the master exits.
    pub fn watch(mut child: Child, store: &Store, announce_stop: bool) -> Group {
        let group = Pid::from_raw(child.id() as i32);
        let watcher = store.clone();
        std::thread::spawn(move || {
            let ending = child.wait().map_or(Ending::Unknown, Ending::from_status);
            let outlived_by = crate::observe::group_members(group.as_raw());
            if announce_stop {
                watcher.push(Observation::ServerEvent {
                    event: EventKind::Stopped,
                    pid: group.as_raw(),
                    detail: serde_json::json!({ "reason": format!("master exited ({ending})") }),
                });
            }
            watcher.push(Observation::MasterExited {
                ending,
                outlived_by,
            });
        });
        Group {
            group,
            store: store.clone(),
            stopping: Arc::default(),
        }
    }

    pub fn leader(&self) -> i32 {
        self.group.as_raw()
    }

    /// Becomes true when the harness begins to stop the server.
    pub fn stopping(&self) -> Arc<AtomicBool> {
        self.stopping.clone()
    }

    /// SIGTERM to the group, a grace period, then SIGKILL to the group (always: children of a
    /// stopped master die with it, the group kill covers any straggler).
    pub fn stop(&self) -> Termination {
        self.stopping.store(true, Ordering::SeqCst);
        if self.store.lock().master_exited {
            let _ = killpg(self.group, Signal::SIGKILL);
            return Termination::AlreadyExited;
        }
        let _ = killpg(self.group, Signal::SIGTERM);
        let exited = self
            .store
            .wait_until(Instant::now() + STOP_GRACE, |s| s.master_exited);
        let _ = killpg(self.group, Signal::SIGKILL);
        if exited {
            Termination::Terminated
        } else {
            self.store
                .wait_until(Instant::now() + STOP_GRACE, |s| s.master_exited);
            Termination::Killed
        }
    }
}

/// A server started in its own temp dir and process group: what both targets run.
struct ServerProcess {
    addr: SocketAddr,
    /// The trust for its certificate, when it serves TLS.
    tls: Option<crate::drive::TlsClient>,
    master: i32,
    group: Group,
    error_log: PathBuf,
    /// Removed when the server is dropped (after it is stopped).
    _dir: tempfile::TempDir,
}

impl Server for ServerProcess {
    fn endpoint(&self) -> Endpoint {
        Endpoint {
            addr: self.addr,
            tls: self.tls.clone(),
        }
    }

    fn master(&self) -> i32 {
        self.master
    }

    fn signal(&self, sig: Signal) -> nix::Result<()> {
        nix::sys::signal::kill(Pid::from_raw(self.master), sig)
    }

    fn stop(&mut self) -> Termination {
        self.group.stop()
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(&self.error_log).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.group.stop();
    }
}

/// A private temp dir for one server.
fn temp_dir(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(prefix).tempdir()
}
