//! Observations: everything a run saw, in one timeline — client outcomes (status, served-by,
//! latency, error class), scoreboard samples, server events, process exits, the steps taken.
//!
//! The [`Store`] is shared by the drivers and observers that write it and the runner that waits
//! on it: every write wakes the waiters, so a wait is for an observable condition, never a bare
//! sleep. Samplers ([`sample_scoreboard`], [`tail_event_log`]) run on their own threads until the
//! store is closed.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use refhttpd::scoreboard::{ScoreboardView, Snapshot, WorkerState};
use serde::Serialize;

/// Why a request got no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The connection could not be opened.
    Refused,
    /// The server reset the connection.
    Reset,
    /// The server closed the connection before a complete response.
    Closed,
    /// No response within the deadline.
    Timeout,
}

impl ErrorClass {
    /// The outcome name cases use (`refused`, `reset`, `closed`, `timeout`).
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

/// Who served a response (`X-Served-By: pid=… slot=… thread=…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServedBy {
    pub pid: i32,
    pub slot: Option<u32>,
    pub thread: Option<u32>,
}

impl ServedBy {
    pub fn parse(header: &str) -> Option<ServedBy> {
        let mut pid = None;
        let mut slot = None;
        let mut thread = None;
        for word in header.split_whitespace() {
            if let Some(v) = word.strip_prefix("pid=") {
                pid = v.parse().ok();
            } else if let Some(v) = word.strip_prefix("slot=") {
                slot = v.parse().ok();
            } else if let Some(v) = word.strip_prefix("thread=") {
                thread = v.parse().ok();
            }
        }
        Some(ServedBy {
            pid: pid?,
            slot,
            thread,
        })
    }
}

/// The scoreboard reduced to what cases speak of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub busy: u64,
    pub idle: u64,
    pub keepalive_workers: u64,
    pub async_keepalive: u64,
    pub async_writing: u64,
    pub processes: u64,
    pub accepting: u64,
    /// Worker letters of live processes, one group per process.
    pub workers: String,
    /// Live child pids, by slot.
    pub pids: Vec<i32>,
}

impl Summary {
    pub fn of(s: &Snapshot) -> Summary {
        let threads = s.threads_per_child.max(1);
        let workers = s
            .live_processes()
            .map(|p| {
                p.workers
                    .iter()
                    .take(threads)
                    .map(|w| w.state.as_char())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("|");
        Summary {
            busy: s.busy_workers() as u64,
            idle: s.idle_workers() as u64,
            keepalive_workers: s.count(WorkerState::KeepAlive) as u64,
            async_keepalive: u64::from(s.conns_async_keepalive()),
            async_writing: u64::from(s.conns_async_writing()),
            processes: s.live_processes().count() as u64,
            accepting: s.live_processes().filter(|p| p.accepting).count() as u64,
            workers,
            pids: s.live_processes().map(|p| p.pid).collect(),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] busy={} idle={} K={} async_ka={} async_w={} procs={} accepting={}",
            self.workers,
            self.busy,
            self.idle,
            self.keepalive_workers,
            self.async_keepalive,
            self.async_writing,
            self.processes,
            self.accepting
        )
    }
}

/// What /proc says about the server's processes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Resources {
    /// Master and live (non-zombie) children.
    pub processes: u64,
    /// Threads of all of them.
    pub threads: u64,
    /// Summed proportional set size (shared pages counted once), KiB.
    pub pss_kb: u64,
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} processes, {} threads, PSS {} KiB",
            self.processes, self.threads, self.pss_kb
        )
    }
}

/// One thing that happened.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Observation {
    Step {
        line: usize,
        text: String,
    },
    ConnOpened {
        conn: String,
    },
    ConnRefused {
        conn: String,
        error: String,
    },
    RequestSent {
        request: String,
        conn: String,
        target: String,
    },
    Response {
        request: String,
        conn: String,
        status: u16,
        served_by: Option<ServedBy>,
        closes: bool,
        latency_ms: f64,
    },
    RequestFailed {
        request: String,
        conn: String,
        class: ErrorClass,
        latency_ms: f64,
    },
    /// The server ended a connection (EOF or reset) that the client had not closed.
    ConnClosedByServer {
        conn: String,
        class: ErrorClass,
    },
    Scoreboard(Summary),
    ServerEvent {
        event: String,
        pid: i32,
        detail: serde_json::Value,
    },
    ChildExited {
        pid: i32,
        signal: Option<i32>,
        code: Option<i32>,
    },
    MasterExited {
        code: Option<i32>,
    },
    /// The server's processes from /proc: master and children, their threads, summed PSS.
    Resources(Resources),
    /// The harness killed a child (`kill_child_of`).
    Killed {
        pid: i32,
        signal: String,
    },
    /// The scenario is over; what follows is the harness stopping the server.
    Teardown,
    Note {
        text: String,
    },
}

/// An observation and when it happened, from the start of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub at_ms: f64,
    #[serde(flatten)]
    pub what: Observation,
}

/// What the waits ask about, kept current as observations arrive.
#[derive(Debug, Default)]
pub struct State {
    pub entries: Vec<Entry>,
    pub summary: Option<Summary>,
    pub resources: Option<Resources>,
    pub events: BTreeMap<String, u64>,
    pub child_exits: u64,
    pub master_exited: bool,
    /// Request name → its outcome, once known.
    pub outcomes: BTreeMap<String, Outcome>,
    pub closed_conns: BTreeMap<String, ErrorClass>,
    /// Scoreboard samples taken (changed or not).
    pub samples: u64,
    /// /proc samples taken (changed or not).
    pub proc_samples: u64,
    closed: bool,
}

impl State {
    /// Updates what the waits ask about with one observation.
    pub fn apply(&mut self, what: &Observation) {
        match what {
            Observation::Response {
                request,
                status,
                served_by,
                closes,
                latency_ms,
                ..
            } => {
                self.outcomes.insert(
                    request.clone(),
                    Outcome::Response {
                        status: *status,
                        served_by: served_by.clone(),
                        closes: *closes,
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
                    Outcome::Failed {
                        class: *class,
                        latency: Duration::from_secs_f64(latency_ms / 1000.0),
                    },
                );
            }
            Observation::ConnClosedByServer { conn, class } => {
                self.closed_conns.insert(conn.clone(), *class);
            }
            Observation::Scoreboard(summary) => self.summary = Some(summary.clone()),
            Observation::Resources(r) => self.resources = Some(r.clone()),
            Observation::ServerEvent { event, .. } => {
                *self.events.entry(event.clone()).or_default() += 1
            }
            Observation::ChildExited { .. } => self.child_exits += 1,
            Observation::MasterExited { .. } => self.master_exited = true,
            _ => {}
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response {
        status: u16,
        served_by: Option<ServedBy>,
        closes: bool,
        latency: Duration,
    },
    Failed {
        class: ErrorClass,
        latency: Duration,
    },
}

/// The shared timeline.
#[derive(Clone)]
pub struct Store {
    inner: Arc<(Mutex<State>, Condvar)>,
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
            inner: Arc::new((Mutex::new(State::default()), Condvar::new())),
            start: Instant::now(),
        }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an observation and wakes every waiter.
    pub fn push(&self, what: Observation) {
        let at_ms = self.start.elapsed().as_secs_f64() * 1000.0;
        let mut s = self.lock();
        s.apply(&what);
        s.entries.push(Entry { at_ms, what });
        drop(s);
        self.inner.1.notify_all();
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
                .1
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Counts a scoreboard sample (changed or not), so the runner can wait for a fresh one.
    pub fn sampled(&self) {
        self.lock().samples += 1;
        self.inner.1.notify_all();
    }

    /// Counts a /proc sample (changed or not).
    pub fn proc_sampled(&self) {
        self.lock().proc_samples += 1;
        self.inner.1.notify_all();
    }

    /// Stops the samplers.
    pub fn close(&self) {
        self.lock().closed = true;
        self.inner.1.notify_all();
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

/// Samples the scoreboard file every few milliseconds and records each change.
pub fn sample_scoreboard(store: Store, path: PathBuf) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut view = None;
        let mut last: Option<Summary> = None;
        while !store.is_closed() {
            if view.is_none() {
                view = ScoreboardView::open(&path).ok();
            }
            if let Some(v) = &view {
                let summary = Summary::of(&v.snapshot());
                if last.as_ref() != Some(&summary) {
                    last = Some(summary.clone());
                    store.push(Observation::Scoreboard(summary));
                }
                store.sampled();
            }
            store.pause(Duration::from_millis(2));
        }
    })
}

/// Follows the server's event log and records each event (and child exits as process events).
pub fn tail_event_log(store: Store, path: PathBuf) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let observer = store.clone();
        follow_lines(&store, &path, |line| record_event(&observer, line));
    })
}

/// Calls `on_line` for each complete line appended to the file at `path` (which may not exist
/// yet), reading only what is new, until the store closes; a last read after it closes.
pub fn follow_lines(store: &Store, path: &std::path::Path, mut on_line: impl FnMut(&str)) {
    use std::io::{Read, Seek, SeekFrom};
    let mut offset = 0u64;
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let closing = store.is_closed();
        if let Ok(mut file) = std::fs::File::open(path) {
            if file.seek(SeekFrom::Start(offset)).is_ok() {
                if let Ok(n) = file.read_to_end(&mut pending) {
                    offset += n as u64;
                }
            }
            if let Some(end) = pending.iter().rposition(|b| *b == b'\n') {
                for line in String::from_utf8_lossy(&pending[..end]).lines() {
                    on_line(line);
                }
                pending.drain(..=end);
            }
        }
        if closing {
            return;
        }
        store.pause(Duration::from_millis(5));
    }
}

fn record_event(store: &Store, line: &str) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
        return;
    };
    let event = value["event"].as_str().unwrap_or("unknown").to_string();
    let pid = value["pid"].as_i64().unwrap_or(0) as i32;
    if event == "child_exited" {
        store.push(Observation::ChildExited {
            pid: value["child"].as_i64().unwrap_or(0) as i32,
            signal: value["signal"].as_i64().map(|s| s as i32),
            code: value["code"].as_i64().map(|c| c as i32),
        });
    }
    let mut detail = value.clone();
    if let Some(map) = detail.as_object_mut() {
        map.remove("event");
        map.remove("pid");
        map.remove("t_ms");
    }
    store.push(Observation::ServerEvent { event, pid, detail });
}

/// Samples the server's processes from /proc every 10 ms and records each change: process and
/// thread counts, summed PSS.
pub fn sample_processes(store: Store, master: i32) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut last = None;
        while !store.is_closed() {
            let now = read_resources(master);
            if now.processes > 0 && last.as_ref() != Some(&now) {
                last = Some(now.clone());
                store.push(Observation::Resources(now));
            }
            store.proc_sampled();
            store.pause(Duration::from_millis(10));
        }
    })
}

/// The children of `master`, from every thread's `/proc/<pid>/task/<tid>/children` list.
pub fn children(master: i32) -> Vec<i32> {
    let mut pids = std::collections::BTreeSet::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{master}/task")) {
        for t in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
                pids.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok()),
                );
            }
        }
    }
    pids.into_iter().collect()
}

/// The master and its live (not zombie) children.
pub fn server_processes(master: i32) -> Vec<i32> {
    std::iter::once(master)
        .chain(children(master))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let (_, rest) = stat.rsplit_once(')')?;
                    Some(!rest.trim_start().starts_with('Z'))
                })
                .unwrap_or(false)
        })
        .collect()
}

fn read_resources(master: i32) -> Resources {
    let mut r = Resources::default();
    for pid in server_processes(master) {
        r.processes += 1;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        r.threads += field_kb(&status, "Threads:");
        let rollup =
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        r.pss_kb += field_kb(&rollup, "Pss:");
    }
    r
}

/// The number after `key` on its line (`Threads:  26`, `Pss:  1234 kB`).
fn field_kb(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
