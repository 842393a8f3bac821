//! Observations: everything a run saw, in one timeline — client outcomes (status, served-by,
//! latency, error class), scoreboard samples, /proc samples, server events, process endings,
//! the steps taken — and the [`Recording`] a run hands to the verdict.
//!
//! The [`Store`] is shared by the drivers and observers that write it and the runner that waits
//! on it. Every write wakes the waiters, and samplers ([`Sampler`]) can be asked for a sample at
//! once ([`Store::sample_now`]): a wait is decided on observations made after it began
//! ([`Fresh`]), never on a stale sample or a timer's luck.

pub mod board;
pub mod load;
mod samplers;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mpm_faults::Fault;
use nix::sys::wait::WaitStatus;
use refhttpd::EventKind;
pub use refhttpd::ServedBy;
use serde::{Deserialize, Serialize};

use crate::spec::condition::{Facts, Quantity, Source};
use crate::spec::BodyShape;

pub use samplers::{
    children, children_with, group_members, process_state, process_state_and_exit,
    server_processes, EventLogSampler, Follower, ProcSampler, ScoreboardSampler,
};

/// Why a request got no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The connection could not be opened.
    Refused,
    /// The server reset the connection.
    Reset,
    /// The server closed the connection before a complete response.
    Closed,
    /// No response before the client gave up.
    Timeout,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Refused => "refused",
            ErrorClass::Reset => "reset",
            ErrorClass::Closed => "closed",
            ErrorClass::Timeout => "timeout",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a process ended: its exit code, or the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    Exited(i32),
    Signaled(i32),
    /// Gone, and nothing said how.
    Unknown,
}

impl Ending {
    /// From a raw wait status (`waitpid`, `/proc/<pid>/stat`'s exit_code).
    pub fn from_raw(status: i32) -> Ending {
        match WaitStatus::from_raw(nix::unistd::Pid::from_raw(1), status) {
            Ok(WaitStatus::Exited(_, code)) => Ending::Exited(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => Ending::Signaled(sig as i32),
            _ => Ending::Unknown,
        }
    }

    /// From a process's exit status.
    pub fn from_status(status: std::process::ExitStatus) -> Ending {
        use std::os::unix::process::ExitStatusExt;
        Ending::from_raw(status.into_raw())
    }

    /// A death by a signal or a non-zero exit.
    pub fn is_crash(self) -> bool {
        match self {
            Ending::Signaled(_) => true,
            Ending::Exited(code) => code != 0,
            Ending::Unknown => false,
        }
    }
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::Exited(c) => write!(f, "exit code {c}"),
            Ending::Signaled(s) => {
                let name = nix::sys::signal::Signal::try_from(*s)
                    .map(|s| s.as_str())
                    .unwrap_or("?");
                write!(f, "signal {s} ({name})")
            }
            Ending::Unknown => f.write_str("unknown cause"),
        }
    }
}

/// The scoreboard reduced to what cases speak of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub busy: u64,
    pub idle: u64,
    pub keepalive_workers: u64,
    pub writing_workers: u64,
    /// `S` slots of live processes, ThreadLimit slots each.
    pub starting_workers: u64,
    pub async_keepalive: u64,
    pub async_writing: u64,
    pub async_closing: u64,
    pub processes: u64,
    pub accepting: u64,
    /// Live children, by slot: each one's pid and its workers' letters.
    pub children: Vec<ChildWorkers>,
}

/// One live child in a [`Summary`]: its pid, and the mod_status letter of each of its first
/// ThreadsPerChild workers (`_`, `K`, `W`, …), one `char` a worker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildWorkers {
    pub pid: i32,
    pub workers: String,
}

impl ChildWorkers {
    /// Whether a worker of this child waits for a connection.
    pub fn has_idle(&self) -> bool {
        self.workers.contains('_')
    }
}

impl Summary {
    /// The live children's pids, by slot.
    pub fn pids(&self) -> impl Iterator<Item = i32> + '_ {
        self.children.iter().map(|c| c.pid)
    }

    /// Every child's letters, `|` between children (`_KW_|__K_`): how a timeline shows them.
    pub fn letters(&self) -> String {
        self.children
            .iter()
            .map(|c| c.workers.as_str())
            .collect::<Vec<_>>()
            .join("|")
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] busy={} idle={} K={} W={} async_ka={} async_w={} async_c={} procs={} accepting={}",
            self.letters(),
            self.busy,
            self.idle,
            self.keepalive_workers,
            self.writing_workers,
            self.async_keepalive,
            self.async_writing,
            self.async_closing,
            self.processes,
            self.accepting
        )
    }
}

/// The last value a sampler recorded: a sample is recorded only when it differs from it.
#[derive(Debug)]
pub struct Changes<T>(Option<T>);

impl<T> Default for Changes<T> {
    fn default() -> Self {
        Changes(None)
    }
}

impl<T: PartialEq + Clone> Changes<T> {
    /// `now`, when it differs from the last value (which it becomes); `None` when unchanged.
    pub fn changed(&mut self, now: T) -> Option<T> {
        if self.0.as_ref() == Some(&now) {
            return None;
        }
        self.0 = Some(now.clone());
        Some(now)
    }
}

/// Whom each clobbered `shared:` request of the timeline found in its slot: request name → the
/// answered request whose own token it found, served by the same process or by one not known
/// (one of the same known process first). A clobbered request whose token's owner the run did
/// not answer (a load's, say) is not in the map.
pub fn shared_clobberers(timeline: &[Entry]) -> BTreeMap<String, String> {
    let answers: Vec<(&str, Option<i32>, &SharedAnswer)> = timeline
        .iter()
        .filter_map(|e| match &e.what {
            Observation::Response {
                request,
                served_by,
                shared: Some(answer),
                ..
            } => Some((request.as_str(), served_by.map(|b| b.pid), answer)),
            _ => None,
        })
        .collect();
    let mut by = BTreeMap::new();
    for &(name, pid, answer) in &answers {
        if answer.intact || answer.found.is_empty() {
            continue;
        }
        let mut candidates = answers.iter().filter(|(other, other_pid, a)| {
            *other != name
                && a.token == answer.found
                && (pid.is_none() || other_pid.is_none() || pid == *other_pid)
        });
        let first = candidates.clone().next();
        if let Some((other, _, _)) = candidates
            .find(|(_, other_pid, _)| pid.is_some() && pid == *other_pid)
            .or(first)
        {
            by.insert(name.to_string(), other.to_string());
        }
    }
    by
}

/// The scoreboard samples of a timeline, each with its moment (ms from the start).
pub fn scoreboard_samples(timeline: &[Entry]) -> Vec<(f64, &Summary)> {
    timeline
        .iter()
        .filter_map(|e| match &e.what {
            Observation::Scoreboard(s) => Some((e.at_ms, s)),
            _ => None,
        })
        .collect()
}

/// What /proc says about the server's processes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Master and live (non-zombie) children.
    pub processes: u64,
    /// Threads of all of them.
    pub threads: u64,
    /// Summed proportional set size (shared pages counted once), KiB.
    pub pss_kb: u64,
    /// Each process's own PSS, by pid: the master and every child whose memory /proc showed
    /// (a process on its way out, whose memory is already gone, is left out). Empty in
    /// recordings made before it was observed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes_memory: Vec<ProcessMemory>,
}

/// One process's memory in a /proc sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessMemory {
    pub pid: i32,
    /// Its proportional set size (`/proc/<pid>/smaps_rollup`), KiB: its private pages, and its
    /// share of the pages it shares with other processes.
    pub pss_kb: u64,
}

impl Resources {
    /// The PSS of process `pid` in this sample (KiB), if /proc showed its memory.
    pub fn pss_of(&self, pid: i32) -> Option<u64> {
        self.processes_memory
            .iter()
            .find(|p| p.pid == pid)
            .map(|p| p.pss_kb)
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} processes, {} threads, PSS {} KiB",
            self.processes, self.threads, self.pss_kb
        )?;
        if !self.processes_memory.is_empty() {
            let each: Vec<String> = self
                .processes_memory
                .iter()
                .map(|p| format!("{} {}", p.pid, p.pss_kb))
                .collect();
            write!(f, " (pid KiB: {})", each.join(", "))?;
        }
        Ok(())
    }
}

/// The /proc samples of a timeline, each with its index in it.
pub fn resource_samples(timeline: &[Entry]) -> Vec<(usize, &Resources)> {
    timeline
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match &e.what {
            Observation::Resources(r) => Some((i, r)),
            _ => None,
        })
        .collect()
}

/// One thing that happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Observation {
    Step {
        line: usize,
        text: String,
    },
    ConnOpened {
        conn: String,
        /// How long the TCP handshake took (connect() returning).
        took_ms: f64,
    },
    ConnRefused {
        conn: String,
        error: String,
    },
    RequestSent {
        request: String,
        conn: String,
        target: String,
        /// How it was sent: the method, the HTTP version and the `Connection` header, if any
        /// (`GET HTTP/1.1, Connection: close`); `raw` for exact bytes.
        how: String,
    },
    Response {
        request: String,
        conn: String,
        status: u16,
        served_by: Option<ServedBy>,
        closes: bool,
        /// Length of the body.
        bytes: u64,
        /// What the body holds.
        body: BodyShape,
        /// The response's header fields, as sent.
        headers: Vec<(String, String)>,
        /// What a `shared:` request found.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shared: Option<SharedAnswer>,
        latency_ms: f64,
    },
    RequestFailed {
        request: String,
        conn: String,
        class: ErrorClass,
        latency_ms: f64,
    },
    /// The head of a slowly read response has arrived (its body is still coming).
    ResponseBegun {
        request: String,
        conn: String,
    },
    /// The server ended a connection (EOF or reset) that the client had not closed.
    ConnClosedByServer {
        conn: String,
        class: ErrorClass,
    },
    /// The client closed (or reset) a connection during the scenario, the server's end not
    /// having reached it first (that is recorded before, when it had).
    ConnClosedByClient {
        conn: String,
    },
    Scoreboard(Summary),
    ServerEvent {
        event: EventKind,
        pid: i32,
        detail: serde_json::Value,
    },
    ChildExited {
        pid: i32,
        ending: Ending,
    },
    MasterExited {
        ending: Ending,
        /// Processes of the server's group still alive when the master was gone: none, when
        /// the master waited for every child it started.
        outlived_by: Vec<i32>,
    },
    /// The server's processes from /proc: master and children, their threads, their PSS summed
    /// and each one's.
    Resources(Resources),
    /// The harness killed a child (`kill_child_of`).
    Killed {
        pid: i32,
        signal: String,
    },
    /// A `server-status?auto` page the harness fetched.
    StatusPage {
        keys: BTreeMap<String, String>,
    },
    /// A load began (`load` step).
    LoadStarted {
        load: String,
        shape: load::LoadShape,
    },
    /// A load's warm-up is over; `all`: every connection was answered, so each one's owner is
    /// known.
    LoadWarmed {
        load: String,
        all: bool,
    },
    /// One interval of a load: throughput, failures and latency.
    LoadInterval {
        load: String,
        /// (Not flattened: its `at_ms`, the interval's start, is not the entry's.)
        interval: load::Interval,
    },
    /// A load ended: its summary.
    LoadFinished {
        load: String,
        summary: String,
    },
    /// The scenario is over; what follows is the harness stopping the server.
    Teardown,
    Note {
        text: String,
    },
}

/// An observation and when it happened, from the start of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub at_ms: f64,
    #[serde(flatten)]
    pub what: Observation,
}

/// What a `shared:` request found when it read its process's slot back (TS-1): its own token
/// (intact), or another request's (clobbered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedAnswer {
    pub intact: bool,
    /// Its own token.
    pub token: String,
    /// The token it found.
    pub found: String,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestOutcome {
    Response {
        status: u16,
        served_by: Option<ServedBy>,
        closes: bool,
        bytes: u64,
        body: BodyShape,
        headers: Vec<(String, String)>,
        shared: Option<SharedAnswer>,
        latency: Duration,
    },
    Failed {
        class: ErrorClass,
        latency: Duration,
    },
}

impl RequestOutcome {
    pub fn latency(&self) -> Duration {
        match self {
            RequestOutcome::Response { latency, .. } | RequestOutcome::Failed { latency, .. } => {
                *latency
            }
        }
    }

    /// The child that answered.
    pub fn pid(&self) -> Option<i32> {
        match self {
            RequestOutcome::Response {
                served_by: Some(by),
                ..
            } => Some(by.pid),
            _ => None,
        }
    }
}

/// Samples taken per source (changed or not): how fresh the state is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marks {
    pub scoreboard: u64,
    pub proc: u64,
}

impl Marks {
    fn get(&self, source: Source) -> Option<u64> {
        match source {
            Source::Scoreboard => Some(self.scoreboard),
            Source::Proc => Some(self.proc),
            // Exits and events are counted as they happen, not sampled.
            Source::ProcessExits | Source::Events => None,
        }
    }
}

/// What conditions ask about, kept current as observations arrive (or replayed from a
/// timeline).
#[derive(Debug, Default)]
pub struct State {
    pub entries: Vec<Entry>,
    pub summary: Option<Summary>,
    pub resources: Option<Resources>,
    pub events: BTreeMap<EventKind, u64>,
    pub child_exits: u64,
    pub master_exited: bool,
    /// Request name → its outcome, once known.
    pub outcomes: BTreeMap<String, RequestOutcome>,
    pub closed_conns: BTreeMap<String, ErrorClass>,
    /// Requests whose response has begun to arrive (slow reads).
    pub responding: std::collections::BTreeSet<String>,
    /// Loads whose warm-up is over, and whether every connection was answered.
    pub loads_warmed: BTreeMap<String, bool>,
    pub loads_finished: std::collections::BTreeSet<String>,
    pub marks: Marks,
    closed: bool,
}

impl State {
    /// Updates what conditions ask about with one observation.
    pub fn apply(&mut self, what: &Observation) {
        match what {
            Observation::Response {
                request,
                status,
                served_by,
                closes,
                bytes,
                body,
                headers,
                shared,
                latency_ms,
                ..
            } => {
                self.outcomes.insert(
                    request.clone(),
                    RequestOutcome::Response {
                        status: *status,
                        served_by: *served_by,
                        closes: *closes,
                        bytes: *bytes,
                        body: *body,
                        headers: headers.clone(),
                        shared: shared.clone(),
                        latency: Duration::from_secs_f64(latency_ms / 1000.0),
                    },
                );
            }
            Observation::RequestFailed {
                request,
                class,
                latency_ms,
                ..
            } => {
                self.outcomes.insert(
                    request.clone(),
                    RequestOutcome::Failed {
                        class: *class,
                        latency: Duration::from_secs_f64(latency_ms / 1000.0),
                    },
                );
            }
            Observation::ConnClosedByServer { conn, class } => {
                self.closed_conns.insert(conn.clone(), *class);
            }
            Observation::ResponseBegun { request, .. } => {
                self.responding.insert(request.clone());
            }
            Observation::Scoreboard(summary) => self.summary = Some(summary.clone()),
            Observation::Resources(r) => self.resources = Some(r.clone()),
            Observation::ServerEvent { event, .. } => *self.events.entry(*event).or_default() += 1,
            Observation::ChildExited { .. } => self.child_exits += 1,
            Observation::MasterExited { .. } => self.master_exited = true,
            Observation::LoadWarmed { load, all } => {
                self.loads_warmed.insert(load.clone(), *all);
            }
            Observation::LoadFinished { load, .. } => {
                self.loads_finished.insert(load.clone());
            }
            _ => {}
        }
    }

    /// The state after every observation of `timeline`.
    pub fn replay(timeline: &[Entry]) -> State {
        let mut s = State::default();
        for e in timeline {
            s.apply(&e.what);
        }
        s
    }

    /// The current state in words.
    pub fn describe(&self) -> String {
        let summary = self
            .summary
            .as_ref()
            .map(|x| x.to_string())
            .unwrap_or_else(|| "no scoreboard yet".into());
        let events: Vec<String> = self
            .events
            .iter()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect();
        let resources = self
            .resources
            .as_ref()
            .map(|r| format!("; {r}"))
            .unwrap_or_default();
        format!(
            "{summary}{resources}; child exits {}; events [{}]; closed by server [{}]",
            self.child_exits,
            events.join(", "),
            self.closed_conns
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

impl Facts for State {
    fn quantity(&self, q: Quantity) -> Option<u64> {
        let board = || self.summary.as_ref();
        let procs = || self.resources.as_ref();
        match q {
            Quantity::BusyWorkers => board().map(|s| s.busy),
            Quantity::IdleWorkers => board().map(|s| s.idle),
            Quantity::KeepaliveWorkers => board().map(|s| s.keepalive_workers),
            Quantity::WritingWorkers => board().map(|s| s.writing_workers),
            Quantity::StartingWorkers => board().map(|s| s.starting_workers),
            Quantity::AsyncKeepalive => board().map(|s| s.async_keepalive),
            Quantity::AsyncWriting => board().map(|s| s.async_writing),
            Quantity::AsyncClosing => board().map(|s| s.async_closing),
            Quantity::Processes => board().map(|s| s.processes),
            Quantity::Accepting => board().map(|s| s.accepting),
            Quantity::Threads => procs().map(|r| r.threads),
            Quantity::PssKb => procs().map(|r| r.pss_kb),
            Quantity::ChildExits => Some(self.child_exits),
        }
    }

    fn events(&self, kind: EventKind) -> u64 {
        self.events.get(&kind).copied().unwrap_or(0)
    }

    fn master_exited(&self) -> bool {
        self.master_exited
    }

    fn closed_by_server(&self, conn: &str) -> bool {
        self.closed_conns.contains_key(conn)
    }

    fn responding(&self, request: &str) -> bool {
        self.responding.contains(request) || self.outcomes.contains_key(request)
    }
}

/// The state restricted to samples taken after `since`: what a wait or check is decided on.
pub struct Fresh<'a> {
    pub state: &'a State,
    pub since: Marks,
}

impl Facts for Fresh<'_> {
    fn quantity(&self, q: Quantity) -> Option<u64> {
        let source = q.source();
        match (self.state.marks.get(source), self.since.get(source)) {
            (Some(now), Some(then)) if now <= then => None,
            _ => self.state.quantity(q),
        }
    }

    fn events(&self, kind: EventKind) -> u64 {
        self.state.events(kind)
    }

    fn master_exited(&self) -> bool {
        self.state.master_exited
    }

    fn closed_by_server(&self, conn: &str) -> bool {
        self.state.closed_by_server(conn)
    }

    fn responding(&self, request: &str) -> bool {
        self.state.responding(request)
    }
}

/// Something that reads the server's state on demand (a scoreboard, /proc) and records what
/// changed.
pub trait Sampler: Send {
    /// The sources one sample covers.
    fn sources(&self) -> &'static [Source];
    /// Takes one sample; false when nothing could be read (yet).
    fn sample(&mut self, store: &Store) -> bool;
}

type SharedSampler = Arc<Mutex<Box<dyn Sampler>>>;

/// A registered sampler and the sources it covers (read once, at registration).
struct Registered {
    sources: &'static [Source],
    sampler: SharedSampler,
}

struct Inner {
    state: Mutex<State>,
    changed: Condvar,
    samplers: Mutex<Vec<Registered>>,
}

/// The shared timeline.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    start: Instant,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Store {
        Store {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
                samplers: Mutex::new(Vec::new()),
            }),
            start: Instant::now(),
        }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an observation and wakes every waiter.
    pub fn push(&self, what: Observation) {
        self.push_all(vec![what]);
    }

    /// Records observations that belong together (an exit and its event) at one moment, so
    /// that nothing — a waiter, the teardown — sees one without the other.
    pub fn push_all(&self, all: Vec<Observation>) {
        let at_ms = self.start.elapsed().as_secs_f64() * 1000.0;
        let mut s = self.lock();
        for what in all {
            s.apply(&what);
            s.entries.push(Entry { at_ms, what });
        }
        drop(s);
        self.inner.changed.notify_all();
    }

    /// Waits until `cond` holds on the state, or the deadline passes; returns whether it held.
    pub fn wait_until(&self, deadline: Instant, mut cond: impl FnMut(&State) -> bool) -> bool {
        let mut s = self.lock();
        loop {
            if cond(&s) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            s = self
                .inner
                .changed
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits until `cond` holds on observations made after this call began, sampling the
    /// given sources at once and then at least every `every`; returns whether it held.
    pub fn wait_fresh(
        &self,
        deadline: Instant,
        sources: &[Source],
        every: Duration,
        mut cond: impl FnMut(&Fresh<'_>) -> bool,
    ) -> bool {
        let since = self.marks();
        loop {
            self.sample_now(sources);
            let next = (Instant::now() + every).min(deadline);
            let held = self.wait_until(next, |s| cond(&Fresh { state: s, since }));
            if held {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// Samples taken so far.
    pub fn marks(&self) -> Marks {
        self.lock().marks
    }

    /// Registers a sampler and samples with it every `every` on a thread of its own until the
    /// store closes; [`Store::sample_now`] may also call it.
    pub fn add_sampler(&self, sampler: Box<dyn Sampler>, every: Duration) -> JoinHandle<()> {
        let sources = sampler.sources();
        let shared: SharedSampler = Arc::new(Mutex::new(sampler));
        self.inner
            .samplers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Registered {
                sources,
                sampler: shared.clone(),
            });
        let store = self.clone();
        std::thread::spawn(move || {
            while !store.is_closed() {
                store.run_sampler(&shared);
                store.pause(every);
            }
        })
    }

    /// Takes one sample now with every sampler that covers one of `sources`.
    pub fn sample_now(&self, sources: &[Source]) {
        let covering: Vec<SharedSampler> = self
            .inner
            .samplers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|r| r.sources.iter().any(|x| sources.contains(x)))
            .map(|r| r.sampler.clone())
            .collect();
        for s in &covering {
            self.run_sampler(s);
        }
    }

    fn run_sampler(&self, sampler: &SharedSampler) {
        let mut guard = sampler.lock().unwrap_or_else(|e| e.into_inner());
        if guard.sample(self) {
            let sources = guard.sources();
            let mut s = self.lock();
            for source in sources {
                match source {
                    Source::Scoreboard => s.marks.scoreboard += 1,
                    Source::Proc => s.marks.proc += 1,
                    Source::ProcessExits | Source::Events => {}
                }
            }
            drop(s);
            self.inner.changed.notify_all();
        }
    }

    /// Stops the samplers.
    pub fn close(&self) {
        self.lock().closed = true;
        self.inner.changed.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// A copy of the timeline.
    pub fn entries(&self) -> Vec<Entry> {
        self.lock().entries.clone()
    }

    /// Sleeps up to `d` unless the store closes first.
    pub fn pause(&self, d: Duration) {
        let deadline = Instant::now() + d;
        self.wait_until(deadline, |s| s.closed);
    }
}

/// One request the scenario sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sent {
    pub name: String,
    pub conn: String,
    /// The server fault it carried (`/fault/<fault>`), as the fault, not its path.
    #[serde(default, with = "fault_text")]
    pub fault: Option<Fault>,
}

impl Sent {
    /// It carried a fault designed to take down its process (the crash oracle's "carried the
    /// crash").
    pub fn fatal(&self) -> bool {
        self.fault.as_ref().is_some_and(Fault::ends_its_process)
    }
}

/// A fault in the JSON as its textual form (`crash:segv`), the one grammar both sides speak.
mod fault_text {
    use mpm_faults::Fault;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(f: &Option<Fault>, s: S) -> Result<S::Ok, S::Error> {
        match f {
            Some(f) => s.collect_str(f),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Fault>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| t.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// What a decided step (wait, await, check, or one that could not act) came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum StepResult {
    /// A `wait` held, or an `await` saw every outcome.
    Held,
    /// A `wait` never held within its deadline; what was last observed.
    TimedOut { observed: String },
    /// An `await` ended with requests still pending.
    Pending { requests: Vec<String> },
    /// An `await` with a `timeout` passed it: the client gave up on these requests (not a
    /// failure: their outcome, `timeout`, is judged as any other).
    GaveUp { requests: Vec<String> },
    /// A `check`: whether it held and what was observed.
    Checked { held: bool, observed: String },
    /// The step could not act on the server (no child to kill, the master gone).
    Failed { why: String },
}

impl StepResult {
    /// Whether the step came to a failure: a wait or await that never held, a check that did
    /// not hold, a step that could not act.
    pub fn failed(&self) -> bool {
        !matches!(
            self,
            StepResult::Held | StepResult::GaveUp { .. } | StepResult::Checked { held: true, .. }
        )
    }
}

/// One decided step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub line: usize,
    pub text: String,
    pub result: StepResult,
}

/// Everything a run produced: what the verdict judges.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Recording {
    pub timeline: Vec<Entry>,
    /// Requests in the order sent.
    pub sent: Vec<Sent>,
    /// Waits, awaits and checks with their results.
    pub steps: Vec<StepRecord>,
    /// The line where the scenario stopped early (a wait that never held).
    pub stopped_at: Option<usize>,
    /// The harness broke (a server that would not start, an observer that died, a panic): the
    /// run says nothing about conformance.
    pub error: Option<String>,
    /// The server's own error log (stderr), to the end.
    pub server_log: String,
    /// How much of it was written when the scenario ended, before the harness stopped the
    /// server (`None` in recordings made before it was kept: all of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_at_teardown: Option<usize>,
    /// The master's pid, once the server started.
    pub master: Option<i32>,
    /// Every load the scenario drove, in the order started.
    pub loads: Vec<load::LoadRun>,
}

impl Recording {
    /// The timeline up to the harness's own teardown: what the scenario caused.
    pub fn scenario(&self) -> &[Entry] {
        let end = self
            .timeline
            .iter()
            .position(|e| matches!(e.what, Observation::Teardown))
            .unwrap_or(self.timeline.len());
        &self.timeline[..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_recorded_only_when_it_changes() {
        let mut last = Changes::default();
        assert_eq!(last.changed(1), Some(1));
        assert_eq!(last.changed(1), None);
        assert_eq!(last.changed(2), Some(2));
        assert_eq!(last.changed(1), Some(1));
    }

    #[test]
    fn endings_keep_the_signal() {
        assert_eq!(Ending::from_raw(768), Ending::Exited(3));
        assert_eq!(Ending::from_raw(11), Ending::Signaled(11));
        assert_eq!(Ending::from_raw(139), Ending::Signaled(11));
        assert!(Ending::Signaled(9).is_crash());
        assert!(Ending::Exited(3).is_crash());
        assert!(!Ending::Exited(0).is_crash());
        assert_eq!(Ending::Signaled(11).to_string(), "signal 11 (SIGSEGV)");
    }

    /// A recording made before each process's memory was observed reads as one without it.
    #[test]
    fn old_proc_samples_read_without_each_process() {
        let old: Observation = serde_json::from_str(
            r#"{"kind": "resources", "processes": 2, "threads": 3, "pss_kb": 4000}"#,
        )
        .unwrap();
        let Observation::Resources(r) = old else {
            panic!("not resources: {old:?}");
        };
        assert!(r.processes_memory.is_empty());
        assert_eq!(r.pss_of(1), None);
        assert_eq!(r.to_string(), "2 processes, 3 threads, PSS 4000 KiB");
    }

    struct Counter(u64);
    impl Sampler for Counter {
        fn sources(&self) -> &'static [Source] {
            &[Source::Scoreboard]
        }
        fn sample(&mut self, store: &Store) -> bool {
            self.0 += 1;
            store.push(Observation::Scoreboard(Summary {
                busy: self.0,
                ..Default::default()
            }));
            true
        }
    }

    #[test]
    fn a_wait_is_decided_only_on_samples_taken_after_it_began() {
        let store = Store::new();
        // A stale sample that would satisfy the condition.
        store.push(Observation::Scoreboard(Summary::default()));
        let sampler = store.add_sampler(Box::new(Counter(0)), Duration::from_secs(3600));
        // busy=0 is only in stale samples: every fresh one says busy ≥ 1.
        let held = store.wait_fresh(
            Instant::now() + Duration::from_millis(50),
            &[Source::Scoreboard],
            Duration::from_millis(5),
            |f| f.quantity(Quantity::BusyWorkers) == Some(0),
        );
        assert!(!held, "a stale sample satisfied a wait");
        // A fresh sample is taken at once, not at the sampler's next tick (an hour away).
        let started = Instant::now();
        let held = store.wait_fresh(
            Instant::now() + Duration::from_secs(5),
            &[Source::Scoreboard],
            Duration::from_secs(5),
            |f| f.quantity(Quantity::BusyWorkers).is_some_and(|b| b >= 2),
        );
        assert!(held);
        assert!(started.elapsed() < Duration::from_secs(1));
        store.close();
        sampler.join().unwrap();
    }
}
