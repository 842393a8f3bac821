//! The machine-readable event log (`--event-log PATH`, JSON lines) and the human error log
//! (stderr, in Apache's `[module:level] [pid N] message` shape).
//!
//! Master and children append to the same file, opened once with `O_APPEND` before the first
//! fork; each event is one `write()` of one line, so lines from different processes never mix.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Something the server did that a harness may want to see. The server serialises it and the
/// harness deserialises the same type ([`EventLine`]), so the two cannot drift apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The master is accepting connections.
    Ready { addr: String, mpm: String },
    /// A child process was forked.
    ChildSpawned {
        child: i32,
        slot: usize,
        generation: u32,
    },
    /// A child finished starting and serves.
    ChildReady {
        child: i32,
        slot: usize,
        generation: u32,
    },
    /// A child process ended; `signal` is set when a signal killed it.
    ChildExited {
        child: i32,
        slot: usize,
        generation: u32,
        code: Option<i32>,
        signal: Option<i32>,
        signal_name: Option<String>,
        during_startup: bool,
    },
    /// The master could not fork.
    ForkFailed { slot: usize, error: String },
    /// A child died before it served; the master waits before the next attempt.
    StartupBackoff { failures: u32, delay_ms: u64 },
    /// A child reported a fatal start-up error: the server stops.
    ChildFatal { child: i32, code: i32 },
    /// Maintenance would start more workers but MaxRequestWorkers is reached.
    MaxRequestWorkers { limit: u32 },
    /// Maintenance retired an idle child (above MaxSpare*).
    ChildRetired { child: i32, slot: usize },
    /// A signal moved the server to another phase.
    Signal { signal: String, action: String },
    /// A new generation of children starts.
    Generation { generation: u32 },
    /// The server is gone.
    Stopped { reason: String },
    /// A connection was closed because a timeout expired (`header`, `body`, `keepalive`, `write`).
    Timeout {
        kind: String,
        slot: usize,
        thread: Option<usize>,
        client: String,
    },
    /// Event MPM: idle keep-alive connections closed early because workers were busy (EV-5).
    KeepAliveClosedEarly { slot: usize, count: usize },
    /// accept() failed.
    AcceptError { slot: usize, error: String },
}

/// The kind of an [`Event`] without its data: what spec cases count and wait for. Its names
/// are the `event` tags of the log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Ready,
    ChildSpawned,
    ChildReady,
    ChildExited,
    ForkFailed,
    StartupBackoff,
    ChildFatal,
    MaxRequestWorkers,
    ChildRetired,
    Signal,
    Generation,
    Stopped,
    Timeout,
    KeepAliveClosedEarly,
    AcceptError,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 15] = [
        EventKind::Ready,
        EventKind::ChildSpawned,
        EventKind::ChildReady,
        EventKind::ChildExited,
        EventKind::ForkFailed,
        EventKind::StartupBackoff,
        EventKind::ChildFatal,
        EventKind::MaxRequestWorkers,
        EventKind::ChildRetired,
        EventKind::Signal,
        EventKind::Generation,
        EventKind::Stopped,
        EventKind::Timeout,
        EventKind::KeepAliveClosedEarly,
        EventKind::AcceptError,
    ];

    /// The name in the log and in spec cases (`child_exited`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Ready => "ready",
            EventKind::ChildSpawned => "child_spawned",
            EventKind::ChildReady => "child_ready",
            EventKind::ChildExited => "child_exited",
            EventKind::ForkFailed => "fork_failed",
            EventKind::StartupBackoff => "startup_backoff",
            EventKind::ChildFatal => "child_fatal",
            EventKind::MaxRequestWorkers => "max_request_workers",
            EventKind::ChildRetired => "child_retired",
            EventKind::Signal => "signal",
            EventKind::Generation => "generation",
            EventKind::Stopped => "stopped",
            EventKind::Timeout => "timeout",
            EventKind::KeepAliveClosedEarly => "keep_alive_closed_early",
            EventKind::AcceptError => "accept_error",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Event {
    /// What kind of event this is.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Ready { .. } => EventKind::Ready,
            Event::ChildSpawned { .. } => EventKind::ChildSpawned,
            Event::ChildReady { .. } => EventKind::ChildReady,
            Event::ChildExited { .. } => EventKind::ChildExited,
            Event::ForkFailed { .. } => EventKind::ForkFailed,
            Event::StartupBackoff { .. } => EventKind::StartupBackoff,
            Event::ChildFatal { .. } => EventKind::ChildFatal,
            Event::MaxRequestWorkers { .. } => EventKind::MaxRequestWorkers,
            Event::ChildRetired { .. } => EventKind::ChildRetired,
            Event::Signal { .. } => EventKind::Signal,
            Event::Generation { .. } => EventKind::Generation,
            Event::Stopped { .. } => EventKind::Stopped,
            Event::Timeout { .. } => EventKind::Timeout,
            Event::KeepAliveClosedEarly { .. } => EventKind::KeepAliveClosedEarly,
            Event::AcceptError { .. } => EventKind::AcceptError,
        }
    }
}

/// One line of the event log: when, which process, what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventLine {
    pub t_ms: u64,
    pub pid: u32,
    #[serde(flatten)]
    pub event: Event,
}

impl EventLine {
    /// Reads one line as the server wrote it.
    pub fn parse(line: &str) -> Result<EventLine, serde_json::Error> {
        serde_json::from_str(line)
    }
}

/// Where events go: a file shared by all processes of the server, or nowhere.
#[derive(Clone, Default)]
pub struct EventLog {
    file: Option<Arc<File>>,
}

impl EventLog {
    /// Opens (creates, appends to) the event log at `path`.
    pub fn open(path: &Path) -> io::Result<EventLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(EventLog {
            file: Some(Arc::new(file)),
        })
    }

    /// A log that drops every event.
    pub fn disabled() -> EventLog {
        EventLog::default()
    }

    /// Appends one event as one JSON line.
    pub fn emit(&self, event: Event) {
        let Some(file) = &self.file else { return };
        let line = EventLine {
            t_ms: unix_ms(),
            pid: std::process::id(),
            event,
        };
        if let Ok(mut text) = serde_json::to_vec(&line) {
            text.push(b'\n');
            // One write of one line: O_APPEND keeps lines of different processes apart.
            let _ = (&**file).write_all(&text);
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Severity of an error-log line, with Apache's names.
#[derive(Debug, Clone, Copy)]
pub enum Level {
    Error,
    Warn,
    Notice,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Notice => "notice",
        }
    }
}

/// Writes one line to the error log (stderr) in Apache's shape:
/// `[mpm_event:notice] [pid 123] child pid 456 exit signal Segmentation fault (11)`.
pub fn error_log(module: &str, level: Level, message: std::fmt::Arguments<'_>) {
    let line = format!(
        "[{module}:{}] [pid {}] {message}\n",
        level.as_str(),
        std::process::id()
    );
    let _ = io::stderr().lock().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Event> {
        vec![
            Event::Ready {
                addr: "127.0.0.1:1".into(),
                mpm: "event".into(),
            },
            Event::ChildSpawned {
                child: 1,
                slot: 0,
                generation: 0,
            },
            Event::ChildReady {
                child: 1,
                slot: 0,
                generation: 0,
            },
            Event::ChildExited {
                child: 1,
                slot: 0,
                generation: 0,
                code: None,
                signal: Some(11),
                signal_name: Some("Segmentation fault".into()),
                during_startup: false,
            },
            Event::ForkFailed {
                slot: 0,
                error: "EAGAIN".into(),
            },
            Event::StartupBackoff {
                failures: 1,
                delay_ms: 10,
            },
            Event::ChildFatal { child: 1, code: 15 },
            Event::MaxRequestWorkers { limit: 4 },
            Event::ChildRetired { child: 1, slot: 0 },
            Event::Signal {
                signal: "USR1".into(),
                action: "graceful restart".into(),
            },
            Event::Generation { generation: 1 },
            Event::Stopped {
                reason: "TERM".into(),
            },
            Event::Timeout {
                kind: "header".into(),
                slot: 0,
                thread: Some(1),
                client: "c".into(),
            },
            Event::KeepAliveClosedEarly { slot: 0, count: 2 },
            Event::AcceptError {
                slot: 0,
                error: "EMFILE".into(),
            },
        ]
    }

    #[test]
    fn every_kind_is_named_as_its_log_tag_and_lines_round_trip() {
        let events = samples();
        let kinds: Vec<EventKind> = events.iter().map(Event::kind).collect();
        assert_eq!(kinds, EventKind::ALL, "one sample per kind, in order");
        for event in events {
            let line = EventLine {
                t_ms: 5,
                pid: 7,
                event,
            };
            let text = serde_json::to_string(&line).unwrap();
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value["event"], line.event.kind().as_str(), "{text}");
            let kind: EventKind =
                serde_json::from_value(value["event"].clone()).expect("kind parses from the tag");
            assert_eq!(kind, line.event.kind());
            assert_eq!(EventLine::parse(&text).unwrap(), line, "{text}");
        }
    }
}
