//! The reference server's observers and the /proc sampler: its scoreboard file, its event log
//! (JSON lines, read as refhttpd's own [`EventLine`] type), and the server's processes.

use std::path::PathBuf;

use refhttpd::{Event, EventLine, ProcessStatus, ScoreboardView, Snapshot};

use super::board::{Board, ProcessRow};
use super::{Changes, Ending, Observation, ProcessMemory, Resources, Sampler, Store, Summary};
use crate::spec::condition::Source;

/// The reference scoreboard's raw slots as board rows: no count of the server's own is used.
fn board_of(s: &Snapshot) -> Board {
    Board {
        processes: s
            .processes
            .iter()
            .filter(|p| p.pid > 0)
            .map(|p| ProcessRow {
                pid: p.pid,
                generation: p.generation,
                accepting: p.accepting,
                stopping: p.status == ProcessStatus::Graceful,
                workers: p.workers.iter().map(|w| w.state.as_char()).collect(),
                async_keepalive: p.async_keepalive,
                async_writing: p.async_writing,
                async_closing: p.async_closing,
            })
            .collect(),
    }
}

/// Reads the reference server's scoreboard file (mapped read-only) and records each change.
pub struct ScoreboardSampler {
    path: PathBuf,
    view: Option<ScoreboardView>,
    last: Changes<Summary>,
}

impl ScoreboardSampler {
    pub fn new(path: PathBuf) -> ScoreboardSampler {
        ScoreboardSampler {
            path,
            view: None,
            last: Changes::default(),
        }
    }
}

impl Sampler for ScoreboardSampler {
    fn sources(&self) -> &'static [Source] {
        &[Source::Scoreboard]
    }

    fn sample(&mut self, store: &Store) -> bool {
        if self.view.is_none() {
            self.view = ScoreboardView::open(&self.path).ok();
        }
        let Some(view) = &self.view else {
            return false;
        };
        let snapshot = view.snapshot();
        let summary = board_of(&snapshot).summary(snapshot.threads_per_child);
        if let Some(changed) = self.last.changed(summary) {
            store.push(Observation::Scoreboard(changed));
        }
        true
    }
}

/// Reads the server's processes from /proc (master and live children: count, threads, summed
/// PSS and each one's PSS) and records each change.
pub struct ProcSampler {
    master: i32,
    last: Changes<Resources>,
}

impl ProcSampler {
    pub fn new(master: i32) -> ProcSampler {
        ProcSampler {
            master,
            last: Changes::default(),
        }
    }
}

impl Sampler for ProcSampler {
    fn sources(&self) -> &'static [Source] {
        &[Source::Proc]
    }

    fn sample(&mut self, store: &Store) -> bool {
        let now = read_resources(self.master);
        if now.processes == 0 {
            return false;
        }
        if let Some(changed) = self.last.changed(now) {
            store.push(Observation::Resources(changed));
        }
        true
    }
}

/// Reads what was appended to a file since the last read, a complete line at a time (the file
/// may not exist yet).
pub struct Follower {
    path: PathBuf,
    /// Opened once the file exists; each read goes on from where the last one stopped.
    file: Option<std::fs::File>,
    pending: Vec<u8>,
}

impl Follower {
    pub fn new(path: PathBuf) -> Follower {
        Follower {
            path,
            file: None,
            pending: Vec::new(),
        }
    }

    /// Calls `on_line` for each complete new line; false when the file cannot be read (yet).
    pub fn read_new(&mut self, mut on_line: impl FnMut(&str)) -> bool {
        use std::io::Read;
        if self.file.is_none() {
            self.file = std::fs::File::open(&self.path).ok();
        }
        let Some(file) = &mut self.file else {
            return false;
        };
        let _ = file.read_to_end(&mut self.pending);
        if let Some(end) = self.pending.iter().rposition(|b| *b == b'\n') {
            for line in String::from_utf8_lossy(&self.pending[..end]).lines() {
                on_line(line);
            }
            self.pending.drain(..=end);
        }
        true
    }
}

/// The reference server's event log, read as refhttpd's own [`EventLine`]s: each event, and
/// child exits as process endings.
pub struct EventLogSampler {
    follower: Follower,
}

impl EventLogSampler {
    pub fn new(path: PathBuf) -> EventLogSampler {
        EventLogSampler {
            follower: Follower::new(path),
        }
    }
}

impl Sampler for EventLogSampler {
    fn sources(&self) -> &'static [Source] {
        &[Source::Events, Source::ProcessExits]
    }

    fn sample(&mut self, store: &Store) -> bool {
        self.follower.read_new(|line| record_event(store, line))
    }
}

fn record_event(store: &Store, line: &str) {
    let parsed = match EventLine::parse(line) {
        Ok(p) => p,
        Err(e) => {
            store.push(Observation::Note {
                text: format!("unreadable event-log line ({e}): {line}"),
            });
            return;
        }
    };
    let mut observations = Vec::new();
    if let Event::ChildExited {
        child,
        code,
        signal,
        ..
    } = &parsed.event
    {
        let ending = match (signal, code) {
            (Some(s), _) => Ending::Signaled(*s),
            (None, Some(c)) => Ending::Exited(*c),
            (None, None) => Ending::Unknown,
        };
        observations.push(Observation::ChildExited {
            pid: *child,
            ending,
        });
    }
    let kind = parsed.event.kind();
    let mut detail = serde_json::to_value(&parsed.event).unwrap_or_default();
    if let Some(map) = detail.as_object_mut() {
        map.remove("event");
    }
    observations.push(Observation::ServerEvent {
        event: kind,
        pid: parsed.pid as i32,
        detail,
    });
    // Together: no observer sees the exit without its event.
    store.push_all(observations);
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

/// The master's children: /proc's list of them — which the kernel does not promise complete
/// while children start or exit (a child may be missed) — with each of `also` (pids the caller
/// knows of, such as a scoreboard's) whose parent is the master.
pub fn children_with(master: i32, also: impl IntoIterator<Item = i32>) -> Vec<i32> {
    let mut pids: std::collections::BTreeSet<i32> = children(master).into_iter().collect();
    for pid in also {
        let parent = stat_fields(pid).and_then(|f| f.get(1)?.parse::<i32>().ok());
        if pid > 0 && parent == Some(master) {
            pids.insert(pid);
        }
    }
    pids.into_iter().collect()
}

/// The fields of `/proc/<pid>/stat` after the command's closing parenthesis: state, ppid,
/// pgrp, … (None when the process is gone).
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(String::from).collect())
}

/// The state letter of process `pid` and, once it is a zombie, its exit status as wait(2)
/// gives it (`/proc/<pid>/stat`'s field 52), if the process exists.
pub fn process_state_and_exit(pid: i32) -> Option<(char, Option<i32>)> {
    let fields = stat_fields(pid)?;
    let state = fields.first()?.chars().next()?;
    // The fields after the command start at field 3 (state): field 52 is the 50th.
    let exit = fields.get(49).and_then(|v| v.parse().ok());
    Some((state, exit))
}

/// The state letter of process `pid` (`R`, `S`, `T` stopped, `Z` zombie …), if it exists.
pub fn process_state(pid: i32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// Whether a process in stat state `state` still runs: neither a zombie nor dead.
fn is_live(state: &str) -> bool {
    !matches!(state, "Z" | "X")
}

/// The live (not zombie) processes of process group `group`, from every `/proc/<pid>/stat`:
/// a server's processes wherever they were reparented.
pub fn group_members(group: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            matches!(stat_fields(*pid).as_deref(), Some([state, _, pgrp, ..])
                if is_live(state) && pgrp.parse() == Ok(group))
        })
        .collect()
}

/// The master and its live (not zombie) children.
pub fn server_processes(master: i32) -> Vec<i32> {
    std::iter::once(master)
        .chain(children(master))
        .filter(|pid| matches!(stat_fields(*pid).as_deref(), Some([state, ..]) if is_live(state)))
        .collect()
}

fn read_resources(master: i32) -> Resources {
    let mut r = Resources::default();
    for pid in server_processes(master) {
        r.processes += 1;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        r.threads += field(&status, "Threads:").unwrap_or(0);
        let rollup =
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        // No `Pss:` line: the process has no memory left to show (it is exiting) or hides it.
        if let Some(pss_kb) = field(&rollup, "Pss:") {
            r.pss_kb += pss_kb;
            r.processes_memory.push(ProcessMemory { pid, pss_kb });
        }
    }
    r
}

/// The number after `key` on its line (`Threads:  26`, `Pss:  1234 kB`), if there is one.
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
