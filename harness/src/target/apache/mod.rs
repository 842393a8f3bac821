//! The `apache` target: real Apache httpd 2.4 from the system package, started per (case, MPM)
//! in its own temp dir from a generated `httpd.conf`, with the fault handler that the harness
//! ships (`harness/apache/fault.lua`, run by mod_lua) serving the same paths as refhttpd.
//!
//! Observers (no request to Apache, so they also see a server whose every worker is busy):
//! - the scoreboard: the generated configuration names a `ScoreBoardFile`, which Apache keeps
//!   as a POSIX shared-memory object; the harness finds it in the master's memory map and reads
//!   worker states, process slots, quiescing/accepting flags and the async connection counters
//!   with Apache 2.4's record layout (checked against the object's size before use);
//! - a `/proc` watcher: a child that exits stays a zombie until Apache's once-a-second
//!   maintenance reaps it, and `/proc/<pid>/stat` shows its wait status meanwhile — so exits
//!   are seen at once with their signal or exit code (Apache logs neither a non-zero exit nor a
//!   kill by SIGKILL/SIGTERM);
//! - an error-log tail: `exit signal …` (for exits the watcher missed), `server reached
//!   MaxRequestWorkers`, signals and restarts, read timeouts, mapped to the reference's event
//!   names.
//!
//! Readiness is read from the scoreboard too (a waiting worker in an accepting child), so the
//! harness sends Apache no request of its own. A case without faults
//! gets a handler that answers `/fault/...` with 404, as refhttpd without `--faults`.
//!
//! The parts: `config` writes httpd.conf and the handler, `start` starts Apache under the guard
//! and waits for it to be ready, `board` reads the scoreboard, `log` reads the error log. This
//! module holds the [`TargetKind`] implementation and the glue: the observers' shared state and
//! the `/proc` and scoreboard watcher.

mod board;
mod config;
mod log;
mod start;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use refhttpd::EventKind;

use super::{Capabilities, Launch, ServerProcess, StartError, Started, TargetKind};
use crate::observe::board::Board;
use crate::observe::{
    process_state_and_exit, Changes, Ending, Observation, ProcSampler, Sampler, Store, Summary,
};
use crate::spec::condition::Source;

pub use board::ApacheBoard;
pub use log::{parse_log_line, LogLine};

/// The Apache target.
pub struct Apache;

/// The event kinds Apache's error log and process table show.
const EVENTS: [EventKind; 8] = [
    EventKind::ChildSpawned,
    EventKind::ChildExited,
    EventKind::ChildFatal,
    EventKind::MaxRequestWorkers,
    EventKind::Signal,
    EventKind::Generation,
    EventKind::Stopped,
    EventKind::Timeout,
];

impl TargetKind for Apache {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            sources: &Source::ALL,
            events: &EVENTS,
            fault_paths: true,
            // refhttpd's fault sites (FaultChildStart, FaultFork, FaultAccept) have no Apache
            // equivalent.
            fault_sites: false,
            judges_reference_only: false,
        }
    }

    fn available(&self) -> Result<(), String> {
        start::available()
    }

    fn start(&self, launch: &Launch, store: &Store) -> Result<Started, StartError> {
        start::start(launch, store)
    }
}

/// How often the watcher looks at the master's children and the scoreboard.
const PROC_INTERVAL: Duration = Duration::from_millis(3);
/// How long a child that vanished unseen waits for its error-log line before it is recorded
/// without a cause.
const VANISHED_GRACE: Duration = Duration::from_millis(300);

/// What the observers share: the exits recorded (by the `/proc` watcher or the error log).
struct Shared {
    exited: BTreeSet<i32>,
    /// The harness is stopping the server: the exits that causes are not the case's.
    stopping: Arc<AtomicBool>,
}

/// How often the watcher looks at the master's children and the scoreboard between on-demand
/// samples, and /proc's resources.
const PROC_EVERY: Duration = Duration::from_millis(10);
/// How often the error log is read between on-demand reads.
const LOG_EVERY: Duration = Duration::from_millis(2);

/// Starts the `/proc` and scoreboard watcher, the /proc resource sampler and the error-log
/// tail.
fn start_observers(
    server: &ServerProcess,
    store: &Store,
    error_log: &Path,
    threads_per_child: usize,
) -> Vec<JoinHandle<()>> {
    let shared = Arc::new(Mutex::new(Shared {
        exited: BTreeSet::new(),
        stopping: server.group.stopping(),
    }));
    let watcher = Watcher {
        shared: shared.clone(),
        master: server.master,
        threads: threads_per_child,
        board: None,
        last: Changes::default(),
        known: BTreeSet::new(),
        vanished: BTreeMap::new(),
        first: true,
    };
    let log = log::ErrorLog::new(error_log.to_path_buf(), shared);
    vec![
        store.add_sampler(Box::new(watcher), PROC_INTERVAL),
        store.add_sampler(Box::new(ProcSampler::new(server.master)), PROC_EVERY),
        store.add_sampler(Box::new(log), LOG_EVERY),
    ]
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

fn record_exit(store: &Store, shared: &mut Shared, pid: i32, ending: Ending) {
    if !shared.exited.insert(pid) || shared.stopping.load(Ordering::SeqCst) {
        return;
    }
    store.push_all(vec![
        Observation::ChildExited { pid, ending },
        Observation::ServerEvent {
            event: EventKind::ChildExited,
            pid: 0,
            detail: serde_json::json!({ "child": pid, "ending": ending }),
        },
    ]);
}

/// The master's children (exits from zombies' wait status, spawns) and Apache's scoreboard,
/// recorded when the summary changes.
struct Watcher {
    shared: Arc<Mutex<Shared>>,
    master: i32,
    threads: usize,
    board: Option<ApacheBoard>,
    last: Changes<Summary>,
    known: BTreeSet<i32>,
    vanished: BTreeMap<i32, Instant>,
    first: bool,
}

impl Sampler for Watcher {
    fn sources(&self) -> &'static [Source] {
        &[Source::Scoreboard, Source::ProcessExits]
    }

    fn sample(&mut self, store: &Store) -> bool {
        let mut live = Vec::new();
        let mut exits = Vec::new();
        if self.board.is_none() {
            self.board = ApacheBoard::find(self.master);
        }
        // The scoreboard's pids too: /proc's list of children can miss one while another
        // starts or exits, and a missed child would make a sample count one process short.
        // One read of the board a sample, for its pids and its rows.
        let rows = self.board.as_ref().and_then(ApacheBoard::read);
        let on_board = rows.as_ref().map(Board::pids).unwrap_or_default();
        let now = crate::observe::children_with(self.master, on_board);
        for &pid in &now {
            match process_state_and_exit(pid) {
                Some(('Z', Some(status))) => exits.push((pid, status)),
                Some(('Z', None)) | None => {}
                Some(_) => live.push(pid),
            }
        }
        let mut s = lock(&self.shared);
        for (pid, status) in exits {
            record_exit(store, &mut s, pid, Ending::from_raw(status));
        }
        for &pid in &live {
            if self.known.insert(pid) && !self.first {
                store.push(Observation::ServerEvent {
                    event: EventKind::ChildSpawned,
                    pid: 0,
                    detail: serde_json::json!({ "child": pid }),
                });
            }
        }
        // Reaped before the watcher saw the zombie: the error log may still name the cause.
        let current: BTreeSet<i32> = now.iter().copied().collect();
        for &pid in self.known.iter().filter(|p| !current.contains(p)) {
            self.vanished.entry(pid).or_insert_with(Instant::now);
        }
        self.known.retain(|p| current.contains(p));
        self.vanished.retain(|&pid, since| {
            if s.exited.contains(&pid) {
                return false;
            }
            if since.elapsed() >= VANISHED_GRACE {
                record_exit(store, &mut s, pid, Ending::Unknown);
                return false;
            }
            true
        });
        self.first = false;
        drop(s);
        let live: BTreeSet<i32> = live.into_iter().collect();
        let Some(rows) = rows else {
            return false;
        };
        let summary = rows.summary_of(self.threads, &live);
        if let Some(changed) = self.last.changed(summary) {
            store.push(Observation::Scoreboard(changed));
        }
        true
    }
}
