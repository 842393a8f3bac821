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

use serde::Serialize;

/// Something the server did that a harness may want to see.
#[derive(Debug, Clone, Serialize)]
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

#[derive(Serialize)]
struct Line<'a> {
    t_ms: u64,
    pid: u32,
    #[serde(flatten)]
    event: &'a Event,
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
        let line = Line {
            t_ms: unix_ms(),
            pid: std::process::id(),
            event: &event,
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
    Info,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Notice => "notice",
            Level::Info => "info",
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
